"""Shared test helpers: synthetic signals, small WAV writers, and the Prometheus-tool check.

The signals are made here, so the tests that use them run without ``../shared``. They are not
speech, but they have what the encoder needs to give a stable embedding: a voiced, harmonic
source with a moving pitch and a syllable-rate envelope.
"""

from __future__ import annotations

import os
import shutil
import struct
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

__all__ = ["pcm16_wav_header", "require_tool", "voice", "write_header_only_wav"]


def voice(
    seconds: float = 2.0, sample_rate: int = 16_000, f0: float = 120.0, seed: int = 0
) -> npt.NDArray[np.float32]:
    """A voiced, speech-like signal: harmonics of a gliding pitch under a 3 Hz envelope.

    Returns
    -------
    numpy.ndarray, shape (round(seconds * sample_rate),), float32, peak about 0.4
    """
    rng = np.random.default_rng(seed)
    n = round(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    pitch = f0 + 20.0 * np.sin(2 * np.pi * 0.5 * t + rng.uniform(0, np.pi))
    phase = 2 * np.pi * np.cumsum(pitch) / sample_rate
    harmonics = sum(np.sin(k * phase) / k for k in range(1, 15))
    envelope = 0.5 * (1.0 + np.sin(2 * np.pi * 3.0 * t))
    noise = 0.01 * rng.standard_normal(n)
    return (0.2 * harmonics * envelope + noise).astype(np.float32)


def pcm16_wav_header(n_frames: int, sample_rate: int, channels: int = 1) -> bytes:
    """A canonical 44-byte RIFF/WAVE header for 16-bit PCM that declares ``n_frames`` frames."""
    block = 2 * channels
    data_bytes = n_frames * block
    riff_size = min(36 + data_bytes, 0xFFFFFFFF)
    return (
        b"RIFF"
        + struct.pack("<I", riff_size)
        + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, channels, sample_rate, sample_rate * block, block, 16)
        + b"data"
        + struct.pack("<I", min(data_bytes, 0xFFFFFFFF))
    )


def write_header_only_wav(path: Path, seconds: float, sample_rate: int = 16_000) -> Path:
    """Write a WAV whose header declares ``seconds`` of audio, as a sparse file.

    The file's size matches its header, but the data are a hole in the file: nothing is
    written, and the disk holds almost nothing, so the test itself allocates no gigabytes.
    """
    n_frames = int(seconds * sample_rate)
    header = pcm16_wav_header(n_frames, sample_rate)
    with path.open("wb") as f:
        f.write(header)
        f.truncate(len(header) + 2 * n_frames)
    return path


def require_tool(name: str) -> str:
    """The path of a Prometheus tool; skip locally when it is missing, fail under CI."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (Debian package 'prometheus'; .ci/run installs it)"
        if os.environ.get("CI"):
            pytest.fail(message + ", and CI is set")
        pytest.skip(message)
    return path
