"""Running a CPU encoder as several one-thread streams instead of one call on every thread.

An LSTM gains little from intra-op threads: each of its time steps is a small matrix product
followed by a barrier, and OpenMP's threads spin at every barrier. On the 2-core dev host, two
Python threads each calling the encoder on one torch thread (torch releases the GIL inside the
LSTM) embedded 9-12 % more windows per second than one call on two threads, with 14 % less CPU
time (``benchmarks/throughput.py`` measures both limits).

On a 16-core Xeon, a stream per core ran the encoder alone 1.4-2.1x faster than one call on
16 threads in fp32 (2.1-2.8x in bf16), and the pipeline 1.6-2.1x faster than the one-call
rule before it.

Streams also leave no barrier for preparation (decode, resample, trim, mel) to stall. The
streams prepare their own batches: each, when it is free, pulls the next batch (preparing its
inputs, one stream at a time) and encodes it, while the others encode theirs. No thread beyond
the streams competes for the cores (from :data:`~speakerembed._engine.schedule.PREPARE_BESIDE_FROM`
cores, a quarter of the cores prepare in bursts beside them, and a stream's pull is a queue's:
:func:`~speakerembed._engine.schedule.preparing_threads`). On the 2-core host of this release,
against a third thread that prepared while both streams encoded (four alternating rounds), a
corpus job of 1,000 files switched contexts 2,400-3,600 times instead of 13,700-15,500 and ran
2-7 % faster, ``embed_utterances`` on the same audio in memory 4-9 % faster, and the throughput
benchmark's pipeline 1-8 points closer to the encoder alone (docs/performance.rst).

:func:`encode_in_order` keeps at most ``streams + 1`` batches pulled and not yet handed back,
and yields the results in the order the batches came, so embeddings do not depend on timing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from .prefetch import one_torch_thread

if TYPE_CHECKING:
    import torch

__all__ = ["encode_in_order"]

T = TypeVar("T")


def encode_in_order(
    call: Callable[[torch.Tensor], tuple[torch.Tensor, float]],
    batches: Iterable[tuple[T, torch.Tensor]],
    streams: int,
) -> Iterator[tuple[T, torch.Tensor, float]]:
    """Yield ``(owner, *call(batch))`` for each ``(owner, batch)``, in order.

    With ``streams`` of 2 or more, that many threads, each with one torch thread, take turns
    pulling the next batch (preparing it, one at a time) and run ``call`` on it: while one
    prepares, the others encode, and no thread beyond the streams competes for the cores.
    At most ``streams + 1`` batches are pulled and not yet yielded. An exception raised by
    ``call`` or by ``batches`` is raised here at its batch's position; batches not yet pulled
    are then never pulled. ``batches`` is pulled from the streams' threads, so it must not
    depend on this thread's state (torch's inference mode is set in the streams).
    """
    if streams < 2:
        for owner, batch in batches:
            yield (owner, *call(batch))
        return
    yield from _Streams(call, iter(batches), streams).results()


class _Streams:
    """The state of :func:`encode_in_order`'s streams: who pulls next, what is done, when to stop."""

    def __init__(
        self,
        call: Callable[[torch.Tensor], tuple[torch.Tensor, float]],
        batches: Iterator[tuple[Any, torch.Tensor]],
        streams: int,
    ) -> None:
        self.call, self.batches, self.streams = call, batches, streams
        self.pull_lock = threading.Lock()  # one thread pulls (prepares) at a time
        self.cond = threading.Condition()  # guards everything below
        self.pulled = 0  # batches taken from the iterator
        self.yielded = 0  # results handed to the consumer
        self.end: int | None = None  # the batch count, once the iterator is done (or raised)
        self.done: dict[int, tuple[Any, ...] | BaseException] = {}
        self.stop = False

    def _may_pull(self) -> bool:
        """Whether a stream may pull the next batch (or must stop): at most streams + 1 are out."""
        return self.stop or self.end is not None or self.pulled - self.yielded <= self.streams

    def _work(self) -> None:
        """One stream: pull the next batch (one stream at a time), encode it, hand it back."""
        import torch

        one_torch_thread()
        with torch.inference_mode():
            while True:
                with self.cond:
                    self.cond.wait_for(self._may_pull)
                    if self.stop or self.end is not None:
                        return
                with self.pull_lock:
                    with self.cond:
                        if self.stop or self.end is not None or not self._may_pull():
                            continue
                        seq = self.pulled
                    try:
                        owner, batch = next(self.batches)
                    except StopIteration:
                        self._finish(seq, None)
                        return
                    except BaseException as exc:  # noqa: BLE001 - raised by the consumer
                        self._finish(seq + 1, exc, seq)
                        return
                    with self.cond:
                        self.pulled = seq + 1
                try:
                    out: tuple[Any, ...] | BaseException = (owner, *self.call(batch))
                except BaseException as exc:  # noqa: BLE001 - raised by the consumer, in order
                    self._finish(seq + 1, exc, seq)  # nothing more is pulled
                    return
                del batch
                with self.cond:
                    self.done[seq] = out
                    self.cond.notify_all()

    def _finish(self, end: int, exc: BaseException | None, seq: int = -1) -> None:
        """The last batch is ``end - 1``: the iterator ran out, or ``exc`` ended batch ``seq``."""
        with self.cond:
            self.end = end if self.end is None else min(self.end, end)
            if exc is not None:
                self.done[seq] = exc
            self.cond.notify_all()

    def _ready(self) -> bool:
        """Whether the consumer's next result is in, or there is none to come."""
        return self.yielded in self.done or (self.end is not None and self.yielded >= self.end)

    def results(self) -> Iterator[tuple[Any, torch.Tensor, float]]:
        """Start the streams and yield their results in batch order; stop and join them at the end."""
        threads = [
            threading.Thread(target=self._work, name=f"speakerembed-encode_{k}", daemon=True)
            for k in range(self.streams)
        ]
        for t in threads:
            t.start()
        try:
            while True:
                with self.cond:
                    self.cond.wait_for(self._ready)
                    if self.yielded not in self.done:
                        return
                    item = self.done.pop(self.yielded)
                    self.yielded += 1
                    self.cond.notify_all()
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            with self.cond:
                self.stop = True
                self.cond.notify_all()
            for t in threads:
                t.join()
