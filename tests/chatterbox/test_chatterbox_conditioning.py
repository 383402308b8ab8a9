"""``embed_conditioning`` against chatterbox-tts 0.1.7's own ``prepare_conditionals``.

``ChatterboxTTS.prepare_conditionals`` is called for real, on a stand-in ``self`` whose S3Gen and
T3 parts are stubs (their weights cannot be downloaded here) and whose ``.ve`` is Chatterbox's own
``VoiceEncoder`` holding the Resemblyzer weights. The speaker embedding it puts into
``T3Cond.speaker_emb`` must equal :func:`speakerembed.embed_conditioning`'s, through the API and
the CLI.
Run with ``nox -s tests_chatterbox``.
"""

from __future__ import annotations

import importlib.util
import types
from pathlib import Path

import numpy as np
import pytest

from speakerembed import SpeakerEmbedder

pytestmark = [
    pytest.mark.chatterbox,
    pytest.mark.skipif(
        importlib.util.find_spec("chatterbox") is None,
        reason="chatterbox-tts is not installed (nox -s tests_chatterbox installs it)",
    ),
]

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

    from speakerembed.stages.encoder import adapt_state_dict
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


@pytest.mark.parametrize("name", REFERENCES)
def test_embed_conditioning_reproduces_prepare_conditionals(
    chatterbox_ve: object, speech: Path, name: str
) -> None:
    path = speech / name
    if not path.is_file():
        pytest.skip(f"{path} is not in the shared speech data")
    expected = chatterbox_conditioning(chatterbox_ve, path)
    shared = SpeakerEmbedder(encoder=chatterbox_ve)  # the TTS's own module
    own = SpeakerEmbedder("resemblyzer", device="cpu")  # speakerembed's network, same weights
    for got in (shared.embed_conditioning(path), own.embed_conditioning(path)):
        assert got.shape == (256,)
        cosine = float(got @ expected[0] / np.linalg.norm(got) / np.linalg.norm(expected[0]))
        assert cosine >= 0.99999, f"{name}: cosine {cosine}"
        np.testing.assert_allclose(got[None], expected, atol=1e-5)


def test_cli_chatterbox_conditioning_writes_prepare_conditionals(
    chatterbox_ve: object, speech: Path, tmp_path: Path
) -> None:
    from speakerembed.cli import main

    path = speech / REFERENCES[2]
    if not path.is_file():
        pytest.skip(f"{path} is not in the shared speech data")
    out = tmp_path / "cond.npy"
    code = main(
        [
            "embed",
            "--chatterbox-conditioning",
            str(path),
            "--weights",
            "resemblyzer",
            "--device",
            "cpu",
            "-o",
            str(out),
        ]
    )
    assert code == 0
    np.testing.assert_allclose(np.load(out)[None], chatterbox_conditioning(chatterbox_ve, path), atol=1e-5)
