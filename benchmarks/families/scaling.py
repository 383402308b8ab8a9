"""Scaling with cores: processes x threads, total throughput in one run.

Usage: ``python -m benchmarks.families.scaling [--runs 3] [--rounds 2] [--quick]``.

Splits the throughput set (44.1 kHz) between P worker processes of T torch threads each and
measures the total throughput: all audio embedded, over the wall time from a common start
(a file barrier, after every worker has loaded and warmed up) to the last worker's end. The
configurations -- 1 x 1, 1 x ``cores``, and ``cores`` x 1, or those ``--configs`` names --
alternate, ``--rounds`` times.
The rule that follows is :func:`speakerembed._engine.workers.plan_workers`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from benchmarks import _harness as h

__all__ = ["run", "worker_share"]


def worker_share(cfg: dict[str, Any]) -> dict[str, Any]:
    """Embed share ``i`` of ``n`` of the set ``runs`` times, after a barrier."""
    from speakerembed import SpeakerEmbedder

    files = h.eval_files(cfg.get("max_files"))[cfg["share"] :: cfg["n_shares"]]
    wavs = h.load_set(files, 44_100)
    emb = SpeakerEmbedder("resemblyzer", device="cpu")
    emb.embed_utterances(wavs[:4], sample_rate=44_100)
    barrier = Path(cfg["barrier"])
    (barrier / f"ready{cfg['share']}").touch()
    while not (barrier / "go").exists():
        time.sleep(0.01)
    start = time.time()
    for _ in range(int(cfg["runs"])):
        emb.embed_utterances(wavs, sample_rate=44_100)
    end = time.time()
    return {"start": start, "end": end, "audio_s": cfg["runs"] * sum(w.shape[0] for w in wavs) / 44_100}


def _launch(procs: int, threads: int, runs: int, max_files: int | None) -> dict[str, Any]:
    env = {
        **os.environ,
        "PYTHONPATH": str(h.ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        "OMP_NUM_THREADS": str(threads),
        "PYTHONWARNINGS": "ignore",
    }
    print(f"  {procs} process(es) x {threads} thread(s) ...", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory() as barrier:
        children = []
        for i in range(procs):
            cfg = {"share": i, "n_shares": procs, "runs": runs, "barrier": barrier, "threads": threads}
            cfg["max_files"] = max_files
            children.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "benchmarks._harness",
                        "benchmarks.families.scaling:worker_share",
                        json.dumps(cfg),
                    ],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                    env=env,
                    cwd=str(h.ROOT),
                )
            )
        deadline = time.time() + 600
        while len(list(Path(barrier).glob("ready*"))) < procs:
            if time.time() > deadline or any(c.poll() is not None for c in children):
                break
            time.sleep(0.05)
        (Path(barrier) / "go").touch()
        results = []
        for c in children:
            out, err = c.communicate(timeout=1800)
            line = next((x for x in out.splitlines() if x.startswith("RESULT ")), None)
            if line is None:
                return {"error": f"worker failed: {err.strip().splitlines()[-1:]}"}
            results.append(json.loads(line[len("RESULT ") :]))
    wall = max(r["end"] for r in results) - min(r["start"] for r in results)
    audio = sum(r["audio_s"] for r in results)
    return {
        "procs": procs,
        "threads": threads,
        "wall_s": wall,
        "audio_s": audio,
        "xrt": audio / wall,
        "peak_rss_mb": [r["peak_rss_mb"] for r in results],
    }


def add_args(parser: argparse.ArgumentParser) -> None:
    """--rounds, --configs."""
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds of the configurations")
    parser.add_argument(
        "--configs",
        default=None,
        help="processes x threads to run, such as 1x1,1x16,4x4,16x1 (default 1x1, 1 x cores, cores x 1)",
    )


def _configs(spec: str | None, cores: int) -> list[tuple[int, int]]:
    if not spec:
        return [(1, 1), (1, cores), (cores, 1)]
    configs = []
    for part in spec.split(","):
        procs, _, threads = part.strip().partition("x")
        if not (procs.isdigit() and threads.isdigit() and int(procs) > 0 and int(threads) > 0):
            raise SystemExit(f"--configs {spec!r}: write each as PROCESSESxTHREADS, such as 4x4")
        configs.append((int(procs), int(threads)))
    if (1, 1) not in configs:
        configs.insert(0, (1, 1))  # every figure is read against one process x one thread
    return configs


def run(opts: argparse.Namespace) -> h.FamilyResult:
    """Measure 1 x 1, 1 x cores and cores x 1 (or the --configs)."""
    import statistics

    cores = os.cpu_count() or 1
    runs = opts.runs or (1 if opts.quick else 3)
    max_files = 20 if opts.quick else None
    rounds = getattr(opts, "rounds", 2)
    machine = h.machine_info(opts.threads)
    configs = _configs(getattr(opts, "configs", None), cores)
    raw: dict[str, list[dict[str, Any]]] = {f"{p}x{t}": [] for p, t in configs}
    for _ in range(rounds):
        for p, t in configs:
            raw[f"{p}x{t}"].append(_launch(p, t, runs, max_files))
            print(f"    {p}x{t}: {raw[f'{p}x{t}'][-1].get('xrt', 'error')}", file=sys.stderr, flush=True)
    xrt = {}
    for key, rs in raw.items():
        ok = [r["xrt"] for r in rs if "error" not in r]
        xrt[key] = statistics.median(ok) if ok else None
    figures = []
    one = xrt["1x1"]
    for p, t in configs:
        v = xrt[f"{p}x{t}"]
        figures.append(
            h.Figure(
                f"{p} process{'es' if p > 1 else ''} x {t} thread{'s' if t > 1 else ''}, total",
                "error"
                if v is None
                else f"{v:.0f}x real time" + (f" ({v / one:.2f}x one core)" if one else ""),
                "" if (p, t) == (1, 1) else "1 process x 1 thread",
                value=v,
            )
        )
    notes = [
        f"Median of {rounds} alternating rounds; each worker embeds its share {runs} times after a "
        f"common start. Load average at start: {machine['load_average'][0]:.1f} on {cores} cores."
    ]
    return h.FamilyResult("scaling", figures, {"runs": raw, "xrt": xrt}, machine, notes)


if __name__ == "__main__":
    sys.exit(h.family_main("scaling", run, add_args, doc=__doc__))
