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

Each shard is written to a hidden temporary name (``.part-00001.parquet.tmp.PID``), flushed to
disk (``fsync``) and renamed into place (``os.replace``), so a shard is either complete or absent:
a job killed at any moment, SIGKILL included, loses at most the rows it had not yet written, never
leaves a corrupt shard, and never writes a row twice. Stale temporary files are removed when the
folder is opened again. A write that fails (a full disk) leaves no half shard and is not tried
again: the job stops with one line naming the shard.

One job at a time: a job holds an operating-system lock (``flock``) on ``OUT/.speakerembed.lock``
from its first check to its end (the file is removed then), and a second job on the same folder
is refused at once, naming the first one's process id (:class:`OutputLock`). The lock goes with
the process, so a killed job never leaves the folder locked.

Shards carry Parquet page checksums (CRC-32), verified whenever a job opens the folder: a shard
damaged on disk (garbage written into it, or truncated) is named, with what to do (remove it and
run the same command again, which embeds its inputs again), instead of being read as rows.
Every shard's schema metadata must hold this job's settings
(:func:`~speakerembed.corpus.schema.settings_key`): a shard of other settings, or a Parquet
file that is not a speakerembed shard, is refused by name.

Resume is the sink's business: it knows the ids already written. ``retry_failed`` first rewrites
each shard that holds error rows without them (each shard atomically), so those ids count as not
done and are embedded again; every id is in the folder at most once at every moment. Given new
labels for ids already written (a manifest passed on a later run), it rewrites the shards that
hold them with the new ``speaker`` and carried columns, embeddings untouched (``relabel`` of
:meth:`ParquetSink.open`).
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from .schema import METADATA_KEY, settings_key

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["LOCK_FILE", "METADATA_FILE", "OutputError", "OutputLock", "ParquetSink"]

#: The settings file beside the shards.
METADATA_FILE = "_speakerembed.json"
#: The lock file a job holds (hidden, so readers of the folder skip it).
LOCK_FILE = ".speakerembed.lock"
_SHARD = re.compile(r"^part-(\d+)\.parquet$")
_TEMP = re.compile(r"^\.(part-\d+\.parquet|_speakerembed\.json)\.tmp.*$")


class OutputError(ConfigError):
    """The output folder cannot be used: not creatable or writable, or holds other settings."""


def _where(flag: str, folder: Path) -> str:
    return f"{flag}{folder}" if flag.endswith("=") else f"{flag} {folder}"


def _no_space(exc: BaseException) -> bool:
    """Whether an error of a write is a full disk (or quota), however pyarrow words it."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(exc)
    return "No space left" in text or "Disk quota exceeded" in text or "errno 28" in text.lower()


class OutputLock:
    """An operating-system lock on an output folder, held for the whole of a job.

    ``fcntl.flock`` on ``.speakerembed.lock`` inside the folder, taken without waiting; the file
    holds the owner's process id, for the message a second job gets, and is removed when the job
    ends. The kernel releases the lock when the process ends, however it ends, so a killed job
    never leaves the folder locked (only the file, which the next job takes over). On a system
    without ``fcntl`` (Windows) no lock is taken.

    Parameters
    ----------
    folder : path
        The output folder (it must exist).
    flag : str
        How the folder is named in errors (``"-o"`` in the CLI, ``"output="`` in Python).
    """

    def __init__(self, folder: str | os.PathLike[str], *, flag: str = "output=") -> None:
        self.folder = Path(folder)
        self._flag = flag
        self._fd: int | None = None

    def acquire(self) -> OutputLock:
        """Take the lock, or raise :class:`OutputError` naming the job that holds it."""
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            return self
        path = self.folder / LOCK_FILE
        while True:
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise OutputError(
                    f"{_where(self._flag, self.folder)}: cannot create its lock file {LOCK_FILE} "
                    f"({exc.strerror}); choose another folder or fix its permissions"
                ) from exc
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                owner = ""
                with contextlib.suppress(OSError):
                    owner = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
                os.close(fd)
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise OutputError(
                        f"{_where(self._flag, self.folder)}: cannot lock {LOCK_FILE} ({exc.strerror}); "
                        "choose a folder on a local file system"
                    ) from exc
                pid = f" (pid {owner})" if owner.isdigit() else ""
                raise OutputError(
                    f"{_where(self._flag, self.folder)} is in use by another job{pid}; wait for it to "
                    "finish, or choose another folder (two jobs must never write one output)"
                ) from exc
            # The job before may have removed the file between our open and our lock: then
            # the lock is on a file no other job can find, so take the one at the path.
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(path))
            except OSError:
                same = False
            if same:
                break
            os.close(fd)
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        """Remove the lock file and let the lock go (in that order, so no job locks a removed file)."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                (self.folder / LOCK_FILE).unlink()
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> OutputLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return bool(a == b)


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
        #: Rows already written whose speaker or carried columns ``relabel`` changed.
        self.relabelled = 0
        self.rows_written = 0
        self._failed_write = False

    # -- checks ---------------------------------------------------------------------------------

    def _where(self) -> str:
        return _where(self._flag, self.folder)

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
        if not isinstance(old, dict):
            raise OutputError(
                f"{where} holds a {METADATA_FILE} that is not speakerembed's settings (it holds "
                f"{type(old).__name__ if old is not None else 'null'}); pass --overwrite (overwrite=True) "
                "to start afresh, or choose an empty or new folder"
            )
        self._check_settings(old, METADATA_FILE)
        for shard in shards:  # every shard: one of other settings in the middle must not mix in
            self._check_shard_schema(shard)

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

    def _damaged(self, shard: Path, exc: BaseException) -> OutputError:
        why = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        if len(why) > 120:
            why = why[:117] + "..."
        return OutputError(
            f"{self._where()}: the shard {shard.name} is damaged ({why}); remove it and run the "
            "same command again (its inputs are embedded again)"
        )

    def _foreign(self, shard: Path, why: str) -> OutputError:
        return OutputError(
            f"{self._where()} holds {shard.name}, which is not a speakerembed shard ({why}); the "
            "folder must read as one table, so move it away, pass --overwrite (overwrite=True) to "
            "start afresh, or choose an empty or new folder"
        )

    def _check_shard_schema(self, shard: Path) -> None:
        import pyarrow.parquet as pq

        try:
            schema = pq.read_schema(shard)
        except (OSError, ValueError) as exc:  # ArrowInvalid is a ValueError
            raise self._damaged(shard, exc) from exc
        raw = (schema.metadata or {}).get(METADATA_KEY)
        if raw is None:
            raise self._foreign(shard, "no speakerembed settings in its schema")
        try:
            settings = json.loads(raw)
        except ValueError:
            settings = None
        if not isinstance(settings, dict):
            raise self._foreign(shard, "its speakerembed settings are not a JSON object")
        self._check_settings(settings, shard.name)
        if not schema.remove_metadata().equals(self.schema.remove_metadata()):
            have, want = schema.names, self.schema.names
            if {"id", "error", "embedding"} - set(have):
                raise self._foreign(shard, f"its columns are {', '.join(have)}")
            raise OutputError(
                f"{self._where()} has other columns ({', '.join(have)}, per {shard.name}) than this "
                f"job ({', '.join(want)}); carry the same manifest columns, choose another folder, or "
                "pass --overwrite (overwrite=True) to embed every input again with these columns"
            )

    # -- opening --------------------------------------------------------------------------------

    def _read_shard(self, shard: Path) -> pa.Table:
        """A whole shard, its page checksums verified, or :class:`OutputError` naming it."""
        import numpy as np
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(shard, page_checksum_verification=True)
            emb = table.column("embedding").combine_chunks()
            values = emb.flatten().to_numpy(zero_copy_only=False)
        except (OSError, ValueError, KeyError) as exc:  # ArrowInvalid is a ValueError
            raise self._damaged(shard, exc) from exc
        if values.size and not np.isfinite(values).all():
            raise self._damaged(shard, ValueError("embeddings that are not finite numbers"))
        return table

    def open(self, relabel: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        """Clean stale temporary files, apply ``overwrite``/``retry_failed``, and load the written ids.

        Parameters
        ----------
        relabel : mapping of str to mapping, or None
            For ids already written: column name -> the value it should hold now (``speaker``
            and carried manifest columns). Shards whose rows differ are rewritten atomically with
            these values; embeddings and every other column stay as they were.

        Raises
        ------
        OutputError
            As :meth:`check`, and for a damaged shard or an id in more than one row.
        """
        import pyarrow as pa

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
        for shard in shards:  # one at a time: memory does not grow with the dataset
            table = self._read_shard(shard)
            ids = table.column("id").to_pylist()
            failed = table.column("error").is_valid().to_pylist()
            changed = False
            if self.retry_failed and any(failed):
                table = table.filter(pa.array([not f for f in failed]))
                self.retried += sum(failed)
                ids = [i for i, f in zip(ids, failed, strict=True) if not f]
                failed = [False] * len(ids)
                changed = True
            if relabel:
                table, n = self._relabelled(table, ids, relabel)
                self.relabelled += n
                changed = changed or n > 0
            if changed:
                if table.num_rows == 0:
                    shard.unlink()
                    _fsync_dir(self.folder)
                else:
                    self._atomic_write_table(shard, table)
            for i, f in zip(ids, failed, strict=True):
                if i in self.done:
                    raise OutputError(
                        f"{self._where()}: the id {i!r} is in more than one row; the folder was "
                        "edited by hand? pass --overwrite (overwrite=True) to start afresh"
                    )
                self.done[i] = f

    def _relabelled(
        self, table: pa.Table, ids: list[str], relabel: Mapping[str, Mapping[str, Any]]
    ) -> tuple[pa.Table, int]:
        """``table`` with the values of ``relabel`` for its ids, and how many rows changed."""
        import pyarrow as pa

        names = sorted({c for v in relabel.values() for c in v if c in table.column_names})
        if not names:
            return table, 0
        columns = {c: table.column(c).to_pylist() for c in names}
        changed = 0
        for row, i in enumerate(ids):
            new = relabel.get(i)
            if new is None:
                continue
            differs = False
            for c in names:
                if c in new and not _same(columns[c][row], new[c]):
                    columns[c][row] = new[c]
                    differs = True
            changed += differs
        if not changed:
            return table, 0
        for c in names:
            k = table.column_names.index(c)
            field = table.schema.field(k)
            table = table.set_column(k, field, pa.array(columns[c], type=field.type))
        return table, changed

    # -- writing --------------------------------------------------------------------------------

    def _tmp(self, path: Path) -> Path:
        # The process id keeps temporary names apart between processes (the lock already keeps
        # a second job out; this guards a reader or a tool that writes beside it).
        return path.with_name(f".{path.name}.tmp.{os.getpid()}")

    def _no_space(self, path: Path) -> OutputError:
        self._failed_write = True
        return OutputError(f"no space left writing {path}; free space and run the same command again")

    def _atomic_write_bytes(self, path: Path, data: bytes) -> None:
        tmp = self._tmp(path)
        try:
            with tmp.open("wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            if _no_space(exc):
                raise self._no_space(path) from exc
            raise OutputError(
                f"{self._where()}: cannot write {path.name} ({exc.strerror}); choose another folder"
            ) from exc
        _fsync_dir(self.folder)

    def _atomic_write_table(self, path: Path, table: pa.Table) -> None:
        import pyarrow.parquet as pq

        tmp = self._tmp(path)
        try:
            pq.write_table(
                table.cast(self.schema) if table.schema != self.schema else table,
                tmp,
                write_page_checksum=True,
            )
            _fsync_file(tmp)
            os.replace(tmp, path)
        except BaseException as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            if isinstance(exc, Exception):
                self._failed_write = True  # nothing is tried again after a failed write
            if _no_space(exc):
                raise self._no_space(path) from exc
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
        while path.exists():  # never over a shard, whoever wrote it
            self._next_shard += 1
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
        if self._buffered and not self._failed_write:
            self._flush(self._buffered)

    def close(self) -> None:
        """Write what is buffered, unless a write has failed (then nothing is tried again)."""
        self.flush()

    def pending(self, ids: Iterable[str]) -> list[str]:
        """The ids not written yet."""
        return [i for i in ids if i not in self.done]
