"""Thread safety: one SpeakerEmbedder shared by 8 threads, each making 50 mixed calls, gives
exactly the serial results, without deadlock or error."""

from __future__ import annotations

import concurrent.futures as cf
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from _signals import voice

from speakerembed import AudioError, Pipeline, SpeakerEmbedder

THREADS = 8
CALLS_PER_THREAD = 50
TIMEOUT_S = 900  # a deadlock fails the test instead of hanging the run


@pytest.fixture(scope="module")
def calls(tmp_path_factory: pytest.TempPathFactory) -> list[Callable[[SpeakerEmbedder], object]]:
    """A mix of calls: arrays at several rates, files, batches, speaker embeddings, other
    pipelines (including the cached torchaudio kernel), and a call that raises."""
    d = tmp_path_factory.mktemp("threads")
    wav = d / "clip.wav"
    sf.write(wav, voice(1.5, 22050, f0=170.0, seed=5), 22050, subtype="PCM_16")
    a16 = voice(1.0, 16000, f0=110.0, seed=1)
    a44 = voice(1.2, 44100, f0=200.0, seed=2)
    a8 = voice(1.0, 8000, f0=130.0, seed=3)
    stereo = np.stack([a16, voice(1.0, 16000, f0=240.0, seed=4)])
    silence = np.zeros(8000, np.float32)
    sinc = Pipeline(resampler="torchaudio")
    no_trim = Pipeline(top_db=None, order="trim_resample")
    return [
        lambda e: e.embed_utterances(a16, sample_rate=16000),
        lambda e: e.embed_utterances(a44, sample_rate=44100, pipeline=sinc),
        lambda e: e.embed_utterances([a8, wav], sample_rate=8000),
        lambda e: e.embed_speaker([wav, a16], sample_rate=16000),
        lambda e: e.embed_utterances(stereo, sample_rate=16000, pipeline=no_trim),
        lambda e: (
            e.embed_utterances(
                [a16, silence, a44], sample_rate=[16000, 16000, 44100], errors="skip"
            ).embeddings
        ),
        lambda e: e.embed_utterances((a16 * 32767).astype(np.int16), sample_rate=16000),
        lambda e: e.embed_utterances([silence], sample_rate=16000),  # raises
    ]


def _run(call: Callable[[SpeakerEmbedder], object], embedder: SpeakerEmbedder) -> bytes | str:
    try:
        out = call(embedder)
    except AudioError as exc:
        return f"error: {exc}"
    assert isinstance(out, np.ndarray)
    return out.tobytes()


@pytest.mark.slow
def test_shared_embedder_matches_serial_results(
    calls: list[Callable[[SpeakerEmbedder], object]], tmp_path: Path
) -> None:
    embedder = SpeakerEmbedder("resemblyzer", device="cpu")
    serial = [_run(c, embedder) for c in calls]
    assert serial[-1].startswith("error: input 0: is digital silence")  # type: ignore[union-attr]
    rng = np.random.default_rng(0)
    plans = [rng.integers(0, len(calls), CALLS_PER_THREAD).tolist() for _ in range(THREADS)]
    start = threading.Barrier(THREADS)

    def worker(plan: list[int]) -> list[bytes | str]:
        start.wait(timeout=60)  # all threads begin together, to maximise overlap
        return [_run(calls[i], embedder) for i in plan]

    pool = cf.ThreadPoolExecutor(THREADS)
    futures = [pool.submit(worker, plan) for plan in plans]
    _, not_done = cf.wait(futures, timeout=TIMEOUT_S)
    # On a deadlock, do not wait for the stuck threads: fail now.
    pool.shutdown(wait=not not_done, cancel_futures=True)
    assert not not_done, f"{len(not_done)} threads did not finish in {TIMEOUT_S} s: deadlock?"
    results = [f.result() for f in futures]
    for plan, got in zip(plans, results, strict=True):
        for i, out in zip(plan, got, strict=True):
            assert out == serial[i], f"call {i} differs between threads and serial"
    assert sum(len(r) for r in results) == THREADS * CALLS_PER_THREAD
