"""A file on the common path is opened once by libsndfile: its header decides, its handle is read."""

from __future__ import annotations

import builtins
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from speakerembed import Pipeline, SpeakerEmbedder
from speakerembed.stages.load import open_file, read_file

ALICE = Path(__file__).resolve().parents[2] / "examples" / "audio" / "alice_1.wav"


@pytest.fixture(params=["wav", "flac"])
def clip(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    if request.param == "wav":
        return ALICE
    data, rate = sf.read(str(ALICE), dtype="int16")
    path = tmp_path / "alice_1.flac"
    sf.write(str(path), data, rate)
    return path


class _Opens:
    """Counts the SoundFile constructions, sf.info/sf.read calls and Python opens of one path."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, target: Path) -> None:
        self.soundfiles: list[sf.SoundFile] = []
        self.calls = {"info": 0, "read": 0, "open": 0}
        real_init, real_open = sf.SoundFile.__init__, builtins.open

        def init(handle: sf.SoundFile, *args: Any, **kwargs: Any) -> None:
            self.soundfiles.append(handle)
            real_init(handle, *args, **kwargs)

        def raw_open(file: Any, *args: Any, **kwargs: Any) -> Any:
            if isinstance(file, (str, os.PathLike)) and os.fspath(file) == str(target):
                self.calls["open"] += 1
            return real_open(file, *args, **kwargs)

        def counted(name: str) -> Any:
            real = getattr(sf, name)

            def call(*args: Any, **kwargs: Any) -> Any:
                self.calls[name] += 1
                return real(*args, **kwargs)

            return call

        monkeypatch.setattr(sf.SoundFile, "__init__", init)
        monkeypatch.setattr(builtins, "open", raw_open)
        for name in ("info", "read"):
            monkeypatch.setattr(sf, name, counted(name))


@pytest.mark.parametrize("stream_min_duration_s", [600.0, None], ids=["stream-check", "no-stream"])
def test_a_short_file_is_opened_once(
    embedder: SpeakerEmbedder,
    clip: Path,
    stream_min_duration_s: float | None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The reference: the same audio decoded independently and embedded from memory.
    data, rate = sf.read(str(clip), dtype="float32")
    pipe = Pipeline(stream_min_duration_s=stream_min_duration_s)
    expected = embedder.embed_utterances(data, sample_rate=rate, pipeline=pipe)

    opens = _Opens(monkeypatch, clip)
    got = embedder.embed_utterances([clip], pipeline=pipe)
    monkeypatch.undo()

    assert len(opens.soundfiles) == 1, f"libsndfile opened {clip.name} {len(opens.soundfiles)} times"
    assert opens.calls == {"info": 0, "read": 0, "open": 1}  # the one raw open reads the 64-byte head
    assert all(f.closed for f in opens.soundfiles), "a SoundFile was left open"
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)


def test_an_opened_file_reads_like_its_path_and_again_once_closed() -> None:
    expected, rate = sf.read(str(ALICE), dtype="float32", always_2d=True)
    opened = open_file(ALICE, "alice")
    assert os.fspath(opened) == str(ALICE)
    assert (opened.sample_rate, opened.frames) == (rate, expected.shape[0])
    first, sr1 = read_file(opened)
    assert opened.closed
    second, sr2 = read_file(opened)  # used up: it opens the path again
    assert sr1 == sr2 == rate
    np.testing.assert_array_equal(first, expected)
    np.testing.assert_array_equal(second, expected)
