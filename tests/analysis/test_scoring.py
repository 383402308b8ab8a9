"""speakerembed.analysis.scoring against independent computations.

References: a brute-force loop over every threshold; scikit-learn's ``roc_curve`` with SciPy's
``brentq`` (the usual EER recipe); WeSpeaker's ``compute_pmiss_pfa_rbst`` / ``compute_eer`` /
``compute_c_norm`` (wespeaker/utils/score_metrics.py), transcribed below; and a per-trial loop
for AS-norm.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from speakerembed import ConfigError
from speakerembed.analysis.scoring import (
    as_norm,
    cosine_scores,
    det_curve,
    eer,
    min_dcf,
    subtract_mean,
    threshold_at,
)


def trials(seed: int, n_t: int = 300, n_n: int = 2000, gap: float = 1.5) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    scores = np.concatenate([rng.normal(gap, 1.0, n_t), rng.normal(0.0, 1.0, n_n)])
    labels = np.concatenate([np.ones(n_t, bool), np.zeros(n_n, bool)])
    perm = rng.permutation(scores.size)
    return scores[perm], labels[perm]


def brute_rates(scores: np.ndarray, labels: np.ndarray, t: float) -> tuple[float, float]:
    """(far, frr) when accepting score >= t, by counting."""
    far = sum(1 for s, y in zip(scores, labels, strict=True) if not y and s >= t) / sum(
        1 for y in labels if not y
    )
    frr = sum(1 for s, y in zip(scores, labels, strict=True) if y and s < t) / sum(1 for y in labels if y)
    return far, frr


# WeSpeaker, wespeaker/utils/score_metrics.py (Apache-2.0), transcribed.
def wespeaker_pmiss_pfa(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(scores)
    lab = labels[order].astype(float)
    fnr = np.cumsum(lab) / lab.sum()
    fpr = 1 - np.cumsum(1 - lab) / (1 - lab).sum()
    fnr = np.hstack((0, fnr))
    fpr = np.hstack((1, fpr))
    return fnr, fpr


def wespeaker_eer(fnr: np.ndarray, fpr: np.ndarray) -> float:
    diff = fnr - fpr
    x1 = np.flatnonzero(diff >= 0)[0]
    x2 = np.flatnonzero(diff < 0)[-1]
    a = (fnr[x1] - fpr[x1]) / (fpr[x2] - fpr[x1] - (fnr[x2] - fnr[x1]))
    return float(fnr[x1] + a * (fnr[x2] - fnr[x1]))


def wespeaker_c_norm(fnr: np.ndarray, fpr: np.ndarray, p_target: float, c_miss: float, c_fa: float) -> float:
    dcf = c_miss * fnr * p_target + c_fa * fpr * (1 - p_target)
    return float(np.min(dcf) / min(c_miss * p_target, c_fa * (1 - p_target)))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_det_curve_matches_counting_at_every_threshold(seed: int) -> None:
    scores, labels = trials(seed, 40, 120)
    curve = det_curve(scores, labels)
    assert np.all(np.diff(curve.thresholds) > 0)
    assert curve.thresholds[-1] == np.inf
    np.testing.assert_array_equal(curve.thresholds[:-1], np.unique(scores))
    for t, fpr, fnr in zip(curve.thresholds, curve.fpr, curve.fnr, strict=True):
        far, frr = brute_rates(scores, labels, t)
        assert fpr == pytest.approx(far, abs=1e-12)
        assert fnr == pytest.approx(frr, abs=1e-12)


def test_det_curve_matches_sklearn_roc_curve() -> None:
    from sklearn.metrics import roc_curve

    scores, labels = trials(3)
    fpr, tpr, thr = roc_curve(labels, scores, drop_intermediate=False)
    curve = det_curve(scores, labels)
    # sklearn: decreasing thresholds, first one +inf-like; map onto ours by threshold.
    ours = dict(zip(curve.thresholds[:-1], zip(curve.fpr[:-1], curve.fnr[:-1], strict=True), strict=True))
    for f, t, th in zip(fpr[1:], tpr[1:], thr[1:], strict=True):
        assert ours[th][0] == pytest.approx(f, abs=1e-12)
        assert ours[th][1] == pytest.approx(1 - t, abs=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_eer_matches_sklearn_brentq_and_wespeaker(seed: int) -> None:
    from scipy.interpolate import interp1d
    from scipy.optimize import brentq
    from sklearn.metrics import roc_curve

    scores, labels = trials(seed)
    fpr, tpr, thr = roc_curve(labels, scores, drop_intermediate=False)
    ref = brentq(lambda x: 1.0 - x - interp1d(fpr, tpr)(x), 0.0, 1.0)
    ref_threshold = float(interp1d(fpr, thr)(ref))
    result = eer(scores, labels)
    assert result.value == pytest.approx(ref, abs=1e-9)
    assert result.value == pytest.approx(wespeaker_eer(*wespeaker_pmiss_pfa(scores, labels)), abs=1e-9)
    # The threshold sits between the two scores around the crossing: its error rates bracket the EER.
    assert result.threshold == pytest.approx(ref_threshold, abs=0.05)
    far, frr = brute_rates(scores, labels, result.threshold)
    n_t, n_n = labels.sum(), (~labels).sum()
    assert abs(far - result.value) <= 1 / n_n + 1e-12
    assert abs(frr - result.value) <= 1 / n_t + 1e-12


def test_eer_is_bounded_by_the_brute_force_operating_points() -> None:
    scores, labels = trials(7, 30, 50)
    points = [brute_rates(scores, labels, t) for t in np.unique(scores)]
    best_max = min(max(p) for p in points)
    value = eer(scores, labels).value
    assert value <= best_max + 1e-12
    assert value >= min(min(p) for p in points if abs(p[0] - p[1]) <= 1 / 30 + 1 / 50)


def test_eer_edge_cases() -> None:
    assert eer([0.9, 0.8, 0.1, 0.2], [1, 1, 0, 0]) == (0.0, 0.8)  # separable: threshold at the lowest target
    value, _threshold = eer([0.1, 0.2, 0.9, 0.8], [1, 1, 0, 0])  # inverted
    assert value == pytest.approx(1.0)
    # Ties: every score equal gives 50 %, not a crash.
    assert eer([0.5] * 6, [1, 0, 1, 0, 1, 0]).value == pytest.approx(0.5)


@pytest.mark.parametrize(("p_target", "c_miss", "c_fa"), [(0.01, 1, 1), (0.05, 1, 1), (0.1, 10, 1)])
def test_min_dcf_matches_brute_force_and_wespeaker(p_target: float, c_miss: float, c_fa: float) -> None:
    scores, labels = trials(11, 60, 600)
    c_def = min(c_miss * p_target, c_fa * (1 - p_target))
    costs = []
    for t in [*np.unique(scores), np.inf]:
        far, frr = brute_rates(scores, labels, t)
        costs.append((c_miss * frr * p_target + c_fa * far * (1 - p_target)) / c_def)
    result = min_dcf(scores, labels, p_target=p_target, c_miss=c_miss, c_fa=c_fa)
    assert result.value == pytest.approx(min(costs), abs=1e-12)
    wes = wespeaker_c_norm(*wespeaker_pmiss_pfa(scores, labels), p_target, c_miss, c_fa)
    assert result.value == pytest.approx(wes, abs=1e-12)
    far, frr = brute_rates(scores, labels, result.threshold)
    assert (c_miss * frr * p_target + c_fa * far * (1 - p_target)) / c_def == pytest.approx(result.value)


@pytest.mark.parametrize("far", [0.0, 0.001, 0.01, 0.1])
def test_threshold_at_far_is_the_lowest_threshold_within_the_rate(far: float) -> None:
    scores, labels = trials(5, 100, 1500)
    point = threshold_at(scores, labels, far=far)
    ok = [t for t in np.unique(scores) if brute_rates(scores, labels, t)[0] <= far]
    assert point.threshold == min(ok)
    assert point.far is not None
    assert point.frr is not None
    assert (point.far, point.frr) == pytest.approx(brute_rates(scores, labels, point.threshold))
    assert point.far <= far


def test_threshold_at_frr_is_the_highest_threshold_within_the_rate() -> None:
    scores, labels = trials(6, 200, 300)
    point = threshold_at(scores, labels, frr=0.05)
    ok = [t for t in np.unique(scores) if brute_rates(scores, labels, t)[1] <= 0.05]
    assert point.threshold == max(ok)
    assert point.frr is not None
    assert point.frr <= 0.05


def test_threshold_at_far_needs_only_nontargets() -> None:
    point = threshold_at([0.1, 0.2, 0.3, 0.4], [0, 0, 0, 0], far=0.25)
    assert point == (0.4, 0.25, None)


def test_as_norm_matches_a_per_trial_loop() -> None:
    rng = np.random.default_rng(0)
    enroll, test, cohort = rng.normal(size=(8, 16)), rng.normal(size=(8, 16)), rng.normal(size=(50, 16))
    raw = cosine_scores(enroll, test)
    got = as_norm(raw, enroll, test, cohort, top_n=10)

    def unit(v: np.ndarray) -> np.ndarray:
        return v / np.linalg.norm(v)

    for i in range(8):
        stats = []
        for x in (enroll[i], test[i]):
            cos = sorted((float(unit(x) @ unit(c)) for c in cohort), reverse=True)[:10]
            stats.append((np.mean(cos), np.std(cos)))
        expected = 0.5 * sum((raw[i] - m) / sd for m, sd in stats)
        assert got[i] == pytest.approx(expected, rel=1e-10)
        assert raw[i] == pytest.approx(float(unit(enroll[i]) @ unit(test[i])))


def test_subtract_mean_centres_on_the_cohort() -> None:
    rng = np.random.default_rng(1)
    shared = rng.normal(size=16) * 5
    emb, cohort = rng.normal(size=(4, 16)) + shared, rng.normal(size=(30, 16)) + shared
    out = subtract_mean(emb, cohort)
    c = cohort / np.linalg.norm(cohort, axis=1, keepdims=True)
    e = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    expected = e - c.mean(axis=0)
    np.testing.assert_allclose(out, expected / np.linalg.norm(expected, axis=1, keepdims=True))
    # The shared direction inflates raw cosines; after centring they fall.
    assert cosine_scores(out[:2], out[2:]).mean() < cosine_scores(emb[:2], emb[2:]).mean()


@pytest.mark.parametrize(
    ("kwargs", "keyword"),
    [
        ({"scores": [0.1, 0.2], "labels": [1]}, "labels="),
        ({"scores": [0.1, np.nan], "labels": [1, 0]}, "scores="),
        ({"scores": [[0.1, 0.2]], "labels": [1, 0]}, "scores="),
        ({"scores": [0.1, 0.2], "labels": [1, 1]}, "non-target"),
        ({"scores": [0.1, 0.2], "labels": [0, 0]}, "target"),
        ({"scores": [0.1, 0.2], "labels": [2, 0]}, "labels="),
        ({"scores": ["a", "b"], "labels": [1, 0]}, "scores="),
    ],
)
def test_bad_inputs_name_the_keyword(kwargs: dict[str, object], keyword: str) -> None:
    for fn in (eer, min_dcf, det_curve):
        with pytest.raises(ConfigError, match=keyword):
            fn(**kwargs)  # type: ignore[operator]


def test_bad_parameters_name_the_keyword() -> None:
    s, y = [0.1, 0.9], [0, 1]
    with pytest.raises(ConfigError, match="p_target="):
        min_dcf(s, y, p_target=1.0)
    with pytest.raises(ConfigError, match="c_fa="):
        min_dcf(s, y, c_fa=0)
    with pytest.raises(ConfigError, match="exactly one"):
        threshold_at(s, y)
    with pytest.raises(ConfigError, match="far="):
        threshold_at(s, y, far=1.5)
    with pytest.raises(ConfigError, match="top_n="):
        as_norm([0.5], [[1.0, 0.0]], [[0.0, 1.0]], [[1.0, 1.0], [1.0, 0.5]], top_n=1)
    with pytest.raises(ConfigError, match="cohort="):
        as_norm([0.5], [[1.0, 0.0]], [[0.0, 1.0]], [[1.0, 1.0]])
    with pytest.raises(ConfigError, match="enroll="):
        cosine_scores([[0.0, 0.0]], [[1.0, 0.0]])


# -- properties on arbitrary trials, ties included -------------------------------------------------


trial_lists = st.lists(
    st.tuples(st.integers(0, 8).map(lambda v: v / 8), st.booleans()), min_size=2, max_size=40
).filter(lambda t: any(y for _, y in t) and not all(y for _, y in t))


@given(trial_lists)
def test_eer_is_bracketed_by_the_operating_points(trials_: list[tuple[float, bool]]) -> None:
    scores = np.array([s for s, _ in trials_])
    labels = np.array([y for _, y in trials_])
    points = [brute_rates(scores, labels, t) for t in [*np.unique(scores), np.inf]]
    value, threshold = eer(scores, labels)
    # Between the last point with fnr < fpr and the first with fnr >= fpr, the crossing lies
    # above every point's smaller rate and below every point's larger rate.
    assert max(min(p) for p in points) - 1e-12 <= value <= min(max(p) for p in points) + 1e-12
    assert scores.min() <= threshold <= np.nextafter(scores.max(), np.inf)


@given(trial_lists, st.sampled_from([0.01, 0.05, 0.5]))
def test_min_dcf_is_the_brute_force_minimum(trials_: list[tuple[float, bool]], p_target: float) -> None:
    scores = np.array([s for s, _ in trials_])
    labels = np.array([y for _, y in trials_])
    c_def = min(p_target, 1 - p_target)
    costs = [
        (frr * p_target + far * (1 - p_target)) / c_def
        for far, frr in (brute_rates(scores, labels, t) for t in [*np.unique(scores), np.inf])
    ]
    assert min_dcf(scores, labels, p_target=p_target).value == pytest.approx(min(costs), abs=1e-12)


@given(trial_lists, st.sampled_from([0.0, 0.1, 0.25, 0.5]))
def test_threshold_at_far_is_the_brute_force_lowest(trials_: list[tuple[float, bool]], far: float) -> None:
    scores = np.array([s for s, _ in trials_])
    labels = np.array([y for _, y in trials_])
    point = threshold_at(scores, labels, far=far)
    ok = [t for t in [*np.unique(scores), np.inf] if brute_rates(scores, labels, t)[0] <= far]
    lowest = min(ok)
    assert point.threshold == (lowest if np.isfinite(lowest) else np.nextafter(scores.max(), np.inf))
    assert point.far is not None
    assert point.far <= far
