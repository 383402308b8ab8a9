"""Odd but valid input works: PCM dtypes, channel layouts, rates, quiet speech, paths, tensors."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import soundfile as sf
import torch
from conftest import speech_wave

from speakerembed import SpeakerEmbedder
from speakerembed.stages.resample import resample


@pytest.fixture(scope="module")
def speech_clip(speech: Path) -> tuple[npt.NDArray[np.float32], int, Path]:
    path = speech / "arctic" / "cmu_arctic_us_aew_a0001.wav"
    if not path.exists():
        pytest.skip(f"{path} is missing")
    wav, sr = speech_wave(path)
    return wav, sr, path


@pytest.fixture(scope="module")
def ref(
    embedder: SpeakerEmbedder, speech_clip: tuple[npt.NDArray[np.float32], int, Path]
) -> npt.NDArray[np.float32]:
    wav, sr, _ = speech_clip
    return embedder.embed_utterances(wav, sample_rate=sr)[0]


def _unit(x: npt.NDArray[np.float32]) -> None:
    assert x.dtype == np.float32
    assert np.isfinite(x).all()
    np.testing.assert_allclose(np.linalg.norm(x, axis=-1), 1.0, atol=1e-5)


@pytest.mark.parametrize(
    ("dtype", "min_cos"),
    [
        (np.int16, 0.9999),
        (np.int32, 0.9999),
        (np.int8, 0.9),
        (np.uint8, 0.9),
        (np.float64, 1.0),
        (np.float16, 0.999),
    ],
)
def test_pcm_and_float_dtypes(
    embedder: SpeakerEmbedder,
    speech_clip: tuple[npt.NDArray[np.float32], int, Path],
    ref: npt.NDArray[np.float32],
    dtype: type, min_cos: float,
) -> None:  # fmt: skip
    wav, sr, _ = speech_clip
    if np.dtype(dtype).kind == "f":
        x = wav.astype(dtype)
    else:
        info = np.iinfo(dtype)
        mid = (int(info.max) + int(info.min) + 1) / 2
        x = np.round(mid + wav.astype(np.float64) * (info.max - mid)).astype(dtype)
    out = embedder.embed_utterances(x, sample_rate=sr)[0]
    _unit(out)
    assert float(out @ ref) >= min_cos - 1e-6


@pytest.mark.parametrize("channels", [2, 3, 6])
def test_multichannel_both_layouts_downmix_to_the_mean(
    embedder: SpeakerEmbedder, speech_clip: tuple[npt.NDArray[np.float32], int, Path], channels: int
) -> None:
    wav, sr, _ = speech_clip
    gains = np.linspace(0.5, 1.0, channels, dtype=np.float32)[:, None]
    first = gains * wav[None, :]  # (channels, samples)
    mono = first.mean(axis=0, dtype=np.float32)
    expected = embedder.embed_utterances(mono, sample_rate=sr)
    np.testing.assert_array_equal(embedder.embed_utterances(first, sample_rate=sr), expected)
    np.testing.assert_array_equal(
        embedder.embed_utterances(np.ascontiguousarray(first.T), sample_rate=sr), expected
    )
    np.testing.assert_array_equal(
        embedder.embed_utterances(first.T, sample_rate=sr), expected
    )  # a strided view


def test_single_channel_2d_and_row_tensor(
    embedder: SpeakerEmbedder,
    speech_clip: tuple[npt.NDArray[np.float32], int, Path],
    ref: npt.NDArray[np.float32],
) -> None:
    wav, sr, _ = speech_clip
    for x in (wav[None, :], wav[:, None], torch.from_numpy(wav)[None, :], torch.from_numpy(wav)):
        np.testing.assert_array_equal(embedder.embed_utterances(x, sample_rate=sr)[0], ref)


@pytest.mark.parametrize("rate", [8000, 96000])
def test_8k_and_96k(
    embedder: SpeakerEmbedder,
    speech_clip: tuple[npt.NDArray[np.float32], int, Path],
    ref: npt.NDArray[np.float32],
    rate: int,
) -> None:  # fmt: skip
    wav, sr, _ = speech_clip
    x = resample(wav, sr, rate, "soxr_hq")
    out = embedder.embed_utterances(x, sample_rate=rate)[0]
    _unit(out)
    # 8 kHz loses everything above 4 kHz; the voice is still recognisably the same.
    assert float(out @ ref) > (0.8 if rate == 8000 else 0.999)


def test_very_quiet_speech_is_embedded(
    embedder: SpeakerEmbedder, speech_clip: tuple[npt.NDArray[np.float32], int, Path]
) -> None:
    """Speech at -60 dB (x 1e-3) is embedded, not rejected as silence (the encoder is level
    dependent, like Chatterbox's, so the vector differs from the loud one's)."""
    wav, sr, _ = speech_clip
    _unit(embedder.embed_utterances(wav * 1e-3, sample_rate=sr)[0])
    _unit(embedder.embed_utterances((wav * 1e-3 * 32767).astype(np.int16), sample_rate=sr)[0])


def test_loud_clipped_speech(
    embedder: SpeakerEmbedder, speech_clip: tuple[npt.NDArray[np.float32], int, Path]
) -> None:
    wav, sr, _ = speech_clip
    _unit(embedder.embed_utterances(np.clip(wav * 100, -1, 1), sample_rate=sr)[0])


def test_paths_of_every_kind(
    embedder: SpeakerEmbedder,
    speech_clip: tuple[npt.NDArray[np.float32], int, Path],
    ref: npt.NDArray[np.float32],
) -> None:
    _, _, path = speech_clip
    for item in (path, str(path)):
        np.testing.assert_array_equal(embedder.embed_utterances(item)[0], ref)


def test_sample_rate_spellings(
    embedder: SpeakerEmbedder,
    speech_clip: tuple[npt.NDArray[np.float32], int, Path],
    ref: npt.NDArray[np.float32],
) -> None:
    wav, sr, _ = speech_clip
    for rate in (sr, float(sr), np.int32(sr), np.int64(sr), np.float64(sr), [sr], (sr,), np.array([sr])):
        np.testing.assert_array_equal(embedder.embed_utterances(wav, sample_rate=rate)[0], ref)  # type: ignore[arg-type]


def test_generators_tuples_and_mixed_inputs(
    embedder: SpeakerEmbedder,
    speech_clip: tuple[npt.NDArray[np.float32], int, Path],
    ref: npt.NDArray[np.float32],
) -> None:
    wav, sr, path = speech_clip
    out = embedder.embed_utterances((x for x in [wav, wav]), sample_rate=sr)  # type: ignore[arg-type]
    assert out.shape == (2, 256)
    mixed = embedder.embed_utterances([path, wav, torch.from_numpy(wav)], sample_rate=sr)
    for row in mixed:
        np.testing.assert_allclose(row, ref, atol=1e-6)


def test_memmap_and_readonly_arrays(
    embedder: SpeakerEmbedder,
    speech_clip: tuple[npt.NDArray[np.float32], int, Path],
    ref: npt.NDArray[np.float32],
    tmp_path: Path,
) -> None:  # fmt: skip
    wav, sr, _ = speech_clip
    mm = np.lib.format.open_memmap(tmp_path / "x.npy", mode="w+", dtype=np.float32, shape=wav.shape)
    mm[:] = wav
    mm.flush()
    ro = np.load(tmp_path / "x.npy", mmap_mode="r")
    np.testing.assert_array_equal(embedder.embed_utterances(ro, sample_rate=sr)[0], ref)
    frozen = wav.copy()
    frozen.flags.writeable = False
    np.testing.assert_array_equal(embedder.embed_utterances(frozen, sample_rate=sr)[0], ref)


def test_tensor_dtypes_and_grad(
    embedder: SpeakerEmbedder,
    speech_clip: tuple[npt.NDArray[np.float32], int, Path],
    ref: npt.NDArray[np.float32],
) -> None:
    wav, sr, _ = speech_clip
    t = torch.from_numpy(wav)
    np.testing.assert_array_equal(
        embedder.embed_utterances(t.clone().requires_grad_(), sample_rate=sr)[0], ref
    )
    for x in (t.to(torch.float64), t.to(torch.bfloat16), (t * 32767).to(torch.int16)):
        out = embedder.embed_utterances(x, sample_rate=sr)[0]
        _unit(out)
        assert float(out @ ref) > 0.99


@pytest.mark.gpu
def test_cuda_tensor(
    embedder: SpeakerEmbedder,
    speech_clip: tuple[npt.NDArray[np.float32], int, Path],
    ref: npt.NDArray[np.float32],
) -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device: a CUDA tensor cannot be made here")
    wav, sr, _ = speech_clip
    out = embedder.embed_utterances(torch.from_numpy(wav).cuda()[None, :], sample_rate=sr)[0]
    np.testing.assert_array_equal(out, ref)


def test_wav_with_a_huge_declared_length_reads_the_data_it_has(
    embedder: SpeakerEmbedder,
    speech_clip: tuple[npt.NDArray[np.float32], int, Path],
    ref: npt.NDArray[np.float32],
    tmp_path: Path,
) -> None:  # fmt: skip
    """A streaming writer's WAV (data size 0xFFFFFFFF) is read up to where its data ends."""
    wav, sr, _ = speech_clip
    path = tmp_path / "streamed.wav"
    sf.write(path, wav, sr, subtype="FLOAT")
    b = bytearray(path.read_bytes())
    data = b.find(b"data")
    struct.pack_into("<I", b, data + 4, 0xFFFFFFFF)
    struct.pack_into("<I", b, 4, 0xFFFFFFFF)
    path.write_bytes(bytes(b))
    np.testing.assert_allclose(embedder.embed_utterances(path)[0], ref, atol=1e-6)
