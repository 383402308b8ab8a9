"""Speakers benchmark, clustering half: 200,000 embeddings clustered by ``cluster_speakers``.

Run it from the repository root::

    python benchmarks/speakers_cluster.py              # 200,000 embeddings (a few minutes)
    python benchmarks/speakers_cluster.py --quick      # 20,000, a smoke test
    python benchmarks/speakers_cluster.py --n 50000    # any size

It builds synthetic unit embeddings with the structure of real ones (``weights="resemblyzer"``
on the shared speech: same-speaker pairs 0.85 on average, different speakers 0.60 +- 0.08).
Each clip is ``a*m + b*u_s + c*e``, normalised: ``m`` a direction every speaker shares,
``u_s`` the speaker's own direction (a mix of a 4-dimensional part, for the broad voice
classes that make between-speaker cosines spread, and a 256-dimensional part), and ``e`` the
clip's noise, with a noise level that varies from clip to clip. The speakers: 40 % of the clips
are speakers heard once, the rest come from speakers with 2 to 3,000 clips (log-normal sizes).
The measured pair cosines of the set are printed beside those of real speech.

Then, in a child process (so that its peak RSS is the clustering's own), it runs
``cluster_speakers`` with the default threshold and reports the wall time and peak RSS beside
the targets (issue 19: <= 180 s and <= 4 GB on the 2-core machine) and the machine, B-cubed
precision and recall against the true speakers, and how many speakers heard once stayed alone.
On a 20,000-row subset it also compares the inverted-file graph (``search="ivf"``) with the
exact one (``search="exact"``): B-cubed of one partition against the other. The results go to
``benchmarks/results/speakers_cluster.json``. A shared, busy machine gives slow numbers: say so
when quoting them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TARGET_S = 180.0
TARGET_RSS_MB = 4096.0
REAL_SAME, REAL_DIFF, REAL_DIFF_STD = 0.85, 0.60, 0.08


def synthetic(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(embeddings (n, 256) float32 unit rows, speaker ids (n,) int64)."""
    rng = np.random.default_rng(seed)
    d = 256
    n_single = int(0.4 * n)
    sizes = []
    left = n - n_single
    while left > 0:
        s = int(np.clip(np.round(rng.lognormal(2.0, 1.3)), 2, 3000))
        s = min(s, left) if left - s != 1 else s + 1
        sizes.append(s)
        left -= s
    sizes = np.asarray(sizes + [1] * n_single)
    n_spk = sizes.size
    m = rng.standard_normal(d)
    m /= np.linalg.norm(m)
    basis = np.linalg.qr(rng.standard_normal((d, 4)))[0]  # broad voice classes
    low = rng.standard_normal((n_spk, 4)) @ basis.T
    low /= np.linalg.norm(low, axis=1, keepdims=True)
    high = rng.standard_normal((n_spk, d))
    high /= np.linalg.norm(high, axis=1, keepdims=True)
    u = np.sqrt(0.35) * low + np.sqrt(0.65) * high
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    spk = np.repeat(np.arange(n_spk), sizes)
    noise = rng.standard_normal((n, d)).astype(np.float32)
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    c2 = rng.uniform(0.03, 0.32, size=n)[:, None]  # clip quality varies
    x = np.sqrt(0.60) * m + np.sqrt(0.25) * u[spk] + np.sqrt(c2) * noise
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    order = rng.permutation(n)
    return x[order].astype(np.float32), spk[order]


def pair_stats(x: np.ndarray, spk: np.ndarray, rng: np.random.Generator) -> dict[str, float]:
    i, j = rng.integers(0, x.shape[0], size=(2, 200_000))
    s = np.einsum("ij,ij->i", x[i], x[j])
    diff = s[(spk[i] != spk[j]) & (i != j)]
    # same-speaker pairs: two clips of one speaker, picked among the repeated speakers
    order = np.argsort(spk, kind="stable")
    sorted_spk = spk[order]
    starts = np.flatnonzero(np.r_[True, sorted_spk[1:] != sorted_spk[:-1]])
    lengths = np.diff(np.r_[starts, spk.size])
    rep = np.flatnonzero(lengths > 1)
    pick = rng.choice(rep, size=50_000)
    a = starts[pick] + rng.integers(0, lengths[pick])
    b = starts[pick] + (a - starts[pick] + rng.integers(1, lengths[pick])) % lengths[pick]
    same = np.einsum("ij,ij->i", x[order[a]], x[order[b]])
    return {
        "same_mean": float(same.mean()),
        "same_std": float(same.std()),
        "diff_mean": float(diff.mean()),
        "diff_std": float(diff.std()),
    }


def child(path: str, out: str, search: str) -> None:
    from speakerembed import cluster_speakers

    x = np.load(path)
    t0, c0 = time.perf_counter(), time.process_time()
    labels = cluster_speakers(x, search=search)  # type: ignore[arg-type]
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    np.save(out, labels)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(json.dumps({"wall_s": wall, "cpu_s": cpu, "peak_rss_mb": rss}))


def run_child(x: np.ndarray, tmp: Path, search: str) -> tuple[dict[str, float], np.ndarray]:
    path, out = tmp / f"x_{search}.npy", tmp / f"labels_{search}.npy"
    np.save(path, x)
    proc = subprocess.run(
        [sys.executable, __file__, "--child", str(path), str(out), search],
        capture_output=True,
        text=True,
        cwd=str(ROOT),
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"the clustering child failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1]), np.load(out)


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    return f"{cpu}, {os.cpu_count()} cores, load average {load}"


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(*sys.argv[2:5])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--quick", action="store_true", help="20,000 embeddings")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "speakers_cluster.json"))
    args = parser.parse_args()
    n = 20_000 if args.quick else args.n
    from speakerembed import bcubed
    from speakerembed.analysis.clustering import DEFAULT_THRESHOLD

    print(f"machine: {machine()}", flush=True)
    x, spk = synthetic(n)
    stats = pair_stats(x, spk, np.random.default_rng(1))
    n_single = int((np.bincount(spk) == 1).sum())
    print(
        f"{n} embeddings, {np.unique(spk).size} speakers, {n_single} heard once; pair cosines: "
        f"same {stats['same_mean']:.3f} +- {stats['same_std']:.3f} (real speech {REAL_SAME}), "
        f"different {stats['diff_mean']:.3f} +- {stats['diff_std']:.3f} "
        f"(real speech {REAL_DIFF} +- {REAL_DIFF_STD})",
        flush=True,
    )
    with tempfile.TemporaryDirectory() as tmp:
        res, labels = run_child(x, Path(tmp), "auto")
        score = bcubed(spk, labels)
        counts = np.bincount(spk)
        single_rows = counts[spk] == 1
        alone = np.bincount(labels[labels >= 0])[labels[single_rows]] == 1
        sub = min(n, 20_000)
        res_exact, lab_exact = run_child(x[:sub], Path(tmp), "exact")
        _, lab_ivf = run_child(x[:sub], Path(tmp), "ivf")
        agree = bcubed(lab_exact, lab_ivf)
    ok_time = "PASS" if res["wall_s"] <= TARGET_S else "FAIL"
    ok_rss = "PASS" if res["peak_rss_mb"] <= TARGET_RSS_MB else "FAIL"
    print(f"threshold {DEFAULT_THRESHOLD} (the default)")
    print(f"wall time   {res['wall_s']:8.1f} s    target <= {TARGET_S:.0f} s     {ok_time}")
    print(f"CPU time    {res['cpu_s']:8.1f} s    (all threads; idle 2 cores: wall >= half of it)")
    print(f"peak RSS    {res['peak_rss_mb']:8.0f} MB   target <= {TARGET_RSS_MB:.0f} MB   {ok_rss}")
    print(f"B-cubed     precision {score.precision:.4f}  recall {score.recall:.4f}  F1 {score.f1:.4f}")
    print(f"clusters    {np.unique(labels).size} (true speakers {np.unique(spk).size})")
    print(f"singletons  {float(alone.mean()):.4f} of the {n_single} speakers heard once stayed alone")
    print(
        f"ivf vs exact on {sub} rows: B-cubed precision {agree.precision:.4f} recall {agree.recall:.4f} "
        f"(1.0 = the same partition; exact took {res_exact['wall_s']:.1f} s)"
    )
    print(f"machine: {machine()} (shared with other jobs: times are upper bounds)")
    out = {
        "n": n,
        "threshold": DEFAULT_THRESHOLD,
        "machine": machine(),
        "pair_stats": stats,
        "wall_s": round(res["wall_s"], 2),
        "cpu_s": round(res["cpu_s"], 2),
        "peak_rss_mb": round(res["peak_rss_mb"], 1),
        "target_s": TARGET_S,
        "target_rss_mb": TARGET_RSS_MB,
        "bcubed": score._asdict(),
        "clusters": int(np.unique(labels).size),
        "speakers": int(np.unique(spk).size),
        "singletons_alone": float(alone.mean()),
        "ivf_vs_exact": {"rows": sub, **agree._asdict(), "exact_wall_s": round(res_exact["wall_s"], 2)},
    }
    if not args.quick:
        Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
