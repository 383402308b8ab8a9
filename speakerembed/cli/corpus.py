"""``speakerembed corpus``: embed a whole corpus into a resumable Parquet dataset.

A thin shell over :func:`speakerembed.embed_corpus`.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from typing import TYPE_CHECKING, Any

from ..corpus.sources import MANIFEST_FORMATS
from . import _options as opt
from ._messages import FLAGS

if TYPE_CHECKING:
    from ..config import Pipeline
    from ..corpus.api import CorpusReport

__all__ = ["add_parser", "run"]

NAME = "corpus"
# The job's keywords in this command's flags: from the one keyword -> flag map.
_FLAGS = {name: FLAGS[name] for name in ("output", "speakers", "shard_size", "workers", "threads", "engine")}


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Add ``corpus`` to the subcommands."""
    p: argparse.ArgumentParser = sub.add_parser(
        NAME,
        help="embed a corpus: folders, lists and manifests in, a resumable Parquet dataset out",
        description="Embed every input into OUT_DIR, a folder of Parquet shards that reads as one "
        "table (one row per input: id, path, speaker, embedding, duration_s, speech_s, sample_rate, "
        "n_windows, error, error_type, and a manifest's other columns). Run the same command again "
        "to continue a job that stopped.",
        epilog="Exit codes: 0 every input embedded, 1 could not run (weights, output: in use by "
        "another job, damaged, full disk), 2 bad usage, 3 finished but some inputs failed (they are "
        "rows with an error), 130 interrupted (Ctrl-C or SIGTERM: the rows already made are kept).",
    )
    p.add_argument(
        "inputs", nargs="*", metavar="INPUT", help="audio files and folders (searched recursively)"
    )
    p.add_argument("-o", "--output", required=True, metavar="OUT_DIR", help="the output folder")
    opt.add_files_from(p)
    p.add_argument(
        "--manifest",
        metavar="FILE",
        default=None,
        help="a CSV, JSONL or Parquet file with a path column, optional id and speaker columns; "
        "other columns are carried into the output (a CSV is read as text); or a Kaldi/WeSpeaker "
        "wav.scp, '<id> <path>' a line",
    )
    p.add_argument(
        "--manifest-format",
        choices=MANIFEST_FORMATS,
        default="auto",
        help="how to read --manifest: auto (by its suffix: .csv, .jsonl, .parquet, .scp), csv, "
        "jsonl, parquet or scp (default: auto)",
    )
    g = p.add_argument_group("job")
    g.add_argument(
        "--workers",
        type=opt.non_negative_int,
        default=None,
        metavar="N",
        help="worker processes: on a CPU, encoders beside this one (each decodes its own "
        "files, with --threads torch threads, default 1); on a GPU, decoders feeding it; 0 runs "
        "in line (default: one encoder per core for 2,000+ files on a CPU of 8+ cores); with --engine ray, "
        "the number of actors",
    )
    g.add_argument(
        "--shard-size",
        type=opt.positive_int,
        default=1000,
        metavar="N",
        help="rows per shard (default: 1000)",
    )
    g.add_argument("--engine", choices=("local", "ray"), default="local", help="local (default) or ray")
    g.add_argument(
        "--ray-address",
        default=None,
        metavar="ADDR",
        help="the Ray cluster to join (default: RAY_ADDRESS, else a local Ray)",
    )
    g.add_argument("--retry-failed", action="store_true", help="embed again the inputs whose rows are errors")
    g.add_argument("--overwrite", action="store_true", help="delete OUT_DIR's shards and start afresh")
    g.add_argument("--fail-fast", action="store_true", help="stop at the first input that fails")
    g.add_argument(
        "--speakers",
        nargs="?",
        const=True,
        default=False,
        metavar="FILE",
        help="also write one speaker embedding per speaker (default FILE: OUT_DIR.speakers.parquet, "
        "beside the folder)",
    )
    g.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    opt.add_model_options(p)
    opt.add_pipeline_options(p)
    opt.add_verbose(p)
    return p


def run(args: argparse.Namespace) -> int:
    """Run ``corpus``."""
    from ..corpus.api import check_speakers_path, failed_query
    from ..corpus.sources import InputsError
    from ..errors import ConfigError

    if not args.inputs and args.files_from is None and args.manifest is None:
        raise opt.usage_error("no inputs: pass audio files or folders, --files-from FILE or --manifest FILE")
    if args.overwrite and args.retry_failed:
        raise opt.usage_error("--overwrite and --retry-failed contradict each other; pass one of them")
    if args.ray_address is not None and args.engine != "ray":
        raise opt.usage_error("--ray-address needs --engine ray")
    try:  # a --speakers path that cannot be written is found before any work
        check_speakers_path(args.speakers, args.output, flags=_FLAGS)
    except ConfigError as exc:
        raise opt.usage_error(str(exc)) from exc
    pipeline = opt.pipeline_from_args(args)
    try:
        report = _embed(args, pipeline)
    except InputsError as exc:  # missing inputs, unreadable lists, duplicate ids: before any audio
        raise opt.usage_error(str(exc)) from exc
    if not args.quiet:
        for line in report.summary().splitlines():
            opt.say(line)
    elif not report.ok:
        opt.say(
            f"{report.failed + report.previously_failed} input(s) failed; list them with: "
            f"{failed_query(report.output)}"
        )
    return opt.ExitCode.OK if report.ok else opt.ExitCode.PARTIAL


def _embed(args: argparse.Namespace, pipeline: Pipeline) -> CorpusReport:
    from ..corpus.api import embed_corpus

    return embed_corpus(
        args.inputs,
        args.output,
        files_from=args.files_from,
        manifest=args.manifest,
        manifest_format=args.manifest_format,
        weights=args.weights,
        device=args.device,
        precision=args.precision,
        pipeline=pipeline,
        workers=args.workers,
        threads=args.threads,
        shard_size=args.shard_size,
        engine=args.engine,
        ray_address=args.ray_address,
        retry_failed=args.retry_failed,
        overwrite=args.overwrite,
        fail_fast=args.fail_fast,
        speakers=args.speakers,
        progress="off" if args.quiet else "auto",
        command=shlex.join(["speakerembed", *sys.argv[1:]]),
        _flags=_FLAGS,
    )
