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

__all__ = [
    "SpeechSegments",
    "detect_speech",
    "keep_speech",
    "load_vad_model",
    "speech_probabilities",
    "speech_timestamps",
]

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


# The layout of Silero's 16 kHz network (silero-vad 5 and 6), which speech_probabilities runs
# for all chunks at once: the names and shapes of its weights.
_SILERO_16K = {
    "stft.forward_basis_buffer": (258, 1, 256),
    "encoder.0.reparam_conv.weight": (128, 129, 3),
    "encoder.0.reparam_conv.bias": (128,),
    "encoder.1.reparam_conv.weight": (64, 128, 3),
    "encoder.1.reparam_conv.bias": (64,),
    "encoder.2.reparam_conv.weight": (64, 64, 3),
    "encoder.2.reparam_conv.bias": (64,),
    "encoder.3.reparam_conv.weight": (128, 64, 3),
    "encoder.3.reparam_conv.bias": (128,),
    "decoder.rnn.weight_ih": (512, 128),
    "decoder.rnn.weight_hh": (512, 128),
    "decoder.rnn.bias_ih": (512,),
    "decoder.rnn.bias_hh": (512,),
    "decoder.decoder.2.weight": (1, 128, 1),
    "decoder.decoder.2.bias": (1,),
}
_CHUNK = 512  # samples per Silero step at 16 kHz
_CONTEXT = 64  # samples of the previous chunk that Silero prepends to each chunk
_BLOCK = 4096  # chunks run through the convolutions at a time (bounds the memory: ~40 MB)
_weights: dict[str, Any] | None = None
_weights_of: Any = None  # the model _weights were read from


def _batched_weights() -> dict[str, Any] | None:
    """Silero's 16 kHz weights, when the loaded model has the layout the batched path runs."""
    global _weights, _weights_of
    model = load_vad_model()
    with vad_lock:
        if _weights_of is not model:
            _weights_of, _weights = model, None
            try:
                inner = model._model
                state = dict(inner.state_dict())
                layout_ok = (
                    int(inner.context_size_samples) == _CONTEXT
                    and int(inner.stft.hop_length) == 128
                    and int(inner.stft.filter_length) == 256
                    and {k: tuple(v.shape) for k, v in state.items()} == _SILERO_16K
                )
            except Exception:  # noqa: BLE001 - another model layout: the reference path runs
                layout_ok = False
            if layout_ok:
                _weights = {k: v.detach().float() for k, v in state.items()}
        return _weights


def _probabilities_one_by_one(wav16k: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Silero's speech probability of each 512-sample chunk, one model call a chunk (the reference)."""
    import torch

    model = load_vad_model()
    x = torch.from_numpy(np.ascontiguousarray(wav16k, dtype=np.float32))
    out = np.zeros(-(-x.shape[0] // _CHUNK), np.float32)
    with vad_lock, torch.inference_mode():
        model.reset_states()
        for i in range(out.shape[0]):
            chunk = x[i * _CHUNK : (i + 1) * _CHUNK]
            if chunk.shape[0] < _CHUNK:
                chunk = torch.nn.functional.pad(chunk, (0, _CHUNK - chunk.shape[0]))
            out[i] = model(chunk, MODEL_SAMPLE_RATE).item()
        model.reset_states()
    return out


def speech_probabilities(wav16k: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Silero's speech probability of each 512-sample chunk of a 16 kHz signal.

    The probabilities ``silero_vad.get_speech_timestamps`` computes (the last chunk zero-padded,
    the state reset at the start), but with the network's stateless part (STFT and
    convolutions) run on thousands of chunks at once and its recurrent cell as one
    ``torch.nn.LSTM`` call over the chunks: one model call per 32 ms of audio cost more than
    the rest of :func:`~speakerembed.diarize` together. They match the model's own within float
    rounding (a test checks 1e-4 on real speech). With a model of another layout the model
    runs chunk by chunk, as Silero does.

    Parameters
    ----------
    wav16k : numpy.ndarray, shape (n_samples,), float32
        Audio at 16 kHz.

    Returns
    -------
    numpy.ndarray, shape (ceil(n_samples / 512),), float32

    Raises
    ------
    BackendUnavailableError
        When ``silero-vad`` is not installed.
    """
    import torch
    from torch.nn import functional as F  # noqa: N812 - torch's own spelling

    weights = _batched_weights()
    if weights is None:
        return _probabilities_one_by_one(wav16k)
    w = weights
    n = wav16k.shape[0]
    n_chunks = -(-n // _CHUNK)
    audio = np.zeros(_CONTEXT + n_chunks * _CHUNK, np.float32)
    audio[_CONTEXT : _CONTEXT + n] = wav16k
    # Chunk i with the 64 samples before it (zeros before the first), as the model sees it.
    framed = torch.from_numpy(audio).unfold(0, _CHUNK + _CONTEXT, _CHUNK)
    out = np.zeros(n_chunks, np.float32)
    rnn = torch.nn.LSTM(128, 128)
    with torch.inference_mode():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(rnn, f"{name}_l0").copy_(w[f"decoder.rnn.{name}"])
        state = None
        for lo in range(0, n_chunks, _BLOCK):
            x = F.pad(framed[lo : lo + _BLOCK, None, :], (0, _CONTEXT), mode="reflect")
            spec = F.conv1d(x, w["stft.forward_basis_buffer"], stride=128)
            h = torch.sqrt(spec[:, :129].square() + spec[:, 129:].square())
            for i, stride in enumerate((1, 2, 2, 1)):
                h = F.relu(
                    F.conv1d(
                        h,
                        w[f"encoder.{i}.reparam_conv.weight"],
                        w[f"encoder.{i}.reparam_conv.bias"],
                        stride=stride,
                        padding=1,
                    )
                )
            hidden, state = rnn(h.squeeze(-1)[:, None, :], state)
            logit = F.conv1d(
                F.relu(hidden[:, 0, :, None]), w["decoder.decoder.2.weight"], w["decoder.decoder.2.bias"]
            )
            out[lo : lo + _BLOCK] = torch.sigmoid(logit).reshape(-1).numpy()
    return out


def speech_timestamps(
    wav16k: npt.NDArray[np.float32],
    *,
    threshold: float,
    speech_pad_ms: int,
    min_silence_duration_ms: int = 100,
) -> list[dict[str, int]]:
    """``silero_vad.get_speech_timestamps`` of a 16 kHz signal, from :func:`speech_probabilities`.

    Silero's own post-processing (``get_speech_timestamps_from_probs``) turns the probabilities
    into ``{"start", "end"}`` samples; silero-vad releases without it run
    ``get_speech_timestamps`` itself.
    """
    import torch

    try:
        from silero_vad import get_speech_timestamps_from_probs
    except ImportError:
        from silero_vad import get_speech_timestamps

        model = load_vad_model()
        with vad_lock, torch.inference_mode():
            old: list[dict[str, int]] = get_speech_timestamps(
                torch.from_numpy(np.ascontiguousarray(wav16k)),
                model,
                threshold=threshold,
                sampling_rate=MODEL_SAMPLE_RATE,
                speech_pad_ms=speech_pad_ms,
                min_silence_duration_ms=min_silence_duration_ms,
            )
        return old
    stamps: list[dict[str, int]] = get_speech_timestamps_from_probs(
        speech_probabilities(wav16k).tolist(),
        sampling_rate=MODEL_SAMPLE_RATE,
        threshold=threshold,
        speech_pad_ms=speech_pad_ms,
        min_silence_duration_ms=min_silence_duration_ms,
        audio_length_samples=wav16k.shape[0],
    )
    return stamps


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
    # Batched (speech_probabilities): the model's own probabilities, many chunks a call.
    return speech_timestamps(wav16k, threshold=pipeline.vad_threshold, speech_pad_ms=pad_ms)


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
