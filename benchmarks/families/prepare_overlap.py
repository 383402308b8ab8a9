"""Where preparation should run beside a CPU encoder on a many-core machine.

Usage: ``python -m benchmarks.families.prepare_overlap [--runs 3] [--rates 44100,16000]
[--precisions fp32,bf16]``.

On two cores the encoder runs as two one-thread streams that prepare (decode, resample, trim,
mel) in line, each the batch it pulls (:mod:`speakerembed._engine.streams`). With many cores one
stream preparing at a time cannot keep up with a stream per core. Each configuration runs
``embed_utterances`` on the throughput set in its own process with a torch thread per core,
alternating with the encoder alone on the same windows, run the faster of two ways (one call
on every thread, or one-thread streams: the machine's limit):

* the default rule: a stream per core, and from 8 cores a quarter of the cores preparing in
  bursts beside them (:func:`speakerembed._engine.schedule.preparing_threads`);
* the many-core rule before streams: one call on three quarters of the cores, the other quarter
  preparing beside it (:func:`speakerembed._engine.schedule.many_core_split`; below 16 cores, one call
  on every core with bursts between);
* a stream per core, a quarter of the cores preparing beside (the rule from 8 cores, set by
  hand at any count);
* three quarters of the cores as streams, a quarter preparing beside (no core shared);
* a stream per core, an eighth, and half, of the cores preparing beside;
* a stream per core, preparing in line (the rule below 8 cores).

Run it under ``taskset`` to measure fewer cores than the machine has.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from benchmarks import _harness as h

__all__ = ["run", "worker_overlap"]


def worker_overlap(cfg: dict[str, Any]) -> dict[str, Any]:
    """One configuration: the pipeline and the encoder alone, alternating."""
    from speakerembed import SpeakerEmbedder

    rate = int(cfg["rate"])
    wavs = h.load_set(h.eval_files(cfg.get("max_files")), rate)
    audio_s = sum(w.shape[0] for w in wavs) / rate
    from speakerembed._engine.schedule import Overrides

    overrides = Overrides(
        prefetch_depth=cfg["depth"], prepare_threads=cfg["prepare"], encoder_streams=cfg["streams"]
    )
    emb = SpeakerEmbedder(
        "resemblyzer", device="cpu", precision=cfg.get("precision", "fp32"), _overrides=overrides
    )

    def pipeline() -> None:
        emb.embed_utterances(wavs, sample_rate=rate)

    batches = h.capture_batches(emb, pipeline)
    times = h.rotate({"pipeline": pipeline, **h.encoder_alone(emb, batches)}, int(cfg["runs"]))
    med = {k: statistics.median(v) for k, v in times.items()}
    way, med["limit"] = h.limit_of(med)
    return {"xrt": {k: audio_s / v for k, v in med.items()}, "limit_way": way, "times": times}


def run(opts: argparse.Namespace) -> h.FamilyResult:
    """Measure each configuration at each rate."""
    from speakerembed._engine.schedule import usable_cores

    cores = usable_cores()  # under taskset, the cores it leaves
    runs = opts.runs or (2 if opts.quick else 3)
    max_files = 20 if opts.quick else None
    machine = h.machine_info(cores)
    quarter = max(1, cores // 4)
    eighth = max(1, cores // 8)
    half = max(1, cores // 2)
    before = "one call on torch's threads (the rule before streams)"
    # (label, torch threads, prefetch depth, preparing threads, streams); None picks the default.
    configs = [
        (f"{cores} torch threads, the default rule", cores, None, None, None),
        (before, cores, None, None, 1),
        (f"{cores} streams, {quarter} preparing beside", cores, 2 * quarter, quarter, cores),
        (
            f"{cores - quarter} streams, {quarter} preparing beside",
            cores,
            2 * quarter,
            quarter,
            cores - quarter,
        ),
        (f"{cores} streams, {eighth} preparing beside", cores, 2 * eighth, eighth, cores),
        (f"{cores} streams, {half} preparing beside", cores, 2 * half, half, cores),
        (f"{cores} streams, preparing in line", cores, 0, 1, cores),
    ]
    figures: list[h.Figure] = []
    data: dict[str, Any] = {}
    for precision, rate in [(p, int(r)) for p in opts.precisions.split(",") for r in opts.rates.split(",")]:
        for label, threads, depth, prepare, streams in configs:
            cfg = {
                "rate": rate,
                "runs": runs,
                "max_files": max_files,
                "depth": depth,
                "prepare": prepare,
                "streams": streams,
                "precision": precision,
            }
            r = h.run_worker("benchmarks.families.prepare_overlap:worker_overlap", cfg, threads=threads)
            name = f"{precision} {rate / 1000:g} kHz, {label}"
            data[name] = r
            if "error" in r:
                figures.append(h.Figure(name, "error", verdict=r["error"][:120]))
                continue
            x = r["xrt"]
            ways = f"one call {x['encoder']:.0f}x" + (
                f", {cores} streams {x['encoder_streams']:.0f}x" if "encoder_streams" in x else ""
            )
            figures.append(
                h.Figure(
                    name,
                    f"{x['pipeline']:.0f}x real time ({100 * x['pipeline'] / x['limit']:.0f} % of the "
                    "encoder alone)",
                    f"encoder alone, the faster of: {ways}",
                    value=x["pipeline"] / x["limit"],
                )
            )
    return h.FamilyResult("prepare_overlap", figures, data, machine)


def add_args(parser: argparse.ArgumentParser) -> None:
    """--rates."""
    parser.add_argument("--rates", default="44100,16000", help="comma-separated input rates")
    parser.add_argument("--precisions", default="fp32", help="comma-separated: fp32, bf16")


if __name__ == "__main__":
    sys.exit(h.family_main("prepare_overlap", run, add_args, doc=__doc__))
