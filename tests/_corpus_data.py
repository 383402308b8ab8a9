"""What the corpus tests share: the bundled voices, the corpus's counts, and readers of the output.

The fixtures that build the corpus from them are in ``conftest.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from speakerembed import Pipeline, SpeakerEmbedder

ROOT = Path(__file__).resolve().parents[1]
AUDIO = ROOT / "examples" / "audio"
W = ["--weights", "resemblyzer", "--device", "cpu"]
SPEAKERS = ("alice", "bob", "carol")


def _resampled(wav: np.ndarray, sr: int, rate: int) -> np.ndarray:
    import soxr

    return wav if rate == sr else soxr.resample(wav, sr, rate).astype(np.float32)


GOOD = 18
BAD = 2


def _read(out: Path) -> dict[str, dict[str, object]]:
    import pyarrow.parquet as pq

    table = pq.read_table(out)
    ids = table.column("id").to_pylist()
    assert len(ids) == len(set(ids)), "an id appears twice"
    return {row["id"]: row for row in table.to_pylist()}


def _reference(embedder: SpeakerEmbedder, path: str, pipeline: Pipeline | None = None) -> np.ndarray:
    return embedder.embed_utterances([path], pipeline=pipeline)[0]
