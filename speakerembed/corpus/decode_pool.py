"""Prepared records for an encoder in this process: from a pool of decode workers, or in line.

:func:`pooled` decodes, resamples, trims and computes the mel spectrogram of each file in
``workers`` worker processes that feed the encoder through a bounded window of at most
``PREFETCH_PER_WORKER * workers`` prepared files, so memory does not grow with the corpus. The
pool is the engine's (:mod:`speakerembed._engine.processes`, which ``embed_utterances`` on a
GPU uses too): each mel comes back through a shared-memory segment, not pickled, and is copied
into a tensor here; only its name, shape and dtype and the file's details travel through the
pool's pipe. :func:`inline` does the same in this process, scheduled as ``embed_utterances`` is.
Files long enough for the streaming path
(:attr:`Pipeline.stream_min_duration_s <speakerembed.Pipeline.stream_min_duration_s>`) stream
in the encoder's process, block by block.

Worker processes start with "spawn" (:func:`spawn_pool`) and end with the job's process
(:func:`die_with_parent`); the CPU encoder workers (:mod:`speakerembed.corpus.encoders`) start
the same way.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from .._engine import processes
from .._engine.processes import PREFETCH_PER_WORKER, die_with_parent, spawn_pool
from ..errors import SpeakerEmbedError
from .batch import Outcome, prepare_one

if TYPE_CHECKING:
    from ..config import Pipeline
    from ..embedder import SpeakerEmbedder
    from .sources import Record

__all__ = ["PREFETCH_PER_WORKER", "die_with_parent", "inline", "pooled", "spawn_pool"]


def pooled(
    records: Sequence[Record], pipeline: Pipeline, workers: int, preparer: SpeakerEmbedder
) -> Iterator[Outcome]:
    """Prepared records from ``workers`` decode processes, in order, with a bounded number in flight.

    A worker that dies (a decoder crashing natively on a bad file, or the OOM killer) breaks
    the pool: each file that was in flight is then prepared again alone, in a fresh worker, so
    the one that kills its worker again becomes an error row and the others are embedded; the
    job goes on with a new pool. Long files stream here, with ``preparer``. Every error's
    ``source`` is its record's path.
    """

    def here(index: int) -> Outcome:
        return prepare_one(preparer, index, records[index], pipeline)

    paths = [r.path for r in records]
    stream = processes.pooled(paths, [None] * len(paths), pipeline, workers, here)
    try:
        for index, item in stream:
            if isinstance(item, SpeakerEmbedError):
                item.source = records[index].path
            yield index, item
    finally:
        stream.close()


def inline(records: Sequence[Record], pipeline: Pipeline, preparer: SpeakerEmbedder) -> Iterator[Outcome]:
    """Prepared records from this process, as ``embed_utterances`` prepares its inputs.

    The embedder's schedule for the job (:meth:`Engine.schedule
    <speakerembed._engine.runner.Engine.schedule>`) decides, as it does for
    ``embed_utterances``: on a CPU with encoder streams, in line (the streams pull the records
    as they need them), or from 8 cores in bursts beside them; otherwise in bursts between
    encoder batches (:func:`speakerembed._engine.prefetch.map_in_bursts`), ahead of the encoder
    in a prefetch thread where torch leaves a core free.
    """
    from .._engine.prefetch import BURST_PER_THREAD, map_in_bursts, prefetch

    def one(pair: tuple[int, Record]) -> Outcome:
        return prepare_one(preparer, pair[0], pair[1], pipeline)

    schedule = preparer.engine.schedule(len(records))
    threads = schedule.prepare_threads
    outcomes = map_in_bursts(one, enumerate(records), threads, BURST_PER_THREAD * threads)
    return prefetch(outcomes, schedule.prefetch_depth) if schedule.prefetch_depth > 0 else outcomes
