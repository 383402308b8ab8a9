"""Preparing utterances (decode, resample, trim, mel) beside the encoder, in two ways.

NumPy, libsoxr, libsndfile and torch all release the GIL, so threads prepare in parallel.

* :func:`prefetch`: when torch's threads leave a core free, one thread runs the preparation
  *ahead of* the encoder, overlapping it, through a bounded queue.
* :func:`map_in_bursts`: when the encoder's threads use every core, overlapping would only
  fight it (OpenMP threads spin at their barriers), so the preparation runs *between* encoder
  batches instead: when the encoder asks for the next utterance, a burst of the following ones
  is prepared on one thread per core, each thread with one torch thread.
* A CPU encoder that can be called from several threads runs as one-thread streams instead
  (:mod:`speakerembed._engine.streams`); preparation runs in line beside them, or from 8 usable
  cores on, in bursts on a quarter of the cores, driven by a prefetch thread.
* :func:`many_core_split`: for an encoder that cannot stream (a module of the caller's own),
  from :data:`MANY_CORES` usable cores on, the LSTM no longer gains from every core, so an
  encoder that would take them all runs on three quarters of them (:func:`torch_threads`, for
  the call only) while bursts on the other quarter prepare beside it, driven by a prefetch
  thread.

Both keep memory bounded and yield items in order, so results do not depend on timing.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from typing import TypeVar

__all__ = [
    "BURST_PER_THREAD",
    "MANY_CORES",
    "MAX_PREPARE_THREADS",
    "auto_prefetch_depth",
    "burst_threads",
    "many_core_split",
    "map_in_bursts",
    "prefetch",
    "torch_threads",
    "usable_cores",
]

#: Most threads that prepare utterances (decode, resample, trim, mel) in bursts.
MAX_PREPARE_THREADS = 8
#: Utterances prepared per thread in each burst: enough to even out their lengths, few
#: enough that memory stays a handful of mels per thread.
BURST_PER_THREAD = 4

#: Usable cores from which a CPU encoder that cannot stream (:func:`many_core_split`) runs on
#: three quarters of them, a quarter preparing beside it. Measured on 16 cores (Xeon with AMX,
#: torch 2.11, 86 utterances at 44.1 kHz): 12 encoder threads beside 4 preparing ran 1,428x
#: real time against 894x for 16 threads and bursts (docs/performance.rst). Encoder streams
#: have their own threshold (:data:`speakerembed._engine.streams.PREPARE_BESIDE_FROM`).
MANY_CORES = 16

T = TypeVar("T")
R = TypeVar("R")

_DONE = object()


def prefetch(source: Iterator[T], depth: int = 2) -> Iterator[T]:
    """Yield the items of ``source``, computed up to ``depth`` items ahead in a thread.

    An exception raised by ``source`` is raised by this iterator at the same position. When
    the consumer stops early, the thread stops after the item it is computing.
    """
    if depth < 1:
        yield from source
        return
    q: queue.Queue[tuple[object, BaseException | None]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: tuple[object, BaseException | None]) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def run() -> None:
        try:
            for item in source:
                if not put((item, None)):
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            put((None, exc))
            return
        put((_DONE, None))

    thread = threading.Thread(target=run, name="speakerembed-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item, exc = q.get()
            if exc is not None:
                raise exc
            if item is _DONE:
                return
            yield item  # type: ignore[misc]
    finally:
        stop.set()


def usable_cores() -> int:
    """The cores this process may run on (its affinity where the OS says, else all)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def auto_prefetch_depth() -> int:
    """2 when torch's threads leave a core free for a prefetch thread, else 0.

    On a machine where torch's threads use every core, the benchmark measured the thread as a
    loss (158x against 188x real time at 44.1 kHz on 2 cores): it competes with the encoder.
    """
    import torch

    return 2 if torch.get_num_threads() < usable_cores() else 0


def burst_threads(device_type: str, prefetch_depth: int) -> int:
    """Threads for :func:`map_in_bursts` beside an encoder on ``device_type``.

    A GPU encoder leaves every core to the preparation; a CPU encoder whose threads use every
    core gets one preparing thread per core (they run between its batches); when a prefetch
    thread already overlaps the encoder (a core is free), preparation stays in that thread.
    """
    import torch

    cores = usable_cores()
    if device_type != "cpu":
        return min(cores, MAX_PREPARE_THREADS)
    if prefetch_depth > 0:
        return 1
    return max(1, min(cores, torch.get_num_threads(), MAX_PREPARE_THREADS))


def many_core_split(device_type: str) -> tuple[int, int] | None:
    """``(encoder threads, preparing threads)`` beside each other on a many-core CPU, or ``None``.

    Only when the encoder is on the CPU, torch would use every usable core, and there are at
    least :data:`MANY_CORES` of them: then three quarters encode and a quarter prepares.
    """
    import torch

    cores = usable_cores()
    if device_type != "cpu" or cores < MANY_CORES or torch.get_num_threads() < cores:
        return None
    prepare = min(cores // 4, MAX_PREPARE_THREADS)
    return cores - prepare, prepare


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``n`` torch threads in this thread, then restore the count.

    OpenMP's and MKL's thread counts are per thread, so other threads keep theirs.
    """
    import torch

    before = torch.get_num_threads()
    if n is None or n == before:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _one_torch_thread() -> None:
    """Pool initializer: one intra-op thread for torch calls made from this thread.

    OpenMP's thread count is per thread, so the encoder's thread keeps its own.
    """
    import torch

    torch.set_num_threads(1)


def map_in_bursts(fn: Callable[[T], R], items: Iterable[T], workers: int, burst: int) -> Iterator[R]:
    """Yield ``fn(item)`` for each item, in order, computed ``burst`` at a time on ``workers`` threads.

    A burst is computed only when the consumer asks for an item and none is ready, so nothing
    runs ahead of the consumer; each result is handed over as soon as it and those before it
    are done, so a burst's last items may still run while the consumer takes its first ones.
    ``fn`` should not raise; if it does, the exception is raised at its item's position. At
    most ``burst`` results are held at once.
    """
    it = iter(items)
    if workers < 2:
        yield from map(fn, it)
        return
    with ThreadPoolExecutor(
        workers, thread_name_prefix="speakerembed-prepare", initializer=_one_torch_thread
    ) as pool:
        while True:
            chunk = list(islice(it, burst))
            if not chunk:
                return
            yield from pool.map(fn, chunk)
