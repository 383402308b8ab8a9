"""speakerembed's benchmarks: the families in ``families/``, one-off scripts beside them.

``python benchmarks/run.py`` (``nox -s bench``) runs every family (``families/``, one module each
over the shared harness, ``_harness.py``); each also runs alone, as
``python -m benchmarks.families.throughput`` or ``python benchmarks/families/throughput.py``.
The scripts here (``bench_corpus.py``, ``bench_ray.py``, ...) run as they are; the corpus ones
share one corpus builder, ``_corpus.py``.
"""
