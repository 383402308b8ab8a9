"""The corpus job and signals: SIGTERM is Ctrl-C, and worker processes end with their job.

Each test runs a real job in a child process, signals it, and checks what is left: the rows,
the exit code and message, and no worker process still alive.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from speakerembed import SpeakerEmbedder, embed_corpus  # noqa: E402 - after the skips

ROOT = Path(__file__).resolve().parents[2]
AUDIO = ROOT / "examples" / "audio"
N = len(list(AUDIO.glob("*.wav")))


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def _wait_for(path: Path, proc: subprocess.Popen[bytes], seconds: float = 240) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        if proc.poll() is not None:
            pytest.fail(f"the job ended (code {proc.returncode}) before it could be signalled")
        if time.monotonic() > deadline:
            pytest.fail(f"{path.name} did not appear within {seconds} s")
        time.sleep(0.05)


def test_sigterm_keeps_the_finished_rows_says_interrupted_and_exits_130(
    tmp_path: Path, embedder: SpeakerEmbedder
) -> None:
    out = tmp_path / "out"
    marker = tmp_path / "first-batch-written"
    # Batches of 4 into one big shard: after the first batch, 4 rows wait in the sink's buffer.
    code = (
        "import sys, time\n"
        "import speakerembed.corpus.job as job\n"
        "import speakerembed.corpus.sink as sink\n"
        "job.BATCH_SIZE = 4\n"
        "write = sink.ParquetSink.write\n"
        "def slow(self, table):\n"
        "    write(self, table)\n"
        f"    open({str(marker)!r}, 'w').close(); time.sleep(60)\n"
        "sink.ParquetSink.write = slow\n"
        "from speakerembed.cli import main\n"
        f"sys.exit(main(['corpus', {str(AUDIO)!r}, '-o', {str(out)!r}, '--workers', '0', "
        "'--weights', 'resemblyzer', '--device', 'cpu']))\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], env=_env(), stderr=subprocess.PIPE)
    try:
        _wait_for(marker, proc)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=60)
    assert proc.returncode == 130, err.decode()
    assert "speakerembed: interrupted" in err.decode()
    rows = pq.read_table(out).to_pylist()
    assert len(rows) == 4  # the buffered rows were written, not lost
    assert all(r["error"] is None for r in rows)
    report = embed_corpus(AUDIO, out, embedder=embedder, progress="off")
    assert (report.skipped, report.embedded) == (4, N - 4)


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")  # a zombie has ended; only its entry waits to be reaped


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process table in /proc (Linux)")
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_worker_processes_end_when_their_job_is_killed(tmp_path: Path, sig: signal.Signals) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for k in range(12):  # enough work that the job is still running when it is killed
        for wav in AUDIO.glob("*.wav"):
            shutil.copyfile(wav, folder / f"{k:02d}_{wav.name}")  # copies: a scan takes each real file once
    out = tmp_path / "out"
    code = (
        "from speakerembed import embed_corpus\n"
        f"embed_corpus({str(folder)!r}, {str(out)!r}, weights='resemblyzer', device='cpu', workers=2, "
        "shard_size=10000, progress='off')\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], env=_env(), stderr=subprocess.DEVNULL)
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            workers = [
                p
                for p in _children(proc.pid)
                if b"from multiprocessing.spawn import spawn_main"
                in Path(f"/proc/{p}/cmdline").read_bytes().replace(b"\0", b" ")
            ]
            if len(workers) >= 2:
                break
            if proc.poll() is not None:
                pytest.fail(f"the job ended (code {proc.returncode}) before its workers started")
            time.sleep(0.1)
        assert len(workers) >= 2, "the job's two encoder workers did not start"
        time.sleep(3)  # let them load their weights and take a batch each
        proc.send_signal(sig)
        proc.wait(timeout=120)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and any(_alive(p) for p in workers):
            time.sleep(0.2)
        left = [p for p in workers if _alive(p)]
        assert not left, f"worker processes {left} outlived their job"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=60)
        for p in workers:  # the test's own descendants, if the fix failed
            if _alive(p):
                os.kill(p, signal.SIGKILL)
