"""The per-batch step of a corpus job: records in, a table of rows in the corpus schema out.

:func:`embed_batch` is the whole step, pure apart from the embedder it is given: every engine
calls it, or its two halves. The local engine (:mod:`speakerembed.corpus.engine`) runs the first
half, :func:`prepare_records`, in worker processes and the second, ``encode_outcomes``, beside
the encoder; the Ray engine calls :func:`embed_batch` in each actor.

It runs the library's own stages (:meth:`SpeakerEmbedder._prepare
<speakerembed.SpeakerEmbedder>`: load, resample, trim, mel, or the streaming path for long files;
then the encoder's batching and consolidation), so each row's embedding is the one
:func:`~speakerembed.embed_utterances` gives for the same file and settings.

A bad input becomes a row with ``error`` and ``error_type`` set and a null ``embedding``; it
does not raise. Only a failure of the encoder itself (a device error) raises.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Union

import numpy as np

from ..errors import SpeakerEmbedError
from .schema import EMBEDDING_DIM, corpus_schema, safe_text

if TYPE_CHECKING:
    import numpy.typing as npt
    import pyarrow as pa

    from .._engine.preparation import Prepared as _Prepared
    from .._engine.preparation import Preparer
    from ..config import Pipeline
    from ..embedder import SpeakerEmbedder
    from .sources import Record

__all__ = [
    "Outcome",
    "arrow_column",
    "build_table",
    "cpu_preparer",
    "embed_batch",
    "encode_outcomes",
    "encode_tables",
    "prepare_one",
    "prepare_records",
]

Outcome = tuple[int, Union["_Prepared", SpeakerEmbedError]]
"""One prepared input: its position in the batch, and its prepared audio or its error."""


def prepare_one(
    preparer: Preparer | SpeakerEmbedder, index: int, record: Record, pipeline: Pipeline
) -> Outcome:
    """Load, resample, trim and mel one record (the embedder's own ``_prepare``); never raises.

    Any error becomes a :class:`~speakerembed.SpeakerEmbedError` whose ``source`` is the
    record's path.
    """
    from .._engine.preparation import as_library_error

    try:
        stages = preparer.engine if hasattr(preparer, "engine") else preparer
        return index, stages.prepare(index, record.path, None, pipeline)
    except Exception as exc:  # noqa: BLE001 - every input failure becomes a row
        err = as_library_error(exc, record.path)
        err.source = record.path
        return index, err


def prepare_records(
    records: Sequence[Record], preparer: Preparer | SpeakerEmbedder, pipeline: Pipeline
) -> Iterator[Outcome]:
    """:func:`prepare_one` for each record, lazily, in order (index = position in ``records``)."""
    for index, record in enumerate(records):
        yield prepare_one(preparer, index, record, pipeline)


def cpu_preparer(pipeline: Pipeline) -> Preparer:
    """The engine's :class:`~speakerembed._engine.preparation.Preparer` on the CPU: no weights.

    Worker processes use it to run the pipeline's stages without loading the encoder: preparing
    needs only the device (the CPU). ``pipeline`` is the job's (each call passes it).
    """
    import torch

    from .._engine.preparation import Preparer

    return Preparer(torch.device("cpu"))


class _Details:
    __slots__ = ("duration_s", "n_windows", "sample_rate", "speech_s")

    def __init__(self, duration_s: float, speech_s: float, sample_rate: int, n_windows: int) -> None:
        self.duration_s, self.speech_s = duration_s, speech_s
        self.sample_rate, self.n_windows = sample_rate, n_windows


def _details(p: _Prepared, pipeline: Pipeline) -> _Details:
    from ..stages.windows import num_windows

    if p.mel is not None:
        n_windows, _ = num_windows(
            int(p.mel.shape[0]), pipeline.frame_step, pipeline.min_coverage, pipeline.partial_frames
        )
    else:
        n_windows = p.n_windows
    speech = max(0.0, p.input_seconds - p.trimmed_seconds)
    return _Details(p.input_seconds, speech, p.sample_rate, n_windows)


def _one_line(err: SpeakerEmbedError) -> str:
    text = err.message.strip().splitlines()
    return text[0] if text else type(err).__name__


def encode_outcomes(
    records: Sequence[Record],
    outcomes: Iterable[Outcome],
    embedder: SpeakerEmbedder,
    pipeline: Pipeline,
    schema: pa.Schema | None = None,
) -> pa.Table:
    """Encode prepared records and build their rows.

    Parameters
    ----------
    records : sequence of Record
        The batch; outcome ``i`` belongs to ``records[i]``.
    outcomes : iterable of Outcome
        One per record, in any order (from :func:`prepare_records`, or from worker processes).
    embedder : SpeakerEmbedder
        Holds the encoder; its weights' batching packs windows of several records together.
    pipeline : Pipeline
        The pipeline the outcomes were prepared with.
    schema : pyarrow.Schema or None
        The output schema (default :func:`~speakerembed.corpus.schema.corpus_schema` with no
        carried columns). Its carried columns are taken from each record's ``extra``.

    Returns
    -------
    pyarrow.Table
        One row per record, in ``records`` order.

    Raises
    ------
    SpeakerEmbedError
        Only if the encoder itself fails on a batch.
    """
    if not records:
        return build_table([], {}, {}, {}, schema)
    # One table of them all: encode_tables with a batch the size of the records.
    return next(iter(encode_tables(records, outcomes, embedder, pipeline, schema, len(records))))


def encode_tables(
    records: Sequence[Record],
    outcomes: Iterable[Outcome],
    embedder: SpeakerEmbedder,
    pipeline: Pipeline,
    schema: pa.Schema | None,
    batch_size: int,
) -> Iterator[pa.Table]:
    """Encode a whole job's prepared records in one stream; a table every ``batch_size`` records.

    The same rows as ``encode_outcomes`` on each batch of ``batch_size`` records, in order,
    but the encoder runs over the batches' boundaries: it does not wait, at the end of each
    batch, for that batch's last windows (a part-full encoder batch, and idle encoder streams)
    before the next batch's files are prepared. A table is yielded as soon as all its records
    are embedded or have failed.

    Parameters
    ----------
    records : sequence of Record
        The job's inputs; outcome ``i`` belongs to ``records[i]``.
    outcomes : iterable of Outcome
        One per record, in any order (a table comes out once all its records are done); in
        order from the local engine's decode pool or in-line preparation.
    embedder, pipeline, schema
        As for ``encode_outcomes``.
    batch_size : int
        Records per table.

    Raises
    ------
    SpeakerEmbedError
        Only if the encoder itself fails on a batch.
    """
    details: dict[int, _Details] = {}
    errors: dict[int, SpeakerEmbedError] = {}
    embeds: dict[int, npt.NDArray[np.float32]] = {}

    def tap() -> Iterator[_Prepared]:
        for index, item in outcomes:
            if isinstance(item, SpeakerEmbedError):
                errors[index] = item
                continue
            details[index] = _details(item, pipeline)
            item.index = index  # the encoder keys its results by it
            yield item

    def skip(index: int, source: str, error: SpeakerEmbedError) -> None:
        error.source = records[index].path
        errors[index] = error

    def table(start: int, stop: int) -> pa.Table:
        def take(d: dict[int, Any]) -> dict[int, Any]:
            return {i - start: d.pop(i) for i in range(start, stop) if i in d}

        return build_table(records[start:stop], take(embeds), take(details), take(errors), schema)

    start = done = 0  # the first record not yet in a table; the first not yet finished
    for index, vec in embedder.engine.encode_iter(tap(), pipeline, on_failure=skip):
        embeds[index] = vec
        while done < len(records) and (done in embeds or done in errors):
            done += 1
        while done - start >= batch_size:
            yield table(start, start + batch_size)
            start += batch_size
    # The encoder is done: every record left is embedded or failed (build_table reports a bug
    # for one that is neither).
    while start < len(records):
        yield table(start, min(start + batch_size, len(records)))
        start += batch_size


def build_table(
    records: Sequence[Record],
    embeds: dict[int, npt.NDArray[np.float32]],
    details: dict[int, _Details],
    errors: dict[int, SpeakerEmbedError],
    schema: pa.Schema | None = None,
) -> pa.Table:
    """The rows of a batch, as a table in ``schema``.

    The columns are built from NumPy buffers (:func:`arrow_column`), not with ``pa.array``,
    which imports pandas on its first call when pandas is installed (0.28 s of a core on the
    2-core host, in the middle of the job); a manifest's carried columns of other types than
    text and numbers still go through ``pa.array``.
    """
    import pyarrow as pa

    schema = schema if schema is not None else corpus_schema()
    n = len(records)
    flat = np.zeros((n, EMBEDDING_DIM), dtype=np.float32)
    valid = np.zeros(n, dtype=bool)
    for i, vec in embeds.items():
        flat[i] = vec
        valid[i] = True
    values = pa.Array.from_buffers(pa.float32(), n * EMBEDDING_DIM, [None, pa.py_buffer(flat)])
    embedding = pa.Array.from_buffers(
        pa.list_(pa.float32(), EMBEDDING_DIM), n, [_validity(valid)], children=[values]
    )

    def col(name: str, default: Any = None) -> list[Any]:
        out = []
        for i in range(n):
            d = details.get(i)
            out.append(getattr(d, name) if d is not None else default)
        return out

    err_msg = [(safe_text(_one_line(errors[i])) if i in errors else None) for i in range(n)]
    err_type = [(type(errors[i]).__name__ if i in errors else None) for i in range(n)]
    for i in range(n):
        if i not in embeds and i not in errors:  # pragma: no cover - a bug in the engine
            err_msg[i] = "was prepared but not encoded; this is a bug in speakerembed, please report it"
            err_type[i] = "SpeakerEmbedError"
    columns: dict[str, Any] = {
        # Parquet strings are UTF-8: a name that is not is stored with its bytes escaped.
        "id": [safe_text(r.id) for r in records],
        "path": [safe_text(r.path) for r in records],
        "speaker": [None if r.speaker is None else safe_text(r.speaker) for r in records],
        "embedding": embedding,
        "duration_s": col("duration_s"),
        "speech_s": col("speech_s"),
        "sample_rate": col("sample_rate"),
        "n_windows": col("n_windows"),
        "error": err_msg,
        "error_type": err_type,
    }
    arrays = []
    for field in schema:
        data = columns.get(field.name)
        if data is None:
            data = [r.extra.get(field.name) for r in records]
        arrays.append(data if isinstance(data, pa.Array) else arrow_column(data, field.type))
    return pa.Table.from_arrays(arrays, schema=schema)


#: NumPy's dtype for each Arrow type :func:`arrow_column` builds from buffers.
_NUMPY_OF = {
    "float": np.float32,
    "double": np.float64,
    "int8": np.int8,
    "int16": np.int16,
    "int32": np.int32,
    "int64": np.int64,
    "uint8": np.uint8,
    "uint16": np.uint16,
    "uint32": np.uint32,
    "uint64": np.uint64,
}


def _validity(valid: npt.NDArray[np.bool_]) -> pa.Buffer | None:
    """Arrow's validity bitmap of ``valid`` (least significant bit first), or None if all are."""
    import pyarrow as pa

    if valid.all():
        return None
    return pa.py_buffer(np.packbits(valid, bitorder="little"))


def _fits(values: Sequence[Any], dtype: Any) -> bool:
    """Whether every value is a number that ``dtype`` holds as ``pa.array`` would take it.

    No bools, no floats for integers, no integers out of range: those are left to ``pa.array``,
    which converts or refuses them.
    """
    present = [v for v in values if v is not None]
    if any(isinstance(v, (bool, np.bool_)) for v in present):
        return False
    if np.issubdtype(dtype, np.floating):
        return all(isinstance(v, (int, float, np.integer, np.floating)) for v in present)
    if not all(isinstance(v, (int, np.integer)) for v in present):
        return False
    info = np.iinfo(dtype)
    return all(info.min <= int(v) <= info.max for v in present)


def arrow_column(values: Sequence[Any], type_: pa.DataType) -> pa.Array:
    """``pa.array(values, type=type_)`` built from NumPy buffers for text and numbers (None is null).

    Strings are UTF-8 with 32-bit offsets; numbers are stored in ``type_``'s NumPy dtype when
    each fits it exactly as ``pa.array`` would take it. Anything else (other types, values of
    another kind, integers out of range, text past 32-bit offsets) goes to ``pa.array``, which
    converts it or refuses it as it always has.

    Examples
    --------
    >>> import pyarrow as pa
    >>> from speakerembed.corpus.batch import arrow_column
    >>> arrow_column(["a", None, "bcd"], pa.string()).to_pylist()
    ['a', None, 'bcd']
    >>> arrow_column([16000, None], pa.int32()).to_pylist()
    [16000, None]
    """
    import pyarrow as pa

    n = len(values)
    valid = np.fromiter((v is not None for v in values), dtype=bool, count=n)
    dtype = _NUMPY_OF.get(str(type_))
    if dtype is not None and _fits(values, dtype):
        data = np.fromiter((0 if v is None else v for v in values), dtype=dtype, count=n)
        return pa.Array.from_buffers(type_, n, [_validity(valid), pa.py_buffer(data)])
    if type_ == pa.string() and all(isinstance(v, str) for v in values if v is not None):
        encoded = [b"" if v is None else v.encode("utf-8") for v in values]
        ends = np.cumsum([len(b) for b in encoded], dtype=np.int64)
        if not ends.size or ends[-1] < 2**31:
            offsets = np.zeros(n + 1, dtype=np.int32)
            offsets[1:] = ends
            buffers = [_validity(valid), pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded))]
            return pa.Array.from_buffers(type_, n, buffers)
    return pa.array(values, type=type_)


def embed_batch(
    records: Sequence[Record],
    embedder: SpeakerEmbedder,
    pipeline: Pipeline | None = None,
    schema: pa.Schema | None = None,
) -> pa.Table:
    """Embed a batch of records: the rows of the corpus table, one per record, in order.

    This is the whole per-batch step of every engine, and pure apart from the embedder: it reads
    the records' files, and writes nothing.

    Parameters
    ----------
    records : sequence of Record
        The inputs (:mod:`speakerembed.corpus.sources`).
    embedder : SpeakerEmbedder
        A loaded embedder.
    pipeline : Pipeline or None
        The preprocessing (default: the embedder's).
    schema : pyarrow.Schema or None
        The output schema (:func:`~speakerembed.corpus.schema.corpus_schema`); pass the job's
        schema to carry manifest columns and the job's metadata.

    Returns
    -------
    pyarrow.Table
        ``len(records)`` rows. A bad input is a row with ``error``/``error_type`` set and a null
        ``embedding``; it does not raise.

    Examples
    --------
    >>> from speakerembed import SpeakerEmbedder
    >>> from speakerembed.corpus.batch import embed_batch
    >>> from speakerembed.corpus.sources import Record
    >>> embedder = SpeakerEmbedder("resemblyzer", device="cpu")
    >>> table = embed_batch([Record("a", "examples/audio/alice_1.wav")], embedder)
    >>> table.num_rows, table.column("error").to_pylist()
    (1, [None])
    """
    pipe = pipeline if pipeline is not None else embedder.pipeline
    return encode_outcomes(records, prepare_records(records, embedder, pipe), embedder, pipe, schema)
