"""Chatterbox TTS's voice-conditioning embedding, reproduced with speakerembed.

Run it:  python examples/chatterbox_conditioning.py [FILE ...]

When Chatterbox clones a voice (``ChatterboxTTS.prepare_conditionals`` in chatterbox-tts 0.1.7),
it computes the speaker embedding that conditions its T3 model like this::

    wav_24k, _ = librosa.load(path, sr=24000)                  # decode, mono, soxr_hq to 24 kHz
    wav_16k = librosa.resample(wav_24k, orig_sr=24000, target_sr=16000)   # soxr_hq again
    ve_embed = ve.embeds_from_wavs([wav_16k], sample_rate=16000)  # trim 20 dB, mel, windows
    ve_embed = ve_embed.mean(axis=0)                            # mean of rows, NOT renormalised

That differs from ``embeds_from_wavs(wavs, sr)`` on the original file (which resamples once, with
resampy's kaiser_fast), so the two embeddings differ slightly. :func:`conditioning_embedding`
below reproduces the TTS chain with speakerembed, without librosa or chatterbox-tts: pass
Chatterbox's weights (the default, ``"chatterbox"``) or a running ``ChatterboxTTS``'s ``.ve``
as ``SpeakerEmbedder(encoder=tts.ve)`` to get the vector Chatterbox would use for that file.

This script uses the offline Resemblyzer weights so that it runs without network access.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from speakerembed import Pipeline, SpeakerEmbedder, embed_speaker
from speakerembed.load import load_audio
from speakerembed.resample import resample

AUDIO = Path(__file__).resolve().parent / "audio"
S3GEN_SR = 24_000  # Chatterbox's decoder rate: reference audio is loaded at this rate first
S3_SR = 16_000  # the voice encoder's rate


def load_like_chatterbox(path: str | os.PathLike[str]) -> npt.NDArray[np.float32]:
    """``librosa.load(path, sr=24000)`` then ``librosa.resample(..., 24000, 16000)``, both soxr_hq.

    Returns
    -------
    numpy.ndarray, shape (n_samples,), float32, at 16 kHz
    """
    wav, sr = load_audio(path)  # decode, float32, mean of the channels: as librosa.load
    wav_24k = resample(wav, sr, S3GEN_SR, "soxr_hq")
    return resample(wav_24k, S3GEN_SR, S3_SR, "soxr_hq")


def conditioning_embedding(
    paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], embedder: SpeakerEmbedder
) -> npt.NDArray[np.float32]:
    """The speaker embedding Chatterbox TTS conditions on, for one or more reference files.

    Parameters
    ----------
    paths : path or sequence of paths
        Reference recordings of one voice. Chatterbox itself takes one file; for several, the
        utterance embeddings are averaged the same way (mean of the rows, not renormalised).
    embedder : SpeakerEmbedder
        Holds the voice-encoder weights: ``SpeakerEmbedder()`` for Chatterbox's, or
        ``SpeakerEmbedder(encoder=tts.ve)`` to share a loaded ``ChatterboxTTS``'s encoder.

    Returns
    -------
    numpy.ndarray, shape (256,), float32
        Not exactly unit norm when there are several files, as in Chatterbox.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    wavs = [load_like_chatterbox(p) for p in paths]
    # At 16 kHz nothing is resampled again; the default pipeline then trims at 20 dB and uses
    # Chatterbox's windows (rate 1.3, 160 frames, min_coverage 0.8), as embeds_from_wavs does.
    rows = embedder.embed_utterances(wavs, sample_rate=S3_SR, pipeline=Pipeline(top_db=20))
    return rows.mean(axis=0).astype(np.float32)


def main(argv: Sequence[str]) -> None:
    files = [Path(a) for a in argv] or [AUDIO / "alice_1.wav"]
    embedder = SpeakerEmbedder("resemblyzer", device="cpu")  # use SpeakerEmbedder() for Chatterbox's weights
    for path in files:
        cond = conditioning_embedding(path, embedder)
        plain = embed_speaker(path, weights="resemblyzer", device="cpu", pipeline=Pipeline())
        print(f"{path.name}: conditioning embedding {cond.shape}, norm {np.linalg.norm(cond):.4f}")
        print(f"  cosine with a plain embed_speaker of the same file: {float(cond @ plain):.5f}")
    if len(files) > 1:
        both = conditioning_embedding(files, embedder)
        print(f"all {len(files)} files together: norm {np.linalg.norm(both):.4f} (a mean, not renormalised)")


if __name__ == "__main__":
    main(sys.argv[1:])
