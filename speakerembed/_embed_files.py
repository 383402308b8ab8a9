"""Embed a list of files once each, in chunks, keeping going past bad ones (for verify and sim-eval)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from .errors import ConfigError

if TYPE_CHECKING:
    import numpy.typing as npt
    import torch

    from .config import Pipeline
    from .embedder import SpeakerEmbedder

__all__ = ["embed_files", "resolve_embedder"]

#: Files per call to ``embed_utterances``: bounds the memory of one call on long lists.
CHUNK = 256


def resolve_embedder(
    embedder: SpeakerEmbedder | None,
    weights: str | os.PathLike[str],
    device: str | torch.device | None,
) -> SpeakerEmbedder:
    """The embedder given, or the cached one for ``weights`` and ``device``."""
    if embedder is not None:
        from .embedder import SpeakerEmbedder

        if not isinstance(embedder, SpeakerEmbedder):
            raise ConfigError(f"embedder= must be a SpeakerEmbedder, got {type(embedder).__name__}")
        return embedder
    from .api import get_embedder

    return get_embedder(weights, device=device)


def embed_files(
    embedder: SpeakerEmbedder,
    paths: Sequence[str],
    pipeline: Pipeline | None = None,
    chunk: int = CHUNK,
) -> tuple[dict[str, npt.NDArray[np.float32]], dict[str, str]]:
    """Embed each distinct path once: ({path: (256,) unit row}, {path: error message})."""
    distinct = list(dict.fromkeys(paths))
    rows: dict[str, npt.NDArray[np.float32]] = {}
    failed: dict[str, str] = {}
    for start in range(0, len(distinct), chunk):
        part = distinct[start : start + chunk]
        result = embedder.embed_utterances(part, pipeline=pipeline, errors="skip")
        for row, index in zip(result.embeddings, result.indices, strict=True):
            rows[part[int(index)]] = row
        for failure in result.failures:
            failed[part[failure.index]] = failure.error.message  # without "input N (path)"
    return rows, failed
