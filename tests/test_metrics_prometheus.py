"""End to end: a program that embeds audio in a loop (tests/_metrics_loop.py), scraped every
second by a real Prometheus server. (The service, ``speakerembed serve``, is scraped in
tests/serve/test_serve.py.)

The test starts the program (embedding audio in a loop, serving /metrics on 127.0.0.1) and the
Debian ``prometheus`` binary with a temporary config and data directory, both on loopback and on
free ports. It waits until Prometheus has samples, asks its HTTP API for the p95 of every stage
and for the utterance rate, checks that the answers are finite and plausible, and stops both
processes whatever happens. Without ``prometheus`` it skips, unless ``CI`` is set.
"""

from __future__ import annotations

import importlib.util
import json
import math
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _signals import require_tool

pytest.importorskip("prometheus_client")

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "tests" / "_metrics_loop.py"
DEADLINE_S = 90.0  # the whole dance takes 20-40 s on a busy 2-core machine

STAGE_P95 = (
    "histogram_quantile(0.95, sum by (le, stage) (rate(speakerembed_stage_duration_seconds_bucket[30s])))"
)
UTTERANCE_RATE = 'sum(rate(speakerembed_utterances_total{outcome="success"}[30s]))'
ERROR_RATE = 'sum(rate(speakerembed_utterances_total{outcome="error"}[30s]))'


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str, timeout: float = 5.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return bytes(response.read())


def query(port: int, expr: str) -> list[dict[str, Any]]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    body = json.loads(get(url))
    assert body["status"] == "success", body
    return list(body["data"]["result"])


def values(result: list[dict[str, Any]]) -> list[float]:
    return [float(r["value"][1]) for r in result]


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop a process we started: SIGTERM, then SIGKILL."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def wait_for(what: str, check: Any, deadline: float, procs: list[subprocess.Popen[bytes]]) -> Any:
    last: object = None
    while time.monotonic() < deadline:
        for proc in procs:
            assert proc.poll() is None, (
                f"{proc.args[0]} exited with {proc.returncode} while waiting for {what}"
            )
        try:
            got = check()
        except (OSError, urllib.error.URLError, ValueError, KeyError) as exc:
            last = exc
        else:
            if got:
                return got
            last = got
        time.sleep(0.5)
    pytest.fail(f"timed out waiting for {what}; last answer: {last!r}")


@pytest.fixture
def audio_dir(tmp_path: Path) -> Path:
    """Three generated utterances, and one silent file that fails (to exercise the error counters)."""
    import soundfile as sf

    folder = tmp_path / "audio"
    folder.mkdir()
    sr = 16000
    for i, seconds in enumerate((1.5, 2.0, 2.5)):
        t = np.arange(int(seconds * sr)) / sr
        wave = 0.2 * np.sin(2 * np.pi * (120 + 40 * i) * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t))
        sf.write(folder / f"voice_{i}.wav", wave.astype(np.float32), sr)
    sf.write(folder / "silence.wav", np.zeros(sr, np.float32), sr)
    return folder


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    """The processes a test starts; all of them are stopped afterwards, also on failure."""
    started: list[subprocess.Popen[bytes]] = []
    try:
        yield started
    finally:
        for proc in reversed(started):
            stop(proc)


@pytest.mark.slow
def test_prometheus_scrapes_the_example(
    tmp_path: Path, audio_dir: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    prometheus = require_tool("prometheus")
    deadline = time.monotonic() + DEADLINE_S
    app_port, prom_port = free_port(), free_port()

    app_log = (tmp_path / "example.log").open("wb")
    processes.append(
        subprocess.Popen(
            [sys.executable, str(EXAMPLE), str(audio_dir), "--port", str(app_port), "--interval", "0.05"],
            stdout=app_log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
    )
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n"
        "  - job_name: speakerembed\n"
        "    scrape_interval: 1s\n    scrape_timeout: 1s\n"
        f"    static_configs:\n      - targets: ['127.0.0.1:{app_port}']\n",
        encoding="utf-8",
    )
    prom_log = (tmp_path / "prometheus.log").open("wb")
    processes.append(
        subprocess.Popen(
            [
                prometheus,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
                "--log.level=warn",
            ],
            stdout=prom_log,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )
    )
    try:
        # The example serves its own metrics...
        text = wait_for(
            "the example's /metrics",
            lambda: get(f"http://127.0.0.1:{app_port}/metrics").decode(),
            deadline,
            processes,
        )
        assert "speakerembed_stage_duration_seconds_bucket" in text
        wait_for(
            "Prometheus to be ready",
            lambda: get(f"http://127.0.0.1:{prom_port}/-/ready"),
            deadline,
            processes,
        )
        # ... Prometheus scrapes them ...
        up = wait_for(
            "a successful scrape",
            lambda: values(query(prom_port, 'up{job="speakerembed"}')) == [1.0],
            deadline,
            processes,
        )
        assert up
        # ... and once a few scrapes have seen embeddings, rates and quantiles come out.
        rate = wait_for(
            "a non-zero utterance rate",
            lambda: [v for v in values(query(prom_port, UTTERANCE_RATE)) if v > 0],
            deadline,
            processes,
        )

        def stage_p95() -> list[dict[str, Any]] | None:
            result = query(prom_port, STAGE_P95)
            finite = {r["metric"]["stage"] for r in result if math.isfinite(float(r["value"][1]))}
            return result if finite >= {"load", "trim", "mel", "encode", "consolidate"} else None

        p95 = wait_for("a finite p95 for every stage", stage_p95, deadline, processes)
        error_rate = wait_for(
            "a non-zero error rate",
            lambda: [v for v in values(query(prom_port, ERROR_RATE)) if v > 0],
            deadline,
            processes,
        )
    except BaseException:
        for log in (tmp_path / "example.log", tmp_path / "prometheus.log"):
            sys.stderr.write(f"--- {log.name}\n{log.read_text(errors='replace')[-4000:]}\n")
        raise
    finally:
        app_log.close()
        prom_log.close()

    # Plausible values: a positive utterance rate, below what 2 CPU cores can do ...
    assert len(rate) == 1
    assert 0 < rate[0] < 500
    # ... and stage quantiles within the histogram's finite buckets (0.1 ms to 30 s).
    by_stage = {r["metric"]["stage"]: float(r["value"][1]) for r in p95}
    assert set(by_stage) <= {"load", "resample", "trim", "mel", "encode", "consolidate"}
    for stage in ("load", "trim", "mel", "encode", "consolidate"):
        assert math.isfinite(by_stage[stage]), by_stage
        assert 0 < by_stage[stage] <= 30, by_stage
    # The encoder pass over a batch of windows takes longer than reading a short WAV file.
    assert by_stage["encode"] > by_stage["load"]
    # The silent file fails every round: errors are scraped too, counted by stage and type.
    errors = query(
        prom_port, 'sum by (stage, error_type) (speakerembed_errors_total{job="speakerembed"}) > 0'
    )
    assert {(r["metric"]["stage"], r["metric"]["error_type"]) for r in errors} == {("trim", "audio")}
    assert error_rate[0] > 0
    # One input in four fails: 2 errors for 6 successes a round (the ratio of the totals moves
    # within a round, but stays well between 0 and 1).
    totals = {
        r["metric"]["outcome"]: float(r["value"][1])
        for r in query(prom_port, 'speakerembed_utterances_total{job="speakerembed"}')
    }
    assert 0 < totals["error"] < totals["success"]


def test_example_finds_audio(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("serve_metrics", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    (tmp_path / "a.wav").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("not audio")
    assert module.find_audio([str(tmp_path)]) == [tmp_path / "a.wav"]
    assert module.find_audio([str(tmp_path / "b.flac")]) == [tmp_path / "b.flac"]
    default = module.find_audio([])
    assert default
    if not list((ROOT / "examples" / "audio").glob("*.wav")):
        assert all(isinstance(x, np.ndarray) and x.dtype == np.float32 and x.ndim == 1 for x in default)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SystemExit, match="no audio files"):
        module.find_audio([str(empty)])
