"""Prepared records for an encoder in this process: from a pool of decode workers, or in line.

:func:`pooled` decodes, resamples, trims and computes the mel spectrogram of each file in
``workers`` worker processes that feed the encoder through a bounded window of at most
``PREFETCH_PER_WORKER * workers`` prepared files, so memory does not grow with the corpus.
:func:`inline` does the same in this process, in bursts between encoder batches. Files long
enough for the streaming path
(:attr:`Pipeline.stream_min_duration_s <speakerembed.Pipeline.stream_min_duration_s>`) stream
in the encoder's process, block by block.

Worker processes start with "spawn" (:func:`spawn_pool`) and end with the job's process
(:func:`die_with_parent`); the CPU encoder workers (:mod:`speakerembed.corpus.encoders`) start
the same way.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import AudioError, SpeakerEmbedError
from .batch import Outcome, cpu_preparer, prepare_one

if TYPE_CHECKING:
    from concurrent.futures import ProcessPoolExecutor

    from .._engine.preparation import Preparer
    from ..config import Pipeline
    from ..embedder import SpeakerEmbedder
    from .sources import Record

__all__ = ["PREFETCH_PER_WORKER", "die_with_parent", "inline", "pooled", "spawn_pool"]

logger = logging.getLogger("speakerembed")

#: Prepared files a worker may hold ready ahead of the encoder.
PREFETCH_PER_WORKER = 4


def die_with_parent() -> None:
    """In a worker process: end this process when the job's process ends, however it ends.

    A job killed with SIGKILL (or SIGTERM) cannot stop its pool, and a worker blocked on the
    pool's pipe would wait forever, holding its memory. On Linux the kernel sends this process
    SIGKILL when its parent dies (``prctl(PR_SET_PDEATHSIG)``, through ctypes); everywhere, a
    daemon thread waits on the parent's sentinel (a pipe that reads end-of-file once the parent
    is gone) and checks the parent's pid, and ends the process then. Called first by every
    worker initializer; a no-op in a process that multiprocessing did not start.
    """
    import multiprocessing
    import sys
    import threading

    parent = multiprocessing.parent_process()
    if parent is None:
        return
    ppid = parent.pid
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
        except (OSError, AttributeError):  # pragma: no cover - no prctl: the thread below does it
            pass
    if os.getppid() != ppid:  # the parent died before the signal was asked for
        os._exit(1)

    def watch() -> None:
        while os.getppid() == ppid:
            try:
                parent.join(1.0)  # returns at once when the parent's pipe reads end-of-file
            except (OSError, ValueError):  # pragma: no cover - no sentinel: poll the pid alone
                import time

                time.sleep(1.0)
                continue
            if not parent.is_alive():
                break
        os._exit(1)

    threading.Thread(target=watch, name="speakerembed-parent-watch", daemon=True).start()


def spawn_pool(workers: int, initializer: Callable[..., None], *args: object) -> ProcessPoolExecutor:
    """A process pool of ``workers`` started with "spawn", each running ``initializer(*args)``."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    # "spawn": forking a process whose torch thread pools are running can deadlock.
    return ProcessPoolExecutor(
        workers, mp_context=mp.get_context("spawn"), initializer=initializer, initargs=args
    )


# -- in the decode workers ----------------------------------------------------------------------

_PREPARER: Preparer | None = None
_PIPELINE: Pipeline | None = None


def _init_worker(pipeline: Pipeline) -> None:
    global _PREPARER, _PIPELINE
    import signal

    die_with_parent()
    import torch

    # Ctrl-C goes to the whole process group: the encoder's process handles it (it keeps the
    # finished rows and stops the pool); the workers just stop when told.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(1)
    log = logging.getLogger("speakerembed")
    log.addHandler(logging.NullHandler())
    log.propagate = False
    _PIPELINE = pipeline
    _PREPARER = cpu_preparer(pipeline)


def _work(index: int, record: Record) -> tuple[int, Any]:
    """In a worker: prepare one record; mels travel as NumPy arrays, streams as a marker."""
    assert _PREPARER is not None
    assert _PIPELINE is not None
    index, item = prepare_one(_PREPARER, index, record, _PIPELINE)
    if isinstance(item, SpeakerEmbedError):
        return index, item
    if item.windows is not None:
        # A long file: its windows are a lazy generator over the file, which cannot travel.
        # The encoder's process streams it (pass 1 is read again there).
        close = getattr(item.windows, "close", None)
        if close is not None:
            close()
        return index, "stream"
    assert item.mel is not None
    item.mel = item.mel.numpy()  # type: ignore[assignment]
    return index, item


# -- in the encoder's process -------------------------------------------------------------------


def _new_pool(workers: int, pipeline: Pipeline) -> ProcessPoolExecutor:
    return spawn_pool(workers, _init_worker, pipeline)


def pooled(
    records: Sequence[Record], pipeline: Pipeline, workers: int, preparer: SpeakerEmbedder
) -> Iterator[Outcome]:
    """Prepared records from ``workers`` decode processes, in order, with a bounded number in flight.

    A worker that dies (a decoder crashing natively on a bad file, or the OOM killer) breaks
    the pool: each file that was in flight is then prepared again alone, in a fresh worker, so
    the one that kills its worker again becomes an error row and the others are embedded; the
    job goes on with a new pool. Long files stream here, with ``preparer``.
    """
    from concurrent.futures import Future
    from concurrent.futures.process import BrokenProcessPool

    import torch

    pool = _new_pool(workers, pipeline)
    try:
        todo = iter(enumerate(records))
        inflight: deque[tuple[int, Future[tuple[int, Any]]]] = deque()

        def fill(n: int) -> None:
            for index, record in itertools.islice(todo, n):
                inflight.append((index, pool.submit(_work, index, record)))

        fill(PREFETCH_PER_WORKER * workers)
        while inflight:
            index, future = inflight.popleft()
            try:
                _, item = future.result()
            except BrokenProcessPool:
                lost = [index, *(i for i, _ in inflight)]
                inflight.clear()
                pool.shutdown(wait=True, cancel_futures=True)
                logger.warning(
                    "a decoding worker died with %d file(s) in flight; preparing each alone", len(lost)
                )
                for i in lost:
                    yield _alone(i, records[i], pipeline, preparer)
                pool = _new_pool(workers, pipeline)
                fill(PREFETCH_PER_WORKER * workers)
                continue
            fill(1)
            if isinstance(item, str):
                yield prepare_one(preparer, index, records[index], pipeline)
                continue
            if not isinstance(item, SpeakerEmbedError):
                item.mel = torch.from_numpy(item.mel)
            yield index, item
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _alone(index: int, record: Record, pipeline: Pipeline, preparer: SpeakerEmbedder) -> Outcome:
    """Prepare one record in a fresh one-worker pool; a worker that dies makes it an error row."""
    from concurrent.futures.process import BrokenProcessPool

    import torch

    pool = _new_pool(1, pipeline)
    try:
        _, item = pool.submit(_work, index, record).result()
    except BrokenProcessPool:
        return index, AudioError(
            "made the decoder crash (its worker process died while reading it); the file is "
            "probably corrupt: re-encode it (for example with ffmpeg) or drop it from the inputs",
            source=record.path,
            stage="load",
        )
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    if isinstance(item, str):
        return prepare_one(preparer, index, record, pipeline)
    if not isinstance(item, SpeakerEmbedError):
        item.mel = torch.from_numpy(item.mel)
    return index, item


def inline(records: Sequence[Record], pipeline: Pipeline, preparer: SpeakerEmbedder) -> Iterator[Outcome]:
    """Prepared records from this process, in bursts between encoder batches.

    The same as ``embed_utterances`` (:func:`speakerembed._engine.prefetch.map_in_bursts`).
    """
    from .._engine.prefetch import BURST_PER_THREAD, auto_prefetch_depth, burst_threads, map_in_bursts

    threads = burst_threads(preparer.device.type, auto_prefetch_depth())

    def one(pair: tuple[int, Record]) -> Outcome:
        return prepare_one(preparer, pair[0], pair[1], pipeline)

    return map_in_bursts(one, enumerate(records), threads, BURST_PER_THREAD * threads)
