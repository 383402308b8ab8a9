"""Speaker-verification scoring: EER, minimum DCF, DET curve, thresholds, score normalisation.

Pure NumPy functions over arrays of trial scores and labels. The convention everywhere: a trial
is **accepted** when its score is **at or above** the threshold; a label is ``True`` (or 1) for a
target trial (same speaker) and ``False`` (or 0) for a non-target trial (different speakers).

* :func:`~speakerembed.det_curve`: false-accept and false-reject rates at every distinct score.
* :func:`~speakerembed.eer`: the equal error rate and its threshold, where the DET curve crosses
  ``fpr == fnr`` (linear interpolation between the two operating points around the crossing,
  as WeSpeaker's ``compute_eer``).
* :func:`~speakerembed.min_dcf`: the minimum normalised detection cost (NIST SRE; WeSpeaker's
  ``compute_c_norm``) and its threshold.
* :func:`~speakerembed.threshold_at`: the lowest threshold whose false-accept (or false-reject) rate stays
  within a target.
* :func:`der` and :func:`jer`: diarization error rates on ``(start_s, end_s, speaker)`` turns
  (defined in :mod:`speakerembed.analysis.der`, as pyannote.metrics defines them).
* :func:`cosine_scores`, :func:`subtract_mean` and :func:`as_norm`: scores from embeddings, and
  the two usual normalisations (cohort-mean subtraction; adaptive symmetric score normalisation).

Rates are fractions (0.02, not 2 %). Every function checks its inputs and raises
:class:`~speakerembed.ConfigError` naming the keyword at fault.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from ..errors import ConfigError
from ..stages.consolidate import ZERO_NORM
from .der import DERResult, JERResult, der, jer

if TYPE_CHECKING:
    import numpy.typing as npt

__all__ = [
    "DERResult",
    "DetCurve",
    "JERResult",
    "MetricResult",
    "OperatingPoint",
    "as_norm",
    "cosine_scores",
    "der",
    "det_curve",
    "eer",
    "jer",
    "min_dcf",
    "subtract_mean",
    "threshold_at",
]


class MetricResult(NamedTuple):
    """A metric and the threshold that achieves it (unpacks as ``value, threshold``)."""

    #: The metric: a rate (EER) or a normalised cost (minDCF).
    value: float
    #: Accept trials with a score at or above this.
    threshold: float


class OperatingPoint(NamedTuple):
    """A threshold and the error rates it gives on the trials (``None`` where not measurable)."""

    #: Accept trials with a score at or above this.
    threshold: float
    #: False-accept rate: the fraction of non-target trials accepted.
    far: float | None
    #: False-reject rate: the fraction of target trials rejected.
    frr: float | None


class DetCurve(NamedTuple):
    """Error rates at each threshold (arrays of equal length, thresholds increasing)."""

    #: numpy.ndarray, shape (n_points,), float64: false-accept rate at each threshold.
    fpr: npt.NDArray[np.float64]
    #: numpy.ndarray, shape (n_points,), float64: false-reject rate at each threshold.
    fnr: npt.NDArray[np.float64]
    #: numpy.ndarray, shape (n_points,), float64: each distinct score, then ``inf`` (reject all).
    thresholds: npt.NDArray[np.float64]


# -- input checks --------------------------------------------------------------------------------


def check_scores(
    scores: npt.ArrayLike, labels: npt.ArrayLike, *, need: str = "both"
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    """Validate and convert; ``need`` is "both", "target" or "nontarget"."""
    try:
        s = np.asarray(scores, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"scores= must be an array of numbers ({exc})") from None
    if s.ndim != 1:
        raise ConfigError(f"scores= must be one-dimensional, got shape {s.shape}")
    if not np.all(np.isfinite(s)):
        bad = int(np.flatnonzero(~np.isfinite(s))[0])
        raise ConfigError(f"scores= must be finite; score {bad} is {s[bad]}")
    raw = np.asarray(labels)
    if raw.ndim != 1:
        raise ConfigError(f"labels= must be one-dimensional, got shape {raw.shape}")
    if raw.shape[0] != s.shape[0]:
        raise ConfigError(f"labels= has {raw.shape[0]} entries but scores= has {s.shape[0]}; pass one each")
    if raw.dtype == np.bool_:
        y = raw
    else:
        try:
            numeric = raw.astype(np.float64)
        except (TypeError, ValueError):
            raise ConfigError("labels= must be booleans or 0/1 (1 = same speaker)") from None
        if not np.all((numeric == 0) | (numeric == 1)):
            raise ConfigError("labels= must be booleans or 0/1 (1 = same speaker)")
        y = numeric == 1
    n_t = int(y.sum())
    n_n = y.size - n_t
    if need in ("both", "target") and n_t == 0:
        raise ConfigError("labels= has no target (same-speaker) trial; the metric needs some")
    if need in ("both", "nontarget") and n_n == 0:
        raise ConfigError("labels= has no non-target (different-speaker) trial; the metric needs some")
    return s, y


def _rates(
    s: npt.NDArray[np.float64], y: npt.NDArray[np.bool_]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """(fpr, fnr, thresholds) at each distinct score and at +inf; raw counts over each class."""
    thresholds = np.unique(s)
    order = np.argsort(s, kind="stable")
    ss, yy = s[order], y[order]
    # Number of targets / non-targets strictly below each threshold.
    below_t = np.concatenate([[0], np.cumsum(yy)])
    below_n = np.concatenate([[0], np.cumsum(~yy)])
    idx = np.searchsorted(ss, thresholds, side="left")
    n_t = max(int(yy.sum()), 1)
    n_n = max(int((~yy).sum()), 1)
    fnr = below_t[idx] / n_t
    fpr = (int((~yy).sum()) - below_n[idx]) / n_n  # counts, so 15/1500 is exactly 0.01
    thresholds = np.append(thresholds, np.inf)
    fnr = np.append(fnr, 1.0 if yy.any() else 0.0)
    fpr = np.append(fpr, 0.0)
    if not (~yy).any():
        fpr[:] = 0.0
    return fpr.astype(np.float64), fnr.astype(np.float64), thresholds.astype(np.float64)


# -- metrics -------------------------------------------------------------------------------------


def det_curve(scores: npt.ArrayLike, labels: npt.ArrayLike) -> DetCurve:
    """False-accept and false-reject rates at every distinct score.

    Parameters
    ----------
    scores : array_like, shape (n_trials,)
        Trial scores (cosine similarities, or normalised scores); higher means more alike.
    labels : array_like, shape (n_trials,), bool or 0/1
        ``True``/1 for target (same-speaker) trials.

    Returns
    -------
    DetCurve
        ``fpr``, ``fnr`` and ``thresholds``, each shape (n_distinct_scores + 1,), float64.
        The first point accepts every trial (fpr 1, fnr 0); the last, at ``inf``, rejects
        every trial (fpr 0, fnr 1).

    Raises
    ------
    ConfigError
        If the arrays differ in length, are not finite, or lack either class.

    Examples
    --------
    >>> from speakerembed.analysis.scoring import det_curve
    >>> curve = det_curve([0.9, 0.8, 0.3, 0.6], [1, 1, 0, 0])
    >>> curve.thresholds.tolist(), curve.fpr.tolist(), curve.fnr.tolist()
    ([0.3, 0.6, 0.8, 0.9, inf], [1.0, 0.5, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.5, 1.0])
    """
    s, y = check_scores(scores, labels)
    return DetCurve(*_rates(s, y))


def eer(scores: npt.ArrayLike, labels: npt.ArrayLike) -> MetricResult:
    """Equal error rate: where the false-accept and false-reject rates are equal.

    The DET curve is a staircase on finite data; the EER is where the straight line between
    the last operating point with ``fnr < fpr`` and the first with ``fnr >= fpr`` crosses
    ``fnr == fpr`` (the ROC-convex interpolation that WeSpeaker's ``compute_eer`` and
    ``brentq`` over ``sklearn.metrics.roc_curve`` use). The threshold is interpolated the same
    way between the two thresholds.

    Parameters
    ----------
    scores : array_like, shape (n_trials,)
        Trial scores; higher means more alike.
    labels : array_like, shape (n_trials,), bool or 0/1
        ``True``/1 for target (same-speaker) trials.

    Returns
    -------
    MetricResult
        ``value``: the EER as a fraction; ``threshold``: accept at or above it.

    Raises
    ------
    ConfigError
        If the arrays differ in length, are not finite, or lack either class.

    Examples
    --------
    >>> from speakerembed.analysis.scoring import eer
    >>> result = eer([0.9, 0.8, 0.7, 0.6, 0.5, 0.4], [1, 1, 0, 1, 0, 0])
    >>> round(result.value, 4), round(result.threshold, 4)
    (0.3333, 0.7)
    """
    s, y = check_scores(scores, labels)
    fpr, fnr, thr = _rates(s, y)
    diff = fnr - fpr  # increases from -1 to +1 with the threshold
    hi = int(np.flatnonzero(diff >= 0)[0])
    if hi == 0 or diff[hi] == 0:
        return MetricResult(float(fnr[hi]), float(thr[hi]) if np.isfinite(thr[hi]) else float(s.max()))
    lo = hi - 1
    a = -diff[lo] / (diff[hi] - diff[lo])
    value = fpr[lo] + a * (fpr[hi] - fpr[lo])
    t_hi = thr[hi] if np.isfinite(thr[hi]) else float(np.nextafter(thr[lo], np.inf))
    threshold = thr[lo] + a * (t_hi - thr[lo])
    return MetricResult(float(value), float(threshold))


def min_dcf(
    scores: npt.ArrayLike,
    labels: npt.ArrayLike,
    *,
    p_target: float = 0.01,
    c_miss: float = 1.0,
    c_fa: float = 1.0,
) -> MetricResult:
    """Minimum normalised detection cost, and its threshold (NIST SRE; WeSpeaker's ``compute_c_norm``).

    ``DCF(t) = c_miss * fnr(t) * p_target + c_fa * fpr(t) * (1 - p_target)``, divided by the
    cost of the better trivial system, ``min(c_miss * p_target, c_fa * (1 - p_target))``, and
    minimised over every threshold (so 1.0 means "no better than always rejecting").

    Parameters
    ----------
    scores : array_like, shape (n_trials,)
        Trial scores; higher means more alike.
    labels : array_like, shape (n_trials,), bool or 0/1
        ``True``/1 for target (same-speaker) trials.
    p_target : float
        Prior probability of a target trial, in (0, 1). 0.01 and 0.05 are the usual ones.
    c_miss, c_fa : float
        Costs of a false reject and a false accept, > 0.

    Returns
    -------
    MetricResult
        ``value``: the minimum normalised DCF; ``threshold``: where it is reached.

    Raises
    ------
    ConfigError
        For a bad cost or prior, or bad arrays.

    Examples
    --------
    >>> from speakerembed.analysis.scoring import min_dcf
    >>> round(min_dcf([0.9, 0.8, 0.7, 0.6, 0.5, 0.4], [1, 1, 0, 1, 0, 0], p_target=0.05).value, 4)
    0.3333
    """
    if not (isinstance(p_target, (int, float)) and 0 < p_target < 1):
        raise ConfigError(f"p_target= must be a probability strictly between 0 and 1, got {p_target!r}")
    for name, value in (("c_miss", c_miss), ("c_fa", c_fa)):
        if not (isinstance(value, (int, float)) and np.isfinite(value) and value > 0):
            raise ConfigError(f"{name}= must be a finite cost greater than 0, got {value!r}")
    s, y = check_scores(scores, labels)
    fpr, fnr, thr = _rates(s, y)
    dcf = c_miss * fnr * p_target + c_fa * fpr * (1 - p_target)
    c_def = min(c_miss * p_target, c_fa * (1 - p_target))
    best = int(np.argmin(dcf))
    threshold = thr[best] if np.isfinite(thr[best]) else float(np.nextafter(s.max(), np.inf))
    return MetricResult(float(dcf[best] / c_def), float(threshold))


def threshold_at(
    scores: npt.ArrayLike,
    labels: npt.ArrayLike,
    *,
    far: float | None = None,
    frr: float | None = None,
) -> OperatingPoint:
    """The threshold that keeps the false-accept (or false-reject) rate within a target.

    With ``far=``, the lowest threshold whose false-accept rate is at most ``far`` (so as few
    genuine trials as possible are rejected); with ``frr=``, the highest threshold whose
    false-reject rate is at most ``frr``. Only the trials of the class the target is about are
    required; the other rate is ``None`` when that class is absent.

    A rate below ``1 / n`` (one error among ``n`` trials of that class) cannot be measured: the
    answer is then the threshold with no error at all on these trials, which promises nothing
    about new ones. Use at least ``10 / far`` non-target trials to trust a threshold.

    Parameters
    ----------
    scores : array_like, shape (n_trials,)
        Trial scores; higher means more alike.
    labels : array_like, shape (n_trials,), bool or 0/1
        ``True``/1 for target (same-speaker) trials.
    far, frr : float
        Exactly one of them: the target rate, a fraction in [0, 1).

    Returns
    -------
    OperatingPoint
        ``threshold``, and the ``far`` and ``frr`` it gives on these trials.

    Raises
    ------
    ConfigError
        If neither or both of ``far`` and ``frr`` are given, or one is out of range, or the
        trials lack the class it is about.

    Examples
    --------
    >>> from speakerembed.analysis.scoring import threshold_at
    >>> threshold_at([0.9, 0.8, 0.7, 0.6, 0.5, 0.4], [1, 1, 0, 1, 0, 0], far=0.0)
    OperatingPoint(threshold=0.8, far=0.0, frr=0.3333333333333333)
    """
    if (far is None) == (frr is None):
        raise ConfigError("threshold_at needs exactly one of far= or frr=")
    name, target = ("far", far) if far is not None else ("frr", frr)
    if not (isinstance(target, (int, float)) and 0 <= target < 1):
        raise ConfigError(f"{name}= must be a fraction in [0, 1), got {target!r}")
    s, y = check_scores(scores, labels, need="nontarget" if name == "far" else "target")
    fpr, fnr, thr = _rates(s, y)
    if name == "far":
        i = int(np.flatnonzero(fpr <= target + 1e-12)[0])  # fpr falls as the threshold rises
    else:
        i = int(np.flatnonzero(fnr <= target + 1e-12)[-1])  # fnr rises with the threshold
    threshold = thr[i] if np.isfinite(thr[i]) else float(np.nextafter(s.max(), np.inf))
    return OperatingPoint(
        float(threshold),
        float(fpr[i]) if (~y).any() else None,
        float(fnr[i]) if y.any() else None,
    )


# -- scores from embeddings, and their normalisation ------------------------------------------


def _rows(x: npt.ArrayLike, name: str) -> npt.NDArray[np.float64]:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 1:
        a = a[None, :]
    if a.ndim != 2 or a.shape[0] == 0 or a.shape[1] == 0:
        raise ConfigError(f"{name}= must be an array of shape (n, dim) with n >= 1, got {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ConfigError(f"{name}= must be finite")
    norms = np.linalg.norm(a, axis=1, keepdims=True)
    if np.any(norms < ZERO_NORM):
        bad = int(np.flatnonzero(norms[:, 0] < ZERO_NORM)[0])
        raise ConfigError(f"{name}= row {bad} is zero; it has no direction to compare")
    unit: npt.NDArray[np.float64] = a / norms
    return unit


def cosine_scores(enroll: npt.ArrayLike, test: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Cosine similarity of each enrolment row with the test row beside it.

    Parameters
    ----------
    enroll, test : array_like, shape (n_trials, dim)
        Embeddings, one row per trial (they need not be unit length).

    Returns
    -------
    numpy.ndarray, shape (n_trials,), float64

    Examples
    --------
    >>> from speakerembed.analysis.scoring import cosine_scores
    >>> cosine_scores([[1.0, 0.0], [0.0, 2.0]], [[1.0, 1.0], [0.0, 1.0]]).round(4).tolist()
    [0.7071, 1.0]
    """
    e, t = _rows(enroll, "enroll"), _rows(test, "test")
    if e.shape != t.shape:
        raise ConfigError(f"enroll= has shape {e.shape} but test= has {t.shape}; pass one row per trial each")
    out: npt.NDArray[np.float64] = np.einsum("ij,ij->i", e, t)
    return out


def subtract_mean(embeddings: npt.ArrayLike, cohort: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Subtract the cohort's mean embedding from each row, then L2-normalise (WeSpeaker's mean vector).

    Embeddings of one model share a common direction; removing the mean of a cohort of other
    speakers' embeddings spreads the cosines of different speakers around 0. Score the
    returned rows with :func:`cosine_scores`.

    Parameters
    ----------
    embeddings : array_like, shape (n, dim)
        The embeddings to centre.
    cohort : array_like, shape (n_cohort, dim)
        Embeddings of other speakers (not those in the trials), from the same weights.

    Returns
    -------
    numpy.ndarray, shape (n, dim), float64, unit rows
    """
    x = np.asarray(embeddings, dtype=np.float64)
    c = _rows(cohort, "cohort")
    x2 = _rows(x, "embeddings")
    if x2.shape[1] != c.shape[1]:
        raise ConfigError(f"embeddings= have {x2.shape[1]} dimensions but cohort= has {c.shape[1]}")
    centred = x2 - c.mean(axis=0)
    return _rows(centred, "embeddings")


def as_norm(
    scores: npt.ArrayLike,
    enroll: npt.ArrayLike,
    test: npt.ArrayLike,
    cohort: npt.ArrayLike,
    *,
    top_n: int = 300,
) -> npt.NDArray[np.float64]:
    """Adaptive symmetric score normalisation (AS-norm) against a cohort of embeddings.

    For each trial, the enrolment and the test embedding are each scored against every cohort
    embedding; the ``top_n`` highest cosines give a mean and a standard deviation for that side,
    and the score becomes ``((s - mean_e) / std_e + (s - mean_t) / std_t) / 2`` (Matějka et
    al. 2017; WeSpeaker's ``score_norm.py``).

    Parameters
    ----------
    scores : array_like, shape (n_trials,)
        Raw trial scores (cosines of ``enroll`` and ``test``).
    enroll, test : array_like, shape (n_trials, dim)
        The embeddings of each trial.
    cohort : array_like, shape (n_cohort, dim)
        Embeddings of speakers not in the trials, n_cohort >= 2.
    top_n : int
        How many of the closest cohort embeddings to use for each side (at most n_cohort).

    Returns
    -------
    numpy.ndarray, shape (n_trials,), float64

    Raises
    ------
    ConfigError
        For mismatched shapes, fewer than two cohort rows, or ``top_n`` out of range.
    """
    s = np.asarray(scores, dtype=np.float64)
    e, t, c = _rows(enroll, "enroll"), _rows(test, "test"), _rows(cohort, "cohort")
    if s.ndim != 1 or not np.all(np.isfinite(s)):
        raise ConfigError("scores= must be a one-dimensional array of finite numbers")
    if not (e.shape[0] == t.shape[0] == s.shape[0]):
        raise ConfigError(
            f"scores= ({s.shape[0]}), enroll= ({e.shape[0]}) and test= ({t.shape[0]}) "
            "must have one entry per trial each"
        )
    if not (e.shape[1] == t.shape[1] == c.shape[1]):
        raise ConfigError("enroll=, test= and cohort= must have the same embedding dimension")
    if c.shape[0] < 2:
        raise ConfigError(f"cohort= needs at least 2 embeddings, got {c.shape[0]}")
    if not (isinstance(top_n, (int, np.integer)) and top_n >= 2):
        raise ConfigError(f"top_n= must be a whole number of at least 2, got {top_n!r}")
    k = min(int(top_n), c.shape[0])

    def side(x: npt.NDArray[np.float64]) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        cos = x @ c.T
        top = -np.partition(-cos, k - 1, axis=1)[:, :k]
        std = top.std(axis=1)
        return top.mean(axis=1), np.maximum(std, 1e-8)

    mean_e, std_e = side(e)
    mean_t, std_t = side(t)
    return 0.5 * ((s - mean_e) / std_e + (s - mean_t) / std_t)
