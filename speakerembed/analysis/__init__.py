"""What to do with embeddings: answers, not vectors.

- :mod:`~speakerembed.analysis.scoring`: EER, minDCF, DET curves, thresholds, AS-norm.
- :mod:`~speakerembed.analysis.verify`: verification over trial lists (``speakerembed verify``).
- :mod:`~speakerembed.analysis.sim_eval`: TTS speaker similarity (``speakerembed sim-eval``).
- :mod:`~speakerembed.analysis.clean`: dataset cleaning (``speakerembed clean``).
- :mod:`~speakerembed.analysis.per_window`: embeddings of windows along a recording
  (``speakerembed windows``).
- :mod:`~speakerembed.analysis.plots`: figures of the above (matplotlib's Agg, no pyplot).
- :mod:`~speakerembed.analysis.clustering`: group unlabelled clips into speakers
  (``speakerembed cluster``), and B-cubed scores of a clustering.
- :mod:`~speakerembed.analysis.diarization`: who spoke when (:func:`~speakerembed.diarize`,
  ``speakerembed diarize``).
- :mod:`~speakerembed.analysis.der`: the diarization and Jaccard error rates on RTTM-like
  turns (re-exported by :mod:`speakerembed.analysis.scoring`).

The public functions are re-exported from :mod:`speakerembed`.
"""

__all__: list[str] = []
