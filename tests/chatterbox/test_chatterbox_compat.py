"""Chatterbox's ``VoiceEncoder`` API on a SpeakerEmbedder (speakerembed.chatterbox_compat).

These run without chatterbox-tts: they check that each of Chatterbox's arguments lands on the
Pipeline field that gives it Chatterbox's meaning, that the paths agree with each other, and the
TTS conditioning chain against librosa's loading. ``tests/chatterbox/test_parity_chatterbox.py`` and
``tests/chatterbox/test_chatterbox_conditioning.py`` compare every argument with chatterbox-tts itself
(``nox -s tests_chatterbox``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from speakerembed import (
    AudioError,
    BackendUnavailableError,
    ConfigError,
    Pipeline,
    SpeakerEmbedder,
    cosine_similarity,
    embed_conditioning,
    utt_to_spk_embed,
)
from speakerembed.chatterbox_compat import chatterbox_pipeline
from speakerembed.cli import main
from speakerembed.stages.load import load_audio
from speakerembed.stages.mel import melspectrogram

AUDIO = Path(__file__).resolve().parents[2] / "examples" / "audio"
FILES = [AUDIO / f"{v}_{i}.wav" for v in ("alice", "bob") for i in (1, 2)]


@pytest.fixture(scope="module")
def wavs() -> list[np.ndarray]:
    return [load_audio(p)[0] for p in FILES]  # the bundled clips are 16 kHz


# -- arguments onto Pipeline fields ---------------------------------------------------------------


def test_defaults_are_chatterboxs() -> None:
    p = chatterbox_pipeline(Pipeline())
    assert (p.order, p.resampler, p.top_db, p.rate, p.overlap, p.min_coverage) == (
        "resample_trim",
        "kaiser_fast",
        20,
        1.3,
        0.5,
        0.8,
    )
    assert (p.max_windows_per_batch, p.partial_frames, p.trim_frame_length, p.trim_hop_length) == (
        32,
        160,
        2048,
        512,
    )
    assert p == Pipeline.chatterbox().replace(max_windows_per_batch=32)
    # embeds_from_mels' inference() default: rate None, so windows step by overlap.
    assert chatterbox_pipeline(Pipeline(), default_rate=None).rate is None


@pytest.mark.parametrize(
    ("kwargs", "field", "value"),
    [
        ({"inference": {"rate": 2.5}}, "rate", 2.5),
        ({"inference": {"rate": None}}, "rate", None),
        ({"inference": {"overlap": 0.25}}, "overlap", 0.25),
        ({"inference": {"min_coverage": 0.3}}, "min_coverage", 0.3),
        ({"trim_top_db": 35}, "top_db", 35),
        ({"trim_top_db": None}, "top_db", None),
        ({"trim_top_db": 0}, "top_db", None),  # Chatterbox's `if trim_top_db:`
        ({"batch_size": 3}, "max_windows_per_batch", 3),
        # One pass in Chatterbox; the embedder's own batching (by device) here: same rows.
        ({"batch_size": None}, "max_windows_per_batch", None),
        ({"batch_size": 0}, "max_windows_per_batch", None),
    ],
)
def test_each_argument_sets_its_field(kwargs: dict[str, object], field: str, value: object) -> None:
    assert getattr(chatterbox_pipeline(Pipeline(), **kwargs), field) == value  # type: ignore[arg-type]


def test_the_base_pipeline_keeps_its_guards() -> None:
    base = Pipeline(min_duration_s=1.0, max_duration_s=60.0, order="trim_resample", top_db=40)
    p = chatterbox_pipeline(base)
    assert (p.min_duration_s, p.max_duration_s) == (1.0, 60.0)
    assert (p.order, p.top_db) == ("resample_trim", 20)


def test_unknown_keywords_are_named(embedder: SpeakerEmbedder, wavs: list[np.ndarray]) -> None:
    with pytest.raises(ConfigError, match=r"unknown keyword argument\(s\) overlapp=, sr=") as info:
        embedder.embeds_from_wavs(wavs, 16000, overlapp=0.5, sr=16000)
    assert "overlap=, rate= and min_coverage=" in str(info.value)
    with pytest.raises(ConfigError, match="embeds_from_mels: unknown keyword argument"):
        embedder.embeds_from_mels([np.ones((200, 40), np.float32)], trim_top_db=20)


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"rate": -1.0}, "rate=-1.0"),
        ({"overlap": 1.0}, "overlap=1.0"),
        ({"min_coverage": 0.0}, "min_coverage=0.0"),
        ({"trim_top_db": -3}, "trim_top_db=-3"),
        ({"batch_size": -1}, "batch_size=-1"),
        ({"batch_size": 2.5}, "batch_size=2.5"),
        ({"batch_size": True}, "batch_size=True"),
    ],
)
def test_bad_values_are_named_as_the_caller_spelled_them(
    embedder: SpeakerEmbedder, wavs: list[np.ndarray], kwargs: dict[str, object], named: str
) -> None:
    with pytest.raises(ConfigError, match=f"^embeds_from_wavs: .*{named}") as info:
        embedder.embeds_from_wavs(wavs[:1], 16000, **kwargs)  # type: ignore[arg-type]
    assert "Pipeline." not in str(info.value)


# -- the embeddings ---------------------------------------------------------------------------------


def test_embeds_from_wavs_is_the_mapped_pipeline(embedder: SpeakerEmbedder, wavs: list[np.ndarray]) -> None:
    cases: list[dict[str, object]] = [
        {},
        {"rate": 2.5},
        {"rate": None, "overlap": 0.25},
        {"min_coverage": 0.3},
        {"trim_top_db": None},
        {"trim_top_db": 35},
        {"batch_size": 3},
    ]
    seen = []
    for kwargs in cases:
        got = embedder.embeds_from_wavs(wavs, 16000, **kwargs)  # type: ignore[arg-type]
        fields = {"top_db": kwargs.get("trim_top_db", 20), "rate": kwargs.get("rate", 1.3)}
        fields.update({k: v for k, v in kwargs.items() if k in ("overlap", "min_coverage")})
        expected = embedder.embed_utterances(wavs, sample_rate=16000, pipeline=Pipeline(**fields))  # type: ignore[arg-type]
        assert got.shape == (len(wavs), 256)
        np.testing.assert_allclose(got, expected, atol=1e-6, err_msg=str(kwargs))
        seen.append(got)
    # Each window setting changes the rows (batch_size alone does not).
    for i in (1, 2, 4, 5):
        assert np.abs(seen[i] - seen[0]).max() > 1e-4, cases[i]
    np.testing.assert_allclose(seen[6], seen[0], atol=1e-6)


def test_embeds_from_wavs_as_spk(embedder: SpeakerEmbedder, wavs: list[np.ndarray]) -> None:
    spk = embedder.embeds_from_wavs(wavs[:2], 16000, as_spk=True, rate=2.0)
    rows = embedder.embeds_from_wavs(wavs[:2], 16000, rate=2.0)
    np.testing.assert_allclose(spk, utt_to_spk_embed(rows), atol=1e-6)


def test_embeds_from_wavs_reads_a_2d_array_as_rows(embedder: SpeakerEmbedder, wavs: list[np.ndarray]) -> None:
    n = min(w.shape[0] for w in wavs[:2])
    batch = np.stack([w[:n] for w in wavs[:2]])
    np.testing.assert_allclose(
        embedder.embeds_from_wavs(batch, 16000),
        embedder.embeds_from_wavs([batch[0], batch[1]], 16000),
        atol=1e-6,
    )


def test_non_16k_without_resampy_says_what_to_install(
    embedder: SpeakerEmbedder, wavs: list[np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "resampy", None)
    with pytest.raises(BackendUnavailableError, match=r"speakerembed\[kaiser\]") as info:
        embedder.embeds_from_wavs(wavs[:1], 22050)
    assert "embeds_from_wavs" in str(info.value)
    assert "Pipeline.chatterbox()" in str(info.value)
    embedder.embeds_from_wavs(wavs[:1], 16000)  # 16 kHz is not resampled: no resampy needed


def test_embeds_from_mels_matches_the_wav_path(embedder: SpeakerEmbedder, wavs: list[np.ndarray]) -> None:
    import torch

    mels = [melspectrogram(torch.from_numpy(w)).numpy() for w in wavs]
    assert mels[0].ndim == 2
    assert mels[0].shape[1] == 40
    no_trim = Pipeline(top_db=None)
    for kwargs, pipe in [
        ({}, no_trim.replace(rate=None)),  # inference()'s default: overlap 0.5
        ({"rate": 1.3}, no_trim),
        (
            {"rate": None, "overlap": 0.1, "min_coverage": 0.5},
            no_trim.replace(rate=None, overlap=0.1, min_coverage=0.5),
        ),
    ]:
        got = embedder.embeds_from_mels(mels, **kwargs)  # type: ignore[arg-type]
        np.testing.assert_allclose(
            got, embedder.embed_utterances(wavs, sample_rate=16000, pipeline=pipe), atol=1e-6
        )
    spk = embedder.embeds_from_mels(mels, as_spk=True, batch_size=2)
    np.testing.assert_allclose(spk, utt_to_spk_embed(embedder.embeds_from_mels(mels)), atol=1e-6)


def test_embeds_from_mels_padded_batch_with_lengths(
    embedder: SpeakerEmbedder, wavs: list[np.ndarray]
) -> None:
    import torch

    mels = [melspectrogram(torch.from_numpy(w)) for w in wavs]
    lens = [m.shape[0] for m in mels]
    batch = torch.zeros(len(mels), max(lens) + 50, 40)
    for i, m in enumerate(mels):
        batch[i, : m.shape[0]] = m
    listed = embedder.embeds_from_mels(mels, rate=1.3)
    np.testing.assert_allclose(embedder.embeds_from_mels(batch, lens, rate=1.3), listed, atol=1e-6)
    np.testing.assert_allclose(
        embedder.embeds_from_mels(batch.numpy(), np.asarray(lens), rate=1.3), listed, atol=1e-6
    )
    # Without mel_lens, every mel counts all of the batch's frames (the zero padding included).
    whole = embedder.embeds_from_mels(batch, rate=1.3)
    assert np.abs(whole - listed).max() > 1e-4


@pytest.mark.parametrize(
    ("mels", "mel_lens", "error", "match"),
    [
        ([], None, AudioError, "mels: is empty"),
        ([np.ones((100, 80), np.float32)], None, AudioError, r"mels\[0\]: has shape \(100, 80\)"),
        ([np.ones((40, 100), np.float32).T, np.ones((0, 40))], None, AudioError, r"mels\[1\]: has no frames"),
        ([np.full((100, 40), np.nan)], None, AudioError, r"mels\[0\]: holds NaN"),
        (np.ones((2, 100), np.float32), None, AudioError, r"has shape \(2, 100\)"),
        (np.ones((2, 100, 40), np.float32), [100], ConfigError, "one integer per mel"),
        (np.ones((2, 100, 40), np.float32), [100, 101], ConfigError, r"outside 1\.\.100"),
    ],
)
def test_embeds_from_mels_refuses_bad_mels(
    embedder: SpeakerEmbedder, mels: object, mel_lens: object, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        embedder.embeds_from_mels(mels, mel_lens)  # type: ignore[arg-type]


def test_utt_to_spk_embed_and_voice_similarity_are_chatterboxs_names(
    embedder: SpeakerEmbedder, wavs: list[np.ndarray]
) -> None:
    rows = embedder.embeds_from_wavs(wavs, 16000)
    assert SpeakerEmbedder.utt_to_spk_embed is utt_to_spk_embed
    spk = embedder.utt_to_spk_embed(rows[:2])
    # Chatterbox: the mean of the rows, renormalised; voice_similarity: a dot product of unit vectors.
    mean = rows[:2].mean(axis=0)
    np.testing.assert_allclose(spk, mean / np.linalg.norm(mean), atol=1e-6)
    s = SpeakerEmbedder.voice_similarity(rows[:2], rows[2])
    assert s == pytest.approx(float(spk @ rows[2]), abs=1e-6)
    assert s == pytest.approx(cosine_similarity(rows[:2], rows[2]), abs=1e-9)
    assert embedder.voice_similarity(rows[0], rows[0]) == pytest.approx(1.0, abs=1e-6)


# -- the TTS conditioning embedding ------------------------------------------------------------------


def _librosa_chain(path: Path) -> np.ndarray:
    """``prepare_conditionals``'s loading, done by librosa itself."""
    librosa = pytest.importorskip("librosa")
    wav_24k, _ = librosa.load(str(path), sr=24000)
    result: np.ndarray = librosa.resample(wav_24k, orig_sr=24000, target_sr=16000)
    return result


def test_embed_conditioning_follows_the_tts_chain(embedder: SpeakerEmbedder) -> None:
    for path in FILES[:2]:
        cond = embedder.embed_conditioning(path)
        assert cond.shape == (256,)
        assert cond.dtype == np.float32
        # The 16 kHz audio goes through embeds_from_wavs at 16 kHz: no resampling there.
        expected = embedder.embeds_from_wavs([_librosa_chain(path)], 16000).mean(axis=0)
        np.testing.assert_allclose(cond, expected, atol=1e-5)
        # Two soxr resamplings (16 -> 24 -> 16 kHz) are close to the identity, not equal to it.
        assert float(cond @ embedder.embed_speaker(path)) > 0.99


def test_embed_conditioning_mean_is_not_renormalised(embedder: SpeakerEmbedder) -> None:
    both = embedder.embed_conditioning([FILES[0], FILES[2]])
    rows = np.stack([embedder.embed_conditioning(FILES[0]), embedder.embed_conditioning(FILES[2])])
    np.testing.assert_allclose(both, rows.mean(axis=0), atol=1e-6)
    assert np.linalg.norm(both) < 0.99


def test_embed_conditioning_arrays_and_module_function(embedder: SpeakerEmbedder) -> None:
    from speakerembed.stages.resample import resample

    wav, sr = load_audio(FILES[0])
    mono_44k = resample(wav, sr, 44100, "soxr_hq")
    up = np.stack([mono_44k, mono_44k], axis=1)  # stereo, (n_samples, 2), downmixed by the mean
    cond = embedder.embed_conditioning(up, sample_rate=44100)
    assert float(cond @ embedder.embed_conditioning(FILES[0])) > 0.999
    module = embed_conditioning(FILES[0], weights="resemblyzer", device="cpu")
    np.testing.assert_allclose(module, embedder.embed_conditioning(FILES[0]), atol=1e-6)


def test_embed_conditioning_names_the_bad_input(embedder: SpeakerEmbedder, tmp_path: Path) -> None:
    silent = tmp_path / "silent.wav"
    import soundfile as sf

    sf.write(silent, np.zeros(16000, np.float32), 16000)
    with pytest.raises(AudioError, match=r"^input 1 \(.*silent\.wav\): .*silence"):
        embedder.embed_conditioning([FILES[0], silent])
    with pytest.raises(AudioError, match=r"^input 1 \(.*missing\.wav\)"):
        embedder.embed_conditioning([FILES[0], tmp_path / "missing.wav"])


# -- the CLI ------------------------------------------------------------------------------------------

W = ["--weights", "resemblyzer", "--device", "cpu"]


def test_cli_chatterbox_conditioning(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, embedder: SpeakerEmbedder
) -> None:
    out = tmp_path / "cond.npy"
    code = main(["embed", "--chatterbox-conditioning", str(FILES[0]), "-o", str(out), *W])
    err = capsys.readouterr().err
    assert code == 0, err
    np.testing.assert_allclose(np.load(out), embedder.embed_conditioning(FILES[0]), atol=1e-6)
    assert "conditioning embedding (256,)" in err
    npz = tmp_path / "cond.npz"
    assert main(["embed", str(FILES[0]), str(FILES[2]), "--chatterbox-conditioning", "-o", str(npz), *W]) == 0
    with np.load(npz) as data:
        assert str(data["kind"]) == "conditioning"
        assert np.linalg.norm(data["embeddings"]) < 0.99


@pytest.mark.parametrize(
    "flags",
    [
        ["--utterances"],
        ["--top-db", "30"],
        ["--no-trim"],
        ["--resampler", "polyphase"],
        ["--order", "trim_resample"],
    ],
)
def test_cli_chatterbox_conditioning_refuses_pipeline_flags(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, flags: list[str]
) -> None:
    code = main(["embed", "--chatterbox-conditioning", str(tmp_path / "never-read.wav"), *flags, *W])
    assert code == 2
    assert f"{flags[0]} cannot apply" in capsys.readouterr().err
