"""``speakerembed serve``: an HTTP service that batches concurrent requests (extra ``serve``).

:func:`create_app` returns the ASGI app (Starlette), so it can be run by uvicorn
(``speakerembed serve``) or mounted in another service. Concurrent requests' windows share encoder
batches (``speakerembed.serve._batcher``), bounded by a queue that answers 503 when full.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .defaults import DEFAULT_MAX_BATCH_WINDOWS, DEFAULT_MAX_WAIT_MS

if TYPE_CHECKING:
    from ._batcher import QueueFullError
    from .app import SERVICE_METRICS, ServiceLimits, create_app

# The service's modules import NumPy (and the app, Starlette): loaded when first named.
_LAZY = {
    "QueueFullError": "._batcher",
    "SERVICE_METRICS": ".app",
    "ServiceLimits": ".app",
    "create_app": ".app",
}

__all__ = [
    "DEFAULT_MAX_BATCH_WINDOWS",
    "DEFAULT_MAX_WAIT_MS",
    "SERVICE_METRICS",
    "QueueFullError",
    "ServiceLimits",
    "create_app",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
