"""Parity with chatterbox-tts 0.1.7's own code, with the same weights on both sides.

Run with chatterbox-tts installed (``nox -s tests_chatterbox``, or ``pytest -m chatterbox`` in an
environment that has it). The weights are Resemblyzer's ``pretrained.pt`` (the Hub's Chatterbox
weights cannot be downloaded in CI), loaded into Chatterbox's ``VoiceEncoder`` with
``linear.*`` read as ``proj.*``, exactly as speakerembed loads them.
"""

from __future__ import annotations

import types
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from conftest import speech_wave

from speakerembed import Pipeline, SpeakerEmbedder
from speakerembed.stages.encoder import adapt_state_dict
from speakerembed.stages.load import load_audio
from speakerembed.stages.resample import resample
from speakerembed.weights import load_state_dict

pytestmark = pytest.mark.chatterbox

cb_ve = pytest.importorskip(
    "chatterbox.models.voice_encoder", reason="chatterbox-tts is not installed (nox -s tests_chatterbox)"
)
librosa = pytest.importorskip("librosa")

COSINE = 0.99999

# Real recordings at 44.1 and 48 kHz (relative to the speech directory).
REAL_HIGH_RATE = [
    "misc/hifitts_44k.wav",
    "misc/jfk_44k_stereo.flac",
    "vctk48k/p228_023.wav",
    "vctk48k/p236_023.wav",
]


def _cosines(a: npt.NDArray[np.float32], b: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    a64, b64 = np.atleast_2d(a).astype(np.float64), np.atleast_2d(b).astype(np.float64)
    return np.sum(a64 * b64, axis=1) / (np.linalg.norm(a64, axis=1) * np.linalg.norm(b64, axis=1))


@pytest.fixture(scope="module")
def chatterbox_ve(resemblyzer_weights: Path) -> Any:
    """Chatterbox's own VoiceEncoder class holding the Resemblyzer weights, on the CPU."""
    ve = cb_ve.VoiceEncoder()
    ve.load_state_dict(adapt_state_dict(load_state_dict(resemblyzer_weights)), strict=True)
    return ve.eval()


@pytest.fixture(scope="module")
def librispeech_waves(librispeech_files: list[Path]) -> list[npt.NDArray[np.float32]]:
    return [speech_wave(p)[0] for p in librispeech_files]


# -- (a) 16 kHz, default pipeline --------------------------------------------------------------


def test_16k_default_pipeline_matches_embeds_from_wavs(
    embedder: SpeakerEmbedder,
    chatterbox_ve: Any,
    librispeech_files: list[Path],
    librispeech_waves: list[npt.NDArray[np.float32]],
) -> None:
    theirs = chatterbox_ve.embeds_from_wavs(librispeech_waves, 16000)
    ours_files = embedder.embed_utterances(librispeech_files)
    ours_arrays = embedder.embed_utterances(librispeech_waves, sample_rate=16000)
    assert theirs.shape == ours_files.shape == (len(librispeech_files), 256)
    cos = _cosines(ours_files, theirs)
    worst = int(np.argmin(cos))
    assert cos.min() >= COSINE, (librispeech_files[worst].name, cos.min())
    assert np.max(np.abs(ours_files - theirs)) < 1e-5
    np.testing.assert_allclose(ours_arrays, ours_files, atol=1e-6)


# -- (b) 44.1 and 48 kHz with kaiser_fast --------------------------------------------------------


@pytest.mark.parametrize("sample_rate", [44100, 48000])
def test_high_rates_with_kaiser_fast_match_embeds_from_wavs(
    embedder: SpeakerEmbedder,
    chatterbox_ve: Any,
    librispeech_waves: list[npt.NDArray[np.float32]],
    sample_rate: int,
) -> None:
    # LibriSpeech resampled up inside the test (every sixth utterance, to keep this quick).
    wavs = [resample(w, 16000, sample_rate, "soxr_hq") for w in librispeech_waves[::6]]
    theirs = chatterbox_ve.embeds_from_wavs(wavs, sample_rate)
    ours = embedder.embed_utterances(
        wavs, sample_rate=sample_rate, pipeline=Pipeline(resampler="kaiser_fast")
    )
    assert _cosines(ours, theirs).min() >= COSINE
    preset = embedder.embed_utterances(wavs, sample_rate=sample_rate, pipeline=Pipeline.chatterbox())
    np.testing.assert_array_equal(preset, ours)


def test_real_high_rate_recordings_with_kaiser_fast(
    embedder: SpeakerEmbedder, chatterbox_ve: Any, speech: Path
) -> None:
    pipe = Pipeline(resampler="kaiser_fast")
    for name in REAL_HIGH_RATE:
        wav, sr = speech_wave(speech / name)  # the stereo file is downmixed by the mean, as we do
        assert sr in (44100, 48000)
        theirs = chatterbox_ve.embeds_from_wavs([wav], sr)
        ours_file = embedder.embed_utterances(speech / name, pipeline=pipe)
        assert _cosines(ours_file, theirs).min() >= COSINE, name


def test_default_soxr_is_close_but_not_identical_at_high_rates(
    embedder: SpeakerEmbedder, chatterbox_ve: Any, speech: Path
) -> None:
    # The default resampler (soxr_hq) differs from Chatterbox's kaiser_fast: close, not exact.
    wav, sr = speech_wave(speech / REAL_HIGH_RATE[2])
    theirs = chatterbox_ve.embeds_from_wavs([wav], sr)
    ours = embedder.embed_utterances(wav, sample_rate=sr)
    assert _cosines(ours, theirs).min() > 0.999


# -- (c) speaker embeddings ---------------------------------------------------------------------


def test_embed_speaker_matches_as_spk(
    embedder: SpeakerEmbedder, chatterbox_ve: Any, librispeech: dict[str, list[Path]]
) -> None:
    for speaker, all_files in librispeech.items():
        files = sorted(all_files, key=lambda p: p.stat().st_size)[:3]  # the three shortest
        wavs = [speech_wave(p)[0] for p in files]
        theirs = chatterbox_ve.embeds_from_wavs(wavs, 16000, as_spk=True)
        ours = embedder.embed_speaker(files)
        assert ours.shape == theirs.shape == (256,)
        assert _cosines(ours, theirs)[0] >= COSINE, speaker
        # utt_to_spk_embed is Chatterbox's static method, validated.
        utts = embedder.embed_utterances(files)
        np.testing.assert_allclose(cb_ve.VoiceEncoder.utt_to_spk_embed(utts), ours, atol=1e-6)


def test_embeds_from_wavs_signature_matches(
    embedder: SpeakerEmbedder, chatterbox_ve: Any, librispeech_waves: list[npt.NDArray[np.float32]]
) -> None:
    wavs = librispeech_waves[:4]
    np.testing.assert_allclose(
        embedder.embeds_from_wavs(wavs, 16000, as_spk=True),
        chatterbox_ve.embeds_from_wavs(wavs, 16000, as_spk=True),
        atol=1e-5,
    )


# Every argument of embeds_from_wavs, as chatterbox-tts takes it (**kwargs go to inference()).
WAVS_ARGUMENTS: list[dict[str, Any]] = [
    {},
    {"as_spk": True},
    {"rate": 2.5},
    {"rate": 0.9, "min_coverage": 1.0},
    {"rate": None},
    {"rate": None, "overlap": 0.25},
    {"rate": None, "overlap": 0.75, "min_coverage": 0.5},
    {"min_coverage": 0.3},
    {"trim_top_db": None},
    {"trim_top_db": 0},
    {"trim_top_db": 35},
    {"trim_top_db": 10, "rate": 1.7},
    {"batch_size": 3},
    {"batch_size": None},
    {"as_spk": True, "batch_size": 1, "rate": 2.0, "trim_top_db": 30},
]


# At 44.1 kHz (kaiser_fast resampling first), a few of them: the windows do not depend on the rate.
WAVS_44K = [{}, {"as_spk": True}, {"rate": None, "overlap": 0.25}, {"trim_top_db": None}, {"batch_size": 3}]


@pytest.mark.parametrize(
    ("sample_rate", "kwargs"),
    [(16000, k) for k in WAVS_ARGUMENTS] + [(44100, k) for k in WAVS_44K],
    ids=lambda v: ",".join(f"{a}={b}" for a, b in v.items()) if isinstance(v, dict) else str(v),
)
def test_every_embeds_from_wavs_argument_matches(
    embedder: SpeakerEmbedder,
    chatterbox_ve: Any,
    librispeech_waves: list[npt.NDArray[np.float32]],
    sample_rate: int,
    kwargs: dict[str, Any],
) -> None:
    wavs = librispeech_waves[::20]
    if sample_rate != 16000:
        wavs = [resample(w, 16000, sample_rate, "soxr_hq") for w in wavs]
    theirs = chatterbox_ve.embeds_from_wavs(wavs, sample_rate, **kwargs)
    ours = embedder.embeds_from_wavs(wavs, sample_rate, **kwargs)
    assert ours.shape == theirs.shape
    assert _cosines(ours, theirs).min() >= COSINE
    assert np.max(np.abs(ours - theirs)) < 1e-5


MELS_ARGUMENTS: list[dict[str, Any]] = [
    {},
    {"as_spk": True},
    {"rate": 1.3},
    {"overlap": 0.1, "min_coverage": 0.5},
    {"rate": 2.2, "min_coverage": 1.0, "batch_size": 5},
]


@pytest.mark.parametrize("kwargs", MELS_ARGUMENTS, ids=lambda k: ",".join(f"{a}={v}" for a, v in k.items()))
def test_every_embeds_from_mels_argument_matches(
    embedder: SpeakerEmbedder,
    chatterbox_ve: Any,
    librispeech_waves: list[npt.NDArray[np.float32]],
    kwargs: dict[str, Any],
) -> None:
    from chatterbox.models.voice_encoder.melspec import melspectrogram

    mels = [melspectrogram(w, chatterbox_ve.hp).T for w in librispeech_waves[::20]]
    theirs = chatterbox_ve.embeds_from_mels(mels, **kwargs)
    ours = embedder.embeds_from_mels(mels, **kwargs)
    assert ours.shape == theirs.shape
    assert _cosines(ours, theirs).min() >= COSINE
    # A padded (B, T, 40) tensor with mel_lens, as Chatterbox packs it.
    lens = [m.shape[0] for m in mels]
    batch = cb_ve.voice_encoder.pack(mels)
    theirs_t = chatterbox_ve.embeds_from_mels(batch, lens, **kwargs)
    np.testing.assert_allclose(embedder.embeds_from_mels(batch, lens, **kwargs), theirs_t, atol=1e-5)


def test_utt_to_spk_embed_and_voice_similarity_match(
    embedder: SpeakerEmbedder, librispeech_embeddings: dict[str, npt.NDArray[np.float32]]
) -> None:
    a, b = list(librispeech_embeddings.values())[:2]
    np.testing.assert_allclose(
        embedder.utt_to_spk_embed(a), cb_ve.VoiceEncoder.utt_to_spk_embed(a), atol=1e-6
    )
    for x, y in [(a, b), (a, b[0]), (a[0], b[1]), (a[1], a)]:
        assert embedder.voice_similarity(x, y) == pytest.approx(
            float(cb_ve.VoiceEncoder.voice_similarity(x, y)), abs=1e-6
        )


# -- (d) Chatterbox's class, and a passed-in instance -------------------------------------------


def test_chatterbox_encoder_class_equals_builtin(
    embedder: SpeakerEmbedder, librispeech_files: list[Path]
) -> None:
    theirs = SpeakerEmbedder("resemblyzer", encoder="chatterbox", device="cpu")
    assert type(theirs.encoder.module).__module__.startswith("chatterbox.")
    assert theirs.weights_info == embedder.weights_info
    files = librispeech_files[::4]
    assert np.max(np.abs(theirs.embed_utterances(files) - embedder.embed_utterances(files))) <= 1e-5


def test_passed_in_chatterbox_instance(
    embedder: SpeakerEmbedder, chatterbox_ve: Any, librispeech_files: list[Path]
) -> None:
    wrapped = SpeakerEmbedder(encoder=chatterbox_ve)
    assert wrapped.encoder.module is chatterbox_ve
    files = librispeech_files[1::7]
    assert np.max(np.abs(wrapped.embed_utterances(files) - embedder.embed_utterances(files))) <= 1e-5


# -- (e) the torchaudio port --------------------------------------------------------------------


@pytest.mark.parametrize("orig_sr", [8000, 22050, 24000, 44100, 48000])
def test_torchaudio_port_matches_torchaudio(speech: Path, orig_sr: int) -> None:
    torch = pytest.importorskip("torch")
    functional = pytest.importorskip("torchaudio.functional")
    wav, sr = speech_wave(speech / "librispeech/1688/1688-142285-0002.flac")
    x = librosa.resample(wav, orig_sr=sr, target_sr=orig_sr, res_type="soxr_hq") if orig_sr != sr else wav
    ref = functional.resample(torch.from_numpy(np.ascontiguousarray(x)), orig_sr, 16000).numpy()
    ours = resample(np.ascontiguousarray(x, dtype=np.float32), orig_sr, 16000, "torchaudio")
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-5)


def test_torchaudio_pipeline_matches_torchaudio_then_embed(
    embedder: SpeakerEmbedder, chatterbox_ve: Any, speech: Path
) -> None:
    torch = pytest.importorskip("torch")
    functional = pytest.importorskip("torchaudio.functional")
    wav, sr = speech_wave(speech / REAL_HIGH_RATE[3])
    wav16 = functional.resample(torch.from_numpy(wav), sr, 16000).numpy()
    theirs = chatterbox_ve.embeds_from_wavs([wav16], 16000)
    ours = embedder.embed_utterances(wav, sample_rate=sr, pipeline=Pipeline(resampler="torchaudio"))
    assert _cosines(ours, theirs).min() >= COSINE


# -- (f) Chatterbox TTS's conditioning chain -----------------------------------------------------


def _chatterbox_tts_conditioning(ve: Any, path: Path) -> npt.NDArray[np.float32]:
    """Run ``ChatterboxTTS.prepare_conditionals`` itself, with the T3 and S3Gen parts stubbed.

    Only the voice encoder is real: the embedding comes out of Chatterbox's own code path
    (librosa.load at 24 kHz, librosa.resample to 16 kHz, embeds_from_wavs, mean).
    """
    torch = pytest.importorskip("torch")
    tts_module = pytest.importorskip("chatterbox.tts")
    tts = tts_module.ChatterboxTTS.__new__(tts_module.ChatterboxTTS)
    plen = 150
    tokenizer = types.SimpleNamespace(
        forward=lambda wavs, max_len: (torch.zeros(1, max_len, dtype=torch.long), None)
    )
    tts.s3gen = types.SimpleNamespace(embed_ref=lambda wav, sr, device: {}, tokenizer=tokenizer)
    tts.t3 = types.SimpleNamespace(hp=types.SimpleNamespace(speech_cond_prompt_len=plen))
    tts.ve = ve
    tts.device = "cpu"
    tts.prepare_conditionals(str(path))
    emb = tts.conds.t3.speaker_emb
    assert tuple(emb.shape) == (1, 256)
    return emb[0].numpy().astype(np.float32)


def test_embed_conditioning_matches_prepare_conditionals(
    embedder: SpeakerEmbedder, chatterbox_ve: Any, speech: Path, librispeech_files: list[Path]
) -> None:
    files = [librispeech_files[0], librispeech_files[25], *(speech / n for n in REAL_HIGH_RATE[:3])]
    files.append(speech / "misc/libritts_24k.wav")
    files.append(speech / "ljspeech/LJ001-0002.wav")
    for path in files:
        theirs = _chatterbox_tts_conditioning(chatterbox_ve, path)
        ours = embedder.embed_conditioning(path)
        assert ours.shape == (256,)
        assert _cosines(ours, theirs)[0] >= COSINE, path.name
        assert np.max(np.abs(ours - theirs)) < 1e-5, path.name


def test_embed_conditioning_mean_is_not_renormalised(
    embedder: SpeakerEmbedder, chatterbox_ve: Any, speech: Path
) -> None:
    # prepare_conditionals takes .mean(axis=0) of embeds_from_wavs' rows without renormalising;
    # embed_conditioning does the same for several files.
    paths = [speech / "vctk48k/p228_023.wav", speech / "vctk48k/p230_023.wav"]
    wavs = [
        librosa.resample(librosa.load(str(p), sr=24000)[0], orig_sr=24000, target_sr=16000) for p in paths
    ]
    theirs = chatterbox_ve.embeds_from_wavs(wavs, sample_rate=16000).mean(axis=0)
    ours = embedder.embed_conditioning(paths)
    assert np.linalg.norm(ours) < 0.999
    assert np.max(np.abs(ours - theirs)) < 1e-5


def test_conditioning_loading_matches_librosa(speech: Path) -> None:
    # embed_conditioning's first step: load_audio, then soxr to 24 kHz and 16 kHz, as librosa.
    for name in (
        "misc/jfk_44k_stereo.flac",
        "vctk48k/p236_023.wav",
        "librispeech/2414/2414-128291-0003.flac",
    ):
        ref = librosa.resample(librosa.load(str(speech / name), sr=24000)[0], orig_sr=24000, target_sr=16000)
        wav, sr = load_audio(speech / name)
        ours = resample(resample(wav, sr, 24000, "soxr_hq"), 24000, 16000, "soxr_hq")
        assert ours.shape == ref.shape
        np.testing.assert_allclose(ours, ref, atol=1e-6)
