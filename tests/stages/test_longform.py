"""The streaming path for long files (speakerembed.stages.longform) against the in-memory path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speakerembed import AudioError, Pipeline, SpeakerEmbedder
from speakerembed.stages import longform as st

IN_MEMORY = Pipeline(stream_min_duration_s=None)
STREAMED = Pipeline(stream_min_duration_s=0.0)


def _long_source(speech: Path) -> tuple[np.ndarray, int]:
    path = speech / "long" / "librispeech_1688_concat_16k.flac"
    if not path.is_file():
        pytest.skip(f"{path} not found (the shared long/ files)")
    data, sr = sf.read(str(path), dtype="float32")
    return data, sr


@pytest.fixture(scope="module")
def long48k(speech: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """70 s of speaker 1688 at 48 kHz, stereo, with 3 s of silence at each end."""
    import soxr

    data, sr = _long_source(speech)
    up = soxr.resample(data, sr, 48_000).astype(np.float32)
    quiet = np.zeros(3 * 48_000, np.float32)
    mono = np.concatenate((quiet, up, quiet))
    stereo = np.stack((mono, 0.5 * mono), axis=1)
    path = tmp_path_factory.mktemp("long") / "long48k.wav"
    sf.write(str(path), stereo, 48_000, subtype="FLOAT")
    return path


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    # Blocks of 2.7 s: many block boundaries, none aligned with a mel hop or a trim frame.
    monkeypatch.setattr(st, "BLOCK_SECONDS", 2.7)


def _windows_in_memory(path: Path, pipe: Pipeline) -> np.ndarray:
    import torch

    from speakerembed.stages.load import load_audio
    from speakerembed.stages.mel import melspectrogram
    from speakerembed.stages.resample import resample
    from speakerembed.stages.trim import trim_silence
    from speakerembed.stages.windows import partial_windows

    wav, sr = load_audio(path)
    for step in ("resample", "trim") if pipe.order == "resample_trim" else ("trim", "resample"):
        if step == "resample":
            wav, sr = resample(wav, sr, 16_000), 16_000
        else:
            frame, hop = pipe.trim_frames_at(sr)
            wav, _ = trim_silence(wav, 20, frame, hop)
    mel = melspectrogram(torch.from_numpy(np.ascontiguousarray(wav)))
    return partial_windows(mel, pipe.frame_step, pipe.min_coverage).numpy()


@pytest.mark.parametrize("order", ["resample_trim", "trim_resample"])
def test_streamed_windows_match_in_memory(long48k: Path, order: str) -> None:
    pipe = STREAMED.replace(order=order, max_windows_per_batch=7)
    plan, batches = st.stream_file(long48k, pipe)
    chunks = [b.numpy() for b in batches]
    assert all(1 <= c.shape[0] <= 7 for c in chunks)
    streamed = np.concatenate(chunks)
    reference = _windows_in_memory(long48k, pipe)
    assert streamed.shape == reference.shape
    assert plan.n_windows == reference.shape[0]
    # Same samples, same frames: only float rounding of the block-wise FFT differs.
    scale = float(np.abs(reference).max())
    assert float(np.abs(streamed - reference).max()) <= 1e-5 * scale
    assert plan.input_seconds == pytest.approx(sf.info(str(long48k)).duration)
    assert plan.kept_seconds < plan.input_seconds - 5.0  # the 3 s of silence at each end went


@pytest.mark.parametrize("order", ["resample_trim", "trim_resample"])
def test_embedder_streams_long_files_and_matches(
    long48k: Path, embedder: SpeakerEmbedder, order: str
) -> None:
    streamed = embedder.embed_utterances([long48k], pipeline=STREAMED.replace(order=order))
    in_memory = embedder.embed_utterances([long48k], pipeline=IN_MEMORY.replace(order=order))
    cosine = float(streamed[0] @ in_memory[0])
    assert cosine >= 0.9999
    assert np.linalg.norm(streamed[0]) == pytest.approx(1.0, abs=1e-5)


def test_streaming_threshold_picks_the_path(
    long48k: Path, embedder: SpeakerEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    real = st.plan_stream

    def spy(path: object, pipeline: Pipeline, *, source: str | None = None) -> st.StreamPlan:
        calls.append(str(path))
        return real(path, pipeline, source=source)  # type: ignore[arg-type]

    monkeypatch.setattr(st, "plan_stream", spy)
    embedder.embed_utterances([long48k], pipeline=Pipeline(stream_min_duration_s=80.0))
    assert calls == []  # 76 s is below the threshold
    embedder.embed_utterances([long48k], pipeline=Pipeline(stream_min_duration_s=60.0))
    assert calls == [str(long48k)]


def test_native_16k_file_streams_without_resampling(speech: Path, embedder: SpeakerEmbedder) -> None:
    path = speech / "long" / "librispeech_1688_concat_16k.flac"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    a = embedder.embed_utterances([path], pipeline=STREAMED)
    b = embedder.embed_utterances([path], pipeline=IN_MEMORY)
    assert float(a[0] @ b[0]) >= 0.9999


def test_non_streaming_resampler_falls_back(long48k: Path, embedder: SpeakerEmbedder) -> None:
    assert not st.can_stream(48_000, Pipeline(resampler="polyphase"))
    with pytest.raises(AudioError, match="cannot be streamed"):
        st.plan_stream(long48k, Pipeline(resampler="polyphase"))
    # The embedder uses the in-memory path instead, and agrees with it exactly.
    pipe = Pipeline(resampler="polyphase")
    a = embedder.embed_utterances([long48k], pipeline=pipe.replace(stream_min_duration_s=0.0))
    b = embedder.embed_utterances([long48k], pipeline=pipe.replace(stream_min_duration_s=None))
    np.testing.assert_array_equal(a, b)


def test_streamed_silence_is_rejected(tmp_path: Path, embedder: SpeakerEmbedder) -> None:
    path = tmp_path / "silence.wav"
    sf.write(str(path), np.zeros(48_000 * 5, np.float32), 48_000)
    with pytest.raises(AudioError, match="digital silence") as info:
        embedder.embed_utterances([path], pipeline=STREAMED)
    assert str(path) in str(info.value)


def test_streamed_too_short_after_trim_is_rejected(tmp_path: Path) -> None:
    x = np.zeros(48_000 * 4, np.float32)
    x[10_000:10_500] = 0.5  # about 10 ms of sound
    path = tmp_path / "blip.wav"
    sf.write(str(path), x, 48_000)
    with pytest.raises(AudioError, match="less than the minimum"):
        st.plan_stream(path, STREAMED)


def test_frame_power_streamed_equals_whole() -> None:
    from speakerembed.stages.trim import frame_power

    rng = np.random.default_rng(0)
    x = rng.standard_normal(50_003).astype(np.float32)
    acc = st._FramePower(2048, 512)
    for lo in range(0, x.size, 3001):
        acc.feed(x[lo : lo + 3001])
    np.testing.assert_allclose(acc.finish(), frame_power(x, 2048, 512), rtol=1e-9, atol=1e-12)


def test_a_long_constant_file_is_refused_as_a_dc_offset(tmp_path: Path) -> None:
    path = tmp_path / "dc.wav"
    sf.write(path, np.full(16_000 * 3, 0.25, np.float32), 16_000, subtype="FLOAT")
    embedder = SpeakerEmbedder("resemblyzer", device="cpu")
    with pytest.raises(AudioError, match="DC offset") as streamed:
        embedder.embed_utterances(path, pipeline=Pipeline(stream_min_duration_s=1.0))
    with pytest.raises(AudioError, match="DC offset") as in_memory:
        embedder.embed_utterances(path, pipeline=Pipeline(stream_min_duration_s=None))
    assert str(path) in str(streamed.value)
    assert str(path) in str(in_memory.value)
