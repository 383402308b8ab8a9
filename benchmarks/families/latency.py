"""Latency: one 10 s clip against the encoder time of that clip's own windows; start-up.

Usage: ``python -m benchmarks.families.latency [--runs 30] [--quick]``.

* **One 10 s clip** (real speech, at 16, 44.1 and 48 kHz): median wall time of
  ``embed_utterances(clip)`` against the median time of the encoder alone on the windows that
  call produced (captured, then replayed; the faster of one call on every thread and
  one-thread streams), alternating in one process. Target: at most 1.15x.
* **Start-up** (reported): ``import speakerembed`` (and whether it loads torch), ``speakerembed
  --help``, and a cold process to a first embedding of a 5 s file.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from benchmarks import _harness as h

__all__ = ["run", "worker_clip"]

CLIP_TARGET = 1.15


def worker_clip(cfg: dict[str, Any]) -> dict[str, Any]:
    """Median latency of one 10 s clip, and of the encoder alone on its windows."""
    from speakerembed import SpeakerEmbedder

    rate = int(cfg["rate"])
    clip = h.clip_10s(rate)
    emb = SpeakerEmbedder("resemblyzer", device="cpu", precision=cfg.get("precision", "fp32"))

    def pipeline() -> None:
        emb.embed_utterances(clip, sample_rate=rate)

    batches = h.capture_batches(emb, pipeline)
    times = h.rotate({"clip": pipeline, **h.encoder_alone(emb, batches)}, int(cfg["runs"]), warmup=5)
    med = {k: statistics.median(v) for k, v in times.items()}
    way, limit = h.limit_of(med)
    return {
        "rate": rate,
        "n_windows": sum(int(b.shape[0]) for b in batches),
        "median_ms": {k: 1000 * v for k, v in med.items()},
        "limit_way": way,
        "ratio": med["clip"] / limit,
    }


def startup(runs: int) -> dict[str, Any]:
    """Cold-start times, each in fresh processes (medians)."""
    import numpy as np
    import soundfile as sf

    py = sys.executable
    env_code = (
        "import time, sys; t = time.perf_counter(); import speakerembed; "
        "print(time.perf_counter() - t, 'torch' in sys.modules)"
    )
    vals, torch_loaded = [], False
    for _ in range(runs):
        out = subprocess.run(
            [py, "-c", env_code], capture_output=True, text=True, check=True, cwd=str(h.ROOT)
        ).stdout.split()
        vals.append(float(out[0]))
        torch_loaded |= out[1] == "True"
    res: dict[str, Any] = {"import_s": statistics.median(vals), "import_loads_torch": torch_loaded}
    vals = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([py, "-m", "speakerembed", "--help"], capture_output=True, check=True, cwd=str(h.ROOT))
        vals.append(time.perf_counter() - t0)
    res["help_s"] = statistics.median(vals)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "five_seconds.wav"
        sf.write(str(path), np.asarray(h.clip_10s(44_100)[: 5 * 44_100]), 44_100)
        code = (
            f"from speakerembed import embed_speaker; embed_speaker({str(path)!r}, "
            "weights='resemblyzer', device='cpu')"
        )
        vals = []
        for _ in range(runs):
            t0 = time.perf_counter()
            subprocess.run([py, "-c", code], capture_output=True, check=True, cwd=str(h.ROOT))
            vals.append(time.perf_counter() - t0)
    res["first_embedding_s"] = statistics.median(vals)
    return res


def run(opts: argparse.Namespace) -> h.FamilyResult:
    """Measure the latency figures."""
    runs = opts.runs or (10 if opts.quick else 30)
    machine = h.machine_info(opts.threads)
    figures: list[h.Figure] = []
    data: dict[str, Any] = {}
    for rate in h.RATES:
        r = h.run_worker(
            "benchmarks.families.latency:worker_clip", {"rate": rate, "runs": runs}, threads=opts.threads
        )
        data[f"clip_{rate}"] = r
        name = f"one 10 s clip, {rate / 1000:g} kHz, fp32, median"
        if "error" in r:
            figures.append(h.Figure(name, "error", verdict="not measured: " + r["error"][:120]))
            continue
        ms = r["median_ms"]
        figures.append(
            h.Figure(
                name,
                f"{ms['clip']:.1f} ms ({r['ratio']:.2f}x the limit)",
                f"encoder alone on its {r['n_windows']} windows: {ms[r['limit_way']]:.1f} ms"
                + (" (one-thread streams)" if r["limit_way"] == "encoder_streams" else ""),
                f"≤ {CLIP_TARGET}x the limit",
                h.check_ratio(r["ratio"], CLIP_TARGET, higher=False),
                r["ratio"],
            )
        )
    st = startup(3 if opts.quick else 5)
    data["startup"] = st
    figures.append(
        h.Figure(
            "import speakerembed",
            f"{st['import_s']:.3f} s" + (" (loads torch)" if st["import_loads_torch"] else ", no torch"),
            target="< 0.3 s, no torch",
            verdict="FAIL" if st["import_loads_torch"] else h.check_ratio(st["import_s"], 0.3, higher=False),
            value=st["import_s"],
        )
    )
    figures.append(
        h.Figure(
            "speakerembed --help",
            f"{st['help_s']:.3f} s",
            target="< 0.5 s",
            verdict=h.check_ratio(st["help_s"], 0.5, higher=False),
            value=st["help_s"],
        )
    )
    figures.append(
        h.Figure(
            "cold process to a first embedding (5 s file)",
            f"{st['first_embedding_s']:.2f} s",
            "mostly importing torch and loading the weights",
            value=st["first_embedding_s"],
        )
    )
    notes = [f"Clip latencies: median of {runs} alternating runs after 5 warm-up runs, in one process."]
    return h.FamilyResult("latency", figures, data, machine, notes)


if __name__ == "__main__":
    sys.exit(h.family_main("latency", run, doc=__doc__))
