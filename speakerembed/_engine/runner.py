"""The :class:`Engine`: one embedder's encoder, device, recorder and overrides, and its two steps.

:class:`~speakerembed.SpeakerEmbedder` holds one (its ``engine``) and hands every call to it:
:meth:`Engine.prepare_all` (the stages on each input, scheduled by
:func:`~speakerembed._engine.schedule.plan`) and :meth:`Engine.encode` (packing, encoding and
consolidation: :func:`~speakerembed._engine.encoding.encode`). The Chatterbox API, the per-window
embeddings and the corpus job use the same two steps.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from .encoding import encode, encode_iter
from .preparation import OnFailure, Prepared, Preparer
from .recorder import Recorder
from .schedule import NO_OVERRIDES, Overrides, Schedule, plan, usable_cores

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import torch

    from ..config import Pipeline

__all__ = ["Engine"]


class Engine:
    """Runs the stages and the encoder for one embedder (internal).

    Parameters
    ----------
    encoder : ModuleEncoder
        Windows in, unit rows out.
    device : torch.device
        The encoder's device.
    recorder : Recorder
        Where the measurements go.
    overrides : Overrides
        Fixed scheduling choices (tests and benchmarks).
    """

    def __init__(
        self, encoder: Any, device: torch.device, recorder: Recorder, overrides: Overrides = NO_OVERRIDES
    ) -> None:
        self.encoder = encoder
        self.device = device
        self.recorder = recorder
        self.overrides = overrides
        self.preparer = Preparer(device)

    def schedule(self, n_items: int) -> Schedule:
        """:func:`~speakerembed._engine.schedule.plan` for ``n_items`` inputs, on this machine now."""
        import torch

        return plan(
            n_items,
            self.device.type,
            usable_cores(),
            torch.get_num_threads(),
            bool(getattr(self.encoder, "concurrent_calls", False)),
            self.overrides,
        )

    def prepare(
        self, index: int, item: object, rate: object, pipe: Pipeline, rec: Recorder | None = None
    ) -> Prepared:
        """One input through the stages (:meth:`Preparer.prepare`), recorded to ``rec`` or the engine's."""
        return self.preparer.prepare(index, item, rate, pipe, self.recorder if rec is None else rec)

    def prepare_all(
        self,
        items: list[object],
        rates: list[object],
        pipe: Pipeline,
        rec: Recorder,
        on_failure: OnFailure | None,
        threads: int = 1,
    ) -> Iterator[Prepared]:
        """Every input through the stages (:meth:`Preparer.prepare_all`)."""
        return self.preparer.prepare_all(items, rates, pipe, rec, on_failure, threads)

    def encode(
        self,
        prepared: Iterable[Prepared],
        pipe: Pipeline,
        *,
        on_failure: OnFailure | None = None,
        kept: dict[int, float] | None = None,
        rec: Recorder | None = None,
        schedule: Schedule | None = None,
    ) -> dict[int, npt.NDArray[np.float32]]:
        """Encode prepared inputs (:func:`~speakerembed._engine.encoding.encode`).

        ``schedule`` defaults to :meth:`schedule` for two inputs or more (streams on a CPU);
        pass it when this runs with the caller's torch threads changed.
        """
        return encode(
            prepared,
            pipe,
            encoder=self.encoder,
            device=self.device,
            schedule=schedule if schedule is not None else self.schedule(2),
            rec=self.recorder if rec is None else rec,
            on_failure=on_failure,
            kept=kept,
        )

    def encode_iter(
        self,
        prepared: Iterable[Prepared],
        pipe: Pipeline,
        *,
        on_failure: OnFailure | None = None,
        rec: Recorder | None = None,
    ) -> Iterator[tuple[int, npt.NDArray[np.float32]]]:
        """Encode prepared inputs, yielding each row as its input is done.

        :func:`~speakerembed._engine.encoding.encode_iter`, with :meth:`schedule` for two inputs
        or more.
        """
        return encode_iter(
            prepared,
            pipe,
            encoder=self.encoder,
            device=self.device,
            schedule=self.schedule(2),
            rec=self.recorder if rec is None else rec,
            on_failure=on_failure,
        )
