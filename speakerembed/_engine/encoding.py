"""Encoding prepared inputs: their windows packed into batches, the batches encoded, each input consolidated.

This is the one per-batch step of every engine: :class:`~speakerembed.SpeakerEmbedder`'s calls,
the Chatterbox API's mels (:mod:`speakerembed.chatterbox_compat`) and the corpus job
(:func:`speakerembed.corpus.batch.embed_batch`) all encode here.

1. :func:`~speakerembed._engine.packing.pack` packs the windows into batches of at most
   ``Pipeline.windows_per_batch`` windows, laid out for the machine (:class:`Schedule.layout
   <speakerembed._engine.schedule.Schedule>`).
2. The encoder runs each batch, as one call on torch's threads or on one-thread streams
   (:func:`~speakerembed._engine.streams.encode_in_order`, results in batch order).
3. When an input's last window is back, its windows' mean is renormalised
   (:func:`~speakerembed.stages.consolidate.mean_embedding`) and checked: every row that leaves
   the library is finite and unit norm.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from ..config import Pipeline
from ..errors import SpeakerEmbedError
from ..stages.consolidate import UNIT_NORM_TOLERANCE
from .packing import pack
from .prefetch import torch_threads
from .streams import encode_in_order

if TYPE_CHECKING:
    import numpy.typing as npt
    import torch

    from .preparation import OnFailure, Prepared
    from .recorder import Recorder
    from .schedule import Schedule

__all__ = ["encode_iter"]

logger = logging.getLogger("speakerembed")


def encode_iter(
    prepared: Iterable[Prepared],
    pipe: Pipeline,
    *,
    encoder: Any,
    device: torch.device,
    schedule: Schedule,
    rec: Recorder,
    on_failure: OnFailure | None = None,
    kept: dict[int, float] | None = None,
) -> Iterator[tuple[int, npt.NDArray[np.float32]]]:
    """Encode the prepared inputs' windows; yield ``(index, unit row)`` as each input is done.

    The inputs come out in the order they went in (the batches keep it), each as soon as its
    last window is back, so a caller can write rows while later inputs are still encoding: one
    call over a whole job keeps the encoder busy across the caller's batches of rows.

    Parameters
    ----------
    prepared : iterable of Prepared
        Pulled lazily, as the batches need them (so preparation overlaps as scheduled).
    pipe : Pipeline
        The windows' step, coverage and length, and the batch size.
    encoder : ModuleEncoder
        Windows in, unit rows out; ``embed_concurrently`` is used with streams.
    device : torch.device
        Where the batches go.
    schedule : Schedule
        Its ``streams`` and ``layout`` (:func:`~speakerembed._engine.schedule.plan`).
    rec : Recorder
        Receives the stage timings, batches, errors and utterances.
    on_failure : callable or None
        ``(index, source, error)`` for an input whose embedding is not a finite unit vector
        (``errors="skip"``); ``None`` raises it.
    kept : dict or None
        Filled with each embedded input's seconds of kept audio.

    Yields
    ------
    tuple of int and numpy.ndarray, shape (256,), float32
    """
    import torch

    from ..stages.consolidate import mean_embedding
    from ..stages.windows import partial_windows

    step = pipe.frame_step
    parts: dict[int, list[torch.Tensor]] = {}
    remaining: dict[int, int] = {}
    info: dict[int, Prepared] = {}
    out: list[tuple[int, npt.NDArray[np.float32]]] = []  # finished since the last yield

    def finish(idx: int) -> None:
        p = info.pop(idx)
        t0 = time.perf_counter()
        try:
            emb = mean_embedding(torch.cat(parts.pop(idx)), p.source)
            vec = emb.cpu().numpy().astype(np.float32, copy=False)
            if not np.isfinite(vec).all() or abs(float(np.linalg.norm(vec)) - 1.0) > UNIT_NORM_TOLERANCE:
                # The guarantee: every row that leaves the library is finite and unit norm.
                raise SpeakerEmbedError(
                    "the encoder gave an embedding that is not a finite unit vector; check "
                    "that the encoder's weights are finite, or report this as a bug",
                    source=p.source,
                    stage="consolidate",
                )
        except SpeakerEmbedError as err:
            rec.error(err.stage or "consolidate", err)
            rec.utterance(False)
            if on_failure is None:
                raise
            on_failure(idx, p.source, err)
            return
        rec.stage("consolidate", device.type, time.perf_counter() - t0)
        rec.utterance(True, p.input_seconds, p.trimmed_seconds)
        out.append((idx, vec))
        if kept is not None:
            kept[idx] = p.kept_seconds

    streams = schedule.streams
    cap = pipe.windows_per_batch(device.type, schedule.layout)
    # One call on torch's threads, or several at once, each on one thread (streams.py).
    call_encoder = encoder.embed_concurrently if streams > 1 else encoder

    def run(batch: torch.Tensor) -> tuple[torch.Tensor, float]:
        t0 = time.perf_counter()
        try:
            emb = call_encoder(batch)
        except Exception as exc:
            err = SpeakerEmbedError(
                f"the encoder failed on a batch of {batch.shape[0]} windows ({exc}); "
                "check the device and the encoder module",
                stage="encode",
            )
            rec.error("encode", err)
            raise err from exc
        return emb, time.perf_counter() - t0

    def windows_of() -> Iterator[tuple[int, Iterable[torch.Tensor]]]:
        for p in prepared:
            if p.mel is not None:
                whole = partial_windows(p.mel, step, pipe.min_coverage, pipe.partial_frames)
                chunks: Iterable[torch.Tensor] = (whole,)
                total = whole.shape[0]
            else:
                assert p.windows is not None
                chunks, total = p.windows, p.n_windows
            info[p.index] = p
            parts[p.index] = []
            remaining[p.index] = total
            yield p.index, chunks

    def batches() -> Iterator[tuple[list[tuple[int, int]], torch.Tensor]]:
        for pieces in pack(windows_of(), cap, schedule.layout):
            owners = [(idx, int(w.shape[0])) for idx, w in pieces]
            yield owners, torch.cat([w for _, w in pieces]).to(device, non_blocking=False)

    # With streams, they pull the batches (preparing the inputs) and this thread gathers and
    # consolidates their rows on one torch thread: its idle OpenMP threads would spin against
    # them. windows_of's dicts are filled in the streams' threads, for inputs not yet encoded,
    # and read here once their windows are back.
    with torch_threads(1 if streams > 1 else None), torch.inference_mode():
        for owners, emb, seconds in encode_in_order(run, batches(), streams):
            rec.stage("encode", device.type, seconds)
            rec.batch(int(emb.shape[0]), device.type)
            offset = 0
            for idx, n in owners:
                parts[idx].append(emb[offset : offset + n])
                offset += n
                remaining[idx] -= n
                if remaining[idx] == 0:
                    finish(idx)
            if out:
                yield from out
                out.clear()
