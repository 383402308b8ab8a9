"""How another process builds the job's embedder again: :class:`EmbedderSpec`.

The local engine's encoder processes on a CPU (:mod:`speakerembed.corpus.encoders`) and the Ray
engine's actors (:mod:`speakerembed.corpus.ray_engine`) each load the weights again. They are
sent an :class:`EmbedderSpec` (plain, picklable values), made in the job's process with
:meth:`EmbedderSpec.of`, and call :meth:`EmbedderSpec.load` where they run. The loaded weights
must have the sha256 of the job's, so that other weights cannot mix their embeddings into the
output.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from ..errors import ConfigError, WeightsError

if TYPE_CHECKING:
    from ..config import Pipeline
    from ..embedder import SpeakerEmbedder
    from ..stages.encoder import EncoderImpl, Precision

__all__ = [
    "ACTORS_NEED_WEIGHTS",
    "MISMATCH_IN_A_WORKER",
    "MISMATCH_ON_A_NODE",
    "WORKERS_NEED_WEIGHTS",
    "EmbedderSpec",
    "weights_to_ship",
]

#: Why :meth:`EmbedderSpec.of` refuses an encoder module passed in, for the CPU encoder workers.
WORKERS_NEED_WEIGHTS = (
    "workers on a CPU are encoder processes that load the weights again, so they need a "
    "preset name or a weights file, not an encoder module passed in; pass weights= "
    "(--weights), or workers=0 (--workers 0)"
)
#: The same, for the Ray engine's actors.
ACTORS_NEED_WEIGHTS = (
    "the Ray engine loads the weights again in every actor, so it needs a preset name or a "
    "weights file, not an encoder module passed in; pass weights= (--weights) instead"
)
#: What :meth:`EmbedderSpec.load` says when a Ray node's weights are not the job's.
MISMATCH_ON_A_NODE = (
    "the weights {weights!r} on the Ray node {host} have sha256 {got}, but the job's are {want}; "
    "install the same weights on every node (or pass a weights file on shared storage)"
)
#: The same, for an encoder worker on this machine.
MISMATCH_IN_A_WORKER = (
    "the weights {weights!r} loaded by an encoder worker have sha256 {got}, but the job's are "
    "{want} (did the file change during the job?); run the job again, or with workers=0 (--workers 0)"
)


def weights_to_ship(embedder: SpeakerEmbedder) -> str | None:
    """The ``weights`` another process passes to load ``embedder``'s weights, or None.

    A preset's name, or the file's path; None for an encoder module passed in, which cannot
    travel to another process.
    """
    info = embedder.weights_info
    if info.name == "file":
        return info.path
    if info.name == "instance":
        return None
    return info.name


@dataclasses.dataclass(frozen=True)
class EmbedderSpec:
    """What another process needs to build the job's embedder again: plain, picklable values.

    Attributes
    ----------
    weights : str
        A preset name, or a weights file that the other process sees at this path.
    pipeline : Pipeline
        The preprocessing.
    encoder : {"builtin", "chatterbox"}
        The network class the weights are loaded into.
    device : str or None
        The device there (``None`` picks CUDA, then MPS, then CPU).
    precision : {"fp32", "bf16", "auto"}
        The encoder's precision (the job's, resolved).
    threads : int
        torch's intra-op threads there.
    weights_sha256 : str or None
        The sha256 the loaded weights must have (None: not checked).
    """

    weights: str
    pipeline: Pipeline
    encoder: EncoderImpl = "builtin"
    device: str | None = None
    precision: Precision = "fp32"
    threads: int = 1
    weights_sha256: str | None = None

    @classmethod
    def of(
        cls,
        embedder: SpeakerEmbedder,
        *,
        pipeline: Pipeline | None = None,
        encoder: EncoderImpl = "builtin",
        device: str | None = None,
        threads: int = 1,
        refusal: str = WORKERS_NEED_WEIGHTS,
    ) -> EmbedderSpec:
        """The spec of a loaded embedder: its weights, precision and sha256.

        Parameters
        ----------
        embedder : SpeakerEmbedder
            The job's embedder.
        pipeline : Pipeline or None
            The job's preprocessing (default: the embedder's).
        encoder, device, threads
            As the other process should use them.
        refusal : str
            The message of the error for weights that cannot travel
            (``WORKERS_NEED_WEIGHTS`` or ``ACTORS_NEED_WEIGHTS``).

        Raises
        ------
        ConfigError
            If the weights cannot be loaded in another process (an encoder module passed in).
        """
        weights = weights_to_ship(embedder)
        if weights is None:
            raise ConfigError(refusal)
        return cls(
            weights=weights,
            pipeline=pipeline if pipeline is not None else embedder.pipeline,
            encoder=encoder,
            device=device,
            precision=embedder.precision,
            threads=threads,
            weights_sha256=embedder.weights_info.sha256,
        )

    def build(self) -> SpeakerEmbedder:
        """Set torch's threads and load the embedder, without checking its sha256."""
        import torch

        from ..embedder import SpeakerEmbedder

        torch.set_num_threads(self.threads)
        return SpeakerEmbedder(
            self.weights,
            encoder=self.encoder,
            device=self.device,
            precision=self.precision,
            pipeline=self.pipeline,
        )

    def verify(self, embedder: SpeakerEmbedder, *, mismatch: str = MISMATCH_ON_A_NODE) -> None:
        """Raise :class:`~speakerembed.WeightsError` if ``embedder``'s weights are not the job's.

        ``mismatch`` is the message, formatted with ``weights``, ``host``, ``got`` and ``want``.
        """
        got, want = embedder.weights_info.sha256, self.weights_sha256
        if want is not None and got != want:
            import socket

            host = socket.gethostname()
            raise WeightsError(mismatch.format(weights=self.weights, host=host, got=got, want=want))

    def load(self, *, mismatch: str = MISMATCH_ON_A_NODE) -> SpeakerEmbedder:
        """Build the embedder here (:meth:`build`) and check its weights (:meth:`verify`).

        Raises
        ------
        WeightsError
            If the weights cannot be loaded, or their sha256 is not the job's (the message
            names this host).
        """
        embedder = self.build()
        self.verify(embedder, mismatch=mismatch)
        return embedder
