"""speakerembed's benchmarks: one module per family over a shared harness (``_harness.py``).

``python benchmarks/run.py`` (``nox -s bench``) runs every family; each also runs alone, as
``python -m benchmarks.families.throughput`` or ``python benchmarks/families/throughput.py``.
"""
