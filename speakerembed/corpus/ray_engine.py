"""The Ray Data engine of a corpus job (``speakerembed corpus --engine ray``).

Records go in, tables of rows in the corpus schema come out, the same rows the local engine
makes: each actor of a Ray Data actor pool holds one loaded
:class:`~speakerembed.SpeakerEmbedder` and runs :func:`speakerembed.corpus.batch.embed_batch` on
the batches it is given. The trip of a batch::

    driver: records (id, path)  --Ray object store-->  actor: load, resample, trim, mel, encode
    driver: the corpus sink      <--iter_batches-----  actor: a pyarrow table, ~1.1 KB a row

- Only ids and paths travel to the actors, never decoded audio: every node must see the inputs
  at the same paths (shared storage), and read them itself.
- The rows come back to the driver (``Dataset.iter_batches``), which writes them with the same
  sink as the local engine, so the shards, the metadata and resume by id are the same. A row is
  about 1.1 KB (256 float32 and a few scalars), so one driver keeps up with many actors.
- The manifest's carried columns and speakers stay on the driver and are joined back by id.
- One actor per GPU (``num_gpus=1``, or a share of one when ``workers`` asks for more actors than
  there are GPUs) when the cluster has GPUs and ``device`` allows them, else CPU actors of
  ``threads`` torch threads each (default 1: the encoder's LSTM gains little from
  more intra-op threads, so many one-thread actors beat a few wide ones).
- Each actor checks that the weights it loaded have the sha256 the driver recorded, so a node
  with other weights cannot mix its embeddings into the output.

Ray itself is optional (``pip install 'speakerembed[ray]'``) and imported only when this engine
runs. ``address`` (``--ray-address``), else the ``RAY_ADDRESS`` environment variable, joins a
running cluster; with neither, a local Ray is started for the job and stopped after it. A Ray
already initialised by the caller (``ray.init(...)`` before the job) is used as it is and left
running.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import warnings
from collections.abc import Generator, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, SpeakerEmbedError, missing_backend
from .job import write_tables
from .spec import ACTORS_NEED_WEIGHTS, EmbedderSpec

if TYPE_CHECKING:
    import pyarrow as pa

    from ..config import Pipeline
    from ..embedder import SpeakerEmbedder
    from ..stages.encoder import EncoderImpl
    from .job import Job
    from .sources import Record

__all__ = ["RayPlan", "plan_actors", "ray_session", "run", "run_ray"]

logger = logging.getLogger("speakerembed")

#: Records per ``map_batches`` batch, at most. Smaller batches spread a small corpus over the
#: actors; this size keeps Ray's per-task overhead (milliseconds) small against the work (32
#: files of a few seconds each take seconds), and the progress moving.
MAX_BATCH = 32
#: The loggers whose lines would otherwise reach the terminal (the job reports errors itself).
_RAY_LOGGERS = ("ray", "ray.data", "ray.train", "ray.tune")


def _import_ray() -> Any:
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise missing_backend("ray", "ray", "the Ray engine (engine='ray', --engine ray)") from exc
    return ray


class _EmbedActor:
    """A Ray Data callable class: one loaded embedder, then :func:`embed_batch` per batch."""

    def __init__(self, spec: EmbedderSpec) -> None:
        self.pipeline = spec.pipeline
        self.embedder = spec.load()  # raises WeightsError, naming this node, for other weights

    def __call__(self, batch: pa.Table) -> pa.Table:
        from .batch import embed_batch
        from .sources import Record

        ids = batch.column("id").to_pylist()
        paths = batch.column("path").to_pylist()
        records = [Record(i, p) for i, p in zip(ids, paths, strict=True)]
        return embed_batch(records, self.embedder, self.pipeline)


@dataclasses.dataclass(frozen=True)
class RayPlan:
    """How many actors a job runs, and what each one holds.

    Attributes
    ----------
    actors : int
        The size of the actor pool.
    num_gpus : float
        GPUs per actor: 1 on a cluster with GPUs (and ``device`` not ``"cpu"``), a fraction when
        ``workers`` asks for more actors than there are GPUs (4 actors on 1 GPU: 0.25 each, so
        that 4 processes decode for it), else 0.
    num_cpus : int
        CPUs Ray reserves per actor (its torch threads on CPU actors; 1 beside a GPU).
    threads : int
        torch's intra-op threads in each actor.
    device : str or None
        The device each actor's embedder uses (``"cuda"`` is the actor's own GPU).
    """

    actors: int
    num_gpus: float
    num_cpus: int
    threads: int
    device: str | None


def plan_actors(
    resources: dict[str, float],
    *,
    device: str | None = None,
    workers: int | None = None,
    threads: int | None = None,
) -> RayPlan:
    """Pick the actor pool for a cluster's resources.

    Parameters
    ----------
    resources : dict of str to float
        ``ray.cluster_resources()``: ``"CPU"`` and ``"GPU"`` counts.
    device : str or None
        ``None`` uses GPUs when the cluster has them, else CPUs; ``"cpu"`` only CPUs; ``"cuda"``
        (or ``"cuda:N"``) needs GPUs.
    workers : int or None
        The number of actors (``--workers``); default one per GPU, or one per ``threads`` CPUs.
        More actors than GPUs share them (fractional ``num_gpus``).
    threads : int or None
        torch threads per actor (``--threads``); default 1.

    Returns
    -------
    RayPlan

    Raises
    ------
    ConfigError
        If ``device`` asks for CUDA and the cluster has no GPU, or for MPS, or if ``workers`` or
        ``threads`` is below 1.
    """
    if workers is not None and workers < 1:
        raise ConfigError(f"workers={workers} is below 1; pass at least one Ray actor (--workers)")
    if threads is not None and threads < 1:
        raise ConfigError(f"threads={threads} is below 1; pass at least one thread per actor (--threads)")
    n_threads = threads or 1
    gpus = int(resources.get("GPU", 0))
    cpus = int(resources.get("CPU", 0))
    kind = None if device is None else device.split(":")[0]
    if kind == "mps":
        raise ConfigError(
            "device='mps' cannot be shared out by Ray; pass device='cpu' (--device cpu) with the Ray "
            "engine, or use the local engine"
        )
    if kind == "cuda" and gpus < 1:
        raise ConfigError(
            f"device={device!r}, but the Ray cluster has no GPU; pass device='cpu' (--device cpu) "
            "or join a cluster with GPUs (--ray-address)"
        )
    if gpus >= 1 and kind != "cpu":
        actors = workers or gpus
        # Ray packs fractional GPUs onto one GPU; a share above 1 would need several per actor.
        share = 1.0 if actors <= gpus else math.floor(gpus / actors * 1000) / 1000
        return RayPlan(actors, share, 1, n_threads, "cuda")
    return RayPlan(workers or max(1, cpus // n_threads), 0, n_threads, n_threads, "cpu")


@contextlib.contextmanager
def _quiet_ray(ray: Any) -> Iterator[None]:
    """Keep Ray's INFO and WARNING lines, and Ray Data's progress bars, off the terminal."""
    saved = {name: logging.getLogger(name).level for name in _RAY_LOGGERS}
    with warnings.catch_warnings():
        # Ray 2.60 warns about its own default settings (use_push_based_shuffle) here.
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx = ray.data.DataContext.get_current()
    bars = ctx.enable_progress_bars
    try:
        for name in _RAY_LOGGERS:
            # The job reports Ray's errors itself, as the library's, once.
            logging.getLogger(name).setLevel(logging.CRITICAL)
        ctx.enable_progress_bars = False
        yield
    finally:
        ctx.enable_progress_bars = bars
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


#: Seconds to wait for a cluster's port to answer before giving up (Ray itself retries for minutes).
CONNECT_TIMEOUT_S = 10.0


def _check_reachable(address: str) -> None:
    """Fail fast, naming the address, when nothing listens at a ``host:port`` address.

    ``ray.init`` retries an unreachable address for minutes, logging as it goes; one TCP connect
    says the same in seconds. ``"auto"`` and addresses without a port are left to Ray.
    """
    import socket

    hostport = address.split("://", 1)[-1].rstrip("/")
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit() or not host:
        return
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as exc:
        raise SpeakerEmbedError(
            f"cannot reach the Ray cluster at {address!r} ({exc.strerror or type(exc).__name__}); "
            "check --ray-address (ray_address=) or RAY_ADDRESS, and that `ray status` works on the head node"
        ) from exc


@contextlib.contextmanager
def ray_session(address: str | None = None, *, num_cpus: int | None = None) -> Iterator[Any]:
    """Join a Ray cluster, or start a local Ray, for the length of a ``with`` block.

    Parameters
    ----------
    address : str or None
        A cluster's address (``"ray://head:10001"``, ``"head:6379"`` or ``"auto"``); ``None``
        uses ``RAY_ADDRESS``, and without it starts a local Ray.
    num_cpus : int or None
        CPUs of a local Ray (default: all of this machine's).

    Yields
    ------
    module
        The ``ray`` module, initialised. A Ray this block started is shut down at its end; one
        the caller had already initialised is left running.

    Raises
    ------
    BackendUnavailableError
        If Ray is not installed.
    SpeakerEmbedError
        If the cluster cannot be reached.
    """
    ray = _import_ray()
    with _quiet_ray(ray):
        if ray.is_initialized():
            yield ray
            return
        address = address or os.environ.get("RAY_ADDRESS") or None
        kwargs: dict[str, Any] = {
            "include_dashboard": False,
            "log_to_driver": False,
            "logging_level": logging.ERROR,
            "configure_logging": True,
        }
        if address is not None:
            _check_reachable(address)
        try:
            if address is None:
                ray.init(num_cpus=num_cpus, **kwargs)
            else:
                ray.init(address=address, **kwargs)
        except (ConnectionError, TimeoutError, RuntimeError, ValueError) as exc:
            where = f"the Ray cluster at {address!r}" if address else "a local Ray"
            why = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise SpeakerEmbedError(
                f"cannot start or join {where}: {why}; "
                "check --ray-address (ray_address=) or RAY_ADDRESS, and that `ray status` works there"
            ) from exc
        try:
            yield ray
        finally:
            ray.shutdown()


def _library_error(exc: BaseException) -> SpeakerEmbedError:
    """The library's error inside a Ray exception, or a new one that quotes it.

    An actor's error in a batch comes back as a Ray error that is also an instance of the
    original class; an error in an actor's constructor (weights it cannot load) comes back only
    as text in an ``ActorDiedError``, from which the library's error is rebuilt.
    """
    import re

    from .. import errors

    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, SpeakerEmbedError):
            return e
        stack.extend([e.__cause__, e.__context__])
        text = str(getattr(e, "error_msg", "") or e)
        found = re.findall(r"speakerembed\.errors\.(\w+): (.+)", text)
        if found:
            name, message = found[-1]
            kind = getattr(errors, name, None)
            if isinstance(kind, type) and issubclass(kind, SpeakerEmbedError):
                return kind(message.strip())
    first = str(exc).strip().splitlines()
    return SpeakerEmbedError(
        f"the Ray job failed: {first[-1] if first else type(exc).__name__}; "
        "see the Ray logs (/tmp/ray/session_latest/logs) for the actor's traceback"
    )


def _attach(table: pa.Table, by_id: dict[str, Record], schema: pa.Schema) -> pa.Table:
    """The actor's rows with the driver's speakers and carried columns, in the job's schema."""
    import pyarrow as pa

    records = [by_id[i] for i in table.column("id").to_pylist()]
    arrays = []
    for field in schema:
        if field.name == "speaker":
            arrays.append(pa.array([r.speaker for r in records], type=field.type))
        elif field.name in table.column_names:
            arrays.append(table.column(field.name).combine_chunks().cast(field.type))
        else:
            arrays.append(pa.array([r.extra.get(field.name) for r in records], type=field.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def run_ray(
    records: Sequence[Record],
    embedder: SpeakerEmbedder,
    *,
    weights: str | os.PathLike[str],
    encoder: EncoderImpl = "builtin",
    pipeline: Pipeline | None = None,
    schema: pa.Schema | None = None,
    device: str | None = None,
    workers: int | None = None,
    threads: int | None = None,
    address: str | None = None,
    batch_size: int | None = None,
    max_batch: int = MAX_BATCH,
) -> Generator[pa.Table, None, None]:
    """Embed records on a Ray Data actor pool; yield the rows as they come back.

    Parameters
    ----------
    records : sequence of Record
        The inputs still to do (those already in the output are left out by the caller).
    embedder : SpeakerEmbedder
        The driver's embedder: its weights' sha256 and precision are what every actor must match.
    weights : str or os.PathLike
        The weights each actor loads: a preset name, or a file every node sees at this path.
    encoder : {"builtin", "chatterbox"}
        The network class each actor loads them into.
    pipeline : Pipeline or None
        The preprocessing (default: the embedder's).
    schema : pyarrow.Schema or None
        The job's schema (:func:`~speakerembed.corpus.schema.corpus_schema`), with carried columns.
    device, workers, threads
        See :func:`plan_actors`.
    address : str or None
        See :func:`ray_session`.
    batch_size : int or None
        Records per actor call (default: up to ``max_batch``, fewer for a small corpus so that
        every actor gets work).
    max_batch : int
        The most records per actor call when ``batch_size`` is not given.

    Yields
    ------
    pyarrow.Table
        Rows in ``schema``, a batch at a time, in the order the actors finish them.

    Raises
    ------
    BackendUnavailableError
        If Ray is not installed.
    SpeakerEmbedError
        If the cluster cannot be joined, an actor cannot load the weights (a
        :class:`~speakerembed.WeightsError`), or an actor fails.
    """
    from .schema import corpus_schema

    pipe = pipeline if pipeline is not None else embedder.pipeline
    schema = schema if schema is not None else corpus_schema()
    if not records:
        return
    by_id = {r.id: r for r in records}
    with ray_session(address) as ray:
        plan = plan_actors(ray.cluster_resources(), device=device, workers=workers, threads=threads)
        size = batch_size or max(1, min(max_batch, MAX_BATCH, math.ceil(len(records) / (4 * plan.actors))))
        spec = EmbedderSpec(
            weights=os.fspath(weights),
            pipeline=pipe,
            encoder=encoder,
            device=plan.device,
            precision=embedder.precision,
            threads=plan.threads,
            weights_sha256=embedder.weights_info.sha256,
        )
        items = [{"id": r.id, "path": r.path} for r in records]
        ds = ray.data.from_items(items, override_num_blocks=math.ceil(len(items) / size))
        ds = ds.map_batches(
            _EmbedActor,
            fn_constructor_kwargs={"spec": spec},
            batch_size=size,
            batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(size=plan.actors),
            num_cpus=plan.num_cpus,
            num_gpus=plan.num_gpus or None,
        )
        logger.info(
            "Ray engine: %d actor(s), %d thread(s), %s, %d records in batches of %d",
            plan.actors,
            plan.threads,
            f"{plan.num_gpus:g} GPU each" if plan.num_gpus else "CPU",
            len(records),
            size,
        )
        try:
            for table in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
                if table.num_rows:
                    yield _attach(table, by_id, schema)
        except (KeyboardInterrupt, GeneratorExit, SpeakerEmbedError):
            raise
        except Exception as exc:  # Ray wraps the actors' errors in its own types
            raise _library_error(exc) from exc


def run(job: Job) -> bool:
    """The Ray engine, as :func:`~speakerembed.embed_corpus` calls it.

    Embeds ``job.records`` with :func:`run_ray`, writes each batch with ``job.sink`` and counts
    it with ``job.progress`` as it comes back, like the local engine
    (``speakerembed.corpus.engine.run_local``), through the same
    :func:`~speakerembed.corpus.job.write_tables`.

    Returns
    -------
    bool
        True when it stopped early (``fail_fast`` and a failed row); leaving the loop stops the
        actors, and shuts down a Ray the job started.
    """
    spec = EmbedderSpec.of(
        job.embedder, pipeline=job.pipeline, encoder=job.encoder, refusal=ACTORS_NEED_WEIGHTS
    )
    tables = run_ray(
        job.records,
        job.embedder,
        weights=spec.weights,
        encoder=spec.encoder,
        pipeline=spec.pipeline,
        schema=job.schema,
        device=job.device,
        workers=job.workers,
        threads=job.threads,
        address=job.ray_address,
        max_batch=job.batch_size,
    )
    return write_tables(job, tables)
