"""GPU: the full GPU path against the encoder alone on the GPU; resampling; batch sizes; bf16/fp16.

Usage: ``python -m benchmarks.families.gpu [--runs 5]``. Skipped, with the reason, where torch sees no
CUDA device.

* **Full GPU path** at 44.1 kHz, the default ``Pipeline()`` (libsoxr on the CPU) and
  ``Pipeline(resampler="torchaudio")`` with each ``resample_device`` (``"cpu"``, ``"device"``,
  ``"auto"``), in x real time, against the encoder
  alone on the same windows on the same GPU (alternating, one process).
* **Resampling**: one utterance of 1 to 120 s on the CPU (libsoxr HQ) against the GPU
  (windowed sinc, copy in and out included), and one utterance of 2.5, 10 and 60 s end to end
  each way: where the ``"auto"`` rule's threshold
  (``speakerembed._engine.preparation.AUTO_DEVICE_MIN_SECONDS``) should lie.
* **Batch sizes**: the encoder alone at 16 to 4096 windows per batch, and the full path at 64,
  the default (1024) and 4096; the default with 15 preparing threads instead of 8.
* **Precision**: the encoder alone in fp32, bf16 (speakerembed's module cast) and fp16 (a
  half-precision copy of the module, for the record) at 256, 1024 and 4096 windows, with the
  worst cosine to fp32; what ``precision="auto"`` picks.

The corpus job with decode workers feeding the GPU belongs to the corpus benchmark
(``benchmarks/bench_corpus.py``), run with ``--device cuda`` (and ``--workers 0,2,4,8,default``).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
from pathlib import Path
from typing import Any, cast

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from benchmarks import _harness as h

__all__ = ["run", "worker_gpu"]


def worker_gpu(cfg: dict[str, Any]) -> dict[str, Any]:
    """Every GPU figure, in one process."""
    import numpy as np
    import torch

    if not torch.cuda.is_available():
        return {"skipped": "no CUDA device visible to torch on this machine: GPU figures not measured"}
    from speakerembed import Pipeline, SpeakerEmbedder
    from speakerembed._engine.schedule import Overrides
    from speakerembed.stages.resample import SincResampler, resample

    runs = int(cfg["runs"])

    def sync_time(fn: Any, n: int = runs) -> float:
        def call() -> None:
            fn()
            torch.cuda.synchronize()

        return h.median_time(call, n, warmup=2)[0]

    out: dict[str, Any] = {
        "device": torch.cuda.get_device_name(0),
        "bf16_supported": torch.cuda.is_bf16_supported(),
    }
    wavs = h.load_set(h.eval_files(), 44_100)
    audio_s = sum(w.shape[0] for w in wavs) / 44_100
    full: dict[str, Any] = {}
    real: Any = None  # the real speech windows the first setup sent to the encoder
    # label: (pipeline, precision, threads preparing utterances; None for the default).
    setups: dict[str, tuple[Any, str, int | None]] = {
        "default (soxr_hq on the CPU, 1024-window batches)": (Pipeline(), "fp32", None),
        "default, max_windows_per_batch=64": (Pipeline(max_windows_per_batch=64), "fp32", None),
        "default, max_windows_per_batch=4096": (Pipeline(max_windows_per_batch=4096), "fp32", None),
        "default, 15 preparing threads": (Pipeline(), "fp32", 15),
        "default, precision='auto'": (Pipeline(), "auto", None),
    }
    for rule in ("cpu", "device", "auto"):
        pipe = Pipeline(resampler="torchaudio", resample_device=rule)
        setups[f"torchaudio, resample_device={rule!r}"] = (pipe, "fp32", None)
    for label, (pipe, precision, threads) in setups.items():
        emb = SpeakerEmbedder(
            "resemblyzer",
            device="cuda",
            pipeline=pipe,
            precision=cast(Any, precision),
            _overrides=Overrides(prepare_threads=threads),
        )
        if precision == "auto":
            out["auto_precision"] = f"{emb.encoder.precision} ({emb.encoder.precision_reason})"

        def pipeline(e: Any = emb) -> None:
            e.embed_utterances(wavs, sample_rate=44_100)
            torch.cuda.synchronize()

        batches = h.capture_batches(emb, pipeline)

        def encoder(e: Any = emb, bs: list[Any] = batches) -> None:
            for b in bs:
                e.encoder(b)
            torch.cuda.synchronize()

        times = h.rotate({"pipeline": pipeline, "encoder": encoder}, runs)
        full[label] = {k: audio_s / statistics.median(v) for k, v in times.items()}
        real = real if real is not None else torch.cat(batches)
    out["full_path_xrt"] = full
    resampling: dict[str, Any] = {}
    long = np.concatenate(wavs)
    for seconds in (1, 2.5, 5, 10, 30, 60, 120):
        part = np.ascontiguousarray(long[: int(seconds * 44_100)])
        res = SincResampler.get(44_100, 16_000, torch.device("cuda"))

        def on_cpu(a: Any = part) -> None:
            resample(a, 44_100, 16_000)

        def on_gpu(a: Any = part, r: Any = res) -> None:
            r(torch.from_numpy(a).cuda()).cpu()

        cpu = h.median_time(on_cpu, runs, 1)[0]
        resampling[str(seconds)] = {"cpu_ms": 1000 * cpu, "gpu_ms": 1000 * sync_time(on_gpu)}
    out["resampling"] = resampling
    # One utterance end to end (latency): libsoxr on the CPU against the sinc on the GPU.
    latency: dict[str, Any] = {}
    for seconds in (2.5, 10, 60):
        part = np.ascontiguousarray(long[: int(seconds * 44_100)])
        row = {}
        for name, pipe in (
            ("soxr_hq", Pipeline()),
            ("torchaudio_device", Pipeline(resampler="torchaudio", resample_device="device")),
        ):
            e1 = SpeakerEmbedder("resemblyzer", device="cuda", pipeline=pipe)

            def one(e: Any = e1, a: Any = part) -> None:
                e.embed_utterances([a], sample_rate=44_100)

            row[name] = 1000 * h.median_time(one, max(runs, 9), 2)[0]
        latency[str(seconds)] = row
    out["latency_ms"] = latency
    emb = SpeakerEmbedder("resemblyzer", device="cuda")
    batch_sizes: dict[str, float] = {}
    # Real windows (repeated to fill the largest batch): random data would not be speech.
    pool = real.repeat(1 + 4096 // real.shape[0], 1, 1)
    for b in (16, 64, 256, 1024, 4096):
        windows = pool[:b].contiguous()

        def encode(w: Any = windows) -> None:
            emb.encoder(w)

        batch_sizes[str(b)] = b * 1.6 / sync_time(encode)
    out["encoder_xrt_by_batch"] = batch_sizes
    probe = pool[:256].contiguous()
    ref = emb.encoder(probe)
    precisions: dict[str, Any] = {}
    for name, size in [(n, b) for b in (256, 1024, 4096) for n in ("fp32", "bf16", "fp16")]:
        probe = pool[:size].contiguous()
        ref = emb.encoder(probe)
        enc: Any
        if name == "fp16":
            half = copy.deepcopy(emb.encoder.module).half()

            def enc(w: Any, m: Any = half) -> Any:
                with torch.inference_mode():
                    y = m(w.half()).float()
                return y / torch.linalg.norm(y, dim=1, keepdim=True)

        else:
            enc = SpeakerEmbedder("resemblyzer", device="cuda", precision=cast(Any, name)).encoder

        def timed(e: Any = enc, w: Any = probe) -> None:
            e(w)

        t = sync_time(timed)
        cos = float((enc(probe) * ref).sum(dim=1).min())
        precisions[f"{name}, {size} windows"] = {"xrt": size * 1.6 / t, "min_cosine": cos}
    out["precision"] = precisions
    return out


def run(opts: argparse.Namespace) -> h.FamilyResult:
    """Measure the GPU figures, or report why they were skipped."""
    runs = opts.runs or (2 if opts.quick else 5)
    machine = h.machine_info(opts.threads)
    r = h.run_worker("benchmarks.families.gpu:worker_gpu", {"runs": runs}, threads=opts.threads)
    if "skipped" in r or "error" in r:
        why = r.get("skipped") or r["error"]
        return h.FamilyResult("gpu", [h.Figure("GPU", "—", verdict=f"skipped: {why}")], r, machine)
    figures = []
    for rule, v in r["full_path_xrt"].items():
        figures.append(
            h.Figure(
                f"{r['device']}: full GPU path, 44.1 kHz, {rule}",
                f"{v['pipeline']:.0f}x real time ({100 * v['pipeline'] / v['encoder']:.0f} % of the limit)",
                f"encoder alone on the GPU: {v['encoder']:.0f}x real time",
                value=v["pipeline"] / v["encoder"],
            )
        )
    for seconds, v in r["resampling"].items():
        figures.append(
            h.Figure(
                f"resample {seconds} s at 44.1 kHz: CPU (soxr HQ) / GPU (sinc, copies included)",
                f"{v['cpu_ms']:.1f} / {v['gpu_ms']:.1f} ms",
            )
        )
    figures.append(
        h.Figure(
            "encoder alone by batch size (" + " / ".join(r["encoder_xrt_by_batch"]) + " windows)",
            " / ".join(f"{v:.0f}x" for v in r["encoder_xrt_by_batch"].values()) + " real time",
        )
    )
    for seconds, v in r.get("latency_ms", {}).items():
        figures.append(
            h.Figure(
                f"one {seconds} s utterance at 44.1 kHz, end to end: soxr_hq on the CPU / sinc on the GPU",
                f"{v['soxr_hq']:.1f} / {v['torchaudio_device']:.1f} ms",
            )
        )
    if "auto_precision" in r:
        figures.append(h.Figure("precision='auto' on this GPU picks", r["auto_precision"]))
    for name, v in r["precision"].items():
        figures.append(
            h.Figure(
                f"encoder alone, {name}",
                f"{v['xrt']:.0f}x real time, worst cosine to fp32 {v['min_cosine']:.5f}",
            )
        )
    return h.FamilyResult("gpu", figures, r, machine)


if __name__ == "__main__":
    sys.exit(h.family_main("gpu", run, doc=__doc__))
