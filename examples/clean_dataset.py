"""Dataset cleaning: flag clips that do not sound like the rest of their speaker's clips.

Run it:  python examples/clean_dataset.py

A TTS or speaker-recognition dataset often has a few mislabelled clips. Embed every clip of a
speaker, compare each clip with the speaker embedding of the *other* clips (leave-one-out, so
an outlier does not pull the reference towards itself), and flag the clips that score low.
Here a clip of "bob" is slipped in among alice's clips, and is found.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from speakerembed import SpeakerEmbedder, utt_to_spk_embed

AUDIO = Path(__file__).resolve().parent / "audio"


def outlier_scores(embeddings: np.ndarray) -> np.ndarray:
    """Cosine of each row with the speaker embedding of all the other rows."""
    scores = np.empty(len(embeddings))
    for i in range(len(embeddings)):
        others = np.delete(embeddings, i, axis=0)
        scores[i] = float(embeddings[i] @ utt_to_spk_embed(others))
    return scores


def main() -> None:
    clips = [*sorted(AUDIO.glob("alice_*.wav")), AUDIO / "bob_2.wav"]  # one mislabelled clip
    embedder = SpeakerEmbedder("resemblyzer", device="cpu")  # offline weights
    embeddings = embedder.embed_utterances(clips)
    scores = outlier_scores(embeddings)
    # A robust cut: well below the median score of the speaker's clips.
    cut = float(np.median(scores)) - 0.1
    print(f"speaker 'alice': {len(clips)} clips, flagging clips below {cut:.3f}")
    for clip, score in sorted(zip(clips, scores, strict=True), key=lambda x: x[1]):
        flag = "OUTLIER" if score < cut else "ok"
        print(f"  {clip.name:<12} {score:.3f}  {flag}")
    flagged = [c.name for c, s in zip(clips, scores, strict=True) if s < cut]
    print(f"flagged: {', '.join(flagged) if flagged else 'none'}")


if __name__ == "__main__":
    main()
