"""Speech detection: ``Pipeline(vad="silero")`` against silero-vad's own ``get_speech_timestamps``."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import speech_wave

from speakerembed import AudioError, BackendUnavailableError, ConfigError, Pipeline, SpeakerEmbedder
from speakerembed.cli import main

pytest.importorskip("silero_vad", reason="needs speakerembed[vad] (silero-vad)")

VAD = Pipeline(vad="silero")


def _silero(wav16k: np.ndarray, pad_ms: int) -> list[dict[str, int]]:
    import torch
    from silero_vad import get_speech_timestamps

    from speakerembed.stages.vad import load_vad_model

    return get_speech_timestamps(torch.from_numpy(wav16k), load_vad_model(), speech_pad_ms=pad_ms)


def _merge_touching(stamps: list[dict[str, int]]) -> list[list[int]]:
    # Silero splits a short gap between two padded segments in half (leaving at most one sample
    # between them); joined end to end, the audio kept is the same as merging them.
    out: list[list[int]] = []
    for s in stamps:
        if out and s["start"] - out[-1][1] <= 1:
            out[-1][1] = s["end"]
        else:
            out.append([s["start"], s["end"]])
    return out


def test_segments_match_silero_at_16k(short_utterances: list[Path]) -> None:
    from speakerembed.stages.vad import detect_speech

    for path in short_utterances[:3]:
        wav, sr = speech_wave(path)
        assert sr == 16000
        found = detect_speech(wav, sr, VAD.replace(vad_pad_s=0.1))
        raw = _silero(wav, 0)
        assert found.speech_s == pytest.approx(sum(s["end"] - s["start"] for s in raw) / sr)
        assert found.bounds.tolist() == _merge_touching(_silero(wav, 100))
        assert found.kept_s <= wav.shape[0] / sr


def test_segments_at_48k_map_back_to_the_input_rate(speech: Path) -> None:
    import soxr

    from speakerembed.stages.vad import detect_speech

    wav, sr = speech_wave(speech / "vctk48k" / "p228_023.wav")
    assert sr == 48000
    found = detect_speech(wav, sr, VAD)
    expected = np.asarray(_merge_touching(_silero(soxr.resample(wav, sr, 16000, quality="HQ"), 100)))
    assert found.sample_rate == sr
    assert np.abs(found.bounds - expected * 3).max() <= 3
    assert found.bounds.max() <= wav.shape[0]


def test_three_seconds_of_noise_are_refused(embedder: SpeakerEmbedder) -> None:
    noise = np.random.default_rng(0).normal(0, 0.1, 48000).astype(np.float32)
    with pytest.raises(AudioError, match=r"found 0\.\d\d s of speech.*min_speech_s=0\.5") as info:
        embedder.embed_utterances(noise, sample_rate=16000, pipeline=VAD)
    assert "min_speech_s" in str(info.value)
    # The default pipeline (Chatterbox's edge trim) embeds it without a word, as before.
    assert embedder.embed_utterances(noise, sample_rate=16000).shape == (1, 256)


def test_min_speech_is_configurable(embedder: SpeakerEmbedder, short_utterances: list[Path]) -> None:
    wav, sr = speech_wave(short_utterances[0])
    speech = embedder.embed_utterances(wav, sample_rate=sr, pipeline=VAD, errors="skip").speech_s[0]
    with pytest.raises(AudioError, match="less than min_speech_s"):
        embedder.embed_utterances(wav, sample_rate=sr, pipeline=VAD.replace(min_speech_s=speech + 5))


def test_pauses_are_removed(embedder: SpeakerEmbedder, librispeech: dict[str, list[Path]]) -> None:
    files = next(iter(librispeech.values()))[:2]
    a, sr = speech_wave(files[0])
    b, _ = speech_wave(files[1])
    hiss = np.random.default_rng(1).normal(0, 1e-4, 3 * sr).astype(np.float32)
    joined = np.concatenate([a, hiss, b, hiss, a])
    trim = embedder.embed_utterances(joined, sample_rate=sr, errors="skip")
    vad = embedder.embed_utterances(joined, sample_rate=sr, pipeline=VAD, errors="skip")
    # Trimming keeps both 3 s gaps; the VAD removes them (and the pauses inside the speech).
    assert trim.speech_s[0] == pytest.approx(joined.shape[0] / sr, abs=0.1)
    assert vad.speech_s[0] < trim.speech_s[0] - 6.0
    assert float(vad.embeddings[0] @ trim.embeddings[0]) > 0.9


def test_trim_resample_order_and_device_paths_agree(embedder: SpeakerEmbedder, speech: Path) -> None:
    path = speech / "vctk48k" / "p230_023.wav"
    a = embedder.embed_utterances(path, pipeline=VAD, errors="skip")
    b = embedder.embed_utterances(path, pipeline=VAD.replace(order="trim_resample"), errors="skip")
    assert a.speech_s[0] == pytest.approx(b.speech_s[0], abs=0.01)
    assert float(a.embeddings[0] @ b.embeddings[0]) > 0.999


def test_long_files_take_the_in_memory_path(embedder: SpeakerEmbedder, short_utterances: list[Path]) -> None:
    from speakerembed.stages.longform import can_stream

    assert not can_stream(16000, VAD)
    assert can_stream(16000, Pipeline())
    path = short_utterances[0]
    a = embedder.embed_utterances(path, pipeline=VAD)
    b = embedder.embed_utterances(path, pipeline=VAD.replace(stream_min_duration_s=0.5))
    np.testing.assert_array_equal(a, b)


def test_default_stays_the_edge_trim(embedder: SpeakerEmbedder, short_utterances: list[Path]) -> None:
    assert Pipeline().vad is None
    assert Pipeline(vad="none").vad is None
    path = short_utterances[1]
    np.testing.assert_array_equal(
        embedder.embed_utterances(path), embedder.embed_utterances(path, pipeline=Pipeline(vad=None))
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("vad", "webrtc"),
        ("vad", True),
        ("vad_threshold", 1.0),
        ("vad_threshold", 0),
        ("vad_pad_s", -0.1),
        ("min_speech_s", float("nan")),
        ("min_speech_s", "1"),
    ],
)
def test_config_is_validated(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=f"Pipeline.{field}="):
        Pipeline(**{field: value})  # type: ignore[arg-type]


def test_missing_silero_is_a_backend_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import speakerembed.stages.vad as vad

    monkeypatch.setattr(vad, "_model", None)
    monkeypatch.setitem(sys.modules, "silero_vad", None)
    with pytest.raises(BackendUnavailableError, match=r"speakerembed\[vad\]"):
        vad.load_vad_model()


def test_cli_vad_flags(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    import soundfile as sf

    noise = tmp_path / "noise.wav"
    sf.write(noise, np.random.default_rng(0).normal(0, 0.1, 48000).astype(np.float32), 16000)
    w = ["--weights", "resemblyzer", "--device", "cpu"]
    assert main(["embed", str(noise), "--vad", "silero", *w]) == 1
    err = capsys.readouterr().err
    assert "of speech" in err
    assert "--min-speech" in err
    assert main(["embed", str(noise), "--min-speech", "1", *w]) == 2
    assert "--min-speech needs --vad silero" in capsys.readouterr().err


def _ami_normalised(speech: Path) -> np.ndarray:
    from speakerembed.analysis.diarization import DiarizationConfig, _normalised

    wav, sr = speech_wave(speech / "ami" / "dev00.wav")
    assert sr == 16000
    return _normalised(wav[: 20 * sr + 123], DiarizationConfig())  # not a whole number of chunks


def test_batched_probabilities_match_the_model_chunk_by_chunk(
    speech: Path, short_utterances: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    import speakerembed.stages.vad as vad

    assert vad._batched_weights() is not None  # the installed silero-vad has the layout run in batches
    for wav in (_ami_normalised(speech), speech_wave(short_utterances[0])[0]):
        ref = vad._probabilities_one_by_one(wav)
        got = vad.speech_probabilities(wav)
        assert got.shape == ref.shape == (-(-wav.shape[0] // 512),)
        np.testing.assert_allclose(got, ref, atol=1e-4)
        assert 0.1 < float(np.mean(ref > 0.35)) < 0.99  # speech and pauses both present
        # blocks of a few chunks carry the recurrent state across block edges
        monkeypatch.setattr(vad, "_BLOCK", 7)
        np.testing.assert_allclose(vad.speech_probabilities(wav), ref, atol=1e-4)
        monkeypatch.undo()
    # a model of another layout runs chunk by chunk
    monkeypatch.setattr(vad, "_batched_weights", lambda: None)
    short = speech_wave(short_utterances[1])[0][:16000]
    np.testing.assert_array_equal(vad.speech_probabilities(short), vad._probabilities_one_by_one(short))


def test_speech_timestamps_match_get_speech_timestamps(speech: Path) -> None:
    import torch
    from silero_vad import get_speech_timestamps

    from speakerembed.stages.vad import load_vad_model, speech_timestamps

    wav = _ami_normalised(speech)
    for threshold, silence_ms in ((0.35, 300), (0.5, 100)):
        ref = get_speech_timestamps(
            torch.from_numpy(wav),
            load_vad_model(),
            threshold=threshold,
            speech_pad_ms=0,
            min_silence_duration_ms=silence_ms,
        )
        assert len(ref) >= 3
        assert (
            speech_timestamps(wav, threshold=threshold, speech_pad_ms=0, min_silence_duration_ms=silence_ms)
            == ref
        )
