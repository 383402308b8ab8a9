"""Torch versions: the encoder alone and the pipeline, fp32 and bf16, under each torch.

Usage::

    python -m benchmarks.families.torch_versions --torch-python /path/to/torch2.6-env/bin/python

or ``SPEAKEREMBED_BENCH_TORCH_PYTHONS=/a/bin/python:/b/bin/python``. The running interpreter
is always measured. Each interpreter needs speakerembed's dependencies and this checkout on
its path (the harness sets ``PYTHONPATH``).

For each torch: the fp32 pipeline and the fp32 encoder alone at 44.1 kHz (the first 30
utterances of the throughput set, alternating), and a probe of 12 windows (one 10 s clip) in
fp32, in speakerembed's bf16 (module cast: the weights are cast to bfloat16, never autocast)
and, for the record, under ``torch.autocast("cpu", torch.bfloat16)``, which some releases run
pathologically slowly. speakerembed never uses autocast; a bf16 path more than
``PATHOLOGICAL`` times slower than fp32 on a CPU with native bf16 would be flagged.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from benchmarks import _harness as h

__all__ = ["run", "worker_probe"]

PATHOLOGICAL = 3.0


def worker_probe(cfg: dict[str, Any]) -> dict[str, Any]:
    """12 windows through fp32, module-cast bf16 and (recorded only) autocast bf16."""
    import torch

    from speakerembed.stages.encoder import ModuleEncoder, VoiceEncoder

    torch.manual_seed(0)
    module = VoiceEncoder().eval()
    x = torch.randn(12, 160, 40)
    out: dict[str, Any] = {}
    for name, enc in (("fp32", ModuleEncoder(module, "fp32")), ("bf16", ModuleEncoder(module, "bf16"))):
        enc(x)
        times = []
        for _ in range(int(cfg["runs"])):
            t0 = time.perf_counter()
            enc(x)
            times.append(time.perf_counter() - t0)
        out[f"{name}_ms"] = 1000 * statistics.median(times)
    if cfg.get("autocast", True):
        try:
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
                t0 = time.perf_counter()
                module(x)
                out["autocast_bf16_ms"] = 1000 * (time.perf_counter() - t0)
        except RuntimeError as exc:  # oneDNN refuses it on some CPUs
            out["autocast_bf16_error"] = str(exc).splitlines()[0][:120]
    return out


def add_args(parser: argparse.ArgumentParser) -> None:
    """--torch-python (repeatable)."""
    parser.add_argument(
        "--torch-python",
        action="append",
        default=[],
        metavar="PYTHON",
        help="another interpreter (another torch) to measure; repeatable",
    )


def run(opts: argparse.Namespace) -> h.FamilyResult:
    """Measure every interpreter given, and this one."""
    runs = opts.runs or (2 if opts.quick else 5)
    pythons = [sys.executable, *getattr(opts, "torch_python", [])]
    pythons += [p for p in os.environ.get("SPEAKEREMBED_BENCH_TORCH_PYTHONS", "").split(os.pathsep) if p]
    machine = h.machine_info(opts.threads)
    figures: list[h.Figure] = []
    data: dict[str, Any] = {}
    for py in dict.fromkeys(pythons):
        tp = h.run_worker(
            "benchmarks.families.throughput:worker_rotation",
            {"rate": 44_100, "precisions": ["fp32"], "runs": runs, "max_files": 10 if opts.quick else 30},
            python=py,
            threads=opts.threads,
        )
        probe = h.run_worker(
            "benchmarks.families.torch_versions:worker_probe", {"runs": runs}, python=py, threads=opts.threads
        )
        version = tp.get("torch") or probe.get("torch") or py
        data[version] = {"python": py, "throughput": tp, "probe": probe}
        if "error" in tp:
            figures.append(
                h.Figure(f"torch {version}", "error", verdict="not measured: " + tp["error"][:120])
            )
            continue
        x = tp["xrt"]
        figures.append(
            h.Figure(
                f"torch {version}: fp32 pipeline, 44.1 kHz",
                f"{x['pipeline_fp32']:.0f}x real time "
                f"({100 * x['pipeline_fp32'] / x.get('limit_fp32', x['encoder_fp32']):.0f} % of the limit)",
                f"encoder alone: {x.get('limit_fp32', x['encoder_fp32']):.0f}x real time",
                value=x["pipeline_fp32"],
            )
        )
        if "error" not in probe:
            slow = probe["bf16_ms"] / probe["fp32_ms"]
            verdict = "reported"
            if machine["native_bf16"] and slow > PATHOLOGICAL:
                verdict = f"FAIL (bf16 {slow:.1f}x slower than fp32 on a CPU with native bf16)"
            auto = probe.get("autocast_bf16_ms")
            auto_text = "fails" if "autocast_bf16_error" in probe else "—" if auto is None else f"{auto:.0f}"
            figures.append(
                h.Figure(
                    f"torch {version}: 12 windows, fp32 / bf16 (module cast) / autocast bf16",
                    f"{probe['fp32_ms']:.0f} / {probe['bf16_ms']:.0f} / " + auto_text + " ms",
                    "" if machine["native_bf16"] else "bf16 is emulated on this CPU (no avx512_bf16)",
                    verdict=verdict,
                    value=slow,
                )
            )
    notes = ["speakerembed's bf16 casts the module; autocast is timed only to show why it is avoided."]
    return h.FamilyResult("torch_versions", figures, data, machine, notes)


if __name__ == "__main__":
    sys.exit(h.family_main("torch_versions", run, add_args, doc=__doc__))
