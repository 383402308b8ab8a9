"""Draw the gallery's plots on the bundled voices (examples/audio), into docs/_static/gallery_*.png.

Run it from the repository root (about a minute on a CPU; needs matplotlib)::

    python docs/scripts/gallery.py

Every plot comes from :mod:`speakerembed.analysis.plots`; the code below is what docs/gallery.rst shows.
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from speakerembed import SpeakerEmbedder  # noqa: E402
from speakerembed.analysis.plots import (  # noqa: E402
    plot_det_curve,
    plot_projection,
    plot_score_histograms,
    plot_similarity_matrix,
    save_figure,
)

AUDIO = ROOT / "examples" / "audio"
OUT = ROOT / "docs" / "_static"
THRESHOLD = 0.75  # the recommended threshold (docs/verification.rst)


def main() -> int:
    """Embed the nine bundled clips and draw each plot."""
    files = sorted(AUDIO.glob("*.wav"))
    speakers = [f.stem.split("_")[0] for f in files]
    embedder = SpeakerEmbedder("resemblyzer", device="cpu")
    rows = embedder.embed_utterances(files)

    # Every pair of clips is a trial: same voice or not.
    pairs = list(itertools.combinations(range(len(files)), 2))
    scores = np.array([float(rows[i] @ rows[j]) for i, j in pairs])
    labels = np.array([speakers[i] == speakers[j] for i, j in pairs])

    figures = {
        "similarity": plot_similarity_matrix(rows, speakers, names=[f.name for f in files]),
        "projection": plot_projection(rows, speakers, method="pca"),
        "histograms": plot_score_histograms(scores, labels, threshold=THRESHOLD, bins=20),
        "det": plot_det_curve(scores, labels, label="bundled voices"),
    }
    for name, fig in figures.items():
        save_figure(fig, OUT / f"gallery_{name}.png")
        print(f"wrote docs/_static/gallery_{name}.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
