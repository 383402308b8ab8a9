"""A persistent voice library: enrol voices once, identify speakers open-set, find similar voices.

The library is a database (SQLite by default, PostgreSQL for a library shared by several
machines) of named 256-d voice embeddings, all made with one set of weights and one
:class:`~speakerembed.Pipeline`, which the library records and enforces. Searches are exact: the
library is held in memory as a float32 matrix, refreshed when the database changes, and scored
with blocked matrix products.

Open-set identification accepts the best match only when its cosine is above a threshold set
for a chosen false-alarm rate per query (default 1 %) against the whole library; see
:func:`open_set_threshold` and :doc:`/voices`.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import os
import re
import threading
from collections.abc import Iterator, Sequence
from statistics import NormalDist
from typing import TYPE_CHECKING, Any, overload

import numpy as np
import numpy.typing as npt

from ..errors import ConfigError, LibraryError, UnknownVoiceError
from ._store import DIM, Store, VoiceRow

if TYPE_CHECKING:
    from ..config import Pipeline
    from ..embedder import SpeakerEmbedder
    from ..weights import WeightsInfo

__all__ = [
    "DEFAULT_FALSE_ALARM",
    "IMPOSTOR_MEAN",
    "IMPOSTOR_STD",
    "Identification",
    "Match",
    "Voice",
    "VoiceLibrary",
    "check_name",
    "open_set_threshold",
]

#: The false-alarm rate per query (against the whole library) that ``identify`` accepts by default.
DEFAULT_FALSE_ALARM = 0.01
#: Cosine of a clip against another speaker's enrolled voice, measured on the project's real
#: speech (``weights="resemblyzer"``: 629 clip-voice pairs of 9 enrolled and 22 other speakers,
#: mean 0.547, sd 0.069), rounded up to be safe. The prior for libraries too small to measure
#: the query's own impostor scores; :meth:`VoiceLibrary.calibrate` replaces it.
IMPOSTOR_MEAN = 0.55
#: See :data:`IMPOSTOR_MEAN`.
IMPOSTOR_STD = 0.075
#: A voice competes for a query's false match when it scores above the impostor mean minus
#: this many standard deviations (0.40 with the defaults).
COMPETITOR_SDS = 2.0
#: How many voices' worth of weight the measured prior has against a query's competitors' scores.
PRIOR_VOICES = 64
_BLOCK = 1 << 16
_SCORES_PER_BLOCK = 1 << 24
#: Libraries of at least this many voices keep an int8 copy of the matrix beside it, and a
#: search of up to ``_INT8_QUERIES`` queries scans that copy (a quarter of the memory traffic),
#: then rescores exactly every voice the scan's error bound cannot rule out.
_INT8_FROM = 1 << 16
_INT8_QUERIES = 16
#: Rows of the int8 copy widened to float32 at a time (1 MB: it stays in the core's cache).
_INT8_ROWS = 1024
#: What float32 rounding may add to the int8 scan's error, per unit of the query's norm: far
#: more than 256-term float32 dot products can lose, so the bound stays a bound.
_ROUNDING = 1e-4
_F64 = npt.NDArray[np.float64]
_NAME = re.compile(r"[^\W_](?:[\w.@+\- ]{0,126}[\w.@+\-])?")


def check_name(name: object) -> str:
    """Check a voice name: 1 to 128 letters, digits, ``_ . @ + -`` and inner spaces.

    Parameters
    ----------
    name : object
        The name to check (a service takes names from its clients).

    Returns
    -------
    str
        The name.

    Raises
    ------
    ConfigError
        When it is not a string of that shape.
    """
    if not isinstance(name, str) or _NAME.fullmatch(name) is None:
        raise ConfigError(
            f"voice name {name!r} is not allowed; use 1 to 128 letters, digits, '_', '.', '@', "
            "'+', '-' or inner spaces, starting with a letter or digit"
        )
    return name


@dataclasses.dataclass(frozen=True)
class Match:
    """One candidate voice for a query.

    Attributes
    ----------
    voice : str
        The voice's name.
    score : float
        Cosine of the query and the voice's embedding.
    accepted : bool
        Whether this is the query's accepted answer (only ever the first candidate).
    """

    voice: str
    score: float
    accepted: bool = False


@dataclasses.dataclass(frozen=True)
class Identification(Sequence[Match]):
    """The answer to one query: its candidates, best first, and whether the best is accepted.

    It is a sequence of :class:`Match` (``answer[0]`` is the best candidate).

    Attributes
    ----------
    candidates : tuple of Match
        The ``top_k`` closest voices, best first.
    voice : str or None
        The accepted voice, or None when no voice scored above the threshold.
    score : float or None
        The best candidate's cosine (None for an empty library).
    threshold : float or None
        The cosine the best candidate had to reach.
    reason : str
        Why it was accepted or not, in words.
    """

    candidates: tuple[Match, ...]
    voice: str | None
    score: float | None
    threshold: float | None
    reason: str

    @overload
    def __getitem__(self, index: int) -> Match: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[Match]: ...

    def __getitem__(self, index: int | slice) -> Match | Sequence[Match]:
        return self.candidates[index]

    def __len__(self) -> int:
        return len(self.candidates)

    def __iter__(self) -> Iterator[Match]:
        return iter(self.candidates)

    @property
    def accepted(self) -> bool:
        """Whether a voice was accepted."""
        return self.voice is not None

    def to_dict(self) -> dict[str, Any]:
        """The JSON row: ``voice``, ``score``, ``threshold``, ``reason``, ``candidates``."""
        return {
            "voice": self.voice,
            "score": None if self.score is None else round(self.score, 6),
            "threshold": None if self.threshold is None else round(self.threshold, 6),
            "reason": self.reason,
            "candidates": [{"voice": m.voice, "score": round(m.score, 6)} for m in self.candidates],
        }


@dataclasses.dataclass(frozen=True)
class Voice:
    """One enrolled voice, as :meth:`speakerembed.VoiceLibrary.get` gives it.

    Attributes
    ----------
    name : str
    embedding : numpy.ndarray, shape (256,), float32
        The unit-norm voice embedding.
    clips : tuple of str
        What it was enrolled from (paths; ``"array 0"`` for arrays; empty for ``add_embeddings``).
    weights : WeightsInfo
        The library's weights.
    created, updated : datetime.datetime
        UTC times of enrolment and of the last replacement.
    conditioning : numpy.ndarray, shape (256,), float32, or None
        The stored Chatterbox conditioning embedding, if any.
    conditioning_weights : str or None
        The sha256 of the weights that made ``conditioning``.
    """

    name: str
    embedding: npt.NDArray[np.float32]
    clips: tuple[str, ...]
    weights: WeightsInfo
    created: datetime.datetime
    updated: datetime.datetime
    conditioning: npt.NDArray[np.float32] | None = None
    conditioning_weights: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (the embedding left out)."""
        return {
            "name": self.name,
            "clips": list(self.clips),
            "weights": self.weights.name,
            "weights_sha256": self.weights.sha256,
            "created": self.created.isoformat(),
            "updated": self.updated.isoformat(),
            "conditioning": self.conditioning is not None,
            "conditioning_weights_sha256": self.conditioning_weights,
        }


def open_set_threshold(n_voices: int, false_alarm: float, mean: float, std: float) -> float:
    """The cosine the best of ``n_voices`` impostor scores exceeds with probability ``false_alarm``.

    Impostor scores are modelled as independent normals ``N(mean, std**2)``; the maximum of
    ``n`` of them exceeds ``t`` with probability ``1 - Phi((t - mean) / std) ** n``, so
    ``t = mean + std * Phi^-1((1 - false_alarm) ** (1 / n))``. More voices, more chances of a
    false match, a higher threshold.

    Parameters
    ----------
    n_voices : int
        Voices in the library (>= 1).
    false_alarm : float
        In (0, 1): the chance that a speaker who is not enrolled is accepted as someone.
    mean, std : float
        The impostor score distribution (std > 0).

    Returns
    -------
    float

    Examples
    --------
    >>> from speakerembed.voices import open_set_threshold
    >>> round(open_set_threshold(10, 0.01, 0.55, 0.075), 3)
    0.782
    >>> round(open_set_threshold(10**6, 0.01, 0.55, 0.075), 3)
    0.971
    """
    if not (isinstance(n_voices, (int, np.integer)) and n_voices >= 1):
        raise ConfigError(f"n_voices= must be a whole number of at least 1, got {n_voices!r}")
    if not (isinstance(false_alarm, (int, float)) and 0 < false_alarm < 1):
        raise ConfigError(f"false_alarm= must be a number in (0, 1), such as 0.01, got {false_alarm!r}")
    # The upper-tail probability of one impostor, computed without losing digits for large n.
    tail = -math.expm1(math.log1p(-float(false_alarm)) / int(n_voices))
    tail = min(max(tail, 1e-300), 0.5)
    return float(mean - std * NormalDist().inv_cdf(tail))


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _open_store(location: str | os.PathLike[str], busy_timeout_s: float) -> Store:
    text = os.fspath(location)
    if text.startswith(("postgresql://", "postgres://")):
        from ._postgres import PostgresStore

        return PostgresStore(text, busy_timeout_s=busy_timeout_s)
    from ._sqlite import SQLiteStore

    return SQLiteStore(text, busy_timeout_s=busy_timeout_s)


def _unit_rows(embeddings: object, n: int, what: str = "embeddings") -> npt.NDArray[np.float32]:
    try:
        arr = np.asarray(embeddings, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{what}= must be an array of shape (n, {DIM}) of numbers ({exc})") from None
    if arr.ndim == 1 and n == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != DIM or arr.shape[0] != n:
        raise ConfigError(f"{what}= must have shape ({n}, {DIM}), one row a name, got {arr.shape}")
    if not np.isfinite(arr).all():
        bad = int(np.flatnonzero(~np.isfinite(arr).all(axis=1))[0])
        raise ConfigError(f"{what}= row {bad} is not finite (NaN or inf); pass real embeddings")
    norms = np.sqrt(np.einsum("ij,ij->i", arr, arr))
    if n and not (norms > 1e-6).all():
        bad = int(np.flatnonzero(norms <= 1e-6)[0])
        raise ConfigError(f"{what}= row {bad} is all zeros; pass real embeddings")
    if np.all(np.abs(norms - 1) <= 1e-6):
        return arr  # unit rows already (the encoder's)
    out: npt.NDArray[np.float32] = arr / norms[:, None]
    return out


def _quantise(
    rows: npt.NDArray[np.float32],
) -> tuple[npt.NDArray[np.int8], npt.NDArray[np.float32], float]:
    """Each row as int8 codes times a float32 scale; and the largest error, ``max ||row - code * scale||``.

    A row's scale is its largest magnitude over 127, so no code overflows, and each value is off
    by at most half a step. The error bounds the scan: ``|x . q - scale * (code . q)| <= err * ||q||``.
    """
    n = rows.shape[0]
    codes = np.empty((n, DIM), np.int8)
    scales = np.empty(n, np.float32)
    worst = 0.0
    for start in range(0, n, 8192):
        block = rows[start : start + 8192]
        scale = np.abs(block).max(axis=1) / np.float32(127)
        scale[scale == 0] = 1  # an all-zero row (never a stored voice) has codes 0 and no error
        rounded = np.rint(block / scale[:, None])
        codes[start : start + len(block)] = rounded
        scales[start : start + len(block)] = scale
        resid = block - rounded * scale[:, None]
        if len(block):
            worst = max(worst, float(np.sqrt(np.einsum("ij,ij->i", resid, resid, dtype=np.float64).max())))
    return codes, scales, worst


def _grown(array: npt.NDArray[Any], n: int, need: int) -> npt.NDArray[Any]:
    if need <= array.shape[0]:
        return array
    grown = np.empty((max(need, 2 * array.shape[0], 1024), *array.shape[1:]), array.dtype)
    grown[:n] = array[:n]
    return grown


class _Matrix:
    """The library in memory: names, and a float32 matrix with spare rows to append into.

    A large library also keeps the matrix's int8 copy (see :func:`_quantise`).
    """

    def __init__(self, generation: int, names: list[str], matrix: npt.NDArray[np.float32]) -> None:
        self.generation = generation
        self.names = names
        self.n = len(names)
        self.buffer = matrix
        self._index: dict[str, int] | None = None
        self.codes: npt.NDArray[np.int8] | None = None
        self.scales: npt.NDArray[np.float32] = np.zeros(0, np.float32)
        self.code_err = 0.0
        if self.n >= _INT8_FROM:
            self.codes, self.scales, self.code_err = _quantise(self.matrix)

    @property
    def matrix(self) -> npt.NDArray[np.float32]:
        return self.buffer[: self.n]

    @property
    def index(self) -> dict[str, int]:
        """Row of each name, made on first use (a million names take a while)."""
        index = self._index
        if index is None:
            index = self._index = {name: i for i, name in enumerate(self.names)}
        return index

    def append(self, names: list[str], rows: npt.NDArray[np.float32], generation: int) -> None:
        need = self.n + len(names)
        self.buffer = _grown(self.buffer, self.n, need)
        self.buffer[self.n : need] = rows
        if self.codes is not None:
            codes, scales, err = _quantise(rows)
            self.codes = _grown(self.codes, self.n, need)
            self.scales = _grown(self.scales, self.n, need)
            self.codes[self.n : need] = codes
            self.scales[self.n : need] = scales
            self.code_err = max(self.code_err, err)
        elif need >= _INT8_FROM:
            self.codes, self.scales, self.code_err = _quantise(self.buffer[:need])
        # A new list, so a search holding the old one keeps a consistent view.
        self.names = self.names + names
        if self._index is not None:
            for i, name in enumerate(names, self.n):
                self._index[name] = i
        self.n = need
        self.generation = generation


def _exact_scores(
    matrix: npt.NDArray[np.float32], rows: npt.NDArray[np.intp], query: npt.NDArray[np.float32]
) -> npt.NDArray[np.float64]:
    """The cosines of some voices with one query, in float64, each row summed the same way."""
    picked = matrix[rows].astype(np.float64)
    out: npt.NDArray[np.float64] = np.einsum("ij,j->i", picked, query.astype(np.float64))
    return out


def _best(
    cand_i: npt.NDArray[np.intp], cand_s: npt.NDArray[Any], k: int
) -> tuple[npt.NDArray[np.intp], npt.NDArray[Any]]:
    """The ``k`` best candidates, best first; equal scores in enrolment order."""
    order = np.lexsort((cand_i, -cand_s))[:k]
    return cand_i[order], cand_s[order]


class VoiceLibrary:
    """Named voices in a database, all embedded with one set of weights.

    Parameters
    ----------
    location : str or os.PathLike
        A file path (SQLite, made when missing) or a ``postgresql://`` URL (needs the
        ``postgres`` extra: ``pip install 'speakerembed[postgres]'``).
    weights : str, os.PathLike or None
        The weights voices are embedded with. A new library records them (``None`` means
        ``"chatterbox"``); an existing one refuses other weights, naming both sha256s. ``None``
        uses the library's own.
    embedder : SpeakerEmbedder or None
        Embed clips with this embedder (its weights must be the library's).
    device : str or None
        Where the library's embedder runs, when it loads one.
    pipeline : Pipeline or None
        The preprocessing of a new library (default ``Pipeline()``); an existing one refuses another.
    false_alarm : float
        Default false-alarm rate per query for :meth:`identify` (default 0.01).
    busy_timeout_s : float
        How long a change waits for another process's transaction before failing (default 60).

    Raises
    ------
    LibraryError
        For a corrupt or locked database, or one made with other weights or another Pipeline.
    WeightsError
        When the weights cannot be found.

    Examples
    --------
    >>> import numpy as np
    >>> from speakerembed import VoiceLibrary
    >>> lib = VoiceLibrary(tmp_path / "voices.db", weights="resemblyzer")  # doctest: +SKIP
    >>> lib.enroll("alice", ["alice_1.wav", "alice_2.wav"])  # doctest: +SKIP
    >>> lib.identify(["unknown.wav"])[0].voice  # doctest: +SKIP
    'alice'
    """

    def __init__(
        self,
        location: str | os.PathLike[str],
        *,
        weights: str | os.PathLike[str] | None = None,
        embedder: SpeakerEmbedder | None = None,
        device: str | None = None,
        pipeline: Pipeline | None = None,
        false_alarm: float = DEFAULT_FALSE_ALARM,
        busy_timeout_s: float = 60.0,
    ) -> None:
        open_set_threshold(1, false_alarm, 0.0, 1.0)  # validates false_alarm
        self._false_alarm = float(false_alarm)
        self._device = device
        self._embedder = embedder
        self._lock = threading.RLock()
        self._cache: _Matrix | None = None
        self._store = _open_store(location, busy_timeout_s)
        self.location = self._store.location
        try:
            self._meta = self._bind(weights, embedder, pipeline)
        except BaseException:
            self._store.close()
            raise

    # -- opening --------------------------------------------------------------------------------

    def _bind(
        self,
        weights: str | os.PathLike[str] | None,
        embedder: SpeakerEmbedder | None,
        pipeline: Pipeline | None,
    ) -> dict[str, str]:
        from ..config import Pipeline
        from ..corpus.schema import BATCHING_FIELDS, pipeline_dict
        from ..weights import resolve_weights

        if pipeline is not None and not isinstance(pipeline, Pipeline):
            raise ConfigError(
                f"pipeline={pipeline!r} is not a speakerembed.Pipeline; pass Pipeline(...) or None"
            )
        meta = self._store.meta()
        asked: WeightsInfo | None = None
        if embedder is not None:
            asked = embedder.weights_info
        elif weights is not None or "weights_sha256" not in meta:
            asked = resolve_weights(weights if weights is not None else "chatterbox")
        if "weights_sha256" not in meta:
            if asked is None or not asked.sha256:
                raise ConfigError(
                    "a new voice library needs weights with a sha256 to record; pass weights= a "
                    "preset name or a weights file"
                )
            pipe = (
                pipeline
                if pipeline is not None
                else (embedder.pipeline if embedder is not None else Pipeline())
            )
            settings = {k: v for k, v in pipeline_dict(pipe).items() if k not in BATCHING_FIELDS}
            meta = self._store.init_meta(
                {
                    "weights_name": asked.name,
                    "weights_path": asked.path or "",
                    "weights_sha256": asked.sha256,
                    "pipeline": json.dumps(settings, sort_keys=True),
                    "created": _now(),
                }
            )
        if asked is not None and asked.sha256 != meta["weights_sha256"]:
            raise LibraryError(
                f"library {self.location} holds voices embedded with weights {meta['weights_name']!r} "
                f"(sha256 {meta['weights_sha256']}), not {asked.name!r} (sha256 {asked.sha256}); "
                "open it with its own weights, or use another library for these"
            )
        if pipeline is not None:
            mine = json.loads(meta["pipeline"])
            theirs = {k: v for k, v in pipeline_dict(pipeline).items() if k not in BATCHING_FIELDS}
            theirs = json.loads(json.dumps(theirs, sort_keys=True))
            diff = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
            if diff:
                shown = ", ".join(f"{k}={mine.get(k)!r} (not {theirs.get(k)!r})" for k in diff)
                raise LibraryError(
                    f"library {self.location} was made with another Pipeline: {shown}; "
                    "leave pipeline= out to use the library's"
                )
        return meta

    @property
    def weights(self) -> WeightsInfo:
        """The weights every voice in the library is embedded with."""
        from ..weights import WeightsInfo

        return WeightsInfo(
            self._meta["weights_name"], self._meta.get("weights_path") or None, self._meta["weights_sha256"]
        )

    @property
    def pipeline(self) -> Pipeline:
        """The library's preprocessing."""
        from ..config import Pipeline

        return Pipeline(**json.loads(self._meta["pipeline"]))

    def embedder(self) -> SpeakerEmbedder:
        """The embedder the library embeds clips with (loaded on first use)."""
        with self._lock:
            if self._embedder is None:
                from ..api import get_embedder

                info = self.weights
                source = info.path if info.name == "file" and info.path else info.name
                self._embedder = get_embedder(source, device=self._device)
                if self._embedder.weights_info.sha256 != info.sha256:
                    raise LibraryError(
                        f"library {self.location} holds voices embedded with sha256 {info.sha256}, but "
                        f"{source!r} now has sha256 {self._embedder.weights_info.sha256}; pass weights= "
                        "the library's weights file"
                    )
            return self._embedder

    def _embed(self, clips: Sequence[object], sample_rate: int | None) -> npt.NDArray[np.float32]:
        if isinstance(clips, (str, os.PathLike, np.ndarray)):
            clips = [clips]
        if len(clips) == 0:
            raise ConfigError("clips= is empty; pass one or more audio files or arrays")
        items: list[Any] = list(clips)
        out: npt.NDArray[np.float32] = self.embedder().embed_utterances(
            items, sample_rate=sample_rate, pipeline=self.pipeline
        )
        return out

    # -- changes --------------------------------------------------------------------------------

    def enroll(
        self,
        name: str,
        clips: Sequence[object] | str | os.PathLike[str],
        *,
        replace: bool = False,
        sample_rate: int | None = None,
        conditioning: bool = False,
    ) -> Voice:
        """Embed a speaker's clips and store them as one voice.

        Parameters
        ----------
        name : str
            The voice's name (see :func:`~speakerembed.voices.check_name`).
        clips : path, numpy.ndarray, or a sequence of them
            Recordings of the speaker; the voice is their :func:`~speakerembed.utt_to_spk_embed`.
        replace : bool
            Overwrite a voice of that name; without it, an existing name is an error.
        sample_rate : int or None
            The rate of arrays, in Hz.
        conditioning : bool
            Also store the Chatterbox conditioning embedding of the clips
            (:func:`~speakerembed.embed_conditioning`, with the library's weights).

        Returns
        -------
        Voice

        Raises
        ------
        ConfigError
            For a bad name, or an existing one without ``replace=True``.
        AudioError
            For a clip that cannot be embedded (nothing is stored).
        """
        from ..stages.consolidate import utt_to_spk_embed

        check_name(name)
        items: list[Any] = [clips] if isinstance(clips, (str, os.PathLike, np.ndarray)) else list(clips)
        if not replace and self._store.get(name) is not None:
            raise ConfigError(f"voice {name!r} is already in the library; pass replace=True to overwrite it")
        utterances = self._embed(items, sample_rate)
        voice = utt_to_spk_embed(utterances)
        cond: npt.NDArray[np.float32] | None = None
        if conditioning:
            cond = self.embedder().embed_conditioning(items, sample_rate=sample_rate)
        described = [
            os.fspath(c) if isinstance(c, (str, os.PathLike)) else f"array {i}" for i, c in enumerate(items)
        ]
        self._add([name], voice[None, :], [described], replace, cond)
        return self.get(name)

    def add_embeddings(
        self,
        names: Sequence[str],
        embeddings: npt.ArrayLike,
        *,
        replace: bool = False,
        weights_sha256: str | None = None,
    ) -> int:
        """Store ready-made voice embeddings, all in one transaction: the bulk path.

        Parameters
        ----------
        names : sequence of str
            One distinct name a row.
        embeddings : array_like, shape (n, 256)
            Voice embeddings made with the library's weights; rows are normalised to unit length.
        replace : bool
            Overwrite voices of those names; without it, any existing name fails the whole call.
        weights_sha256 : str or None
            The sha256 of the weights that made the embeddings, checked against the library's.

        Returns
        -------
        int
            How many voices were stored.

        Raises
        ------
        ConfigError
            For bad names, duplicates, existing names without ``replace=True``, or bad rows.
        LibraryError
            When ``weights_sha256`` is not the library's.
        """
        if isinstance(names, str):
            raise ConfigError("names= must be a sequence of names, not one string; pass [name]")
        names = [check_name(n) for n in names]
        if len(set(names)) != len(names):
            seen: set[str] = set()
            dup = next(n for n in names if n in seen or seen.add(n))  # type: ignore[func-returns-value]
            raise ConfigError(f"names= has {dup!r} more than once; give each voice one row")
        if weights_sha256 is not None and weights_sha256 != self._meta["weights_sha256"]:
            raise LibraryError(
                f"these embeddings were made with weights sha256 {weights_sha256}, but library "
                f"{self.location} holds weights {self._meta['weights_name']!r} (sha256 "
                f"{self._meta['weights_sha256']}); embed them again with the library's weights"
            )
        rows = _unit_rows(embeddings, len(names))
        if not names:
            return 0
        self._add(names, rows, None, replace, None)
        return len(names)

    def _add(
        self,
        names: list[str],
        rows: npt.NDArray[np.float32],
        clips: list[list[str]] | None,
        replace: bool,
        conditioning: npt.NDArray[np.float32] | None,
    ) -> None:
        now = _now()
        cond = None if conditioning is None else np.asarray(conditioning, "<f4").tobytes()
        cond_w = None if conditioning is None else self._meta["weights_sha256"]
        as_bytes = np.ascontiguousarray(rows, dtype="<f4")
        no_clips = json.dumps([])
        records = [
            VoiceRow(
                name,
                as_bytes[i].tobytes(),
                json.dumps(clips[i]) if clips is not None else no_clips,
                now,
                now,
                cond,
                cond_w,
            )
            for i, name in enumerate(names)
        ]
        with self._lock:
            before, taken = self._store.insert(records, replace=replace)
            if taken:
                shown = ", ".join(repr(t) for t in taken[:5]) + (
                    f" and {len(taken) - 5} more" if len(taken) > 5 else ""
                )
                raise ConfigError(
                    f"voice {shown} {'is' if len(taken) == 1 else 'are'} already in the library; "
                    "pass replace=True to overwrite"
                )
            cache = self._cache
            if replace or cache is None or cache.generation != before:
                self._cache = None  # reloaded on the next search
            else:
                cache.append(names, rows, before + 1)

    def remove(self, name: str) -> None:
        """Remove a voice.

        Raises
        ------
        UnknownVoiceError
            When there is no voice of that name.
        """
        with self._lock:
            if not self._store.remove(name):
                raise self._unknown(name)
            self._cache = None

    def set_conditioning(self, name: str, conditioning: npt.ArrayLike) -> None:
        """Store a Chatterbox conditioning embedding (shape (256,), float32) with a voice.

        Raises
        ------
        UnknownVoiceError
            When there is no voice of that name.
        """
        cond = np.asarray(conditioning, dtype=np.float32).reshape(-1)
        if cond.shape != (DIM,) or not np.isfinite(cond).all():
            raise ConfigError(
                f"conditioning= must be {DIM} finite numbers, got shape {np.shape(conditioning)}"
            )
        if not self._store.set_conditioning(name, cond.astype("<f4").tobytes(), self._meta["weights_sha256"]):
            raise self._unknown(name)

    def conditioning(self, name: str) -> npt.NDArray[np.float32]:
        """The voice's stored Chatterbox conditioning embedding, shape (256,), float32.

        ``torch.from_numpy(cond)[None]`` is ``T3Cond.speaker_emb``; no audio is read.

        Raises
        ------
        UnknownVoiceError
            When there is no voice of that name.
        LibraryError
            When the voice has no conditioning embedding stored.
        """
        voice = self.get(name)
        if voice.conditioning is None:
            raise LibraryError(
                f"voice {name!r} has no conditioning embedding; enroll it with conditioning=True "
                "or store one with set_conditioning"
            )
        return voice.conditioning

    def import_speakers(
        self, path: str | os.PathLike[str], *, replace: bool = False, weights_sha256: str | None = None
    ) -> int:
        """Load a ``corpus --speakers`` table (``OUT.speakers.parquet``) in one transaction.

        Speakers whose every clip failed are left out. The weights are checked against the
        corpus output's recorded sha256 (the table's own metadata, or the shards of the corpus
        folder ``OUT`` beside it); pass ``weights_sha256`` where neither is at hand.

        Returns
        -------
        int
            How many voices were stored.
        """
        import pyarrow.parquet as pq

        from ..corpus.schema import METADATA_KEY

        p = os.fspath(path)
        try:
            table = pq.read_table(p, columns=["speaker", "embedding"])
        except (OSError, ValueError, KeyError) as exc:
            raise LibraryError(
                f"{p} is not a corpus speakers table ({exc}); pass the OUT.speakers.parquet file"
            ) from None
        recorded = weights_sha256 or self._recorded_sha(p, METADATA_KEY)
        if recorded is None:
            raise LibraryError(
                f"{p} does not say which weights made it (no corpus metadata beside it); pass "
                "weights_sha256= to confirm they are the library's"
            )
        speakers = table.column("speaker").to_pylist()
        emb = table.column("embedding").combine_chunks()
        valid = emb.is_valid().to_numpy(zero_copy_only=False)
        values = (
            emb.flatten().to_numpy(zero_copy_only=False).reshape(-1, DIM) if len(emb) else np.zeros((0, DIM))
        )
        names = [str(s) for s, ok in zip(speakers, valid, strict=True) if ok]
        return self.add_embeddings(names, values, replace=replace, weights_sha256=recorded)

    @staticmethod
    def _recorded_sha(path: str, key: bytes) -> str | None:
        import pyarrow.parquet as pq

        def from_schema(file: str) -> str | None:
            meta = pq.read_schema(file).metadata or {}
            if key in meta:
                value = json.loads(meta[key]).get("weights_sha256")
                return str(value) if value else None
            return None

        own = from_schema(path)
        if own is not None:
            return own
        suffix = ".speakers.parquet"
        if path.endswith(suffix):
            folder = path[: -len(suffix)]
            if os.path.isdir(folder):
                for entry in sorted(os.listdir(folder)):
                    if entry.endswith(".parquet"):
                        found = from_schema(os.path.join(folder, entry))
                        if found is not None:
                            return found
        return None

    # -- reading --------------------------------------------------------------------------------

    def _unknown(self, name: str) -> UnknownVoiceError:
        return UnknownVoiceError(f"no voice named {name!r} in library {self.location}; see its names()")

    def names(self) -> list[str]:
        """Every voice name, in enrolment order."""
        return self._store.names()

    def __len__(self) -> int:
        return self._snapshot().n

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._snapshot().index

    def get(self, name: str) -> Voice:
        """One voice: its embedding, clips, weights, dates and conditioning.

        Raises
        ------
        UnknownVoiceError
            When there is no voice of that name.
        """
        row = self._store.get(name)
        if row is None:
            raise self._unknown(name)
        return Voice(
            name=row.name,
            embedding=np.frombuffer(row.embedding, "<f4").astype(np.float32),
            clips=tuple(json.loads(row.clips)),
            weights=self.weights,
            created=datetime.datetime.fromisoformat(row.created),
            updated=datetime.datetime.fromisoformat(row.updated),
            conditioning=None
            if row.conditioning is None
            else np.frombuffer(row.conditioning, "<f4").astype(np.float32),
            conditioning_weights=row.conditioning_weights,
        )

    def _snapshot(self) -> _Matrix:
        with self._lock:
            cache = self._cache
            if cache is not None and cache.generation == self._store.generation():
                return cache
            gen, names, matrix = self._store.load_all()
            self._cache = _Matrix(gen, names, matrix)
            return self._cache

    def _search(
        self, queries: npt.NDArray[np.float32], k: int, level: float = 2.0
    ) -> tuple[_Matrix, npt.NDArray[np.intp], _F64, _F64, _F64]:
        """The ``k`` best voices of each query, best first (ties in enrolment order).

        Also, for each query, the count, sum and sum of squares of the scores at least
        ``level``: ``stats`` has shape (n_queries, 3). The top ``k`` and the count are exact;
        the sums are exact where ``err`` (one a query) is 0, and otherwise come from scores each
        within ``err`` of the exact one (see :meth:`_search_int8`).
        """
        snap = self._snapshot()
        if snap.codes is not None and queries.shape[0] <= _INT8_QUERIES:
            return (snap, *self._search_int8(snap, queries, k, level))
        idx, scores, stats = self._search_exact(snap, queries, k, level)
        return snap, idx, scores, stats, np.zeros(queries.shape[0])

    @staticmethod
    def _search_exact(
        snap: _Matrix, queries: npt.NDArray[np.float32], k: int, level: float
    ) -> tuple[npt.NDArray[np.intp], _F64, _F64]:
        """Every voice scored in float32 by blocked matrix products."""
        matrix, n, m = snap.matrix, snap.n, queries.shape[0]
        k = min(k, n)
        best_i = [np.zeros(0, np.intp) for _ in range(m)]
        best_s = [np.zeros(0, np.float64) for _ in range(m)]
        stats = np.zeros((m, 3), np.float64)
        qt = np.ascontiguousarray(queries.T)
        # Blocks as large as a 64 MB score buffer allows: one BLAS call per block, since each
        # call costs its own start (a million voices, one query: one call).
        block = int(min(max(_SCORES_PER_BLOCK // max(m, 1), _BLOCK), 1 << 20))
        for start in range(0, n, block):
            scores = matrix[start : start + block] @ qt  # (block, m)
            above = np.where(scores >= level, scores, np.float32(0))
            stats[:, 0] += np.count_nonzero(above, axis=0)
            stats[:, 1] += above.sum(axis=0, dtype=np.float64)
            stats[:, 2] += np.einsum("ij,ij->j", above, above, dtype=np.float64)
            rows = scores.shape[0]
            kth = np.partition(scores, rows - k, axis=0)[rows - k] if rows > k else None
            for j in range(m):
                # Every score up to the block's k-th best, ties included, so that the merge
                # can keep the earliest of equal scores.
                col = scores[:, j]
                sel = np.arange(rows) if kth is None else np.flatnonzero(col >= kth[j])
                best_i[j], best_s[j] = _best(
                    np.concatenate([best_i[j], sel + start]),
                    np.concatenate([best_s[j], col[sel].astype(np.float64)]),
                    k,
                )
        if m == 0 or k == 0:
            return np.zeros((m, 0), np.intp), np.zeros((m, 0), np.float64), stats
        return np.stack(best_i), np.stack(best_s), stats

    @staticmethod
    def _search_int8(
        snap: _Matrix, queries: npt.NDArray[np.float32], k: int, level: float
    ) -> tuple[npt.NDArray[np.intp], _F64, _F64, _F64]:
        """Scan the int8 copy, then rescore exactly what its error bound cannot rule out.

        Each scan score is within ``err = code_err * ||q|| + rounding`` of the exact one, so a
        voice whose scan score is more than ``2 * err`` below the ``k``-th best scan score cannot
        be in the top ``k``: the others are rescored and the top ``k`` is exact. The voices
        within ``err`` of ``level`` are rescored too, so that the count above it is exact.
        """
        assert snap.codes is not None
        matrix, n, m = snap.matrix, snap.n, queries.shape[0]
        k = min(k, n)
        codes, scales = snap.codes, snap.scales[:n]
        approx = np.empty((n, m), np.float32)
        wide = np.empty((_INT8_ROWS, DIM), np.float32)
        qt = np.ascontiguousarray(queries.T)
        for start in range(0, n, _INT8_ROWS):
            stop = min(start + _INT8_ROWS, n)
            rows = wide[: stop - start]
            rows[...] = codes[start:stop]
            np.matmul(rows, qt, out=approx[start:stop])
        approx *= scales[:, None]
        best_i = np.zeros((m, k), np.intp)
        best_s = np.zeros((m, k), np.float64)
        stats = np.zeros((m, 3), np.float64)
        errs = np.zeros(m, np.float64)
        for j in range(m):
            q = queries[j]
            q_norm = float(np.sqrt(np.dot(q.astype(np.float64), q.astype(np.float64))))
            err = snap.code_err * q_norm + _ROUNDING * q_norm + 1e-6
            a = np.ascontiguousarray(approx[:, j])
            kth = float(np.partition(a, n - k)[n - k])
            cand = np.flatnonzero(a >= kth - 2 * err)
            cand_s = _exact_scores(matrix, cand, q)
            best_i[j], best_s[j] = _best(cand, cand_s, k)
            # Scores that decide the count: exact near the level, the scan's elsewhere.
            band = np.flatnonzero(np.abs(a - level) <= err)
            values = a.astype(np.float64)
            values[band] = _exact_scores(matrix, band, q)
            values[cand] = cand_s
            above = values[values >= level]
            stats[j] = (above.size, above.sum(), np.dot(above, above))
            errs[j] = err
        return best_i, best_s, stats, errs

    def _prior(self) -> tuple[float, float]:
        return (
            float(self._meta.get("impostor_mean", IMPOSTOR_MEAN)),
            float(self._meta.get("impostor_std", IMPOSTOR_STD)),
        )

    def _threshold(
        self, top: float, stats: npt.NDArray[np.float64], level: float, alpha: float, shift: float
    ) -> tuple[float, int]:
        """The cosine a query's best score must reach, and how many voices compete for it.

        ``stats`` is the count, sum and sum of squares of the query's scores at least ``level``.
        ``shift`` moves the competitors' mean and standard deviation (to bound the threshold
        when each score may be off by up to ``|shift|``: the threshold grows with both).
        """
        prior_mean, prior_std = self._prior()
        # The voices that compete for a false match: the best, and every other voice that
        # scores within the impostor distribution's reach. A voice far below it (unlike
        # this speaker, or not a real voice) cannot be the false match.
        others = top >= level
        c = int(max(stats[0] - others, 0))
        competitors = c + 1
        threshold = open_set_threshold(competitors, alpha, prior_mean, prior_std)
        if c >= 2:
            # The competitors' own scores, shrunk towards the prior: where they run higher
            # than the measured impostors (a crowd of similar voices), so does the bar.
            total = stats[1] - (top if others else 0.0)
            squares = stats[2] - (top * top if others else 0.0)
            mean_c = total / c
            var_c = max(squares / c - mean_c * mean_c, 0.0)
            if shift:
                mean_c += shift
                var_c = max(math.sqrt(var_c) + shift, 0.0) ** 2
            mean = (PRIOR_VOICES * prior_mean + c * mean_c) / (PRIOR_VOICES + c)
            var = (PRIOR_VOICES * prior_std**2 + c * var_c) / (PRIOR_VOICES + c)
            own = open_set_threshold(competitors, alpha, mean, math.sqrt(max(var, 1e-12)))
            threshold = max(threshold, own)
        return threshold, competitors

    def identify_embeddings(
        self, queries: npt.ArrayLike, *, top_k: int = 5, false_alarm: float | None = None
    ) -> list[Identification]:
        """Identify speakers from their embeddings, open-set.

        Parameters
        ----------
        queries : array_like, shape (n_queries, 256) or (256,)
            Utterance embeddings made with the library's weights.
        top_k : int
            Candidates to give per query (>= 1).
        false_alarm : float or None
            The chance per query that a speaker who is not enrolled is accepted as someone
            (default: the library's, 0.01).

        Returns
        -------
        list of Identification
            One per query: the candidates best first; ``voice`` the accepted one, or None.
        """
        if not (isinstance(top_k, (int, np.integer)) and not isinstance(top_k, bool) and top_k >= 1):
            raise ConfigError(f"top_k= must be a whole number of at least 1, got {top_k!r}")
        alpha = self._false_alarm if false_alarm is None else false_alarm
        open_set_threshold(1, alpha, 0.0, 1.0)  # validates false_alarm
        q = np.asarray(queries, dtype=np.float32)
        q = _unit_rows(q, q.shape[0] if q.ndim == 2 else 1, "queries")
        prior_mean, prior_std = self._prior()
        level = prior_mean - COMPETITOR_SDS * prior_std
        snap, idx, scores, stats, errs = self._search(q, int(top_k), max(level, 1e-6))
        n = snap.n
        if n == 0:
            return [
                Identification((), None, None, None, "the library is empty: enroll voices before identifying")
                for _ in range(q.shape[0])
            ]
        answers = []
        for j in range(q.shape[0]):
            top = float(scores[j, 0])
            threshold, competitors = self._threshold(top, stats[j], level, alpha, 0.0)
            if errs[j] > 0:
                # The sums came from scan scores within errs[j] of the exact ones, which moves
                # the threshold at most this far; where that could change the answer, score
                # every voice exactly.
                low, _ = self._threshold(top, stats[j], level, alpha, -errs[j])
                high, _ = self._threshold(top, stats[j], level, alpha, errs[j])
                if low <= top < high:
                    one_i, one_s, one_stats = self._search_exact(
                        snap, q[j : j + 1], int(top_k), max(level, 1e-6)
                    )
                    idx[j], scores[j], stats[j] = one_i[0], one_s[0], one_stats[0]
                    top = float(scores[j, 0])
                    threshold, competitors = self._threshold(top, stats[j], level, alpha, 0.0)
            accepted = top >= threshold
            names = snap.names
            cands = tuple(
                Match(names[int(i)], float(s), accepted and r == 0)
                for r, (i, s) in enumerate(zip(idx[j], scores[j], strict=True))
            )
            if accepted:
                reason = (
                    f"best score {top:.3f} is above the threshold {threshold:.3f} for a {alpha:g} "
                    f"false-alarm rate against {competitors} competing voices of {n}"
                )
            else:
                reason = (
                    f"no voice reached the threshold {threshold:.3f} for a {alpha:g} false-alarm rate "
                    f"against {competitors} competing voices of {n} (best {top:.3f}): the speaker is not "
                    "enrolled, or the clip is "
                    "too short or noisy to tell"
                )
            answers.append(
                Identification(cands, cands[0].voice if accepted else None, top, threshold, reason)
            )
        return answers

    def identify(
        self,
        clips: Sequence[object] | str | os.PathLike[str],
        *,
        top_k: int = 5,
        false_alarm: float | None = None,
        sample_rate: int | None = None,
    ) -> list[Identification]:
        """Identify the speaker of each clip, open-set (see :meth:`identify_embeddings`).

        Parameters
        ----------
        clips : path, numpy.ndarray, or a sequence of them
            One query a clip.
        top_k, false_alarm
            As for :meth:`identify_embeddings`.
        sample_rate : int or None
            The rate of arrays, in Hz.

        Returns
        -------
        list of Identification
            One per clip.
        """
        items: list[Any] = [clips] if isinstance(clips, (str, os.PathLike, np.ndarray)) else list(clips)
        return self.identify_embeddings(self._embed(items, sample_rate), top_k=top_k, false_alarm=false_alarm)

    def nearest(self, name: str, k: int = 5) -> list[Match]:
        """The ``k`` voices most like a voice (itself left out), best first.

        Raises
        ------
        UnknownVoiceError
            When there is no voice of that name.
        """
        if not (isinstance(k, (int, np.integer)) and not isinstance(k, bool) and k >= 1):
            raise ConfigError(f"k= must be a whole number of at least 1, got {k!r}")
        snap = self._snapshot()
        row = snap.index.get(name)
        if row is None:
            raise self._unknown(name)
        query = snap.matrix[row][None, :].copy()
        _, idx, scores, _, _ = self._search(query, int(k) + 1)
        out = [
            Match(snap.names[int(i)], float(s))
            for i, s in zip(idx[0], scores[0], strict=True)
            if int(i) != row
        ]
        return out[: int(k)]

    def calibrate(self, cohort: npt.ArrayLike) -> tuple[float, float]:
        """Measure the impostor scores of speakers who are not enrolled, and keep them.

        Parameters
        ----------
        cohort : array_like, shape (n, 256)
            Utterance embeddings of speakers none of whom is in the library (n >= 2).

        Returns
        -------
        tuple of float
            The impostor mean and standard deviation now stored as the library's prior.
        """
        c = np.asarray(cohort, dtype=np.float32)
        c = _unit_rows(c, c.shape[0] if c.ndim == 2 else 1, "cohort")
        snap = self._snapshot()
        if c.shape[0] < 2 or snap.n == 0:
            raise ConfigError("calibrate needs at least 2 cohort embeddings and a library with voices")
        scores = (c @ snap.matrix.T).astype(np.float64)
        mean, std = float(scores.mean()), float(max(scores.std(), 1e-3))
        self._store.set_meta({"impostor_mean": repr(mean), "impostor_std": repr(std)})
        self._meta = self._store.meta()
        return mean, std

    # -- lifetime -------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the database connection."""
        self._store.close()

    def __enter__(self) -> VoiceLibrary:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"VoiceLibrary({self.location!r}, weights={self.weights.short!r})"
