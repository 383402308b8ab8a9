"""Diarization scoring: the diarization error rate (DER) and the Jaccard error rate (JER).

Both take *turns*: a sequence of ``(start_s, end_s, speaker)`` triples (a speaker is any hashable
label), or a :class:`~speakerembed.analysis.diarization.Diarization`, or anything with a ``turns``
attribute of such triples. They follow pyannote.metrics' definitions exactly (the tests compare
them with ``pyannote.metrics.diarization``), without needing pyannote:

* the evaluated region (the UEM) is the extent of the reference and the hypothesis together;
* ``collar`` seconds centred on every reference boundary (half before, half after) are removed
  from it, and with ``skip_overlap=True`` so is every region where two reference turns overlap;
* reference and hypothesis speakers are paired one to one by the Hungarian algorithm, to the
  most time spoken together (:func:`scipy.optimize.linear_sum_assignment`).

``DER = (missed + false_alarm + confusion) / total``, where ``total`` is the reference speech
(counted once per speaker, so overlapped speech counts twice). The parts are in seconds.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from ..errors import ConfigError

if TYPE_CHECKING:
    import numpy.typing as npt

__all__ = ["DERResult", "JERResult", "der", "jer"]

Turn = tuple[float, float, Hashable]


class DERResult(NamedTuple):
    """What :func:`der` returns: the rate and its parts, in seconds."""

    der: float
    missed_s: float
    false_alarm_s: float
    confusion_s: float
    total_s: float


class JERResult(NamedTuple):
    """What :func:`jer` returns: the mean per-speaker Jaccard error and each speaker's."""

    jer: float
    per_speaker: dict[Hashable, float]


def _as_turns(x: Any, name: str) -> list[Turn]:
    turns = getattr(x, "turns", x)
    if isinstance(turns, (str, bytes)) or not isinstance(turns, Iterable):
        raise ConfigError(
            f"{name} must be a sequence of (start_s, end_s, speaker) turns, not {type(x).__name__}"
        )
    out: list[Turn] = []
    for i, t in enumerate(turns):
        try:
            start, end, speaker = t
            start, end = float(start), float(end)
        except (TypeError, ValueError) as exc:
            raise ConfigError(
                f"{name}[{i}]={t!r} is not a (start_s, end_s, speaker) turn; "
                "pass triples of two numbers and a label"
            ) from exc
        if not (np.isfinite(start) and np.isfinite(end)) or end < start:
            raise ConfigError(f"{name}[{i}] = ({start}, {end}): a turn needs finite start_s <= end_s")
        if end > start:
            out.append((start, end, speaker))
    return out


def _activity(bounds: npt.NDArray[np.float64], spans: Sequence[tuple[float, float]]) -> npt.NDArray[np.bool_]:
    """Which elementary intervals ``[bounds[i], bounds[i+1])`` the spans cover."""
    diff = np.zeros(bounds.shape[0], np.int64)
    if spans:
        arr = np.asarray(spans, np.float64)
        np.add.at(diff, np.searchsorted(bounds, arr[:, 0]), 1)
        np.add.at(diff, np.searchsorted(bounds, arr[:, 1]), -1)
    covered: npt.NDArray[np.bool_] = np.cumsum(diff)[:-1] > 0
    return covered


def _prepare(
    reference: Any, hypothesis: Any, collar: float, skip_overlap: bool
) -> tuple[
    npt.NDArray[np.float64], npt.NDArray[np.bool_], npt.NDArray[np.bool_], list[Hashable], list[Hashable]
]:
    """Interval durations (0 outside the UEM) and the speaker activity matrices."""
    if not (isinstance(collar, (int, float)) and np.isfinite(collar) and collar >= 0):
        raise ConfigError(f"collar={collar!r} must be a number of seconds >= 0 (0 scores strictly)")
    ref, hyp = _as_turns(reference, "reference"), _as_turns(hypothesis, "hypothesis")
    points = [t[0] for t in ref + hyp] + [t[1] for t in ref + hyp]
    if collar > 0:
        points += [b + d for t in ref for b in t[:2] for d in (-collar / 2, collar / 2)]
    bounds = np.unique(np.asarray(points, np.float64))
    ref_labels = sorted({t[2] for t in ref}, key=str)
    hyp_labels = sorted({t[2] for t in hyp}, key=str)
    if bounds.shape[0] < 2:
        empty = np.zeros(0, np.float64)
        return (
            empty,
            np.zeros((0, len(ref_labels)), bool),
            np.zeros((0, len(hyp_labels)), bool),
            ref_labels,
            hyp_labels,
        )
    lo = min(t[0] for t in ref + hyp)
    hi = max(t[1] for t in ref + hyp)
    keep = _activity(bounds, [(lo, hi)])
    if collar > 0:
        collars = [(b - collar / 2, b + collar / 2) for t in ref for b in t[:2]]
        keep &= ~_activity(bounds, collars)
    if skip_overlap:
        counts = sum(_activity(bounds, [t[:2]]).astype(np.int64) for t in ref)
        keep &= ~(np.asarray(counts) >= 2)
    durations = np.where(keep, np.diff(bounds), 0.0)
    r = (
        np.stack([_activity(bounds, [t[:2] for t in ref if t[2] == s]) for s in ref_labels], axis=1)
        if ref_labels
        else np.zeros((durations.shape[0], 0), bool)
    )
    h = (
        np.stack([_activity(bounds, [t[:2] for t in hyp if t[2] == s]) for s in hyp_labels], axis=1)
        if hyp_labels
        else np.zeros((durations.shape[0], 0), bool)
    )
    return durations, r, h, ref_labels, hyp_labels


def _mapping(
    d: npt.NDArray[np.float64], r: npt.NDArray[np.bool_], h: npt.NDArray[np.bool_]
) -> list[tuple[int, int]]:
    if r.shape[1] == 0 or h.shape[1] == 0:
        return []
    from scipy.optimize import linear_sum_assignment

    together = (r * d[:, None]).T @ h
    rows, cols = linear_sum_assignment(together, maximize=True)
    return [(int(i), int(j)) for i, j in zip(rows, cols, strict=True)]


def der(reference: Any, hypothesis: Any, *, collar: float = 0.0, skip_overlap: bool = False) -> DERResult:
    """The diarization error rate of ``hypothesis`` against ``reference``, with its parts.

    Parameters
    ----------
    reference, hypothesis : sequence of (float, float, hashable), or a Diarization
        Turns ``(start_s, end_s, speaker)``, in seconds of the same recording.
    collar : float
        Seconds around each reference boundary left out of the scoring (half on each side);
        0 (the default) scores strictly, as pyannote's published figures are.
    skip_overlap : bool
        Leave out the regions where reference speakers overlap.

    Returns
    -------
    DERResult
        ``der`` (a fraction; 0 for a perfect hypothesis; above 1 is possible), ``missed_s``,
        ``false_alarm_s``, ``confusion_s`` and ``total_s`` (the reference speech), in seconds.

    Raises
    ------
    ConfigError
        For turns that are not ``(start_s, end_s, speaker)`` with ``start_s <= end_s``, or a
        negative ``collar``.

    Examples
    --------
    >>> from speakerembed.analysis.scoring import der
    >>> ref = [(0.0, 10.0, "alice"), (10.0, 20.0, "bob")]
    >>> hyp = [(0.0, 12.0, "A"), (12.0, 19.0, "B")]
    >>> r = der(ref, hyp)
    >>> round(r.der, 3), r.confusion_s, r.missed_s
    (0.15, 2.0, 1.0)
    """
    d, r, h, _, _ = _prepare(reference, hypothesis, collar, skip_overlap)
    n_ref = r.sum(axis=1)
    n_hyp = h.sum(axis=1)
    correct = np.zeros_like(d)
    for i, j in _mapping(d, r, h):
        correct += r[:, i] & h[:, j]
    missed = float(np.sum(d * np.maximum(n_ref - n_hyp, 0)))
    false_alarm = float(np.sum(d * np.maximum(n_hyp - n_ref, 0)))
    confusion = float(np.sum(d * (np.minimum(n_ref, n_hyp) - correct)))
    total = float(np.sum(d * n_ref))
    errors = missed + false_alarm + confusion
    rate = errors / total if total > 0 else (0.0 if errors == 0 else 1.0)
    return DERResult(rate, missed, false_alarm, confusion, total)


def jer(reference: Any, hypothesis: Any, *, collar: float = 0.0, skip_overlap: bool = False) -> JERResult:
    """The Jaccard error rate (DIHARD II): the mean over reference speakers of 1 - IoU.

    Each reference speaker is paired with at most one hypothesis speaker (as in :func:`der`);
    its error is ``(false alarm + missed) / union`` of the pair's speech, or 1 when unpaired.
    Every reference speaker weighs the same, however long it speaks.

    Parameters
    ----------
    reference, hypothesis, collar, skip_overlap
        As for :func:`der`.

    Returns
    -------
    JERResult
        ``jer`` (a fraction in [0, 1]; 1 for an empty reference) and ``per_speaker``, each
        reference speaker's error.

    Raises
    ------
    ConfigError
        As :func:`der` does.

    Examples
    --------
    >>> from speakerembed.analysis.scoring import jer
    >>> round(jer([(0, 10, "alice"), (10, 20, "bob")], [(0, 12, "A"), (12, 20, "B")]).jer, 3)
    0.183
    """
    d, r, h, ref_labels, _ = _prepare(reference, hypothesis, collar, skip_overlap)
    pairs = dict(_mapping(d, r, h))
    per: dict[Hashable, float] = {}
    for i, label in enumerate(ref_labels):
        j = pairs.get(i)
        if not np.any(d * r[:, i]):
            continue  # all of this speaker's speech is outside the scored region
        if j is None:
            per[label] = 1.0
            continue
        union = float(np.sum(d * (r[:, i] | h[:, j])))
        inter = float(np.sum(d * (r[:, i] & h[:, j])))
        per[label] = (union - inter) / union if union > 0 else 1.0
    rate = float(np.mean(list(per.values()))) if per else 1.0
    return JERResult(rate, per)
