"""Memory: peak RSS of the CLI on a long file, against the encoder's own floor.

Usage: ``python -m benchmarks.families.memory [--long-minutes 60] [--quick]``.

* **The floor**: a process that imports torch, loads the weights and encodes one full batch
  (64 windows): no pipeline can use less.
* **The CLI on a long 48 kHz WAV** (60 minutes; 10 with ``--quick``), built from the real speech
  in a temporary folder: peak RSS of ``speakerembed embed FILE`` (streamed), and its cosine to
  the in-memory path's embedding of the same file. Targets: at most 600 MB; cosine at least
  0.9999.
* **The throughput set in memory** (86 utterances at 44.1 kHz): peak RSS, reported.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from benchmarks import _harness as h

__all__ = ["run", "worker_floor", "worker_in_memory", "worker_set"]

CLI_RSS_TARGET_MB = 600.0
COSINE_TARGET = 0.9999


def worker_floor(cfg: dict[str, Any]) -> dict[str, Any]:
    """torch + weights + one batch of 64 windows."""
    import torch

    from speakerembed import SpeakerEmbedder

    emb = SpeakerEmbedder("resemblyzer", device="cpu")
    emb.encoder(torch.randn(emb.pipeline.max_windows_per_batch, 160, 40))
    return {}


def worker_in_memory(cfg: dict[str, Any]) -> dict[str, Any]:
    """The in-memory path on the long file (the reference for the streamed CLI)."""
    from speakerembed import Pipeline, SpeakerEmbedder

    emb = SpeakerEmbedder("resemblyzer", device="cpu", pipeline=Pipeline(stream_min_duration_s=None))
    t0 = time.perf_counter()
    vec = emb.embed_speaker([cfg["path"]])
    return {"seconds": time.perf_counter() - t0, "embedding": vec.tolist()}


def worker_set(cfg: dict[str, Any]) -> dict[str, Any]:
    """The throughput set at 44.1 kHz, embedded from arrays."""
    from speakerembed import SpeakerEmbedder

    wavs = h.load_set(h.eval_files(cfg.get("max_files")), 44_100)
    SpeakerEmbedder("resemblyzer", device="cpu").embed_utterances(wavs, sample_rate=44_100)
    return {"audio_s": sum(w.shape[0] for w in wavs) / 44_100}


def make_long_file(path: Path, minutes: float) -> float:
    """``minutes`` of real speech at 48 kHz, PCM 16, written block by block; returns seconds."""
    import numpy as np
    import soundfile as sf
    import soxr

    parts = []
    for f in sorted((h.SPEECH / "long").glob("*.flac")) + h.eval_files():
        x, sr = sf.read(str(f), dtype="float32", always_2d=True)
        parts.append(soxr.resample(x.mean(axis=1), sr, 48_000, quality="HQ").astype(np.float32))
    target = int(minutes * 60 * 48_000)
    done = 0
    with sf.SoundFile(str(path), "w", samplerate=48_000, channels=1, subtype="PCM_16") as out:
        while done < target:
            for p in parts:
                take = p[: target - done]
                out.write(take)
                done += take.shape[0]
                if done >= target:
                    break
    return done / 48_000


def run_rss(args: list[str], threads: int) -> tuple[float, float, int]:
    """Run a command; returns (wall seconds, the child's peak RSS in MB, exit code)."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(h.ROOT)}
    t0 = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=str(h.ROOT), env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    return time.perf_counter() - t0, usage.ru_maxrss / 1024.0, os.waitstatus_to_exitcode(status)


def add_args(parser: argparse.ArgumentParser) -> None:
    """--long-minutes."""
    parser.add_argument(
        "--long-minutes", type=float, default=None, help="length of the long file (default 60)"
    )


def run(opts: argparse.Namespace) -> h.FamilyResult:
    """Measure the memory figures."""
    import numpy as np

    machine = h.machine_info(opts.threads)
    figures: list[h.Figure] = []
    floor = h.run_worker("benchmarks.families.memory:worker_floor", {}, threads=opts.threads)
    floor_mb = floor.get("peak_rss_mb")
    limit = f"encoder floor: {floor_mb:.0f} MB" if floor_mb else "floor not measured"
    data: dict[str, Any] = {"floor": floor}
    minutes = getattr(opts, "long_minutes", None) or (10.0 if opts.quick else 60.0)
    with tempfile.TemporaryDirectory(prefix="speakerembed-bench-") as tmpdir:
        path = Path(tmpdir) / "long48k.wav"
        seconds = make_long_file(path, minutes)
        out_npy = Path(tmpdir) / "long.npy"
        cli = [sys.executable, "-m", "speakerembed", "embed", str(path), "--weights", "resemblyzer"]
        cli += ["--device", "cpu", "--threads", str(opts.threads), "-o", str(out_npy)]
        wall, rss, code = run_rss(cli, opts.threads)
        long: dict[str, Any] = {"audio_s": seconds, "cli_seconds": wall, "cli_peak_rss_mb": rss, "exit": code}
        ref = h.run_worker(
            "benchmarks.families.memory:worker_in_memory", {"path": str(path)}, threads=opts.threads
        )
        if code == 0 and "embedding" in ref:
            long["cosine_vs_in_memory"] = float(np.load(out_npy) @ np.asarray(ref["embedding"]))
            long["in_memory_peak_rss_mb"] = ref["peak_rss_mb"]
        data["long"] = long
    name = f"CLI peak RSS, {minutes:.0f}-minute 48 kHz WAV (streamed)"
    if code != 0:
        figures.append(h.Figure(name, f"exit {code}", limit, verdict="not measured: the CLI failed"))
    else:
        figures.append(
            h.Figure(
                name,
                f"{rss:.0f} MB ({seconds / wall:.0f}x real time, start-up included)",
                limit,
                f"≤ {CLI_RSS_TARGET_MB:.0f} MB",
                h.check_ratio(rss, CLI_RSS_TARGET_MB, higher=False),
                rss,
            )
        )
        mem = long.get("in_memory_peak_rss_mb")
        if mem:
            figures.append(
                h.Figure("the same file loaded whole (in-memory path)", f"{mem:.0f} MB", limit, value=mem)
            )
        cos = long.get("cosine_vs_in_memory")
        figures.append(
            h.Figure(
                "long file: streamed against in-memory, cosine",
                "—" if cos is None else f"{cos:.6f}",
                target=f"≥ {COSINE_TARGET}",
                verdict=h.check_ratio(cos, COSINE_TARGET),
                value=cos,
            )
        )
    s = h.run_worker(
        "benchmarks.families.memory:worker_set",
        {"max_files": 20 if opts.quick else None},
        threads=opts.threads,
    )
    data["set"] = s
    if "error" not in s:
        figures.append(
            h.Figure(
                f"embed_utterances on {s['audio_s']:.0f} s of speech at 44.1 kHz, from arrays",
                f"{s['peak_rss_mb']:.0f} MB",
                limit,
                value=s["peak_rss_mb"],
            )
        )
    notes = ["Peak RSS of each process (ru_maxrss); torch alone takes 250-300 MB of the floor."]
    return h.FamilyResult("memory", figures, data, machine, notes)


if __name__ == "__main__":
    sys.exit(h.family_main("memory", run, add_args, doc=__doc__))
