"""Stage 2b: trim leading and trailing silence.

The rule is :func:`librosa.effects.trim`'s, without librosa: frame the signal (``frame_length``
samples every ``hop_length``, zero-padded by half a frame at each end), take each frame's RMS,
and keep from the first to the last frame whose level is above ``-top_db`` dB relative to the
loudest frame. Levels below :data:`SILENCE_DB` dBFS count as digital silence: a signal that
never rises above it has no voice to embed, and librosa would keep all of it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..config import MODEL_SAMPLE_RATE
from ..errors import AudioError

if TYPE_CHECKING:
    import numpy.typing as npt
    import torch

    from ..config import Pipeline

__all__ = [
    "MIN_SAMPLES",
    "SILENCE_DB",
    "SILENCE_PEAK",
    "check_kept",
    "check_not_constant",
    "check_not_silent",
    "frame_power",
    "frame_power_tensor",
    "is_silent",
    "trim_bounds",
    "trim_silence",
]

#: Frames whose RMS level is below this, in dBFS, are digital silence (librosa's ``amin``).
SILENCE_DB = -100.0
_AMIN_POWER = 1e-10  # (10 ** (SILENCE_DB / 20)) ** 2
#: Peak amplitude below which a whole input counts as digital silence.
SILENCE_PEAK = 10.0 ** (SILENCE_DB / 20.0)
#: Fewest 16 kHz samples the mel can take: its reflect padding needs more than n_fft // 2.
MIN_SAMPLES = 201


def check_not_silent(peak: float, source: str) -> None:
    """Raise :class:`~speakerembed.AudioError` when an input's peak is digital silence."""
    if peak <= SILENCE_PEAK:
        raise AudioError(
            f"is digital silence (peak {20 * np.log10(max(peak, 1e-12)):.0f} dBFS, below "
            f"{SILENCE_DB:.0f} dBFS); pass audio with speech in it",
            source=source,
            stage="trim",
        )


def check_not_constant(low: float, high: float, source: str) -> None:
    """Raise :class:`~speakerembed.AudioError` when the samples span less than the silence level.

    A constant signal (a DC offset) is silence that trimming cannot see: its energy is all at
    0 Hz, so it would otherwise be embedded as if it were sound.
    """
    if high - low <= SILENCE_PEAK:
        raise AudioError(
            f"is a constant {(low + high) / 2:.4g} (a DC offset with no sound in it); pass audio "
            "with speech in it",
            source=source,
            stage="trim",
        )


def check_kept(n_samples: int, pipeline: Pipeline, source: str) -> None:
    """Raise :class:`~speakerembed.AudioError` when fewer than the minimum 16 kHz samples are left."""
    minimum = max(MIN_SAMPLES, pipeline.min_duration_s * MODEL_SAMPLE_RATE)
    if n_samples < minimum:
        what = "after trimming silence, " if pipeline.top_db is not None else ""
        raise AudioError(
            f"{what}{n_samples / MODEL_SAMPLE_RATE:.3f} s of audio is left, less than the minimum of "
            f"{minimum / MODEL_SAMPLE_RATE:g} s; pass longer speech (or lower "
            "Pipeline.min_duration_s, or raise top_db)",
            source=source,
            stage="trim",
        )


def frame_power(
    waveform: npt.NDArray[np.float32], frame_length: int = 2048, hop_length: int = 512
) -> npt.NDArray[np.float64]:
    """Mean power of each centred frame, as ``librosa.feature.rms(...) ** 2``.

    Returns
    -------
    numpy.ndarray, shape (1 + n_samples // hop_length,), float64
    """
    n = waveform.shape[-1]
    half = frame_length // 2
    if frame_length % hop_length == 0 and half % hop_length == 0 and waveform.ndim == 1:
        return _frame_power_by_hops(waveform, frame_length, hop_length)
    squares = np.square(waveform, dtype=np.float64)
    cumsum = np.zeros(n + 2 * half + 1, dtype=np.float64)
    np.cumsum(squares, out=cumsum[half + 1 : half + 1 + n])
    cumsum[half + 1 + n :] = cumsum[half + n]
    n_frames = 1 + (n + 2 * half - frame_length) // hop_length
    starts = np.arange(n_frames) * hop_length
    power: npt.NDArray[np.float64] = (cumsum[starts + frame_length] - cumsum[starts]) / frame_length
    return np.maximum(power, 0.0)


def _frame_power_by_hops(
    waveform: npt.NDArray[np.float32], frame_length: int, hop_length: int
) -> npt.NDArray[np.float64]:
    """:func:`frame_power` when frames are whole hops (the default 2048/512, at any rate).

    Each centred frame is ``frame_length // hop_length`` consecutive hop-sized blocks of the
    zero-padded signal, so the energy of each block is summed once (float64 accumulation, no
    float64 copy of the signal) and each frame adds up its blocks: about 20x faster than a
    cumulative sum over every sample, and exact for quiet frames in loud files, where
    differences of a long cumulative sum lose precision.
    """
    n = waveform.shape[-1]
    per_frame = frame_length // hop_length
    lead = frame_length // 2 // hop_length
    n_frames = 1 + n // hop_length
    full, rest = divmod(n, hop_length)
    # Blocks -lead .. n_frames - 1 + per_frame - lead - 1 of the signal, zero outside it.
    energy = np.zeros(n_frames + per_frame - 1, dtype=np.float64)
    body = waveform[: full * hop_length].reshape(full, hop_length)
    energy[lead : lead + full] = np.einsum("ij,ij->i", body, body, dtype=np.float64)
    if rest:
        tail = waveform[full * hop_length :]
        energy[lead + full] = float(np.dot(tail.astype(np.float64), tail.astype(np.float64)))
    power: npt.NDArray[np.float64] = np.convolve(energy, np.ones(per_frame), mode="valid") / frame_length
    return power


def frame_power_tensor(
    waveform: torch.Tensor, frame_length: int = 2048, hop_length: int = 512
) -> torch.Tensor:
    """:func:`frame_power` computed with torch, on the waveform's device.

    Float64 sums where the device has float64 (CPU, CUDA), float32 elsewhere (MPS).

    Returns
    -------
    torch.Tensor, shape (1 + n_samples // hop_length,), float64 (float32 on MPS)
    """
    import torch

    dtype = torch.float32 if waveform.device.type == "mps" else torch.float64
    n = waveform.shape[-1]
    half = frame_length // 2
    if frame_length % hop_length == 0 and half % hop_length == 0 and waveform.dim() == 1:
        # The same sums as _frame_power_by_hops: per-block energies, then whole frames.
        per_frame, lead = frame_length // hop_length, half // hop_length
        n_frames, full = 1 + n // hop_length, n // hop_length
        energy = torch.zeros(n_frames + per_frame - 1, dtype=dtype, device=waveform.device)
        body = waveform[: full * hop_length].to(dtype).reshape(full, hop_length)
        energy[lead : lead + full] = body.square().sum(dim=1)
        if n > full * hop_length:
            energy[lead + full] = waveform[full * hop_length :].to(dtype).square().sum()
        return energy.unfold(0, per_frame, 1).sum(dim=1) / frame_length
    cumsum = torch.zeros(n + 2 * half + 1, dtype=dtype, device=waveform.device)
    cumsum[half + 1 : half + 1 + n] = torch.cumsum(waveform.to(dtype).square(), dim=0)
    cumsum[half + 1 + n :] = cumsum[half + n]
    n_frames = 1 + (n + 2 * half - frame_length) // hop_length
    starts = torch.arange(n_frames, device=waveform.device) * hop_length
    return ((cumsum[starts + frame_length] - cumsum[starts]) / frame_length).clamp_min(0.0)


def is_silent(power: npt.NDArray[np.float64]) -> bool:
    """Whether every frame is below :data:`SILENCE_DB`."""
    return bool(power.size == 0 or np.max(power) <= _AMIN_POWER)


def trim_bounds(
    power: npt.NDArray[np.float64], n_samples: int, top_db: float, hop_length: int
) -> tuple[int, int]:
    """``(start, end)`` sample bounds of the non-silent part, from :func:`frame_power`'s output."""
    db = 10.0 * np.log10(np.maximum(_AMIN_POWER, power))
    db -= 10.0 * np.log10(max(_AMIN_POWER, float(np.max(power))))
    loud = np.flatnonzero(db > -top_db)
    if loud.size == 0:
        return 0, 0
    start = int(loud[0]) * hop_length
    end = min(n_samples, (int(loud[-1]) + 1) * hop_length)
    return start, end


def trim_silence(
    waveform: npt.NDArray[np.float32],
    top_db: float = 20,
    frame_length: int = 2048,
    hop_length: int = 512,
) -> tuple[npt.NDArray[np.float32], tuple[int, int]]:
    """Trim leading and trailing silence, as :func:`librosa.effects.trim` does.

    Parameters
    ----------
    waveform : numpy.ndarray, shape (n_samples,), float32
    top_db : float
        Threshold in dB below the loudest frame.
    frame_length, hop_length : int
        Framing of the energy, in samples.

    Returns
    -------
    trimmed : numpy.ndarray, shape (end - start,), float32
        A view of ``waveform``.
    bounds : tuple of int
        ``(start, end)`` in samples.

    Examples
    --------
    >>> import numpy as np
    >>> from speakerembed.stages.trim import trim_silence
    >>> x = np.zeros(16000, np.float32); x[6000:10000] = 0.5
    >>> trim_silence(x)[1]
    (5120, 11264)
    """
    power = frame_power(waveform, frame_length, hop_length)
    start, end = trim_bounds(power, waveform.shape[-1], top_db, hop_length)
    return waveform[start:end], (start, end)
