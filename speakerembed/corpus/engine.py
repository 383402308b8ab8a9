"""Engines: turn the pending records of a job into rows, and hand them to the sink.

An engine is a function ``run(job: Job) -> bool`` that embeds ``job.records`` (the inputs not yet
in the output), writes each batch's rows with ``job.sink.write(table)``, counts them with
``job.progress.update(table)``, and returns ``True`` when it stopped early because
``job.fail_fast`` is set and a row failed (it writes the rows up to that one:
:func:`first_failure`). It does not close the sink. Each batch's rows come from
:func:`~speakerembed.corpus.batch.embed_batch` (or its two halves), so every engine writes the
same rows.

The local engine (:func:`run_local`) on a CPU runs ``workers`` encoder processes beside this one,
each preparing its own files (:mod:`speakerembed.corpus.encoders`). On a GPU, it decodes,
resamples, trims and computes the mel spectrogram of each file in ``workers`` worker processes
that feed the encoder through a bounded window of at most ``PREFETCH_PER_WORKER * workers``
prepared files, so memory does not grow with the corpus. With ``workers=0``, all of it runs in
line, in bursts between encoder batches. Files long enough for the
streaming path (:attr:`Pipeline.stream_min_duration_s <speakerembed.Pipeline.stream_min_duration_s>`)
stream in the encoder's process, block by block.

The Ray engine is :mod:`speakerembed.corpus.ray_engine` (``pip install 'speakerembed[ray]'``).
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import AudioError, SpeakerEmbedError
from .batch import Outcome, cpu_preparer, encode_outcomes, prepare_one

if TYPE_CHECKING:
    from concurrent.futures import ProcessPoolExecutor

    import pyarrow as pa

    from .._engine.preparation import Preparer
    from ..config import Pipeline
    from ..embedder import SpeakerEmbedder
    from .progress import Progress
    from .sink import ParquetSink
    from .sources import Record

__all__ = [
    "BATCH_SIZE",
    "PREFETCH_PER_WORKER",
    "Job",
    "default_workers",
    "die_with_parent",
    "first_failure",
    "gpu_default_workers",
    "run_local",
]

logger = logging.getLogger("speakerembed")

#: Records per call of the encoder step (and per sink write).
BATCH_SIZE = 64
#: Prepared files a worker may hold ready ahead of the encoder.
PREFETCH_PER_WORKER = 4


@dataclasses.dataclass
class Job:
    """Everything an engine needs.

    Attributes
    ----------
    records : list of Record
        The inputs still to embed, in order.
    schema : pyarrow.Schema
        The output schema, with the job's metadata.
    pipeline : Pipeline
        The preprocessing.
    embedder : SpeakerEmbedder
        The loaded embedder (the Ray engine loads one per actor from ``embedder_options``).
    embedder_options : dict
        ``weights``, ``encoder``, ``device``, ``precision``: how to load the same embedder elsewhere.
    sink : ParquetSink
        Where rows go.
    progress : Progress
        Counts and shows them.
    fail_fast : bool
        Stop after the first batch that holds a failed row.
    workers : int or None
        Worker processes (local) or actors (Ray); ``None`` picks (:func:`default_workers`).
    threads : int or None
        Torch threads for each encoder.
    batch_size : int
        Records per batch.
    ray_address : str or None
        The Ray cluster to join (Ray engine).
    """

    records: list[Record]
    schema: pa.Schema
    pipeline: Pipeline
    embedder: SpeakerEmbedder
    embedder_options: dict[str, Any]
    sink: ParquetSink
    progress: Progress
    fail_fast: bool = False
    workers: int | None = None
    threads: int | None = None
    batch_size: int = BATCH_SIZE
    ray_address: str | None = None


def default_workers(device_type: str) -> int:
    """Decoding workers beside a GPU encoder when ``workers`` is not given.

    On a GPU the encoder waits for the CPU, so decoding gets every core but one (at most 8).
    (On a CPU, ``workers`` are encoder processes instead:
    :func:`speakerembed.corpus.encoders.default_encoders`; this function, asked about a CPU,
    gives the cores that torch's threads leave free.)
    """
    import torch

    from .._engine.schedule import usable_cores

    cores = usable_cores()
    if device_type == "cuda":
        return max(1, min(8, cores - 1))
    return max(0, min(8, cores - torch.get_num_threads()))


def gpu_default_workers(n_records: int) -> int:
    """Decoding workers beside a GPU encoder for a job of ``n_records`` inputs, when not given.

    In line (0) below :data:`~speakerembed.corpus.encoders.MIN_RECORDS` inputs, or when the main
    script is not guarded (``spawn`` would run it again in each worker); else
    :func:`default_workers`. On an H200 with 16 cores, 1,500 files of 2-5 s ran at 1,496x real
    time in line against 985x with 8 workers (their start-up, about 3 s each, is most of such a
    job), and 5,000 files at 2,496x against 2,507x (docs/performance.rst, "GPU").
    """
    from . import encoders

    if n_records < encoders.MIN_RECORDS or not encoders.main_is_guarded():
        return 0
    return default_workers("cuda")


# -- the worker processes ---------------------------------------------------------------------

_PREPARER: Preparer | None = None
_PIPELINE: Pipeline | None = None


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


def _spawn_pool(workers: int, initializer: Callable[..., None], arg: object) -> ProcessPoolExecutor:
    """A process pool of ``workers`` started with "spawn", each running ``initializer(arg)``."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    # "spawn": forking a process whose torch thread pools are running can deadlock.
    return ProcessPoolExecutor(
        workers, mp_context=mp.get_context("spawn"), initializer=initializer, initargs=(arg,)
    )


def _new_pool(workers: int, pipeline: Pipeline) -> ProcessPoolExecutor:
    return _spawn_pool(workers, _init_worker, pipeline)


def _pooled(
    records: Sequence[Record], job: Job, workers: int, preparer: SpeakerEmbedder
) -> Iterator[Outcome]:
    """Prepared records from worker processes, in order, with a bounded number in flight.

    A worker that dies (a decoder crashing natively on a bad file, or the OOM killer) breaks
    the pool: each file that was in flight is then prepared again alone, in a fresh worker, so
    the one that kills its worker again becomes an error row and the others are embedded; the
    job goes on with a new pool.
    """
    from concurrent.futures import Future
    from concurrent.futures.process import BrokenProcessPool

    import torch

    pool = _new_pool(workers, job.pipeline)
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
                    yield _alone(i, records[i], job.pipeline, preparer)
                pool = _new_pool(workers, job.pipeline)
                fill(PREFETCH_PER_WORKER * workers)
                continue
            fill(1)
            if isinstance(item, str):
                yield prepare_one(preparer, index, records[index], job.pipeline)
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


def _inline(records: Sequence[Record], job: Job, preparer: SpeakerEmbedder) -> Iterator[Outcome]:
    """Prepared records from this process, in bursts between encoder batches.

    The same as ``embed_utterances`` (:func:`speakerembed._engine.prefetch.map_in_bursts`).
    """
    from .._engine.prefetch import BURST_PER_THREAD, auto_prefetch_depth, burst_threads, map_in_bursts

    threads = burst_threads(preparer.device.type, auto_prefetch_depth())

    def one(pair: tuple[int, Record]) -> Outcome:
        return prepare_one(preparer, pair[0], pair[1], job.pipeline)

    return map_in_bursts(one, enumerate(records), threads, BURST_PER_THREAD * threads)


def first_failure(table: pa.Table) -> int:
    """The position of the first error row of a batch (``fail_fast`` keeps the rows up to it)."""
    return int(table.column("error").is_valid().to_pylist().index(True))


def run_local(job: Job) -> bool:
    """The local engine: the encoder in this process, and worker processes.

    On a CPU, ``workers`` are encoder processes beside this one, each preparing its own files
    (:mod:`speakerembed.corpus.encoders`); on a GPU, they decode, resample, trim and compute
    mels for the one encoder here. With none, everything runs in line.

    Returns
    -------
    bool
        True when it stopped early (``fail_fast`` and a failed row).
    """
    from . import encoders

    records = job.records
    if not records:
        return False
    if job.embedder.device.type == "cpu":
        workers = job.workers if job.workers is not None else encoders.default_encoders(job)
        if workers > 0:
            return _write(job, encoders.encoder_tables(job, workers))
    elif job.workers is None:
        workers = gpu_default_workers(len(records))
    else:
        workers = job.workers
    if job.threads is not None:
        import torch

        torch.set_num_threads(job.threads)
    return _write(job, _batches(job, workers))


def _batches(job: Job, workers: int) -> Iterator[pa.Table]:
    """Batches encoded here, prepared in line or by ``workers`` decode processes."""
    records = job.records
    stream = (
        _pooled(records, job, workers, job.embedder) if workers > 0 else _inline(records, job, job.embedder)
    )
    try:
        for start in range(0, len(records), job.batch_size):
            batch = records[start : start + job.batch_size]
            outcomes = ((i - start, item) for i, item in itertools.islice(stream, len(batch)))
            yield encode_outcomes(batch, outcomes, job.embedder, job.pipeline, job.schema)
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            close()


def _write(job: Job, tables: Iterator[pa.Table]) -> bool:
    """Write each table of rows and count it; stop after the first failure with ``fail_fast``."""
    try:
        for table in tables:
            stop = job.fail_fast and table.column("error").null_count < table.num_rows
            if stop:
                table = table.slice(0, first_failure(table) + 1)
            job.sink.write(table)
            job.progress.update(table)
            if stop:
                return True
        return False
    finally:
        close = getattr(tables, "close", None)
        if close is not None:
            close()
