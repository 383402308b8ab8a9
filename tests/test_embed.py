"""Utterance and speaker embeddings end to end, with the offline Resemblyzer weights, on real speech."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from conftest import speech_wave

import speakerembed
from speakerembed import Pipeline, SpeakerEmbedder, embed_speaker, embed_utterances, utt_to_spk_embed
from speakerembed.stages.resample import resample

EMBED_DIM = 256


def _assert_unit_rows(x: npt.NDArray[np.float32]) -> None:
    assert x.dtype == np.float32
    assert np.isfinite(x).all()
    np.testing.assert_allclose(np.linalg.norm(x, axis=-1), 1.0, atol=1e-5)


# -- shapes and consolidation ----------------------------------------------------------------


def test_utterance_embeddings_are_unit_float32_rows(
    librispeech_embeddings: dict[str, npt.NDArray[np.float32]],
) -> None:
    for rows in librispeech_embeddings.values():
        assert rows.shape == (10, EMBED_DIM)
        _assert_unit_rows(rows)
        # The encoder ends in a ReLU: every coordinate is non-negative.
        assert (rows >= 0).all()


def test_embed_speaker_is_utt_to_spk_embed_of_the_utterances(
    embedder: SpeakerEmbedder, short_utterances: list[Path]
) -> None:
    files = short_utterances[:3]
    rows = embedder.embed_utterances(files)
    spk = embedder.embed_speaker(files)
    assert spk.shape == (EMBED_DIM,)
    _assert_unit_rows(spk)
    np.testing.assert_allclose(spk, utt_to_spk_embed(rows), atol=1e-6)
    mean = rows.mean(axis=0)
    np.testing.assert_allclose(spk, mean / np.linalg.norm(mean), atol=1e-6)


def test_single_input_gives_one_row(embedder: SpeakerEmbedder, short_utterances: list[Path]) -> None:
    one = embedder.embed_utterances(short_utterances[0])
    assert one.shape == (1, EMBED_DIM)
    np.testing.assert_allclose(embedder.embed_speaker(short_utterances[0]), one[0], atol=1e-6)


def test_same_speaker_beats_every_cross_speaker_pair(
    librispeech_embeddings: dict[str, npt.NDArray[np.float32]],
) -> None:
    speakers = sorted(librispeech_embeddings)
    assert len(speakers) == 6
    same = {}
    for s in speakers:
        e = librispeech_embeddings[s]
        sims = e @ e.T
        n = len(e)
        same[s] = float((sims.sum() - np.trace(sims)) / (n * (n - 1)))
    cross = {
        (a, b): float((librispeech_embeddings[a] @ librispeech_embeddings[b].T).mean())
        for a, b in itertools.combinations(speakers, 2)
    }
    worst_same = min(same.values())
    best_cross = max(cross.values())
    assert worst_same > best_cross, (same, max(cross, key=cross.__getitem__), best_cross)


def test_speaker_embeddings_identify_held_out_utterances(
    librispeech_embeddings: dict[str, npt.NDArray[np.float32]],
) -> None:
    # Enrol each speaker on 5 utterances; each of the other 5 should be nearest its own speaker.
    speakers = sorted(librispeech_embeddings)
    enrol = np.stack([utt_to_spk_embed(librispeech_embeddings[s][:5]) for s in speakers])
    correct = total = 0
    for i, s in enumerate(speakers):
        scores = librispeech_embeddings[s][5:] @ enrol.T
        correct += int((scores.argmax(axis=1) == i).sum())
        total += scores.shape[0]
    assert correct / total >= 0.9, f"{correct}/{total}"


# -- caching, encoders and weights -----------------------------------------------------------


def test_module_functions_reuse_one_embedder(
    monkeypatch: pytest.MonkeyPatch, short_utterances: list[Path]
) -> None:
    from speakerembed import api
    from speakerembed.stages import encoder

    first = api.get_embedder("resemblyzer", device="cpu")
    assert api.get_embedder("resemblyzer", device="cpu") is first

    def no_reload(*args: object, **kwargs: object) -> None:
        raise AssertionError("the weights were loaded again")

    monkeypatch.setattr(encoder, "load_encoder", no_reload)
    a = embed_speaker(short_utterances[0], weights="resemblyzer", device="cpu")
    b = embed_utterances(short_utterances[0], weights="resemblyzer", device="cpu")
    np.testing.assert_allclose(a, b[0], atol=1e-6)
    assert api.get_embedder("resemblyzer", device="cpu") is first


def test_clear_cache_forgets_embedders() -> None:
    from speakerembed import api

    first = api.get_embedder("resemblyzer", device="cpu")
    speakerembed.clear_cache()
    second = api.get_embedder("resemblyzer", device="cpu")
    assert second is not first
    assert second.weights_info == first.weights_info


def test_module_function_equals_embedder(embedder: SpeakerEmbedder, short_utterances: list[Path]) -> None:
    files = short_utterances[:2]
    np.testing.assert_allclose(
        embed_utterances(files, weights="resemblyzer", device="cpu"),
        embedder.embed_utterances(files),
        atol=1e-6,
    )


def test_weights_info(embedder: SpeakerEmbedder) -> None:
    from speakerembed.weights import PRESETS

    info = embedder.weights_info
    assert info.name == "resemblyzer"
    assert info.sha256 == PRESETS["resemblyzer"].sha256
    assert info.path is not None
    assert info.path.endswith("pretrained.pt")
    assert info.short == f"resemblyzer@{info.sha256[:12]}"
    assert "resemblyzer@" in repr(embedder)
    assert str(embedder.device) == "cpu"


def test_passed_in_module_is_used_as_is(embedder: SpeakerEmbedder, short_utterances: list[Path]) -> None:
    module = embedder.encoder.module
    wrapped = SpeakerEmbedder(encoder=module)
    assert wrapped.encoder.module is module
    assert wrapped.weights_info.name == "instance"
    assert wrapped.weights_info.sha256 is not None
    assert len(wrapped.weights_info.sha256) == 64
    files = short_utterances[:2]
    np.testing.assert_array_equal(wrapped.embed_utterances(files), embedder.embed_utterances(files))


def test_fresh_voice_encoder_module_gives_the_same_embeddings(
    embedder: SpeakerEmbedder, short_utterances: list[Path], resemblyzer_weights: Path
) -> None:
    from speakerembed.stages.encoder import VoiceEncoder, adapt_state_dict
    from speakerembed.weights import load_state_dict

    module = VoiceEncoder()
    module.load_state_dict(adapt_state_dict(load_state_dict(resemblyzer_weights)), strict=True)
    wrapped = SpeakerEmbedder(encoder=module)
    files = short_utterances[:2]
    np.testing.assert_allclose(wrapped.embed_utterances(files), embedder.embed_utterances(files), atol=1e-6)
    # Same parameters, same digest, whichever object holds them.
    assert wrapped.weights_info.sha256 == SpeakerEmbedder(encoder=embedder.encoder.module).weights_info.sha256


def test_local_weights_file(
    weights_file: Path, embedder: SpeakerEmbedder, short_utterances: list[Path]
) -> None:
    local = SpeakerEmbedder(weights_file, device="cpu")
    assert local.weights_info.name == "file"
    assert local.weights_info.path == str(weights_file)
    assert local.weights_info.sha256 != embedder.weights_info.sha256  # another file, same tensors
    np.testing.assert_allclose(
        local.embed_utterances(short_utterances[0]), embedder.embed_utterances(short_utterances[0]), atol=1e-6
    )


# -- pipeline choices ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["misc/hifitts_44k.wav", "vctk48k/p236_023.wav"])
def test_every_order_and_resampler_agrees_with_the_default(
    embedder: SpeakerEmbedder, speech: Path, name: str
) -> None:
    path = speech / name
    default = embedder.embed_speaker(path)
    for order, resampler in itertools.product(
        ("resample_trim", "trim_resample"), ("soxr_hq", "kaiser_fast", "polyphase", "torchaudio")
    ):
        if resampler == "kaiser_fast":
            pytest.importorskip("resampy")
        emb = embedder.embed_speaker(path, pipeline=Pipeline(order=order, resampler=resampler))  # type: ignore[arg-type]
        assert emb.shape == (EMBED_DIM,)
        _assert_unit_rows(emb)
        cos = float(emb @ default)
        assert cos > 0.99, (order, resampler, cos)


def test_trim_off_and_chatterbox_preset(embedder: SpeakerEmbedder, short_utterances: list[Path]) -> None:
    path = short_utterances[0]
    default = embedder.embed_speaker(path)
    untrimmed = embedder.embed_speaker(path, pipeline=Pipeline(top_db=None))
    _assert_unit_rows(untrimmed)
    assert float(untrimmed @ default) > 0.95
    # At 16 kHz there is nothing to resample, so the Chatterbox preset equals the default.
    pytest.importorskip("resampy")
    np.testing.assert_array_equal(embedder.embed_speaker(path, pipeline=Pipeline.chatterbox()), default)


def test_embedder_pipeline_is_the_default_for_its_calls(
    short_utterances: list[Path], embedder: SpeakerEmbedder
) -> None:
    pipe = Pipeline(top_db=None)
    other = SpeakerEmbedder(encoder=embedder.encoder.module, pipeline=pipe)
    path = short_utterances[1]
    np.testing.assert_array_equal(other.embed_speaker(path), embedder.embed_speaker(path, pipeline=pipe))


# -- batching --------------------------------------------------------------------------------


def test_batched_equals_one_at_a_time(embedder: SpeakerEmbedder, short_utterances: list[Path]) -> None:
    together = embedder.embed_utterances(short_utterances)
    alone = np.concatenate([embedder.embed_utterances(p) for p in short_utterances])
    assert together.shape == (len(short_utterances), EMBED_DIM)
    assert np.max(np.abs(together - alone)) <= 1e-5


def test_small_window_batches_give_the_same_result(
    embedder: SpeakerEmbedder, short_utterances: list[Path]
) -> None:
    default = embedder.embed_utterances(short_utterances)
    for cap in (1, 3, 7):
        capped = embedder.embed_utterances(short_utterances, pipeline=Pipeline(max_windows_per_batch=cap))
        assert np.max(np.abs(capped - default)) <= 1e-5, cap


def test_encoder_never_sees_more_windows_than_the_cap(
    embedder: SpeakerEmbedder, short_utterances: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    sizes: list[int] = []
    wrapped = SpeakerEmbedder(encoder=embedder.encoder.module)
    inner = wrapped.engine.encoder

    class Spy:
        device = inner.device

        def __call__(self, windows):  # type: ignore[no-untyped-def]
            sizes.append(int(windows.shape[0]))
            return inner(windows)

    monkeypatch.setattr(wrapped.engine, "encoder", Spy())
    wrapped.embed_utterances(short_utterances, pipeline=Pipeline(max_windows_per_batch=3))
    assert sizes
    assert max(sizes) <= 3
    # Windows of different utterances share batches: fewer calls than one per utterance-chunk.
    sizes.clear()
    wrapped.embed_utterances(short_utterances, pipeline=Pipeline(max_windows_per_batch=64))
    assert len(sizes) < len(short_utterances)


# -- inputs ----------------------------------------------------------------------------------


def test_files_arrays_and_tensors_agree(embedder: SpeakerEmbedder, short_utterances: list[Path]) -> None:
    import torch

    path = short_utterances[0]
    wav, sr = speech_wave(path)
    from_file = embedder.embed_utterances(path)
    from_str = embedder.embed_utterances(str(path))
    from_array = embedder.embed_utterances(wav, sample_rate=sr)
    from_tensor = embedder.embed_utterances(torch.from_numpy(wav), sample_rate=sr)
    np.testing.assert_array_equal(from_file, from_str)
    np.testing.assert_allclose(from_array, from_file, atol=1e-6)
    np.testing.assert_allclose(from_tensor, from_file, atol=1e-6)


def test_int16_array_equals_float_array(embedder: SpeakerEmbedder, short_utterances: list[Path]) -> None:
    import soundfile as sf

    pcm, sr = sf.read(str(short_utterances[2]), dtype="int16")
    a = embedder.embed_utterances(pcm, sample_rate=sr)
    b = embedder.embed_utterances(pcm.astype(np.float32) / 32768, sample_rate=sr)
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_per_input_sample_rates(embedder: SpeakerEmbedder, short_utterances: list[Path]) -> None:
    a, sr = speech_wave(short_utterances[0])
    b, _ = speech_wave(short_utterances[1])
    b44 = resample(b, sr, 44100, "soxr_hq")
    together = embedder.embed_utterances([a, b44], sample_rate=[16000, 44100])
    np.testing.assert_allclose(together[0], embedder.embed_utterances(a, sample_rate=16000)[0], atol=1e-5)
    np.testing.assert_allclose(together[1], embedder.embed_utterances(b44, sample_rate=44100)[0], atol=1e-5)
    # The same voice at 44.1 kHz is nearly the same embedding as at 16 kHz.
    assert float(together[1] @ embedder.embed_utterances(b, sample_rate=16000)[0]) > 0.99


def test_mixed_files_and_arrays(embedder: SpeakerEmbedder, short_utterances: list[Path]) -> None:
    wav, sr = speech_wave(short_utterances[1])
    mixed = embedder.embed_utterances([short_utterances[0], wav], sample_rate=sr)
    np.testing.assert_allclose(mixed, embedder.embed_utterances(short_utterances[:2]), atol=1e-5)


def test_stereo_array_equals_its_mono_mean(embedder: SpeakerEmbedder, short_utterances: list[Path]) -> None:
    wav, sr = speech_wave(short_utterances[3])
    stereo = np.stack([wav, 0.5 * wav])  # channels first
    expected = embedder.embed_utterances(0.75 * wav, sample_rate=sr)
    np.testing.assert_allclose(embedder.embed_utterances(stereo, sample_rate=sr), expected, atol=1e-5)
    np.testing.assert_allclose(
        embedder.embed_utterances(stereo.T.copy(), sample_rate=sr), expected, atol=1e-5
    )


def test_embeds_from_wavs_compat(embedder: SpeakerEmbedder, short_utterances: list[Path]) -> None:
    wavs = [speech_wave(p)[0] for p in short_utterances[:3]]
    utt = embedder.embeds_from_wavs(wavs, 16000)
    np.testing.assert_array_equal(utt, embedder.embed_utterances(wavs, sample_rate=16000))
    spk = embedder.embeds_from_wavs(wavs, 16000, as_spk=True)
    assert spk.shape == (EMBED_DIM,)
    np.testing.assert_allclose(spk, utt_to_spk_embed(utt), atol=1e-6)


def test_skip_mode_reports_the_bad_input(embedder: SpeakerEmbedder, short_utterances: list[Path]) -> None:
    result = embedder.embed_utterances(
        [short_utterances[0], np.zeros(16000, np.float32)], sample_rate=16000, errors="skip"
    )
    assert result.embeddings.shape == (1, EMBED_DIM)
    assert result.indices.tolist() == [0]
    assert [f.index for f in result.failures] == [1]
    assert "input 1" in str(result.failures[0].error)
    assert not result.ok
    np.testing.assert_allclose(result.speaker_embedding(), result.embeddings[0], atol=1e-6)


def test_arrays_need_a_sample_rate(embedder: SpeakerEmbedder) -> None:
    with pytest.raises(speakerembed.AudioError, match="sample_rate"):
        embedder.embed_utterances(np.zeros(16000, np.float32))
