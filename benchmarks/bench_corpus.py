"""Corpus benchmark: ``embed_corpus`` throughput and memory against ``embed_utterances`` in memory.

Run it from the repository root::

    python benchmarks/bench_corpus.py            # 1,000 files (about 3,000 s of audio)
    python benchmarks/bench_corpus.py --quick    # 60 files, a smoke test

It builds a corpus in a temporary folder from ``../shared/data/speech``: cuts of 2 to 5 s of the
real LibriSpeech, ARCTIC, VCTK (48 kHz) and LJ Speech files, written as WAV 16 kHz (PCM 16), FLAC
22.05 kHz, Ogg Vorbis 44.1 kHz and WAV 48 kHz (float), in nested folders. Then, in the same run,
each configuration in its own subprocess (so that its peak RSS is its own):

- ``embed_corpus`` with 0 workers (in line, torch on 2 threads), 1 and 2 workers (on a CPU,
  one-thread encoder processes beside the job's own one-thread encoder; with ``--device cuda``,
  decode processes feeding the one GPU encoder), and the default (``workers=None``); other
  worker counts with ``--workers 0,4,8,default``: seconds of audio per wall second, from the
  first file to the last shard written (the workers' start-up included); peak RSS of the job's
  process and of its largest worker;
- ``embed_utterances`` on the same audio already decoded in memory (only the embedding timed):
  the figure the corpus job should come close to;
- the peak RSS (``ru_maxrss`` of the process, ``workers=0``) of ``embed_corpus`` at 250 files and
  at the whole corpus.

Targets (issue 8, on the 2-core machine): corpus throughput >= 0.90 of the in-memory figure;
peak RSS at 1,000 files <= 1.25 x that at 250. Each figure is printed beside its limit. The
results also go to ``benchmarks/results/corpus.json``. A shared, busy machine gives noisy
numbers: say so when quoting them.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(ROOT))  # benchmarks._harness, for the machine's line
TARGET_THROUGHPUT = 0.90
TARGET_RSS_RATIO = 1.25


from _corpus import build_corpus  # noqa: E402 - the shared corpus builder, beside this script

# -- workers, each in its own process ----------------------------------------------------------


def worker_corpus(cfg: dict[str, Any]) -> dict[str, Any]:
    import torch

    from speakerembed import SpeakerEmbedder, embed_corpus

    torch.set_num_threads(cfg["threads"])
    embedder = SpeakerEmbedder("resemblyzer", device=cfg.get("device", "cpu"))
    inputs: Any = cfg["corpus"]
    files_from = None
    if cfg.get("limit"):
        listing = Path(cfg["out"]).with_suffix(".txt")
        files = sorted(str(p) for p in Path(cfg["corpus"]).rglob("utt*"))[: cfg["limit"]]
        listing.write_text("".join(f + "\n" for f in files))
        inputs, files_from = (), str(listing)
    report = embed_corpus(
        inputs,
        cfg["out"],
        files_from=files_from,
        embedder=embedder,
        workers=cfg["workers"],
        progress="off",
    )
    return {
        "files": report.embedded + report.failed,
        "failed": report.failed,
        "audio_s": report.audio_seconds,
        "wall_s": report.wall_seconds,
        "realtime": report.realtime_factor,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "worker_peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    }


def worker_inmemory(cfg: dict[str, Any]) -> dict[str, Any]:
    import soundfile as sf
    import torch

    from speakerembed import SpeakerEmbedder

    torch.set_num_threads(cfg["threads"])
    embedder = SpeakerEmbedder("resemblyzer", device=cfg.get("device", "cpu"))
    files = sorted(p for p in Path(cfg["corpus"]).rglob("utt*"))
    wavs, rates = [], []
    for f in files:
        data, sr = sf.read(f, dtype="float32")
        wavs.append(data)
        rates.append(sr)
    audio_s = sum(len(w) / r for w, r in zip(wavs, rates, strict=True))
    embedder.embed_utterances(wavs[:8], sample_rate=rates[:8])  # warm-up
    start = time.perf_counter()
    embedder.embed_utterances(wavs, sample_rate=rates)
    wall = time.perf_counter() - start
    return {"files": len(files), "audio_s": audio_s, "wall_s": wall, "realtime": audio_s / wall}


WORKERS = {"corpus": worker_corpus, "inmemory": worker_inmemory}


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
        raise RuntimeError(f"worker {cfg['kind']} failed:\n{out.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _machine(threads: int) -> str:
    """The harness's one line naming the machine, and its load average now."""
    from benchmarks import _harness as h

    m = h.machine_info(threads)
    return f"{h.machine_line(m)}; load average {m['load_average'][0]:.2f}"


def _check(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def run(
    quick: bool = False,
    threads: int = 2,
    files: int | None = None,
    device: str = "cpu",
    workers: tuple[int | None, ...] = (0, 1, 2, None),
) -> dict[str, Any]:
    """Build the corpus, run every configuration, print the figures; returns them."""
    n = files if files is not None else (60 if quick else 1000)
    small = max(1, n // 4)
    with tempfile.TemporaryDirectory(prefix="bench-corpus-") as tmp:
        corpus = Path(tmp) / "corpus"
        t0 = time.perf_counter()
        audio = build_corpus(corpus, n)
        print(f"machine: {_machine(threads)}", flush=True)
        print(
            f"corpus: {n} files, {audio:.0f} s of audio, built in {time.perf_counter() - t0:.0f} s",
            flush=True,
        )
        res: dict[str, Any] = {
            "files": n,
            "audio_s": audio,
            "threads": threads,
            "cpu_count": os.cpu_count(),
            "device": device,
        }
        base = {"corpus": str(corpus), "threads": threads, "device": device}
        res["inmemory"] = _run({**base, "kind": "inmemory"})
        print(f"embed_utterances in memory: {res['inmemory']['realtime']:.0f}x real time", flush=True)
        for w in workers:
            r = _run({**base, "kind": "corpus", "workers": w, "out": f"{tmp}/out-w{w}"})
            res[f"corpus_w{w}"] = r
            ratio = r["realtime"] / res["inmemory"]["realtime"]
            label = "default workers" if w is None else f"{w} workers"
            rss = f"peak RSS {r['peak_rss_mb']:.0f} MB"
            if w != 0:
                rss += f", largest worker {r['worker_peak_rss_mb']:.0f} MB"
            print(
                f"embed_corpus, {label}: {r['realtime']:.0f}x real time = {ratio:.2f} of in-memory "
                f"(target >= {TARGET_THROUGHPUT:.2f}) {_check(ratio >= TARGET_THROUGHPUT)}; {rss}",
                flush=True,
            )
        r = _run({**base, "kind": "corpus", "workers": 0, "out": f"{tmp}/out-small", "limit": small})
        res["corpus_small"] = r
        big = res["corpus_w0"]["peak_rss_mb"]
        ratio = big / r["peak_rss_mb"]
        res["rss_ratio"] = ratio
        print(
            f"peak RSS: {r['peak_rss_mb']:.0f} MB at {small} files, {big:.0f} MB at {n} files = "
            f"{ratio:.2f}x (target <= {TARGET_RSS_RATIO:.2f}x) {_check(ratio <= TARGET_RSS_RATIO)}",
            flush=True,
        )
        best = max(res[f"corpus_w{w}"]["realtime"] for w in workers)
        res["best_ratio"] = best / res["inmemory"]["realtime"]
    return res


TARGET_MEDIAN, TARGET_WORST = 0.90, 0.85


def alternating(rounds: int, threads: int, files: int, device: str, workers: int | None) -> dict[str, Any]:
    """``rounds`` pairs of runs, in-memory then the corpus job, alternating on one corpus.

    Each pair gives one ratio (the corpus job's x real time over the in-memory run's just
    before it), so a host that slows down during the run slows both sides of a pair. Targets
    (issue 22): the median ratio >= 0.90 and the worst >= 0.85.
    """
    import statistics

    with tempfile.TemporaryDirectory(prefix="bench-corpus-") as tmp:
        corpus = Path(tmp) / "corpus"
        audio = build_corpus(corpus, files)
        print(f"machine: {_machine(threads)}", flush=True)
        print(f"corpus: {files} files, {audio:.0f} s of audio; {rounds} alternating rounds", flush=True)
        base = {"corpus": str(corpus), "threads": threads, "device": device}
        ratios, pairs = [], []
        for k in range(rounds):
            mem = _run({**base, "kind": "inmemory"})
            job = _run({**base, "kind": "corpus", "workers": workers, "out": f"{tmp}/out-{k}"})
            ratio = job["realtime"] / mem["realtime"]
            ratios.append(ratio)
            pairs.append({"inmemory": mem["realtime"], "corpus": job["realtime"], "ratio": ratio})
            print(
                f"  round {k + 1}: in memory {mem['realtime']:.0f}x, corpus job {job['realtime']:.0f}x "
                f"= {ratio:.3f}",
                flush=True,
            )
    med, worst = statistics.median(ratios), min(ratios)
    print(
        f"corpus job / in memory over {rounds} rounds: median {med:.3f} (target >= {TARGET_MEDIAN:.2f}) "
        f"{_check(med >= TARGET_MEDIAN)}, worst {worst:.3f} (target >= {TARGET_WORST:.2f}) "
        f"{_check(worst >= TARGET_WORST)}",
        flush=True,
    )
    return {
        "files": files,
        "audio_s": audio,
        "workers": workers,
        "rounds": pairs,
        "median": med,
        "worst": worst,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="60 files: a smoke test")
    parser.add_argument("--files", type=int, default=None, help="corpus size (default 1000, 60 with --quick)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads for the encoder (default 2)")
    parser.add_argument(
        "--device", default="cpu", help="the embedder's device: cpu (default), or cuda (workers decode)"
    )
    parser.add_argument(
        "--workers",
        default="0,1,2,default",
        help="comma-separated worker counts to run, 'default' for workers=None (default 0,1,2,default)",
    )
    parser.add_argument("--no-save", action="store_true", help="do not write benchmarks/results/corpus.json")
    parser.add_argument(
        "--rounds",
        type=int,
        default=0,
        help="instead: this many alternating in-memory / corpus-job pairs (the first --workers "
        "count), their median and worst ratio (issue 22: 5 rounds)",
    )
    args = parser.parse_args(argv)
    if args.worker:
        cfg = json.loads(args.worker)
        print(json.dumps(WORKERS[cfg["kind"]](cfg)))
        return 0
    try:
        workers = tuple(None if w.strip() == "default" else int(w) for w in args.workers.split(","))
    except ValueError:
        parser.error(f"--workers {args.workers!r}: pass counts such as 0,2,4,default")
    if args.rounds > 0:
        n = args.files if args.files is not None else (60 if args.quick else 1000)
        alt = alternating(args.rounds, args.threads, n, args.device, workers[0])
        if not args.quick and not args.no_save:
            RESULTS.mkdir(parents=True, exist_ok=True)
            (RESULTS / "corpus_rounds.json").write_text(json.dumps(alt, indent=2) + "\n")
        return 0
    res = run(args.quick, args.threads, args.files, args.device, workers)
    if not args.quick and not args.no_save:
        RESULTS.mkdir(parents=True, exist_ok=True)
        name = "corpus.json" if args.device == "cpu" else f"corpus_{args.device}.json"
        (RESULTS / name).write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
