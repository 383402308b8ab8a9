"""Every bad usage exits 2 before any audio is read, with messages in the flags' own spelling.

Each case runs with a real input whose decoding would fail the test (soundfile is replaced by a
tripwire), and nothing may be written: no output file, no output folder.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest
import soundfile

from speakerembed.cli import main

AUDIO = Path(__file__).resolve().parents[2] / "examples" / "audio"
ALICE = str(AUDIO / "alice_1.wav")
W = ["--weights", "resemblyzer"]


@pytest.fixture
def no_audio_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    def tripwire(*args: object, **kwargs: object) -> None:
        raise AssertionError("audio was read before the usage was checked")

    for name in ("info", "read", "SoundFile"):
        monkeypatch.setattr(soundfile, name, tripwire)


def usage(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse's own errors
        code = exc.code  # type: ignore[assignment]
    err = capsys.readouterr().err
    assert code == 2, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("speakerembed embed: error: "), err
    return last


@pytest.mark.usefixtures("no_audio_reads")
@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--max-duration", "0"], "argument --max-duration: must be a number greater than 0"),
        (["--max-duration", "-3"], "argument --max-duration"),
        (["--max-duration", "inf"], "argument --max-duration: must be a finite number"),
        (
            ["--max-duration", "1e8"],
            "--max-duration 100000000.0 is invalid; pass a duration in seconds in (0, 1e7]",
        ),
        (["--min-duration", "-1"], "argument --min-duration"),
        (["--min-duration", "1e8"], "--min-duration 100000000.0 is invalid"),
        (["--min-duration", "5", "--max-duration", "2"], "--max-duration 2 is below --min-duration 5"),
        (["--top-db", "0"], "argument --top-db: must be a number greater than 0"),
        (["--top-db", "nan"], "argument --top-db: must be a finite number"),
        (["--top-db", "1000"], "--top-db 1000.0 is invalid; pass a level in (0, 200] dB"),
        (["--no-trim", "--top-db", "30"], "--no-trim and --top-db contradict each other"),
        (["--device", "gpu"], "argument --device: 'gpu' is not a device; use cpu, cuda, cuda:N or mps"),
        (["--device", "cuda:x"], "argument --device"),
        (["--threads", "0"], "argument --threads: must be at least 1"),
        (["--resampler", "kaiser-fast"], "argument --resampler: invalid choice"),
        (["--precision", "fp8"], "argument --precision: invalid choice"),
    ],
)
def test_bad_values_and_contradictions(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, flags: list[str], expected: str
) -> None:
    out = tmp_path / "new" / "out.npy"
    line = usage(capsys, "embed", ALICE, *W, "-o", str(out), *flags)
    assert expected in line
    # Library spellings never reach the command line.
    for keyword in ("Pipeline.", "max_duration_s", "min_duration_s", "top_db=", "device=", "None"):
        assert keyword not in line, line
    assert not list(tmp_path.iterdir()), "a usage error must write nothing, not even -o's folder"


@pytest.mark.usefixtures("no_audio_reads")
@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("out.csv", "-o {out}: cannot write a .csv file; use one of .npy, .npz"),
        ("out", "-o {out}: cannot write a suffix-less file; use one of .npy, .npz"),
        ("somefile/x.npy", "somefile is a file, not a folder; choose another -o"),
        ("somefile/deeper/x.npz", "somefile is a file, not a folder; choose another -o"),
        ("folder.npy", "is a folder; pass a file name ending in one of .npy, .npz"),
    ],
)
def test_outputs_it_cannot_write(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, output: str, expected: str
) -> None:
    (tmp_path / "somefile").write_bytes(b"")
    (tmp_path / "folder.npy").mkdir()
    before = sorted(p.name for p in tmp_path.iterdir())
    out = tmp_path / output
    line = usage(capsys, "embed", ALICE, *W, "-o", str(out))
    assert expected.format(out=out).replace(str(tmp_path) + "/", "") in line.replace(str(tmp_path) + "/", "")
    assert sorted(p.name for p in tmp_path.iterdir()) == before


@pytest.mark.usefixtures("no_audio_reads")
def test_an_output_folder_where_nothing_can_be_created(capsys: pytest.CaptureFixture[str]) -> None:
    # os.access() says yes to root everywhere; /proc refuses new files even to root.
    if not Path("/proc/self").is_dir():
        pytest.skip("no /proc here")
    line = usage(capsys, "embed", ALICE, *W, "-o", "/proc/x.npy")
    assert "-o /proc/x.npy: cannot write in the folder /proc" in line


@pytest.mark.usefixtures("no_audio_reads")
def test_an_unwritable_output_folder(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(stat.S_IRUSR | stat.S_IXUSR)  # 0500
    try:
        if os.access(locked, os.W_OK):  # root writes anyway: then the folder is writable
            pytest.skip("running as root: a 0500 folder is still writable")
        line = usage(capsys, "embed", ALICE, *W, "-o", str(locked / "x.npy"))
        assert "cannot write in the folder" in line
    finally:
        locked.chmod(stat.S_IRWXU)


def test_the_output_file_gets_the_usual_permissions(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out = tmp_path / "v.npy"
    assert main(["embed", ALICE, *W, "--device", "cpu", "-o", str(out)]) == 0
    capsys.readouterr()
    assert np.load(out).shape == (256,)
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~mask  # not mkstemp's private 0600
