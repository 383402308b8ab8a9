"""The C decoders' own messages (libmpg123 inside libsndfile) stay off the terminal.

libmpg123 writes lines like ``Note: Illegal Audio-MPEG-Header ...`` straight to file descriptor 2
when an MP3 has junk after its last frame. The tests make such a file from a bundled voice, check
that plain soundfile does print the noise (so the tests can fail), and that speakerembed does not,
while everything else written to fd 2 still gets through.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speakerembed.stages._quiet_stderr import decoder_output_quiet, is_decoder_noise

ROOT = Path(__file__).resolve().parents[2]
ALICE = ROOT / "examples" / "audio" / "alice_1.wav"

pytestmark = pytest.mark.skipif(
    "MP3" not in sf.available_formats(), reason="this libsndfile has no MP3 support"
)


@pytest.fixture(scope="module")
def noisy_mp3(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MP3 of a bundled voice with 4 kB of junk after the last frame: it decodes, noisily."""
    data, rate = sf.read(ALICE, dtype="float32")
    path = tmp_path_factory.mktemp("mp3") / "junk_tail.mp3"
    sf.write(path, data, rate, format="MP3")
    junk = np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    with path.open("ab") as f:
        f.write(junk)
    return path


def _stderr_of(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run(
        # ResourceWarnings shown: the capture file must not leak as an unclosed file object.
        [sys.executable, "-W", "always::ResourceWarning", "-c", code, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_plain_soundfile_prints_the_noise(noisy_mp3: Path) -> None:
    # The control: without speakerembed's guard, libmpg123 writes to fd 2.
    proc = _stderr_of("import sys, soundfile as sf; sf.read(sys.argv[1])", str(noisy_mp3))
    assert proc.returncode == 0, proc.stderr
    noise = [line for line in proc.stderr.splitlines() if is_decoder_noise(line.encode() + b"\n")]
    assert noise, f"expected libmpg123 lines on stderr, got {proc.stderr!r}"


def test_loading_and_streaming_keep_the_noise_off_stderr(noisy_mp3: Path) -> None:
    code = (
        "import sys, warnings\n"
        "from speakerembed.stages.load import load_audio\n"
        "from speakerembed.stages.longform import file_blocks\n"
        "wave, rate = load_audio(sys.argv[1])\n"
        "streamed = sum(len(b) for b in file_blocks(sys.argv[1]))\n"
        "print(len(wave), rate, streamed)\n"
        "print('ours, after the decode', file=sys.stderr)\n"
        "warnings.warn('a Python warning still shows')\n"
    )
    proc = _stderr_of(code, str(noisy_mp3))
    assert proc.returncode == 0, proc.stderr
    n, rate, streamed = (int(v) for v in proc.stdout.split())
    assert rate == 16000
    assert n == streamed == sf.info(ALICE).frames  # the audio itself is all there
    lines = proc.stderr.splitlines()
    assert lines[0] == "ours, after the decode", proc.stderr
    assert "UserWarning: a Python warning still shows" in lines[1]
    assert len(lines) == 2  # nothing else: no decoder lines


def test_cli_keeps_the_noise_off_stderr(noisy_mp3: Path, tmp_path: Path) -> None:
    out = tmp_path / "v.npy"
    code = "import sys; from speakerembed.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = _stderr_of(
        code, "embed", str(noisy_mp3), "--weights", "resemblyzer", "--device", "cpu", "-o", str(out)
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines() == [f"wrote speaker embedding (256,) to {out}"]


def test_other_output_during_a_decode_is_passed_on(capfd: pytest.CaptureFixture[str]) -> None:
    with decoder_output_quiet():
        os.write(2, b"Note: Illegal Audio-MPEG-Header 0x12345678 at offset 9.\n")
        os.write(2, b"another thread's progress line\n")
        with decoder_output_quiet():  # nested (or concurrent) windows
            os.write(2, b"[src/libmpg123/parse.c:wetwork():1349] error: Giving up resync\n")
        os.write(2, b"Warning: Xing stream size off by more than 1%\n")
    os.write(2, b"after\n")
    assert capfd.readouterr().err == "another thread's progress line\nafter\n"


def test_threads_decoding_at_once_restore_stderr(noisy_mp3: Path, capfd: pytest.CaptureFixture[str]) -> None:
    from speakerembed.stages.load import load_audio

    before = os.fstat(2)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(3):
                load_audio(noisy_mp3)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors
    after = os.fstat(2)
    assert (after.st_dev, after.st_ino) == (before.st_dev, before.st_ino)  # fd 2 is back
    os.write(2, b"still reaches stderr\n")
    assert capfd.readouterr().err == "still reaches stderr\n"


@pytest.mark.parametrize(
    ("line", "noise"),
    [
        (b"Note: Trying to resync...\n", True),
        (b"Note: Skipped 347 bytes in input.\n", True),
        (b"Warning: Xing stream size off by more than 1%, fuzzy seeking may be even more fuzzy\n", True),
        (b"[src/libmpg123/parse.c:wetwork():1349] error: Giving up resync after 1024 bytes\n", True),
        (b"speakerembed: error: input 0: could not be decoded\n", False),
        (b"/x/y.py:7: UserWarning: ours\n", False),
        (b"WARNING:speakerembed:a log record\n", False),
        (b" 50%|#####     | 5/10 [00:01<00:01]\r", False),
    ],
)
def test_noise_is_told_from_our_own_lines(line: bytes, noise: bool) -> None:
    assert is_decoder_noise(line) == noise
