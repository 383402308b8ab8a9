"""Module-level functions: :func:`embed_speaker`, :func:`embed_utterances`, :func:`embed_conditioning`.

They keep one :class:`~speakerembed.SpeakerEmbedder` per (weights, encoder, device, precision),
so a second call does not load the weights again. :func:`clear_cache` drops them.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal, overload

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import torch
    from prometheus_client import CollectorRegistry

    from ._engine.recorder import Recorder
    from .config import Pipeline
    from .embedder import AudioInput, EmbeddingResult, SpeakerEmbedder
    from .stages.encoder import EncoderImpl, Precision

__all__ = ["clear_cache", "embed_conditioning", "embed_speaker", "embed_utterances", "get_embedder"]

_cache: dict[tuple[Any, ...], SpeakerEmbedder] = {}
_cache_lock = threading.Lock()


def get_embedder(
    weights: str | os.PathLike[str] = "chatterbox",
    *,
    encoder: EncoderImpl = "builtin",
    device: str | torch.device | None = None,
    precision: Precision = "fp32",
) -> SpeakerEmbedder:
    """The cached :class:`~speakerembed.SpeakerEmbedder` for these settings, loaded on first use."""
    from .embedder import SpeakerEmbedder

    key_weights = os.fspath(weights) if isinstance(weights, os.PathLike) else weights
    key = (key_weights, encoder, str(device) if device is not None else None, precision)
    with _cache_lock:
        embedder = _cache.get(key)
        if embedder is None:
            embedder = SpeakerEmbedder(weights, encoder=encoder, device=device, precision=precision)
            _cache[key] = embedder
        return embedder


def clear_cache() -> None:
    """Forget the cached embedders (their memory is freed when nothing else holds them)."""
    with _cache_lock:
        _cache.clear()


def _recorder(registry: CollectorRegistry | None) -> Recorder:
    from .embedder import recorder_for

    return recorder_for(registry)


@overload
def embed_utterances(
    inputs: AudioInput | Sequence[AudioInput],
    *,
    sample_rate: int | Sequence[int] | None = ...,
    weights: str | os.PathLike[str] = ...,
    pipeline: Pipeline | None = ...,
    device: str | torch.device | None = ...,
    precision: Precision = ...,
    encoder: EncoderImpl = ...,
    registry: CollectorRegistry | None = ...,
    errors: Literal["raise"] = ...,
) -> npt.NDArray[np.float32]: ...


@overload
def embed_utterances(
    inputs: AudioInput | Sequence[AudioInput],
    *,
    sample_rate: int | Sequence[int] | None = ...,
    weights: str | os.PathLike[str] = ...,
    pipeline: Pipeline | None = ...,
    device: str | torch.device | None = ...,
    precision: Precision = ...,
    encoder: EncoderImpl = ...,
    registry: CollectorRegistry | None = ...,
    errors: Literal["skip"],
) -> EmbeddingResult: ...


def embed_utterances(
    inputs: AudioInput | Sequence[AudioInput],
    *,
    sample_rate: int | Sequence[int] | None = None,
    weights: str | os.PathLike[str] = "chatterbox",
    pipeline: Pipeline | None = None,
    device: str | torch.device | None = None,
    precision: Precision = "fp32",
    encoder: EncoderImpl = "builtin",
    registry: CollectorRegistry | None = None,
    errors: Literal["raise", "skip"] = "raise",
) -> npt.NDArray[np.float32] | EmbeddingResult:
    """Embed each utterance: one L2-normalised 256-d row per input (Chatterbox's ``as_spk=False``).

    Parameters
    ----------
    inputs : path, numpy.ndarray, torch.Tensor, or a sequence of them
        One utterance, or several. Files carry their sample rate; arrays and tensors need
        ``sample_rate``. A 2-D array is one multichannel utterance.
    sample_rate : int, sequence of int, or None
        Rate of the arrays and tensors, in Hz.
    weights : str or os.PathLike
        ``"chatterbox"`` (default, from the Hugging Face hub), ``"chatterbox-turbo"``,
        ``"chatterbox-multilingual"``, ``"resemblyzer"`` (offline, from the resemblyzer
        package), or a local weights file.
    pipeline : Pipeline or None
        Preprocessing and windowing; ``Pipeline()`` by default.
    device : str or torch.device or None
        ``"cpu"``, ``"cuda"`` or ``"mps"``; ``None`` picks the best available.
    precision : {"fp32", "bf16", "auto"}
        Encoder precision; ``"auto"`` picks bf16 where the hardware runs it faster
        (:func:`speakerembed.stages.encoder.resolve_precision`).
    encoder : {"builtin", "chatterbox"}
        Which implementation of the network to load the weights into.
    registry : prometheus_client.CollectorRegistry or None
        Record metrics into this registry.
    errors : {"raise", "skip"}
        Fail on the first bad input (default), or skip bad inputs and return an
        :class:`~speakerembed.EmbeddingResult`.

    Returns
    -------
    numpy.ndarray, shape (n_inputs, 256), float32

    Raises
    ------
    AudioError
        For unusable audio; the message names the input and the fix.
    WeightsError
        If the weights cannot be found or loaded.

    Examples
    --------
    >>> import numpy as np
    >>> from speakerembed import embed_utterances
    >>> t = np.arange(32000) / 16000
    >>> clip = (0.3 * np.sin(2 * np.pi * 220 * t) * np.sin(2 * np.pi * 3 * t)).astype(np.float32)
    >>> embed_utterances([clip, clip], sample_rate=16000, weights="resemblyzer").shape
    (2, 256)
    """
    embedder = get_embedder(weights, encoder=encoder, device=device, precision=precision)
    rec = _recorder(registry)
    rec.embedder_used(embedder)  # its load time and build info, once per registry
    from .embedder import run_call

    return run_call(  # type: ignore[no-any-return]
        embedder, "embed_utterances", inputs, sample_rate, pipeline, errors, rec
    )


def embed_speaker(
    inputs: AudioInput | Sequence[AudioInput],
    *,
    sample_rate: int | Sequence[int] | None = None,
    weights: str | os.PathLike[str] = "chatterbox",
    pipeline: Pipeline | None = None,
    device: str | torch.device | None = None,
    precision: Precision = "fp32",
    encoder: EncoderImpl = "builtin",
    registry: CollectorRegistry | None = None,
) -> npt.NDArray[np.float32]:
    """Embed a speaker: the mean of the utterance embeddings, L2-normalised.

    This is Chatterbox's ``embeds_from_wavs(..., as_spk=True)``: :func:`embed_utterances`,
    then :func:`~speakerembed.utt_to_spk_embed`. The parameters are those of
    :func:`embed_utterances`; every input must be usable.

    Returns
    -------
    numpy.ndarray, shape (256,), float32, unit norm

    Examples
    --------
    >>> import numpy as np
    >>> from speakerembed import embed_speaker
    >>> t = np.arange(48000) / 16000
    >>> clip = (0.3 * np.sin(2 * np.pi * 180 * t) * np.sin(2 * np.pi * 2 * t)).astype(np.float32)
    >>> emb = embed_speaker(clip, sample_rate=16000, weights="resemblyzer")
    >>> emb.shape, round(float(np.linalg.norm(emb)), 4)
    ((256,), 1.0)
    """
    embedder = get_embedder(weights, encoder=encoder, device=device, precision=precision)
    rec = _recorder(registry)
    rec.embedder_used(embedder)  # its load time and build info, once per registry
    from .embedder import run_call

    return run_call(  # type: ignore[no-any-return]
        embedder, "embed_speaker", inputs, sample_rate, pipeline, "raise", rec
    )


def embed_conditioning(
    inputs: AudioInput | Sequence[AudioInput],
    *,
    sample_rate: int | Sequence[int] | None = None,
    weights: str | os.PathLike[str] = "chatterbox",
    device: str | torch.device | None = None,
    precision: Precision = "fp32",
    encoder: EncoderImpl = "builtin",
) -> npt.NDArray[np.float32]:
    """The speaker embedding Chatterbox TTS conditions on, for a reference recording.

    It is ``T3Cond.speaker_emb`` as ``ChatterboxTTS.prepare_conditionals`` (chatterbox-tts 0.1.7)
    computes it from ``audio_prompt_path``: the file loaded at 24 kHz and resampled to 16 kHz
    (soxr both times, as librosa does), trimmed at 20 dB, embedded, and, for several references,
    the mean of their rows **without** renormalising. See
    :meth:`speakerembed.SpeakerEmbedder.embed_conditioning` and :doc:`/chatterbox`.

    Parameters
    ----------
    inputs : path, numpy.ndarray, torch.Tensor, or a sequence of them
        The reference recording (Chatterbox takes one), or several of one voice.
    sample_rate : int, sequence of int, or None
        The rate of arrays and tensors, in Hz.
    weights, device, precision, encoder
        As for :func:`embed_utterances`; ``"chatterbox"`` (the default) is the TTS's encoder.

    Returns
    -------
    numpy.ndarray, shape (256,), float32
        ``torch.from_numpy(cond)[None]`` is ``T3Cond.speaker_emb``, shape (1, 256).

    Examples
    --------
    >>> from speakerembed import embed_conditioning
    >>> cond = embed_conditioning("examples/audio/alice_1.wav", weights="resemblyzer", device="cpu")
    >>> cond.shape, cond.dtype
    ((256,), dtype('float32'))
    """
    embedder = get_embedder(weights, encoder=encoder, device=device, precision=precision)
    return embedder.embed_conditioning(inputs, sample_rate=sample_rate)
