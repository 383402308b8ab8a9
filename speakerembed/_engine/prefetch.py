"""Preparing utterances (decode, resample, trim, mel) beside the encoder, in two ways.

NumPy, libsoxr, libsndfile and torch all release the GIL, so threads prepare in parallel.

* :func:`prefetch`: when torch's threads leave a core free, one thread runs the preparation
  *ahead of* the encoder, overlapping it, through a bounded queue.
* :func:`map_in_bursts`: when the encoder's threads use every core, overlapping would only
  fight it (OpenMP threads spin at their barriers), so the preparation runs *between* encoder
  batches instead: when the encoder asks for the next utterance, a burst of the following ones
  is prepared on one thread per core, each thread with one torch thread.
* A CPU encoder that can be called from several threads runs as one-thread streams instead
  (:mod:`speakerembed._engine.streams`); they prepare in line, each the batch it pulls, or from
  8 usable cores on, bursts on a quarter of the cores prepare, driven by a prefetch thread.
* For an encoder that cannot stream (a module of the caller's own), from
  :data:`~speakerembed._engine.schedule.MANY_CORES` usable cores on, the LSTM no longer gains
  from every core, so an encoder that would take them all runs on three quarters of them
  (:func:`torch_threads`, for the call only) while bursts on the other quarter prepare beside
  it, driven by a prefetch thread (:func:`~speakerembed._engine.schedule.many_core_split`).

Which of them a call uses is :func:`speakerembed._engine.schedule.plan`'s choice. Both keep
memory bounded and yield items in order, so results do not depend on timing.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from typing import TypeVar

__all__ = [
    "BURST_PER_THREAD",
    "auto_prefetch_depth",
    "burst_threads",
    "map_in_bursts",
    "one_torch_thread",
    "prefetch",
    "torch_threads",
]

#: Utterances prepared per thread in each burst: enough to even out their lengths, few
#: enough that memory stays a handful of mels per thread.
BURST_PER_THREAD = 4

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


def auto_prefetch_depth() -> int:
    """:func:`~speakerembed._engine.schedule.auto_prefetch_depth` on this machine, now."""
    import torch

    from . import schedule

    return schedule.auto_prefetch_depth(schedule.usable_cores(), torch.get_num_threads())


def burst_threads(device_type: str, prefetch_depth: int) -> int:
    """:func:`~speakerembed._engine.schedule.burst_threads` on this machine, now."""
    import torch

    from . import schedule

    cores, threads = schedule.usable_cores(), torch.get_num_threads()
    return schedule.burst_threads(device_type, prefetch_depth, cores, threads)


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


def one_torch_thread() -> None:
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
        workers, thread_name_prefix="speakerembed-prepare", initializer=one_torch_thread
    ) as pool:
        while True:
            chunk = list(islice(it, burst))
            if not chunk:
                return
            yield from pool.map(fn, chunk)
