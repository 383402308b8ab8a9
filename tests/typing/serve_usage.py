"""The service and bytes in, as users call them, checked by ``mypy --strict``; not run."""

from __future__ import annotations

import io

import numpy as np
import numpy.typing as npt
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from typing_extensions import assert_type

from speakerembed import SpeakerEmbedder
from speakerembed.serve import ServiceLimits, create_app


def service() -> None:
    registry = CollectorRegistry()
    embedder = SpeakerEmbedder("resemblyzer", device="cpu", registry=registry)
    limits = ServiceLimits(max_body_mb=10)
    app = create_app(embedder, registry=registry, api_key="k", limits=limits, max_wait_ms=5)
    assert_type(app, Starlette)
    create_app(embedder, limits=ServiceLimits(max_queue="64"))  # type: ignore[arg-type]
    with open("a.wav", "rb") as f:
        rows = embedder.embed_utterances([f, io.BytesIO(b"..."), b"RIFF..."])
    assert_type(rows, npt.NDArray[np.float32])
