"""The local engine: :func:`run_local`, the encoder in this process and worker processes.

It is an engine as :mod:`speakerembed.corpus.job` describes: it embeds ``job.records`` and
writes the rows with :func:`~speakerembed.corpus.job.write_tables`.

On a CPU it runs ``workers`` encoder processes beside this one, each preparing its own files
(:mod:`speakerembed.corpus.encoders`). On a GPU, it decodes, resamples, trims and computes the
mel spectrogram of each file in ``workers`` decode processes that feed the encoder here
(:mod:`speakerembed.corpus.decode_pool`), each mel through a shared-memory segment rather than
pickled. With ``workers=0``, all of it runs in this process, scheduled as ``embed_utterances`` is.

The Ray engine is :mod:`speakerembed.corpus.ray_engine` (``pip install 'speakerembed[ray]'``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from . import encoders
from .batch import encode_tables
from .decode_pool import inline, pooled
from .job import write_tables

if TYPE_CHECKING:
    import pyarrow as pa

    from .job import Job

__all__ = ["default_workers", "gpu_default_workers", "run_local"]


def default_workers(device_type: str) -> int:
    """Decoding workers beside a GPU encoder when ``workers`` is not given.

    On a GPU the encoder waits for the CPU, so decoding gets every core but one (at most 32:
    ``speakerembed._engine.schedule.process_workers``, the rule ``embed_utterances`` follows).
    (On a CPU, ``workers`` are encoder processes instead:
    :func:`speakerembed.corpus.encoders.default_encoders`; this function, asked about a CPU,
    gives the cores that torch's threads leave free.)
    """
    import torch

    from .._engine.schedule import process_workers, usable_cores

    cores = usable_cores()
    if device_type == "cuda":
        return process_workers(cores)
    return max(0, min(8, cores - torch.get_num_threads()))


def gpu_default_workers(n_records: int) -> int:
    """Decoding workers beside a GPU encoder for a job of ``n_records`` inputs, when not given.

    In line (0) below 2,000 inputs (``speakerembed._engine.schedule.MIN_PROCESS_INPUTS``, the
    rule ``embed_utterances`` on a GPU follows too), or when the main script is not guarded
    (``spawn`` would run it again in each worker); else :func:`default_workers`. On an H200
    with 16 cores, 1,500 files of 2-5 s ran at 1,496x real time in line against 985x with 8
    workers (their start-up, about 3 s each, is most of such a job), and 5,000 files at 2,496x
    against 2,507x (docs/performance.rst, "GPU").
    """
    from .._engine.schedule import MIN_PROCESS_INPUTS

    if n_records < MIN_PROCESS_INPUTS or not encoders.main_is_guarded():
        return 0
    return default_workers("cuda")


def run_local(job: Job) -> bool:
    """The local engine: the encoder in this process, and worker processes.

    On a CPU, ``workers`` are encoder processes beside this one, each preparing its own files
    (:mod:`speakerembed.corpus.encoders`); on a GPU, they decode, resample, trim and compute
    mels for the one encoder here (:mod:`speakerembed.corpus.decode_pool`). With none,
    everything runs in line.

    Returns
    -------
    bool
        True when it stopped early (``fail_fast`` and a failed row).
    """
    records = job.records
    if not records:
        return False
    if job.embedder.device.type == "cpu":
        workers = job.workers if job.workers is not None else encoders.default_encoders(job)
        if workers > 0:
            return write_tables(job, encoders.encoder_tables(job, workers))
    elif job.workers is None:
        workers = gpu_default_workers(len(records))
    else:
        workers = job.workers
    if job.threads is not None:
        import torch

        torch.set_num_threads(job.threads)
    return write_tables(job, _batches(job, workers))


def _batches(job: Job, workers: int) -> Iterator[pa.Table]:
    """Batches encoded here, prepared in line or by ``workers`` decode processes."""
    records = job.records
    stream = (
        pooled(records, job.pipeline, workers, job.embedder)
        if workers > 0
        else inline(records, job.pipeline, job.embedder)
    )
    try:
        # One encoder stream over the whole job: no drain at each batch's end.
        yield from encode_tables(records, stream, job.embedder, job.pipeline, job.schema, job.batch_size)
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            close()
