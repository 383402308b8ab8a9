"""The PostgreSQL store (psycopg 3, the ``postgres`` extra): one library for many processes or machines.

The same tables as the SQLite store, in the URL's database (``search_path`` picks the schema).
Every change is one ``with conn.transaction():``; the schema version lives in ``meta`` as
``schema_version``, and migrations run under an advisory lock so that replicas starting together
migrate once. Reloads read one ``REPEATABLE READ`` snapshot.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import LibraryError, missing_backend
from ._store import SCHEMA_VERSION, VoiceRow, fill_matrix

__all__ = ["PostgresStore"]

_MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        "CREATE TABLE IF NOT EXISTS voices ("
        " id BIGSERIAL PRIMARY KEY,"
        " name TEXT NOT NULL UNIQUE,"
        " embedding BYTEA NOT NULL,"
        " clips TEXT NOT NULL,"
        " created TEXT NOT NULL,"
        " updated TEXT NOT NULL,"
        " conditioning BYTEA,"
        " conditioning_weights TEXT)",
        "INSERT INTO meta (key, value) VALUES ('generation', '0') ON CONFLICT (key) DO NOTHING",
    ),
}
_LOCK_KEY = 0x5E1CE_0001
_BUMP = (
    "UPDATE meta SET value = (value::bigint + 1)::text WHERE key = 'generation' RETURNING value::bigint - 1"
)
_COLUMNS = "name, embedding, clips, created, updated, conditioning, conditioning_weights"


def _redact(url: str) -> str:
    # Never print a password: postgresql://user:secret@host/db -> postgresql://user@host/db
    head, sep, tail = url.partition("://")
    if "@" in tail:
        creds, _, rest = tail.rpartition("@")
        tail = f"{creds.split(':', 1)[0]}@{rest}"
    return f"{head}{sep}{tail}"


class PostgresStore:
    """A voice library in a PostgreSQL database.

    Parameters
    ----------
    url : str
        A ``postgresql://`` connection URL.
    busy_timeout_s : float
        How long a statement waits for another transaction's locks (``lock_timeout``).
    """

    def __init__(self, url: str, *, busy_timeout_s: float = 60.0) -> None:
        try:
            import psycopg
        except ImportError:
            raise missing_backend("psycopg", "postgres", "a PostgreSQL voice library") from None
        self._psycopg = psycopg
        self.location = _redact(url)
        self.busy_timeout_s = busy_timeout_s
        self._lock = threading.RLock()
        with self._errors():
            self._conn: Any = psycopg.connect(url, autocommit=True, connect_timeout=10)
            self._conn.execute(f"SET lock_timeout = {int(busy_timeout_s * 1000)}")
            self._migrate()

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        psycopg = self._psycopg
        try:
            yield
        except psycopg.errors.LockNotAvailable:
            raise LibraryError(
                f"library {self.location} is locked: another transaction held it for more than "
                f"{self.busy_timeout_s:g} s; try again when it has finished"
            ) from None
        except psycopg.OperationalError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise LibraryError(f"library {self.location} cannot be reached: {first}") from None
        except psycopg.DatabaseError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise LibraryError(f"library {self.location} cannot be used: {first}") from None

    @contextlib.contextmanager
    def _tx(self) -> Iterator[Any]:
        with self._lock, self._errors(), self._conn.transaction():
            yield self._conn

    def _migrate(self) -> None:
        with self._tx() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
            exists = conn.execute("SELECT to_regclass('meta') IS NOT NULL").fetchone()[0]
            version = 0
            if exists:
                row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
                version = int(row[0]) if row else 0
            if version > SCHEMA_VERSION:
                raise LibraryError(
                    f"library {self.location} has schema version {version}, newer than this "
                    f"speakerembed's {SCHEMA_VERSION}; upgrade speakerembed to open it"
                )
            for step in range(version + 1, SCHEMA_VERSION + 1):
                for statement in _MIGRATIONS[step]:
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema_version', %s) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (str(step),),
                )

    def meta(self) -> dict[str, str]:
        """Every ``meta`` key and value."""
        with self._tx() as conn:
            return dict(conn.execute("SELECT key, value FROM meta").fetchall())

    def init_meta(self, values: dict[str, str]) -> dict[str, str]:
        """Set the keys not set yet, in one transaction; the whole ``meta``."""
        with self._tx() as conn:
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO meta (key, value) VALUES (%s, %s) ON CONFLICT (key) DO NOTHING",
                    list(values.items()),
                )
            return dict(conn.execute("SELECT key, value FROM meta").fetchall())

    def set_meta(self, values: dict[str, str]) -> None:
        """Set (or overwrite) ``meta`` keys in one transaction."""
        with self._tx() as conn, conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO meta (key, value) VALUES (%s, %s) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                list(values.items()),
            )

    def generation(self) -> int:
        """The change counter."""
        with self._lock, self._errors():
            return int(self._conn.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0])

    def insert(self, rows: Sequence[VoiceRow], *, replace: bool) -> tuple[int, list[str]]:
        """Add (or with ``replace``, overwrite) voices in one transaction."""
        try:
            return self._insert(rows, replace)
        except _TakenError as taken:  # the transaction was rolled back, the bump with it
            return taken.before, taken.names

    def _insert(self, rows: Sequence[VoiceRow], replace: bool) -> tuple[int, list[str]]:
        names = [r.name for r in rows]
        with self._tx() as conn:
            # The generation row lock also queues concurrent writers, as SQLite's BEGIN IMMEDIATE does.
            before = int(conn.execute(_BUMP).fetchone()[0])
            if not replace:
                taken = [r[0] for r in conn.execute("SELECT name FROM voices WHERE name = ANY(%s)", (names,))]
                if taken:
                    raise _TakenError(before, sorted(taken))
            with conn.cursor() as cur:
                params = [
                    (
                        r.name,
                        r.embedding,
                        r.clips,
                        r.created,
                        r.updated,
                        r.conditioning,
                        r.conditioning_weights,
                    )
                    for r in rows
                ]
                sql = f"INSERT INTO voices ({_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s)"
                if replace:
                    sql += (
                        " ON CONFLICT (name) DO UPDATE SET embedding = excluded.embedding, "
                        "clips = excluded.clips, "
                        "updated = excluded.updated, conditioning = excluded.conditioning, "
                        "conditioning_weights = excluded.conditioning_weights"
                    )
                cur.executemany(sql, params)
            return before, []

    def remove(self, name: str) -> bool:
        """Delete one voice; whether it existed."""
        with self._tx() as conn:
            gone = conn.execute("DELETE FROM voices WHERE name = %s", (name,)).rowcount > 0
            if gone:
                conn.execute(_BUMP)
            return bool(gone)

    def get(self, name: str) -> VoiceRow | None:
        """One voice, or None."""
        with self._tx() as conn:
            row = conn.execute(f"SELECT {_COLUMNS} FROM voices WHERE name = %s", (name,)).fetchone()
        if row is None:
            return None
        values = list(row)
        for i in (1, 5):
            if values[i] is not None:
                values[i] = bytes(values[i])
        return VoiceRow(*values)

    def names(self) -> list[str]:
        """Every name, in enrolment order."""
        with self._tx() as conn:
            return [r[0] for r in conn.execute("SELECT name FROM voices ORDER BY id")]

    def load_all(self) -> tuple[int, list[str], npt.NDArray[np.float32]]:
        """The generation, names and the (n, 256) float32 embedding matrix, from one snapshot."""
        with self._lock, self._errors(), self._conn.transaction():
            conn = self._conn
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            gen = int(conn.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0])
            rows = conn.execute("SELECT name, embedding FROM voices ORDER BY id").fetchall()
        chunks = (
            [(r[0], bytes(r[1])) for r in rows[start : start + 8192]] for start in range(0, len(rows), 8192)
        )
        names, matrix = fill_matrix(len(rows), chunks)
        return gen, names, matrix

    def set_conditioning(self, name: str, blob: bytes, weights_sha256: str | None) -> bool:
        """Store a conditioning embedding with a voice; whether the voice exists."""
        with self._tx() as conn:
            cur = conn.execute(
                "UPDATE voices SET conditioning = %s, conditioning_weights = %s WHERE name = %s",
                (blob, weights_sha256, name),
            )
            return bool(cur.rowcount > 0)

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


class _TakenError(Exception):
    def __init__(self, before: int, names: list[str]) -> None:
        super().__init__(names)
        self.before = before
        self.names = names
