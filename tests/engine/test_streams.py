"""The CPU encoder run as one-thread streams (speakerembed._engine.streams)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from speakerembed import Pipeline, SpeakerEmbedder, SpeakerEmbedError
from speakerembed._engine import streams as _streams
from speakerembed.stages.encoder import ModuleEncoder


@given(st.lists(st.integers(1, 40), min_size=1, max_size=12), st.integers(1, 6))
def test_split_rows_balances_and_keeps_order(lengths: list[int], parts: int) -> None:
    pending = []
    start = 0
    for owner, n in enumerate(lengths):
        pending.append((owner, torch.arange(start, start + n)))
        start += n
    pieces = _streams.split_rows(pending, parts)
    sizes = [sum(int(rows.shape[0]) for _, rows in piece) for piece in pieces]
    assert len(pieces) == min(parts, start)
    assert max(sizes) - min(sizes) <= 1
    rows = torch.cat([rows for piece in pieces for _, rows in piece])
    assert rows.tolist() == list(range(start))
    owners = [owner for piece in pieces for owner, rows in piece for _ in range(rows.shape[0])]
    assert owners == [owner for owner, n in enumerate(lengths) for _ in range(n)]


def test_encode_in_order_keeps_order_bounds_what_is_in_flight_and_uses_one_thread() -> None:
    lock = threading.Lock()
    running = 0
    most = 0
    pulled: list[int] = []
    threads_seen: set[int] = set()
    names: set[str] = set()

    def call(batch: torch.Tensor) -> tuple[torch.Tensor, float]:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
            threads_seen.add(torch.get_num_threads())
            names.add(threading.current_thread().name)
        time.sleep(0.002 * (5 - int(batch[0]) % 5))  # later batches finish first
        with lock:
            running -= 1
        return batch * 2, 0.0

    def batches() -> object:
        for i in range(20):
            pulled.append(i)
            # When a batch is pulled, at most `streams` are in flight: streams + 1 once it is in.
            assert i - len(got) <= 2
            yield i, torch.tensor([i])

    got: list[int] = []
    for owner, out, _ in _streams.encode_in_order(call, batches(), 2):  # type: ignore[arg-type]
        assert int(out[0]) == 2 * owner
        got.append(owner)
    assert got == list(range(20))
    assert most == 2
    assert threads_seen == {1}
    assert all(name.startswith("speakerembed-encode") for name in names)


def test_encode_in_order_raises_at_the_failing_batch_and_stops() -> None:
    calls: list[int] = []

    def call(batch: torch.Tensor) -> tuple[torch.Tensor, float]:
        calls.append(int(batch[0]))
        if int(batch[0]) == 3:
            raise RuntimeError("batch three")
        return batch, 0.0

    got: list[int] = []

    def consume() -> None:
        for owner, _, _ in _streams.encode_in_order(call, ((i, torch.tensor([i])) for i in range(50)), 2):
            got.append(owner)

    with pytest.raises(RuntimeError, match="batch three"):
        consume()
    assert got == [0, 1, 2]
    assert max(calls) <= 6  # batches after the failure are not all run


def test_one_stream_runs_in_the_callers_thread() -> None:
    seen: list[str] = []

    def call(batch: torch.Tensor) -> tuple[torch.Tensor, float]:
        seen.append(threading.current_thread().name)
        return batch, 0.0

    list(_streams.encode_in_order(call, ((i, torch.tensor([i])) for i in range(3)), 1))
    assert seen == [threading.current_thread().name] * 3


class _Own(torch.nn.Module):
    """A module of the caller's own: it keeps state between calls."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = torch.nn.Linear(40, 8)
        self.calls = 0

    def forward(self, mels: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        out: torch.Tensor = torch.nn.functional.normalize(self.proj(mels.mean(dim=1)), dim=1)
        return out


def test_streams_follow_torch_threads_on_a_cpu_only(
    embedder: SpeakerEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = torch.get_num_threads()
    encoder = embedder.encoder
    try:
        for cores, threads, expected in [
            (2, 2, 2),
            (2, 1, 1),
            (8, 8, 8),
            (8, 4, 4),
            (4, 8, 4),
            (16, 16, 16),
            (64, 32, 32),
        ]:
            monkeypatch.setattr(_streams, "usable_cores", lambda c=cores: c)
            torch.set_num_threads(threads)
            assert _streams.encoder_streams(encoder, "cpu") == expected, (cores, threads)
            assert _streams.encoder_streams(encoder, "cuda") == 1
            # An encoder of the caller's own may not be safe to call from several threads.
            assert _streams.encoder_streams(lambda w: w, "cpu") == 1
            assert _streams.encoder_streams(ModuleEncoder(_Own()), "cpu") == 1
    finally:
        torch.set_num_threads(before)


def test_streams_give_the_embeddings_of_one_call(
    embedder: SpeakerEmbedder, short_utterances: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(SpeakerEmbedder, "_encoder_streams", 1)
    one = embedder.embed_utterances(short_utterances)
    calls: list[tuple[str, int]] = []
    real = embedder.encoder.embed_concurrently

    def spy(windows: torch.Tensor) -> torch.Tensor:
        calls.append((threading.current_thread().name, torch.get_num_threads()))
        return real(windows)

    monkeypatch.setattr(SpeakerEmbedder, "_encoder_streams", 3)
    monkeypatch.setattr(embedder.encoder, "embed_concurrently", spy)
    before = torch.get_num_threads()
    streamed = embedder.embed_utterances(short_utterances)
    assert torch.get_num_threads() == before
    assert len({name for name, _ in calls}) >= 2
    assert {n for _, n in calls} == {1}
    # The same batches (laid out alike however many streams run); a few ops other than the
    # LSTM round differently on one thread than on several.
    np.testing.assert_allclose(streamed, one, atol=2e-6)
    again = embedder.embed_utterances(short_utterances)
    np.testing.assert_array_equal(streamed, again)


def _two_streams_recording_batches(embedder: SpeakerEmbedder, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Run ``embedder`` on two streams; the returned list fills with each call's batch size."""
    sizes: list[int] = []
    real = embedder.encoder.embed_concurrently

    def spy(windows: torch.Tensor) -> torch.Tensor:
        sizes.append(int(windows.shape[0]))
        return real(windows)

    monkeypatch.setattr(SpeakerEmbedder, "_encoder_streams", 2)
    monkeypatch.setattr(embedder.encoder, "embed_concurrently", spy)
    # Batches are laid out for the machine's cores: two here, whatever the host has.
    monkeypatch.setattr(_streams, "usable_cores", lambda: 2)
    return sizes


def test_streams_split_the_last_windows_between_them(
    embedder: SpeakerEmbedder, short_utterances: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    sizes = _two_streams_recording_batches(embedder, monkeypatch)
    embedder.embed_utterances(short_utterances[:2], pipeline=Pipeline(max_windows_per_batch=1000))
    # Fewer windows than one batch: shared out between the two streams.
    assert len(sizes) == 2
    assert abs(sizes[0] - sizes[1]) <= 1


def test_streams_share_out_the_last_two_batches(
    embedder: SpeakerEmbedder, short_utterances: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Full batches, then the last full one and the rest split evenly: no stream ends alone."""
    sizes = _two_streams_recording_batches(embedder, monkeypatch)
    pipe = Pipeline(max_windows_per_batch=3)
    got = embedder.embed_utterances(short_utterances, pipeline=pipe)
    monkeypatch.undo()
    monkeypatch.setattr(SpeakerEmbedder, "_encoder_streams", 1)
    monkeypatch.setattr(_streams, "usable_cores", lambda: 2)
    one = embedder.embed_utterances(short_utterances, pipeline=pipe)
    np.testing.assert_allclose(got, one, atol=2e-6)
    assert len(sizes) >= 4, sizes
    small, full = sorted(sizes)[:2], sorted(sizes)[2:]
    assert set(full) == {3}
    assert abs(small[0] - small[1]) <= 1


def test_a_failing_stream_raises_the_library_error(
    embedder: SpeakerEmbedder, short_utterances: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(windows: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("out of memory")

    monkeypatch.setattr(SpeakerEmbedder, "_encoder_streams", 2)
    monkeypatch.setattr(embedder.encoder, "embed_concurrently", broken)
    with pytest.raises(SpeakerEmbedError, match="the encoder failed on a batch") as info:
        embedder.embed_utterances(short_utterances)
    assert info.value.stage == "encode"
    assert isinstance(info.value.__cause__, RuntimeError)


def test_on_many_cores_a_quarter_prepares_beside_the_streams(
    embedder: SpeakerEmbedder, short_utterances: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    for cores, expected in [(1, 1), (2, 1), (7, 1), (8, 2), (15, 3), (16, 4), (24, 6), (64, 8), (256, 8)]:
        monkeypatch.setattr(_streams, "usable_cores", lambda c=cores: c)
        assert _streams.preparing_threads() == expected, cores
    monkeypatch.setattr(SpeakerEmbedder, "_encoder_streams", 1)
    one = embedder.embed_utterances(short_utterances)
    monkeypatch.undo()
    monkeypatch.setattr(_streams, "usable_cores", lambda: 16)
    monkeypatch.setattr(SpeakerEmbedder, "_encoder_streams", 2)
    # A prefetch thread two bursts deep, bursts on four threads, the caller on one torch thread.
    assert embedder._preparation_plan(len(short_utterances), streams=2) == (
        8,
        min(4, len(short_utterances)),
        1,
    )
    preparing: set[str] = set()
    real = embedder._prepare

    def spy(*args: object, **kwargs: object) -> object:
        preparing.add(threading.current_thread().name)
        return real(*args, **kwargs)

    monkeypatch.setattr(embedder, "_prepare", spy)
    before = torch.get_num_threads()
    streamed = embedder.embed_utterances(short_utterances)
    assert torch.get_num_threads() == before
    assert preparing
    assert all(name.startswith("speakerembed-prepare") for name in preparing), preparing
    # Laid out for 16 cores instead of 2: other batches, so the LSTM rounds differently.
    np.testing.assert_allclose(streamed, one, atol=1e-5)


def test_one_input_is_shared_out_between_the_streams(
    embedder: SpeakerEmbedder, short_utterances: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A single utterance's windows, laid out for four cores, run on the streams side by side."""
    monkeypatch.setattr(_streams, "usable_cores", lambda: 4)
    monkeypatch.setattr(SpeakerEmbedder, "_encoder_streams", 1)
    one = embedder.embed_utterances(short_utterances[0])
    calls: list[tuple[str, int]] = []
    real = embedder.encoder.embed_concurrently

    def spy(windows: torch.Tensor) -> torch.Tensor:
        calls.append((threading.current_thread().name, int(windows.shape[0])))
        return real(windows)

    monkeypatch.setattr(SpeakerEmbedder, "_encoder_streams", 4)
    monkeypatch.setattr(embedder.encoder, "embed_concurrently", spy)
    # The caller prepares it on one torch thread: idle OpenMP threads would spin against the
    # streams. Without streams, its torch threads stay as they are.
    assert embedder._preparation_plan(1, streams=4) == (0, 1, 1)
    assert embedder._preparation_plan(1, streams=1) == (0, 1, None)
    before = torch.get_num_threads()
    streamed = embedder.embed_utterances(short_utterances[0])
    assert torch.get_num_threads() == before
    n_windows = sum(n for _, n in calls)
    assert n_windows >= 2, calls
    assert len(calls) == min(4, n_windows)
    assert len({name for name, _ in calls}) >= 2
    assert all(name.startswith("speakerembed-encode") for name, _ in calls)
    np.testing.assert_allclose(streamed, one, atol=2e-6)
