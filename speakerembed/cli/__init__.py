"""The ``speakerembed`` command line: one module per command, each a thin shell over a public function.

.. code-block:: text

    speakerembed embed FILES... [-o OUT.npy|OUT.npz] [--utterances] [--weights W] ...
    speakerembed similarity A [A...] --against B [B...]
    speakerembed similarity A B
    speakerembed verify TRIALS [--root DIR] [-o REPORT.json] [--scores FILE] [--plot FILE.png]
    speakerembed sim-eval META [GEN_DIR] [-o SCORES.jsonl]
    speakerembed windows FILE [-o OUT.parquet] [--plot FILE.png]
    speakerembed clean INPUT [-o REPORT] [--plot FILE.png]
    speakerembed corpus INPUTS... -o OUT_DIR [--workers N] [--engine local|ray]
    speakerembed voices enroll|identify|list|show|remove|nearest|import|pick-reference ...
    speakerembed serve [--host 127.0.0.1] [--port 8000] [--library LIB] [--api-key-file F] ...
    speakerembed export-onnx OUT.onnx [--waveform] [--weights W] [--opset N]
    speakerembed cluster CORPUS_OUT -o CLUSTERS.parquet [--threshold T] [--kaldi DIR] [--plot FILE.png]
    speakerembed diarize INPUT... [-o turns.rttm] [--num-speakers N] [--link-files] [--format F]

Exit codes (:class:`~speakerembed.cli._options.ExitCode`): 0 when everything was done, 1 when
the job could not run (weights, output, an input of a single-shot command), 2 for bad usage, 3
when a job finished but some inputs failed, 130 when interrupted. Errors are one line on
stderr, in the command line's terms (``--weights resemblyzer``, not ``weights='resemblyzer'``:
see ``speakerembed.cli._messages``); ``--verbose`` adds the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import traceback
from collections.abc import Sequence
from types import ModuleType

from ._messages import in_cli_terms
from ._options import ExitCode, UsageError

__all__ = ["COMMANDS", "ExitCode", "build_parser", "main"]

#: Command name -> module (under ``speakerembed.cli``) that defines ``add_parser`` and ``run``.
COMMANDS: dict[str, str] = {
    "embed": "embed",
    "similarity": "similarity",
    "windows": "windows",
    "clean": "clean",
    "verify": "verify",
    "sim-eval": "sim_eval",
    "corpus": "corpus",
    "voices": "voices",
    "serve": "serve",
    "export-onnx": "export_onnx",
    "cluster": "cluster",
    "diarize": "diarize",
}


def _module(name: str) -> ModuleType:
    return importlib.import_module(f".{COMMANDS[name]}", __name__)


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser (the docs use it too)."""
    from .._version import __version__

    parser = argparse.ArgumentParser(
        prog="speakerembed",
        description="Chatterbox-compatible 256-d speaker embeddings from audio files.",
        epilog="Examples:\n"
        "  speakerembed embed a.wav b.flac -o speaker.npy --weights resemblyzer\n"
        "  speakerembed embed clips/*.wav --utterances -o utts.npz\n"
        "  speakerembed similarity alice1.wav alice2.wav\n"
        "  speakerembed similarity alice*.wav --against bob*.wav\n"
        "  speakerembed verify trials.txt -o report.json --scores scores.txt\n"
        "  speakerembed sim-eval meta.lst generated/ -o sim.jsonl\n"
        "  speakerembed windows meeting.wav -o windows.parquet --plot windows.png\n"
        "  speakerembed clean speakers/ -o report.csv\n"
        "  speakerembed corpus dataset/ -o embeddings/\n"
        "  speakerembed voices enroll alice a1.wav a2.wav --library voices.db\n"
        "  speakerembed voices identify who.wav --library voices.db -o ids.jsonl\n"
        "  speakerembed serve --weights resemblyzer --port 8000\n"
        "  speakerembed export-onnx voice_encoder.onnx --weights resemblyzer\n"
        "  speakerembed cluster corpus_out/ -o clusters.parquet --kaldi data/train\n"
        "  speakerembed diarize meeting.wav -o turns.rttm --weights resemblyzer\n\n"
        "Exit codes: 0 done, 1 could not run, 2 bad usage, 3 finished with failed inputs, 130 interrupted.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"speakerembed {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        command = _module(name).add_parser(sub)
        command.set_defaults(_command_parser=command)
    return parser


def _quiet_library_log() -> None:
    # The CLI reports failures itself, one line each; keep the library's log quiet.
    log = logging.getLogger("speakerembed")
    if not any(isinstance(h, logging.NullHandler) for h in log.handlers):
        log.addHandler(logging.NullHandler())
    log.propagate = False


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _quiet_library_log()
    verbose = bool(getattr(args, "verbose", False))
    try:
        return int(_module(args.command).run(args))
    except UsageError as exc:
        args._command_parser.print_usage(sys.stderr)
        print(f"speakerembed {args.command}: error: {in_cli_terms(str(exc))}", file=sys.stderr)
        return ExitCode.USAGE
    except KeyboardInterrupt:
        print("speakerembed: interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - every error becomes one line on stderr
        from ..errors import SpeakerEmbedError

        if verbose:
            traceback.print_exc()
        known = isinstance(exc, SpeakerEmbedError)
        name = "error" if known else f"unexpected {type(exc).__name__}"
        message = in_cli_terms(str(exc).splitlines()[0]) if str(exc) else type(exc).__name__
        print(f"speakerembed: {name}: {message}", file=sys.stderr)
        if not verbose and not known:
            print("speakerembed: (run with --verbose for the traceback)", file=sys.stderr)
        return ExitCode.FAILED


if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
