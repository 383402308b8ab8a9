"""``speakerembed embed``: one speaker embedding, or one row per file.

Inputs are files, folders (searched recursively for audio files) and ``--files-from FILE``
(``-`` for standard input), collected by :func:`speakerembed.corpus.sources.collect`. For
corpus-sized jobs, resumable and with progress, use ``speakerembed corpus``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from . import _options as opt

__all__ = ["add_parser", "run"]

NAME = "embed"
SUFFIXES = (".npy", ".npz", ".parquet")


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Add ``embed`` to the subcommands."""
    p: argparse.ArgumentParser = sub.add_parser(
        NAME,
        help="embed files: one speaker embedding, or one row per file",
        description="Embed audio files. By default all files are one speaker and one (256,) "
        "speaker embedding is written; with --utterances, one row per file; with "
        "--chatterbox-conditioning, the embedding Chatterbox TTS conditions on.",
    )
    p.add_argument(
        "files",
        nargs="*",
        metavar="INPUT",
        help="audio files (WAV, FLAC, Ogg, MP3, ...) and folders (searched recursively)",
    )
    opt.add_files_from(p)
    p.add_argument(
        "-o",
        "--output",
        metavar="OUT",
        default=None,
        help="write OUT.npy (the array), OUT.npz (array, file names, weights, failures) or "
        "OUT.parquet (with --utterances: one row per file, the columns of `speakerembed corpus`); "
        "default: print a summary",
    )
    p.add_argument(
        "--utterances", action="store_true", help="one embedding per file instead of one speaker embedding"
    )
    p.add_argument(
        "--chatterbox-conditioning",
        action="store_true",
        help="the (256,) embedding ChatterboxTTS.prepare_conditionals conditions on for these "
        "reference files (24 kHz then 16 kHz with soxr, 20 dB trim, mean not renormalised); "
        "the pipeline flags but --min-duration and --max-duration do not apply",
    )
    p.add_argument(
        "--keep-going",
        action="store_true",
        help="skip files that fail (each is reported on stderr and recorded in an .npz output) "
        "instead of stopping at the first; exits 3 when some failed",
    )
    opt.add_model_options(p)
    opt.add_pipeline_options(p)
    opt.add_verbose(p)
    return p


def run(args: argparse.Namespace) -> int:
    """Run ``embed``."""
    if not args.files and args.files_from is None:
        args._command_parser.error("no inputs: pass audio files or folders, or --files-from FILE")
    pipeline = opt.pipeline_from_args(args)  # first: a usage error must not create -o's folder
    if args.chatterbox_conditioning:
        _check_conditioning_flags(args)
    out_path = opt.check_output(args.output, SUFFIXES) if args.output else None
    if out_path is not None and out_path.suffix.lower() == ".parquet" and not args.utterances:
        raise opt.usage_error(
            f"-o {args.output}: a .parquet output holds one row per file; add --utterances, "
            "or write .npy/.npz for the speaker embedding"
        )
    if out_path is not None and out_path.suffix.lower() == ".parquet":
        from ..corpus.api import require_corpus_packages

        require_corpus_packages(f"-o {args.output}")
    records = _records(args)
    embedder = opt.embedder_from_args(args)
    if args.chatterbox_conditioning:
        paths = [r.path for r in records]
        cond = embedder.embed_conditioning(paths)
        return _output(out_path, cond, paths, [], embedder.weights_info.short, "conditioning")
    if out_path is not None and out_path.suffix.lower() == ".parquet":
        return _save_parquet(out_path, records, embedder, pipeline, args.keep_going)
    files = [r.path for r in records]
    failures: list[tuple[str, str, str]] = []
    if args.keep_going:
        result = embedder.embed_utterances(files, pipeline=pipeline, errors="skip")
        for failure in result.failures:
            opt.say(f"skipped {failure.error}")
            failures.append((files[failure.index], type(failure.error).__name__, str(failure.error)))
        if not len(result.indices):
            opt.say("error: no file could be embedded")
            return opt.ExitCode.FAILED
        rows, kept = result.embeddings, [files[i] for i in result.indices]
    else:
        rows, kept = embedder.embed_utterances(files, pipeline=pipeline), files
    from ..stages.consolidate import utt_to_spk_embed

    if args.utterances:
        out, kind = rows, "utterance"
    else:
        out, kind = utt_to_spk_embed(rows), "speaker"
    return _output(out_path, out, kept, failures, embedder.weights_info.short, kind)


def _check_conditioning_flags(args: argparse.Namespace) -> None:
    """--chatterbox-conditioning is Chatterbox's chain: flags that would change it are usage errors."""
    changed = [
        flag
        for flag, on in (
            ("--utterances", args.utterances),
            ("--keep-going", args.keep_going),
            ("--order", args.order != "resample_trim"),
            ("--resampler", args.resampler != "soxr_hq"),
            ("--top-db", args.top_db is not None),
            ("--no-trim", args.no_trim),
        )
        if on
    ]
    if changed:
        them = "it" if len(changed) == 1 else "them"
        raise opt.usage_error(
            "--chatterbox-conditioning computes Chatterbox's own chain (soxr to 24 kHz and 16 kHz, "
            f"a 20 dB trim), so {', '.join(changed)} cannot apply; drop {them}"
        )


def _output(
    out_path: Path | None,
    out: Any,
    kept: list[str],
    failures: list[tuple[str, str, str]],
    weights: str,
    kind: str,
) -> int:
    import numpy as np

    if out_path is not None:
        _save(out_path, out, kept, failures, weights, kind)
    else:
        np.set_printoptions(precision=4, suppress=True, threshold=8)
        print(f"{kind} embedding {tuple(out.shape)} from {len(kept)} file(s), weights {weights}")
        print(out)
    return opt.ExitCode.PARTIAL if failures else opt.ExitCode.OK


def _save(
    path: Path, array: Any, files: list[str], failures: list[tuple[str, str, str]], weights: str, kind: str
) -> None:
    import numpy as np

    with opt.atomic_output(path) as tmp:
        if path.suffix.lower() == ".npz":
            np.savez(
                tmp,
                embeddings=array,
                files=np.asarray(files, dtype=str),
                weights=np.asarray(weights),
                kind=np.asarray(kind),
                failed_files=np.asarray([f[0] for f in failures], dtype=str),
                failed_error_types=np.asarray([f[1] for f in failures], dtype=str),
                failed_errors=np.asarray([f[2] for f in failures], dtype=str),
            )
        else:
            np.save(tmp, array)
    print(
        f"wrote {kind} embedding{'s' if array.ndim == 2 else ''} {tuple(array.shape)} to {path}",
        file=sys.stderr,
    )


def _records(args: argparse.Namespace) -> list[Any]:
    """Files as given (a missing one fails as an input, as before), folders expanded, then the list."""
    from ..corpus.sources import InputsError, Record, read_file_list, scan_folder

    records = []
    for item in args.files:
        records.extend(scan_folder(item) if Path(item).is_dir() else [Record(item, item)])
    if args.files_from is not None:
        try:
            records.extend(read_file_list(args.files_from))
        except InputsError as exc:
            raise opt.usage_error(f"--files-from: {exc}") from exc
    if not records:
        raise opt.usage_error("no audio files in the inputs: folders are searched for audio extensions")
    return records


def _save_parquet(path: Path, records: list[Any], embedder: Any, pipeline: Any, keep_going: bool) -> int:
    """One row per file in the corpus schema; failed files are error rows with --keep-going."""
    import shlex

    import pyarrow.parquet as pq

    from ..corpus.batch import embed_batch
    from ..corpus.schema import corpus_schema, job_metadata

    meta = job_metadata(embedder, pipeline, shlex.join(["speakerembed", *sys.argv[1:]]))
    table = embed_batch(records, embedder, pipeline, corpus_schema((), meta))
    errors = table.column("error").to_pylist()
    failed = [(r, e) for r, e in zip(records, errors, strict=True) if e is not None]
    if failed and not keep_going:
        record, error = failed[0]
        opt.say(f"error: {record.path}: {error}")
        return opt.ExitCode.FAILED
    for record, error in failed:
        opt.say(f"skipped {record.path}: {error}")
    if len(failed) == len(records):
        opt.say("error: no file could be embedded")
        return opt.ExitCode.FAILED
    with opt.atomic_output(path) as tmp:
        pq.write_table(table, tmp)
    print(f"wrote {table.num_rows} rows ({len(failed)} failed) to {path}", file=sys.stderr)
    return opt.ExitCode.PARTIAL if failed else opt.ExitCode.OK
