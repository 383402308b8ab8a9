"""Windowed embeddings: one embedding per partial window, with its time in the input.

An utterance embedding is the mean of its partial-window embeddings. Keeping the windows apart
shows what the mean hides: where the speaker changes in a recording, a voice that drifts over a
long TTS output, or where a second voice starts. :func:`embed_windows` runs the usual pipeline
(load, resample, trim or VAD, mel, windows, encoder) and returns every window's unit embedding
with its ``start_s`` and ``end_s`` **in the input's own time**: window frames are mapped back
through the trimming (or the speech segments the VAD kept) and the resampling.

Window length and rate come from the :class:`~speakerembed.Pipeline`: ``partial_frames`` mel
frames (10 ms each; 1.6 s by default) every ``frame_step`` frames (``rate=1.3`` windows per
second gives a step of 0.77 s). Frame ``f`` of the trimmed 16 kHz signal is centred on sample
``160 f``, so window ``k`` covers ``[k step, k step + partial_frames)`` frames, cut at the end
of the kept audio. With the VAD, a window can straddle a removed pause: its ``end_s - start_s``
then includes the pause.

Memory: files at least ``Pipeline.stream_min_duration_s`` long go through the streaming path
(:mod:`speakerembed.stages.longform`), so an hour-long file needs a block of audio and one encoder batch
at a time, plus the result itself (1 KiB per window: 4.7 MB for an hour at 1.3 windows/s).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

from ..config import MEL_HOP_LENGTH, MODEL_SAMPLE_RATE, Pipeline
from ..errors import AudioError, ConfigError

if TYPE_CHECKING:
    import numpy.typing as npt
    import torch

    from ..embedder import AudioInput, SpeakerEmbedder
    from ..stages.encoder import Precision

__all__ = ["WindowedEmbeddings", "embed_windows", "window_times"]


@dataclasses.dataclass(frozen=True)
class WindowedEmbeddings:
    """What :func:`embed_windows` returns.

    Attributes
    ----------
    embeddings : numpy.ndarray, shape (n_windows, 256), float32
        One unit row per partial window, in time order.
    start_s, end_s : numpy.ndarray, shape (n_windows,), float64
        Each window's span, in seconds of the input as it was passed in (before trimming and
        resampling).
    duration_s : float
        The input's duration, in seconds.
    speech_s : float
        Seconds of the input that reached the encoder (after trimming or the VAD).
    """

    embeddings: npt.NDArray[np.float32]
    start_s: npt.NDArray[np.float64]
    end_s: npt.NDArray[np.float64]
    duration_s: float
    speech_s: float

    def __len__(self) -> int:
        return int(self.embeddings.shape[0])

    def utterance_embedding(self) -> npt.NDArray[np.float32]:
        """The whole input's embedding: the mean of the windows, L2-normalised, shape (256,).

        It is what :func:`~speakerembed.embed_utterances` returns for the same input and pipeline.
        """
        mean = self.embeddings.astype(np.float64).mean(axis=0)
        norm = float(np.linalg.norm(mean))
        if not norm > 1e-6:
            raise AudioError("the window embeddings cancel out; there is no utterance embedding")
        unit: npt.NDArray[np.float32] = (mean / norm).astype(np.float32)
        return unit

    def similarity_to_utterance(self) -> npt.NDArray[np.float32]:
        """Cosine of each window to :meth:`utterance_embedding`, shape (n_windows,), float32."""
        out: npt.NDArray[np.float32] = self.embeddings @ self.utterance_embedding()
        return out

    def similarity_to_previous(self) -> npt.NDArray[np.float32]:
        """Cosine of each window to the one before it, shape (n_windows - 1,), float32.

        Entry ``i`` compares windows ``i`` and ``i + 1``; a dip marks a change of voice.
        """
        out: npt.NDArray[np.float32] = np.einsum("ij,ij->i", self.embeddings[1:], self.embeddings[:-1])
        return out


def window_times(
    n_windows: int,
    spans: npt.ArrayLike,
    pipeline: Pipeline,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Start and end of each partial window, in the input's seconds.

    Parameters
    ----------
    n_windows : int
        Windows cut from the mel of the kept audio.
    spans : array_like, shape (n_spans, 2), float
        The kept parts of the input, ``(start, end)`` in seconds, in order; the mel is computed
        on them joined end to end (one span after trimming, one per speech segment after the VAD).
    pipeline : Pipeline
        Gives ``partial_frames`` and ``frame_step``.

    Returns
    -------
    start_s, end_s : numpy.ndarray, shape (n_windows,), float64

    Examples
    --------
    >>> from speakerembed import Pipeline
    >>> from speakerembed.analysis.per_window import window_times
    >>> start, end = window_times(3, [(0.5, 3.5)], Pipeline())
    >>> start.round(2).tolist(), end.round(2).tolist()
    ([0.5, 1.27, 2.04], [2.1, 2.87, 3.5])
    """
    bounds = np.asarray(spans, dtype=np.float64).reshape(-1, 2)
    if bounds.shape[0] == 0:
        raise ValueError("spans is empty: no audio was kept")
    lengths = np.maximum(bounds[:, 1] - bounds[:, 0], 0.0)
    ends = np.cumsum(lengths)
    starts = ends - lengths
    total = float(ends[-1])
    hop_s = MEL_HOP_LENGTH / MODEL_SAMPLE_RATE
    first = np.arange(n_windows, dtype=np.float64) * pipeline.frame_step * hop_s
    last = np.minimum(first + pipeline.partial_frames * hop_s, total)
    first = np.minimum(first, total)

    def to_input(t: npt.NDArray[np.float64], span: npt.NDArray[np.intp]) -> npt.NDArray[np.float64]:
        span = np.clip(span, 0, bounds.shape[0] - 1)
        mapped: npt.NDArray[np.float64] = bounds[span, 0] + (t - starts[span])
        return mapped

    # A start on the boundary between two spans belongs to the later span, an end to the earlier.
    start_span = np.searchsorted(starts, first, side="right") - 1
    end_span = np.searchsorted(ends, last, side="left")
    return to_input(first, start_span), to_input(last, end_span)


def _batches(windows: torch.Tensor, cap: int) -> Iterator[torch.Tensor]:
    for start in range(0, windows.shape[0], cap):
        yield windows[start : start + cap]


def embed_windows(
    input: AudioInput,
    *,
    sample_rate: int | None = None,
    pipeline: Pipeline | None = None,
    embedder: SpeakerEmbedder | None = None,
    weights: str | os.PathLike[str] = "chatterbox",
    device: str | None = None,
    precision: Precision = "fp32",
) -> WindowedEmbeddings:
    """Embed each partial window of one input, with its time in the input.

    Parameters
    ----------
    input : path, numpy.ndarray or torch.Tensor
        One utterance or recording.
    sample_rate : int or None
        The rate of an array or tensor, in Hz; files carry their own.
    pipeline : Pipeline or None
        Preprocessing and windowing (window length ``partial_frames``, rate ``rate`` or
        ``overlap``); the embedder's pipeline by default.
    embedder : SpeakerEmbedder or None
        Use this embedder. Without it, the cached embedder for ``weights``, ``device`` and
        ``precision`` is used (as :func:`~speakerembed.embed_utterances` does).
    weights, device, precision
        As for :func:`~speakerembed.embed_utterances`; ignored when ``embedder`` is given.

    Returns
    -------
    WindowedEmbeddings
        ``embeddings`` (n_windows, 256) float32 unit rows, ``start_s`` and ``end_s``
        (n_windows,) float64 in the input's seconds.

    Raises
    ------
    AudioError
        For unusable audio, as :func:`~speakerembed.embed_utterances` raises it.

    Examples
    --------
    >>> from speakerembed import embed_windows
    >>> w = embed_windows("examples/audio/alice_1.wav", weights="resemblyzer", device="cpu")
    >>> w.embeddings.shape[1], bool((w.start_s < w.end_s).all())
    (256, True)
    """
    from .._engine.preparation import as_library_error, describe_inputs
    from .._engine.recorder import NULL_RECORDER
    from ..embedder import SpeakerEmbedder
    from ..stages.windows import partial_windows

    if embedder is None:
        from ..api import get_embedder

        embedder = get_embedder(weights, device=device, precision=precision)
    elif not isinstance(embedder, SpeakerEmbedder):
        raise ConfigError(f"embedder={embedder!r} is not a SpeakerEmbedder; pass one, or None")
    if pipeline is not None and not isinstance(pipeline, Pipeline):
        raise ConfigError(f"pipeline={pipeline!r} is not a speakerembed.Pipeline; pass Pipeline(...) or None")
    pipe = pipeline if pipeline is not None else embedder.pipeline
    items = describe_inputs(input)
    if len(items) != 1:
        raise AudioError(
            f"embed_windows takes one input, not {len(items)}; call it once per file",
            source="inputs",
            stage="load",
        )
    try:
        prepared = embedder.engine.prepare(0, items[0], sample_rate, pipe, NULL_RECORDER)
    except Exception as exc:  # noqa: BLE001 - every failure is reported as ours
        err = as_library_error(exc, "input 0")
        raise err from (None if err is exc else exc)
    import torch

    cap = pipe.windows_per_batch(embedder.device.type)
    if prepared.mel is not None:
        whole = partial_windows(prepared.mel, pipe.frame_step, pipe.min_coverage, pipe.partial_frames)
        chunks: Iterator[torch.Tensor] = _batches(whole, cap)
    else:
        assert prepared.windows is not None
        chunks = (b for chunk in prepared.windows for b in _batches(chunk, cap))
    rows: list[npt.NDArray[np.float32]] = []
    with torch.inference_mode():
        for batch in chunks:
            out = embedder.encoder(batch.to(embedder.device))
            rows.append(out.cpu().numpy().astype(np.float32, copy=False))
    embeddings = np.concatenate(rows) if rows else np.zeros((0, 256), np.float32)
    norms = np.linalg.norm(embeddings, axis=1)
    if not np.isfinite(embeddings).all() or not np.all(np.abs(norms - 1.0) <= 1e-3):
        raise AudioError(
            "the encoder gave a window embedding that is not a finite unit vector (a window with "
            "no voice in it); pass audio with audible speech, or check the encoder's weights",
            source=prepared.source,
            stage="encode",
        )
    start_s, end_s = window_times(embeddings.shape[0], prepared.spans, pipe)
    return WindowedEmbeddings(embeddings, start_s, end_s, prepared.input_seconds, prepared.kept_seconds)
