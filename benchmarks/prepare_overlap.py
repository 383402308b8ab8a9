"""Where preparation should run beside a CPU encoder on a many-core machine.

Usage: ``python -m benchmarks.prepare_overlap [--runs 3] [--rates 44100,16000]``.

On two cores the encoder's threads fill the machine and preparation (decode, resample, trim,
mel) runs in bursts between its batches (:mod:`speakerembed._prefetch`). With many cores the
LSTM no longer scales with its threads, so cores could prepare *beside* it instead. Each
configuration runs ``embed_utterances`` on the throughput set in its own process, alternating
with the encoder alone on the same windows (the limit at that thread count), and is also read
against the encoder alone with every core (the machine's limit):

* torch threads = cores, the default rule (:func:`speakerembed._prefetch.many_core_split`: from
  16 cores, the encoder on three quarters of them for the call, the rest preparing beside it);
* torch threads = cores, bursts on up to 8 threads between encoder batches (the rule on 2 cores);
* cores - cores / 4 torch threads, a prefetch thread driving bursts of cores / 4 threads beside
  the encoder (what the default rule does, set by hand);
* torch threads = cores, bursts on every core.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import _harness as h

__all__ = ["run", "worker_overlap"]


def worker_overlap(cfg: dict[str, Any]) -> dict[str, Any]:
    """One configuration: the pipeline and the encoder alone, alternating."""
    from speakerembed import SpeakerEmbedder

    rate = int(cfg["rate"])
    wavs = h.load_set(h.eval_files(cfg.get("max_files")), rate)
    audio_s = sum(w.shape[0] for w in wavs) / rate
    emb = SpeakerEmbedder("resemblyzer", device="cpu")
    emb._prefetch_depth = cfg["depth"]
    emb._prepare_threads = cfg["prepare"]

    def pipeline() -> None:
        emb.embed_utterances(wavs, sample_rate=rate)

    batches = h.capture_batches(emb, pipeline)

    def encoder() -> None:
        for b in batches:
            emb.encoder(b)

    times = h.rotate({"pipeline": pipeline, "encoder": encoder}, int(cfg["runs"]))
    return {"xrt": {k: audio_s / statistics.median(v) for k, v in times.items()}, "times": times}


def run(opts: argparse.Namespace) -> h.FamilyResult:
    """Measure each configuration at each rate."""
    cores = os.cpu_count() or 1
    runs = opts.runs or (2 if opts.quick else 3)
    max_files = 20 if opts.quick else None
    machine = h.machine_info(cores)
    quarter = max(1, cores // 4)
    configs = [
        (f"{cores} torch threads, the default rule", cores, None, None),
        (f"{cores} torch threads, bursts on {min(cores, 8)} threads (the 2-core rule)", cores, 0, None),
        (
            f"{cores - quarter} torch threads, prefetch of {quarter} threads beside",
            cores - quarter,
            2 * quarter,
            quarter,
        ),
        (f"{cores} torch threads, bursts on {cores} threads", cores, 0, cores),
    ]
    figures: list[h.Figure] = []
    data: dict[str, Any] = {}
    for rate in [int(r) for r in opts.rates.split(",")]:
        limit = None
        for label, threads, depth, prepare in configs:
            cfg = {"rate": rate, "runs": runs, "max_files": max_files, "depth": depth, "prepare": prepare}
            r = h.run_worker("benchmarks.prepare_overlap:worker_overlap", cfg, threads=threads)
            data[f"{rate} {label}"] = r
            if "error" in r:
                figures.append(h.Figure(f"{rate / 1000:g} kHz, {label}", "error", verdict=r["error"][:120]))
                continue
            x = r["xrt"]
            limit = limit or x["encoder"]  # the first configuration uses every core
            figures.append(
                h.Figure(
                    f"{rate / 1000:g} kHz, {label}",
                    f"{x['pipeline']:.0f}x real time ({100 * x['pipeline'] / limit:.0f} % of the "
                    f"{cores}-thread encoder alone)",
                    f"encoder alone at these threads: {x['encoder']:.0f}x; at {cores}: {limit:.0f}x",
                    value=x["pipeline"] / limit,
                )
            )
    return h.FamilyResult("prepare_overlap", figures, data, machine)


def add_args(parser: argparse.ArgumentParser) -> None:
    """--rates."""
    parser.add_argument("--rates", default="44100,16000", help="comma-separated input rates")


if __name__ == "__main__":
    sys.exit(h.family_main("prepare_overlap", run, add_args, doc=__doc__))
