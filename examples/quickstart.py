"""Quickstart: utterance and speaker embeddings of the example clips, and their similarities.

Run it from anywhere:  python examples/quickstart.py

It uses the offline Resemblyzer weights (pip install 'speakerembed[resemblyzer]'), so it needs no
network. In your own code, leave ``weights`` out to get Chatterbox's weights from the Hugging
Face hub, the embeddings that Chatterbox TTS itself computes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from speakerembed import SpeakerEmbedder, cosine_similarity, embed_speaker, embed_utterances

AUDIO = Path(__file__).resolve().parent / "audio"
WEIGHTS = "resemblyzer"  # offline; the default, "chatterbox", comes from the Hugging Face hub


def main() -> None:
    files = sorted(AUDIO.glob("*.wav"))

    # One L2-normalised 256-d row per file (Chatterbox's as_spk=False).
    utterances = embed_utterances(files, weights=WEIGHTS, device="cpu")
    print(f"utterance embeddings: shape {utterances.shape}, dtype {utterances.dtype}")

    # One speaker embedding from several files of one voice (Chatterbox's as_spk=True).
    alice = embed_speaker(sorted(AUDIO.glob("alice_*.wav")), weights=WEIGHTS, device="cpu")
    print(f"speaker embedding of alice: shape {alice.shape}, norm {np.linalg.norm(alice):.4f}")

    # Cosine similarity between every pair of clips: rows are unit vectors, so it is a dot product.
    names = [f.stem for f in files]
    sims = utterances @ utterances.T
    print("\ncosine similarity between clips:")
    print(" " * 8 + "".join(f"{n:>8}" for n in names))
    for name, row in zip(names, sims, strict=True):
        print(f"{name:>8}" + "".join(f"{v:8.3f}" for v in row))

    # For many calls, hold an embedder: the weights stay loaded on their device.
    embedder = SpeakerEmbedder(WEIGHTS, device="cpu")
    print(f"\nembedder: {embedder!r}")
    voices = {v: embedder.embed_speaker(sorted(AUDIO.glob(f"{v}_*.wav"))) for v in ("alice", "bob", "carol")}
    print("speaker similarity:")
    for a in voices:
        print("  " + "  ".join(f"{a}~{b} {cosine_similarity(voices[a], voices[b]):.3f}" for b in voices))


if __name__ == "__main__":
    main()
