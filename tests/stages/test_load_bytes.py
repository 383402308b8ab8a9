"""Bytes and binary file objects in: decoded in memory with the file loader's rules and errors."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from speakerembed import AudioError, InputTooLongError, SpeakerEmbedder
from speakerembed.stages.load import is_encoded_audio, load_audio, read_bytes

AUDIO = Path(__file__).resolve().parents[2] / "examples" / "audio"


def test_bytes_decode_as_the_file_does() -> None:
    path = AUDIO / "alice_1.wav"
    from_file, sr_file = load_audio(path)
    for item in (path.read_bytes(), bytearray(path.read_bytes()), io.BytesIO(path.read_bytes())):
        wav, sr = load_audio(item)
        assert sr == sr_file
        np.testing.assert_array_equal(wav, from_file)


def test_embeddings_of_bytes_equal_the_files(embedder: SpeakerEmbedder, speech: Path) -> None:
    files = sorted((speech / "librispeech").rglob("*.flac"))[:2]
    want = embedder.embed_utterances(files)
    with open(files[1], "rb") as handle:
        got = embedder.embed_utterances([files[0].read_bytes(), handle])
    assert np.allclose(np.sum(want * got, axis=1), 1.0, atol=1e-6)
    assert embedder.embed_utterances(files[0].read_bytes()).shape == (1, 256)


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"", "empty (0 bytes)"),
        (b"this is not audio at all\n" * 20, "it is a text file"),
        (b"\x89PNG\r\n\x1a\n" + bytes(200), "it is an image"),
    ],
)
def test_bad_bytes_get_the_loaders_errors(data: bytes, words: str) -> None:
    with pytest.raises(AudioError, match="input 3") as info:
        read_bytes(data, source="input 3")
    assert words in str(info.value)


def test_text_mode_file_objects_are_refused() -> None:
    with pytest.raises(AudioError, match="binary mode"):
        load_audio(io.StringIO("RIFF"))


def test_too_long_bytes_are_refused_before_decoding() -> None:
    data = (AUDIO / "alice_1.wav").read_bytes()
    with pytest.raises(InputTooLongError, match=r"max_duration_s=0\.5"):
        read_bytes(data, max_duration_s=0.5)


def test_what_counts_as_encoded_audio() -> None:
    for yes in (b"x", io.BytesIO(b"x"), memoryview(b"x")):
        assert is_encoded_audio(yes)
    for no in ("a.wav", AUDIO, np.zeros(3)):
        assert not is_encoded_audio(no)
