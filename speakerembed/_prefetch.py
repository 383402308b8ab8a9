"""Run a generator ahead of its consumer in a thread, with a bounded queue.

The embedder prepares the next utterances (decode, resample, trim, mel: NumPy, libsoxr and
torch, all of which release the GIL) while the encoder runs on the current batch. The queue
is bounded, so memory stays bounded; items arrive in order, so results do not depend on
timing.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import TypeVar

__all__ = ["prefetch"]

T = TypeVar("T")

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
