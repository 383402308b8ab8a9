"""The hooks an embedder reports to. The base class records nothing and costs next to nothing.

:mod:`speakerembed.metrics` implements them with Prometheus collectors.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..weights import WeightsInfo

__all__ = ["NULL_RECORDER", "Recorder"]


class Recorder:
    """Receives an embedder's measurements. Every method is a no-op here."""

    enabled = False

    def stage(self, stage: str, device: str, seconds: float) -> None:
        """One stage of one utterance (or one encoder batch) took ``seconds`` on ``device``."""

    def call(self, operation: str, seconds: float, ok: bool) -> None:
        """A public call (``embed_utterances`` or ``embed_speaker``) finished."""

    def in_progress(self, operation: str, delta: int) -> None:
        """A call started (+1) or ended (-1)."""

    def utterance(
        self, ok: bool, input_seconds: float | None = None, trimmed_seconds: float | None = None
    ) -> None:
        """One utterance was embedded, or failed."""

    def error(self, stage: str, error: BaseException) -> None:
        """An error happened in ``stage``."""

    def batch(self, windows: int, device: str) -> None:
        """The encoder ran a forward pass over ``windows`` windows."""

    def speaker(self, n_utterances: int) -> None:
        """A speaker embedding was made from ``n_utterances`` utterances."""

    def model_loaded(self, seconds: float, info: WeightsInfo, device: str) -> None:
        """An embedder loaded its weights."""

    def device_memory(self, device: str) -> None:
        """Sample the device's memory in use."""

    def embedder_used(self, embedder: object) -> None:
        """Note that a module-level call will use ``embedder``, perhaps cached from before."""


NULL_RECORDER = Recorder()
