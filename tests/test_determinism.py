"""Determinism: the same input and configuration give bitwise-identical output on the CPU,
across calls and across processes."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from _signals import voice

from speakerembed import Pipeline, SpeakerEmbedder

SR = 16_000
TESTS = Path(__file__).resolve().parent

_SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np
    sys.path.insert(0, sys.argv[1])
    from _signals import voice
    from speakerembed import Pipeline, SpeakerEmbedder

    import torch

    torch.set_num_threads(2)  # the configuration includes torch's thread count (1 or more)
    e = SpeakerEmbedder("resemblyzer", device="cpu")
    clips = [voice(2.0, 16000, f0=110.0, seed=1), voice(3.0, 44100, f0=180.0, seed=2)]
    rows = e.embed_utterances(clips, sample_rate=[16000, 44100])
    trimmed = e.embed_utterances(clips, sample_rate=[16000, 44100], pipeline=Pipeline(order="trim_resample"))
    spk = e.embed_speaker([sys.argv[2]])
    np.save(sys.argv[3], np.concatenate([rows, trimmed, spk[None]]))
    """
)


@pytest.fixture(scope="module")
def wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("det") / "clip.wav"
    sf.write(path, voice(2.5, 22050, f0=140.0, seed=3), 22050, subtype="PCM_16")
    return path


def _expected(embedder: SpeakerEmbedder, wav: Path) -> np.ndarray:
    clips = [voice(2.0, 16000, f0=110.0, seed=1), voice(3.0, 44100, f0=180.0, seed=2)]
    rows = embedder.embed_utterances(clips, sample_rate=[16000, 44100])
    trimmed = embedder.embed_utterances(
        clips, sample_rate=[16000, 44100], pipeline=Pipeline(order="trim_resample")
    )
    spk = embedder.embed_speaker([wav])
    return np.concatenate([rows, trimmed, spk[None]])


@pytest.mark.parametrize("resampler", ["soxr_hq", "polyphase", "torchaudio"])
def test_repeated_calls_are_bitwise_identical(embedder: SpeakerEmbedder, resampler: str) -> None:
    clip = voice(2.0, 48000, f0=150.0, seed=4)
    pipe = Pipeline(resampler=resampler)  # type: ignore[arg-type]
    first = embedder.embed_utterances([clip, clip[::2]], sample_rate=[48000, 24000], pipeline=pipe)
    for _ in range(3):
        again = embedder.embed_utterances([clip, clip[::2]], sample_rate=[48000, 24000], pipeline=pipe)
        assert again.tobytes() == first.tobytes()


def test_a_fresh_embedder_gives_the_same_bits(embedder: SpeakerEmbedder, wav: Path) -> None:
    other = SpeakerEmbedder("resemblyzer", device="cpu")
    assert other.embed_speaker(wav).tobytes() == embedder.embed_speaker(wav).tobytes()


def test_inputs_are_not_modified(embedder: SpeakerEmbedder) -> None:
    clip = voice(2.0, SR)
    before = clip.copy()
    embedder.embed_utterances([clip, np.stack([clip, clip])], sample_rate=SR)
    assert clip.tobytes() == before.tobytes()


@pytest.mark.slow
def test_across_processes(embedder: SpeakerEmbedder, wav: Path, tmp_path: Path) -> None:
    """Two fresh interpreters, and this one, agree to the bit."""
    outputs = []
    for i in range(2):
        out = tmp_path / f"run{i}.npy"
        subprocess.run(
            [sys.executable, "-c", _SCRIPT, str(TESTS), str(wav), str(out)], check=True, timeout=300
        )
        outputs.append(np.load(out))
    import torch

    saved = torch.get_num_threads()
    torch.set_num_threads(2)  # as in the fresh interpreters (an earlier test may have changed it)
    try:
        here = _expected(embedder, wav)
    finally:
        torch.set_num_threads(saved)
    assert outputs[0].shape == here.shape == (5, 256)
    assert outputs[0].tobytes() == outputs[1].tobytes()
    assert outputs[0].tobytes() == here.tobytes()


def test_a_lone_input_gives_the_same_bits_on_two_threads_or_more(embedder: SpeakerEmbedder) -> None:
    """A lone short input is one batch on at most two threads: more threads do not show."""
    import torch

    clip = voice(10.0, 44100, f0=130.0, seed=5)
    saved = torch.get_num_threads()
    try:
        out = {}
        for n in (1, 2, 4):
            torch.set_num_threads(n)
            out[n] = embedder.embed_utterances(clip, sample_rate=44100)
    finally:
        torch.set_num_threads(saved)
    assert out[2].tobytes() == out[4].tobytes()
    # On one thread the same batch can round differently in the last bits.
    np.testing.assert_allclose(out[1], out[2], atol=1e-6)
