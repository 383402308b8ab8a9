"""Speaker structure: who spoke when (diarization), its scoring, and speaker clustering.

* :mod:`speakerembed.analysis.diarization`: :func:`~speakerembed.diarize` and its
  :class:`~speakerembed.analysis.diarization.DiarizationConfig`.
* :mod:`speakerembed.analysis.der`: the diarization error rate and the Jaccard error rate on
  RTTM-like turns (re-exported by :mod:`speakerembed.scoring`).
"""

from __future__ import annotations

__all__: list[str] = []
