""":func:`embed_corpus`: folders, file lists and manifests in, a resumable Parquet dataset out."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shlex
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TextIO

from ..errors import ConfigError

if TYPE_CHECKING:
    import pyarrow as pa
    import torch

    from ..config import Pipeline
    from ..embedder import SpeakerEmbedder
    from ..stages.encoder import EncoderImpl, Precision
    from .progress import ProgressMode
    from .sources import ManifestFormat

__all__ = [
    "CorpusReport",
    "check_speakers_path",
    "default_speakers_path",
    "embed_corpus",
    "failed_query",
    "require_corpus_packages",
    "speaker_table",
]

Engine = Literal["local", "ray"]


@dataclasses.dataclass(frozen=True)
class CorpusReport:
    """What :func:`embed_corpus` did.

    Attributes
    ----------
    output : pathlib.Path
        The output folder.
    total : int
        Inputs of the job.
    embedded : int
        Inputs embedded by this run.
    failed : int
        Inputs that failed in this run (each is a row with its ``error``).
    skipped : int
        Inputs already in the output, so not run again.
    previously_failed : int
        Of the skipped inputs, those whose row is an error row (``retry_failed=True`` runs them again).
    retried : int
        Error rows that ``retry_failed`` removed so that their inputs ran again.
    audio_seconds : float
        Seconds of audio this run processed.
    wall_seconds : float
        Seconds this run took, from the first file to the last row written.
    stopped_early : bool
        ``fail_fast`` stopped the job at the first failure.
    failures : tuple of (str, str)
        The first failures of this run (at most 20): id and error message.
    speakers : pathlib.Path or None
        The ``speakers.parquet`` file, when it was asked for.
    relabelled : int
        Rows already done whose ``speaker`` or carried columns this run's manifest changed
        (their embeddings were kept, not made again).
    """

    output: Path
    total: int
    embedded: int
    failed: int
    skipped: int
    previously_failed: int
    retried: int
    audio_seconds: float
    wall_seconds: float
    stopped_early: bool = False
    failures: tuple[tuple[str, str], ...] = ()
    speakers: Path | None = None
    relabelled: int = 0

    @property
    def ok(self) -> bool:
        """Every input of the job has an embedding in the output."""
        return self.failed == 0 and self.previously_failed == 0 and not self.stopped_early

    @property
    def realtime_factor(self) -> float:
        """Seconds of audio per second of wall time, in this run."""
        return self.audio_seconds / self.wall_seconds if self.wall_seconds > 0 else 0.0

    def summary(self) -> str:
        """A few lines for people: counts, speed, and how to list the failures."""
        lines = [
            f"embedded {self.embedded}, failed {self.failed}, already done {self.skipped} "
            f"(of which {self.previously_failed} failed) of {self.total} inputs; "
            f"{self.audio_seconds / 3600:.2f} h of audio in {self.wall_seconds:.1f} s "
            f"({self.realtime_factor:.0f}x real time) -> {self.output}"
        ]
        if self.relabelled:
            lines.append(
                f"updated the speaker and carried columns of {self.relabelled} row(s) already done "
                "from the manifest (their embeddings were kept)"
            )
        if self.stopped_early:
            lines.append("stopped at the first failure (fail_fast)")
        if self.failed or self.previously_failed:
            lines.append(f"list the failed inputs with: {failed_query(self.output)}")
            lines.append("embed them again with --retry-failed (retry_failed=True)")
        if self.speakers is not None:
            lines.append(f"speaker embeddings: {self.speakers}")
        return "\n".join(lines)


def failed_query(output: str | os.PathLike[str]) -> str:
    """A one-line shell command that lists the error rows of an output folder: id, tab, error.

    It needs only pyarrow (a dependency), and quotes the folder for a POSIX shell.
    """
    import json

    out = json.dumps(os.fspath(output))  # a JSON string is a Python string literal
    code = (
        f'import pyarrow.parquet as pq; t = pq.read_table({out}, columns=["id", "error"], '
        'filters=[("error", "!=", "")]); '
        'print("\\n".join(f"{i}\\t{e}" for i, e in zip(t["id"].to_pylist(), t["error"].to_pylist())))'
    )
    return f"{shlex.quote(sys.executable)} -c {shlex.quote(code)}"


def default_speakers_path(output: str | os.PathLike[str]) -> Path:
    """Where ``speakers=True`` writes: ``OUT.speakers.parquet`` beside the folder ``OUT``.

    It lies outside the folder so that the folder still reads as one table.
    """
    out = Path(output)
    return out.with_name(out.name + ".speakers.parquet")


def speaker_table(output: str | os.PathLike[str]) -> pa.Table:
    """One :func:`~speakerembed.utt_to_spk_embed` per speaker, over the output's embedded rows.

    Returns
    -------
    pyarrow.Table
        ``speaker`` (string), ``embedding`` (fixed_size_list<float32, 256>), ``n_utterances``
        (embedded rows used), ``n_failed`` (error rows of that speaker), sorted by speaker.
        Rows without a speaker are left out.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ..stages.consolidate import utt_to_spk_embed
    from .schema import EMBEDDING_DIM

    table = pq.read_table(
        os.fspath(output), columns=["speaker", "embedding"], page_checksum_verification=True
    )
    speakers = table.column("speaker").to_pylist()
    emb = table.column("embedding")
    valid = emb.is_valid().to_numpy(zero_copy_only=False)
    flat = emb.combine_chunks()
    values = flat.flatten().to_numpy(zero_copy_only=False).reshape(-1, EMBEDDING_DIM) if len(flat) else None
    # flatten() skips the null slots, so map valid rows to their position among the values.
    pos = np.cumsum(valid) - 1
    groups: dict[str, list[int]] = {}
    failed: dict[str, int] = {}
    for i, spk in enumerate(speakers):
        if spk is None:
            continue
        if valid[i]:
            groups.setdefault(spk, []).append(int(pos[i]))
        else:
            failed[spk] = failed.get(spk, 0) + 1
    names = sorted(set(groups) | set(failed))
    out = np.zeros((len(names), EMBEDDING_DIM), np.float32)
    mask = np.ones(len(names), bool)
    counts = []
    for k, name in enumerate(names):
        rows = groups.get(name, [])
        counts.append(len(rows))
        if rows:
            assert values is not None
            out[k] = utt_to_spk_embed(values[rows])
            mask[k] = False
    embedding = pa.FixedSizeListArray.from_arrays(
        pa.array(out.reshape(-1), pa.float32()), EMBEDDING_DIM, mask=pa.array(mask)
    )
    return pa.table(
        {
            "speaker": pa.array(names, pa.string()),
            "embedding": embedding,
            "n_utterances": pa.array(counts, pa.int64()),
            "n_failed": pa.array([failed.get(n, 0) for n in names], pa.int64()),
        }
    )


def _write_speakers(output: Path, path: Path) -> None:
    import pyarrow.parquet as pq

    table = speaker_table(output)
    tmp = path.with_name(f".{path.name}.tmp.{os.getpid()}")
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, path)
    except BaseException:
        if tmp.exists():
            tmp.unlink()
        raise


def require_corpus_packages(feature: str, *, bar: bool = False) -> None:
    """Raise :class:`~speakerembed.BackendUnavailableError` if pyarrow (or tqdm) is missing."""
    import importlib.util

    from ..errors import missing_backend

    for package in ("pyarrow", "tqdm") if bar else ("pyarrow",):
        if importlib.util.find_spec(package) is None:
            raise missing_backend(package, "corpus", feature)
    try:
        import pyarrow  # noqa: F401 - installed is not enough: it must import
    except ImportError as exc:
        from ..errors import BackendUnavailableError

        why = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BackendUnavailableError(
            f"{feature} needs pyarrow, which is installed but cannot be imported ({why}); "
            "pyarrow 26 and later need NumPy 2: where NumPy 1.x is pinned (chatterbox-tts pins "
            "it), pip install 'pyarrow<26', or upgrade NumPy"
        ) from exc


def _named(flag: str, value: object) -> str:
    return f"{flag}{value}" if flag.endswith("=") else f"{flag} {value}"


def check_speakers_path(
    speakers: bool | str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    flags: dict[str, str] | None = None,
) -> Path | None:
    """Where ``speakers=`` will write, checked before any work; None when it is not asked for.

    Parameters
    ----------
    speakers : bool or path
        As for :func:`~speakerembed.embed_corpus`.
    output : path
        The job's output folder.
    flags : dict or None
        How ``speakers`` and ``output`` are named in errors (the CLI passes its flags).

    Returns
    -------
    pathlib.Path or None

    Raises
    ------
    ConfigError
        If the file would lie inside the output folder (which must read as one table), is a
        folder, or its folder is missing or not writable.
    """
    if speakers is False:
        return None
    names = {"speakers": "speakers=", "output": "output=", **(flags or {})}
    path = default_speakers_path(output) if speakers is True else Path(speakers)
    shown = _named(names["speakers"], path)
    out = Path(output).resolve()
    where = path.resolve()
    if where == out or out in where.parents:
        raise ConfigError(
            f"{shown} lies inside the output folder {_named(names['output'], output)}, which must read "
            "as one table of rows; write the speakers file beside the folder (the default) or elsewhere"
        )
    if path.is_dir():
        raise ConfigError(f"{shown} is a folder; pass the path of a .parquet file to write")
    parent = path.parent
    if not parent.exists() and parent.resolve() == out.parent:
        return path  # beside the output folder, whose parents the job creates
    if not parent.is_dir():
        what = "is a file" if parent.exists() else "does not exist"
        raise ConfigError(f"{shown}: its folder {parent} {what}; create the folder or choose another path")
    if not os.access(parent, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise ConfigError(f"{shown} cannot be written (permissions); choose another path or fix them")
    return path


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt, as Ctrl-C does, while a job runs in the main thread.

    So ``kill PID`` (a scheduler's stop, a container's shutdown) keeps the finished rows as
    Ctrl-C does. A handler the caller installed is left alone.
    """
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) not in (
        signal.SIG_DFL,
        None,
    ):
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    old = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _check_int(name: str, value: object, low: int, *, none_ok: bool = False) -> None:
    if value is None and none_ok:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ConfigError(f"{name}={value!r} must be a whole number of at least {low}")


def embed_corpus(
    inputs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] = (),
    output: str | os.PathLike[str] | None = None,
    *,
    files_from: str | os.PathLike[str] | None = None,
    manifest: str | os.PathLike[str] | None = None,
    manifest_format: ManifestFormat = "auto",
    weights: str | os.PathLike[str] = "chatterbox",
    device: str | torch.device | None = None,
    precision: Precision = "fp32",
    encoder: EncoderImpl = "builtin",
    pipeline: Pipeline | None = None,
    embedder: SpeakerEmbedder | None = None,
    workers: int | None = None,
    threads: int | None = None,
    shard_size: int = 1000,
    engine: Engine = "local",
    ray_address: str | None = None,
    retry_failed: bool = False,
    overwrite: bool = False,
    fail_fast: bool = False,
    speakers: bool | str | os.PathLike[str] = False,
    progress: ProgressMode = "auto",
    progress_stream: TextIO | None = None,
    command: str | None = None,
    stdin: TextIO | None = None,
    _flags: dict[str, str] | None = None,
) -> CorpusReport:
    """Embed every input of a corpus into a resumable Parquet dataset: one row per input.

    Running it again with the same inputs and output continues the job: inputs whose id is
    already in the output are skipped (embedded or failed). Each embedding equals what
    :func:`~speakerembed.embed_utterances` gives for the same file with the same settings.

    Parameters
    ----------
    inputs : path or sequence of paths
        Audio files and folders (searched recursively for audio files; hidden files skipped).
    output : path
        The output folder (:mod:`speakerembed.corpus.sink` describes it). Required.
    files_from : path or ``"-"`` or None
        A file list, one path a line; ``"-"`` reads standard input.
    manifest : path or None
        A CSV, JSONL or Parquet manifest with a ``path`` column and optional ``id`` and
        ``speaker`` columns; other columns are carried into the output; or a Kaldi/WeSpeaker
        ``wav.scp`` (``<id> <path>`` a line).
    manifest_format : {"auto", "csv", "jsonl", "parquet", "scp"}
        How to read ``manifest``; ``"auto"`` goes by its suffix (``.scp`` for ``wav.scp``).
    weights, device, precision, encoder
        As for :class:`~speakerembed.SpeakerEmbedder`; ignored when ``embedder`` is given.
    pipeline : Pipeline or None
        The preprocessing (default: the embedder's, else ``Pipeline()``).
    embedder : SpeakerEmbedder or None
        An embedder already loaded.
    workers : int or None
        Worker processes; 0 runs everything in line. On a CPU, encoder processes beside this
        one, each decoding its own files with ``threads`` torch threads (default 1)
        (:mod:`speakerembed.corpus.encoders`); ``None`` picks one per core for jobs of 2,000 or
        more files on 8 cores or more, and runs in line otherwise
        (:func:`speakerembed.corpus.encoders.default_encoders`). On a GPU, processes
        that decode, resample, trim and compute mels for its encoder (each mel comes back
        through shared memory); ``None`` picks every core but one (at most 32) for jobs of
        2,000 or more files, in line below that
        (:func:`speakerembed.corpus.engine.gpu_default_workers`). For the Ray engine, the number of
        actors. Worker processes start with "spawn", which runs the main script again in each:
        guard a script's work with ``if __name__ == "__main__":``.
    threads : int or None
        Torch threads for the encoder.
    shard_size : int
        Rows per Parquet shard: at most this many rows are lost if the job is killed.
    engine : {"local", "ray"}
        ``"ray"`` runs on Ray Data (``pip install 'speakerembed[ray]'``).
    ray_address : str or None
        The Ray cluster to join (default: ``RAY_ADDRESS``, else a local Ray).
    retry_failed : bool
        Embed again the inputs whose rows are errors.
    overwrite : bool
        Delete the output's shards first and start afresh.
    fail_fast : bool
        Stop at the first input that fails (its error row is kept).
    speakers : bool or path
        Also write one :func:`~speakerembed.utt_to_spk_embed` per ``speaker`` over the output's
        embedded rows: to this path, or with ``True`` to
        :func:`~speakerembed.corpus.api.default_speakers_path`.
    progress : {"auto", "bar", "log", "off"}
        A bar on a terminal, a log line about every 10 s otherwise, or nothing.
    progress_stream : text stream or None
        Where progress goes (default: standard error).
    command : str or None
        The command line to record in the metadata (default: ``sys.argv`` joined).
    stdin : text stream or None
        Standard input for ``files_from="-"``.

    Returns
    -------
    CorpusReport

    Notes
    -----
    One job at a time per output folder: the job holds an operating-system lock on it
    (:class:`~speakerembed.corpus.sink.OutputLock`), and another job on the same folder raises
    :class:`~speakerembed.corpus.sink.OutputError` at once, naming the process that holds it.

    Run again with a ``manifest`` for inputs already done, the rows take the manifest's
    ``speaker`` and carried columns (their embeddings are kept, not made again;
    ``CorpusReport.relabelled`` counts them). A manifest with other carried columns than the
    output's is refused (``overwrite=True`` embeds every input again with them). A run without
    a manifest leaves the labels already written as they are.

    SIGTERM, while the job runs in the main thread and no other handler is installed, is
    treated as Ctrl-C: the rows already made are written, and :class:`KeyboardInterrupt` is
    raised (the CLI prints "interrupted" and exits 130). Worker processes end with their parent,
    however it ends (a parent-death signal on Linux, and a check of the parent elsewhere).

    A file name that is not valid UTF-8 is stored with its undecodable bytes escaped
    (:func:`~speakerembed.corpus.schema.safe_text`), in ``id`` and ``path``.

    Raises
    ------
    ConfigError
        For bad arguments, missing inputs, duplicate ids, a ``speakers`` path that cannot be
        written, or an output folder that cannot be used (not writable, in use by another job,
        written with other weights, another Pipeline or precision, holding a damaged or foreign
        shard); all before any audio is read. Also, with the message "no space left writing
        OUT/part-N...", when the disk fills during the job (the rows written before stay).
    WeightsError
        If the weights cannot be loaded.
    BackendUnavailableError
        For ``engine="ray"`` without Ray installed.

    Examples
    --------
    >>> import tempfile
    >>> from speakerembed import embed_corpus
    >>> out = tempfile.mkdtemp()
    >>> report = embed_corpus("examples/audio", out, weights="resemblyzer", device="cpu", progress="off")
    >>> report.embedded, report.failed
    (9, 0)
    """
    require_corpus_packages("embed_corpus (speakerembed corpus)", bar=progress in ("auto", "bar"))

    flags = {
        "output": "output=",
        "speakers": "speakers=",
        "shard_size": "shard_size",
        "workers": "workers",
        "threads": "threads",
        "engine": "engine",
        **(_flags or {}),
    }
    if output is None:
        raise ConfigError("output= is required: the folder for the Parquet shards")
    _check_int(flags["shard_size"], shard_size, 1)
    _check_int(flags["workers"], workers, 0, none_ok=True)
    _check_int(flags["threads"], threads, 1, none_ok=True)
    if engine not in ("local", "ray"):
        raise ConfigError(f"{flags['engine']}={engine!r} is not 'local' or 'ray'")
    if overwrite and retry_failed:
        raise ConfigError("overwrite and retry_failed contradict each other; pass one of them")
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    from .sources import collect

    sources = collect(
        list(inputs), files_from=files_from, manifest=manifest, stdin=stdin, manifest_format=manifest_format
    )
    if not sources.records:
        raise ConfigError("no inputs: pass audio files or folders, files_from= or manifest=")
    run_ray = None
    if engine == "ray":
        import importlib.util

        if importlib.util.find_spec("ray") is None:
            from ..errors import missing_backend

            raise missing_backend("ray", "ray", "engine='ray' (--engine ray)")
        import importlib

        try:
            run_ray = importlib.import_module(".ray_engine", __package__).run
        except ModuleNotFoundError as exc:  # pragma: no cover - a build without the Ray engine
            if exc.name != f"{__package__}.ray_engine":
                raise
            from ..errors import BackendUnavailableError

            raise BackendUnavailableError(
                "engine='ray' (--engine ray) is not part of this build of speakerembed; use engine='local'"
            ) from exc
    from .schema import corpus_schema, safe_text
    from .sink import OutputLock, ParquetSink

    ids = [safe_text(r.id) for r in sources.records]
    if len(set(ids)) < len(ids):
        from collections import Counter

        dup = [k for k, n in Counter(ids).items() if n > 1]
        raise ConfigError(
            f"{len(dup)} input id(s) are the same once their undecodable bytes are escaped "
            f"({', '.join(repr(d) for d in dup[:3])}); give them ids of their own in a manifest"
        )
    speakers_path = check_speakers_path(speakers, output, flags=flags)
    # The folder is checked before the weights load, and again with the settings once they have.
    ParquetSink(output, corpus_schema(), {}, flag=flags["output"], overwrite=True).check()
    with OutputLock(output, flag=flags["output"]), _sigterm_as_interrupt():
        return _run(
            sources,
            ids,
            output,
            speakers_path,
            relabel=manifest is not None,
            weights=weights,
            device=device,
            precision=precision,
            encoder=encoder,
            pipeline=pipeline,
            embedder=embedder,
            workers=workers,
            threads=threads,
            shard_size=shard_size,
            run_ray=run_ray,
            ray_address=ray_address,
            retry_failed=retry_failed,
            overwrite=overwrite,
            fail_fast=fail_fast,
            progress=progress,
            progress_stream=progress_stream,
            command=command,
            flags=flags,
        )


def _run(
    sources: Any,
    ids: list[str],
    output: str | os.PathLike[str],
    speakers_path: Path | None,
    *,
    relabel: bool,
    weights: str | os.PathLike[str],
    device: str | torch.device | None,
    precision: Precision,
    encoder: EncoderImpl,
    pipeline: Pipeline | None,
    embedder: SpeakerEmbedder | None,
    workers: int | None,
    threads: int | None,
    shard_size: int,
    run_ray: Any,
    ray_address: str | None,
    retry_failed: bool,
    overwrite: bool,
    fail_fast: bool,
    progress: ProgressMode,
    progress_stream: TextIO | None,
    command: str | None,
    flags: dict[str, str],
) -> CorpusReport:
    """The job, with the output folder locked."""
    from .progress import Progress
    from .schema import corpus_schema, job_metadata, safe_text
    from .sink import ParquetSink

    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    if embedder is None:
        from ..embedder import SpeakerEmbedder

        embedder = SpeakerEmbedder(
            weights, device=device, precision=precision, encoder=encoder, pipeline=pipeline
        )
    pipe = pipeline if pipeline is not None else embedder.pipeline
    meta = job_metadata(embedder, pipe, command if command is not None else " ".join(sys.argv))
    schema = corpus_schema(sources.extra_fields, meta)
    sink = ParquetSink(
        output,
        schema,
        meta,
        shard_size=shard_size,
        overwrite=overwrite,
        retry_failed=retry_failed,
        flag=flags["output"],
    )
    labels = None
    if relabel and not overwrite:
        carried = [f.name for f in sources.extra_fields]
        labels = {
            i: {
                "speaker": None if r.speaker is None else safe_text(r.speaker),
                **{c: r.extra.get(c) for c in carried},
            }
            for i, r in zip(ids, sources.records, strict=True)
        }
    sink.open(relabel=labels)
    pending = [r for i, r in zip(ids, sources.records, strict=True) if i not in sink.done]
    skipped = len(sources.records) - len(pending)
    previously_failed = sum(1 for i in ids if sink.done.get(i))
    show = Progress(len(pending), progress, progress_stream)
    from . import job as jobs
    from .engine import run_local

    job = jobs.Job(
        records=pending,
        schema=schema,
        pipeline=pipe,
        embedder=embedder,
        sink=sink,
        progress=show,
        encoder=encoder,
        device=None if device is None else str(device),
        fail_fast=fail_fast,
        workers=workers,
        threads=threads,
        ray_address=ray_address,
        batch_size=jobs.BATCH_SIZE,
    )
    try:
        stopped = run_ray(job) if run_ray is not None else run_local(job)
    finally:
        sink.close()  # the rows already made are complete: keep them
        show.close()
    if speakers_path is not None:
        _write_speakers(Path(output), speakers_path)
    return CorpusReport(
        output=Path(output),
        total=len(sources.records),
        embedded=show.done - show.failed,
        failed=show.failed,
        skipped=skipped,
        previously_failed=previously_failed,
        retried=sink.retried,
        audio_seconds=show.audio_s,
        wall_seconds=show.wall_s,
        stopped_early=bool(stopped),
        failures=tuple(show.shown_failures()),
        speakers=speakers_path,
        relabelled=sink.relabelled,
    )
