"""The ``speakerembed`` command line.

.. code-block:: text

    speakerembed embed FILES... [-o OUT.npy|OUT.npz] [--utterances] [--weights W] ...
    speakerembed similarity A [A...] --against B [B...]
    speakerembed similarity A B

Exit codes: 0 on success, 1 when an input or the weights fail, 2 for bad usage. Errors are one
line on stderr; ``--verbose`` adds the traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from collections.abc import Sequence
from typing import Any

__all__ = ["build_parser", "main"]

_ORDERS = ("resample_trim", "trim_resample")
_RESAMPLERS = ("soxr_hq", "kaiser_fast", "polyphase", "torchaudio")


def _add_common(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument(
        "--weights",
        default="chatterbox",
        metavar="W",
        help="chatterbox (default, from the Hugging Face hub), chatterbox-turbo, "
        "chatterbox-multilingual, resemblyzer (offline; pip install 'speakerembed[resemblyzer]'), "
        "or a local .safetensors/.pt file",
    )
    g.add_argument(
        "--device", default=None, metavar="D", help="cpu, cuda, cuda:1 or mps (default: best available)"
    )
    g.add_argument(
        "--precision", choices=("fp32", "bf16"), default="fp32", help="encoder precision (default: fp32)"
    )
    g = p.add_argument_group("pipeline")
    g.add_argument(
        "--order",
        choices=_ORDERS,
        default="resample_trim",
        help="resample then trim (default), or trim then resample",
    )
    g.add_argument(
        "--resampler", choices=_RESAMPLERS, default="soxr_hq", help="resampling method (default: soxr_hq)"
    )
    g.add_argument(
        "--top-db",
        type=float,
        default=20.0,
        metavar="DB",
        help="trim threshold in dB below the peak (default: 20)",
    )
    g.add_argument("--no-trim", action="store_true", help="do not trim leading and trailing silence")
    g.add_argument(
        "--max-duration", type=float, default=None, metavar="S", help="reject inputs longer than S seconds"
    )
    p.add_argument("-v", "--verbose", action="store_true", help="print tracebacks with errors")


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser (the docs use it too)."""
    from ._version import __version__

    parser = argparse.ArgumentParser(
        prog="speakerembed",
        description="Chatterbox-compatible 256-d speaker embeddings from audio files.",
        epilog="Examples:\n"
        "  speakerembed embed a.wav b.flac -o speaker.npy --weights resemblyzer\n"
        "  speakerembed embed clips/*.wav --utterances -o utts.npz\n"
        "  speakerembed similarity alice1.wav alice2.wav\n"
        "  speakerembed similarity alice*.wav --against bob*.wav",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"speakerembed {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    embed = sub.add_parser(
        "embed",
        help="embed files: one speaker embedding, or one row per file",
        description="Embed audio files. By default all files are one speaker and one (256,) "
        "speaker embedding is written; with --utterances, one row per file.",
    )
    embed.add_argument("files", nargs="+", metavar="FILE", help="audio files (WAV, FLAC, Ogg, MP3, ...)")
    embed.add_argument(
        "-o",
        "--output",
        metavar="OUT",
        default=None,
        help="write to OUT.npy (the array) or OUT.npz (array, file names, weights); default: print a summary",
    )
    embed.add_argument(
        "--utterances", action="store_true", help="one embedding per file instead of one speaker embedding"
    )
    embed.add_argument(
        "--keep-going",
        action="store_true",
        help="skip files that fail (each is reported on stderr) instead of stopping at the first",
    )
    _add_common(embed)

    sim = sub.add_parser(
        "similarity",
        help="cosine similarity between two files or two sets of files",
        description="Cosine similarity of two speakers: A against B, or the files before "
        "--against against the files after it. Each side is consolidated to one speaker embedding.",
    )
    sim.add_argument("a", nargs="+", metavar="A", help="file(s) of the first speaker")
    sim.add_argument("--against", nargs="+", metavar="B", default=None, help="file(s) of the second speaker")
    _add_common(sim)
    return parser


def _pipeline(args: argparse.Namespace) -> Any:
    from .config import Pipeline

    return Pipeline(
        order=args.order,
        resampler=args.resampler,
        top_db=None if args.no_trim else args.top_db,
        max_duration_s=args.max_duration,
    )


def _embedder(args: argparse.Namespace) -> Any:
    from .embedder import SpeakerEmbedder

    return SpeakerEmbedder(
        args.weights, device=args.device, precision=args.precision, pipeline=_pipeline(args)
    )


def _save(path: str, array: Any, files: Sequence[str], weights: str, kind: str) -> None:
    import numpy as np

    if path.endswith(".npz"):
        np.savez(
            path,
            embeddings=array,
            files=np.asarray(list(files)),
            weights=np.asarray(weights),
            kind=np.asarray(kind),
        )
    else:
        if not path.endswith(".npy"):
            path += ".npy"
        np.save(path, array)
    print(
        f"wrote {kind} embedding{'s' if array.ndim == 2 else ''} {tuple(array.shape)} to {path}",
        file=sys.stderr,
    )


def _cmd_embed(args: argparse.Namespace) -> int:
    import numpy as np

    embedder = _embedder(args)
    files = list(args.files)
    result = embedder.embed_utterances(files, errors="skip" if args.keep_going else "raise")
    if args.keep_going:
        for failure in result.failures:
            print(f"speakerembed: skipped {failure.error}", file=sys.stderr)
        if not len(result.indices):
            print("speakerembed: error: no file could be embedded", file=sys.stderr)
            return 1
        rows, kept = result.embeddings, [files[i] for i in result.indices]
    else:
        rows, kept = result, files
    from .consolidate import utt_to_spk_embed

    if args.utterances:
        out, kind = rows, "utterance"
    else:
        out, kind = utt_to_spk_embed(rows), "speaker"
    if args.output:
        _save(args.output, out, kept, embedder.weights_info.short, kind)
    else:
        np.set_printoptions(precision=4, suppress=True, threshold=8)
        print(
            f"{kind} embedding {tuple(out.shape)} from {len(kept)} file(s), "
            f"weights {embedder.weights_info.short}"
        )
        print(out)
    failed = args.keep_going and bool(result.failures)
    return 1 if failed else 0


def _cmd_similarity(args: argparse.Namespace) -> int:
    from .consolidate import cosine_similarity

    if args.against is None:
        if len(args.a) != 2:
            print("speakerembed: error: similarity takes two files, or A... --against B...", file=sys.stderr)
            return 2
        a_files, b_files = [args.a[0]], [args.a[1]]
    else:
        a_files, b_files = list(args.a), list(args.against)
    embedder = _embedder(args)
    a = embedder.embed_speaker(a_files)
    b = embedder.embed_speaker(b_files)
    print(f"{cosine_similarity(a, b):.4f}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    # The CLI reports skipped inputs itself, one line each; keep the library's log quiet.
    logging.getLogger("speakerembed").addHandler(logging.NullHandler())
    logging.getLogger("speakerembed").propagate = False
    try:
        if args.command == "embed":
            return _cmd_embed(args)
        return _cmd_similarity(args)
    except KeyboardInterrupt:
        print("speakerembed: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - every error becomes one line on stderr
        from .errors import SpeakerEmbedError

        if args.verbose:
            traceback.print_exc()
        name = "error" if isinstance(exc, SpeakerEmbedError) else f"unexpected {type(exc).__name__}"
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"speakerembed: {name}: {message}", file=sys.stderr)
        if not args.verbose:
            print("speakerembed: (run with --verbose for the traceback)", file=sys.stderr) if not isinstance(
                exc, SpeakerEmbedError
            ) else None
        return 1


if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
