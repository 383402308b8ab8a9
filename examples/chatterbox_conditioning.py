"""The speaker embedding Chatterbox TTS conditions on, without loading the TTS.

Run it:  python examples/chatterbox_conditioning.py [FILE ...]

When Chatterbox clones a voice (``ChatterboxTTS.prepare_conditionals`` in chatterbox-tts 0.1.7),
it does not embed the reference file as it is: it loads it at 24 kHz with librosa (soxr),
resamples that to 16 kHz (soxr again), calls ``embeds_from_wavs`` (a 20 dB trim, rate 1.3), and
takes the mean over utterances without renormalising it. That vector is ``T3Cond.speaker_emb``.

:meth:`SpeakerEmbedder.embed_conditioning <speakerembed.SpeakerEmbedder.embed_conditioning>` runs
that chain (the CLI: ``speakerembed embed --chatterbox-conditioning ref.wav -o cond.npy``). With
Chatterbox's weights (``SpeakerEmbedder()``, the default) or a running ``ChatterboxTTS``'s encoder
(``SpeakerEmbedder(encoder=tts.ve)``) it is the vector Chatterbox would use for that file.

This script uses the offline Resemblyzer weights so that it runs without network access.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from speakerembed import SpeakerEmbedder

AUDIO = Path(__file__).resolve().parent / "audio"


def main(argv: Sequence[str]) -> None:
    files = [Path(a) for a in argv] or [AUDIO / "alice_1.wav"]
    embedder = SpeakerEmbedder("resemblyzer", device="cpu")  # SpeakerEmbedder() for Chatterbox's weights
    for path in files:
        cond = embedder.embed_conditioning(path)  # what prepare_conditionals(path) conditions T3 on
        plain = embedder.embed_speaker(path)  # the file embedded as it is, resampled once
        print(f"{path.name}: conditioning embedding {cond.shape}, norm {np.linalg.norm(cond):.4f}")
        print(f"  cosine with a plain embed_speaker of the same file: {float(cond @ plain):.5f}")
    if len(files) > 1:
        both = embedder.embed_conditioning(files)
        print(f"all {len(files)} files together: norm {np.linalg.norm(both):.4f} (a mean, not renormalised)")


if __name__ == "__main__":
    main(sys.argv[1:])
