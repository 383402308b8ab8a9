"""Running a CPU encoder as several one-thread streams instead of one call on every thread.

An LSTM gains little from intra-op threads: each of its time steps is a small matrix product
followed by a barrier, and OpenMP's threads spin at every barrier. On the 2-core dev host, two
Python threads each calling the encoder on one torch thread (torch releases the GIL inside the
LSTM) embedded 9-12 % more windows per second than one call on two threads, with 14 % less CPU
time (``benchmarks/throughput.py`` measures both limits).

On a 16-core Xeon, a stream per core ran the encoder alone 1.4-2.1x faster than one call on
16 threads in fp32 (2.1-2.8x in bf16), and the pipeline 1.6-2.1x faster than the one-call
rule before it.

Streams also leave no barrier for preparation (decode, resample, trim, mel) to stall: the
caller's thread prepares the next batch while the streams encode (from
:data:`~speakerembed._engine.schedule.PREPARE_BESIDE_FROM` cores, a quarter of the cores
do, in bursts: :func:`~speakerembed._engine.schedule.preparing_threads`), and the OS shares
the cores between them.

:func:`encode_in_order` keeps at most ``streams + 1`` batches in flight and yields the results
in the order the batches came, so embeddings do not depend on timing.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, TypeVar

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

    With ``streams`` of 2 or more, ``call`` runs on that many threads, each with one torch
    thread, and this thread pulls the next batch (preparing it) while they run; at most
    ``streams + 1`` batches are in flight. An exception raised by ``call`` is raised here at
    its batch's position; batches not started are then dropped.
    """
    if streams < 2:
        for owner, batch in batches:
            yield (owner, *call(batch))
        return
    inflight: deque[tuple[T, Future[tuple[torch.Tensor, float]]]] = deque()
    with ThreadPoolExecutor(
        streams, thread_name_prefix="speakerembed-encode", initializer=one_torch_thread
    ) as pool:
        try:
            for owner, batch in batches:
                inflight.append((owner, pool.submit(call, batch)))
                while len(inflight) > streams:
                    done, future = inflight.popleft()
                    yield (done, *future.result())
            while inflight:
                done, future = inflight.popleft()
                yield (done, *future.result())
        finally:
            for _, future in inflight:
                future.cancel()
