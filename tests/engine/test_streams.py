"""The CPU encoder run as one-thread streams (speakerembed._engine.streams)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from speakerembed import Pipeline, SpeakerEmbedder, SpeakerEmbedError
from speakerembed._engine import streams as _streams


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
            names.add(threading.current_thread().name)  # the streams pull their own batches
            # When a batch is pulled, at most `streams` are out: streams + 1 once it is pulled
            # (one more here while the consumer has its result but not yet in `got`).
            assert i - len(got) <= 3
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


def test_encode_in_order_raises_a_failing_pull_in_order_after_the_batches_before_it() -> None:
    def call(batch: torch.Tensor) -> tuple[torch.Tensor, float]:
        time.sleep(0.01 if int(batch[0]) == 0 else 0.0)  # the first batch finishes last
        return batch, 0.0

    pulls: list[int] = []

    def batches() -> object:
        for i in range(10):
            if i == 4:
                raise ValueError("input four is not audio")
            pulls.append(i)
            yield i, torch.tensor([i])

    got: list[int] = []

    def consume() -> None:
        for owner, _, _ in _streams.encode_in_order(call, batches(), 2):  # type: ignore[arg-type]
            got.append(owner)

    with pytest.raises(ValueError, match="input four"):
        consume()
    assert got == [0, 1, 2, 3]
    assert pulls == [0, 1, 2, 3]


def test_encode_in_order_stops_its_streams_when_the_consumer_stops() -> None:
    pulled: list[int] = []

    def batches() -> object:
        for i in range(1000):
            pulled.append(i)
            yield i, torch.tensor([i])

    it = _streams.encode_in_order(lambda b: (b, 0.0), batches(), 2)  # type: ignore[arg-type]
    assert [next(it)[0] for _ in range(3)] == [0, 1, 2]
    it.close()  # type: ignore[attr-defined]
    assert not [t for t in threading.enumerate() if t.name.startswith("speakerembed-encode")]
    assert len(pulled) <= 3 + 3  # what was yielded, and at most streams + 1 more


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


def test_streams_give_the_embeddings_of_one_call(
    tuned: Callable[..., SpeakerEmbedder], short_utterances: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    one = tuned(encoder_streams=1).embed_utterances(short_utterances)
    embedder = tuned(encoder_streams=3)
    calls: list[tuple[str, int]] = []
    real = embedder.encoder.embed_concurrently

    def spy(windows: torch.Tensor) -> torch.Tensor:
        calls.append((threading.current_thread().name, torch.get_num_threads()))
        return real(windows)

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


def _two_streams_recording_batches(
    tuned: Callable[..., SpeakerEmbedder], monkeypatch: pytest.MonkeyPatch
) -> tuple[SpeakerEmbedder, list[int]]:
    """An embedder on two streams, and the list that fills with each call's batch size."""
    # Batches are laid out for the machine's cores: two here, whatever the host has.
    embedder = tuned(encoder_streams=2, cores=2)
    sizes: list[int] = []
    real = embedder.encoder.embed_concurrently

    def spy(windows: torch.Tensor) -> torch.Tensor:
        sizes.append(int(windows.shape[0]))
        return real(windows)

    monkeypatch.setattr(embedder.encoder, "embed_concurrently", spy)
    return embedder, sizes


def test_streams_split_the_last_windows_between_them(
    tuned: Callable[..., SpeakerEmbedder], short_utterances: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    embedder, sizes = _two_streams_recording_batches(tuned, monkeypatch)
    embedder.embed_utterances(short_utterances[:2], pipeline=Pipeline(max_windows_per_batch=1000))
    # Fewer windows than one batch: shared out between the two streams.
    assert len(sizes) == 2
    assert abs(sizes[0] - sizes[1]) <= 1


def test_streams_share_out_the_last_two_batches(
    tuned: Callable[..., SpeakerEmbedder], short_utterances: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Full batches, then the last full one and the rest split evenly: no stream ends alone."""
    embedder, sizes = _two_streams_recording_batches(tuned, monkeypatch)
    pipe = Pipeline(max_windows_per_batch=3)
    got = embedder.embed_utterances(short_utterances, pipeline=pipe)
    monkeypatch.undo()
    one = tuned(encoder_streams=1, cores=2).embed_utterances(short_utterances, pipeline=pipe)
    np.testing.assert_allclose(got, one, atol=2e-6)
    assert len(sizes) >= 4, sizes
    small, full = sorted(sizes)[:2], sorted(sizes)[2:]
    assert set(full) == {3}
    assert abs(small[0] - small[1]) <= 1


def test_a_failing_stream_raises_the_library_error(
    tuned: Callable[..., SpeakerEmbedder], short_utterances: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(windows: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("out of memory")

    embedder = tuned(encoder_streams=2)
    monkeypatch.setattr(embedder.encoder, "embed_concurrently", broken)
    with pytest.raises(SpeakerEmbedError, match="the encoder failed on a batch") as info:
        embedder.embed_utterances(short_utterances)
    assert info.value.stage == "encode"
    assert isinstance(info.value.__cause__, RuntimeError)


def test_on_many_cores_a_quarter_prepares_beside_the_streams(
    tuned: Callable[..., SpeakerEmbedder], short_utterances: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rule's table is tests/engine/test_schedule.py; here it runs, laid out for 16 cores."""
    one = tuned(encoder_streams=1).embed_utterances(short_utterances)
    embedder = tuned(encoder_streams=2, cores=16)
    # A prefetch thread two bursts deep, bursts on four threads, the caller on one torch thread.
    s = embedder.engine.schedule(len(short_utterances))
    assert (s.prefetch_depth, s.prepare_threads, s.encoder_threads) == (8, min(4, len(short_utterances)), 1)
    preparing: set[str] = set()
    real = embedder.engine.preparer.prepare

    def spy(*args: object, **kwargs: object) -> object:
        preparing.add(threading.current_thread().name)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(embedder.engine.preparer, "prepare", spy)
    before = torch.get_num_threads()
    streamed = embedder.embed_utterances(short_utterances)
    assert torch.get_num_threads() == before
    assert preparing
    assert all(name.startswith("speakerembed-prepare") for name in preparing), preparing
    # Laid out for 16 cores instead of 2: other batches, so the LSTM rounds differently.
    np.testing.assert_allclose(streamed, one, atol=1e-5)


def test_one_input_is_shared_out_between_the_streams(
    tuned: Callable[..., SpeakerEmbedder], short_utterances: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A single utterance's windows, laid out for four cores, run on the streams side by side."""
    single = tuned(encoder_streams=1, cores=4)
    one = single.embed_utterances(short_utterances[0])
    embedder = tuned(encoder_streams=4, cores=4)
    calls: list[tuple[str, int]] = []
    real = embedder.encoder.embed_concurrently

    def spy(windows: torch.Tensor) -> torch.Tensor:
        calls.append((threading.current_thread().name, int(windows.shape[0])))
        return real(windows)

    monkeypatch.setattr(embedder.encoder, "embed_concurrently", spy)
    # The caller prepares it on one torch thread: idle OpenMP threads would spin against the
    # streams. Without streams, its torch threads stay as they are.
    s = embedder.engine.schedule(1)
    assert (s.prefetch_depth, s.prepare_threads, s.encoder_threads) == (0, 1, 1)
    s = single.engine.schedule(1)
    assert (s.prefetch_depth, s.prepare_threads, s.encoder_threads) == (0, 1, None)
    before = torch.get_num_threads()
    streamed = embedder.embed_utterances(short_utterances[0])
    assert torch.get_num_threads() == before
    n_windows = sum(n for _, n in calls)
    assert n_windows >= 2, calls
    assert len(calls) == min(4, n_windows)
    assert len({name for name, _ in calls}) >= 2
    assert all(name.startswith("speakerembed-encode") for name, _ in calls)
    np.testing.assert_allclose(streamed, one, atol=2e-6)


def test_a_lone_short_input_runs_as_one_call_on_the_callers_threads(
    tuned: Callable[..., SpeakerEmbedder], short_utterances: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Laid out for two cores, one short utterance is one batch in one call, not two streams."""
    embedder = tuned(cores=2, torch_threads=2)
    calls: list[tuple[str, int, int]] = []
    real = embedder.encoder

    class Spy:
        device = real.device
        concurrent_calls = real.concurrent_calls

        def __call__(self, windows: torch.Tensor) -> torch.Tensor:
            calls.append(("call", int(windows.shape[0]), torch.get_num_threads()))
            return real(windows)

        def embed_concurrently(self, windows: torch.Tensor) -> torch.Tensor:
            calls.append(("stream", int(windows.shape[0]), torch.get_num_threads()))
            return real.embed_concurrently(windows)

    monkeypatch.setattr(embedder.engine, "encoder", Spy())
    before = torch.get_num_threads()
    one = embedder.embed_utterances(short_utterances[0])
    assert len(calls) == 1, calls
    kind, n, threads = calls[0]
    assert kind == "call"
    assert n >= 2  # every window of it, in that one batch
    assert threads == min(before, 2)  # the caller's torch threads, at most two
    # Two utterances still share their windows out between the streams.
    calls.clear()
    pair = embedder.embed_utterances(short_utterances[:2])
    assert {kind for kind, _, _ in calls} == {"stream"}
    np.testing.assert_allclose(pair[0], one[0], atol=2e-6)


def test_a_lone_long_input_keeps_the_streams(
    tuned: Callable[..., SpeakerEmbedder], short_utterances: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """More windows than one batch holds: the streams run them, as for many inputs."""
    import soundfile as sf

    from speakerembed import Pipeline

    embedder = tuned(cores=2, torch_threads=2)
    pipe = Pipeline(max_windows_per_batch=4)
    wav, sr = sf.read(str(short_utterances[0]), dtype="float32")
    kinds: list[str] = []
    real = embedder.encoder

    class Spy:
        device = real.device
        concurrent_calls = real.concurrent_calls

        def __call__(self, windows: torch.Tensor) -> torch.Tensor:
            kinds.append("call")
            return real(windows)

        def embed_concurrently(self, windows: torch.Tensor) -> torch.Tensor:
            kinds.append("stream")
            return real.embed_concurrently(windows)

    monkeypatch.setattr(embedder.engine, "encoder", Spy())
    embedder.embed_utterances(np.concatenate([wav, wav, wav]), sample_rate=sr, pipeline=pipe)
    assert len(kinds) > 1
    assert set(kinds) == {"stream"}
