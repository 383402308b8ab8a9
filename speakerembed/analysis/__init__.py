"""What to do with embeddings: answers, not vectors.

- :mod:`~speakerembed.analysis.clustering`: group unlabelled clips into speakers
  (``speakerembed cluster``), and B-cubed scores of a clustering.
- :mod:`~speakerembed.analysis.diarization`: who spoke when (:func:`~speakerembed.diarize`,
  ``speakerembed diarize``).
- :mod:`~speakerembed.analysis.der`: the diarization and Jaccard error rates on RTTM-like
  turns (re-exported by :mod:`speakerembed.scoring`).

The public functions are re-exported from :mod:`speakerembed`.
"""

__all__: list[str] = []
