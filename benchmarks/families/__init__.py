"""The benchmark families that ``benchmarks/run.py`` (``nox -s bench``) runs, one module each.

Each has ``run(opts) -> FamilyResult`` over the shared harness (``benchmarks/_harness.py``) and
also runs alone: ``python -m benchmarks.families.throughput``.
"""
