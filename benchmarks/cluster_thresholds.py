"""Measure the default clustering threshold (``DEFAULT_THRESHOLD``) and B-cubed on real speech.

Run it from the repository root (a minute or two on two CPU cores)::

    python benchmarks/cluster_thresholds.py [--out benchmarks/results/cluster_thresholds.json]

It embeds the labelled real speech in ``../shared/data/speech`` (``MANIFEST.tsv``; the AMI
meetings and the long concatenations are left out) with the offline ``weights="resemblyzer"``:
six LibriSpeech speakers with 10 clips each, LJ Speech (17), two ARCTIC speakers (3 each) and
about twenty speakers heard once (VCTK, LibriSpeech, LibriTTS, Hi-Fi TTS, Common Voice, JFK).
So repeated speakers are mixed with singletons, as in scraped data.

For each threshold from 0.50 to 0.90 it clusters with :func:`speakerembed.cluster_speakers`
(average linkage) and reports B-cubed precision, recall and F1 against the speaker labels, and
the number of clusters. Because the set is small, it also draws 200 random subsets (each
repeated speaker keeps 1 to all of its clips, each singleton is kept with probability 0.7) and
reports the mean and the 10th percentile of F1 at each threshold. Single and complete linkage
(scipy, every pair) are measured beside it, to show why a pair threshold does not hold.

The threshold with the best mean F1 over the subsets is the one to ship.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from speakerembed import SpeakerEmbedder, bcubed, cluster_speakers  # noqa: E402

SPEECH = ROOT.parent / "shared" / "data" / "speech"
THRESHOLDS = np.round(np.arange(0.50, 0.901, 0.01), 2)


def labelled_files() -> list[tuple[Path, str]]:
    rows = []
    with open(SPEECH / "MANIFEST.tsv") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            if row["path"].startswith(("ami/", "long/")):
                continue
            speaker = row["speaker"]
            if speaker.endswith(":unknown"):  # one file each, of different people
                speaker = f"{speaker}:{row['path']}"
            rows.append((SPEECH / row["path"], speaker))
    return rows


def scipy_labels(x: np.ndarray, method: str, threshold: float) -> np.ndarray:
    from scipy.cluster.hierarchy import fcluster, linkage

    z = linkage(x.astype(np.float64), method=method, metric="cosine")
    return np.asarray(fcluster(z, 1.0 - threshold, criterion="distance"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "cluster_thresholds.json"))
    parser.add_argument("--subsets", type=int, default=200)
    args = parser.parse_args()
    if not SPEECH.is_dir():
        sys.exit(f"needs the shared speech at {SPEECH}")
    files = labelled_files()
    embedder = SpeakerEmbedder("resemblyzer", device="cpu")
    res = embedder.embed_utterances([str(p) for p, _ in files], errors="skip")
    x = res.embeddings
    spk = np.asarray([files[i][1] for i in res.indices])
    names, counts = np.unique(spk, return_counts=True)
    print(
        f"{len(spk)} clips, {names.size} speakers: {int((counts > 1).sum())} repeated "
        f"({int(counts[counts > 1].sum())} clips), {int((counts == 1).sum())} heard once",
        flush=True,
    )
    same = spk[:, None] == spk[None, :]
    s = x @ x.T
    iu = np.triu_indices(len(spk), 1)
    pair_same, pair_diff = s[iu][same[iu]], s[iu][~same[iu]]
    print(
        f"pair cosines: same speaker {pair_same.mean():.3f} +- {pair_same.std():.3f}, "
        f"different {pair_diff.mean():.3f} +- {pair_diff.std():.3f}",
        flush=True,
    )

    rng = np.random.default_rng(0)
    subsets = []
    for _ in range(args.subsets):
        keep = []
        for name, count in zip(names, counts, strict=True):
            rows = np.flatnonzero(spk == name)
            if count > 1:
                keep.extend(rng.choice(rows, size=int(rng.integers(1, count + 1)), replace=False).tolist())
            elif rng.random() < 0.7:
                keep.extend(rows.tolist())
        subsets.append(np.sort(np.asarray(keep)))

    table = []
    for t in THRESHOLDS:
        full = cluster_speakers(x, threshold=float(t))
        score = bcubed(spk, full)
        f1s = [bcubed(spk[k], cluster_speakers(x[k], threshold=float(t))).f1 for k in subsets]
        row = {
            "threshold": float(t),
            "precision": round(score.precision, 4),
            "recall": round(score.recall, 4),
            "f1": round(score.f1, 4),
            "clusters": int(np.unique(full).size),
            "subset_f1_mean": round(float(np.mean(f1s)), 4),
            "subset_f1_p10": round(float(np.percentile(f1s, 10)), 4),
        }
        for method in ("single", "complete"):
            row[f"{method}_f1"] = round(bcubed(spk, scipy_labels(x, method, float(t))).f1, 4)
        table.append(row)
        print(json.dumps(row), flush=True)
    best = max(table, key=lambda r: (r["subset_f1_mean"], r["f1"]))
    out = {
        "weights": "resemblyzer",
        "n_clips": len(spk),
        "n_speakers": int(names.size),
        "n_repeated_speakers": int((counts > 1).sum()),
        "n_singletons": int((counts == 1).sum()),
        "pair_same_mean": round(float(pair_same.mean()), 4),
        "pair_same_std": round(float(pair_same.std()), 4),
        "pair_diff_mean": round(float(pair_diff.mean()), 4),
        "pair_diff_std": round(float(pair_diff.std()), 4),
        "subsets": args.subsets,
        "best": best,
        "table": table,
    }
    print(f"best mean F1 over the subsets: threshold {best['threshold']:.2f} ({json.dumps(best)})")
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
