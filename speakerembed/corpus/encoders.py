"""The local engine on a CPU: one small encoder per core, in worker processes and this one.

An LSTM gains little from intra-op threads, and threads that share a process wait for each
other at every step's OpenMP barrier; separate one-thread processes do not (docs/performance.rst,
"Scaling with cores"). So on a CPU, ``workers=N`` runs N encoder processes beside this one, each
with ``threads`` torch threads (default 1) and its own in-line preparation (decode, resample,
trim, mel): while one process decodes, the others encode, and decoding hides behind the encoder
instead of taking turns with it. This process encodes too (it already holds the weights, so it
starts at once, while the workers load theirs), and writes every batch's rows in input order.

Each worker loads the same weights (a preset name or a file; an encoder module passed in cannot
travel, so such a job runs in line) and returns a batch's rows as a pyarrow table built by the
same :func:`~speakerembed.corpus.batch.encode_outcomes` as everywhere else, so the rows are the
ones the in-line engine writes.

A worker that dies (a decoder crashing natively on a bad file, or the OOM killer) breaks the
pool: the batches it had in flight go through the decode-worker path, which isolates the file
that kills its worker and makes it an error row; then a new pool starts. If a new pool breaks
before finishing a batch, the rest of the job runs in line.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from .._engine.processes import main_is_guarded
from .._engine.schedule import PREPARE_BESIDE_FROM, usable_cores
from .decode_pool import die_with_parent, pooled, spawn_pool
from .spec import MISMATCH_IN_A_WORKER, WORKERS_NEED_WEIGHTS, EmbedderSpec, weights_to_ship

if TYPE_CHECKING:
    from concurrent.futures import Future, ProcessPoolExecutor

    import pyarrow as pa

    from ..embedder import SpeakerEmbedder
    from .job import Job
    from .sources import Record

__all__ = [
    "MIN_CORES",
    "MIN_RECORDS",
    "QUEUED_PER_WORKER",
    "default_encoders",
    "encoder_tables",
    "main_is_guarded",
]

logger = logging.getLogger("speakerembed")

#: Fewest pending inputs for which the default starts encoder processes: each takes about 3 s
#: to import torch and load the weights. On the 2-core development machine of 0.2 (AVX2),
#: 1,000 files of 2 to 5 s ran at 0.92-0.96 of in-memory speed in line and 0.86-0.89 with
#: encoder processes (their start-up included); without the start-up, two one-thread encoders
#: ran 5 % above in-memory speed, which wins the start-up back at about 2,000 such files. On
#: the AVX-512 host of 0.3, whose encoder is about 3.5x as fast, in line ran 0.78-0.80, and
#: the job's own encoder streams beat an encoder process at every size (:data:`MIN_CORES`).
MIN_RECORDS = 2000
#: Fewest usable cores for which the default starts encoder processes. Below it, the job's
#: own one-thread encoder streams, which prepare in line as ``embed_utterances``' do, were
#: faster, per file too: on the 2-core AVX-512 host of 0.3, 1,000 files took 4.6-4.9 s in line
#: against 6.3-6.5 s with one encoder process beside this one, and 3,000 files 12.8-13.0 s
#: against 15.3-15.5 s (the 2,000 files between them 8.1 s against 9.0 s). The processes were
#: chosen before the streams existed, when the threads of one process waited for each other at
#: every OpenMP barrier. From here (``speakerembed._engine.schedule.PREPARE_BESIDE_FROM``,
#: where the streams' preparation moves beside them) one process's GIL is shared by a stream
#: per core and its preparing threads, and the processes stay the default; 4 to 7 cores, and
#: the comparison from 8 up, are unmeasured.
MIN_CORES = PREPARE_BESIDE_FROM
#: Batches queued per worker, so none waits for the next while this process hands it out.
QUEUED_PER_WORKER = 2


def default_encoders(job: Job) -> int:
    """Encoder processes beside this one when ``workers`` is not given, on a CPU.

    One 1-thread encoder per core (``speakerembed._engine.workers.plan_workers``, capped by memory),
    this process being one of them; none (the job's own encoder streams, in line) for a job of
    fewer than :data:`MIN_RECORDS` inputs, below :data:`MIN_CORES` usable cores, when the
    weights cannot be loaded again in another process, or when the main script could not start
    workers safely (:func:`main_is_guarded`).
    """
    from .._engine.workers import plan_workers

    if len(job.records) < MIN_RECORDS or usable_cores() < MIN_CORES:
        return 0
    if weights_to_ship(job.embedder) is None or not main_is_guarded():
        return 0
    plan = plan_workers(device="cpu", threads_per_worker=job.threads or 1)
    return max(0, plan.workers - 1)


# -- in the workers ------------------------------------------------------------------------------

_EMBEDDER: SpeakerEmbedder | None = None
_SPEC: EmbedderSpec | None = None
_SCHEMA: pa.Schema | None = None
_MISMATCH: str | None = None


def _init(spec: EmbedderSpec, schema: pa.Schema) -> None:
    global _EMBEDDER, _SPEC, _SCHEMA, _MISMATCH
    import signal

    from ..errors import WeightsError

    die_with_parent()  # first: a worker must never outlive the job
    # Ctrl-C goes to the whole process group: this job's process handles it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    log = logging.getLogger("speakerembed")
    log.addHandler(logging.NullHandler())
    log.propagate = False
    _SPEC, _SCHEMA = spec, schema
    _EMBEDDER = spec.build()
    try:
        spec.verify(_EMBEDDER, mismatch=MISMATCH_IN_A_WORKER)
    except WeightsError as exc:
        # Raised by the first batch (an error in the initializer would only break the pool).
        _MISMATCH = str(exc)


def _embed(records: list[Record]) -> pa.Table:
    from ..errors import WeightsError
    from .batch import encode_outcomes, prepare_records

    if _MISMATCH is not None:
        raise WeightsError(_MISMATCH)
    assert _EMBEDDER is not None
    assert _SPEC is not None
    assert _SCHEMA is not None
    outcomes = prepare_records(records, _EMBEDDER, _SPEC.pipeline)
    return encode_outcomes(records, outcomes, _EMBEDDER, _SPEC.pipeline, _SCHEMA)


# -- in this process -----------------------------------------------------------------------------


def _new_pool(workers: int, spec: EmbedderSpec, schema: pa.Schema) -> ProcessPoolExecutor:
    return spawn_pool(workers, _init, spec, schema)


def encoder_tables(job: Job, workers: int) -> Iterator[pa.Table]:
    """The rows of ``job.records``, batch by batch in input order.

    They come from ``workers`` encoder processes and this one.

    Raises
    ------
    ConfigError
        When the embedder's weights cannot be loaded in another process (a module passed in).
    """
    from concurrent.futures import FIRST_COMPLETED, wait
    from concurrent.futures.process import BrokenProcessPool

    import torch

    from .batch import encode_outcomes, prepare_records

    threads = job.threads or 1
    spec = EmbedderSpec.of(
        job.embedder,
        pipeline=job.pipeline,
        encoder=job.encoder,
        device="cpu",
        threads=threads,
        refusal=WORKERS_NEED_WEIGHTS,
    )
    size = job.batch_size
    batches = [job.records[i : i + size] for i in range(0, len(job.records), size)]
    queued = QUEUED_PER_WORKER * workers
    ahead = 2 * queued + 8  # finished batches held for the ones before them, at most

    def here(batch: Sequence[Record]) -> pa.Table:
        # In turn, as the encoder asks: beside the workers, this encoder has one core's share.
        outcomes = prepare_records(batch, job.embedder, job.pipeline)
        return encode_outcomes(batch, outcomes, job.embedder, job.pipeline, job.schema)

    def isolating(batch: Sequence[Record]) -> pa.Table:
        # One decode worker: a file that kills it again is found and becomes an error row.
        outcomes = pooled(batch, job.pipeline, 1, job.embedder)
        return encode_outcomes(batch, outcomes, job.embedder, job.pipeline, job.schema)

    saved = torch.get_num_threads()
    torch.set_num_threads(threads)  # this process is one of the small encoders
    pool: ProcessPoolExecutor | None = _new_pool(workers, spec, job.schema)
    inflight: dict[int, Future[pa.Table]] = {}
    ready: dict[int, pa.Table] = {}
    next_batch = emitted = 0
    fruitless = 0  # pools in a row that broke before finishing a batch
    try:
        while emitted < len(batches):
            while pool is not None and next_batch < len(batches) and len(inflight) < queued:
                inflight[next_batch] = pool.submit(_embed, batches[next_batch])
                next_batch += 1
            broken = False
            for i in [i for i, f in inflight.items() if f.done()]:
                try:
                    ready[i] = inflight[i].result()
                    del inflight[i]
                    fruitless = 0
                except BrokenProcessPool:
                    broken = True
            if broken:
                assert pool is not None
                pool.shutdown(wait=True, cancel_futures=True)
                lost = sorted(inflight)  # every batch the pool still held, the broken ones too
                inflight.clear()
                logger.warning(
                    "an encoder worker died; its %d batch(es) are prepared one file at a time", len(lost)
                )
                for i in lost:
                    ready[i] = isolating(batches[i])
                fruitless += 1
                pool = _new_pool(workers, spec, job.schema) if fruitless < 2 else None
                if pool is None:
                    logger.warning("the encoder workers keep dying; the rest of the job runs in this process")
            while emitted in ready:
                yield ready.pop(emitted)
                emitted += 1
            if emitted >= len(batches):
                break
            if next_batch < len(batches) and len(ready) < ahead:
                # Every worker has its queue full: this process encodes the next batch itself.
                ready[next_batch] = here(batches[next_batch])
                next_batch += 1
            else:
                # Nothing for this process to do: every batch not yet written is in the pool.
                assert inflight, "a batch was lost between the pool and the output"
                wait(list(inflight.values()), return_when=FIRST_COMPLETED)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        torch.set_num_threads(saved)
