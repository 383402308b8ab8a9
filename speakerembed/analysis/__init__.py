"""What to do with embeddings: answers, not vectors.

- :mod:`~speakerembed.analysis.clustering`: group unlabelled clips into speakers
  (``speakerembed cluster``), and B-cubed scores of a clustering.

The public functions are re-exported from :mod:`speakerembed`.
"""

__all__: list[str] = []
