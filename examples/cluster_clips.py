"""Group unlabelled clips into speakers, offline, in seconds.

Run it:  python examples/cluster_clips.py [CLIP ...]

Without arguments it shuffles the bundled clips (three voices, three clips each) and forgets
their names' speakers; :func:`speakerembed.cluster_speakers` finds the voices again from the
embeddings alone (average linkage cut at a cosine measured on real speech; see
docs/clustering.rst), and :func:`speakerembed.bcubed` scores the result against the names.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

from speakerembed import bcubed, cluster_speakers, embed_utterances
from speakerembed.analysis.clustering import DEFAULT_THRESHOLD, cluster_confidence

AUDIO = Path(__file__).resolve().parent / "audio"


def main(argv: list[str]) -> int:
    clips = [Path(a) for a in argv] or sorted(AUDIO.glob("*.wav"))
    if not argv:
        random.Random(0).shuffle(clips)
    x = embed_utterances([str(c) for c in clips], weights="resemblyzer", device="cpu")  # (n, 256)
    labels = cluster_speakers(x)
    confidence = cluster_confidence(x, labels)
    print(f"{len(clips)} clips, {len(set(labels.tolist()))} speakers at threshold {DEFAULT_THRESHOLD}:")
    for label, conf, clip in sorted(zip(labels.tolist(), confidence.tolist(), clips, strict=True)):
        print(f"  speaker {label}  {clip.name:<14} cosine to its centroid {conf:.3f}")
    if not argv:
        truth = [c.name.split("_")[0] for c in clips]
        score = bcubed(truth, labels)
        print(f"B-cubed against the file names: precision {score.precision:.3f}, recall {score.recall:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
