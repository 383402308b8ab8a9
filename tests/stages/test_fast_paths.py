"""The stages' fast paths against their references: torch mel, frame power, bf16."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from speakerembed import SpeakerEmbedder
from speakerembed.stages.mel import melspectrogram, slaney_filterbank
from speakerembed.stages.trim import frame_power, frame_power_tensor


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
