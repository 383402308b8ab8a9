"""Shared fixtures: the real speech in ``../shared/data/speech``, and one embedder per session.

The speech data lives beside the project (``<root>/../shared/data/speech``) and is never copied
into it. Tests that need it skip, with a reason that says where it was looked for, when it is
absent. Set ``SPEAKEREMBED_SPEECH_DIR`` to use another copy.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import hypothesis
import numpy as np
import pytest
import soundfile as sf
from _corpus_data import AUDIO, SPEAKERS, _resampled

if TYPE_CHECKING:
    import numpy.typing as npt

    from speakerembed import SpeakerEmbedder

# Hypothesis profiles, registered here because --hypothesis-profile is read before test modules
# are imported: "ci" is what CI runs (tests/test_fuzz.py's main property: 500 examples), "long"
# is `nox -s fuzz` (10,000). Neither is loaded unless asked for.
hypothesis.settings.register_profile("ci", max_examples=500, deadline=None)
hypothesis.settings.register_profile("long", max_examples=10_000, deadline=None)

ROOT = Path(__file__).resolve().parents[1]
SPEECH_DIR = Path(os.environ.get("SPEAKEREMBED_SPEECH_DIR", ROOT.parent / "shared" / "data" / "speech"))
EXAMPLE_AUDIO = ROOT / "examples" / "audio"


def speech_dir() -> Path:
    """The shared speech directory, or a skip when it is absent."""
    if not (SPEECH_DIR / "librispeech").is_dir():
        pytest.skip(
            f"real speech not found at {SPEECH_DIR} (the project's sibling ../shared/data/speech); "
            "set SPEAKEREMBED_SPEECH_DIR to a copy to run this test"
        )
    return SPEECH_DIR


@pytest.fixture(scope="session")
def speech() -> Path:
    """``../shared/data/speech``; skips the test when it is absent."""
    return speech_dir()


@pytest.fixture(scope="session")
def librispeech(speech: Path) -> dict[str, list[Path]]:
    """The six LibriSpeech test-other speakers: speaker id -> 10 FLAC paths, sorted."""
    groups = {
        d.name: sorted(d.glob("*.flac")) for d in sorted((speech / "librispeech").iterdir()) if d.is_dir()
    }
    groups = {k: v for k, v in groups.items() if v}
    if len(groups) < 2:
        pytest.skip(f"fewer than two LibriSpeech speakers under {speech / 'librispeech'}")
    return groups


@pytest.fixture(scope="session")
def librispeech_files(librispeech: dict[str, list[Path]]) -> list[Path]:
    """Every LibriSpeech utterance, speaker by speaker."""
    return [p for files in librispeech.values() for p in files]


@pytest.fixture(scope="session")
def short_utterances(librispeech: dict[str, list[Path]]) -> list[Path]:
    """Six short utterances (the shortest of each speaker, 2.5 to 4.5 s), for fast tests."""
    import soundfile as sf

    return [min(files, key=lambda p: sf.info(str(p)).frames) for files in librispeech.values()]


@pytest.fixture(scope="session")
def embedder() -> SpeakerEmbedder:
    """One CPU embedder with the offline Resemblyzer weights, shared by the whole session."""
    from speakerembed import SpeakerEmbedder

    return SpeakerEmbedder("resemblyzer", device="cpu")


@pytest.fixture
def tuned() -> Callable[..., SpeakerEmbedder]:
    """A maker of CPU Resemblyzer embedders whose engine schedule is fixed: ``tuned(encoder_streams=2)``.

    The keywords are :class:`speakerembed._engine.schedule.Overrides`'s; each call loads a new
    embedder, so a test's overrides never reach another test's embedder.
    """
    from speakerembed import SpeakerEmbedder
    from speakerembed._engine.schedule import Overrides

    def make(**overrides: int | None) -> SpeakerEmbedder:
        return SpeakerEmbedder("resemblyzer", device="cpu", _overrides=Overrides(**overrides))

    return make


@pytest.fixture(scope="session")
def librispeech_embeddings(
    embedder: SpeakerEmbedder, librispeech: dict[str, list[Path]]
) -> dict[str, npt.NDArray[np.float32]]:
    """Utterance embeddings of every LibriSpeech file, per speaker (computed once, default pipeline)."""
    files = [p for group in librispeech.values() for p in group]
    rows = embedder.embed_utterances(files)
    out: dict[str, npt.NDArray[np.float32]] = {}
    start = 0
    for speaker, group in librispeech.items():
        out[speaker] = rows[start : start + len(group)]
        start += len(group)
    return out


@pytest.fixture(scope="session")
def resemblyzer_weights() -> Path:
    """The path of Resemblyzer's ``pretrained.pt`` (found without importing resemblyzer)."""
    from speakerembed.weights import resolve_weights

    info = resolve_weights("resemblyzer")
    assert info.path is not None
    return Path(info.path)


@pytest.fixture
def weights_file(tmp_path: Path, resemblyzer_weights: Path) -> Iterator[Path]:
    """A copy of the Resemblyzer weights as a local ``.safetensors`` file (keys renamed to ``proj.*``)."""
    from safetensors.torch import save_file

    from speakerembed.stages.encoder import adapt_state_dict
    from speakerembed.weights import load_state_dict

    path = tmp_path / "ve.safetensors"
    state = adapt_state_dict(load_state_dict(resemblyzer_weights))
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return path


def speech_wave(path: Path) -> tuple[npt.NDArray[np.float32], int]:
    """Read a file as mono float32 with soundfile (mean of the channels)."""
    import soundfile as sf

    data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    return np.ascontiguousarray(data.mean(axis=1, dtype=np.float32)), int(sr)


# -- the corpus the corpus tests embed, built once per test module (tests/corpus/) ------------


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
    from speakerembed.corpus.sources import scan_folder

    paths = [r.path for r in scan_folder(corpus) if not r.id.startswith("bad/")]
    return dict(zip(paths, embedder.embed_utterances(paths), strict=True))
