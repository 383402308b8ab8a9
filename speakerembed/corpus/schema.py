"""The output table of a corpus job: its pyarrow schema and the metadata that travels with it.

One row per input::

    id            string    not null   the input's id (the resume key)
    path          string    not null   the audio file
    speaker       string               from a manifest, else null
    embedding     fixed_size_list<float32, 256>   null when the input failed
    duration_s    float64              the file's duration, before trimming
    speech_s      float64              seconds left after trimming
    sample_rate   int32                the file's rate, in Hz
    n_windows     int32                partial windows the encoder saw
    error         string               null, or the library's one-line message
    error_type    string               null, or the error's class name (AudioError, ...)
    ...                                a manifest's other columns, as they were

The job's settings (:func:`job_metadata`) are stored under the key ``b"speakerembed"`` of every
shard's schema metadata, and in ``_speakerembed.json`` beside the shards. Embeddings made with
other weights, another Pipeline or another precision must never be mixed, so
:func:`settings_key` is what a resumed job must match.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

    from ..config import Pipeline
    from ..embedder import SpeakerEmbedder

__all__ = [
    "EMBEDDING_DIM",
    "METADATA_KEY",
    "corpus_schema",
    "job_metadata",
    "safe_text",
    "settings_key",
]


def safe_text(value: str) -> str:
    r"""``value`` as text that Parquet can store (UTF-8), with undecodable bytes shown escaped.

    A file name that is not valid UTF-8 reaches Python with its bytes as lone surrogates
    (``os.fsdecode``); Parquet strings must be UTF-8, so each such byte is written as ``\xNN``:
    ``b"caf\xe9.wav"`` is stored (and its id is) ``"caf\\xe9.wav"``. Valid text is unchanged.

    Parameters
    ----------
    value : str
        A path, an id or a message.

    Returns
    -------
    str
        Text that encodes as UTF-8.

    Examples
    --------
    >>> import os
    >>> from speakerembed.corpus.schema import safe_text
    >>> safe_text(os.fsdecode(b"caf\xe9.wav"))
    'caf\\xe9.wav'
    >>> safe_text("café.wav")
    'café.wav'
    """
    try:
        value.encode("utf-8")
        return value
    except UnicodeEncodeError:
        try:
            raw = value.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:  # surrogates that are not escaped bytes
            return value.encode("utf-8", "backslashreplace").decode("utf-8")
        return raw.decode("utf-8", "backslashreplace")


#: Width of the ``embedding`` column.
EMBEDDING_DIM = 256
#: The key of the job's settings in the shards' schema metadata.
METADATA_KEY = b"speakerembed"
#: Metadata fields that must agree for rows to be added to an existing output.
SETTINGS_FIELDS = ("weights_sha256", "pipeline", "precision")


def corpus_schema(extra_fields: Sequence[pa.Field] = (), metadata: dict[str, Any] | None = None) -> pa.Schema:
    """The schema of the output table: the fixed columns, then the carried manifest columns.

    Parameters
    ----------
    extra_fields : sequence of pyarrow.Field
        Carried manifest columns (:attr:`Sources.extra_fields <speakerembed.corpus.sources.Sources>`).
    metadata : dict or None
        The job's settings (:func:`~speakerembed.corpus.schema.job_metadata`), stored as JSON
        under :data:`~speakerembed.corpus.schema.METADATA_KEY`.

    Returns
    -------
    pyarrow.Schema
    """
    import pyarrow as pa

    fields = [
        pa.field("id", pa.string(), nullable=False),
        pa.field("path", pa.string(), nullable=False),
        pa.field("speaker", pa.string()),
        pa.field("embedding", pa.list_(pa.float32(), EMBEDDING_DIM)),
        pa.field("duration_s", pa.float64()),
        pa.field("speech_s", pa.float64()),
        pa.field("sample_rate", pa.int32()),
        pa.field("n_windows", pa.int32()),
        pa.field("error", pa.string()),
        pa.field("error_type", pa.string()),
        *extra_fields,
    ]
    meta = {METADATA_KEY: json.dumps(metadata, sort_keys=True).encode()} if metadata is not None else None
    return pa.schema(fields, metadata=meta)


def pipeline_dict(pipeline: Pipeline) -> dict[str, Any]:
    """The Pipeline's fields, as a JSON-ready dict."""
    return dataclasses.asdict(pipeline)


def job_metadata(embedder: SpeakerEmbedder, pipeline: Pipeline, command: str | None = None) -> dict[str, Any]:
    """The settings of a job, as stored with its output.

    Returns
    -------
    dict
        ``weights`` (name), ``weights_sha256``, ``pipeline`` (its fields), ``precision``,
        ``speakerembed_version``, ``torch_version``, ``command`` and ``embedding_dim``.
    """
    import torch

    from .._version import __version__

    info = embedder.weights_info
    return {
        "weights": info.name,
        "weights_sha256": info.sha256,
        "pipeline": pipeline_dict(pipeline),
        "precision": embedder.precision,
        "speakerembed_version": __version__,
        "torch_version": torch.__version__,
        "command": command,
        "embedding_dim": EMBEDDING_DIM,
    }


#: Pipeline fields that change how the work is batched, never the embeddings: a job may be
#: resumed with other values (on another device, say).
BATCHING_FIELDS = ("max_windows_per_batch",)


def settings_key(metadata: dict[str, Any]) -> dict[str, Any]:
    """The part of the metadata that decides whether two jobs' embeddings may be mixed."""
    key = {k: metadata.get(k) for k in SETTINGS_FIELDS}
    if isinstance(key["pipeline"], dict):
        key["pipeline"] = {k: v for k, v in key["pipeline"].items() if k not in BATCHING_FIELDS}
    return key
