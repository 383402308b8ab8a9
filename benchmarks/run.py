"""Run every benchmark family (``nox -s bench``), or some of them, and write the summaries.

Usage::

    python benchmarks/run.py [--only throughput,latency] [--quick] [--runs N] [--threads N]
                             [--torch-python /path/to/other-torch/bin/python]

Each family is a module of this folder over the shared harness (``_harness.py``) and also runs
alone (``python -m benchmarks.families.throughput``). Every family writes
``benchmarks/results/<family>.json``; this script then writes ``benchmarks/results/summary.md``
(every figure beside its limit, target and verdict, and the machine) and
``benchmarks/results/expect.rst`` (what users should expect, included by the docs).
"""

from __future__ import annotations

import argparse
import importlib
import json
import subprocess
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import _harness as h

#: The families, in the order they run. Each module has ``run(opts) -> FamilyResult`` and,
#: optionally, ``add_args(parser)`` for its own options. Register a new family here.
FAMILIES = [
    "throughput",
    "latency",
    "memory",
    "scaling",
    "prepare_overlap",
    "torch_versions",
    "order",
    "metrics_overhead",
    "gpu",
    "serve_load",
    "voices_library",
    "onnx",
    "startup",
]
#: Families whose module has another name than the family (``benchmarks/families/<module>.py``).
MODULE_OF = {"onnx": "onnx_export"}

#: Standalone benchmark scripts run as they are (their output goes to
#: ``benchmarks/results/<name>.txt``): (name, script, extra arguments). The Ray benchmark needs
#: ``speakerembed[ray]`` (``nox -s bench`` installs it).
SCRIPTS: list[tuple[str, str, list[str]]] = [
    ("corpus", "bench_corpus.py", []),
    # Issue 22: the corpus job against in memory in five alternating rounds (median and worst).
    ("corpus_rounds", "bench_corpus.py", ["--rounds", "5", "--workers", "default"]),
    ("ray", "bench_ray.py", []),
    # The "speakers" family (issue 19): clustering 200,000 embeddings (diarization beside it).
    ("speakers_cluster", "speakers_cluster.py", []),
    ("speakers_diarize", "speakers_diarize.py", []),
]


def main() -> int:
    """Run the families asked for and write the summaries."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    h.common_args(parser)
    names = [*FAMILIES, *(s[0] for s in SCRIPTS)]
    parser.add_argument("--only", default=None, help=f"comma-separated: {','.join(names)}")
    parser.add_argument(
        "--report-only", action="store_true", help="rewrite the summaries from the JSON files"
    )
    modules = {
        name: importlib.import_module(f"benchmarks.families.{MODULE_OF.get(name, name)}") for name in FAMILIES
    }
    for module in modules.values():
        if hasattr(module, "add_args"):
            module.add_args(parser)
    opts = parser.parse_args()
    chosen = set(opts.only.split(",")) if opts.only else set(names)
    unknown = chosen - set(names)
    if unknown:
        parser.error(f"unknown families {sorted(unknown)}; choose from {','.join(names)}")
    for name in [f for f in FAMILIES if f in chosen]:
        if not opts.report_only:
            try:
                res = modules[name].run(opts)
            except Exception as exc:  # noqa: BLE001 - one family's failure must not lose the others
                fig = h.Figure(name, "error", verdict=f"not measured: {type(exc).__name__}: {exc}"[:200])
                res = h.FamilyResult(name, [fig], {}, h.machine_info(opts.threads))
            h.print_figures(res)
            h.write_family(res)
    for name, script, extra in SCRIPTS:
        if name in chosen and not opts.report_only:
            print(f"  {script} ...", file=sys.stderr, flush=True)
            path = h.ROOT / "benchmarks" / script
            quick = ["--quick"] if opts.quick and "--quick" in path.read_text() else []
            proc = subprocess.run(
                [sys.executable, str(path), *extra, *quick],
                capture_output=True,
                text=True,
                cwd=str(h.ROOT),
            )
            h.RESULTS.mkdir(parents=True, exist_ok=True)
            (h.RESULTS / f"{name}.txt").write_text(proc.stdout + proc.stderr)
            print(proc.stdout, end="", flush=True)
    results = []
    for name in FAMILIES:
        path = h.RESULTS / f"{name}.json"
        if path.exists():
            d = json.loads(path.read_text())
            figs = [h.Figure(**f) for f in d.pop("figures")]
            results.append(h.FamilyResult(figures=figs, **d))
    h.write_summary(results)
    print(f"\nwrote {h.RESULTS / 'summary.md'} and {h.RESULTS / 'expect.rst'}", file=sys.stderr)
    failed = any(f.verdict == "FAIL" for r in results for f in r.figures)
    return 1 if opts.check and failed else 0


if __name__ == "__main__":
    sys.exit(main())
