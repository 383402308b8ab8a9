"""Throughput: the whole pipeline against the encoder alone, at 16, 44.1 and 48 kHz.

Usage: ``python -m benchmarks.families.throughput [--runs 5] [--quick]``.

The limit is the encoder alone on *the same windows* the pipeline produced (captured from one
pipeline run and replayed through the same encoder), timed in the same process, alternating
with the pipeline, and run the faster of two ways: one call per batch on every torch thread,
or the batches shared between one-thread streams (what the pipeline does on a CPU; on 2
cores the LSTM runs faster so). Targets, all relative to that limit in the same run:

* fp32: at least 95 % of the encoder-alone throughput at 16, 44.1 and 48 kHz;
* bf16, on CPUs with avx512_bf16 (or AMX): at least 90 % of the bf16 encoder limit, at least
  1.35x the fp32 pipeline, and a cosine of at least 0.999 to fp32 on every utterance. Elsewhere
  the speed targets are "not applicable" (the flags read are printed); the cosine is measured
  everywhere.

Data: LibriSpeech test-other, VCTK and LJ Speech from ``../shared/data/speech`` (86 utterances,
about 670 s), resampled with libsoxr HQ to the rate under test.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from benchmarks import _harness as h

__all__ = ["run", "worker_rotation"]

FP32_TARGET = 0.95
BF16_OF_LIMIT = 0.90
BF16_SPEEDUP = 1.35
BF16_COSINE = 0.999


def worker_rotation(cfg: dict[str, Any]) -> dict[str, Any]:
    """Pipeline and encoder-alone at one rate, for each precision, timed alternately."""
    import numpy as np

    from speakerembed import SpeakerEmbedder
    from speakerembed._engine.schedule import Overrides

    rate = int(cfg["rate"])
    wavs = h.load_set(h.eval_files(cfg.get("max_files")), rate)
    audio_s = sum(w.shape[0] for w in wavs) / rate
    fns: dict[str, Any] = {}
    embeddings: dict[str, Any] = {}
    n_windows = 0
    for prec in cfg["precisions"]:
        emb = SpeakerEmbedder("resemblyzer", device="cpu", precision=prec)
        holder: dict[str, Any] = {}

        def pipeline(e: Any = emb, out: dict[str, Any] = holder) -> None:
            out["emb"] = e.embed_utterances(wavs, sample_rate=rate)

        batches = h.capture_batches(emb, pipeline)
        embeddings[prec] = holder["emb"]
        n_windows = sum(int(b.shape[0]) for b in batches)

        fns[f"pipeline_{prec}"] = pipeline
        if prec == "fp32" and cfg.get("one_call") and emb.engine.schedule(len(wavs)).streams > 1:
            # The way before encoder streams: one call on every thread, bursts between calls.
            single = SpeakerEmbedder(
                "resemblyzer", device="cpu", precision=prec, _overrides=Overrides(encoder_streams=1)
            )
            fns["pipeline_fp32_one_call"] = lambda e=single: e.embed_utterances(wavs, sample_rate=rate)
        for way, fn in h.encoder_alone(emb, batches).items():
            fns[f"encoder_{prec}" + way.removeprefix("encoder")] = fn
        if "prepare" not in fns:
            fns["prepare"] = h.preparation_alone(emb, wavs, rate)
    times = h.rotate(fns, int(cfg["runs"]), warmup=int(cfg.get("warmup", 1)))
    med = {k: float(np.median(v)) for k, v in times.items()}
    limit_way: dict[str, str] = {}
    for prec in cfg["precisions"]:
        # The limit: the faster way to run the encoder alone (one call on every thread, or
        # one-thread streams).
        limit_way[prec], med[f"limit_{prec}"] = h.limit_of(med, f"encoder_{prec}")
    cores = int(cfg.get("threads", 1))
    ceiling = {
        prec: h.ceiling_share(med[f"limit_{prec}"], med["prepare"], cores) for prec in cfg["precisions"]
    }
    out: dict[str, Any] = {
        "limit_way": limit_way,
        "ceiling": ceiling,
        "cores": cores,
        "rate": rate,
        "audio_s": audio_s,
        "n_utterances": len(wavs),
        "n_windows": n_windows,
        "median_s": med,
        "xrt": {k: audio_s / v for k, v in med.items()},
        "times": times,
    }
    if "fp32" in embeddings and "bf16" in embeddings:
        cos = np.sum(embeddings["fp32"] * embeddings["bf16"], axis=1)
        out["bf16_min_cosine"] = float(cos.min())
    return out


def _limit_text(r: dict[str, Any], prec: str) -> str:
    """The limit, and both ways of running the encoder alone that it is the faster of."""
    xrt = r["xrt"]
    ways = [f"one call on every thread {xrt[f'encoder_{prec}']:.0f}x"]
    if f"encoder_{prec}_streams" in xrt:
        ways.append(f"one-thread streams {xrt[f'encoder_{prec}_streams']:.0f}x")
    return f"encoder alone: {xrt[f'limit_{prec}']:.0f}x real time ({'; '.join(ways)})"


def _ceiling_text(r: dict[str, Any], prec: str) -> str:
    """The pipeline's ceiling: the limit plus the preparation's CPU time over every core."""
    return (
        f"the preparation's CPU time ({r['xrt']['prepare']:.0f}x real time on one thread) "
        f"leaves at most {100 * r['ceiling'][prec]:.0f} % on {r['cores']} cores"
    )


def _ratio_figure(name: str, r: dict[str, Any], kind: str, target: float, prec: str) -> h.Figure:
    if "error" in r:
        return h.Figure(name, "error", verdict="not measured: " + r["error"][:120])
    x, lim = r["xrt"][kind], r["xrt"][f"limit_{prec}"]
    share = x / lim
    return h.Figure(
        name,
        f"{x:.0f}x real time ({100 * share:.0f} % of the limit; {_ceiling_text(r, prec)})",
        _limit_text(r, prec),
        f"≥ {100 * target:.0f} % of the limit",
        h.check_ratio(share, target),
        share,
    )


def run(opts: argparse.Namespace) -> h.FamilyResult:
    """Measure the throughput figures."""
    runs = opts.runs or (2 if opts.quick else 5)
    max_files = 20 if opts.quick else None
    machine = h.machine_info(opts.threads)
    figures: list[h.Figure] = []
    data: dict[str, Any] = {}
    for rate in h.RATES:
        r = h.run_worker(
            "benchmarks.families.throughput:worker_rotation",
            {"rate": rate, "precisions": ["fp32"], "runs": runs, "max_files": max_files, "one_call": True},
            threads=opts.threads,
        )
        data[f"fp32_{rate}"] = r
        figures.append(
            _ratio_figure(f"fp32 pipeline, {rate / 1000:g} kHz", r, "pipeline_fp32", FP32_TARGET, "fp32")
        )
        if "error" not in r and "pipeline_fp32_one_call" in r["xrt"]:
            x, old = r["xrt"]["pipeline_fp32"], r["xrt"]["pipeline_fp32_one_call"]
            figures.append(
                h.Figure(
                    f"fp32 pipeline, {rate / 1000:g} kHz, against one call on every thread",
                    f"{x / old:.2f}x",
                    f"one call on every thread, bursts between (before streams): {old:.0f}x real time",
                    verdict="reported",
                    value=x / old,
                )
            )
    native = machine["native_bf16"]
    flags = " ".join(sorted(f for f in h.cpu_flags() if f.startswith(("avx", "amx")))) or "none"
    na = f"not applicable: no avx512_bf16 or amx_bf16 on this CPU (flags read: {flags})"
    # Where bf16 is emulated it is several times slower than fp32: one run measures the cosine
    # (which does not depend on the hardware) and shows the slowdown.
    r = h.run_worker(
        "benchmarks.families.throughput:worker_rotation",
        {
            "rate": 44_100,
            "precisions": ["fp32", "bf16"],
            "runs": runs if native else 1,
            "warmup": 1 if native else 0,
            "max_files": max_files,
        },
        threads=opts.threads,
    )
    data["bf16_44100"] = r
    if "error" in r:
        figures.append(h.Figure("bf16, 44.1 kHz", "error", verdict="not measured: " + r["error"][:120]))
    else:
        xrt = r["xrt"]
        share = xrt["pipeline_bf16"] / xrt["limit_bf16"]
        speedup = xrt["pipeline_bf16"] / xrt["pipeline_fp32"]
        figures.append(
            h.Figure(
                "bf16 pipeline, 44.1 kHz",
                f"{xrt['pipeline_bf16']:.0f}x real time ({100 * share:.0f} % of the limit; "
                f"{_ceiling_text(r, 'bf16')})",
                "bf16 " + _limit_text(r, "bf16"),
                f"≥ {100 * BF16_OF_LIMIT:.0f} % of the limit",
                h.check_ratio(share, BF16_OF_LIMIT) if native else na,
                share,
            )
        )
        figures.append(
            h.Figure(
                "bf16 pipeline against the fp32 pipeline, 44.1 kHz",
                f"{speedup:.2f}x",
                f"fp32 pipeline: {xrt['pipeline_fp32']:.0f}x real time",
                f"≥ {BF16_SPEEDUP:.2f}x",
                h.check_ratio(speedup, BF16_SPEEDUP) if native else na,
                speedup,
            )
        )
        cos = r.get("bf16_min_cosine")
        figures.append(
            h.Figure(
                f"bf16 cosine to fp32, worst of {r['n_utterances']} utterances",
                f"{cos:.5f}",
                "",
                f"≥ {BF16_COSINE}",
                h.check_ratio(cos, BF16_COSINE),
                cos,
            )
        )
    notes = [
        "Limit: the encoder alone on the windows the pipeline produced, run the faster of two "
        "ways (one call per batch on every torch thread, or the batches shared between "
        "one-thread streams), in the same process, alternating with the pipeline; median of "
        f"{runs} runs. Data: "
        f"{data['fp32_16000'].get('n_utterances', '?')} utterances of LibriSpeech test-other, "
        "VCTK and LJ Speech."
    ]
    if not native:
        notes.append(f"bf16 speed targets {na}; bf16 was timed in a single run.")
    return h.FamilyResult("throughput", figures, data, machine, notes)


if __name__ == "__main__":
    sys.exit(h.family_main("throughput", run, doc=__doc__))
