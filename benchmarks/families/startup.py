"""Start-up: what a command-line user waits for before the first embedding, beside ``--help``.

Usage: ``python -m benchmarks.families.startup [--runs 5] [--quick]``.

Every figure is the wall time of a fresh process, medians of interleaved rounds (so the load of
a shared machine hits every command alike):

* ``python -c pass``, the interpreter alone, and ``python -c "import torch"``, the floor under
  any command that embeds;
* ``import speakerembed`` and ``import speakerembed.cli``;
* ``speakerembed --help`` (target: under 0.5 s, with neither torch nor pyarrow imported);
* ``speakerembed embed examples/audio/alice_1.wav -o X.npy --weights resemblyzer``: import,
  weights load and the first embedding, end to end (target: at most 1.0 s beyond the torch
  import measured in the same rounds).

Then one process times its stages (import of the CLI, of torch, the weights load, the first
and a second embedding), and ``python -X importtime`` names the top-level imports of the
``embed`` command by their cumulative time.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import _harness as h

__all__ = ["run"]

#: ``speakerembed --help``, in seconds.
HELP_TARGET_S = 0.5
#: The first embedding of the ``embed`` command, in seconds beyond ``import torch``.
FIRST_EMBED_OVER_TORCH_S = 1.0
CLIP = h.ROOT / "examples" / "audio" / "alice_1.wav"
HEAVY = ("torch", "pyarrow")

_STAGES = """
import json, sys, time
t0 = time.perf_counter()
import speakerembed.cli
t1 = time.perf_counter()
import torch
t2 = time.perf_counter()
from speakerembed import SpeakerEmbedder
embedder = SpeakerEmbedder("resemblyzer", device="cpu")
t3 = time.perf_counter()
embedder.embed_speaker([sys.argv[1]])
t4 = time.perf_counter()
embedder.embed_speaker([sys.argv[1]])
t5 = time.perf_counter()
print(json.dumps({"import speakerembed.cli": t1 - t0, "import torch": t2 - t1,
                  "weights load": t3 - t2, "first embedding": t4 - t3, "second embedding": t5 - t4}))
"""

_MODULES = """
import json, runpy, sys
sys.argv = ["speakerembed", "--help"]
try:
    runpy.run_module("speakerembed", run_name="__main__")
except SystemExit:
    pass
print(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)), file=sys.stderr)
"""


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(h.ROOT)}


def _wall(cmd: list[str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(), cwd=str(h.ROOT))
    took = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[1:])} exited {proc.returncode}: {proc.stderr.strip()[-300:]}")
    return took


def _top_imports(cmd: list[str], n: int = 6) -> list[tuple[str, float]]:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", *cmd],
        capture_output=True,
        text=True,
        env=_env(),
        cwd=str(h.ROOT),
    )
    top: dict[str, float] = {}
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        parts = line[len("import time:") :].split("|")
        if len(parts) != 3 or not parts[1].strip().isdigit():
            continue
        name = parts[2]
        if name.startswith(" ") and not name.startswith("  "):  # depth 0: one space after the bar
            top[name.strip()] = top.get(name.strip(), 0.0) + int(parts[1]) / 1e6
    return sorted(top.items(), key=lambda kv: -kv[1])[:n]


def run(opts: argparse.Namespace) -> h.FamilyResult:
    """Time the commands in fresh processes, interleaved, and the stages of one process."""
    runs = opts.runs or (2 if opts.quick else 5)
    machine = h.machine_info(opts.threads)
    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        out = str(Path(tmp) / "x.npy")
        commands = {
            "python -c pass": [py, "-c", "pass"],
            "import torch": [py, "-c", "import torch"],
            "import speakerembed": [py, "-c", "import speakerembed"],
            "import speakerembed.cli": [py, "-c", "import speakerembed.cli"],
            "speakerembed --help": [py, "-m", "speakerembed", "--help"],
            "speakerembed embed (first embedding)": [
                py,
                "-m",
                "speakerembed",
                "embed",
                str(CLIP),
                "-o",
                out,
                "--weights",
                "resemblyzer",
            ],
        }
        print(
            f"  startup: {runs} interleaved rounds of {len(commands)} commands ...",
            file=sys.stderr,
            flush=True,
        )
        for cmd in commands.values():  # warm the page cache and the bytecode caches
            _wall(cmd)
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(runs):
            for name, cmd in commands.items():
                times[name].append(_wall(cmd))
        med = {name: statistics.median(ts) for name, ts in times.items()}
        stages_proc = subprocess.run(
            [py, "-c", _STAGES, str(CLIP)], capture_output=True, text=True, env=_env(), cwd=str(h.ROOT)
        )
        stages = (
            json.loads(stages_proc.stdout.strip().splitlines()[-1]) if stages_proc.returncode == 0 else {}
        )
        heavy_proc = subprocess.run(
            [py, "-c", _MODULES.format(heavy=HEAVY)],
            capture_output=True,
            text=True,
            env=_env(),
            cwd=str(h.ROOT),
        )
        heavy = json.loads(heavy_proc.stderr.strip().splitlines()[-1])
        top = _top_imports(["-m", "speakerembed", "embed", str(CLIP), "-o", out, "--weights", "resemblyzer"])
    over_torch = med["speakerembed embed (first embedding)"] - med["import torch"]
    figures = [
        h.Figure("python -c pass", f"{med['python -c pass']:.3f} s", verdict="reported"),
        h.Figure("import torch (the floor of any embedding)", f"{med['import torch']:.3f} s"),
        h.Figure(
            "import speakerembed",
            f"{med['import speakerembed']:.3f} s",
            f"python alone: {med['python -c pass']:.3f} s",
        ),
        h.Figure(
            "import speakerembed.cli",
            f"{med['import speakerembed.cli']:.3f} s",
            f"python alone: {med['python -c pass']:.3f} s",
        ),
        h.Figure(
            "speakerembed --help",
            f"{med['speakerembed --help']:.3f} s; imports {', '.join(heavy) or 'neither torch nor pyarrow'}",
            f"python alone: {med['python -c pass']:.3f} s",
            f"≤ {HELP_TARGET_S} s, no torch or pyarrow",
            "FAIL" if heavy else h.check_ratio(med["speakerembed --help"], HELP_TARGET_S, higher=False),
            med["speakerembed --help"],
        ),
        h.Figure(
            "speakerembed embed one clip, end to end",
            f"{med['speakerembed embed (first embedding)']:.3f} s ({over_torch:+.3f} s beyond import torch)",
            f"import torch: {med['import torch']:.3f} s",
            f"≤ import torch + {FIRST_EMBED_OVER_TORCH_S} s",
            h.check_ratio(over_torch, FIRST_EMBED_OVER_TORCH_S, higher=False),
            over_torch,
        ),
    ]
    for name, seconds in stages.items():
        figures.append(h.Figure(f"in one process: {name}", f"{seconds:.3f} s"))
    notes = [
        "Top-level imports of `speakerembed embed` by cumulative time (python -X importtime, one run): "
        + ", ".join(f"{name} {seconds:.3f} s" for name, seconds in top)
    ]
    data = {"runs": runs, "times": times, "median": med, "stages": stages, "help_imports": heavy, "top": top}
    return h.FamilyResult("startup", figures, data, machine, notes)


if __name__ == "__main__":
    sys.exit(h.family_main("startup", run, doc=__doc__))
