"""Ray engine benchmark: ``corpus --engine ray`` on a local Ray against the local engine.

Run it from the repository root (needs ``pip install 'speakerembed[ray]'``)::

    python benchmarks/bench_ray.py             # 400 short files (about 1,400 s of audio)
    python benchmarks/bench_ray.py --files 60  # a smoke test

It builds a corpus of short cuts (2 to 5 s) of the shared speech in four formats and rates
(``_corpus.build_corpus``, shared with ``bench_corpus.py``), then runs, each in its own
subprocess, on the same files:

- the local engine, in line (``workers=0``), with 1 and with 2 torch threads;
- the Ray engine on a local Ray of 2 CPUs, with 1 actor and with 2 actors of 1 thread each.

For the Ray runs, starting Ray (``ray.init``) is timed apart from the job; the job's time
(``CorpusReport.wall_seconds``) includes starting the actors and loading a model in each.
Every figure is seconds of audio per wall second. The results go to
``benchmarks/results/ray.json``. On a shared machine the figures move with the other load: the
load average is recorded beside each run, and only figures from the same run are compared.
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

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(Path(__file__).resolve().parent))


def worker(cfg: dict[str, Any]) -> dict[str, Any]:
    import torch

    from speakerembed import SpeakerEmbedder, embed_corpus

    torch.set_num_threads(cfg["threads"])
    embedder = SpeakerEmbedder("resemblyzer", device="cpu")
    load = os.getloadavg()[0]
    init_s = 0.0
    if cfg["engine"] == "ray":
        from speakerembed.corpus.ray_engine import ray_session

        t0 = time.perf_counter()
        session = ray_session(num_cpus=2)
        session.__enter__()
        init_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    report = embed_corpus(
        cfg["corpus"],
        cfg["out"],
        embedder=embedder,
        engine=cfg["engine"],
        workers=cfg["workers"],
        threads=cfg["threads"],
        progress="off",
    )
    total_s = time.perf_counter() - t0
    if cfg["engine"] == "ray":
        session.__exit__(None, None, None)
    return {
        "files": report.embedded + report.failed,
        "failed": report.failed,
        "audio_s": report.audio_seconds,
        "ray_init_s": init_s,
        "job_s": total_s,
        "realtime": report.audio_seconds / total_s,
        "load_avg_1min": load,
    }


def _run(cfg: dict[str, Any]) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run(
        [sys.executable, __file__, "--worker", json.dumps(cfg)],
        capture_output=True,
        text=True,
        env=env,
        timeout=3600,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"{cfg['name']} failed:\n{out.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


CONFIGS = (
    ("local, 1 thread", "local", 0, 1),
    ("local, 2 threads", "local", 0, 2),
    ("ray, 1 actor x 1 thread", "ray", 1, 1),
    ("ray, 2 actors x 1 thread", "ray", 2, 1),
)


def run(files: int) -> dict[str, Any]:
    """Build the corpus, run every configuration, print the figures; returns them."""
    from _corpus import build_corpus

    with tempfile.TemporaryDirectory(prefix="bench-ray-") as tmp:
        corpus = Path(tmp) / "corpus"
        audio = build_corpus(corpus, files)
        print(f"corpus: {files} files, {audio:.0f} s of audio; {os.cpu_count()} CPUs", flush=True)
        res: dict[str, Any] = {"files": files, "audio_s": audio, "cpu_count": os.cpu_count(), "runs": {}}
        for i, (name, engine, workers, threads) in enumerate(CONFIGS):
            cfg = {"name": name, "engine": engine, "workers": workers, "threads": threads}
            r = _run({**cfg, "corpus": str(corpus), "out": f"{tmp}/out{i}"})
            res["runs"][name] = {**cfg, **r}
            init = f", ray.init {r['ray_init_s']:.1f} s before it" if engine == "ray" else ""
            print(
                f"{name:26s} {r['realtime']:6.1f}x real time: job {r['job_s']:6.1f} s{init} "
                f"(load average {r['load_avg_1min']:.1f})",
                flush=True,
            )
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "ray.json").write_text(json.dumps(res, indent=2) + "\n")
    return res


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=400, help="files in the corpus (default 400)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return
    run(args.files)


if __name__ == "__main__":
    main()
