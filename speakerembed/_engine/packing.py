"""Packing the prepared inputs' partial windows into encoder batches: a pure function.

Batches hold at most ``cap`` windows, across inputs, so memory stays bounded however many
inputs a call has. Laid out for streams (``layout`` of 2 or more:
:func:`~speakerembed._engine.schedule.batch_layout`), each full batch is held until the next
one fills, so that the last two can be shared out between the streams (:func:`split_rows`)
and none of them is left to finish alone. The layout is the same however many streams run,
so the batches, and the embeddings, are too.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    import torch

__all__ = ["pack", "split_rows"]

T = TypeVar("T")


def pack(
    inputs: Iterable[tuple[T, Iterable[torch.Tensor]]], cap: int, layout: int
) -> Iterator[list[tuple[T, torch.Tensor]]]:
    """Batches of at most ``cap`` windows from each input's window chunks, in order.

    Parameters
    ----------
    inputs : iterable of (owner, iterable of torch.Tensor)
        Each input's owner key and its windows, in chunks of shape (n, partial_frames, 40),
        float32. Pulled lazily: an input is prepared only when its windows are needed.
    cap : int
        The most windows in one batch (``>= 1``).
    layout : int
        How many streams the batches are laid out for (1: no hold-back or sharing out).

    Yields
    ------
    list of (owner, torch.Tensor)
        One batch: pieces of the inputs' windows, whose rows concatenated in order are the
        batch. Every window of every input appears exactly once, in input order.
    """
    pending: list[tuple[T, torch.Tensor]] = []
    n_pending = 0
    held: list[tuple[T, torch.Tensor]] = []
    for owner, chunks in inputs:
        for windows in chunks:
            start = 0
            while start < windows.shape[0]:
                take = min(cap - n_pending, windows.shape[0] - start)
                pending.append((owner, windows[start : start + take]))
                n_pending += take
                start += take
                if n_pending >= cap:
                    if layout < 2:
                        yield pending
                    else:
                        if held:
                            yield held
                        held = pending
                    pending, n_pending = [], 0
    rest = held + pending
    if rest:
        n_rest = sum(int(w.shape[0]) for _, w in rest)
        yield from split_rows(rest, max(layout, -(-n_rest // cap)))


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
