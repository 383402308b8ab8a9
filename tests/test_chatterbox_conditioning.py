"""The TTS-conditioning recipe of docs/chatterbox.rst against chatterbox-tts 0.1.7 itself.

``ChatterboxTTS.prepare_conditionals`` is called for real, on a stand-in ``self`` whose S3Gen and
T3 parts are stubs (their weights cannot be downloaded here) and whose ``.ve`` is Chatterbox's own
``VoiceEncoder`` holding the Resemblyzer weights. The speaker embedding it puts into
``T3Cond.speaker_emb`` must equal the documented recipe, and the example program's version.
Run with ``nox -s tests_chatterbox``.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from speakerembed import SpeakerEmbedder
from speakerembed.load import load_audio
from speakerembed.resample import resample

pytestmark = [
    pytest.mark.chatterbox,
    pytest.mark.skipif(
        importlib.util.find_spec("chatterbox") is None,
        reason="chatterbox-tts is not installed (nox -s tests_chatterbox installs it)",
    ),
]

ROOT = Path(__file__).resolve().parents[1]

# Mono and stereo; WAV, FLAC, Ogg and MP3; 16, 22.05, 24, 44.1 and 48 kHz.
REFERENCES = [
    "librispeech/1688/1688-142285-0000.flac",
    "misc/jfk_44k_stereo.flac",
    "misc/hifitts_44k.wav",
    "misc/libritts_24k.wav",
    "misc/librispeech_198_22k.ogg",
    "misc/commonvoice_48k.mp3",
    "vctk48k/p230_023.wav",
]


@pytest.fixture(scope="module")
def chatterbox_ve() -> object:
    from chatterbox.models.voice_encoder import VoiceEncoder

    from speakerembed.encoder import adapt_state_dict
    from speakerembed.weights import load_state_dict, resolve_weights

    ve = VoiceEncoder()
    ve.load_state_dict(adapt_state_dict(load_state_dict(resolve_weights("resemblyzer").path or "")))
    return ve.eval()


def chatterbox_conditioning(ve: object, path: Path) -> np.ndarray:
    """``T3Cond.speaker_emb`` as chatterbox-tts's own ``prepare_conditionals`` computes it."""
    import torch
    from chatterbox.tts import ChatterboxTTS

    def tokenize(wavs: object, max_len: int) -> tuple[object, None]:
        return torch.zeros(1, 1, dtype=torch.long), None

    tokenizer = types.SimpleNamespace(forward=tokenize)
    stand_in = types.SimpleNamespace(
        ve=ve,
        device="cpu",
        DEC_COND_LEN=ChatterboxTTS.DEC_COND_LEN,
        ENC_COND_LEN=ChatterboxTTS.ENC_COND_LEN,
        s3gen=types.SimpleNamespace(embed_ref=lambda *args, **kwargs: {}, tokenizer=tokenizer),
        t3=types.SimpleNamespace(hp=types.SimpleNamespace(speech_cond_prompt_len=1)),
    )
    ChatterboxTTS.prepare_conditionals(stand_in, str(path))
    emb: np.ndarray = stand_in.conds.t3.speaker_emb.detach().cpu().numpy()
    return emb


def documented_recipe(embedder: SpeakerEmbedder, path: Path) -> np.ndarray:
    """The recipe in docs/chatterbox.rst, verbatim but for the names."""
    wav, sr = load_audio(path)
    wav_24k = resample(wav, sr, 24000, "soxr_hq")
    rows = embedder.embed_utterances(wav_24k, sample_rate=24000)
    return rows.mean(axis=0, keepdims=True)


@pytest.mark.parametrize("name", REFERENCES)
def test_recipe_reproduces_prepare_conditionals(chatterbox_ve: object, speech: Path, name: str) -> None:
    path = speech / name
    if not path.is_file():
        pytest.skip(f"{path} is not in the shared speech data")
    expected = chatterbox_conditioning(chatterbox_ve, path)
    embedder = SpeakerEmbedder(encoder=chatterbox_ve)  # the TTS's own module, shared
    got = documented_recipe(embedder, path)
    assert got.shape == expected.shape == (1, 256)
    cosine = float(got[0] @ expected[0] / np.linalg.norm(got[0]) / np.linalg.norm(expected[0]))
    assert cosine >= 0.99999, f"{name}: cosine {cosine}"
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_example_program_matches_prepare_conditionals(chatterbox_ve: object, speech: Path) -> None:
    path = speech / REFERENCES[1]
    if not path.is_file():
        pytest.skip(f"{path} is not in the shared speech data")
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        import chatterbox_conditioning as example
    finally:
        sys.path.remove(str(ROOT / "examples"))
    got = example.conditioning_embedding(path, SpeakerEmbedder(encoder=chatterbox_ve))
    np.testing.assert_allclose(got, chatterbox_conditioning(chatterbox_ve, path)[0], atol=1e-5)
