r"""Sources: turn files, folders, file lists and manifests into :class:`Record` objects.

A record is what travels from a source to an engine: an id, a path, an optional speaker and the
manifest's other columns. No audio is read here. The rules:

- **Files** are taken as they are; their id is the path as given.
- **Folders** are searched recursively for files whose extension is in :data:`AUDIO_EXTENSIONS`
  (case-insensitive); hidden files and folders (a name starting with ``.``) and other files are
  skipped. An id is the file's path relative to the folder, with ``/`` separators, so the same
  folder gives the same ids wherever it is mounted. Symbolic links are followed, but each real
  folder is visited once and each real file taken once (the first name in sorted order), so a
  link loop (``a/up -> ..``) or a second name for a file adds nothing.
- **File lists** (``--files-from``, ``-`` for standard input) hold one path a line; blank lines
  and lines starting with ``#`` are skipped. A relative path resolves against the list's folder
  (the current folder for standard input), and its id is the path as listed.
- **Manifests** (CSV, JSONL or Parquet) have a ``path`` column and optional ``id`` and ``speaker``
  columns; every other column is carried into the output unchanged. Relative paths resolve against
  the manifest's folder, and the id is the ``id`` column, else the path as listed. Every column of
  a CSV manifest is read as text: ``007`` stays ``007``, ``NA`` is a speaker named ``NA``, and
  ``01`` and ``1`` are two ids; an empty ``speaker`` cell means no speaker.
- **Kaldi/WeSpeaker lists** (``wav.scp``: ``<id> <path>`` a line, whitespace separated) are
  manifests too, read as such when the file is named ``*.scp`` or ``manifest_format="scp"``.
- **File names that are not UTF-8** (held by Python as surrogate escapes) are read as they are;
  their ids are the names with the bad bytes written as ``\xNN`` (:func:`as_text`), so they can be
  stored and printed.

Ids must be unique across all inputs: :func:`collect` raises :class:`InputsError` (a
:class:`~speakerembed.ConfigError`)
naming the duplicates, before any audio is read.
"""

from __future__ import annotations

import dataclasses
import io
import os
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TextIO, get_args

from ..errors import ConfigError

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "AUDIO_EXTENSIONS",
    "MANIFEST_FORMATS",
    "RESERVED_COLUMNS",
    "InputsError",
    "ManifestFormat",
    "Record",
    "Sources",
    "as_text",
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


#: How a manifest is read: by its suffix (``auto``), or as CSV, JSON lines, Parquet or a
#: Kaldi/WeSpeaker ``wav.scp`` list (``<id> <path>`` a line).
ManifestFormat = Literal["auto", "csv", "jsonl", "parquet", "scp"]
#: The values of :data:`ManifestFormat`.
MANIFEST_FORMATS: tuple[str, ...] = get_args(ManifestFormat)


def as_text(name: str) -> str:
    r"""``name`` as valid UTF-8 text: bytes that were not UTF-8 are written as ``\xNN``.

    Python holds a file name that is not valid UTF-8 with surrogate escapes (``'caf\udce9.wav'``
    for the bytes ``caf\xe9.wav``). Such a string opens the file, but cannot be written to
    Parquet or JSON, nor printed on every terminal. This is the name to show and to store.

    Parameters
    ----------
    name : str
        A path or id, possibly holding surrogate escapes.

    Returns
    -------
    str
        ``name`` itself when it is valid text, else its bytes decoded with ``\xNN`` escapes.

    Examples
    --------
    >>> from speakerembed.corpus.sources import as_text
    >>> as_text("alice/1.wav")
    'alice/1.wav'
    >>> as_text(b"caf\xe9.wav".decode("utf-8", "surrogateescape"))
    'caf\\xe9.wav'
    """
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return name


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


def _identity(path: str) -> tuple[int, int] | None:
    """The (device, inode) of what ``path`` names, following links; None if it cannot be read."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def scan_folder(folder: str | os.PathLike[str], *, seen: set[tuple[int, int]] | None = None) -> list[Record]:
    """Records for the audio files under ``folder``, recursively, in sorted order.

    Hidden files and folders and files without an audio extension are skipped. Ids are paths
    relative to ``folder``, with ``/`` separators (names that are not UTF-8 as :func:`as_text`
    writes them). Symbolic links are followed, but each real folder is visited once and each real
    file is taken once, under the first name in sorted order: a link loop ends, and a file with
    two names is embedded once.

    Parameters
    ----------
    folder : path
        The folder to search.
    seen : set of (int, int) or None
        The ``(st_dev, st_ino)`` of folders and files already taken; pass one set to several
        scans so that they share it. Updated in place.

    Returns
    -------
    list of Record
    """
    root = os.fspath(folder)
    visited: set[tuple[int, int]] = set() if seen is None else seen
    top = _identity(root)
    if top is not None:
        if top in visited:
            return []
        visited.add(top)
    found: list[Record] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        keep = []
        for d in sorted(dirnames):
            if _is_hidden(d):
                continue
            ident = _identity(os.path.join(dirpath, d))
            if ident is None or ident in visited:
                continue  # a loop, a second name for a folder already searched, or unreadable
            visited.add(ident)
            keep.append(d)
        dirnames[:] = keep
        for name in sorted(filenames):
            if _is_hidden(name) or os.path.splitext(name)[1].lower() not in AUDIO_EXTENSIONS:
                continue
            path = os.path.join(dirpath, name)
            ident = _identity(path)
            if ident is not None:
                if ident in visited:
                    continue  # the same file through another name
                visited.add(ident)
            rel = Path(os.path.relpath(path, root)).as_posix()
            found.append(Record(as_text(rel), path))
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
        if stdin is not None:
            return _list_records(stdin, None)
        if getattr(sys.stdin, "buffer", None) is not None:
            # Names that are not UTF-8 come through as surrogate escapes, as os.listdir gives them.
            stream = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="surrogateescape")
            try:
                return _list_records(stream, None)
            finally:
                stream.detach()
        return _list_records(sys.stdin, None)  # pragma: no cover - a replaced stdin without bytes
    path = Path(source)
    try:
        with path.open(encoding="utf-8", errors="surrogateescape") as f:
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
        out.append(Record(as_text(listed), _resolve(listed, base)))
    return out


_SUFFIXES = {
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".scp": "scp",
}


def manifest_format_of(path: Path, manifest_format: str = "auto") -> str:
    """The format to read ``path`` as: ``manifest_format``, or one its name implies."""
    if manifest_format not in MANIFEST_FORMATS:
        raise InputsError(
            f"manifest_format={manifest_format!r} is not one of {', '.join(MANIFEST_FORMATS)}; "
            "pass one of those"
        )
    if manifest_format != "auto":
        return manifest_format
    found = _SUFFIXES.get(path.suffix.lower())
    if found is None:
        raise InputsError(
            f"the manifest {path} is not .csv, .jsonl, .parquet or a Kaldi wav.scp; rename it with one "
            "of those suffixes, or pass manifest_format='csv', 'jsonl', 'parquet' or 'scp'"
        )
    return found


def _csv_header(path: Path) -> list[str]:
    import csv

    with path.open(encoding="utf-8-sig", newline="") as f:
        return next(csv.reader(f), [])


def _read_scp(path: Path) -> tuple[list[str], list[str]]:
    """A Kaldi/WeSpeaker ``wav.scp``: ``<id> <path>`` a line, as lists of ids and paths."""
    ids: list[str] = []
    paths: list[str] = []
    with path.open(encoding="utf-8", errors="surrogateescape") as f:
        for number, line in enumerate(f, 1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            parts = text.split(maxsplit=1)
            if len(parts) != 2 or not parts[1].strip():
                raise InputsError(
                    f"line {number} of the wav.scp {path} is {as_text(text)!r}, not '<id> <path>'; "
                    "write one id and one audio path a line"
                )
            rid, listed = parts[0], parts[1].strip()
            if listed.endswith("|"):
                raise InputsError(
                    f"line {number} of the wav.scp {path} is a command ({as_text(listed)!r}), not a "
                    "file; write the audio to files first (for example with Kaldi's wav-copy) and "
                    "list their paths"
                )
            ids.append(as_text(rid))
            paths.append(listed)
    return ids, paths


def _read_table(path: Path, manifest_format: str = "auto") -> pa.Table:
    import pyarrow as pa

    kind = manifest_format_of(path, manifest_format)
    try:
        if kind == "csv":
            import pyarrow.csv as pcsv

            # Every column as text: ids such as 007 and speakers such as NA keep their spelling.
            names = _csv_header(path)
            return pcsv.read_csv(
                path,
                convert_options=pcsv.ConvertOptions(
                    column_types={name: pa.string() for name in names},
                    null_values=[""],  # only an empty cell is missing; NA, null and N/A are text
                    strings_can_be_null=True,
                    quoted_strings_can_be_null=False,
                ),
            )
        if kind == "jsonl":
            import pyarrow.json as pjson

            return pjson.read_json(path)
        import pyarrow.parquet as pq

        return pq.read_table(path)
    except (OSError, UnicodeDecodeError, pa.ArrowException) as exc:
        raise InputsError(f"cannot read the manifest {path}: {exc}") from exc


def read_manifest(path: str | os.PathLike[str], *, manifest_format: ManifestFormat = "auto") -> Sources:
    """Records for a CSV, JSONL or Parquet manifest with a ``path`` column, or a ``wav.scp``.

    Optional ``id`` and ``speaker`` columns are used as such; other columns are carried. A CSV is
    read as text, every column. A Kaldi/WeSpeaker ``wav.scp`` (``<id> <path>`` a line, whitespace
    separated) gives ids and paths only.

    Parameters
    ----------
    path : path
        The manifest.
    manifest_format : {"auto", "csv", "jsonl", "parquet", "scp"}
        How to read it; ``"auto"`` goes by the suffix (``.csv``, ``.jsonl``/``.ndjson``/``.json``,
        ``.parquet``/``.pq``, ``.scp``).

    Returns
    -------
    Sources

    Raises
    ------
    ConfigError
        If it cannot be read, has no ``path`` column, has an empty path, or carries a column
        whose name the output uses.
    """
    import pyarrow as pa

    mpath = Path(path)
    if manifest_format_of(mpath, manifest_format) == "scp":
        try:
            scp_ids, scp_paths = _read_scp(mpath)
        except (OSError, UnicodeDecodeError) as exc:
            raise InputsError(f"cannot read the wav.scp {mpath}: {exc}; pass a text file") from exc
        return Sources(
            [
                Record(rid, _resolve(listed, mpath.parent))
                for rid, listed in zip(scp_ids, scp_paths, strict=True)
            ]
        )
    table = _read_table(mpath, manifest_format)
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
                listed if rid is None or str(rid) == "" else str(rid),
                _resolve(listed, base),
                None if spk is None or str(spk) == "" else str(spk),
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
    manifest_format: ManifestFormat = "auto",
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
        A CSV, JSONL or Parquet manifest, or a Kaldi/WeSpeaker ``wav.scp``.
    stdin : text stream or None
        Standard input for ``files_from="-"`` (default: standard input).
    manifest_format : {"auto", "csv", "jsonl", "parquet", "scp"}
        How to read ``manifest`` (see :func:`read_manifest`).

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
    seen: set[tuple[int, int]] = set()  # shared by the folder scans: a folder given twice adds nothing
    folders: list[str] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            records.extend(scan_folder(p, seen=seen))
            folders.append(as_text(os.fspath(item)))
        elif p.exists():
            records.append(Record(as_text(os.fspath(item)), os.fspath(item)))
        else:
            raise InputsError(
                f"the input {as_text(os.fspath(item))} does not exist; pass audio files or folders"
            )
    if files_from is not None:
        records.extend(read_file_list(files_from, stdin=stdin))
    extra_fields: list[pa.Field] = []
    if manifest is not None:
        found = read_manifest(manifest, manifest_format=manifest_format)
        records.extend(found.records)
        extra_fields = found.extra_fields
    if not records:
        where = ""
        if folders:
            where = f" (the folder(s) {', '.join(folders)} hold no files with an audio extension)"
        raise InputsError(f"no inputs{where}: pass audio files or folders, files_from=FILE or manifest=FILE")
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
