"""``speakerembed embed``: one speaker embedding, or one row per file."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from . import _options as opt

__all__ = ["add_parser", "run"]

NAME = "embed"
SUFFIXES = (".npy", ".npz")


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Add ``embed`` to the subcommands."""
    p: argparse.ArgumentParser = sub.add_parser(
        NAME,
        help="embed files: one speaker embedding, or one row per file",
        description="Embed audio files. By default all files are one speaker and one (256,) "
        "speaker embedding is written; with --utterances, one row per file; with "
        "--chatterbox-conditioning, the embedding Chatterbox TTS conditions on.",
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="audio files (WAV, FLAC, Ogg, MP3, ...)")
    p.add_argument(
        "-o",
        "--output",
        metavar="OUT",
        default=None,
        help="write OUT.npy (the array) or OUT.npz (array, file names, weights, failures); "
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
    out_path = opt.check_output(args.output, SUFFIXES) if args.output else None
    pipeline = opt.pipeline_from_args(args)
    if args.chatterbox_conditioning:
        _check_conditioning_flags(args)
    embedder = opt.embedder_from_args(args)
    if args.chatterbox_conditioning:
        cond = embedder.embed_conditioning(list(args.files))
        return _output(out_path, cond, list(args.files), [], embedder.weights_info.short, "conditioning")
    files = list(args.files)
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
    from ..consolidate import utt_to_spk_embed

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
