"""speakerembed: Chatterbox-compatible speaker embeddings, with a typed pipeline in front.

>>> from speakerembed import embed_speaker, embed_utterances, Pipeline, SpeakerEmbedder

Importing the package is cheap: torch, soundfile and prometheus_client load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._version import __version__
from .config import Pipeline
from .consolidate import cosine_similarity, utt_to_spk_embed
from .errors import (
    AudioError,
    BackendUnavailableError,
    ConfigError,
    InputTooLongError,
    SpeakerEmbedError,
    WeightsError,
)

if TYPE_CHECKING:
    from .api import clear_cache, embed_conditioning, embed_speaker, embed_utterances
    from .embedder import EmbeddingResult, Failure, SpeakerEmbedder
    from .weights import WeightsInfo

__all__ = [
    "AudioError",
    "BackendUnavailableError",
    "ConfigError",
    "EmbeddingResult",
    "Failure",
    "InputTooLongError",
    "Pipeline",
    "SpeakerEmbedError",
    "SpeakerEmbedder",
    "WeightsError",
    "WeightsInfo",
    "__version__",
    "clear_cache",
    "cosine_similarity",
    "embed_conditioning",
    "embed_speaker",
    "embed_utterances",
    "utt_to_spk_embed",
]

_LAZY = {
    "embed_conditioning": "api",
    "embed_speaker": "api",
    "embed_utterances": "api",
    "clear_cache": "api",
    "SpeakerEmbedder": "embedder",
    "EmbeddingResult": "embedder",
    "Failure": "embedder",
    "WeightsInfo": "weights",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'speakerembed' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
