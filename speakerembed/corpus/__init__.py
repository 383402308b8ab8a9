"""Embed a whole corpus: sources → engine → sink.

- :mod:`~speakerembed.corpus.sources` turns files, folders, file lists and manifests into
  :class:`~speakerembed.corpus.sources.Record` objects;
- an engine turns records into rows: :func:`~speakerembed.corpus.batch.embed_batch` is the
  per-batch step every engine runs;
- :mod:`~speakerembed.corpus.sink` writes the rows as Parquet shards, atomically, and knows
  which ids are written (resume).

The rows' columns and the stored settings are in :mod:`~speakerembed.corpus.schema`.
"""

from __future__ import annotations

__all__: list[str] = []
