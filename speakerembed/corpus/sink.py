"""The sink of a corpus job: a folder of Parquet shards that reads as one table.

Layout of an output folder ``OUT``::

    OUT/_speakerembed.json     the job's settings (weights, Pipeline, precision, versions, command)
    OUT/part-00000.parquet     shards of at most ``shard_size`` rows each
    OUT/part-00001.parquet
    ...

Only the shards end in ``.parquet``, and the settings file starts with ``_``, which pyarrow,
pandas and Ray skip, so ``pyarrow.parquet.read_table("OUT")``, ``pandas.read_parquet("OUT")``,
``polars.read_parquet("OUT/*.parquet")``, DuckDB's ``'OUT/*.parquet'`` and
``ray.data.read_parquet("OUT")`` all read it as one table.

Each shard is written to a hidden temporary name (``.part-00001.parquet.tmp``), flushed to disk
(``fsync``) and renamed into place (``os.replace``), so a shard is either complete or absent: a job
killed at any moment, SIGKILL included, loses at most the rows it had not yet written, never
leaves a corrupt shard, and never writes a row twice. Stale temporary files are removed when the
folder is opened again.

Resume is the sink's business: it knows the ids already written. ``retry_failed`` first rewrites
each shard that holds error rows without them (each shard atomically), so those ids count as not
done and are embedded again; every id is in the folder at most once at every moment.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from .schema import METADATA_KEY, settings_key

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["METADATA_FILE", "OutputError", "ParquetSink"]

#: The settings file beside the shards.
METADATA_FILE = "_speakerembed.json"
_SHARD = re.compile(r"^part-(\d+)\.parquet$")
_TEMP = re.compile(r"^\.(part-\d+\.parquet|_speakerembed\.json)\.tmp.*$")


class OutputError(ConfigError):
    """The output folder cannot be used: not creatable or writable, or holds other settings."""


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # some file systems cannot fsync a folder
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class ParquetSink:
    """Write the rows of a job into Parquet shards, atomically, and know which ids are written.

    Parameters
    ----------
    folder : path
        The output folder; created if needed.
    schema : pyarrow.Schema
        The rows' schema, with the job's metadata (:func:`~speakerembed.corpus.schema.corpus_schema`).
    metadata : dict
        The job's settings (:func:`~speakerembed.corpus.schema.job_metadata`).
    shard_size : int
        Rows per shard.
    overwrite : bool
        Remove an existing output's shards and settings first.
    retry_failed : bool
        Drop the existing error rows, so that their inputs are embedded again.
    flag : str
        How the folder is named in errors (``"-o"`` in the CLI, ``"output="`` in Python).

    Notes
    -----
    Call :meth:`check` before any audio is read (it raises
    :class:`~speakerembed.corpus.sink.OutputError`), then :meth:`open`, :meth:`write` any number
    of times and :meth:`close`.
    """

    def __init__(
        self,
        folder: str | os.PathLike[str],
        schema: pa.Schema,
        metadata: dict[str, Any],
        *,
        shard_size: int = 1000,
        overwrite: bool = False,
        retry_failed: bool = False,
        flag: str = "output=",
    ) -> None:
        if shard_size < 1:
            raise ConfigError(f"shard_size={shard_size} must be at least 1")
        self.folder = Path(folder)
        self.schema = schema
        self.metadata = metadata
        self.shard_size = shard_size
        self.overwrite = overwrite
        self.retry_failed = retry_failed
        self._flag = flag
        self._buffer: list[pa.Table] = []
        self._buffered = 0
        self._next_shard = 0
        #: id -> True when its row is an error row.
        self.done: dict[str, bool] = {}
        self.retried = 0
        self.rows_written = 0

    # -- checks ---------------------------------------------------------------------------------

    def _where(self) -> str:
        return f"{self._flag}{self.folder}" if self._flag.endswith("=") else f"{self._flag} {self.folder}"

    def shards(self) -> list[Path]:
        """The shard files, in order."""
        if not self.folder.is_dir():
            return []
        found = [(int(m.group(1)), p) for p in self.folder.iterdir() if (m := _SHARD.match(p.name))]
        return [p for _, p in sorted(found)]

    def check(self) -> None:
        """Check the folder before any work: creatable, writable, and holding this job's settings.

        Raises
        ------
        OutputError
            If the folder cannot be created or written, holds Parquet files that are not this
            sink's, or was written with other weights, another Pipeline or another precision.
        """
        where = self._where()
        if self.folder.exists() and not self.folder.is_dir():
            raise OutputError(f"{where} is a file; pass a folder for the Parquet shards")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"{where}: cannot create the folder ({exc.strerror}); choose another") from exc
        if not os.access(self.folder, os.W_OK | os.X_OK):
            raise OutputError(f"{where} is not writable; choose another folder or fix its permissions")
        foreign = [
            p.name for p in self.folder.iterdir() if p.name.endswith(".parquet") and not _SHARD.match(p.name)
        ]
        if foreign:
            raise OutputError(
                f"{where} holds Parquet files that are not part-NNNNN.parquet shards "
                f"({', '.join(sorted(foreign)[:3])}); "
                "the folder must read as one table, so choose an empty or new folder"
            )
        if self.overwrite:
            return
        meta_path = self.folder / METADATA_FILE
        shards = self.shards()
        if not meta_path.exists():
            if shards:
                raise OutputError(
                    f"{where} holds shards but no {METADATA_FILE}, so their settings are unknown; "
                    "pass --overwrite (overwrite=True) to start afresh, or choose another folder"
                )
            return
        try:
            old = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise OutputError(
                f"{where}: cannot read {METADATA_FILE} ({exc}); "
                "pass --overwrite (overwrite=True) to start afresh"
            ) from exc
        self._check_settings(old, METADATA_FILE)
        if shards:
            self._check_shard_schema(shards[-1])

    def _check_settings(self, old: dict[str, Any], what: str) -> None:
        want, have = settings_key(self.metadata), settings_key(old)
        diff = [k for k in want if want[k] != have.get(k)]
        if diff:
            details = []
            for k in diff:
                if k == "pipeline" and isinstance(have.get(k), dict) and isinstance(want[k], dict):
                    fields = [f for f in want[k] if want[k][f] != have[k].get(f)]
                    details.append(
                        "pipeline ("
                        + ", ".join(f"{f}: {have[k].get(f)!r} there, {want[k][f]!r} now" for f in fields)
                        + ")"
                    )
                elif k == "weights_sha256":
                    details.append(
                        f"weights ({old.get('weights')}@{str(have.get(k))[:12]} there, "
                        f"{self.metadata.get('weights')}@{str(want[k])[:12]} now)"
                    )
                else:
                    details.append(f"{k} ({have.get(k)!r} there, {want[k]!r} now)")
            raise OutputError(
                f"{self._where()} was written with other settings ({'; '.join(details)}, per {what}); "
                "embeddings made with different settings must not be mixed: use the same settings, "
                "another folder, or --overwrite (overwrite=True) to start afresh"
            )

    def _check_shard_schema(self, shard: Path) -> None:
        import pyarrow.parquet as pq

        try:
            schema = pq.read_schema(shard)
        except (OSError, ValueError) as exc:  # ArrowInvalid is a ValueError
            raise OutputError(f"{self._where()}: cannot read the shard {shard.name} ({exc})") from exc
        raw = (schema.metadata or {}).get(METADATA_KEY)
        if raw is not None:
            self._check_settings(json.loads(raw), shard.name)
        if not schema.remove_metadata().equals(self.schema.remove_metadata()):
            raise OutputError(
                f"{self._where()} has other columns ({', '.join(schema.names)}) than this job "
                f"({', '.join(self.schema.names)}); carry the same manifest columns, or choose another folder"
            )

    # -- opening --------------------------------------------------------------------------------

    def open(self) -> None:
        """Clean stale temporary files, apply ``overwrite``/``retry_failed``, and load the written ids."""
        import pyarrow.parquet as pq

        self.check()
        for p in self.folder.iterdir():
            if _TEMP.match(p.name):
                with contextlib.suppress(OSError):
                    p.unlink()
        if self.overwrite:
            for p in self.shards():
                p.unlink()
            with contextlib.suppress(FileNotFoundError):
                (self.folder / METADATA_FILE).unlink()
        meta_path = self.folder / METADATA_FILE
        if not meta_path.exists():
            self._atomic_write_bytes(
                meta_path, (json.dumps(self.metadata, indent=2, sort_keys=True) + "\n").encode()
            )
        shards = self.shards()
        self._next_shard = 1 + int(_SHARD.match(shards[-1].name).group(1)) if shards else 0  # type: ignore[union-attr]
        for shard in shards:
            table = pq.read_table(shard, columns=["id", "error"])
            ids = table.column("id").to_pylist()
            failed = table.column("error").is_valid().to_pylist()
            if self.retry_failed and any(failed):
                self._drop_rows(shard, failed)
                self.retried += sum(failed)
                ids = [i for i, f in zip(ids, failed, strict=True) if not f]
                failed = [False] * len(ids)
            for i, f in zip(ids, failed, strict=True):
                if i in self.done:
                    raise OutputError(
                        f"{self._where()}: the id {i!r} is in more than one row; the folder was "
                        "edited by hand? pass --overwrite (overwrite=True) to start afresh"
                    )
                self.done[i] = f

    def _drop_rows(self, shard: Path, drop: list[bool]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pq.read_table(shard)
        keep = table.filter(pa.array([not d for d in drop]))
        if keep.num_rows == 0:
            shard.unlink()
            _fsync_dir(self.folder)
        else:
            self._atomic_write_table(shard, keep)

    # -- writing --------------------------------------------------------------------------------

    def _atomic_write_bytes(self, path: Path, data: bytes) -> None:
        tmp = path.with_name(f".{path.name}.tmp")
        try:
            with tmp.open("wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise OutputError(
                f"{self._where()}: cannot write {path.name} ({exc.strerror}); choose another folder"
            ) from exc
        _fsync_dir(self.folder)

    def _atomic_write_table(self, path: Path, table: pa.Table) -> None:
        import pyarrow.parquet as pq

        tmp = path.with_name(f".{path.name}.tmp")
        try:
            pq.write_table(table.cast(self.schema) if table.schema != self.schema else table, tmp)
            _fsync_file(tmp)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        _fsync_dir(self.folder)

    def write(self, table: pa.Table) -> None:
        """Add rows; full shards are written at once, the rest waits for more rows or :meth:`close`."""
        if table.num_rows == 0:
            return
        self._buffer.append(table)
        self._buffered += table.num_rows
        while self._buffered >= self.shard_size:
            self._flush(self.shard_size)

    def _flush(self, n: int) -> None:
        import pyarrow as pa

        whole = pa.concat_tables(self._buffer)
        rows, rest = whole.slice(0, n), whole.slice(n)
        path = self.folder / f"part-{self._next_shard:05d}.parquet"
        self._atomic_write_table(path, rows.combine_chunks())
        self._next_shard += 1
        self.rows_written += rows.num_rows
        ids = rows.column("id").to_pylist()
        failed = rows.column("error").is_valid().to_pylist()
        self.done.update(zip(ids, failed, strict=True))
        self._buffer = [rest] if rest.num_rows else []
        self._buffered = rest.num_rows

    def flush(self) -> None:
        """Write the buffered rows as a (possibly short) shard."""
        if self._buffered:
            self._flush(self._buffered)

    def close(self) -> None:
        """Write what is buffered."""
        self.flush()

    def pending(self, ids: Iterable[str]) -> list[str]:
        """The ids not written yet."""
        return [i for i in ids if i not in self.done]
