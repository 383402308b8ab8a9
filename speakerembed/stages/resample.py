"""Stage 2a: resample to the encoder's 16 kHz.

Pure functions do the maths; :class:`SincResampler` holds a cached kernel on a device.

Every method returns ``ceil(n_samples * target_sr / orig_sr)`` samples, as
:func:`librosa.resample` does with ``fix=True``.
"""

from __future__ import annotations

import functools
import math
import threading
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import missing_backend

if TYPE_CHECKING:
    import numpy.typing as npt
    import torch

    from ..config import Resampler

__all__ = ["SincResampler", "resample", "resampled_length", "sinc_resample_kernel"]


def resampled_length(n_samples: int, orig_sr: int, target_sr: int) -> int:
    """Length of ``n_samples`` resampled from ``orig_sr`` to ``target_sr``."""
    return math.ceil(n_samples * float(target_sr) / orig_sr)


def _fix_length(y: npt.NDArray[np.float32], size: int) -> npt.NDArray[np.float32]:
    if y.shape[-1] > size:
        return y[..., :size]
    if y.shape[-1] < size:
        return np.pad(y, (0, size - y.shape[-1]))
    return y


def resample(
    waveform: npt.NDArray[np.float32], orig_sr: int, target_sr: int, method: Resampler = "soxr_hq"
) -> npt.NDArray[np.float32]:
    """Resample a mono waveform.

    Parameters
    ----------
    waveform : numpy.ndarray, shape (n_samples,), float32
    orig_sr, target_sr : int
        Sample rates in Hz.
    method : {"soxr_hq", "kaiser_fast", "polyphase", "torchaudio"}
        See :data:`speakerembed.config.Resampler`.

    Returns
    -------
    numpy.ndarray, shape (ceil(n_samples * target_sr / orig_sr),), float32

    Raises
    ------
    BackendUnavailableError
        For ``"kaiser_fast"`` without resampy.

    Examples
    --------
    >>> import numpy as np
    >>> from speakerembed.stages.resample import resample
    >>> resample(np.zeros(44100, np.float32), 44100, 16000).shape
    (16000,)
    """
    if orig_sr == target_sr:
        return waveform
    size = resampled_length(waveform.shape[-1], orig_sr, target_sr)
    if method == "soxr_hq":
        import soxr

        out = soxr.resample(waveform, orig_sr, target_sr, quality="HQ")
    elif method == "kaiser_fast":
        try:
            import resampy
        except ImportError:
            raise missing_backend(
                "resampy",
                "kaiser",
                'resampling with kaiser_fast (Pipeline(resampler="kaiser_fast"), Pipeline.chatterbox(), '
                "and embeds_from_wavs at rates other than 16 kHz)",
            ) from None
        out = resampy.resample(waveform, orig_sr, target_sr, filter="kaiser_fast", axis=-1)
    elif method == "polyphase":
        from scipy.signal import resample_poly

        g = math.gcd(orig_sr, target_sr)
        out = resample_poly(waveform, target_sr // g, orig_sr // g)
    else:
        import torch

        with torch.inference_mode():
            tensor = torch.from_numpy(np.ascontiguousarray(waveform, dtype=np.float32))
            out = SincResampler.get(orig_sr, target_sr, tensor.device)(tensor).numpy()
    return np.ascontiguousarray(_fix_length(np.asarray(out, dtype=np.float32), size))


def sinc_resample_kernel(
    orig_sr: int,
    target_sr: int,
    *,
    lowpass_filter_width: int = 6,
    rolloff: float = 0.99,
    device: Any = None,
    dtype: Any = None,
) -> tuple[torch.Tensor, int]:
    """Torchaudio's Hann-windowed sinc kernel, shape (new, 1, 2 * width + orig), and its width.

    ``orig`` and ``new`` are the rates divided by their greatest common divisor. This is the
    algorithm of :func:`torchaudio.functional.resample` with its defaults
    (``lowpass_filter_width=6``, ``rolloff=0.99``, ``"sinc_interp_hann"``), written with torch
    alone so that torchaudio need not be installed.
    """
    import torch

    dtype = dtype if dtype is not None else torch.float32
    g = math.gcd(orig_sr, target_sr)
    orig, new = orig_sr // g, target_sr // g
    base = min(orig, new) * rolloff
    width = math.ceil(lowpass_filter_width * orig / base)
    idx = torch.arange(-width, width + orig, dtype=dtype, device=device)[None, None] / orig
    t = torch.arange(0, -new, -1, dtype=dtype, device=device)[:, None, None] / new + idx
    t *= base
    t = t.clamp_(-lowpass_filter_width, lowpass_filter_width)
    window = torch.cos(t * math.pi / lowpass_filter_width / 2) ** 2
    t *= math.pi
    scale = base / orig
    kernels = torch.where(t == 0, torch.tensor(1.0).to(t), t.sin() / t)
    kernels *= window * scale
    return kernels, width


class SincResampler:
    """torchaudio's sinc resampler with its kernel cached on a device.

    Instances are shared per (rates, device) through :meth:`get`, and are safe to call from
    several threads.
    """

    _cache_lock = threading.Lock()

    def __init__(self, orig_sr: int, target_sr: int, device: Any = None) -> None:
        g = math.gcd(orig_sr, target_sr)
        self.orig_sr, self.target_sr = orig_sr, target_sr
        self._orig, self._new = orig_sr // g, target_sr // g
        self.kernel, self.width = sinc_resample_kernel(orig_sr, target_sr, device=device)

    @classmethod
    def get(cls, orig_sr: int, target_sr: int, device: Any) -> SincResampler:
        """The shared resampler for these rates on ``device``."""
        with cls._cache_lock:
            return _cached_resampler(orig_sr, target_sr, str(device))

    def __call__(self, waveform: torch.Tensor) -> torch.Tensor:
        """Resample ``waveform`` of shape (..., n_samples) on the kernel's device."""
        import torch

        shape = waveform.shape
        x = waveform.reshape(-1, shape[-1])
        length = x.shape[-1]
        x = torch.nn.functional.pad(x, (self.width, self.width + self._orig))
        y = torch.nn.functional.conv1d(x[:, None], self.kernel, stride=self._orig)
        y = y.transpose(1, 2).reshape(x.shape[0], -1)
        target = math.ceil(self._new * length / self._orig)
        return y[..., :target].reshape(*shape[:-1], -1)


@functools.lru_cache(maxsize=32)
def _cached_resampler(orig_sr: int, target_sr: int, device: str) -> SincResampler:
    return SincResampler(orig_sr, target_sr, device=device)
