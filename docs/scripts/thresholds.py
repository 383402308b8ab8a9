"""Measure verification thresholds on real speech: LibriSpeech, VCTK and CMU ARCTIC, separately.

Run it from the repository root (a few minutes on a CPU)::

    python docs/scripts/thresholds.py [--speech ../shared/data/speech] [--weights resemblyzer]

It reads ``MANIFEST.tsv`` for the speaker of each file, takes every pair of files within a
corpus as a trial (same speaker = target), embeds each file once (utterance embeddings, the
default pipeline), and reports per corpus: the EER and its threshold, the thresholds at 1 % and
0.1 % false accepts and the false rejects there, the error rates at the recommended threshold
(LibriSpeech's at 0.1 % false accepts, rounded up), and the false rejects at the old example
threshold 0.8. A rate below one trial (``far < 1 / n_nontarget``) is not measurable and is left
blank. It writes:

* ``docs/_static/thresholds.csv``: the table the docs show;
* ``docs/_static/thresholds.json``: the same, with the trial counts and the weights;
* ``docs/_static/thresholds_det.png``: the DET curves of the corpora on one plot;
* ``docs/_static/thresholds_<corpus>.png``: histograms and DET curve of each corpus.

VCTK here has one file per speaker, so it has no same-speaker pair of files. Its target trials
are the two halves of each recording against each other (same session, same sentence: an easy,
optimistic case), and its non-target trials are halves of different speakers; the table says so.
Concatenations under ``long/`` are left out (they repeat other files).
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from speakerembed import SpeakerEmbedder  # noqa: E402
from speakerembed.analysis.plots import plot_det_curve, plot_verification, save_figure  # noqa: E402
from speakerembed.analysis.scoring import eer, threshold_at  # noqa: E402

CORPORA = {"librispeech": "LibriSpeech", "vctk": "VCTK (halves)", "cmu_arctic": "CMU ARCTIC"}
OLD_THRESHOLD = 0.8


def read_manifest(speech: Path) -> dict[str, list[tuple[Path, str]]]:
    """Corpus -> [(file, speaker)], from MANIFEST.tsv, without ``long/``."""
    groups: dict[str, list[tuple[Path, str]]] = {c: [] for c in CORPORA}
    with open(speech / "MANIFEST.tsv", encoding="utf-8") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            corpus, _, speaker = row["speaker"].partition(":")
            if corpus in groups and not row["path"].startswith("long/"):
                groups[corpus].append((speech / row["path"], speaker))
    return groups


def halves(embedder: SpeakerEmbedder, files: list[tuple[Path, str]]) -> tuple[np.ndarray, list[str]]:
    """Embed the first and second half of each file: two "utterances" per speaker."""
    import soundfile as sf

    waves, rates, speakers = [], [], []
    for path, speaker in files:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
        mono = data.mean(axis=1)
        mid = mono.size // 2
        waves += [mono[:mid], mono[mid:]]
        rates += [rate, rate]
        speakers += [speaker, speaker]
    return embedder.embed_utterances(waves, sample_rate=rates), speakers


def trials(rows: np.ndarray, speakers: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Every pair: (scores, labels)."""
    pairs = list(itertools.combinations(range(len(speakers)), 2))
    scores = np.array([float(rows[i] @ rows[j]) for i, j in pairs])
    labels = np.array([speakers[i] == speakers[j] for i, j in pairs])
    return scores, labels


def measure(scores: np.ndarray, labels: np.ndarray) -> dict[str, object]:
    """The table's numbers for one corpus."""
    n_t, n_n = int(labels.sum()), int((~labels).sum())
    out: dict[str, object] = {"n_target": n_t, "n_nontarget": n_n}
    e = eer(scores, labels)
    out["eer"], out["eer_threshold"] = e.value, e.threshold
    for far in (0.01, 0.001):
        key = f"far_{far:g}"
        if far * n_n < 1:  # fewer than one false accept allowed: not measurable here
            out[f"{key}_threshold"] = out[f"{key}_frr"] = None
            continue
        point = threshold_at(scores, labels, far=far)
        out[f"{key}_threshold"], out[f"{key}_frr"] = point.threshold, point.frr
    out["frr_at_0.8"] = float(np.mean(scores[labels] < OLD_THRESHOLD))
    out["max_nontarget"] = float(scores[~labels].max())
    return out


def main() -> int:
    """Measure, write the table and the plots."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speech", type=Path, default=ROOT.parent / "shared" / "data" / "speech")
    parser.add_argument("--weights", default="resemblyzer")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "_static")
    args = parser.parse_args()

    embedder = SpeakerEmbedder(args.weights, device="cpu")
    groups = read_manifest(args.speech)
    results: dict[str, dict[str, object]] = {}
    det = None
    for corpus, title in CORPORA.items():
        files = groups[corpus]
        if corpus == "vctk":
            rows, speakers = halves(embedder, files)
        else:
            rows = embedder.embed_utterances([p for p, _ in files])
            speakers = [s for _, s in files]
        scores, labels = trials(rows, speakers)
        r = measure(scores, labels)
        r["scores"], r["labels"] = scores, labels
        r.update(corpus=title, files=len(files), speakers=len(set(speakers)))
        results[corpus] = r
        print(
            f"{title:<14} {r['files']:>3} files {r['speakers']:>2} speakers "
            f"{r['n_target']:>4} target {r['n_nontarget']:>5} non-target  "
            f"EER {100 * float(r['eer']):5.2f}% at {float(r['eer_threshold']):.3f}  "  # type: ignore[arg-type]
            f"@1%FA {r['far_0.01_threshold']}  @0.1%FA {r['far_0.001_threshold']}  "
            f"FRR@0.8 {100 * float(r['frr_at_0.8']):.1f}%"  # type: ignore[arg-type]
        )
        fig = plot_verification(scores, labels, label=title, title=f"{title}: {embedder.weights_info.short}")
        save_figure(fig, args.out / f"thresholds_{corpus}.png")
        label = f"{title}, {r['n_target']}/{r['n_nontarget']} trials"
        det = plot_det_curve(scores, labels, label=label, ax=det.axes[0] if det is not None else None,
                             title=f"DET curves, weights {embedder.weights_info.short}")  # fmt: skip
    assert det is not None
    save_figure(det, args.out / "thresholds_det.png")
    # The threshold the examples use: LibriSpeech's (the largest set) at 0.1 % false accepts,
    # rounded up to two decimals so that it stays within 0.1 % there.
    strict = float(results["librispeech"]["far_0.001_threshold"])  # type: ignore[arg-type]
    recommended = float(np.ceil(strict * 100) / 100)
    for r in results.values():
        s, y = r.pop("scores"), r.pop("labels")
        r["far_at_recommended"] = float(np.mean(s[~y] >= recommended))  # type: ignore[index]
        r["frr_at_recommended"] = float(np.mean(s[y] < recommended))  # type: ignore[index]
    print(f"recommended threshold {recommended}")

    def pct(v: object) -> str:
        return "n/a" if v is None else f"{100 * float(v):.1f}"  # type: ignore[arg-type]

    def thr(v: object) -> str:
        return "n/a" if v is None else f"{float(v):.3f}"  # type: ignore[arg-type]

    with open(args.out / "thresholds.csv", "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["corpus", "speakers", "target / non-target trials", "EER %", "EER threshold",
                    "threshold at 1% FA", "FRR % there", "threshold at 0.1% FA", "FRR % there",
                    f"FAR % at {recommended}", f"FRR % at {recommended}", "FRR % at 0.8"])  # fmt: skip
        for r in results.values():
            w.writerow([r["corpus"], r["speakers"], f"{r['n_target']} / {r['n_nontarget']}", pct(r["eer"]),
                        thr(r["eer_threshold"]), thr(r["far_0.01_threshold"]), pct(r["far_0.01_frr"]),
                        thr(r["far_0.001_threshold"]), pct(r["far_0.001_frr"]),
                    pct(r["far_at_recommended"]), pct(r["frr_at_recommended"]),
                    pct(r["frr_at_0.8"])])  # fmt: skip
    meta = {
        "weights": embedder.weights_info.short,
        "pipeline": repr(embedder.pipeline),
        "recommended_threshold": recommended,
        "corpora": results,
    }
    (args.out / "thresholds.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}/thresholds.csv, thresholds.json and thresholds_*.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
