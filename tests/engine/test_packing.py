"""Packing windows into encoder batches (speakerembed._engine.packing), a pure function."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from speakerembed._engine.packing import pack, split_rows


@given(st.lists(st.integers(1, 40), min_size=1, max_size=12), st.integers(1, 6))
def test_split_rows_balances_and_keeps_order(lengths: list[int], parts: int) -> None:
    pending = []
    start = 0
    for owner, n in enumerate(lengths):
        pending.append((owner, torch.arange(start, start + n)))
        start += n
    pieces = split_rows(pending, parts)
    sizes = [sum(int(rows.shape[0]) for _, rows in piece) for piece in pieces]
    assert len(pieces) == min(parts, start)
    assert max(sizes) - min(sizes) <= 1
    rows = torch.cat([rows for piece in pieces for _, rows in piece])
    assert rows.tolist() == list(range(start))
    owners = [owner for piece in pieces for owner, rows in piece for _ in range(rows.shape[0])]
    assert owners == [owner for owner, n in enumerate(lengths) for _ in range(n)]


def _inputs(lengths: list[list[int]]) -> tuple[list[tuple[int, list[torch.Tensor]]], int]:
    """Inputs whose chunks hold consecutive row numbers, and the number of rows."""
    out, start = [], 0
    for owner, chunks in enumerate(lengths):
        tensors = []
        for n in chunks:
            tensors.append(torch.arange(start, start + n))
            start += n
        out.append((owner, tensors))
    return out, start


@given(
    st.lists(st.lists(st.integers(1, 30), min_size=1, max_size=3), min_size=1, max_size=8),
    st.integers(1, 16),
    st.integers(1, 4),
)
def test_pack_keeps_every_window_once_in_order_and_under_the_cap(
    lengths: list[list[int]], cap: int, layout: int
) -> None:
    inputs, total = _inputs(lengths)
    batches = list(pack(inputs, cap, layout))
    sizes = [sum(int(w.shape[0]) for _, w in b) for b in batches]
    assert all(0 < s <= cap for s in sizes)
    rows = torch.cat([w for b in batches for _, w in b])
    assert rows.tolist() == list(range(total))
    owners = [o for b in batches for o, w in b for _ in range(w.shape[0])]
    assert owners == [o for o, chunks in enumerate(lengths) for n in chunks for _ in range(n)]


def test_pack_fills_batches_across_inputs() -> None:
    inputs, _ = _inputs([[5], [4], [3]])
    assert [sum(int(w.shape[0]) for _, w in b) for b in pack(inputs, 4, 1)] == [4, 4, 4]


@pytest.mark.parametrize(
    ("total", "cap", "layout", "sizes"),
    [(12, 4, 1, [4, 4, 4]), (12, 4, 2, [4, 4, 2, 2]), (3, 100, 2, [2, 1]), (10, 3, 2, [3, 3, 2, 2])],
)
def test_pack_shares_the_last_two_batches_out_between_the_streams(
    total: int, cap: int, layout: int, sizes: list[int]
) -> None:
    inputs, _ = _inputs([[total]])
    assert [sum(int(w.shape[0]) for _, w in b) for b in pack(inputs, cap, layout)] == sizes


def test_pack_pulls_inputs_only_as_the_batches_need_them() -> None:
    pulled: list[int] = []

    def lazy() -> object:
        for owner in range(10):
            pulled.append(owner)
            yield owner, [torch.zeros(4)]

    batches = pack(lazy(), 4, 1)  # type: ignore[arg-type]
    next(batches)
    assert pulled == [0]
