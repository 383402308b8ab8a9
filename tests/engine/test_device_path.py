"""The device pipeline: resampling, trimming and the mel on the encoder's device, and the GPU."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from speakerembed import Pipeline, SpeakerEmbedder
from speakerembed._engine.preparation import preprocess_on_device
from speakerembed.stages.mel import melspectrogram

needs_cuda = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA device, and torch sees none on this machine"
)


def _read(path: Path) -> np.ndarray:
    x, sr = sf.read(str(path), dtype="float32")
    assert sr == 16_000
    return x


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
