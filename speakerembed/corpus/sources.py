"""Sources: turn files, folders, file lists and manifests into :class:`Record` objects.

A record is what travels from a source to an engine: an id, a path, an optional speaker and the
manifest's other columns. No audio is read here. The rules:

- **Files** are taken as they are; their id is the path as given.
- **Folders** are searched recursively for files whose extension is in :data:`AUDIO_EXTENSIONS`
  (case-insensitive); hidden files and folders (a name starting with ``.``) and other files are
  skipped. An id is the file's path relative to the folder, with ``/`` separators, so the same
  folder gives the same ids wherever it is mounted.
- **File lists** (``--files-from``, ``-`` for standard input) hold one path a line; blank lines
  and lines starting with ``#`` are skipped. A relative path resolves against the list's folder
  (the current folder for standard input), and its id is the path as listed.
- **Manifests** (CSV, JSONL or Parquet) have a ``path`` column and optional ``id`` and ``speaker``
  columns; every other column is carried into the output unchanged. Relative paths resolve against
  the manifest's folder, and the id is the ``id`` column, else the path as listed.

Ids must be unique across all inputs: :func:`collect` raises :class:`InputsError` (a
:class:`~speakerembed.ConfigError`)
naming the duplicates, before any audio is read.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from ..errors import ConfigError

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "AUDIO_EXTENSIONS",
    "RESERVED_COLUMNS",
    "InputsError",
    "Record",
    "Sources",
    "check_unique",
    "collect",
    "read_file_list",
    "read_manifest",
    "scan_folder",
]

#: File extensions a folder scan takes as audio (lower case, with the dot).
AUDIO_EXTENSIONS = frozenset(
    {
        ".wav",
        ".flac",
        ".ogg",
        ".oga",
        ".opus",
        ".mp3",
        ".aif",
        ".aiff",
        ".aifc",
        ".au",
        ".caf",
        ".w64",
        ".m4a",
    }
)

#: Column names the output owns; a manifest may not carry columns with these names.
RESERVED_COLUMNS = (
    "id",
    "path",
    "speaker",
    "embedding",
    "duration_s",
    "speech_s",
    "sample_rate",
    "n_windows",
    "error",
    "error_type",
)


class InputsError(ConfigError):
    """The inputs of a job are wrong: missing, unreadable lists or manifests, duplicate ids."""


@dataclasses.dataclass(frozen=True)
class Record:
    """One input of a corpus job.

    Attributes
    ----------
    id : str
        Unique within the job; the key that resume uses.
    path : str
        The audio file, absolute or relative to the current folder.
    speaker : str or None
        The speaker, when a manifest gives one.
    extra : dict of str to object
        The manifest's other columns for this row (plain Python values), carried into the output.
    """

    id: str
    path: str
    speaker: str | None = None
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A flat dict: ``id``, ``path``, ``speaker`` and the extra columns."""
        return {"id": self.id, "path": self.path, "speaker": self.speaker, **self.extra}

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> Record:
        """The inverse of :meth:`to_dict` (other keys become ``extra``)."""
        extra = {k: v for k, v in row.items() if k not in ("id", "path", "speaker")}
        speaker = row.get("speaker")
        return cls(str(row["id"]), str(row["path"]), None if speaker is None else str(speaker), extra)


@dataclasses.dataclass(frozen=True)
class Sources:
    """The records of a job, and the arrow types of the columns a manifest carries.

    Attributes
    ----------
    records : list of Record
        In input order, ids unique.
    extra_fields : list
        The carried manifest columns as ``pyarrow.Field`` objects, in manifest order (empty
        without a manifest).
    """

    records: list[Record]
    extra_fields: list[pa.Field] = dataclasses.field(default_factory=list)


def _is_hidden(name: str) -> bool:
    return name.startswith(".")


def scan_folder(folder: str | os.PathLike[str]) -> list[Record]:
    """Records for the audio files under ``folder``, recursively, in sorted order.

    Hidden files and folders and files without an audio extension are skipped. Ids are paths
    relative to ``folder``, with ``/`` separators.
    """
    root = Path(folder)
    found: list[Record] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not _is_hidden(d))
        for name in sorted(filenames):
            if _is_hidden(name) or Path(name).suffix.lower() not in AUDIO_EXTENSIONS:
                continue
            path = Path(dirpath) / name
            found.append(Record(path.relative_to(root).as_posix(), os.fspath(path)))
    return found


def _resolve(listed: str, base: Path | None) -> str:
    p = Path(os.path.expanduser(listed))
    if base is not None and not p.is_absolute():
        p = base / p
    return os.fspath(p)


def read_file_list(source: str | os.PathLike[str], *, stdin: TextIO | None = None) -> list[Record]:
    """Records for a file list: one path a line; ``"-"`` reads standard input.

    Relative paths resolve against the list's folder (the current folder for standard input);
    each id is the path as listed.

    Raises
    ------
    ConfigError
        If the list cannot be read.
    """
    if os.fspath(source) == "-":
        stream = stdin if stdin is not None else sys.stdin
        return _list_records(stream, None)
    path = Path(source)
    try:
        with path.open(encoding="utf-8") as f:
            return _list_records(f, path.parent)
    except (OSError, UnicodeDecodeError) as exc:
        raise InputsError(
            f"cannot read the file list {path}: {exc}; pass a text file, one path a line"
        ) from exc


def _list_records(lines: Iterable[str], base: Path | None) -> list[Record]:
    out = []
    for line in lines:
        listed = line.rstrip("\r\n")
        if not listed.strip() or listed.lstrip().startswith("#"):
            continue
        out.append(Record(listed, _resolve(listed, base)))
    return out


def _read_table(path: Path) -> pa.Table:
    import pyarrow as pa

    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            import pyarrow.csv as pcsv

            return pcsv.read_csv(path)
        if suffix in (".jsonl", ".ndjson", ".json"):
            import pyarrow.json as pjson

            return pjson.read_json(path)
        if suffix in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            return pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise InputsError(f"cannot read the manifest {path}: {exc}") from exc
    raise InputsError(
        f"the manifest {path} is not .csv, .jsonl or .parquet; pass a manifest with one of those suffixes"
    )


def read_manifest(path: str | os.PathLike[str]) -> Sources:
    """Records for a CSV, JSONL or Parquet manifest with a ``path`` column.

    Optional ``id`` and ``speaker`` columns are used as such; other columns are carried.

    Raises
    ------
    ConfigError
        If it cannot be read, has no ``path`` column, has an empty path, or carries a column
        whose name the output uses.
    """
    import pyarrow as pa

    mpath = Path(path)
    table = _read_table(mpath)
    if "path" not in table.column_names:
        raise InputsError(
            f"the manifest {mpath} has no 'path' column (it has {', '.join(table.column_names) or 'none'}); "
            "name the column of audio paths 'path'"
        )
    extras = [c for c in table.column_names if c not in ("id", "path", "speaker")]
    clash = [c for c in extras if c in RESERVED_COLUMNS]
    if clash:  # pragma: no cover - RESERVED_COLUMNS beyond id/path/speaker
        raise InputsError(
            f"the manifest {mpath} has columns named {', '.join(clash)}, which the output uses; rename them"
        )
    fields = [table.schema.field(c) for c in extras]
    fields = [f.with_type(pa.string()) if pa.types.is_null(f.type) else f for f in fields]
    base = mpath.parent
    paths = table.column("path").to_pylist()
    ids = table.column("id").to_pylist() if "id" in table.column_names else [None] * len(paths)
    speakers = table.column("speaker").to_pylist() if "speaker" in table.column_names else [None] * len(paths)
    extra_cols = {c: table.column(c).to_pylist() for c in extras}
    records = []
    for i, listed in enumerate(paths):
        if listed is None or not str(listed).strip():
            raise InputsError(
                f"the manifest {mpath} has an empty path on row {i + 1}; fill it in or drop the row"
            )
        listed = str(listed)
        rid = ids[i]
        spk = speakers[i]
        records.append(
            Record(
                listed if rid is None else str(rid),
                _resolve(listed, base),
                None if spk is None else str(spk),
                {c: extra_cols[c][i] for c in extras},
            )
        )
    return Sources(records, fields)


def collect(
    inputs: Sequence[str | os.PathLike[str]] = (),
    *,
    files_from: str | os.PathLike[str] | None = None,
    manifest: str | os.PathLike[str] | None = None,
    stdin: TextIO | None = None,
) -> Sources:
    """All the records of a job, from files and folders, a file list and a manifest.

    Parameters
    ----------
    inputs : sequence of path
        Audio files and folders. A file's id is its path as given; a folder's files get ids
        relative to the folder.
    files_from : path or ``"-"`` or None
        A file list, one path a line; ``"-"`` reads ``stdin``.
    manifest : path or None
        A CSV, JSONL or Parquet manifest.
    stdin : text stream or None
        Standard input for ``files_from="-"`` (default: standard input).

    Returns
    -------
    Sources

    Raises
    ------
    ConfigError
        For an input that does not exist, an unreadable list or manifest, no inputs at all, or
        duplicate ids (the message names them).
    """
    records: list[Record] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            records.extend(scan_folder(p))
        elif p.exists():
            records.append(Record(os.fspath(item), os.fspath(item)))
        else:
            raise InputsError(f"the input {os.fspath(item)} does not exist; pass audio files or folders")
    if files_from is not None:
        records.extend(read_file_list(files_from, stdin=stdin))
    extra_fields: list[pa.Field] = []
    if manifest is not None:
        found = read_manifest(manifest)
        records.extend(found.records)
        extra_fields = found.extra_fields
    check_unique(records)
    return Sources(records, extra_fields)


def check_unique(records: Iterable[Record]) -> None:
    """Raise :class:`~speakerembed.ConfigError` naming the ids that occur more than once."""
    counts = Counter(r.id for r in records)
    dup = [k for k, n in counts.items() if n > 1]
    if dup:
        shown = ", ".join(repr(d) for d in dup[:5]) + (f" and {len(dup) - 5} more" if len(dup) > 5 else "")
        raise InputsError(
            f"{len(dup)} input id(s) occur more than once: {shown}; each input needs its own id "
            "(give a manifest an 'id' column, or list each file once)"
        )
