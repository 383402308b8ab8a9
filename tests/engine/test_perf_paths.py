"""Correctness of the fast paths: torch mel, bf16, the prefetch thread, the device pipeline."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from speakerembed import AudioError, Pipeline, SpeakerEmbedder
from speakerembed._engine.preparation import preprocess_on_device
from speakerembed.stages.mel import melspectrogram, slaney_filterbank
from speakerembed.stages.trim import frame_power, frame_power_tensor

needs_cuda = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA device, and torch sees none on this machine"
)


def _numpy_melspectrogram(wav: np.ndarray) -> np.ndarray:
    """Chatterbox 0.1.7's ``melspectrogram``: librosa.stft (reflect) power, Slaney mel basis."""
    librosa = pytest.importorskip("librosa", reason="librosa is the reference mel (test group)")
    spec = librosa.stft(wav, n_fft=400, hop_length=160, win_length=400, center=True, pad_mode="reflect")
    basis = librosa.filters.mel(sr=16_000, n_fft=400, n_mels=40, fmin=0, fmax=8000)
    return (basis @ np.abs(spec) ** 2).T.astype(np.float32)


def _read(path: Path) -> np.ndarray:
    x, sr = sf.read(str(path), dtype="float32")
    assert sr == 16_000
    return x


def test_torch_mel_matches_numpy_reference(short_utterances: list[Path]) -> None:
    for path in short_utterances[:3]:
        wav = _read(path)
        ours = melspectrogram(torch.from_numpy(wav)).numpy()
        ref = _numpy_melspectrogram(wav)
        assert ours.shape == ref.shape
        rel = np.abs(ours - ref).max() / np.abs(ref).max()
        assert rel <= 1e-5, f"{path.name}: relative error {rel:.2e}"


def test_filterbank_matches_librosa() -> None:
    librosa = pytest.importorskip("librosa", reason="librosa is the reference filterbank")
    ref = librosa.filters.mel(sr=16_000, n_fft=400, n_mels=40, fmin=0, fmax=8000)
    np.testing.assert_allclose(slaney_filterbank(), ref, rtol=1e-5, atol=1e-8)


def test_uncentred_mel_of_padded_signal_is_the_centred_mel(short_utterances: list[Path]) -> None:
    wav = _read(short_utterances[0])
    padded = np.pad(wav, 200, mode="reflect")
    a = melspectrogram(torch.from_numpy(wav)).numpy()
    b = melspectrogram(torch.from_numpy(padded), center=False).numpy()
    assert a.shape == b.shape
    assert np.abs(a - b).max() <= 1e-6 * np.abs(a).max()


def test_frame_power_tensor_matches_numpy(short_utterances: list[Path]) -> None:
    wav = _read(short_utterances[1])
    for frame, hop in ((2048, 512), (5645, 1411)):
        ref = frame_power(wav, frame, hop)
        ours = frame_power_tensor(torch.from_numpy(wav), frame, hop).numpy()
        np.testing.assert_allclose(ours, ref, rtol=1e-9, atol=1e-15)


@pytest.mark.parametrize("n", [1, 300, 511, 512, 513, 2047, 2048, 2049, 16_000, 16_001])
@pytest.mark.parametrize(("frame", "hop"), [(2048, 512), (5645, 1411), (8, 4), (6, 2)])
def test_frame_power_equals_explicit_frames(n: int, frame: int, hop: int) -> None:
    """Both frame_power paths (whole hops, cumulative sums) against framing done by hand."""
    wav = (np.random.default_rng(n).standard_normal(n) * 0.3).astype(np.float32)
    wav[: n // 3] *= 1e-4  # a quiet stretch next to loud audio
    half = frame // 2
    padded = np.pad(wav.astype(np.float64), (half, half))
    n_frames = 1 + (n + 2 * half - frame) // hop
    ref = np.array([np.mean(padded[i * hop : i * hop + frame] ** 2) for i in range(n_frames)])
    ours = frame_power(wav, frame, hop)
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, rtol=1e-7, atol=1e-13)
    tensor = frame_power_tensor(torch.from_numpy(wav), frame, hop).numpy()
    np.testing.assert_allclose(tensor, ref, rtol=1e-7, atol=1e-13)


def test_bf16_close_to_fp32_on_real_speech(embedder: SpeakerEmbedder, short_utterances: list[Path]) -> None:
    bf16 = SpeakerEmbedder(encoder=embedder.encoder.module, precision="bf16")
    a = embedder.embed_utterances(short_utterances)
    b = bf16.embed_utterances(short_utterances)
    cosines = np.sum(a * b, axis=1)
    assert cosines.min() >= 0.999, cosines
    np.testing.assert_allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-5)
    # The module passed in stays float32.
    assert next(embedder.encoder.module.parameters()).dtype == torch.float32


def test_prefetch_is_bitwise_deterministic(
    tuned: Callable[..., SpeakerEmbedder], short_utterances: list[Path]
) -> None:
    import soxr

    wavs = [soxr.resample(_read(p), 16_000, 44_100).astype(np.float32) for p in short_utterances]
    ahead = tuned(prefetch_depth=2)
    first = ahead.embed_utterances(wavs, sample_rate=44_100)
    again = ahead.embed_utterances(wavs, sample_rate=44_100)
    serial = tuned(prefetch_depth=0).embed_utterances(wavs, sample_rate=44_100)
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(first, serial)


@pytest.mark.parametrize(("depth", "threads"), [(2, 1), (0, 2)], ids=["prefetch", "bursts"])
def test_overlapped_preparation_reports_the_failing_input(
    tuned: Callable[..., SpeakerEmbedder],
    short_utterances: list[Path],
    depth: int,
    threads: int,
) -> None:
    embedder = tuned(prefetch_depth=depth, prepare_threads=threads)
    inputs: list[object] = [*short_utterances[:2], np.zeros(16_000, np.float32), short_utterances[2]]
    with pytest.raises(AudioError, match="input 2") as info:
        embedder.embed_utterances(inputs, sample_rate=16_000)  # type: ignore[arg-type]
    assert "silence" in str(info.value)
    result = embedder.embed_utterances(inputs, sample_rate=16_000, errors="skip")  # type: ignore[arg-type]
    assert result.indices.tolist() == [0, 1, 3]
    assert [f.index for f in result.failures] == [2]
    expected = embedder.embed_utterances([inputs[i] for i in (0, 1, 3)], sample_rate=16_000)  # type: ignore[arg-type]
    np.testing.assert_array_equal(result.embeddings, expected)


def test_prefetch_stops_when_the_consumer_stops() -> None:
    import threading

    from speakerembed._engine.prefetch import prefetch

    produced: list[int] = []

    def source() -> object:
        for i in range(1000):
            produced.append(i)
            yield i

    it = prefetch(source(), depth=2)  # type: ignore[arg-type]
    assert [next(it) for _ in range(3)] == [0, 1, 2]
    it.close()  # type: ignore[attr-defined]
    for t in threading.enumerate():
        if t.name == "speakerembed-prefetch":
            t.join(timeout=5)
    assert len(produced) < 10


def test_burst_preparation_is_bitwise_deterministic(
    tuned: Callable[..., SpeakerEmbedder], short_utterances: list[Path]
) -> None:
    import soxr

    wavs = [soxr.resample(_read(p), 16_000, 44_100).astype(np.float32) for p in short_utterances]
    inputs: list[object] = [*wavs, *short_utterances]  # arrays and files, as one call
    rates = [44_100] * len(wavs) + [None] * len(short_utterances)
    embedder = tuned(prefetch_depth=0, prepare_threads=3, encoder_streams=1)
    s = embedder.engine.schedule(len(inputs))
    assert (s.prefetch_depth, s.prepare_threads, s.encoder_threads) == (0, 3, None)
    threads_before = torch.get_num_threads()
    bursts = embedder.embed_utterances(inputs, sample_rate=rates)  # type: ignore[arg-type]
    # The preparing threads' one torch thread is theirs; the encoder's thread keeps its own.
    assert torch.get_num_threads() == threads_before
    serial = tuned(prefetch_depth=0, prepare_threads=1, encoder_streams=1).embed_utterances(
        inputs,
        sample_rate=rates,  # type: ignore[arg-type]
    )
    np.testing.assert_array_equal(bursts, serial)


def test_many_core_plan_runs_the_encoder_on_fewer_threads_for_the_call(
    embedder: SpeakerEmbedder,
    tuned: Callable[..., SpeakerEmbedder],
    short_utterances: list[Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Same embeddings; the encoder sees the split's threads; the caller's count comes back."""
    from speakerembed._engine import prefetch as _prefetch

    expected = embedder.embed_utterances(short_utterances)
    # A 16-core machine whose torch uses every core, for an encoder that cannot stream.
    many = tuned(cores=16, torch_threads=16)
    seen: list[int] = []
    real = many.engine.encoder

    class _Spy:
        device = real.device

        def __call__(self, windows: torch.Tensor) -> torch.Tensor:
            seen.append(torch.get_num_threads())
            return real(windows)

    before = torch.get_num_threads()
    monkeypatch.setattr(many.engine, "encoder", _Spy())
    s = many.engine.schedule(len(short_utterances))
    assert (s.streams, s.prefetch_depth, s.prepare_threads, s.encoder_threads) == (1, 8, 4, 12)
    got = many.embed_utterances(short_utterances)
    assert seen
    assert set(seen) == {12}
    assert torch.get_num_threads() == before
    np.testing.assert_allclose(got, expected, atol=1e-5)
    with _prefetch.torch_threads(None):
        assert torch.get_num_threads() == before


def test_map_in_bursts_keeps_order_and_waits_for_the_consumer() -> None:
    from speakerembed._engine.prefetch import map_in_bursts

    started: list[int] = []

    def square(i: int) -> int:
        started.append(i)
        if i == 7:
            raise ValueError("seven")
        return i * i

    it = map_in_bursts(square, range(20), workers=2, burst=3)
    assert [next(it) for _ in range(4)] == [0, 1, 4, 9]
    # Two bursts asked for, so six items computed and no more: nothing runs ahead.
    assert sorted(started) == list(range(6))
    assert [next(it), next(it), next(it)] == [16, 25, 36]
    with pytest.raises(ValueError, match="seven"):
        next(it)
    assert sorted(started) == list(range(9))


def test_device_path_on_cpu_matches_host_path(
    embedder: SpeakerEmbedder, short_utterances: list[Path]
) -> None:
    import soxr

    wavs = [soxr.resample(_read(p), 16_000, 48_000).astype(np.float32) for p in short_utterances[:3]]
    host = Pipeline(resampler="torchaudio", resample_device="cpu")
    for order in ("resample_trim", "trim_resample"):
        a = embedder.embed_utterances(wavs, sample_rate=48_000, pipeline=host.replace(order=order))
        b = embedder.embed_utterances(
            wavs, sample_rate=48_000, pipeline=host.replace(order=order, resample_device="device")
        )
        assert np.abs(a - b).max() <= 1e-6


def test_auto_resample_device_stays_on_the_cpu_without_a_gpu(embedder: SpeakerEmbedder) -> None:
    pipe = Pipeline(resampler="torchaudio", resample_device="auto")
    assert embedder.device.type == "cpu"
    assert not preprocess_on_device(embedder.device.type, pipe, 44_100, 44_100 * 3600)
    assert not preprocess_on_device(
        embedder.device.type, Pipeline(resample_device="device"), 44_100, 44_100
    )  # soxr: CPU only


@pytest.mark.gpu
@needs_cuda
def test_gpu_mel_matches_cpu(short_utterances: list[Path]) -> None:
    wav = torch.from_numpy(_read(short_utterances[0]))
    cpu = melspectrogram(wav)
    gpu = melspectrogram(wav.cuda()).cpu()
    assert float((gpu - cpu).abs().max() / cpu.abs().max()) <= 1e-5


@pytest.mark.gpu
@needs_cuda
def test_gpu_pipeline_matches_cpu(embedder: SpeakerEmbedder, short_utterances: list[Path]) -> None:
    gpu = SpeakerEmbedder("resemblyzer", device="cuda")
    pipe = Pipeline(resampler="torchaudio", resample_device="device")
    import soxr

    wavs = [soxr.resample(_read(p), 16_000, 44_100).astype(np.float32) for p in short_utterances[:3]]
    a = embedder.embed_utterances(wavs, sample_rate=44_100, pipeline=pipe.replace(resample_device="cpu"))
    b = gpu.embed_utterances(wavs, sample_rate=44_100, pipeline=pipe)
    assert np.sum(a * b, axis=1).min() >= 0.9999
    auto = gpu.embed_utterances(wavs, sample_rate=44_100, pipeline=pipe.replace(resample_device="auto"))
    assert np.sum(a * auto, axis=1).min() >= 0.9999


@pytest.mark.gpu
@needs_cuda
def test_gpu_bf16_close_to_fp32(short_utterances: list[Path]) -> None:
    fp32 = SpeakerEmbedder("resemblyzer", device="cuda")
    bf16 = SpeakerEmbedder("resemblyzer", device="cuda", precision="bf16")
    a = fp32.embed_utterances(short_utterances)
    b = bf16.embed_utterances(short_utterances)
    assert np.sum(a * b, axis=1).min() >= 0.999
