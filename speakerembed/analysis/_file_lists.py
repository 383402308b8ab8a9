"""Embed a list of files once each, in chunks, keeping going past bad ones (for verify and sim-eval)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..errors import ConfigError

if TYPE_CHECKING:
    import numpy.typing as npt
    import torch

    from ..config import Pipeline
    from ..embedder import SpeakerEmbedder

__all__ = ["embed_files", "resolve_embedder"]

#: Files per call to ``embed_utterances``: bounds the memory of one call on long lists.
CHUNK = 256
#: Lists of at least this many distinct files go through the corpus job
#: (:func:`~speakerembed.embed_corpus`): decoding in worker processes where cores are free, a
#: progress bar on a terminal, and memory that does not grow with the list.
CORPUS_MIN_FILES = 2000


def resolve_embedder(
    embedder: SpeakerEmbedder | None,
    weights: str | os.PathLike[str],
    device: str | torch.device | None,
) -> SpeakerEmbedder:
    """The embedder given, or the cached one for ``weights`` and ``device``."""
    if embedder is not None:
        from ..embedder import SpeakerEmbedder

        if not isinstance(embedder, SpeakerEmbedder):
            raise ConfigError(f"embedder= must be a SpeakerEmbedder, got {type(embedder).__name__}")
        return embedder
    from ..api import get_embedder

    return get_embedder(weights, device=device)


def embed_files(
    embedder: SpeakerEmbedder,
    paths: Sequence[str],
    pipeline: Pipeline | None = None,
    chunk: int = CHUNK,
    corpus_min_files: int = CORPUS_MIN_FILES,
    quiet: bool = False,
) -> tuple[dict[str, npt.NDArray[np.float32]], dict[str, str]]:
    """Embed each distinct path once: ({path: (256,) unit row}, {path: error message}).

    Lists of at least ``corpus_min_files`` distinct files run as a corpus job into a temporary
    folder (see :data:`CORPUS_MIN_FILES`); shorter ones in chunks of ``chunk`` files. Both give
    the same rows. With ``quiet``, the chunks log no ``skipping input N`` lines (whose N counts
    the chunk's files): the caller reports the failures in its own terms.
    """
    if quiet:
        from .._engine.log_summary import quiet_skips

        with quiet_skips():
            return embed_files(embedder, paths, pipeline, chunk, corpus_min_files)
    distinct = list(dict.fromkeys(paths))
    if len(distinct) >= corpus_min_files:
        return _embed_through_corpus(embedder, distinct, pipeline)
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


def _embed_through_corpus(
    embedder: SpeakerEmbedder, distinct: list[str], pipeline: Pipeline | None
) -> tuple[dict[str, npt.NDArray[np.float32]], dict[str, str]]:
    """:func:`embed_files` through :func:`~speakerembed.embed_corpus`, in a temporary folder."""
    import tempfile

    import pyarrow.parquet as pq

    from ..corpus.api import embed_corpus
    from ..corpus.sources import as_text

    rows: dict[str, npt.NDArray[np.float32]] = {}
    failed: dict[str, str] = {}
    present = []
    for path in distinct:
        if os.path.isfile(path):
            present.append(path)
        else:
            failed[path] = "no such file; check the path and the working directory"
    if not present:
        return rows, failed
    with tempfile.TemporaryDirectory(prefix="speakerembed-") as tmp:
        out = os.path.join(tmp, "embeddings")
        embed_corpus(present, out, embedder=embedder, pipeline=pipeline, progress="auto")
        table = pq.read_table(out, columns=["id", "embedding", "error"])
    # The job's ids are the paths as text (a name that is not UTF-8 has its bytes as \xNN):
    # the callers look rows up by the paths they passed.
    given = {as_text(path): path for path in present}
    ids = [given.get(id_, id_) for id_ in table.column("id").to_pylist()]
    errors = table.column("error").to_pylist()
    embeddings = table.column("embedding").to_pylist()
    for id_, error, embedding in zip(ids, errors, embeddings, strict=True):
        if error is None and embedding is not None:
            rows[id_] = np.asarray(embedding, dtype=np.float32)
        else:
            failed[id_] = str(error)
    return rows, failed
