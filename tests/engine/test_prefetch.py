"""Preparation beside the encoder: the prefetch thread, bursts, the many-core split (speakerembed._engine)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from speakerembed import AudioError, SpeakerEmbedder


def _read(path: Path) -> np.ndarray:
    x, sr = sf.read(str(path), dtype="float32")
    assert sr == 16_000
    return x


def test_prefetch_is_bitwise_deterministic(
    tuned: Callable[..., SpeakerEmbedder], short_utterances: list[Path]
) -> None:
    import soxr

    wavs = [soxr.resample(_read(p), 16_000, 44_100).astype(np.float32) for p in short_utterances]
    ahead = tuned(prefetch_depth=2)
    first = ahead.embed_utterances(wavs, sample_rate=44_100)
    again = ahead.embed_utterances(wavs, sample_rate=44_100)
    serial = tuned(prefetch_depth=0).embed_utterances(wavs, sample_rate=44_100)
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(first, serial)


@pytest.mark.parametrize(("depth", "threads"), [(2, 1), (0, 2)], ids=["prefetch", "bursts"])
def test_overlapped_preparation_reports_the_failing_input(
    tuned: Callable[..., SpeakerEmbedder],
    short_utterances: list[Path],
    depth: int,
    threads: int,
) -> None:
    embedder = tuned(prefetch_depth=depth, prepare_threads=threads)
    inputs: list[object] = [*short_utterances[:2], np.zeros(16_000, np.float32), short_utterances[2]]
    with pytest.raises(AudioError, match="input 2") as info:
        embedder.embed_utterances(inputs, sample_rate=16_000)  # type: ignore[arg-type]
    assert "silence" in str(info.value)
    result = embedder.embed_utterances(inputs, sample_rate=16_000, errors="skip")  # type: ignore[arg-type]
    assert result.indices.tolist() == [0, 1, 3]
    assert [f.index for f in result.failures] == [2]
    expected = embedder.embed_utterances([inputs[i] for i in (0, 1, 3)], sample_rate=16_000)  # type: ignore[arg-type]
    np.testing.assert_array_equal(result.embeddings, expected)


def test_prefetch_stops_when_the_consumer_stops() -> None:
    import threading

    from speakerembed._engine.prefetch import prefetch

    produced: list[int] = []

    def source() -> object:
        for i in range(1000):
            produced.append(i)
            yield i

    it = prefetch(source(), depth=2)  # type: ignore[arg-type]
    assert [next(it) for _ in range(3)] == [0, 1, 2]
    it.close()  # type: ignore[attr-defined]
    for t in threading.enumerate():
        if t.name == "speakerembed-prefetch":
            t.join(timeout=5)
    assert len(produced) < 10


def test_burst_preparation_is_bitwise_deterministic(
    tuned: Callable[..., SpeakerEmbedder], short_utterances: list[Path]
) -> None:
    import soxr

    wavs = [soxr.resample(_read(p), 16_000, 44_100).astype(np.float32) for p in short_utterances]
    inputs: list[object] = [*wavs, *short_utterances]  # arrays and files, as one call
    rates = [44_100] * len(wavs) + [None] * len(short_utterances)
    embedder = tuned(prefetch_depth=0, prepare_threads=3, encoder_streams=1)
    s = embedder.engine.schedule(len(inputs))
    assert (s.prefetch_depth, s.prepare_threads, s.encoder_threads) == (0, 3, None)
    threads_before = torch.get_num_threads()
    bursts = embedder.embed_utterances(inputs, sample_rate=rates)  # type: ignore[arg-type]
    # The preparing threads' one torch thread is theirs; the encoder's thread keeps its own.
    assert torch.get_num_threads() == threads_before
    serial = tuned(prefetch_depth=0, prepare_threads=1, encoder_streams=1).embed_utterances(
        inputs,
        sample_rate=rates,  # type: ignore[arg-type]
    )
    np.testing.assert_array_equal(bursts, serial)


def test_many_core_plan_runs_the_encoder_on_fewer_threads_for_the_call(
    embedder: SpeakerEmbedder,
    tuned: Callable[..., SpeakerEmbedder],
    short_utterances: list[Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Same embeddings; the encoder sees the split's threads; the caller's count comes back."""
    from speakerembed._engine import prefetch as _prefetch

    expected = embedder.embed_utterances(short_utterances)
    # A 16-core machine whose torch uses every core, for an encoder that cannot stream.
    many = tuned(cores=16, torch_threads=16)
    seen: list[int] = []
    real = many.engine.encoder

    class _Spy:
        device = real.device

        def __call__(self, windows: torch.Tensor) -> torch.Tensor:
            seen.append(torch.get_num_threads())
            return real(windows)

    before = torch.get_num_threads()
    monkeypatch.setattr(many.engine, "encoder", _Spy())
    s = many.engine.schedule(len(short_utterances))
    assert (s.streams, s.prefetch_depth, s.prepare_threads, s.encoder_threads) == (1, 8, 4, 12)
    got = many.embed_utterances(short_utterances)
    assert seen
    assert set(seen) == {12}
    assert torch.get_num_threads() == before
    np.testing.assert_allclose(got, expected, atol=1e-5)
    with _prefetch.torch_threads(None):
        assert torch.get_num_threads() == before


def test_map_in_bursts_keeps_order_and_waits_for_the_consumer() -> None:
    from speakerembed._engine.prefetch import map_in_bursts

    started: list[int] = []

    def square(i: int) -> int:
        started.append(i)
        if i == 7:
            raise ValueError("seven")
        return i * i

    it = map_in_bursts(square, range(20), workers=2, burst=3)
    assert [next(it) for _ in range(4)] == [0, 1, 4, 9]
    # Two bursts asked for, so six items computed and no more: nothing runs ahead.
    assert sorted(started) == list(range(6))
    assert [next(it), next(it), next(it)] == [16, 25, 36]
    with pytest.raises(ValueError, match="seven"):
        next(it)
    assert sorted(started) == list(range(9))
