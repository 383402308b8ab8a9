"""The service's batching defaults, apart from it, so ``speakerembed serve --help`` needs no NumPy."""

from __future__ import annotations

__all__ = ["DEFAULT_MAX_BATCH_WINDOWS", "DEFAULT_MAX_WAIT_MS"]

#: Most windows in one encoder batch: the embedder's own CPU batch (``Pipeline.windows_per_batch``).
DEFAULT_MAX_BATCH_WINDOWS = 64
#: How long the oldest waiting window may wait for others to fill its batch, in milliseconds,
#: while other inputs are still being prepared (with none preparing, nothing waits, so a lone
#: request never pays it). Measured with ``benchmarks/families/serve_load.py`` on the shared 2-core
#: machine at 16 clients (docs/serve.rst, "Measured under load"): in two sweeps of 0, 2, 5 and
#: 20 ms, 20 ms had the best or near-best throughput and the lowest p99 of a 10 s clip (87.7
#: audio s/s against 69.4 for 0 ms, p99 1.88 s against 2.18 s); run alternately with 0 ms, twice
#: each, 20 ms gave 75.0 and 81.1 audio s/s against 69.1 and 74.4, p99 1.99 and 1.93 s against
#: 2.04 and 2.32 s. 20 ms is the largest wait measured.
DEFAULT_MAX_WAIT_MS = 20.0
