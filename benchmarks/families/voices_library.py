"""Voice library at scale: store, reopen and query a library of N voices (default 1,000,000).

Usage: ``python -m benchmarks.families.voices_library [--voices 1000000] [--queries 20]``; ``--quick``
uses 50,000 voices. Targets at 1,000,000 voices on a 2-core machine: ``add_embeddings`` stores
at least 20,000 voices a second, reopening (a new ``VoiceLibrary`` and its first query) takes at
most 10 s, one query takes at most 100 ms, and its top match is the exact one (checked against
a brute-force float64 scan of every voice).

The voices are random non-negative unit vectors (as the encoder's are); the queries are voices
of the library with noise added, so that the exact top match is known to exist.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import _harness as h

__all__ = ["add_args", "run"]

STORE_TARGET = 20_000.0
REOPEN_TARGET_S = 10.0
QUERY_TARGET_S = 0.100


def add_args(parser: argparse.ArgumentParser) -> None:
    """--voices, --queries, --batch."""
    parser.add_argument(
        "--voices", type=int, default=None, help="library size (default 1,000,000; --quick 50,000)"
    )
    parser.add_argument("--queries", type=int, default=20, help="timed single queries (default 20)")
    parser.add_argument("--batch", type=int, default=100_000, help="voices per add_embeddings call")


def run(opts: argparse.Namespace) -> h.FamilyResult:
    """Build the library, time the store, the reopen and single queries."""
    import numpy as np

    from speakerembed import VoiceLibrary

    n = getattr(opts, "voices", None) or (50_000 if opts.quick else 1_000_000)
    n_queries = getattr(opts, "queries", 20)
    batch = getattr(opts, "batch", 100_000)
    machine = h.machine_info(opts.threads)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "voices.db"
        lib = VoiceLibrary(path, weights="resemblyzer")
        store_s = 0.0
        keep = np.empty((n, 256), np.float32)
        for start in range(0, n, batch):
            rows = np.abs(rng.standard_normal((min(batch, n - start), 256), dtype=np.float32))
            rows /= np.linalg.norm(rows, axis=1, keepdims=True)
            keep[start : start + len(rows)] = rows
            names = [f"voice{i}" for i in range(start, start + len(rows))]
            t0 = time.perf_counter()
            lib.add_embeddings(names, rows)
            store_s += time.perf_counter() - t0
        lib.close()
        size_mb = path.stat().st_size / 1e6
        t0 = time.perf_counter()
        lib = VoiceLibrary(path)
        first = lib.identify_embeddings(keep[0])[0]
        reopen_s = time.perf_counter() - t0
        picks = rng.integers(0, n, n_queries)
        times, exact = [], 0
        for i in picks:
            q = keep[i] + 0.02 * rng.standard_normal(256, dtype=np.float32)
            q /= np.linalg.norm(q)
            t0 = time.perf_counter()
            answer = lib.identify_embeddings(q, top_k=5)[0]
            times.append(time.perf_counter() - t0)
            # Brute force: every voice scored, the best few rescored in float64.
            rough = keep @ q
            few = np.argpartition(-rough, 16)[:16]
            brute = int(few[np.argmax(keep[few].astype(np.float64) @ q.astype(np.float64))])
            exact += answer[0].voice == f"voice{brute}"
        lib.close()
    rate = n / store_s
    query_s = statistics.median(times)
    figures = [
        h.Figure(
            f"add_embeddings, {n:,} voices",
            f"{rate:,.0f} voices/s ({store_s:.1f} s; database {size_mb:,.0f} MB)",
            target=f">= {STORE_TARGET:,.0f} voices/s at 1,000,000",
            verdict=h.check_ratio(rate, STORE_TARGET),
            value=rate,
        ),
        h.Figure(
            "reopen (open + first query)",
            f"{reopen_s:.2f} s",
            target=f"<= {REOPEN_TARGET_S:g} s at 1,000,000",
            verdict=h.check_ratio(reopen_s, REOPEN_TARGET_S, higher=False),
            value=reopen_s,
        ),
        h.Figure(
            "one query (median)",
            f"{1000 * query_s:.1f} ms (max {1000 * max(times):.1f} ms, {n_queries} queries)",
            target=f"<= {1000 * QUERY_TARGET_S:g} ms at 1,000,000",
            verdict=h.check_ratio(query_s, QUERY_TARGET_S, higher=False),
            value=query_s,
        ),
        h.Figure(
            "exact top match",
            f"{exact} of {n_queries}",
            target="all",
            verdict="pass" if exact == n_queries else "FAIL",
            value=exact / n_queries,
        ),
    ]
    data = {
        "voices": n,
        "store_s": store_s,
        "reopen_s": reopen_s,
        "query_s": times,
        "exact": exact,
        "first_voice": first.voice,
    }
    notes = [] if n >= 1_000_000 else [f"measured at {n:,} voices; the targets are for 1,000,000"]
    return h.FamilyResult("voices_library", figures, data, machine, notes)


if __name__ == "__main__":
    sys.exit(h.family_main("voices_library", run, add_args, doc=__doc__))
