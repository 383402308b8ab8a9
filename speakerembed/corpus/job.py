"""A corpus job as the engines see it: :class:`Job`, and the one loop that writes its rows.

An engine is a function ``run(job: Job) -> bool`` that embeds ``job.records`` (the inputs not yet
in the output) and hands the tables of rows it makes to :func:`write_tables`, which writes each
with ``job.sink.write(table)``, counts it with ``job.progress.update(table)``, and returns
``True`` when it stopped early because ``job.fail_fast`` is set and a row failed (it writes the
rows up to that one: :func:`first_failure`). An engine does not close the sink. Each batch's rows
come from :func:`~speakerembed.corpus.batch.embed_batch` (or its two halves), so every engine
writes the same rows.

The engines are :func:`speakerembed.corpus.engine.run_local` and
:func:`speakerembed.corpus.ray_engine.run`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa

    from ..config import Pipeline
    from ..embedder import SpeakerEmbedder
    from ..stages.encoder import EncoderImpl
    from .progress import Progress
    from .sink import ParquetSink
    from .sources import Record

__all__ = ["BATCH_SIZE", "Job", "first_failure", "write_tables"]

#: Records per call of the encoder step (and per sink write).
BATCH_SIZE = 64


@dataclasses.dataclass
class Job:
    """Everything an engine needs.

    Attributes
    ----------
    records : list of Record
        The inputs still to embed, in order.
    schema : pyarrow.Schema
        The output schema, with the job's metadata.
    pipeline : Pipeline
        The preprocessing.
    embedder : SpeakerEmbedder
        The loaded embedder. Engines that load it again in other processes send them an
        :class:`~speakerembed.corpus.spec.EmbedderSpec` made from it
        (:meth:`EmbedderSpec.of <speakerembed.corpus.spec.EmbedderSpec.of>`).
    sink : ParquetSink
        Where rows go.
    progress : the corpus progress display
        Counts and shows them.
    encoder : {"builtin", "chatterbox"}
        The network class the embedder's weights were loaded into (for the spec).
    device : str or None
        The device the job asked for (``None``: each engine picks; the Ray engine's actors
        use GPUs when the cluster has them).
    fail_fast : bool
        Stop after the first batch that holds a failed row.
    workers : int or None
        Worker processes (local) or actors (Ray); ``None`` picks
        (:func:`~speakerembed.corpus.engine.default_workers`).
    threads : int or None
        Torch threads for each encoder.
    batch_size : int
        Records per batch.
    ray_address : str or None
        The Ray cluster to join (Ray engine).
    """

    records: list[Record]
    schema: pa.Schema
    pipeline: Pipeline
    embedder: SpeakerEmbedder
    sink: ParquetSink
    progress: Progress
    encoder: EncoderImpl = "builtin"
    device: str | None = None
    fail_fast: bool = False
    workers: int | None = None
    threads: int | None = None
    batch_size: int = BATCH_SIZE
    ray_address: str | None = None


def first_failure(table: pa.Table) -> int:
    """The position of the first error row of a batch (``fail_fast`` keeps the rows up to it)."""
    return int(table.column("error").is_valid().to_pylist().index(True))


def write_tables(job: Job, tables: Iterator[pa.Table]) -> bool:
    """Write each table of rows and count it; stop after the first failure with ``fail_fast``.

    Every engine's rows go through here. ``tables`` is closed at the end (a generator's
    ``finally`` then stops its workers, or its actors).

    Returns
    -------
    bool
        True when it stopped early (``fail_fast`` and a failed row).
    """
    try:
        for table in tables:
            stop = job.fail_fast and table.column("error").null_count < table.num_rows
            if stop:
                table = table.slice(0, first_failure(table) + 1)
            job.sink.write(table)
            job.progress.update(table)
            if stop:
                return True
        return False
    finally:
        close = getattr(tables, "close", None)
        if close is not None:
            close()
