"""GPU: the full GPU path against the encoder alone on the GPU; resampling; batch sizes; bf16/fp16.

Usage: ``python -m benchmarks.families.gpu [--runs 5] [--gpu-part all|process-fed] [--gpu-files 10000]``.
Skipped, with the reason, where torch sees no CUDA device.

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

* **The process-fed path** (``--gpu-part process-fed`` runs it alone, in about a minute and a
  half): ``embed_utterances`` on a list of ``--gpu-files`` files of 2 to 5 s (``benchmarks/_corpus.py``,
  four formats and rates), prepared in worker processes whose mels come back through shared
  memory (``speakerembed._engine.processes``), with the default count of workers and with 8, and
  the corpus job (``embed_corpus``) on the same files; in x real time against the ceiling of the
  host's cores alone: one core preparing a sample of the files (decode, resample, trim, mel, one
  torch thread) times the usable cores. Targets: at least 0.80 of the ceiling, and 10,000x real
  time on a 16-core H200. The threads of one process (``Overrides(prepare_processes=0)``) are
  the comparison.

The corpus job's other settings (``--workers 0,2,4,8,default``) belong to the corpus benchmark
(``benchmarks/bench_corpus.py --device cuda``).
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

__all__ = ["add_args", "run", "worker_gpu", "worker_process_fed"]

#: The process-fed path's targets: a share of the ceiling of the host's cores, and x real time.
CEILING_SHARE_TARGET = 0.80
XRT_TARGET = 10_000


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


def worker_process_fed(cfg: dict[str, Any]) -> dict[str, Any]:
    """The process-fed path against the ceiling of the host's cores, in one process."""
    import tempfile
    import time

    import soundfile as sf
    import torch

    if not torch.cuda.is_available():
        return {"skipped": "no CUDA device visible to torch on this machine: GPU figures not measured"}
    from benchmarks._corpus import build_corpus
    from speakerembed import SpeakerEmbedder, embed_corpus
    from speakerembed._engine.prefetch import torch_threads
    from speakerembed._engine.preparation import Preparer
    from speakerembed._engine.schedule import Overrides, usable_cores

    n_files = int(cfg["files"])
    out: dict[str, Any] = {"device": torch.cuda.get_device_name(0), "files": n_files}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "in"
        audio_s = build_corpus(folder, n_files)
        paths = sorted(str(p) for p in folder.rglob("*.*"))
        out["audio_s"] = audio_s
        emb = SpeakerEmbedder("resemblyzer", device="cuda")
        cores = usable_cores()
        # The ceiling: one core preparing alone (one torch thread), times the usable cores.
        sample = paths[:: max(1, len(paths) // 400)]
        sample_s = sum(sf.info(p).duration for p in sample)
        cpu = Preparer(torch.device("cpu"))
        with torch_threads(1):
            t0 = time.perf_counter()
            for i, p in enumerate(sample):
                cpu.prepare(i, p, None, emb.pipeline)
            one_core = sample_s / (time.perf_counter() - t0)
        out["cores"] = cores
        out["one_core_xrt"] = one_core
        out["ceiling_xrt"] = one_core * cores
        emb.embed_utterances(paths[:64])  # CUDA and cuDNN warm
        out["default_workers"] = emb.engine.prepare_processes(paths, emb.pipeline)
        setups = {
            "embed_utterances, default workers": emb,
            "embed_utterances, 8 workers": SpeakerEmbedder(
                "resemblyzer", device="cuda", _overrides=Overrides(prepare_processes=8)
            ),
            "embed_utterances, threads in one process": SpeakerEmbedder(
                "resemblyzer", device="cuda", _overrides=Overrides(prepare_processes=0)
            ),
        }
        xrt: dict[str, float] = {}
        for label, e in setups.items():
            t0 = time.perf_counter()
            e.embed_utterances(paths)
            torch.cuda.synchronize()
            xrt[label] = audio_s / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        embed_corpus(paths, Path(tmp) / "out", embedder=emb, progress="off")
        xrt["corpus job, default workers"] = audio_s / (time.perf_counter() - t0)
        out["xrt"] = xrt
    return out


def _process_fed_figures(r: dict[str, Any]) -> list[h.Figure]:
    if "skipped" in r or "error" in r:
        why = r.get("skipped") or r["error"]
        return [h.Figure("GPU, process-fed path", "—", verdict=f"skipped: {why}")]
    ceiling = r["ceiling_xrt"]
    figures = []
    for label, v in r["xrt"].items():
        share = v / ceiling
        measured = f"{v:,.0f}x real time ({share:.2f} of the ceiling)"
        if "threads" in label:
            figures.append(h.Figure(f"{r['device']}: {label}, {r['files']:,} files", measured))
            continue
        verdict = h.check_ratio(share, CEILING_SHARE_TARGET)
        if verdict == "pass" and r["cores"] >= 16:
            verdict = h.check_ratio(v, XRT_TARGET)
        workers = r["default_workers"] if "default" in label else 8
        figures.append(
            h.Figure(
                f"{r['device']}: {label} ({workers}), {r['files']:,} files of 2-5 s",
                measured,
                f"the host's {r['cores']} cores preparing alone: {ceiling:,.0f}x "
                f"({r['one_core_xrt']:,.0f}x a core)",
                f">= {CEILING_SHARE_TARGET:.2f} of it"
                + (f", >= {XRT_TARGET:,}x" if r["cores"] >= 16 else ""),
                verdict=verdict,
                value=share,
            )
        )
    return figures


def run(opts: argparse.Namespace) -> h.FamilyResult:
    """Measure the GPU figures, or report why they were skipped."""
    runs = opts.runs or (2 if opts.quick else 5)
    machine = h.machine_info(opts.threads)
    files = getattr(opts, "gpu_files", None) or (2_000 if opts.quick else 10_000)
    fed_cfg = {"files": files}
    if getattr(opts, "gpu_part", "all") == "process-fed":
        fed = h.run_worker("benchmarks.families.gpu:worker_process_fed", fed_cfg, threads=opts.threads)
        return h.FamilyResult("gpu", _process_fed_figures(fed), {"process_fed": fed}, machine)
    r = h.run_worker("benchmarks.families.gpu:worker_gpu", {"runs": runs}, threads=opts.threads)
    if "skipped" in r or "error" in r:
        why = r.get("skipped") or r["error"]
        return h.FamilyResult("gpu", [h.Figure("GPU", "—", verdict=f"skipped: {why}")], r, machine)
    fed = h.run_worker("benchmarks.families.gpu:worker_process_fed", fed_cfg, threads=opts.threads)
    r["process_fed"] = fed
    figures = _process_fed_figures(fed)
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


def add_args(parser: argparse.ArgumentParser) -> None:
    """The family's own options."""
    parser.add_argument(
        "--gpu-part",
        choices=("all", "process-fed"),
        default="all",
        help="every GPU figure (default), or the process-fed path alone",
    )
    parser.add_argument(
        "--gpu-files", type=int, default=None, help="files for the process-fed path (default 10,000)"
    )


if __name__ == "__main__":
    sys.exit(h.family_main("gpu", run, add_args, doc=__doc__))
