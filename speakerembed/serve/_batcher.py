"""Dynamic batching across requests: every request's partial windows share encoder batches.

This is the one module of the service that uses the embedder's internals, at the seam its own
pipeline has (``speakerembed.embedder``):

1. **prepare** an input: the embedder's engine (``embedder.engine.prepare``) decodes, resamples,
   trims and turns it into a mel; :func:`speakerembed.stages.windows.partial_windows` cuts the mel
   into windows. This runs on a pool of preparing threads, never on the event loop.
2. **encode** a batch of windows: one thread takes windows from every waiting request, up to
   ``max_batch_windows`` or until the oldest has waited ``max_wait_ms``, and runs the encoder on
   them (split between one-thread encoder streams on a CPU of two cores or more, as the
   embedder's own calls are).
3. **consolidate** per input: when an input's last window is encoded, its rows are averaged and
   renormalised by :func:`speakerembed.stages.consolidate.mean_embedding`, as ``embed_utterances``
   does.

A window's embedding does not depend on the other windows in its batch, so a request's answer
equals ``embed_utterances`` on the same file, whatever it was batched with.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import SpeakerEmbedError
from .defaults import DEFAULT_MAX_BATCH_WINDOWS, DEFAULT_MAX_WAIT_MS

if TYPE_CHECKING:
    import numpy.typing as npt
    import torch

    from ..config import Pipeline
    from ..embedder import SpeakerEmbedder

__all__ = ["DEFAULT_MAX_BATCH_WINDOWS", "DEFAULT_MAX_WAIT_MS", "Batcher", "Embedded", "QueueFullError"]


class QueueFullError(SpeakerEmbedError):
    """The service holds as many inputs as its queue allows; the client should retry later."""


@dataclasses.dataclass(frozen=True)
class Embedded:
    """One input through the batcher.

    Attributes
    ----------
    embedding : numpy.ndarray, shape (256,), float32
        The utterance embedding (unit norm), as ``embed_utterances`` gives it.
    windows : numpy.ndarray, shape (n_windows, 256), float32
        Each partial window's unit embedding, in time order.
    start_s, end_s : numpy.ndarray, shape (n_windows,), float64
        Each window's span in the input's own seconds.
    duration_s : float
        The input's duration, in seconds.
    speech_s : float
        Seconds of it that reached the encoder.
    """

    embedding: npt.NDArray[np.float32]
    windows: npt.NDArray[np.float32]
    start_s: npt.NDArray[np.float64]
    end_s: npt.NDArray[np.float64]
    duration_s: float
    speech_s: float


@dataclasses.dataclass(eq=False)
class _Job:
    windows: torch.Tensor
    prepared: Any
    pipe: Pipeline
    done: Callable[[Embedded | BaseException], None]
    taken: int = 0
    rows: list[torch.Tensor] = dataclasses.field(default_factory=list)
    received: int = 0


class Batcher:
    """Packs concurrent requests' windows into shared encoder batches.

    Parameters
    ----------
    embedder : SpeakerEmbedder
        The weights and the default pipeline.
    max_batch_windows : int
        Most windows in one encoder batch.
    max_wait_ms : float
        How long the oldest waiting window waits for others before its batch runs anyway.
    max_queue : int
        Most inputs held at once (preparing or waiting for the encoder); more are refused
        with :class:`QueueFullError`.
    prepare_threads : int
        Threads that decode and prepare inputs.
    batching : bool
        False encodes each input's windows alone (the measurement's "off").
    observe_batch : callable or None
        Called with each batch's size in windows.
    """

    def __init__(
        self,
        embedder: SpeakerEmbedder,
        *,
        max_batch_windows: int = DEFAULT_MAX_BATCH_WINDOWS,
        max_wait_ms: float = DEFAULT_MAX_WAIT_MS,
        max_queue: int = 256,
        prepare_threads: int = 2,
        batching: bool = True,
        observe_batch: Callable[[int], None] | None = None,
    ) -> None:
        self.embedder = embedder
        self.max_batch_windows = max_batch_windows
        self.max_wait_s = max_wait_ms / 1000.0
        self.max_queue = max_queue
        self.batching = batching
        self._observe = observe_batch
        self._cond = threading.Condition()
        self._waiting: deque[_Job] = deque()
        self._held = 0  # inputs admitted and not yet answered
        self._preparing = 0  # inputs admitted and not yet windowed
        self._closed = False
        # As many one-thread encoder streams as a call of several inputs would run here.
        self._streams = embedder.engine.schedule(2).streams
        self._prepare_pool = ThreadPoolExecutor(
            prepare_threads, thread_name_prefix="speakerembed-prepare", initializer=_one_torch_thread
        )
        self._encode_pool = (
            ThreadPoolExecutor(
                self._streams, thread_name_prefix="speakerembed-encode", initializer=_one_torch_thread
            )
            if self._streams > 1
            else None
        )
        self._thread = threading.Thread(target=self._loop, name="speakerembed-batcher", daemon=True)
        self._thread.start()

    @property
    def queue_depth(self) -> int:
        """Inputs admitted and not yet answered (preparing, waiting or being encoded)."""
        return self._held

    def warm_up(self) -> None:
        """Run one batch of silence through the encoder, so the first request is not the slow one."""
        import torch

        from ..stages.mel import N_MELS

        frames = self.embedder.pipeline.partial_frames
        with torch.inference_mode():
            self.embedder.encoder(torch.zeros(2, frames, N_MELS, device=self.embedder.device))

    def close(self) -> None:
        """Stop the batching thread after the waiting windows are encoded."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout=60)
        self._prepare_pool.shutdown(wait=True)
        if self._encode_pool is not None:
            self._encode_pool.shutdown(wait=True)

    async def embed(
        self,
        items: Sequence[object],
        *,
        pipeline: Pipeline | None = None,
        conditioning: bool = False,
    ) -> list[Embedded]:
        """Embed encoded audio files, their windows batched with everyone else's.

        Parameters
        ----------
        items : sequence of bytes or binary file objects
            The inputs, named ``input 0``, ``input 1``... in errors.
        pipeline : Pipeline or None
            The embedder's pipeline by default.
        conditioning : bool
            Prepare each as Chatterbox's ``prepare_conditionals`` does
            (:func:`speakerembed.chatterbox_compat.embed_conditioning`): 24 kHz with soxr, then
            Chatterbox's pipeline.

        Returns
        -------
        list of Embedded
            One per input, in order.

        Raises
        ------
        QueueFullError
            When the queue holds ``max_queue`` inputs already.
        SpeakerEmbedError
            The library's error for the first input that failed.
        """
        with self._cond:
            self._admit(len(items))
            self._preparing += len(items)
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in items]
        pipe = pipeline if pipeline is not None else self.embedder.pipeline
        for index, (item, future) in enumerate(zip(items, futures, strict=True)):
            self._prepare_pool.submit(
                self._prepare, index, item, pipe, conditioning, _resolver(loop, future, self)
            )
        results = await asyncio.gather(*futures, return_exceptions=True)
        for r in results:
            if isinstance(r, BaseException):
                raise r
        return [r for r in results if isinstance(r, Embedded)]

    def reserve(self) -> None:
        """Hold one place in the queue for work done beside the batcher (a diarization).

        Raises
        ------
        QueueFullError
            When the queue is full, or the batcher is closed.
        """
        with self._cond:
            self._admit(1)

    def release(self) -> None:
        """Free the place :meth:`reserve` held."""
        self._release()

    def _admit(self, count: int) -> None:
        # called with self._cond held
        if self._closed:
            raise QueueFullError("the service is shutting down; retry on another replica")
        if self._held + count > self.max_queue:
            raise QueueFullError(
                f"the service holds {self._held} inputs, and its queue takes {self.max_queue}; "
                "retry after a moment, or raise --max-queue"
            )
        self._held += count

    def _release(self) -> None:
        with self._cond:
            self._held -= 1

    # -- preparing threads ----------------------------------------------------------------------

    def _prepare(
        self,
        index: int,
        item: object,
        pipe: Pipeline,
        conditioning: bool,
        done: Callable[[Embedded | BaseException], None],
    ) -> None:
        from .._engine.preparation import as_library_error
        from .._engine.recorder import NULL_RECORDER
        from ..stages.windows import partial_windows

        source = f"input {index}"
        try:
            if conditioning:
                from ..chatterbox_compat import CONDITIONING_SAMPLE_RATE, chatterbox_pipeline
                from ..stages.load import load_audio
                from ..stages.resample import resample

                pipe = chatterbox_pipeline(pipe, function="embed_conditioning", resampler="soxr_hq")
                wav, sr = load_audio(item, None, max_duration_s=pipe.max_duration_s, source=source)
                item = resample(wav, sr, CONDITIONING_SAMPLE_RATE, "soxr_hq")
                prepared = self.embedder.engine.prepare(
                    index, item, CONDITIONING_SAMPLE_RATE, pipe, NULL_RECORDER
                )
                # The duration is the upload's, not the resampled copy's (the same length).
            else:
                prepared = self.embedder.engine.prepare(index, item, None, pipe, NULL_RECORDER)
            assert prepared.mel is not None  # bytes never take the streaming path
            windows = partial_windows(prepared.mel, pipe.frame_step, pipe.min_coverage, pipe.partial_frames)
        except Exception as exc:  # noqa: BLE001 - every failure is reported as the library's
            with self._cond:
                self._preparing -= 1
                self._cond.notify_all()
            done(as_library_error(exc, source))
            return
        job = _Job(windows, prepared, pipe, done)
        with self._cond:
            self._preparing -= 1
            self._waiting.append(job)
            self._cond.notify_all()

    # -- the batching thread --------------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._waiting and not self._closed:
                    self._cond.wait()
                if not self._waiting:
                    return  # closed, and nothing waits
                if self.batching and self.max_wait_s > 0:
                    deadline = time.monotonic() + self.max_wait_s
                    # Wait only while more windows can come: other inputs are being prepared.
                    while (
                        self._pending_windows() < self.max_batch_windows
                        and self._preparing > 0
                        and not self._closed
                    ):
                        left = deadline - time.monotonic()
                        if left <= 0:
                            break
                        self._cond.wait(left)
                pieces = self._take()
            self._run(pieces)

    def _pending_windows(self) -> int:
        return sum(int(j.windows.shape[0]) - j.taken for j in self._waiting)

    def _take(self) -> list[tuple[_Job, torch.Tensor]]:
        """Windows for one batch, oldest first; with batching off, from one input only."""
        pieces: list[tuple[_Job, torch.Tensor]] = []
        room = self.max_batch_windows
        while self._waiting and room > 0:
            job = self._waiting[0]
            take = min(room, int(job.windows.shape[0]) - job.taken)
            pieces.append((job, job.windows[job.taken : job.taken + take]))
            job.taken += take
            room -= take
            if job.taken >= job.windows.shape[0]:
                self._waiting.popleft()
            if not self.batching:
                break
        return pieces

    def _run(self, pieces: list[tuple[_Job, torch.Tensor]]) -> None:
        import torch

        from .._engine.packing import split_rows

        n = sum(int(w.shape[0]) for _, w in pieces)
        device = self.embedder.device
        try:
            with torch.inference_mode():
                if self._encode_pool is None or n < 2:
                    batch = torch.cat([w for _, w in pieces]).to(device)
                    outputs = [(pieces, self.embedder.encoder(batch))]
                else:
                    encoder = self.embedder.encoder
                    parts = split_rows(pieces, self._streams)
                    futures = [
                        self._encode_pool.submit(
                            encoder.embed_concurrently, torch.cat([w for _, w in p]).to(device)
                        )
                        for p in parts
                    ]
                    outputs = list(zip(parts, (f.result() for f in futures), strict=True))
        except Exception as exc:  # noqa: BLE001 - the requests get the library's error
            err = SpeakerEmbedError(
                f"the encoder failed on a batch of {n} windows ({exc}); check the device and the encoder",
                stage="encode",
            )
            for job in {id(j): j for j, _ in pieces}.values():
                self._fail(job, err)
            return
        if self._observe is not None:
            self._observe(n)
        for part, emb in outputs:
            offset = 0
            for job, w in part:
                k = int(w.shape[0])
                job.rows.append(emb[offset : offset + k])
                offset += k
                job.received += k
                if job.received == job.windows.shape[0]:
                    self._finish(job)

    def _fail(self, job: _Job, err: BaseException) -> None:
        with self._cond:
            if job in self._waiting:
                self._waiting.remove(job)
        job.received = -1  # never finished twice
        job.done(err)

    def _finish(self, job: _Job) -> None:
        import torch

        from ..analysis.per_window import window_times
        from ..stages.consolidate import mean_embedding

        p = job.prepared
        try:
            rows = torch.cat(job.rows)
            vec = mean_embedding(rows, p.source).cpu().numpy().astype(np.float32, copy=False)
            if not np.isfinite(vec).all() or abs(float(np.linalg.norm(vec)) - 1.0) > 1e-3:
                raise SpeakerEmbedError(
                    "the encoder gave an embedding that is not a finite unit vector; check that the "
                    "encoder's weights are finite, or report this as a bug",
                    source=p.source,
                    stage="consolidate",
                )
            windows = rows.cpu().numpy().astype(np.float32, copy=False)
            start_s, end_s = window_times(windows.shape[0], p.spans, job.pipe)
        except SpeakerEmbedError as err:
            job.done(err)
            return
        job.done(Embedded(vec, windows, start_s, end_s, float(p.input_seconds), float(p.kept_seconds)))


def _resolver(
    loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any], batcher: Batcher
) -> Callable[[Embedded | BaseException], None]:
    """A thread-safe callback that settles ``future`` on its loop and frees the input's place."""

    def settle(outcome: Embedded | BaseException) -> None:
        batcher._release()

        def set_it() -> None:
            if future.done():
                return
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)

        with contextlib.suppress(RuntimeError):  # the loop closed: nobody waits for this answer
            loop.call_soon_threadsafe(set_it)

    return settle


def _one_torch_thread() -> None:
    import torch

    torch.set_num_threads(1)
