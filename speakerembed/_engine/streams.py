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
:data:`PREPARE_BESIDE_FROM` cores, a quarter of the cores do, in bursts:
:func:`preparing_threads`), and the OS shares the cores between them.

:func:`encode_in_order` keeps at most ``streams + 1`` batches in flight and yields the results
in the order the batches came, so embeddings do not depend on timing.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, TypeVar

from .prefetch import MAX_PREPARE_THREADS, _one_torch_thread, usable_cores

if TYPE_CHECKING:
    import torch

__all__ = [
    "PREPARE_BESIDE_FROM",
    "batch_layout",
    "encode_in_order",
    "encoder_streams",
    "preparing_threads",
    "split_rows",
]

#: Usable cores from which a quarter of them prepare inputs beside the streams, instead of the
#: caller's thread in line. Measured at 44.1 kHz on a Xeon with AMX (torch 2.11,
#: ``benchmarks/prepare_overlap.py``): on 16 cores, 4 threads beside 16 streams ran 1,939x real
#: time in fp32 against 1,492x in line; on 8 of them (``taskset``), 2 or 4 threads beside 8
#: streams ran 1,466-1,652x in bf16 against 1,158-1,487x in line, and in fp32 1,113-1,215x
#: against 1,044-1,161x. On 2 cores one thread keeps up (in line and one thread beside ran alike).
PREPARE_BESIDE_FROM = 8

T = TypeVar("T")


def encoder_streams(encoder: object, device_type: str) -> int:
    """How many one-thread streams to run ``encoder`` on (1: one call on torch's threads).

    One stream per torch thread when the encoder is on the CPU, can be called from several
    threads at once (its ``concurrent_calls`` is true, as
    :class:`~speakerembed.stages.encoder.ModuleEncoder`'s is around speakerembed's or
    chatterbox's voice encoder: then ``embed_concurrently`` runs a call without the lock), and
    torch and the machine have two threads or more.
    """
    import torch

    layout = batch_layout(device_type)
    if layout < 2 or not getattr(encoder, "concurrent_calls", False):
        return 1
    return max(1, min(torch.get_num_threads(), layout))


def batch_layout(device_type: str) -> int:
    """How many streams the encoder's batches are laid out for.

    The layout is the batches' size and how the last ones are shared out
    (:meth:`~speakerembed.Pipeline.windows_per_batch`, :func:`split_rows`): laid out for the
    usable cores on a CPU of two cores or more, else for 1. It
    depends on the machine only, not on how many streams run (torch's thread count, which may
    change between calls or differ between threads), so that the embeddings are the same bits
    however many threads run them: the LSTM's results depend on the batch, not on the threads.
    """
    if device_type != "cpu":
        return 1
    cores = usable_cores()
    return cores if cores >= 2 else 1


def preparing_threads() -> int:
    """Threads that prepare inputs beside CPU encoder streams.

    1 below :data:`PREPARE_BESIDE_FROM` usable cores: the caller's thread, in line, between
    handing batches to the streams. From there, one thread cannot keep up with a stream per
    core (least of all in bf16, where the encoder is faster), so a quarter of the cores (at most
    :data:`~speakerembed._engine.prefetch.MAX_PREPARE_THREADS`) prepare in bursts, driven by a
    prefetch thread; they share the cores with the streams, and wait when they are ahead.
    """
    cores = usable_cores()
    return 1 if cores < PREPARE_BESIDE_FROM else max(1, min(cores // 4, MAX_PREPARE_THREADS))


def split_rows(pending: list[tuple[T, torch.Tensor]], parts: int) -> list[list[tuple[T, torch.Tensor]]]:
    """Split ``(owner, rows)`` pieces into at most ``parts`` lists with row counts within one.

    Pieces are cut where needed and stay in order, so concatenating the lists gives back the
    rows in their order.
    """
    total = sum(int(rows.shape[0]) for _, rows in pending)
    parts = max(1, min(parts, total))
    sizes = [total // parts + (1 if i < total % parts else 0) for i in range(parts)]
    out: list[list[tuple[T, torch.Tensor]]] = [[] for _ in sizes]
    part, room = 0, sizes[0]
    for owner, rows in pending:
        start = 0
        while start < rows.shape[0]:
            if room == 0:
                part += 1
                room = sizes[part]
            take = min(room, int(rows.shape[0]) - start)
            out[part].append((owner, rows[start : start + take]))
            start += take
            room -= take
    return [p for p in out if p]


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
        streams, thread_name_prefix="speakerembed-encode", initializer=_one_torch_thread
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
