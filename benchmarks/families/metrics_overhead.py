"""Metrics overhead: what recording Prometheus metrics costs (runs ``bench_metrics.py``).

Usage: ``python -m benchmarks.families.metrics_overhead [--runs 5]``. Target: the time spent inside the
recorder is at most 2 % of the embedding time (the wall-clock difference is reported too, but
it is too noisy on a shared machine to judge).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from benchmarks import _harness as h

__all__ = ["run"]

TARGET = 0.02


def run(opts: argparse.Namespace) -> h.FamilyResult:
    """Run bench_metrics.py in a subprocess and read its figures."""
    runs = opts.runs or (2 if opts.quick else 5)
    machine = h.machine_info(opts.threads)
    cmd = [sys.executable, str(h.ROOT / "benchmarks" / "bench_metrics.py"), "--json", "--runs", str(runs)]
    cmd += ["--threads", str(opts.threads)] + (["--per-speaker", "3"] if opts.quick else [])
    env = {**os.environ, "PYTHONPATH": str(h.ROOT), "OMP_NUM_THREADS": str(opts.threads)}
    print("  bench_metrics.py ...", file=sys.stderr, flush=True)
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=str(h.ROOT), env=env)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        fig = h.Figure("metrics overhead", "error", verdict="not measured: " + " | ".join(tail))
        return h.FamilyResult("metrics_overhead", [fig], {}, machine)
    r = json.loads(line[len("RESULT ") :])
    figures = [
        h.Figure(
            "time inside the metrics recorder",
            f"{100 * r['inside_share']:.3f} % of the embedding time ({r['hook_us']:.1f} µs per hook)",
            f"embedding without metrics: {r['base_s']:.2f} s",
            f"≤ {100 * TARGET:.0f} %",
            h.check_ratio(r["inside_share"], TARGET, higher=False),
            r["inside_share"],
        ),
        h.Figure(
            "wall-clock difference with a registry (noisy)",
            f"{100 * r['wall_overhead']:+.1f} %",
            value=r["wall_overhead"],
        ),
    ]
    return h.FamilyResult("metrics_overhead", figures, r, machine)


if __name__ == "__main__":
    sys.exit(h.family_main("metrics_overhead", run, doc=__doc__))
