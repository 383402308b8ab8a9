"""Verification, TTS similarity, scoring and plots as users call them (type-checked, not run)."""

from __future__ import annotations

import numpy as np
from typing_extensions import assert_type

from speakerembed import (
    TTSSimilarityReport,
    VerificationReport,
    det_curve,
    eer,
    min_dcf,
    threshold_at,
    tts_similarity,
    verify_trials,
)
from speakerembed.analysis.scoring import DetCurve, MetricResult, OperatingPoint, as_norm

scores = np.array([0.9, 0.8, 0.3])
labels = np.array([True, True, False])

value, threshold = eer(scores, labels)
assert_type(value, float)
assert_type(min_dcf(scores, labels, p_target=0.05), MetricResult)
assert_type(det_curve(scores, labels), DetCurve)
point = threshold_at(scores, labels, far=0.01)
assert_type(point, OperatingPoint)
assert_type(point.frr, "float | None")
min_dcf(scores, labels, 0.05)  # type: ignore[call-arg]  # p_target is keyword-only

report = verify_trials("trials.txt", weights="resemblyzer", cohort=["cohort/"])
assert_type(report, VerificationReport)
assert_type(report.eer, "float | None")
verify_trials([("a.wav", "b.wav", True)], root="audio")

sim = tts_similarity("meta.lst", "generated/", weights="resemblyzer")
assert_type(sim, TTSSimilarityReport)
assert_type(sim.similarities, "list[float]")

normalised = as_norm(scores, np.ones((3, 4)), np.ones((3, 4)), np.ones((10, 4)), top_n=5)
