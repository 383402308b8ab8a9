"""Stage 3: the 40-band power mel spectrogram at 16 kHz.

This is Chatterbox's ``melspectrogram`` (``chatterbox.models.voice_encoder.melspec`` in
chatterbox-tts 0.1.7) written with torch, so that it runs on any device: a 400-sample Hann STFT
every 160 samples, centred with reflect padding, magnitudes squared, and 40 Slaney-scale,
Slaney-normalised mel bands from 0 to 8 kHz (``librosa.filters.mel``'s defaults). No log, no
pre-emphasis.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import numpy as np

from ..config import MEL_HOP_LENGTH, MODEL_SAMPLE_RATE

if TYPE_CHECKING:
    import numpy.typing as npt
    import torch

__all__ = ["N_FFT", "N_MELS", "mel_filterbank", "melspectrogram", "n_mel_frames", "slaney_filterbank"]

N_FFT = 400
N_MELS = 40
F_MAX = 8000.0


def n_mel_frames(n_samples: int) -> int:
    """Mel frames for ``n_samples`` of 16 kHz audio: ``1 + n_samples // 160``."""
    return 1 + n_samples // MEL_HOP_LENGTH


def _hz_to_mel(freqs: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Slaney's mel scale: linear below 1 kHz, logarithmic above."""
    f_sp = 200.0 / 3
    mels = freqs / f_sp
    min_log_hz, min_log_mel, logstep = 1000.0, 1000.0 / f_sp, np.log(6.4) / 27.0
    above = freqs >= min_log_hz
    mels[above] = min_log_mel + np.log(freqs[above] / min_log_hz) / logstep
    return mels


def _mel_to_hz(mels: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    f_sp = 200.0 / 3
    freqs = f_sp * mels
    min_log_hz, min_log_mel, logstep = 1000.0, 1000.0 / f_sp, np.log(6.4) / 27.0
    above = mels >= min_log_mel
    freqs[above] = min_log_hz * np.exp(logstep * (mels[above] - min_log_mel))
    return freqs


def slaney_filterbank() -> npt.NDArray[np.float32]:
    """``librosa.filters.mel(sr=16000, n_fft=400, n_mels=40, fmin=0, fmax=8000)``, shape (40, 201).

    Slaney's mel scale and Slaney's area normalisation, as Chatterbox's ``mel_basis`` and
    Resemblyzer's features use.
    """
    fft_freqs = np.fft.rfftfreq(n=N_FFT, d=1.0 / MODEL_SAMPLE_RATE)
    mel_min, mel_max = _hz_to_mel(np.array([0.0, F_MAX]))
    mel_f = _mel_to_hz(np.linspace(mel_min, mel_max, N_MELS + 2))
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fft_freqs)
    weights = np.zeros((N_MELS, fft_freqs.size), dtype=np.float32)
    for i in range(N_MELS):
        lower = -ramps[i] / fdiff[i]
        upper = ramps[i + 2] / fdiff[i + 1]
        weights[i] = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2 : N_MELS + 2] - mel_f[:N_MELS]))[:, np.newaxis]
    return weights


@functools.lru_cache(maxsize=8)
def _filterbank(device: str) -> torch.Tensor:
    import torch

    return torch.from_numpy(slaney_filterbank()).to(device)


@functools.lru_cache(maxsize=8)
def _filterbank_t(device: str) -> torch.Tensor:
    return _filterbank(device).T.contiguous()


@functools.lru_cache(maxsize=8)
def _window(device: str) -> torch.Tensor:
    import torch

    return torch.hann_window(N_FFT).to(device)


def mel_filterbank(device: Any = "cpu") -> torch.Tensor:
    """The mel filterbank, shape (40, 201), float32, cached per device."""
    return _filterbank(str(device))


def melspectrogram(waveform: torch.Tensor, *, center: bool = True) -> torch.Tensor:
    """Power mel spectrogram of 16 kHz audio, on the waveform's device.

    Parameters
    ----------
    waveform : torch.Tensor, shape (n_samples,), float32
        At least 201 samples (reflect padding needs them).
    center : bool
        ``True`` (Chatterbox's mel) pads 200 samples by reflection at each end, giving
        ``1 + n_samples // 160`` frames. ``False`` frames the samples as they are, giving
        ``1 + (n_samples - 400) // 160`` frames; :mod:`speakerembed.stages.longform` pads blocks itself.

    Returns
    -------
    torch.Tensor, shape (n_frames, 40), float32
        Frames first, as the encoder reads them.
    """
    import torch

    device = str(waveform.device)
    # torch.stft's framing (reflect padding, Hann window, one-sided FFT), done frames-first:
    # each frame's FFT, power and mel stay contiguous, without the (freq, time) transposes
    # that cost more than the FFT itself in a thread with one torch thread.
    if waveform.device.type == "cpu":
        # On the CPU, NumPy pads (one copy, 5x cheaper than torch's reflect pad) and windows
        # the strided frames; the result is within 3e-11 of the torch path's.
        frames = torch.from_numpy(_windowed_frames(waveform.detach().float().numpy(), center))
    else:
        signal = waveform.float()
        if center:
            pad = N_FFT // 2
            signal = torch.nn.functional.pad(signal[None, None], (pad, pad), mode="reflect")[0, 0]
        frames = signal.unfold(0, N_FFT, MEL_HOP_LENGTH) * _window(device)
    spec = torch.fft.rfft(frames, dim=1)
    # |z|^2 as re^2 + im^2 (what z * conj(z) computes), squared in place: no complex product,
    # no strided copy for the matmul, no square root of abs().
    parts = torch.view_as_real(spec).square_()
    power = parts[..., 0] + parts[..., 1]
    return torch.matmul(power, _filterbank_t(device))


def _windowed_frames(signal: npt.NDArray[np.float32], center: bool) -> npt.NDArray[np.float32]:
    """Hann-windowed frames of ``signal``, shape (n_frames, N_FFT), reflect-padded if ``center``."""
    half = N_FFT // 2
    if center:
        if signal.shape[0] <= half:
            raise ValueError(f"reflect padding needs more than {half} samples, got {signal.shape[0]}")
        signal = np.concatenate((signal[half:0:-1], signal, signal[-2 : -half - 2 : -1]))
    if signal.shape[0] < N_FFT:
        raise ValueError(f"a frame needs {N_FFT} samples, got {signal.shape[0]}")
    frames = np.lib.stride_tricks.sliding_window_view(signal, N_FFT)[::MEL_HOP_LENGTH]
    out: npt.NDArray[np.float32] = frames * _window("cpu").numpy()
    return out
