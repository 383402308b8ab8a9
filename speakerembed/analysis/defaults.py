"""The analyses' measured defaults, apart from the analyses, so the CLI shows them without NumPy.

:mod:`speakerembed.analysis.clean` and :mod:`speakerembed.analysis.clustering` hold them under
the same names; ``speakerembed clean --help`` and ``speakerembed cluster --help`` read them here.
"""

from __future__ import annotations

__all__ = ["DEFAULT_THRESHOLD", "DUPLICATE_THRESHOLD", "OUTLIER_THRESHOLD"]

#: Default ``outlier_threshold``: the equal-error cosine between a clip and a speaker's
#: leave-one-out robust centroid, same speaker against different speakers, measured on the dev
#: speech with ``weights="resemblyzer"`` (0.742, at an EER of 0.24 %; 82 same-speaker and 845
#: different-speaker scores; ``benchmarks/analysis_thresholds.py``, ``docs/analysis.rst``).
OUTLIER_THRESHOLD = 0.74
#: Default ``duplicate_threshold``: above the highest cosine between two *different*
#: recordings of one speaker on the dev speech (0.984 over 396 pairs), below the cosine of a
#: recording and a resampled copy of it (0.999 at the lowest). Copies whose level or noise
#: changed can score lower (0.92 to 0.99) and are not told apart from a second take.
DUPLICATE_THRESHOLD = 0.99
#: Default ``threshold`` of :func:`~speakerembed.cluster_speakers`: the mean cosine between two groups of
#: clips at which they merge. Measured on the labelled real speech (LibriSpeech, CMU ARCTIC,
#: LJ Speech, VCTK; repeated speakers mixed with speakers heard once) with
#: ``weights="resemblyzer"`` by ``benchmarks/cluster_thresholds.py``: the threshold of the
#: best B-cubed F1 there (see ``docs/clustering.rst``).
DEFAULT_THRESHOLD = 0.76
