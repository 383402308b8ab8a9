"""The one rule for how a call runs: encoder streams, preparation threads, prefetch, torch threads.

:func:`plan` is a pure function of the call and the machine: how many inputs, the device, the
usable cores (:func:`usable_cores`, the one place the cores are counted), torch's thread count
and whether the encoder may be called from several threads at once. Tests and benchmarks pass
an :class:`Overrides` instead of setting attributes on an embedder.

The rules, each measured (docs/performance.rst):

* **Encoder streams** (:mod:`speakerembed._engine.streams`): on a CPU of two cores or more, an
  encoder that can be called from several threads runs as one one-thread stream per torch thread
  (at most one per usable core). The streams prepare in line, each the batch it pulls, or from
  :data:`PREPARE_BESIDE_FROM` cores on, a quarter of the cores prepare in bursts beside them,
  driven by a prefetch thread.
* Otherwise, a **prefetch thread** when torch's threads leave a core free (2 ahead), or
  **bursts** between the encoder's batches on one thread per core (at most
  :data:`MAX_PREPARE_THREADS`); on a GPU every core prepares.
* From :data:`MANY_CORES` usable cores, an encoder that cannot stream and would take every core
  runs on three quarters of them for the call, a quarter preparing beside it
  (:func:`many_core_split`).
* The batches are laid out for the machine (:func:`batch_layout`), never for the thread count,
  so that the embeddings are the same bits however many threads run them.
* **Worker processes** (:func:`prepare_processes`): on a CUDA device, a call of at least
  :data:`MIN_PROCESS_INPUTS` inputs, all of them files, prepares them in worker processes, one
  for every core but one (at most :data:`MAX_PREPARE_PROCESSES`), instead of threads
  (:mod:`speakerembed._engine.processes`): the corpus job's decode workers. On a CPU the
  preparation stays in the call's process: there it runs at the encoder's speed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..errors import ConfigError

__all__ = [
    "MANY_CORES",
    "MAX_PREPARE_PROCESSES",
    "MAX_PREPARE_THREADS",
    "MIN_PROCESS_INPUTS",
    "NO_OVERRIDES",
    "ONE_INPUT_THREADS",
    "PREPARE_BESIDE_FROM",
    "Overrides",
    "Schedule",
    "auto_prefetch_depth",
    "batch_layout",
    "burst_threads",
    "encoder_streams",
    "for_one_input",
    "many_core_split",
    "plan",
    "prepare_processes",
    "preparing_threads",
    "process_workers",
    "usable_cores",
]

#: Most threads that prepare utterances (decode, resample, trim, mel) in bursts.
MAX_PREPARE_THREADS = 8

#: Most worker processes that prepare for a GPU encoder (:func:`process_workers`). Processes
#: share no GIL and no OpenMP pool, so they are not held to :data:`MAX_PREPARE_THREADS`: feeding
#: a GPU at 0.8 of what the host's cores can prepare takes nearly all of them (16 cores: 15
#: workers). The cap bounds memory (each worker holds torch, about 250 MB) on big hosts.
MAX_PREPARE_PROCESSES = 32

#: Usable cores from which a CPU encoder that cannot stream (:func:`many_core_split`) runs on
#: three quarters of them, a quarter preparing beside it. Measured on 16 cores (Xeon with AMX,
#: torch 2.11, 86 utterances at 44.1 kHz): 12 encoder threads beside 4 preparing ran 1,428x
#: real time against 894x for 16 threads and bursts (docs/performance.rst). Encoder streams
#: have their own threshold (:data:`PREPARE_BESIDE_FROM`).
MANY_CORES = 16

#: Usable cores from which a quarter of them prepare inputs beside the streams, instead of the
#: caller's thread in line. Measured at 44.1 kHz on a Xeon with AMX (torch 2.11,
#: ``benchmarks/families/prepare_overlap.py``): on 16 cores, 4 threads beside 16 streams ran
#: 1,939x real time in fp32 against 1,492x in line; on 8 of them (``taskset``), 2 or 4 threads
#: beside 8 streams ran 1,466-1,652x in bf16 against 1,158-1,487x in line, and in fp32
#: 1,113-1,215x against 1,044-1,161x. On 2 cores one thread keeps up (in line and one thread
#: beside ran alike).
PREPARE_BESIDE_FROM = 8

#: Fewest inputs, every one a file, for which a call on a CUDA device prepares in worker
#: processes (:func:`prepare_processes`); the corpus job on a GPU starts its decode workers from
#: the same count (``speakerembed.corpus.engine.gpu_default_workers``). Each worker takes about
#: 3 s to start (importing torch): on an H200 with 16 cores, 1,500 files of 2-5 s ran at 1,496x
#: real time in line against 985x with 8 workers, and 5,000 files at 2,496x against 2,507x
#: (docs/performance.rst, "GPU").
MIN_PROCESS_INPUTS = 2000


def usable_cores() -> int:
    """The cores this process may run on: its CPU affinity where the OS says, else all; at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # macOS, Windows
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class Overrides:
    """Fixed choices for :func:`plan`, for tests and benchmarks; ``None`` leaves each to the rule.

    Attributes
    ----------
    prefetch_depth : int or None
        Inputs prepared ahead of the encoder in a background thread (0 for none).
    prepare_threads : int or None
        Threads that prepare inputs in bursts (1 prepares in line).
    encoder_streams : int or None
        One-thread encoder streams on the CPU (1 runs one call on torch's threads); an encoder
        that cannot be called from several threads always runs as one.
    cores : int or None
        The usable cores the plan sees (the batches are laid out for them).
    torch_threads : int or None
        torch's thread count the plan sees.
    prepare_processes : int or None
        Worker processes that prepare a call's inputs when every input is a file
        (:func:`prepare_processes`), on any device: 0 keeps the preparation in the call's
        process; ``None`` follows the rule (on a CUDA device only).
    """

    prefetch_depth: int | None = None
    prepare_threads: int | None = None
    encoder_streams: int | None = None
    cores: int | None = None
    torch_threads: int | None = None
    prepare_processes: int | None = None

    def __post_init__(self) -> None:
        for name, low in (
            ("prefetch_depth", 0),
            ("prepare_threads", 1),
            ("encoder_streams", 1),
            ("cores", 1),
            ("torch_threads", 1),
            ("prepare_processes", 0),
        ):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < low):
                raise ConfigError(f"Overrides({name}={value!r}) must be an int >= {low}, or None")


#: No overrides: every choice follows the rule.
NO_OVERRIDES = Overrides()


@dataclass(frozen=True)
class Schedule:
    """How one call runs.

    Attributes
    ----------
    streams : int
        One-thread encoder streams (1: one call on torch's threads).
    prefetch_depth : int
        Prepared inputs held ahead of the encoder by a prefetch thread (0: no thread).
    prepare_threads : int
        Threads that prepare in bursts (1: in line).
    encoder_threads : int or None
        torch threads of the calling thread for the call (``None`` leaves its count).
    layout : int
        How many streams the batches are laid out for (the machine's, not the call's).
    """

    streams: int
    prefetch_depth: int
    prepare_threads: int
    encoder_threads: int | None
    layout: int


#: The most torch threads a lone input's one encoder call runs on (:func:`for_one_input`).
ONE_INPUT_THREADS = 2


def for_one_input(
    schedule: Schedule, n_windows: int, cap: int, torch_threads: int, overrides: Overrides = NO_OVERRIDES
) -> Schedule:
    """The schedule of a call of one input on a CPU, once its windows are counted.

    A lone input whose windows fit in one batch of ``cap`` (the one-call batch size) runs as
    that one batch, in one call on at most :data:`ONE_INPUT_THREADS` of the caller's torch
    threads, instead of shared out between one-thread streams: each stream would still run every
    one of the LSTM's time steps, each a product too small to use its thread well (a 10 s clip's
    12 windows on a 2-core AVX-512 host: 16 ms as one call, 25 ms as two streams of 6). The
    batch does not depend on the machine, and the call runs on two threads whenever torch has
    two or more, so the bits are the same at any thread count from two up (on one thread they
    may differ in the last place). Longer inputs, and streams fixed by ``overrides``, keep
    ``schedule``.

    Examples
    --------
    >>> from speakerembed._engine.schedule import Schedule, for_one_input
    >>> streamed = Schedule(streams=2, prefetch_depth=0, prepare_threads=1, encoder_threads=1, layout=2)
    >>> for_one_input(streamed, n_windows=12, cap=64, torch_threads=8)
    Schedule(streams=1, prefetch_depth=0, prepare_threads=1, encoder_threads=2, layout=1)
    >>> for_one_input(streamed, n_windows=200, cap=64, torch_threads=8) == streamed
    True
    """
    if n_windows > cap or overrides.encoder_streams is not None:
        return schedule
    return Schedule(1, 0, 1, max(1, min(torch_threads, ONE_INPUT_THREADS)), 1)


def batch_layout(device_type: str, cores: int) -> int:
    """How many streams the encoder's batches are laid out for: the usable cores on a CPU of two or more.

    The layout is the batches' size and how the last ones are shared out
    (:meth:`~speakerembed.Pipeline.windows_per_batch`,
    :func:`~speakerembed._engine.packing.split_rows`). It depends on the machine only, not on how
    many streams run (torch's thread count, which may change between calls or differ between
    threads), so that the embeddings are the same bits however many threads run them: the LSTM's
    results depend on the batch, not on the threads.
    """
    if device_type != "cpu":
        return 1
    return cores if cores >= 2 else 1


def encoder_streams(concurrent_calls: bool, device_type: str, cores: int, torch_threads: int) -> int:
    """How many one-thread streams run the encoder (1: one call on torch's threads).

    One stream per torch thread when the encoder is on a CPU of two cores or more and can be
    called from several threads at once (its ``concurrent_calls`` is true, as
    :class:`~speakerembed.stages.encoder.ModuleEncoder`'s is around speakerembed's or
    chatterbox's voice encoder), at most one per usable core.
    """
    layout = batch_layout(device_type, cores)
    if layout < 2 or not concurrent_calls:
        return 1
    return max(1, min(torch_threads, layout))


def preparing_threads(cores: int) -> int:
    """Threads that prepare inputs beside CPU encoder streams.

    1 below :data:`PREPARE_BESIDE_FROM` usable cores: the caller's thread, in line, between
    handing batches to the streams. From there, one thread cannot keep up with a stream per
    core, so a quarter of the cores (at most :data:`MAX_PREPARE_THREADS`) prepare in bursts.
    """
    return 1 if cores < PREPARE_BESIDE_FROM else max(1, min(cores // 4, MAX_PREPARE_THREADS))


def auto_prefetch_depth(cores: int, torch_threads: int) -> int:
    """2 when torch's threads leave a core free for a prefetch thread, else 0.

    On a machine where torch's threads use every core, the benchmark measured the thread as a
    loss (158x against 188x real time at 44.1 kHz on 2 cores): it competes with the encoder.
    """
    return 2 if torch_threads < cores else 0


def burst_threads(device_type: str, prefetch_depth: int, cores: int, torch_threads: int) -> int:
    """Threads for bursts of preparation beside an encoder on ``device_type``.

    A GPU encoder leaves every core to the preparation; a CPU encoder whose threads use every
    core gets one preparing thread per core (they run between its batches); when a prefetch
    thread already overlaps the encoder (a core is free), preparation stays in that thread.
    """
    if device_type != "cpu":
        return min(cores, MAX_PREPARE_THREADS)
    if prefetch_depth > 0:
        return 1
    return max(1, min(cores, torch_threads, MAX_PREPARE_THREADS))


def process_workers(cores: int) -> int:
    """Worker processes that prepare for a GPU encoder: every usable core but one.

    The encoder's process keeps a core for itself (copying the mels in, encoding, streaming the
    long files); at most :data:`MAX_PREPARE_PROCESSES` workers.
    """
    return max(1, min(MAX_PREPARE_PROCESSES, cores - 1))


def prepare_processes(
    n_items: int,
    n_files: int,
    device: str,
    prepares_on_device: bool,
    cores: int,
    overrides: Overrides = NO_OVERRIDES,
) -> int:
    """Worker processes that prepare one call's inputs (0: this process prepares them, on threads).

    Parameters
    ----------
    n_items : int
        Inputs in the call.
    n_files : int
        How many of them are file paths: only files travel to a worker (an array would be
        pickled, which is what the workers are there to avoid).
    device : str
        The encoder's device type.
    prepares_on_device : bool
        Whether the pipeline may resample, trim and mel on the encoder's device
        (``Pipeline(resampler="torchaudio", resample_device="device" or "auto")``): the
        workers prepare on the CPU, so such a call keeps its preparation here.
    cores : int
        Usable cores (:func:`usable_cores`).
    overrides : Overrides
        ``prepare_processes`` fixes the count (tests force workers on a CPU with it).

    Returns
    -------
    int
        :func:`process_workers` on a CUDA device for at least :data:`MIN_PROCESS_INPUTS`
        inputs that are all files, else 0 (the caller also checks the main script:
        ``speakerembed._engine.processes.main_is_guarded``). Never more than there are inputs.

    Examples
    --------
    >>> from speakerembed._engine.schedule import prepare_processes
    >>> prepare_processes(5000, 5000, "cuda", False, cores=16)
    15
    >>> prepare_processes(5000, 5000, "cpu", False, cores=16)
    0
    """
    if n_items < 2 or n_files < n_items:
        return 0
    if overrides.prepare_processes is not None:
        return min(overrides.prepare_processes, n_items)
    if device != "cuda" or prepares_on_device or n_items < MIN_PROCESS_INPUTS:
        return 0
    return process_workers(cores)


def many_core_split(device_type: str, cores: int, torch_threads: int) -> tuple[int, int] | None:
    """``(encoder threads, preparing threads)`` beside each other on a many-core CPU, or ``None``.

    Only when the encoder is on the CPU, torch would use every usable core, and there are at
    least :data:`MANY_CORES` of them: then three quarters encode and a quarter prepares.
    """
    if device_type != "cpu" or cores < MANY_CORES or torch_threads < cores:
        return None
    prepare = min(cores // 4, MAX_PREPARE_THREADS)
    return cores - prepare, prepare


def plan(
    n_items: int,
    device: str,
    cores: int,
    torch_threads: int,
    concurrent_calls: bool,
    overrides: Overrides = NO_OVERRIDES,
) -> Schedule:
    """The schedule of one call over ``n_items`` inputs.

    Parameters
    ----------
    n_items : int
        Inputs in the call.
    device : str
        The encoder's device type: ``"cpu"``, ``"cuda"``, ``"mps"``.
    cores : int
        Usable cores (:func:`usable_cores`).
    torch_threads : int
        torch's thread count in the calling thread (``torch.get_num_threads()``).
    concurrent_calls : bool
        Whether the encoder may be called from several threads at once.
    overrides : Overrides
        Fixed choices (tests and benchmarks); :data:`NO_OVERRIDES` follows the rules.

    Returns
    -------
    Schedule

    Examples
    --------
    >>> from speakerembed._engine.schedule import plan
    >>> plan(86, "cpu", cores=2, torch_threads=2, concurrent_calls=True)
    Schedule(streams=2, prefetch_depth=0, prepare_threads=1, encoder_threads=1, layout=2)
    >>> plan(86, "cuda", cores=16, torch_threads=4, concurrent_calls=True)
    Schedule(streams=1, prefetch_depth=2, prepare_threads=8, encoder_threads=None, layout=1)
    """
    o = overrides
    cores = o.cores if o.cores is not None else max(1, cores)
    torch_threads = o.torch_threads if o.torch_threads is not None else max(1, torch_threads)
    layout = batch_layout(device, cores)
    if o.encoder_streams is None:
        streams = encoder_streams(concurrent_calls, device, cores, torch_threads)
    else:
        streams = o.encoder_streams if concurrent_calls else 1
    if streams > 1:
        # Encoder streams have no barrier to stall: they prepare in line, each the batch it
        # pulls, or on many cores bursts on a quarter of them prepare beside. The caller runs on one
        # torch thread, as each stream does: its idle OpenMP threads would spin against the
        # streams (a 10 s clip on 2 cores took 61-67 ms with two, 52-59 ms with one).
        if n_items < 2:
            return Schedule(streams, 0, 1, 1, layout)
        prepare = o.prepare_threads if o.prepare_threads is not None else preparing_threads(cores)
        depth = o.prefetch_depth
        if depth is None:
            depth = 2 * prepare if prepare > 1 else 0
        return Schedule(streams, depth, max(1, min(prepare, n_items)), 1, layout)
    if n_items < 2:
        return Schedule(streams, 0, 1, None, layout)
    if o.prefetch_depth is None and o.prepare_threads is None:
        split = many_core_split(device, cores, torch_threads)
        if split is not None:
            encoder_threads, prepare = split
            return Schedule(streams, 2 * prepare, min(prepare, n_items), encoder_threads, layout)
    depth = o.prefetch_depth if o.prefetch_depth is not None else auto_prefetch_depth(cores, torch_threads)
    threads = o.prepare_threads
    if threads is None:
        threads = burst_threads(device, depth, cores, torch_threads)
    return Schedule(streams, depth, max(1, min(threads, n_items)), None, layout)
