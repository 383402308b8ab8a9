"""Dataset cleaning: find mislabelled, off-voice and duplicated clips in a labelled dataset.

A TTS or speaker-recognition dataset often has a few clips filed under the wrong speaker, clips
that are noise or music, and the same recording twice. :func:`find_outliers` reads the
embeddings and labels; :func:`clean_dataset` embeds a folder (or reads a corpus output) first.
For each clip the report gives:

* ``own_similarity``: its cosine to its own speaker's **robust centroid**, left out of that
  centroid (leave-one-out, so a clip does not vote for itself). The centroid is an iteratively
  trimmed mean: the mean of the speaker's clips, L2-normalised; clips whose cosine to it falls
  more than :data:`TRIM_MADS` robust standard deviations (1.4826 × MAD) below the median are
  dropped and the mean is taken again, until nothing changes (at most :data:`TRIM_ITERATIONS`
  times, and never dropping more than half). So a few mislabelled clips do not drag the centroid
  towards them.
* ``nearest_speaker`` and ``nearest_similarity``: the other speaker whose robust centroid is
  closest, and the cosine to it.
* ``nearest_clip`` and ``nearest_clip_similarity``: the most similar other clip, any speaker.
* Flags, with the default thresholds measured on real speech (see ``docs/analysis.rst``):

  - ``outlier``: ``own_similarity < outlier_threshold``;
  - ``likely_other_speaker``: ``nearest_similarity >= outlier_threshold`` and
    ``nearest_similarity > own_similarity``: the clip passes as the other speaker, and better
    than as its own; ``suggested_speaker`` names that speaker;
  - ``cannot_judge``: the clip is its speaker's only one, so there is nothing to compare it with
    (``own_similarity`` is NaN). Single-clip speakers are normal in scraped data; such clips are
    never ``outlier`` nor ``likely_other_speaker`` (they may still be ``near_duplicate``);
  - ``near_duplicate``: ``nearest_clip_similarity >= duplicate_threshold``; ``duplicate_of``
    names the clip.

Rows are sorted worst first: flagged clips first, then by ``own_similarity -
nearest_similarity`` (how much closer the clip is to its own speaker than to any other),
lowest first.

The thresholds are cosines of the encoder's embeddings, so they hold for the encoder they were
measured with; ``OUTLIER_THRESHOLD`` and ``DUPLICATE_THRESHOLD`` give the measurement.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import AudioError, ConfigError, missing_backend
from ..stages.consolidate import ZERO_NORM
from .defaults import DUPLICATE_THRESHOLD, OUTLIER_THRESHOLD

if TYPE_CHECKING:
    import numpy.typing as npt

    from ..config import Pipeline
    from ..embedder import Failure, SpeakerEmbedder
    from ..stages.encoder import Precision

__all__ = [
    "AUDIO_SUFFIXES",
    "DUPLICATE_THRESHOLD",
    "OUTLIER_THRESHOLD",
    "TRIM_ITERATIONS",
    "TRIM_MADS",
    "CleanReport",
    "NoSpeakersError",
    "clean_dataset",
    "find_outliers",
    "robust_centroid",
]

#: Robust standard deviations below the median at which a clip leaves the centroid.
TRIM_MADS = 2.5
#: Most trimming rounds of :func:`robust_centroid`.
TRIM_ITERATIONS = 5
#: File suffixes :func:`clean_dataset` embeds in a folder of speaker folders.
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".m4a", ".aif", ".aiff")


class NoSpeakersError(ConfigError):
    """A corpus output to clean has no ``speaker`` values: there is nothing to check labels against.

    Attributes
    ----------
    folder : str
        The corpus output.
    n_rows : int
        Its rows with an embedding, none with a speaker.
    """

    def __init__(self, folder: str, n_rows: int) -> None:
        self.folder = folder
        self.n_rows = n_rows
        super().__init__(
            f"{folder} has no 'speaker' values ({n_rows} embedded row(s), none labelled), so there "
            "are no labels to check; add them by running the corpus job again with a manifest that "
            "has 'id' (or 'path') and 'speaker' columns (embed_corpus(..., manifest=FILE)), or find "
            "the speakers from the voices themselves with the cluster command"
        )

    def __reduce__(self) -> tuple[type[NoSpeakersError], tuple[str, int]]:
        return type(self), (self.folder, self.n_rows)


_MAD_FLOOR = 0.01  # a tight speaker's MAD can be ~0; a cosine spread below 0.01 is noise


def _normalise(v: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    norm = float(np.linalg.norm(v))
    if not norm > ZERO_NORM:
        raise AudioError("the embeddings of a speaker cancel out; there is no centroid")
    out: npt.NDArray[np.float64] = v / norm
    return out


def robust_centroid(embeddings: npt.ArrayLike) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    """An iteratively trimmed mean of unit embeddings, and which rows it kept.

    Parameters
    ----------
    embeddings : array_like, shape (n, d)
        Unit rows of one speaker, ``n >= 1``.

    Returns
    -------
    centroid : numpy.ndarray, shape (d,), float64, unit norm
    kept : numpy.ndarray, shape (n,), bool
        The rows in the final mean (at least half of them).

    Examples
    --------
    >>> import numpy as np
    >>> from speakerembed.analysis.clean import robust_centroid
    >>> x = np.array([[1, 0], [0.99, 0.14], [0.98, -0.2], [0, 1]], dtype=float)
    >>> x /= np.linalg.norm(x, axis=1, keepdims=True)
    >>> robust_centroid(x)[1].tolist()
    [True, True, True, False]
    """
    x = np.asarray(embeddings, dtype=np.float64)
    n = x.shape[0]
    keep = np.ones(n, dtype=bool)
    centroid = _normalise(x.mean(axis=0))
    for _ in range(TRIM_ITERATIONS):
        scores = x @ centroid
        med = float(np.median(scores[keep]))
        mad = 1.4826 * float(np.median(np.abs(scores[keep] - med)))
        new = scores >= med - TRIM_MADS * max(mad, _MAD_FLOOR)
        if new.sum() < math.ceil(n / 2):
            new = np.zeros(n, dtype=bool)
            new[np.argsort(-scores)[: math.ceil(n / 2)]] = True
        if np.array_equal(new, keep):
            break
        keep = new
        centroid = _normalise(x[keep].mean(axis=0))
    return centroid, keep


@dataclasses.dataclass(frozen=True)
class CleanReport:
    """The report of :func:`find_outliers`: one row per clip, worst first.

    Attributes
    ----------
    columns : dict of str to numpy.ndarray
        Equal-length columns: ``id``, ``speaker`` (str); ``n_speaker_clips`` (int64);
        ``own_similarity`` (float64, NaN for a speaker with one clip, which has no centroid
        to leave it out of); ``nearest_speaker`` (str, empty with one speaker);
        ``nearest_similarity`` (float64, NaN with one speaker); ``nearest_clip`` (str);
        ``nearest_clip_similarity`` (float64); ``outlier``, ``likely_other_speaker``,
        ``near_duplicate`` (bool); ``suggested_speaker`` and ``duplicate_of`` (str, empty
        when not flagged); ``cannot_judge`` (bool: the speaker's only clip, which no flag but
        ``near_duplicate`` can judge).
    failures : tuple of Failure
        Clips that could not be embedded (from :func:`clean_dataset`), not in ``columns``:
        ``index`` is the file's position among the files found, or the row of the corpus table.
    outlier_threshold, duplicate_threshold : float
        The thresholds the flags used.
    """

    columns: dict[str, npt.NDArray[Any]]
    failures: tuple[Failure, ...] = ()
    outlier_threshold: float = OUTLIER_THRESHOLD
    duplicate_threshold: float = DUPLICATE_THRESHOLD

    def __len__(self) -> int:
        return len(self.columns["id"])

    @property
    def flagged(self) -> npt.NDArray[np.bool_]:
        """Rows with any flag, shape (n,), bool."""
        c = self.columns
        out: npt.NDArray[np.bool_] = c["outlier"] | c["likely_other_speaker"] | c["near_duplicate"]
        return out

    @property
    def n_cannot_judge(self) -> int:
        """Clips that are their speaker's only one (``cannot_judge``)."""
        return int(np.count_nonzero(self.columns["cannot_judge"]))

    def to_arrow(self) -> Any:
        """The report as a ``pyarrow.Table`` (NaN and empty strings become nulls)."""
        try:
            import pyarrow as pa
        except ImportError as exc:
            raise missing_backend("pyarrow", "analysis", "CleanReport.to_arrow") from exc
        cols: dict[str, Any] = {}
        for name, values in self.columns.items():
            if values.dtype.kind == "f":
                cols[name] = pa.array(values, mask=np.isnan(values))
            elif values.dtype.kind in "UO" and name not in ("id", "speaker"):
                cols[name] = pa.array([v if v else None for v in values.tolist()], type=pa.string())
            else:
                cols[name] = pa.array(values.tolist() if values.dtype.kind in "UO" else values)
        return pa.table(cols)

    def write(self, path: str | os.PathLike[str]) -> None:
        """Write the report to ``.parquet`` or ``.csv`` (by the suffix)."""
        suffix = Path(path).suffix.lower()
        table = self.to_arrow()
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            pq.write_table(table, path)
        elif suffix == ".csv":
            import pyarrow.csv as pcsv

            pcsv.write_csv(table, path)
        else:
            raise ConfigError(f"cannot write a {suffix or 'suffix-less'} report; use .parquet or .csv")


def find_outliers(
    embeddings: npt.ArrayLike,
    speakers: Sequence[str],
    ids: Sequence[str] | None = None,
    *,
    outlier_threshold: float = OUTLIER_THRESHOLD,
    duplicate_threshold: float = DUPLICATE_THRESHOLD,
) -> CleanReport:
    """Score every clip against its own speaker and the others, and flag the suspicious ones.

    Parameters
    ----------
    embeddings : array_like, shape (n_clips, 256)
        Unit utterance embeddings.
    speakers : sequence of str, length n_clips
        Each clip's speaker label.
    ids : sequence of str or None
        Each clip's name (a path, say); ``"0"``, ``"1"``, ... by default.
    outlier_threshold : float
        Cosine to the own speaker's centroid below which a clip is an ``outlier``, and to
        another speaker's centroid from which it may be ``likely_other_speaker``.
    duplicate_threshold : float
        Cosine between two clips from which they are ``near_duplicate``.

    Returns
    -------
    CleanReport
        One row per clip, worst first.

    Raises
    ------
    ConfigError
        For mismatched lengths, non-unit rows or thresholds outside [-1, 1].

    Notes
    -----
    Finding the nearest clip compares every pair, in blocks: O(n²) time, O(n) memory beyond
    the embeddings (about a minute for 100,000 clips on one CPU core).
    """
    x = np.asarray(embeddings, dtype=np.float64)
    n = x.shape[0]
    if x.ndim != 2 or n == 0:
        raise ConfigError(f"embeddings has shape {x.shape}; pass a non-empty (n_clips, dim) array")
    labels = [str(s) for s in speakers]
    names = [str(i) for i in (ids if ids is not None else range(n))]
    if len(labels) != n or len(names) != n:
        raise ConfigError(
            f"{n} embeddings, {len(labels)} speakers and {len(names)} ids; pass one of each per clip"
        )
    if not np.isfinite(x).all() or np.abs(np.linalg.norm(x, axis=1) - 1.0).max() > 1e-3:
        raise ConfigError("embeddings must be finite unit rows, as embed_utterances returns them")
    for name, value in (
        ("outlier_threshold", outlier_threshold),
        ("duplicate_threshold", duplicate_threshold),
    ):
        if not (isinstance(value, (int, float)) and -1.0 <= value <= 1.0):
            raise ConfigError(f"{name}={value!r} is not a cosine; pass a number in [-1, 1]")

    names_of = sorted(set(labels))
    index = {s: k for k, s in enumerate(names_of)}
    lab = np.asarray([index[s] for s in labels])
    centroids = np.zeros((len(names_of), x.shape[1]))
    own = np.full(n, np.nan)
    count = np.bincount(lab, minlength=len(names_of))
    for k in range(len(names_of)):
        rows = np.flatnonzero(lab == k)
        centroid, kept = robust_centroid(x[rows])
        centroids[k] = centroid
        if rows.size < 2:
            continue
        total = x[rows[kept]].sum(axis=0)
        for r, in_mean in zip(rows, kept, strict=True):
            if in_mean and kept.sum() > 1:
                own[r] = float(x[r] @ _normalise(total - x[r]))
            elif in_mean:  # the only clip kept: compare with the mean of the others
                own[r] = float(x[r] @ _normalise(np.delete(x[rows], np.flatnonzero(rows == r), 0).mean(0)))
            else:
                own[r] = float(x[r] @ centroid)

    nearest_speaker = np.full(n, "", dtype=object)
    nearest_sim = np.full(n, np.nan)
    if len(names_of) > 1:
        sims = x @ centroids.T
        sims[np.arange(n), lab] = -np.inf
        best = np.argmax(sims, axis=1)
        nearest_speaker = np.asarray([names_of[b] for b in best], dtype=object)
        nearest_sim = sims[np.arange(n), best]

    nearest_clip = np.full(n, "", dtype=object)
    nearest_clip_sim = np.full(n, np.nan)
    if n > 1:
        block = 2048
        for lo in range(0, n, block):
            s = x[lo : lo + block] @ x.T
            s[np.arange(s.shape[0]), np.arange(lo, lo + s.shape[0])] = -np.inf
            j = np.argmax(s, axis=1)
            nearest_clip_sim[lo : lo + block] = s[np.arange(s.shape[0]), j]
            nearest_clip[lo : lo + block] = [names[i] for i in j]

    single = count[lab] < 2  # nothing of its own speaker to compare with: cannot judge the label
    judged = ~single & ~np.isnan(own)
    with np.errstate(invalid="ignore"):
        outlier = judged & (own < outlier_threshold)
        other = judged & (nearest_sim >= outlier_threshold) & (nearest_sim > own)
        dup = nearest_clip_sim >= duplicate_threshold
    suggested = np.where(other, nearest_speaker, "")
    duplicate_of = np.where(dup, nearest_clip, "")
    margin = np.where(np.isnan(own) | np.isnan(nearest_sim), np.inf, own - nearest_sim)
    flagged = outlier | other | dup
    order = np.lexsort((margin, ~flagged))
    columns: dict[str, npt.NDArray[Any]] = {
        "id": np.asarray(names, dtype=object),
        "speaker": np.asarray(labels, dtype=object),
        "n_speaker_clips": count[lab].astype(np.int64),
        "own_similarity": own,
        "nearest_speaker": nearest_speaker,
        "nearest_similarity": nearest_sim,
        "nearest_clip": nearest_clip,
        "nearest_clip_similarity": nearest_clip_sim,
        "outlier": outlier,
        "likely_other_speaker": other,
        "suggested_speaker": suggested.astype(object),
        "near_duplicate": dup,
        "duplicate_of": duplicate_of.astype(object),
        "cannot_judge": single,
    }
    return CleanReport(
        {k: v[order] for k, v in columns.items()},
        outlier_threshold=float(outlier_threshold),
        duplicate_threshold=float(duplicate_threshold),
    )


def _read_corpus(
    folder: Path,
) -> tuple[npt.NDArray[np.float32], list[str], list[str], list[tuple[int, str, str]]]:
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise missing_backend("pyarrow", "analysis", "clean_dataset on a corpus output") from exc
    table = pq.read_table(folder)
    missing = {"speaker", "embedding"} - set(table.column_names)
    if missing:
        raise ConfigError(
            f"{folder} is a Parquet dataset without the column(s) {', '.join(sorted(missing))}; "
            "pass a corpus output with a speaker column (speakerembed corpus), or a folder of speaker folders"
        )
    ids_col = "id" if "id" in table.column_names else ("path" if "path" in table.column_names else None)
    n = table.num_rows
    ids = [str(v) for v in table.column(ids_col).to_pylist()] if ids_col else [str(i) for i in range(n)]
    speakers = table.column("speaker").to_pylist()
    embeds = table.column("embedding").to_pylist()
    errors = table.column("error").to_pylist() if "error" in table.column_names else [None] * n
    rows: list[list[float]] = []
    kept_ids: list[str] = []
    kept_speakers: list[str] = []
    failed: list[tuple[int, str, str]] = []
    speakers = [None if s is None or str(s) == "" else s for s in speakers]
    embedded = sum(e is not None for e in embeds)
    if embedded and not any(s is not None for s, e in zip(speakers, embeds, strict=True) if e is not None):
        raise NoSpeakersError(str(folder), embedded)
    for i in range(n):
        if embeds[i] is None or speakers[i] is None:
            why = errors[i] or ("no speaker label" if speakers[i] is None else "no embedding")
            failed.append((i, ids[i], str(why)))
            continue
        rows.append(embeds[i])
        kept_ids.append(ids[i])
        kept_speakers.append(str(speakers[i]))
    x = np.asarray(rows, dtype=np.float32).reshape(len(rows), -1)
    return x, kept_speakers, kept_ids, failed


def _speaker_folders(folder: Path) -> tuple[list[str], list[str]]:
    files: list[str] = []
    speakers: list[str] = []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for f in sorted(sub.rglob("*")):
            if f.is_file() and f.suffix.lower() in AUDIO_SUFFIXES:
                files.append(str(f))
                speakers.append(sub.name)
    return files, speakers


def clean_dataset(
    source: str | os.PathLike[str],
    *,
    embedder: SpeakerEmbedder | None = None,
    pipeline: Pipeline | None = None,
    weights: str | os.PathLike[str] = "chatterbox",
    device: str | None = None,
    precision: Precision = "fp32",
    outlier_threshold: float = OUTLIER_THRESHOLD,
    duplicate_threshold: float = DUPLICATE_THRESHOLD,
) -> CleanReport:
    """Find suspicious clips in a labelled dataset: :func:`find_outliers` on a folder.

    Parameters
    ----------
    source : str or os.PathLike
        Either a corpus output (a folder of Parquet files with ``speaker`` and ``embedding``
        columns, and ``id`` or ``path``; rows with a null embedding are failures), or a folder
        with one sub-folder per speaker holding its audio files (any depth below it), which
        are embedded with ``errors="skip"``.
    embedder : SpeakerEmbedder or None
        For a folder of audio: the embedder to use; by default the cached one for
        ``weights``, ``device`` and ``precision``.
    pipeline : Pipeline or None
        For a folder of audio: the preprocessing.
    weights, device, precision
        As for :func:`~speakerembed.embed_utterances`.
    outlier_threshold, duplicate_threshold : float
        As for :func:`find_outliers`.

    Returns
    -------
    CleanReport
        Ids are the files' paths (or the corpus ids); failures are listed in ``failures``.

    Raises
    ------
    ConfigError
        When ``source`` is neither kind of folder, or holds fewer than two usable clips.
    NoSpeakersError
        When ``source`` is a corpus output without ``speaker`` values.

    Examples
    --------
    .. skip: next

    >>> from speakerembed import clean_dataset
    >>> report = clean_dataset("my_dataset/", weights="resemblyzer")  # doctest: +SKIP
    >>> report.write("report.csv")  # doctest: +SKIP
    """
    from ..embedder import Failure

    folder = Path(source)
    if not folder.is_dir():
        raise ConfigError(f"{folder} is not a folder; pass a corpus output or a folder of speaker folders")
    failures: list[Failure] = []
    if any(folder.rglob("*.parquet")):
        x, speakers, ids, failed = _read_corpus(folder)
        failures = [Failure(row, name, AudioError(why, source=name)) for row, name, why in failed]
    else:
        files, labels = _speaker_folders(folder)
        if not files:
            raise ConfigError(
                f"{folder} holds no Parquet files and no speaker sub-folders with audio "
                f"({', '.join(AUDIO_SUFFIXES)}); pass a corpus output or a folder of speaker folders"
            )
        if embedder is None:
            from ..api import get_embedder

            embedder = get_embedder(weights, device=device, precision=precision)
        result = embedder.embed_utterances(files, pipeline=pipeline, errors="skip")
        x = result.embeddings
        ids = [files[i] for i in result.indices]
        speakers = [labels[i] for i in result.indices]
        failures = list(result.failures)
    if len(ids) < 2:
        raise ConfigError(f"{folder} has {len(ids)} usable clip(s); cleaning needs at least two")
    report = find_outliers(
        x, speakers, ids, outlier_threshold=outlier_threshold, duplicate_threshold=duplicate_threshold
    )
    return dataclasses.replace(report, failures=tuple(failures))
