"""Preparing inputs in worker processes for an encoder in this one; the mels travel in shared memory.

On a CUDA device the encoder waits for the CPU: decoding, resampling, trimming and the mel of
each file are the work. :func:`pooled` runs them in ``workers`` processes (started with "spawn"
by :func:`spawn_pool`, each ending with its parent: :func:`die_with_parent`) and yields the
prepared inputs here, in order, with at most :data:`PREFETCH_PER_WORKER` a worker in flight, so
memory does not grow with the inputs. The corpus job on a GPU
(:mod:`speakerembed.corpus.decode_pool`) and ``embed_utterances`` on a long list of files on a
GPU (:meth:`speakerembed._engine.runner.Engine.prepare_processes`) both use it.

**How a mel travels.** When this process submits an input, it names a POSIX shared-memory
segment for it (:data:`SEGMENT_PREFIX`, this process's id, a random token and a serial number).
The worker writes the mel into a segment of that name
(:class:`multiprocessing.shared_memory.SharedMemory`) and sends back only its shape and dtype
(:class:`Shipped`) with the rest of the prepared input: a few hundred bytes pickled, where the
array itself used to be pickled through the pool's pipe. This process copies the mel into a
torch tensor and unlinks the segment before it hands the input on. Every name handed out and
not taken back is unlinked when the pool stops, however it stops: a worker that died (the
broken pool is shut down first, so no worker is still writing), an interrupted job, a consumer
that raised or stopped early. Only a job killed outright (SIGKILL), which cannot run its
cleanup, leaves its last segments to multiprocessing's resource tracker, which the workers share
with this process and which unlinks them when the last of them ends.

Writing into a full ``/dev/shm`` (a tmpfs: 64 MB by default in a Docker container) would kill
the worker with SIGBUS, so a worker that finds too little room there (:func:`room_for`) sends
that mel pickled, as a NumPy array, instead.

A file long enough for the streaming path (:attr:`Pipeline.stream_min_duration_s
<speakerembed.Pipeline.stream_min_duration_s>`) streams in this process, block by block: its
windows are a lazy generator over the file, which cannot travel, and the worker only recognises
it from its header (``Preparer(plan_streams=False)``), so it is read here alone. A worker that dies (a decoder
crashing natively on a bad file, or the OOM killer) breaks the pool: each input in flight is
then prepared again alone, in a fresh worker, so the one that kills its worker again becomes an
error (:func:`crash_error`) and the others are prepared; a new pool takes the rest.
"""

from __future__ import annotations

import itertools
import logging
import os
import secrets
from collections import deque
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Union

import numpy as np

from ..errors import AudioError, SpeakerEmbedError
from .preparation import Prepared, Preparer, as_library_error
from .recorder import NULL_RECORDER, Recorder

if TYPE_CHECKING:
    from concurrent.futures import Future, ProcessPoolExecutor

    import numpy.typing as npt
    import torch

    from ..config import Pipeline

__all__ = [
    "PREFETCH_PER_WORKER",
    "SEGMENT_PREFIX",
    "SHM_FOLDER",
    "Outcome",
    "Shipped",
    "crash_error",
    "die_with_parent",
    "main_is_guarded",
    "pooled",
    "put",
    "room_for",
    "spawn_pool",
    "take",
]

logger = logging.getLogger("speakerembed")

#: Prepared inputs a worker may hold ready ahead of the encoder.
PREFETCH_PER_WORKER = 4

#: How the shared-memory segments of prepared mels are named: then this process's id, a random
#: token per pool and a serial number (``speakerembed-4181-9f2c01ab-17``).
SEGMENT_PREFIX = "speakerembed-"

#: Where POSIX shared memory lives on Linux (a tmpfs); :func:`room_for` checks its free space.
SHM_FOLDER = "/dev/shm"

#: Room :func:`room_for` leaves free in :data:`SHM_FOLDER` for other processes and other workers.
_HEADROOM_BYTES = 16 * 2**20

Outcome = tuple[int, Prepared | SpeakerEmbedError]
"""One prepared input: its index, and its prepared audio or its error."""

_STREAM = "stream"


def die_with_parent() -> None:
    """In a worker process: end this process when the job's process ends, however it ends.

    A job killed with SIGKILL (or SIGTERM) cannot stop its pool, and a worker blocked on the
    pool's pipe would wait forever, holding its memory. On Linux the kernel sends this process
    SIGKILL when its parent dies (``prctl(PR_SET_PDEATHSIG)``, through ctypes); everywhere, a
    daemon thread waits on the parent's sentinel (a pipe that reads end-of-file once the parent
    is gone) and checks the parent's pid, and ends the process then. Called first by every
    worker initializer; a no-op in a process that multiprocessing did not start.
    """
    import multiprocessing
    import sys
    import threading

    parent = multiprocessing.parent_process()
    if parent is None:
        return
    ppid = parent.pid
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
        except (OSError, AttributeError):  # pragma: no cover - no prctl: the thread below does it
            pass
    if os.getppid() != ppid:  # the parent died before the signal was asked for
        os._exit(1)

    def watch() -> None:
        while os.getppid() == ppid:
            try:
                parent.join(1.0)  # returns at once when the parent's pipe reads end-of-file
            except (OSError, ValueError):  # pragma: no cover - no sentinel: poll the pid alone
                import time

                time.sleep(1.0)
                continue
            if not parent.is_alive():
                break
        os._exit(1)

    threading.Thread(target=watch, name="speakerembed-parent-watch", daemon=True).start()


def spawn_pool(workers: int, initializer: Callable[..., None], *args: object) -> ProcessPoolExecutor:
    """A process pool of ``workers`` started with "spawn", each running ``initializer(*args)``."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    # "spawn": forking a process whose torch thread pools are running can deadlock.
    return ProcessPoolExecutor(
        workers, mp_context=mp.get_context("spawn"), initializer=initializer, initargs=args
    )


def main_is_guarded() -> bool:
    """Whether worker processes may start: "spawn" runs the main script again in each of them.

    True for an interactive session, ``python -c``, a notebook or ``python -m speakerembed``
    (nothing to run again), and for a main script that guards its work with
    ``if __name__ == "__main__":`` (the ``speakerembed`` command does). A script without the
    guard would start its work again in every worker, so the defaults leave workers out there.
    """
    import re
    import sys

    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if path is None:
        return True
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name.split(".")[0] == "speakerembed":
        return True
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read(1_000_000)
    except OSError:
        return False
    return re.search(r"""__name__\s*==\s*['"]__main__['"]""", text) is not None


def crash_error(source: str) -> AudioError:
    """The error of an input whose worker died while preparing it, alone: a decoder crash."""
    return AudioError(
        "made the decoder crash (its worker process died while reading it); the file is "
        "probably corrupt: re-encode it (for example with ffmpeg) or drop it from the inputs",
        source=source,
        stage="load",
    )


# -- shared memory ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shipped:
    """A mel in a shared-memory segment: what travels pickled in its place.

    Attributes
    ----------
    name : str
        The segment's name (without the leading slash).
    shape : tuple of int
        The array's shape, ``(n_frames, 40)`` for a mel.
    dtype : str
        The array's NumPy dtype, as ``numpy.dtype.str`` (``"<f4"``).
    """

    name: str
    shape: tuple[int, ...]
    dtype: str


def room_for(nbytes: int, folder: str = SHM_FOLDER) -> bool:
    """Whether ``folder`` (``/dev/shm``) has room for ``nbytes`` more, with some to spare.

    Twice the size plus 16 MB, for the other workers writing at the same moment. True where
    there is no such folder (macOS and Windows keep shared memory elsewhere).
    """
    try:
        st = os.statvfs(folder)
    except (OSError, AttributeError):
        return True
    return st.f_bavail * st.f_frsize >= 2 * nbytes + _HEADROOM_BYTES


def put(array: npt.NDArray[Any], name: str) -> Shipped:
    """Write ``array`` into a new shared-memory segment called ``name``; the segment stays."""
    from multiprocessing.shared_memory import SharedMemory

    array = np.ascontiguousarray(array)
    shm = SharedMemory(name=name, create=True, size=max(1, array.nbytes))
    try:
        np.ndarray(array.shape, array.dtype, buffer=shm.buf)[...] = array
    finally:
        shm.close()
    return Shipped(name, tuple(int(n) for n in array.shape), array.dtype.str)


def take(shipped: Shipped) -> torch.Tensor:
    """The array in ``shipped``'s segment, copied into a new tensor; the segment is unlinked."""
    from multiprocessing.shared_memory import SharedMemory

    import torch

    shm = SharedMemory(name=shipped.name)
    try:
        array = np.array(np.ndarray(shipped.shape, np.dtype(shipped.dtype), buffer=shm.buf))
    finally:
        shm.close()
        shm.unlink()
    return torch.from_numpy(array)


def _unlink(name: str) -> None:
    """Unlink the segment ``name`` if it exists (a worker may have died before making it)."""
    from multiprocessing.shared_memory import SharedMemory

    try:
        shm = SharedMemory(name=name)
    except FileNotFoundError:
        return
    shm.close()
    shm.unlink()


class _Segments:
    """The names of the segments this process handed out and has not taken back."""

    def __init__(self) -> None:
        self._stem = f"{SEGMENT_PREFIX}{os.getpid()}-{secrets.token_hex(4)}-"
        self._serial = itertools.count()
        self.pending: set[str] = set()

    def new(self) -> str:
        name = f"{self._stem}{next(self._serial)}"
        self.pending.add(name)
        return name

    def take(self, name: str, payload: Shipped | npt.NDArray[Any]) -> torch.Tensor:
        import torch

        # An array: /dev/shm had no room, and the worker sent it pickled.
        mel = take(payload) if isinstance(payload, Shipped) else torch.from_numpy(payload)
        self.pending.discard(name)
        return mel

    def drop(self, name: str) -> None:
        _unlink(name)
        self.pending.discard(name)

    def sweep(self) -> None:
        """Unlink every name still pending; call it once no worker can be writing."""
        for name in sorted(self.pending):
            _unlink(name)
        self.pending.clear()


# -- in the workers -----------------------------------------------------------------------------

_PREPARER: Preparer | None = None
_PIPELINE: Pipeline | None = None

Timings = tuple[tuple[str, str, float], ...]
Reply = tuple[Prepared | SpeakerEmbedError | str, Union[Shipped, "npt.NDArray[Any]", None], Timings]


class _Timings(Recorder):
    """A worker's recorder: keeps the stage timings, which this process's recorder replays."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, float]] = []

    def stage(self, stage: str, device: str, seconds: float) -> None:
        self.seen.append((stage, device, seconds))


def _init_worker(pipeline: Pipeline) -> None:
    global _PREPARER, _PIPELINE
    import signal

    die_with_parent()
    import torch

    # Ctrl-C goes to the whole process group: the encoder's process handles it (it keeps what
    # is finished and stops the pool); the workers just stop when told.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(1)
    log = logging.getLogger("speakerembed")
    log.addHandler(logging.NullHandler())
    log.propagate = False
    _PIPELINE = pipeline
    # Preparing needs no weights, only the device: the CPU. Long files stream in the encoder's
    # process; here they are only recognised.
    _PREPARER = Preparer(torch.device("cpu"), plan_streams=False)


def _work(index: int, item: object, rate: object, name: str) -> Reply:
    """In a worker: prepare one input; its mel goes into the segment ``name``, streams as a marker."""
    assert _PREPARER is not None
    assert _PIPELINE is not None
    rec = _Timings()
    try:
        prepared = _PREPARER.prepare(index, item, rate, _PIPELINE, rec)
    except Exception as exc:  # noqa: BLE001 - every input failure is reported as ours
        return as_library_error(exc, f"input {index}"), None, tuple(rec.seen)
    if prepared.mel is None:
        # A long file (plan_streams=False found it from its header): its windows would be a
        # lazy generator over the file, which cannot travel. The encoder's process streams it.
        return _STREAM, None, ()
    mel = prepared.mel.numpy()
    prepared.mel = None
    payload: Shipped | npt.NDArray[Any] = put(mel, name) if room_for(mel.nbytes) else mel
    return prepared, payload, tuple(rec.seen)


# -- in the encoder's process -------------------------------------------------------------------


def _new_pool(workers: int, pipeline: Pipeline) -> ProcessPoolExecutor:
    return spawn_pool(workers, _init_worker, pipeline)


def _source(index: int, item: object) -> str:
    if isinstance(item, (str, os.PathLike)):
        return f"input {index} ({os.fspath(item)})"
    return f"input {index}"


def pooled(
    items: Sequence[object],
    rates: Sequence[object],
    pipeline: Pipeline,
    workers: int,
    here: Callable[[int], Outcome],
    rec: Recorder = NULL_RECORDER,
) -> Generator[Outcome, None, None]:
    """Each input prepared by ``workers`` processes, in order, with a bounded number in flight.

    Parameters
    ----------
    items : sequence
        The inputs, file paths (anything :meth:`Preparer.prepare
        <speakerembed._engine.preparation.Preparer.prepare>` takes that pickles).
    rates : sequence
        Each input's sample rate (``None`` for files).
    pipeline : Pipeline
        The stages' settings.
    workers : int
        Worker processes, at least 1.
    here : callable
        ``here(index)`` prepares input ``index`` in this process, never raising: for the files
        long enough to stream.
    rec : Recorder
        Receives the workers' stage timings.

    Yields
    ------
    tuple of (int, Prepared or SpeakerEmbedError)
        Each input's index and its prepared audio (its mel a tensor of this process) or its
        error, in input order. A worker that dies makes the input that killed it a
        :func:`crash_error`.
    """
    from concurrent.futures.process import BrokenProcessPool

    segments = _Segments()
    pool = _new_pool(workers, pipeline)
    try:
        todo = iter(range(len(items)))
        inflight: deque[tuple[int, str, Future[Reply]]] = deque()

        def fill(n: int) -> None:
            for i in itertools.islice(todo, n):
                name = segments.new()
                inflight.append((i, name, pool.submit(_work, i, items[i], rates[i], name)))

        fill(PREFETCH_PER_WORKER * workers)
        while inflight:
            index, name, future = inflight.popleft()
            try:
                reply = future.result()
            except BrokenProcessPool:
                lost = [index, *(i for i, _, _ in inflight)]
                inflight.clear()
                pool.shutdown(wait=True, cancel_futures=True)
                segments.sweep()  # what the dead worker, or the others, left half written
                logger.warning(
                    "a decoding worker died with %d file(s) in flight; preparing each alone", len(lost)
                )
                for i in lost:
                    yield _alone(i, items[i], rates[i], pipeline, here, rec, segments)
                pool = _new_pool(workers, pipeline)
                fill(PREFETCH_PER_WORKER * workers)
                continue
            fill(1)
            yield _received(index, name, reply, here, rec, segments)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        segments.sweep()


def _received(
    index: int, name: str, reply: Reply, here: Callable[[int], Outcome], rec: Recorder, segments: _Segments
) -> Outcome:
    item, payload, timings = reply
    if isinstance(item, str):  # a long file: it streams here
        segments.pending.discard(name)
        return here(index)
    for stage, device, seconds in timings:
        rec.stage(stage, device, seconds)
    if isinstance(item, SpeakerEmbedError):
        segments.pending.discard(name)
        return index, item
    assert payload is not None
    item.mel = segments.take(name, payload)
    return index, item


def _alone(
    index: int,
    item: object,
    rate: object,
    pipeline: Pipeline,
    here: Callable[[int], Outcome],
    rec: Recorder,
    segments: _Segments,
) -> Outcome:
    """Prepare one input in a fresh one-worker pool; a worker that dies makes it a crash error."""
    from concurrent.futures.process import BrokenProcessPool

    pool = _new_pool(1, pipeline)
    name = segments.new()
    reply: Reply | None = None
    try:
        reply = pool.submit(_work, index, item, rate, name).result()
    except BrokenProcessPool:
        pass
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    if reply is None:
        segments.drop(name)
        return index, crash_error(_source(index, item))
    return _received(index, name, reply, here, rec, segments)
