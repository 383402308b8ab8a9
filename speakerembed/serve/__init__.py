"""``speakerembed serve``: an HTTP service that batches concurrent requests (extra ``serve``).

:func:`create_app` returns the ASGI app (Starlette), so it can be run by uvicorn
(``speakerembed serve``) or mounted in another service. Concurrent requests' windows share encoder
batches (``speakerembed.serve._batcher``), bounded by a queue that answers 503 when full.
"""

from __future__ import annotations

from ._batcher import DEFAULT_MAX_BATCH_WINDOWS, DEFAULT_MAX_WAIT_MS, QueueFullError
from .app import SERVICE_METRICS, ServiceLimits, create_app

__all__ = [
    "DEFAULT_MAX_BATCH_WINDOWS",
    "DEFAULT_MAX_WAIT_MS",
    "SERVICE_METRICS",
    "QueueFullError",
    "ServiceLimits",
    "create_app",
]
