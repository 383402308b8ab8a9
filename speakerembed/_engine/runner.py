"""The :class:`Engine`: one embedder's encoder, device, recorder and overrides, and its two steps.

:class:`~speakerembed.SpeakerEmbedder` holds one (its ``engine``) and hands every call to it:
:meth:`Engine.prepare_all` (the stages on each input, scheduled by
:func:`~speakerembed._engine.schedule.plan`) and :meth:`Engine.encode` (packing, encoding and
consolidation: :func:`~speakerembed._engine.encoding.encode_iter`). The Chatterbox API, the per-window
embeddings and the corpus job use the same two steps.

On a CUDA device, a call of many files (:func:`~speakerembed._engine.schedule.prepare_processes`)
is prepared in worker processes (:mod:`speakerembed._engine.processes`), whose mels come back
through shared memory; every other call prepares in this process, on threads.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from .encoding import encode_iter
from .preparation import OnFailure, Prepared, Preparer, as_library_error, settle
from .recorder import Recorder
from .schedule import NO_OVERRIDES, Overrides, Schedule, for_one_input, plan, prepare_processes, usable_cores

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

    def one_input(
        self, prepared: Iterator[Prepared], schedule: Schedule, pipe: Pipeline
    ) -> tuple[Iterator[Prepared], Schedule]:
        """A call of one input on a CPU: prepare it now and fit the schedule to its windows.

        There is nothing to prepare beside a lone input, so it is prepared before encoding
        starts, on one torch thread (as it is beside the encoder streams, so that its mel is the
        same bits whatever the caller's thread count); when its windows fit in one batch, it
        runs as that one call (:func:`~speakerembed._engine.schedule.for_one_input`).
        """
        if self.device.type != "cpu":
            return prepared, schedule
        import torch

        from ..stages.windows import num_windows
        from .prefetch import torch_threads

        with torch_threads(1):  # on one thread, as beside streams: the same mel bits on any count
            alone = list(prepared)
        if alone and alone[0].mel is not None:
            frames = int(alone[0].mel.shape[0])
            n, _ = num_windows(frames, pipe.frame_step, pipe.min_coverage, pipe.partial_frames)
            cap = pipe.windows_per_batch("cpu")
            schedule = for_one_input(schedule, n, cap, torch.get_num_threads(), self.overrides)
        return iter(alone), schedule

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
        processes: int = 0,
    ) -> Iterator[Prepared]:
        """Every input through the stages: in ``processes`` worker processes, or here on ``threads``.

        With ``processes`` (:meth:`prepare_processes`), the workers of
        :func:`speakerembed._engine.processes.pooled` prepare the files and ship their mels
        through shared memory; files long enough to stream stream here. Otherwise
        :meth:`Preparer.prepare_all` prepares them in bursts on ``threads`` threads. Failures
        are handled alike either way (:func:`~speakerembed._engine.preparation.settle`).
        """
        if processes < 1:
            return self.preparer.prepare_all(items, rates, pipe, rec, on_failure, threads)
        from . import processes as workers

        def here(index: int) -> workers.Outcome:
            try:
                return index, self.preparer.prepare(index, items[index], rates[index], pipe, rec)
            except Exception as exc:  # noqa: BLE001 - every failure is reported as ours
                return index, as_library_error(exc, f"input {index}")

        outcomes = workers.pooled(items, rates, pipe, processes, here, rec)
        return settle(outcomes, rec, on_failure)

    def prepare_processes(self, items: Sequence[object], pipe: Pipeline) -> int:
        """Worker processes to prepare ``items`` with (0: in this process), on this machine now.

        :func:`~speakerembed._engine.schedule.prepare_processes`, and, unless the overrides fix
        the count, only where worker processes may start
        (:func:`~speakerembed._engine.processes.main_is_guarded`).
        """
        n_files = sum(isinstance(x, (str, os.PathLike)) for x in items)
        on_device = pipe.resampler == "torchaudio" and pipe.resample_device != "cpu"
        cores = usable_cores()
        n = prepare_processes(len(items), n_files, self.device.type, on_device, cores, self.overrides)
        if n > 0 and self.overrides.prepare_processes is None:
            from .processes import main_is_guarded

            if not main_is_guarded():
                return 0
        return n

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
        """Encode prepared inputs: :meth:`encode_iter`'s rows, gathered by input index."""
        return dict(
            self.encode_iter(prepared, pipe, on_failure=on_failure, kept=kept, rec=rec, schedule=schedule)
        )

    def encode_iter(
        self,
        prepared: Iterable[Prepared],
        pipe: Pipeline,
        *,
        on_failure: OnFailure | None = None,
        kept: dict[int, float] | None = None,
        rec: Recorder | None = None,
        schedule: Schedule | None = None,
    ) -> Iterator[tuple[int, npt.NDArray[np.float32]]]:
        """Encode prepared inputs, yielding each row as its input is done.

        :func:`~speakerembed._engine.encoding.encode_iter`. ``schedule`` defaults to
        :meth:`schedule` for two inputs or more (streams on a CPU); pass it when this runs with
        the caller's torch threads changed.
        """
        return encode_iter(
            prepared,
            pipe,
            encoder=self.encoder,
            device=self.device,
            schedule=schedule if schedule is not None else self.schedule(2),
            rec=self.recorder if rec is None else rec,
            on_failure=on_failure,
            kept=kept,
        )
