"""speakerembed.analysis.scoring.der and jer against pyannote.metrics (a test-only dependency)."""

from __future__ import annotations

import numpy as np
import pytest

from speakerembed.analysis.scoring import der, jer
from speakerembed.errors import ConfigError

pm = pytest.importorskip(
    "pyannote.metrics.diarization", reason="pyannote.metrics (test group) is not installed"
)
core = pytest.importorskip("pyannote.core")


def _annotation(turns: list[tuple[float, float, str]]) -> object:
    a = core.Annotation()
    for i, (s, e, spk) in enumerate(turns):
        a[core.Segment(s, e), i] = spk
    return a


def _random_turns(rng: np.random.Generator, labels: str, overlap: bool) -> list[tuple[float, float, str]]:
    t, out = 0.0, []
    while t < 60:
        d = float(rng.uniform(0.3, 8.0))
        spk = str(rng.choice(list(labels)))
        out.append((round(t, 3), round(t + d, 3), spk))
        t += d + (float(rng.uniform(-1.0, 1.5)) if overlap else float(rng.uniform(0.0, 1.5)))
        t = max(t, out[-1][0] + 0.01)
    # one speaker's own turns never overlap (pyannote would count such a speaker twice)
    merged: dict[str, list[list[float]]] = {}
    for s, e, spk in sorted(out):
        spans = merged.setdefault(spk, [])
        if spans and s <= spans[-1][1]:
            spans[-1][1] = max(spans[-1][1], e)
        else:
            spans.append([s, e])
    return [(s, e, spk) for spk, spans in merged.items() for s, e in spans]


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize(("collar", "skip_overlap"), [(0.0, False), (0.25, False), (0.0, True), (0.5, True)])
def test_der_and_jer_match_pyannote(seed: int, collar: float, skip_overlap: bool) -> None:
    rng = np.random.default_rng(seed)
    ref = _random_turns(rng, "abc", overlap=seed % 2 == 0)
    hyp = _random_turns(rng, "XYZW"[: 2 + seed % 3], overlap=False)
    ours = der(ref, hyp, collar=collar, skip_overlap=skip_overlap)
    # the extent of both, which pyannote also takes without a uem (with a warning)
    uem = core.Timeline([core.Segment(min(t[0] for t in ref + hyp), max(t[1] for t in ref + hyp))])
    metric = pm.DiarizationErrorRate(collar=collar, skip_overlap=skip_overlap)
    parts = metric(_annotation(ref), _annotation(hyp), uem=uem, detailed=True)
    assert ours.der == pytest.approx(parts["diarization error rate"], abs=1e-9)
    assert ours.missed_s == pytest.approx(parts["missed detection"], abs=1e-6)
    assert ours.false_alarm_s == pytest.approx(parts["false alarm"], abs=1e-6)
    assert ours.confusion_s == pytest.approx(parts["confusion"], abs=1e-6)
    assert ours.total_s == pytest.approx(parts["total"], abs=1e-6)
    theirs = pm.JaccardErrorRate(collar=collar, skip_overlap=skip_overlap)(
        _annotation(ref), _annotation(hyp), uem=uem
    )
    assert jer(ref, hyp, collar=collar, skip_overlap=skip_overlap).jer == pytest.approx(theirs, abs=1e-9)


def test_perfect_and_relabelled_hypothesis_scores_zero() -> None:
    ref = [(0.0, 4.0, "a"), (4.5, 9.0, "b"), (9.0, 12.0, "a")]
    hyp = [(s, e, {"a": 7, "b": 3}[k]) for s, e, k in ref]
    assert der(ref, hyp).der == 0.0
    assert jer(ref, hyp).jer == 0.0
    assert der(ref, []).missed_s == pytest.approx(11.5)
    assert der(ref, []).der == pytest.approx(1.0)


def test_bad_turns_are_refused_by_name() -> None:
    with pytest.raises(ConfigError, match=r"hypothesis\[0\]"):
        der([(0, 1, "a")], [(2, 1, "x")])
    with pytest.raises(ConfigError, match="collar"):
        der([(0, 1, "a")], [(0, 1, "x")], collar=-1)
