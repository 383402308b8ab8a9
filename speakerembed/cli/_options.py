"""Options shared by the commands, defined once, and the helpers every command uses.

Usage errors (a value out of range, an unknown device, contradictory flags, an output the
command cannot write) exit with :attr:`ExitCode.USAGE` before any audio is read, with a message
that names the flag as it is spelled on the command line.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import enum
import os
import re
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args

from ..config import Order, Pipeline, Precision, Resampler, Vad

if TYPE_CHECKING:
    from ..embedder import SpeakerEmbedder

__all__ = [
    "ExitCode",
    "add_model_options",
    "add_pipeline_options",
    "atomic_output",
    "check_output",
    "embedder_from_args",
    "pipeline_from_args",
    "usage_error",
]

# The choices and defaults come from config's Literals and Pipeline's fields, typed once there.
ORDERS: tuple[str, ...] = get_args(Order)
RESAMPLERS: tuple[str, ...] = get_args(Resampler)
PRECISIONS: tuple[str, ...] = get_args(Precision)
VADS: tuple[str, ...] = ("none", *get_args(Vad))
_DEFAULTS: dict[str, Any] = {f.name: f.default for f in dataclasses.fields(Pipeline)}
_DEVICE = re.compile(r"^(cpu|mps|cuda(:\d+)?)$")


class ExitCode(enum.IntEnum):
    """The exit codes of every ``speakerembed`` command."""

    #: Everything asked for was done.
    OK = 0
    #: The job could not run: weights, output, or (for single-shot commands) an input failed.
    FAILED = 1
    #: Bad usage: unknown flag, value out of range, contradictory flags, unwritable output type.
    USAGE = 2
    #: The job finished, but some inputs failed; they are recorded in the output.
    PARTIAL = 3
    #: Interrupted (Ctrl-C); finished work is kept, nothing partial is written.
    INTERRUPTED = 130


class UsageError(Exception):
    """A usage error found after parsing (exit code 2)."""


def usage_error(message: str) -> UsageError:
    """A usage error to raise from a command; :func:`speakerembed.cli.main` exits 2 with it."""
    return UsageError(message)


# -- value types, so argparse reports a bad value against its flag -------------------------------


def positive_float(text: str) -> float:
    """A finite number > 0."""
    value = parse_float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a number greater than 0, got {text!r}")
    return value


def non_negative_float(text: str) -> float:
    """A finite number >= 0."""
    value = parse_float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be a number of at least 0, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """An integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text!r}")
    return value


def non_negative_int(text: str) -> int:
    """An integer >= 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, got {text!r}")
    return value


def parse_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def device(text: str) -> str:
    """cpu, cuda, cuda:N or mps."""
    if not _DEVICE.match(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a device; use cpu, cuda, cuda:N or mps")
    return text


# -- option groups ---------------------------------------------------------------------------


def add_model_options(p: argparse.ArgumentParser) -> None:
    """--weights, --device, --precision, --threads."""
    g = p.add_argument_group("model")
    g.add_argument(
        "--weights",
        default="chatterbox",
        metavar="W",
        help="chatterbox (default, from the Hugging Face hub), chatterbox-turbo, "
        "chatterbox-multilingual, resemblyzer (offline; pip install --no-deps resemblyzer), "
        "or a local .safetensors/.pt file",
    )
    g.add_argument(
        "--device",
        type=device,
        default=None,
        metavar="D",
        help="cpu, cuda, cuda:N or mps (default: best available)",
    )
    g.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="fp32",
        help="encoder precision (default: fp32); auto picks bf16 where the hardware runs it "
        "faster (GPUs with bf16, CPUs with avx512_bf16 or AMX) and fp32 elsewhere",
    )
    g.add_argument(
        "--threads",
        type=positive_int,
        default=None,
        metavar="N",
        help="torch threads for the encoder (default: torch's choice, one per core)",
    )


def add_pipeline_options(p: argparse.ArgumentParser) -> None:
    """--order, --resampler, --top-db, --no-trim, --min-duration, --max-duration, --vad, --min-speech."""
    g = p.add_argument_group("pipeline")
    g.add_argument(
        "--order",
        choices=ORDERS,
        default=_DEFAULTS["order"],
        help="resample then trim (default), or trim then resample",
    )
    g.add_argument(
        "--resampler",
        choices=RESAMPLERS,
        default=_DEFAULTS["resampler"],
        help=f"resampling method (default: {_DEFAULTS['resampler']})",
    )
    g.add_argument(
        "--top-db",
        type=positive_float,
        default=None,
        metavar="DB",
        help="trim threshold in dB below the peak (default: 20)",
    )
    g.add_argument("--no-trim", action="store_true", help="do not trim leading and trailing silence")
    g.add_argument(
        "--min-duration",
        type=non_negative_float,
        default=None,
        metavar="S",
        help="refuse inputs with less than S seconds left after trimming (default: 0.25)",
    )
    g.add_argument(
        "--max-duration",
        type=positive_float,
        default=None,
        metavar="S",
        help="refuse inputs longer than S seconds (default: no limit)",
    )
    g.add_argument(
        "--vad",
        choices=VADS,
        default="none",
        help="none (default): trim leading and trailing silence, as Chatterbox does; silero: keep "
        "only the speech Silero VAD finds (pip install 'speakerembed[vad]')",
    )
    g.add_argument(
        "--min-speech",
        type=non_negative_float,
        default=None,
        metavar="S",
        help="with --vad silero, refuse inputs with less than S seconds of speech (default: 0.5)",
    )


def add_files_from(p: argparse.ArgumentParser) -> None:
    """--files-from: a file of input paths, one a line (``-`` reads standard input)."""
    p.add_argument(
        "--files-from",
        metavar="FILE",
        default=None,
        help="a file of paths, one a line; - reads standard input",
    )


def add_verbose(p: argparse.ArgumentParser) -> None:
    """-v/--verbose."""
    p.add_argument("-v", "--verbose", action="store_true", help="print tracebacks with errors")


# -- building library objects from the flags ------------------------------------------------------


def pipeline_from_args(args: argparse.Namespace) -> Pipeline:
    """The :class:`~speakerembed.Pipeline` the flags describe; contradictions are usage errors."""
    from ..errors import ConfigError

    if args.no_trim and args.top_db is not None:
        raise usage_error("--no-trim and --top-db contradict each other; pass one of them")
    fields: dict[str, Any] = {
        "order": args.order,
        "resampler": args.resampler,
        "top_db": None if args.no_trim else (args.top_db if args.top_db is not None else 20.0),
        "max_duration_s": args.max_duration,
    }
    if args.min_duration is not None:
        fields["min_duration_s"] = args.min_duration
    if getattr(args, "vad", "none") != "none":
        fields["vad"] = args.vad
    if getattr(args, "min_speech", None) is not None:
        if fields.get("vad") is None:
            raise usage_error("--min-speech needs --vad silero; pass both, or neither")
        fields["min_speech_s"] = args.min_speech
    if (
        args.max_duration is not None
        and args.min_duration is not None
        and args.max_duration < args.min_duration
    ):
        raise usage_error(
            f"--max-duration {args.max_duration:g} is below --min-duration {args.min_duration:g}; "
            "no input could pass both"
        )
    try:
        return Pipeline(**fields)
    except ConfigError as exc:  # pragma: no cover - the flag types check every value first
        raise usage_error(str(exc)) from exc


def apply_threads(args: argparse.Namespace) -> None:
    """Apply --threads to torch (loaded here, not at parse time)."""
    if getattr(args, "threads", None):
        import torch

        torch.set_num_threads(args.threads)


def embedder_from_args(args: argparse.Namespace) -> SpeakerEmbedder:
    """A :class:`~speakerembed.SpeakerEmbedder` from the model and pipeline flags.

    The weights are found first, before torch is imported, so that missing weights (offline,
    say) are reported within a second or two.
    """
    from ..weights import resolve_weights

    resolve_weights(args.weights)
    from ..embedder import SpeakerEmbedder

    apply_threads(args)
    return SpeakerEmbedder(
        args.weights, device=args.device, precision=args.precision, pipeline=pipeline_from_args(args)
    )


# -- outputs ---------------------------------------------------------------------------------


def check_output(path: str, suffixes: Sequence[str], flag: str = "-o") -> Path:
    """Check an output file before any work: a known suffix, and a folder we can write in.

    The folder is created if it does not exist. Returns the path.
    """
    out = Path(path)
    if out.suffix.lower() not in suffixes:
        known = ", ".join(suffixes)
        raise usage_error(
            f"{flag} {path}: cannot write a {out.suffix or 'suffix-less'} file; use one of {known}"
        )
    if out.is_dir():
        raise usage_error(
            f"{flag} {path} is a folder; pass a file name ending in one of {', '.join(suffixes)}"
        )
    folder = out.parent if str(out.parent) else Path(".")
    for parent in (folder, *folder.parents):
        if parent.exists() and not parent.is_dir():
            raise usage_error(f"{flag} {path}: {parent} is a file, not a folder; choose another {flag}")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise usage_error(f"{flag} {path}: cannot create the folder {folder} ({exc.strerror})") from exc
    # os.access() says yes to root everywhere, and knows nothing of read-only mounts or /proc:
    # creating (and removing) a file is the only test that holds.
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".probe", dir=folder)
    except OSError as exc:
        raise usage_error(
            f"{flag} {path}: cannot write in the folder {folder} ({exc.strerror}); choose another {flag}"
        ) from exc
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(probe)
    return out


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


#: Picture formats that ``--plot`` writes (matplotlib's own, by suffix).
PLOT_SUFFIXES = (".png", ".svg", ".pdf")


def check_plot_output(path: str | None) -> Path | None:
    """Check ``--plot FILE`` before any work: a picture suffix, a writable folder, and matplotlib."""
    if not path:
        return None
    out = check_output(path, PLOT_SUFFIXES, "--plot")
    import importlib.util

    if importlib.util.find_spec("matplotlib") is None:
        raise usage_error("--plot needs matplotlib: pip install 'speakerembed[plot]'")
    return out


@contextlib.contextmanager
def atomic_output(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed to ``path`` atomically.

    An error or Ctrl-C removes the temporary file, so ``path`` is either the old file or the
    complete new one, never a partial one.
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{path.suffix}", dir=path.parent or ".")
    os.close(fd)
    try:
        yield Path(tmp)
        # mkstemp makes the file private (0600); give it the mode a plain open() would have.
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def say(message: str) -> None:
    """One line on stderr, prefixed with the program's name, with flags for library keywords."""
    from ._messages import in_cli_terms

    print(f"speakerembed: {in_cli_terms(message)}", file=sys.stderr)
