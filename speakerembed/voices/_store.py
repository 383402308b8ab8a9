"""The storage interface a voice library sits on, and what SQLite and PostgreSQL share.

A store keeps two tables: ``meta`` (key, value: the weights' sha256, the Pipeline, a change
counter) and ``voices`` (one row a voice: name, float32 embedding bytes, clips as JSON, dates,
and an optional Chatterbox conditioning embedding). Every change is one transaction that also
bumps ``meta.generation``, so a reader knows when its in-memory matrix is stale.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, Protocol

__all__ = ["SCHEMA_VERSION", "Store", "VoiceRow"]

#: The schema this code writes: migration 1 (``PRAGMA user_version`` on SQLite, ``meta`` on PostgreSQL).
SCHEMA_VERSION = 1


class VoiceRow(NamedTuple):
    """One stored voice, as the database holds it (a tuple in the column order, so it is the
    statement's parameters as it stands).

    Attributes
    ----------
    name : str
    embedding : bytes
        256 little-endian float32 values (1024 bytes).
    clips : str
        JSON list of the clips it was enrolled from.
    created, updated : str
        ISO 8601 UTC times.
    conditioning : bytes or None
        A Chatterbox conditioning embedding (256 float32), if one was stored.
    conditioning_weights : str or None
        The sha256 of the weights the conditioning embedding was made with.
    """

    name: str
    embedding: bytes
    clips: str
    created: str
    updated: str
    conditioning: bytes | None = None
    conditioning_weights: str | None = None


class Store(Protocol):
    """What :class:`~speakerembed.voices.VoiceLibrary` needs from a database."""

    location: str

    def meta(self) -> dict[str, str]:
        """Every ``meta`` key and value."""
        ...

    def init_meta(self, values: dict[str, str]) -> dict[str, str]:
        """Set the keys that are not set yet (one transaction), and return the whole ``meta``."""
        ...

    def set_meta(self, values: dict[str, str]) -> None:
        """Set (or overwrite) ``meta`` keys in one transaction."""
        ...

    def generation(self) -> int:
        """The change counter: it grows by one with every committed change."""
        ...

    def insert(self, rows: Sequence[VoiceRow], *, replace: bool) -> tuple[int, list[str]]:
        """Add voices in one transaction.

        Returns the generation before the change and, when ``replace`` is false and some names
        exist already, those names (then nothing is written).
        """
        ...

    def remove(self, name: str) -> bool:
        """Delete one voice; whether it existed."""
        ...

    def get(self, name: str) -> VoiceRow | None:
        """One voice, or None."""
        ...

    def names(self) -> list[str]:
        """Every name, in enrolment order."""
        ...

    def load_all(self) -> tuple[int, list[str], bytes]:
        """The generation, every name and every embedding (concatenated), from one snapshot."""
        ...

    def set_conditioning(self, name: str, blob: bytes, weights_sha256: str | None) -> bool:
        """Store a conditioning embedding with a voice; whether the voice exists."""
        ...

    def close(self) -> None:
        """Close the connection."""
        ...
