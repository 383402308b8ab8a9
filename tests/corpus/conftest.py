"""The corpus the corpus tests embed, built once per test module.

18 good files in nested folders, in several formats and sample rates, 2 bad ones, and files a
scan must skip. References are :meth:`SpeakerEmbedder.embed_utterances` on each good file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from _corpus_data import AUDIO, SPEAKERS, _resampled

from speakerembed import SpeakerEmbedder
from speakerembed.corpus.sources import scan_folder


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """18 good files in nested folders (WAV 16/48 kHz, FLAC 22.05 kHz, Ogg 44.1 kHz), 2 bad ones,
    and files a scan must skip (hidden, not audio)."""
    root = tmp_path_factory.mktemp("corpus")
    formats = [
        ("wav", 16000, "PCM_16"),
        ("flac", 22050, "PCM_16"),
        ("ogg", 44100, "VORBIS"),
        ("wav", 48000, "FLOAT"),
    ]
    k = 0
    for spk in SPEAKERS:
        for i in (1, 2, 3):
            wav, sr = sf.read(AUDIO / f"{spk}_{i}.wav", dtype="float32")
            for j in range(2):
                ext, rate, subtype = formats[(k + j) % len(formats)]
                folder = root / spk / ("a" if j == 0 else "b/deeper")
                folder.mkdir(parents=True, exist_ok=True)
                sf.write(folder / f"{spk}_{i}.{ext}", _resampled(wav, sr, rate), rate, subtype=subtype)
            k += 1
    (root / "bad").mkdir()
    (root / "bad" / "text.wav").write_bytes(b"this is not audio at all\n" * 20)
    sf.write(root / "bad" / "silent.flac", np.zeros(16000, np.float32), 16000)
    (root / "alice" / "notes.txt").write_text("not audio\n")
    (root / "alice" / ".hidden.wav").write_bytes((AUDIO / "alice_1.wav").read_bytes())
    (root / ".cache").mkdir()
    (root / ".cache" / "x.wav").write_bytes((AUDIO / "alice_1.wav").read_bytes())
    return root


@pytest.fixture(scope="module")
def references(corpus: Path, embedder: SpeakerEmbedder) -> dict[str, np.ndarray]:
    """embed_utterances of every good file of the corpus (default pipeline), by path."""
    paths = [r.path for r in scan_folder(corpus) if not r.id.startswith("bad/")]
    return dict(zip(paths, embedder.embed_utterances(paths), strict=True))
