"""Stage 2b, alternative: keep only speech, found by Silero VAD (``Pipeline(vad="silero")``).

Chatterbox trims only the leading and trailing silence (:mod:`speakerembed.stages.trim`), so pauses,
breaths and noise between words reach the encoder. With ``Pipeline(vad="silero")`` this stage
runs in trimming's place (in the same position of ``Pipeline.order``): `Silero VAD
<https://github.com/snakers4/silero-vad>`_ (MIT; its model ships inside the ``silero-vad``
wheel, so nothing is downloaded) finds the speech at 16 kHz with its own
``silero_vad.get_speech_timestamps``, each segment is widened by ``Pipeline.vad_pad_s`` on
both sides (Silero's ``speech_pad_ms``), and only those segments are kept, joined end to end.

An input with less than ``Pipeline.min_speech_s`` seconds of detected speech (padding not
counted) is refused with an :class:`~speakerembed.AudioError` that says how much speech was
found: three seconds of noise are not a voice.

Install it with ``pip install 'speakerembed[vad]'``. Long files: the streaming path
(:mod:`speakerembed.stages.longform`) does not run the VAD; with ``vad="silero"`` every file is embedded
by the in-memory path, whatever its length (see :func:`speakerembed.stages.longform.can_stream`).
"""

from __future__ import annotations

import dataclasses
import threading
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

from ..config import MODEL_SAMPLE_RATE
from ..errors import AudioError, missing_backend

if TYPE_CHECKING:
    import numpy.typing as npt

    from ..config import Pipeline

__all__ = ["SpeechSegments", "detect_speech", "keep_speech", "load_vad_model"]

_model: Any = None
vad_lock = threading.Lock()


def load_vad_model() -> Any:
    """The Silero VAD model (TorchScript, from the ``silero-vad`` wheel), loaded once.

    Raises
    ------
    BackendUnavailableError
        When ``silero-vad`` is not installed.
    """
    global _model
    with vad_lock:
        if _model is None:
            try:
                import silero_vad
            except ImportError as exc:
                raise missing_backend("silero-vad", "vad", 'Pipeline(vad="silero")') from exc
            with warnings.catch_warnings():
                # silero-vad loads its model with torch.jit.load, which torch >= 2.10 deprecates.
                warnings.filterwarnings("ignore", message=".*torch.jit.load.*", category=DeprecationWarning)
                _model = silero_vad.load_silero_vad()
        return _model


@dataclasses.dataclass(frozen=True)
class SpeechSegments:
    """The speech Silero VAD found in one signal.

    Attributes
    ----------
    bounds : numpy.ndarray, shape (n_segments, 2), int64
        ``[start, end)`` of each kept (padded) segment, in samples at ``sample_rate``, sorted and
        not overlapping.
    sample_rate : int
        The rate of the signal the bounds index, in Hz.
    speech_s : float
        Seconds of speech detected, before padding.
    """

    bounds: npt.NDArray[np.int64]
    sample_rate: int
    speech_s: float

    @property
    def kept_s(self) -> float:
        """Seconds kept: the padded segments' total length."""
        return float(np.sum(self.bounds[:, 1] - self.bounds[:, 0])) / self.sample_rate


def _timestamps(wav16k: npt.NDArray[np.float32], pipeline: Pipeline, pad_ms: int) -> list[dict[str, int]]:
    import torch
    from silero_vad import get_speech_timestamps

    model = load_vad_model()
    with vad_lock, torch.inference_mode():
        # The model keeps a recurrent state between chunks; one caller at a time.
        stamps: list[dict[str, int]] = get_speech_timestamps(
            torch.from_numpy(np.ascontiguousarray(wav16k)),
            model,
            threshold=pipeline.vad_threshold,
            sampling_rate=MODEL_SAMPLE_RATE,
            speech_pad_ms=pad_ms,
        )
    return stamps


def detect_speech(waveform: npt.NDArray[np.float32], sample_rate: int, pipeline: Pipeline) -> SpeechSegments:
    """Find the speech in a mono signal with Silero VAD.

    Parameters
    ----------
    waveform : numpy.ndarray, shape (n_samples,), float32
    sample_rate : int
        Its rate, in Hz. Silero runs at 16 kHz: other rates are resampled for the detection
        (with ``pipeline.resampler``) and the bounds are mapped back to ``sample_rate``.
    pipeline : Pipeline
        Gives ``vad_threshold`` and ``vad_pad_s``.

    Returns
    -------
    SpeechSegments
        Padded segments at ``sample_rate``; ``speech_s`` counts the speech without the padding.

    Raises
    ------
    BackendUnavailableError
        When ``silero-vad`` is not installed.
    """
    from .resample import resample

    wav16k = (
        waveform
        if sample_rate == MODEL_SAMPLE_RATE
        else resample(
            waveform,
            sample_rate,
            MODEL_SAMPLE_RATE,
            "soxr_hq" if pipeline.resampler == "torchaudio" else pipeline.resampler,
        )
    )
    n16 = wav16k.shape[0]
    raw = _timestamps(wav16k, pipeline, 0)
    speech_s = sum(s["end"] - s["start"] for s in raw) / MODEL_SAMPLE_RATE
    pad = round(pipeline.vad_pad_s * MODEL_SAMPLE_RATE)
    # Silero's own padding (speech_pad_ms) also splits short gaps between segments; widening
    # the raw segments and merging overlaps gives the same kept audio and keeps both numbers.
    spans: list[list[int]] = []
    for s in raw:
        lo, hi = max(0, s["start"] - pad), min(n16, s["end"] + pad)
        if spans and lo <= spans[-1][1]:
            spans[-1][1] = max(spans[-1][1], hi)
        else:
            spans.append([lo, hi])
    bounds = np.asarray(spans, dtype=np.int64).reshape(-1, 2)
    if sample_rate != MODEL_SAMPLE_RATE:
        n = waveform.shape[0]
        bounds = np.minimum(np.round(bounds * (sample_rate / MODEL_SAMPLE_RATE)).astype(np.int64), n)
    return SpeechSegments(bounds, sample_rate, speech_s)


def keep_speech(
    waveform: Any, sample_rate: int, pipeline: Pipeline, source: str = "input"
) -> tuple[Any, SpeechSegments]:
    """The pipeline stage: keep only the speech of ``waveform``, joined end to end.

    Parameters
    ----------
    waveform : numpy.ndarray or torch.Tensor, shape (n_samples,), float32
        A tensor may live on any device; the detection runs on the CPU.
    sample_rate : int
        Its rate, in Hz.
    pipeline : Pipeline
        Gives ``vad_threshold``, ``vad_pad_s`` and ``min_speech_s``.
    source : str
        The input's name, for errors.

    Returns
    -------
    speech : same type as ``waveform``, shape (n_kept,)
    segments : SpeechSegments

    Raises
    ------
    AudioError
        When less than ``pipeline.min_speech_s`` seconds of speech are found.
    """
    is_array = isinstance(waveform, np.ndarray)
    host = waveform if is_array else waveform.detach().cpu().numpy()
    segments = detect_speech(host, sample_rate, pipeline)
    if segments.speech_s < pipeline.min_speech_s or segments.bounds.shape[0] == 0:
        raise AudioError(
            f"Silero VAD found {segments.speech_s:.2f} s of speech in "
            f"{host.shape[0] / sample_rate:.2f} s of audio, less than min_speech_s="
            f"{pipeline.min_speech_s:g} s; pass audio with speech in it, or lower Pipeline.min_speech_s "
            "(--min-speech on the command line) or vad_threshold, or turn the VAD off (vad=None)",
            source=source,
            stage="trim",  # the VAD runs in trimming's place,
        )
    if is_array:
        kept: Any = np.concatenate([waveform[a:b] for a, b in segments.bounds.tolist()])
    else:
        import torch

        kept = torch.cat([waveform[a:b] for a, b in segments.bounds.tolist()])
    return kept, segments
