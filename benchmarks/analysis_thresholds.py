"""Measure the numbers docs/analysis.rst quotes: VAD against trimming, and the cleaning thresholds.

Run it from the repository root (about three minutes on two CPU cores)::

    python benchmarks/analysis_thresholds.py [--out benchmarks/results/analysis_thresholds.json]

It reads the labelled real speech in ``../shared/data/speech`` (``MANIFEST.tsv``; the AMI
meetings and the long concatenations are left out), embeds it with the offline
``weights="resemblyzer"`` and reports:

1. **Speech detection**: the equal error rate of utterance-pair cosines (same speaker against
   different speakers) with Chatterbox's edge trim (``Pipeline()``) and with Silero VAD
   (``Pipeline(vad="silero")``), for LibriSpeech, ARCTIC, LJ Speech + VCTK + ARCTIC pooled,
   and everything pooled; and the seconds of audio each keeps.
2. **Cleaning thresholds** (:mod:`speakerembed.analysis.clean`):

   - clip-to-centroid cosines: each clip against its own speaker's leave-one-out robust
     centroid (same speaker) and against every other speaker's centroid (different speaker);
     their equal-error threshold is ``OUTLIER_THRESHOLD``;
   - duplicates: the highest cosine between two *different* recordings of one speaker, and
     the lowest cosine between a recording and a copy of it (gain 0.5, resampled to 22.05 kHz
     and back, white noise at 30 dB SNR, the first 5 % cut off); ``DUPLICATE_THRESHOLD`` lies
     between them.

EER is computed here by brute force over every threshold (no dependency on
``speakerembed.analysis.scoring``).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from itertools import combinations
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from speakerembed import Pipeline, SpeakerEmbedder  # noqa: E402
from speakerembed.analysis.clean import find_outliers  # noqa: E402

SPEECH = ROOT.parent / "shared" / "data" / "speech"


def eer(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Equal error rate and its threshold, by brute force over every score as a threshold."""
    best = (2.0, 0.0, 0.0)
    pos, neg = scores[labels], scores[~labels]
    for t in np.unique(scores):
        frr = float(np.mean(pos < t))
        far = float(np.mean(neg >= t))
        if abs(frr - far) < best[0]:
            best = (abs(frr - far), (frr + far) / 2, float(t))
    return best[1], best[2]


def pair_scores(x: np.ndarray, spk: list[str], keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    idx = np.flatnonzero(keep)
    s, lab = [], []
    for i, j in combinations(idx, 2):
        s.append(float(x[i] @ x[j]))
        lab.append(spk[i] == spk[j])
    return np.asarray(s), np.asarray(lab)


def labelled_files() -> list[tuple[Path, str]]:
    rows = []
    with open(SPEECH / "MANIFEST.tsv") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            if row["path"].startswith(("ami/", "long/")):
                continue
            rows.append((SPEECH / row["path"], row["speaker"]))
    return rows


def copies(wav: np.ndarray, sr: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    import soxr

    noise = rng.standard_normal(wav.shape[0]).astype(np.float32)
    noise *= np.sqrt(np.mean(wav**2) / np.mean(noise**2) / 10 ** (30 / 10))
    there = soxr.resample(wav, sr, 22050)
    return {
        "gain": (0.5 * wav).astype(np.float32),
        "resampled": soxr.resample(there, 22050, sr).astype(np.float32),
        "noise30dB": (wav + noise).astype(np.float32),
        "cut5pct": wav[int(0.05 * wav.shape[0]) :],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "analysis_thresholds.json"))
    args = parser.parse_args()
    import soundfile as sf

    files = labelled_files()
    paths = [str(p) for p, _ in files]
    spk = [s for _, s in files]
    corpus = np.asarray([s.split(":")[0] for s in spk])
    embedder = SpeakerEmbedder("resemblyzer", device="cpu")
    results: dict[str, object] = {"n_files": len(paths), "weights": "resemblyzer"}

    # 1. trimming against the VAD
    vad_table = {}
    embeds = {}
    for name, pipe in (("trim", Pipeline()), ("vad", Pipeline(vad="silero"))):
        res = embedder.embed_utterances(paths, pipeline=pipe, errors="skip")
        assert res.ok, res.failures
        embeds[name] = res.embeddings
        row: dict[str, object] = {
            "kept_s": round(float(res.speech_s.sum()), 1),
        }
        for subset, keep in (
            ("librispeech", corpus == "librispeech"),
            ("arctic", corpus == "cmu_arctic"),
            ("ljspeech+vctk+arctic", np.isin(corpus, ["ljspeech", "vctk", "cmu_arctic"])),
            ("all", np.ones(len(paths), bool)),
        ):
            scores, labels = pair_scores(res.embeddings, spk, keep)
            value, threshold = eer(scores, labels)
            row[subset] = {
                "eer": round(value, 4),
                "threshold": round(threshold, 4),
                "n_target": int(labels.sum()),
                "n_nontarget": int((~labels).sum()),
            }
        vad_table[name] = row
        print(name, json.dumps(row), flush=True)
    results["vad"] = vad_table

    # 2a. clip-to-centroid distributions (trim pipeline, the default)
    x = embeds["trim"]
    report = find_outliers(x, spk, paths)
    by_id = {i: k for k, i in enumerate(report.columns["id"])}
    order = [by_id[p] for p in paths]
    own = report.columns["own_similarity"][order]
    genuine = own[np.isfinite(own)]
    # different speaker: each clip against every other speaker's robust centroid
    from speakerembed.analysis.clean import robust_centroid

    names = sorted(set(spk))
    cents = np.stack([robust_centroid(x[[i for i, s in enumerate(spk) if s == n]])[0] for n in names])
    multi = {n for n in names if spk.count(n) >= 2}
    impostor = np.asarray(
        [
            float(x[i] @ cents[k])
            for i in range(len(spk))
            for k, n in enumerate(names)
            if n != spk[i] and n in multi
        ]
    )
    scores = np.concatenate([genuine, impostor])
    labels = np.concatenate([np.ones(genuine.size, bool), np.zeros(impostor.size, bool)])
    value, threshold = eer(scores, labels)
    results["centroid"] = {
        "n_same": int(genuine.size),
        "n_different": int(impostor.size),
        "same_percentiles_1_5_50": [round(float(v), 4) for v in np.percentile(genuine, [1, 5, 50])],
        "different_percentiles_50_95_99_max": [
            round(float(v), 4) for v in (*np.percentile(impostor, [50, 95, 99]), impostor.max())
        ],
        "eer": round(value, 4),
        "eer_threshold": round(threshold, 4),
    }
    print("centroid", json.dumps(results["centroid"]), flush=True)

    # 2b. duplicates
    same_distinct = []
    for i, j in combinations(range(len(spk)), 2):
        if spk[i] == spk[j]:
            same_distinct.append(float(x[i] @ x[j]))
    rng = np.random.default_rng(0)
    copy_scores: dict[str, list[float]] = {}
    dup_files = [
        k for k in range(len(paths)) if corpus[k] in ("librispeech", "cmu_arctic", "vctk", "ljspeech")
    ]
    for k in dup_files[::2]:  # every other file: enough, and half the time
        wav, sr = sf.read(paths[k], dtype="float32", always_2d=True)
        wav = wav.mean(axis=1).astype(np.float32)
        made = copies(wav, sr, rng)
        rows = embedder.embed_utterances(list(made.values()), sample_rate=sr)
        for name, r in zip(made, rows, strict=True):
            copy_scores.setdefault(name, []).append(float(r @ x[k]))
    results["duplicates"] = {
        "same_speaker_distinct_max": round(max(same_distinct), 4),
        "same_speaker_distinct_p99": round(float(np.percentile(same_distinct, 99)), 4),
        "n_same_speaker_pairs": len(same_distinct),
        "copy_min": {n: round(min(v), 4) for n, v in copy_scores.items()},
        "copy_median": {n: round(float(np.median(v)), 4) for n, v in copy_scores.items()},
        "n_copied": len(dup_files[::2]),
    }
    print("duplicates", json.dumps(results["duplicates"]), flush=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
