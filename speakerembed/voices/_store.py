"""The storage interface a voice library sits on, and what SQLite and PostgreSQL share.

A store keeps two tables: ``meta`` (key, value: the weights' sha256, the Pipeline, a change
counter) and ``voices`` (one row a voice: name, float32 embedding bytes, clips as JSON, dates,
and an optional Chatterbox conditioning embedding). Every change is one transaction that also
bumps ``meta.generation``, so a reader knows when its in-memory matrix is stale.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple, Protocol

import numpy as np
import numpy.typing as npt

from ..errors import LibraryError

__all__ = ["DIM", "SCHEMA_VERSION", "Store", "VoiceRow", "fill_matrix"]

#: The embedding size.
DIM = 256

#: The schema this code writes: migration 1 (``PRAGMA user_version`` on SQLite, ``meta`` on PostgreSQL).
SCHEMA_VERSION = 1


class VoiceRow(NamedTuple):
    """One stored voice, as the database holds it.

    A tuple in the column order, so that it is the statement's parameters as it stands.

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

    def load_all(self) -> tuple[int, list[str], npt.NDArray[np.float32]]:
        """The generation, every name and the (n, 256) float32 matrix of embeddings, from one snapshot."""
        ...

    def set_conditioning(self, name: str, blob: bytes, weights_sha256: str | None) -> bool:
        """Store a conditioning embedding with a voice; whether the voice exists."""
        ...

    def close(self) -> None:
        """Close the connection."""
        ...


def fill_matrix(
    n: int, chunks: Iterable[Sequence[tuple[str, bytes]]]
) -> tuple[list[str], npt.NDArray[np.float32]]:
    """Names and an (n, 256) float32 matrix from chunks of ``(name, embedding bytes)`` rows.

    Each chunk's bytes are joined and copied into the matrix as they come, so that at most one
    chunk's rows are held beside the matrix (never a second 1 GB copy of a million voices).
    """
    matrix = np.empty((n, DIM), np.float32)
    names: list[str] = []
    row = 0
    for chunk in chunks:
        if row + len(chunk) > n:
            raise LibraryError(f"the library's snapshot holds more than the {n} voices it counted")
        names += [r[0] for r in chunk]
        joined = b"".join([r[1] for r in chunk])
        matrix[row : row + len(chunk)] = np.frombuffer(joined, "<f4").reshape(len(chunk), DIM)
        row += len(chunk)
    if row != n:
        raise LibraryError(f"the library's snapshot holds {row} voices, not the {n} it counted")
    return names, matrix
