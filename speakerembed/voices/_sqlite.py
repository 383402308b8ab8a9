"""The SQLite store: the embedded default, one file, several processes at once.

WAL mode (readers never wait for the writer), one ``BEGIN IMMEDIATE`` transaction per change
(writers queue behind each other for up to ``busy_timeout_s`` instead of failing), the schema
made by numbered migrations recorded in ``PRAGMA user_version``, and ``synchronous=NORMAL``: a
process killed at any moment leaves the last committed state.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from ..errors import LibraryError
from ._store import SCHEMA_VERSION, VoiceRow, fill_matrix

__all__ = ["SQLiteStore"]

_MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        "CREATE TABLE voices ("
        " id INTEGER PRIMARY KEY AUTOINCREMENT,"
        " name TEXT NOT NULL UNIQUE,"
        " embedding BLOB NOT NULL,"
        " clips TEXT NOT NULL,"
        " created TEXT NOT NULL,"
        " updated TEXT NOT NULL,"
        " conditioning BLOB,"
        " conditioning_weights TEXT)",
        "INSERT INTO meta (key, value) VALUES ('generation', '0')",
    ),
}
_BUMP = "UPDATE meta SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) WHERE key = 'generation'"
_COLUMNS = "name, embedding, clips, created, updated, conditioning, conditioning_weights"


class SQLiteStore:
    """A voice library in one SQLite file (created when missing).

    Parameters
    ----------
    path : str or os.PathLike
        The database file.
    busy_timeout_s : float
        How long a change waits for another process's transaction before giving up.
    """

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout_s: float = 60.0) -> None:
        self.path = Path(path)
        self.location = str(self.path)
        self.busy_timeout_s = busy_timeout_s
        if self.path.is_dir():
            raise LibraryError(f"library {self.location} is a folder; pass a file path such as voices.db")
        if not self.path.parent.is_dir():
            raise LibraryError(
                f"library {self.location}: the folder {self.path.parent} does not exist; create it first"
            )
        self._lock = threading.RLock()
        with self._errors():
            self._conn = sqlite3.connect(
                self.location, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
            )
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute(
                "PRAGMA cache_size=-65536"
            )  # 64 MB: bulk inserts touch the name index all over
            self._migrate()

    # -- plumbing ---------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.OperationalError as exc:
            text = str(exc)
            if "locked" in text or "busy" in text:
                raise LibraryError(
                    f"library {self.location} is locked: another process held it for more than "
                    f"{self.busy_timeout_s:g} s; try again when it has finished"
                ) from None
            raise LibraryError(f"library {self.location} cannot be used: {text}") from None
        except sqlite3.DatabaseError as exc:
            raise LibraryError(
                f"library {self.location} is not a voice library or is corrupt ({exc}); pass a "
                "new path, or restore the file from a copy"
            ) from None

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock, self._errors():
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    @contextlib.contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._lock, self._errors():
            conn = self._conn
            conn.execute("BEGIN")
            try:
                yield conn
            finally:
                conn.execute("COMMIT")

    def _migrate(self) -> None:
        version = int(self._conn.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise LibraryError(
                f"library {self.location} has schema version {version}, newer than this "
                f"speakerembed's {SCHEMA_VERSION}; upgrade speakerembed to open it"
            )
        if version == SCHEMA_VERSION:
            return
        with self._write() as conn:
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            if version == 0:
                tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
                if tables:
                    raise LibraryError(
                        f"library {self.location} is an SQLite database of something else "
                        f"(tables {', '.join(sorted(tables))}); pass a new path for a voice library"
                    )
            for step in range(version + 1, SCHEMA_VERSION + 1):
                for statement in _MIGRATIONS[step]:
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {step}")

    # -- the Store interface ----------------------------------------------------------------------

    def meta(self) -> dict[str, str]:
        """Every ``meta`` key and value."""
        with self._read() as conn:
            return dict(conn.execute("SELECT key, value FROM meta").fetchall())

    def init_meta(self, values: dict[str, str]) -> dict[str, str]:
        """Set the keys not set yet, in one transaction; the whole ``meta``."""
        with self._write() as conn:
            conn.executemany("INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)", list(values.items()))
            return dict(conn.execute("SELECT key, value FROM meta").fetchall())

    def set_meta(self, values: dict[str, str]) -> None:
        """Set (or overwrite) ``meta`` keys in one transaction."""
        with self._write() as conn:
            conn.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", list(values.items()))

    def generation(self) -> int:
        """The change counter."""
        with self._lock, self._errors():
            return int(self._conn.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0])

    def insert(self, rows: Sequence[VoiceRow], *, replace: bool) -> tuple[int, list[str]]:
        """Add (or with ``replace``, overwrite) voices in one transaction."""
        params = rows  # VoiceRow is a tuple in the column order
        with self._write() as conn:
            before = int(conn.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0])
            if replace:
                conn.executemany(
                    f"INSERT INTO voices ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT(name) DO UPDATE SET embedding = excluded.embedding, "
                    "clips = excluded.clips, updated = excluded.updated, "
                    "conditioning = excluded.conditioning, "
                    "conditioning_weights = excluded.conditioning_weights",
                    params,
                )
            else:
                try:
                    conn.executemany(f"INSERT INTO voices ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)", params)
                except sqlite3.IntegrityError:
                    conn.execute("ROLLBACK")
                    conn.execute("BEGIN")
                    taken = self._existing(conn, [r.name for r in rows])
                    return before, taken
            conn.execute(_BUMP)
            return before, []

    @staticmethod
    def _existing(conn: sqlite3.Connection, names: list[str]) -> list[str]:
        found: list[str] = []
        for start in range(0, len(names), 500):
            chunk = names[start : start + 500]
            marks = ", ".join("?" * len(chunk))
            found += [r[0] for r in conn.execute(f"SELECT name FROM voices WHERE name IN ({marks})", chunk)]
        return sorted(found)

    def remove(self, name: str) -> bool:
        """Delete one voice; whether it existed."""
        with self._write() as conn:
            gone = conn.execute("DELETE FROM voices WHERE name = ?", (name,)).rowcount > 0
            if gone:
                conn.execute(_BUMP)
            return gone

    def get(self, name: str) -> VoiceRow | None:
        """One voice, or None."""
        with self._read() as conn:
            row = conn.execute(f"SELECT {_COLUMNS} FROM voices WHERE name = ?", (name,)).fetchone()
        return None if row is None else VoiceRow(*row)

    def names(self) -> list[str]:
        """Every name, in enrolment order."""
        with self._read() as conn:
            return [r[0] for r in conn.execute("SELECT name FROM voices ORDER BY id")]

    def load_all(self) -> tuple[int, list[str], npt.NDArray[np.float32]]:
        """The generation, names and the (n, 256) float32 embedding matrix, from one snapshot."""
        with self._read() as conn:
            gen = int(conn.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0])
            n = int(conn.execute("SELECT count(*) FROM voices").fetchone()[0])
            cursor = conn.execute("SELECT name, embedding FROM voices ORDER BY id")
            # Chunks of 8192 rows (8 MB of embeddings): joined and copied while still in cache.
            names, matrix = fill_matrix(n, iter(lambda: cursor.fetchmany(8192), []))
        return gen, names, matrix

    def set_conditioning(self, name: str, blob: bytes, weights_sha256: str | None) -> bool:
        """Store a conditioning embedding with a voice; whether the voice exists."""
        with self._write() as conn:
            # The search matrix does not change, so the generation stays.
            cursor = conn.execute(
                "UPDATE voices SET conditioning = ?, conditioning_weights = ? WHERE name = ?",
                (blob, weights_sha256, name),
            )
            return cursor.rowcount > 0

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()

    def __del__(self) -> None:
        # A library dropped without close() closes its connection quietly.
        conn = getattr(self, "_conn", None)
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()
