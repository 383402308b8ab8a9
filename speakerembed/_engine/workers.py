"""How many encoder processes, and how many torch threads each, for a job on many cores.

The voice encoder is a 3-layer LSTM: 160 sequential time steps of small matrix products
(a batch of up to 64 windows times 256 x 1024 weights). Such steps are too small to share well
between threads: each step is a parallel region with a barrier, so intra-op threads add little
and, on a busy machine, collapse (OpenMP threads spin at every barrier while the cores they
wait for run someone else). Separate processes share nothing and scale with the cores.

Measured on the 2-core development machine, shared with other jobs (benchmarks/scaling.py,
docs/performance.rst): 1 process x 1 thread 32x real time, 2 processes x 1 thread 29x in
total, 1 process x 2 threads 5x -- two intra-op threads collapsed to a seventh of one. Hence
the rule:
**one torch thread per encoder process, one process per core** (capped by memory: each CPU
worker holds torch, the weights and its batches, about :data:`WORKER_BYTES`).

This module is internal. The corpus job's Ray engine plans its CPU actors by the same rule (one
1-thread actor per CPU, :mod:`speakerembed.corpus.ray_engine`); the local engine runs one encoder
process and decodes on the cores torch leaves free.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from .schedule import usable_cores

__all__ = ["THREADS_PER_WORKER", "WORKER_BYTES", "WorkerPlan", "available_cores", "plan_workers"]

#: torch threads per CPU encoder process (see the module docstring for the measurement).
THREADS_PER_WORKER = 1
#: Peak memory of one CPU encoder worker: torch, the weights, a batch of windows and the
#: utterances in flight (measured at about 390 MB; with room for long utterances).
WORKER_BYTES = 700 * 2**20


@dataclass(frozen=True)
class WorkerPlan:
    """Encoder processes and torch threads per process.

    Attributes
    ----------
    workers : int
        Encoder processes (``>= 1``).
    threads : int
        ``torch.set_num_threads`` in each (``>= 1``).
    reason : str
        One line saying what bounded the plan.
    """

    workers: int
    threads: int
    reason: str = ""


def available_cores() -> int:
    """Cores this process may run on: :func:`~speakerembed._engine.schedule.usable_cores`."""
    return usable_cores()


def _available_memory() -> int | None:
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, OSError, ValueError):
        return None


def plan_workers(
    cores: int | None = None,
    *,
    memory_bytes: int | None = None,
    device: str = "cpu",
    threads_per_worker: int = THREADS_PER_WORKER,
) -> WorkerPlan:
    """Encoder processes x torch threads for a corpus job.

    Parameters
    ----------
    cores : int or None
        CPU cores to use; ``None`` for :func:`available_cores`.
    memory_bytes : int or None
        Memory the workers may use; ``None`` for the memory available now. Each CPU worker
        needs about :data:`WORKER_BYTES`.
    device : str
        ``"cpu"``, or a GPU (``"cuda"``, ``"cuda:1"``, ``"mps"``): one encoder process per GPU,
        whose CPU threads prepare its batches.
    threads_per_worker : int
        torch threads per CPU worker (default :data:`THREADS_PER_WORKER`, 1).

    Returns
    -------
    WorkerPlan

    Examples
    --------
    >>> from speakerembed._engine.workers import plan_workers
    >>> plan_workers(16, memory_bytes=64 * 2**30)
    WorkerPlan(workers=16, threads=1, reason='one 1-thread worker per core')
    >>> plan_workers(64, memory_bytes=8 * 2**30).workers
    11
    """
    if cores is None:
        cores = available_cores()
    cores = max(1, int(cores))
    if device != "cpu":
        return WorkerPlan(1, min(cores, 4), "one encoder process per GPU")
    threads = max(1, min(int(threads_per_worker), cores))
    workers = max(1, cores // threads)
    reason = f"one {threads}-thread worker per {'core' if threads == 1 else f'{threads} cores'}"
    if memory_bytes is None:
        memory_bytes = _available_memory()
    if memory_bytes is not None:
        fit = max(1, memory_bytes // WORKER_BYTES)
        if fit < workers:
            workers, reason = int(fit), f"memory for {fit} workers of {WORKER_BYTES // 2**20} MB"
    return WorkerPlan(workers, threads, reason)
