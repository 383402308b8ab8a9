"""``speakerembed clean``: flag mislabelled, off-voice and duplicated clips in a labelled dataset."""

from __future__ import annotations

import argparse
import math
import sys
from typing import TYPE_CHECKING, Any

from . import _options as opt

if TYPE_CHECKING:
    from ..analysis.clean import CleanReport

__all__ = ["add_parser", "run"]

NAME = "clean"
SUFFIXES = (".parquet", ".csv")


def _cosine(text: str) -> float:
    value = opt.parse_float(text)
    if not -1.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be a cosine in [-1, 1], got {text!r}")
    return value


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Add ``clean`` to the subcommands."""
    from ..analysis.defaults import DUPLICATE_THRESHOLD, OUTLIER_THRESHOLD

    p: argparse.ArgumentParser = sub.add_parser(
        NAME,
        help="flag mislabelled, off-voice and duplicated clips in a labelled dataset",
        description="Score every clip of a labelled dataset against its own speaker's robust "
        "centroid (leaving the clip out), the nearest other speaker and the nearest other clip, "
        "and flag outliers, clips that sound like another speaker, and near duplicates. "
        "INPUT is a corpus output (Parquet, with a speaker column) or a folder with one "
        "sub-folder per speaker. The report is sorted worst first.",
    )
    p.add_argument("input", metavar="INPUT", help="a corpus output folder, or a folder of speaker folders")
    p.add_argument(
        "-o",
        "--output",
        metavar="REPORT",
        default=None,
        help="write the whole report to REPORT.parquet or REPORT.csv; default: print the flagged clips",
    )
    p.add_argument(
        "--plot",
        metavar="FILE.png",
        default=None,
        help="draw each clip's cosine to its own speaker against the nearest other speaker, "
        "flagged clips marked (.png, .svg or .pdf; needs matplotlib)",
    )
    p.add_argument(
        "--outlier-threshold",
        type=_cosine,
        default=OUTLIER_THRESHOLD,
        metavar="COS",
        help=f"flag a clip whose cosine to its own speaker is below COS (default: {OUTLIER_THRESHOLD}, "
        "measured; see the docs)",
    )
    p.add_argument(
        "--duplicate-threshold",
        type=_cosine,
        default=DUPLICATE_THRESHOLD,
        metavar="COS",
        help="flag two clips whose cosine is at least COS as near duplicates "
        f"(default: {DUPLICATE_THRESHOLD})",
    )
    opt.add_model_options(p)
    opt.add_pipeline_options(p)
    opt.add_verbose(p)
    return p


def _fmt(value: float) -> str:
    return "" if math.isnan(value) else f"{value:.3f}"


def print_flagged(report: CleanReport, limit: int = 50) -> None:
    """Print the flagged clips, worst first, one line each."""
    c = report.columns
    flagged = report.flagged
    print(f"{int(flagged.sum())} of {len(report)} clips flagged")
    single = report.n_cannot_judge
    if single:
        print(
            f"{single} clip(s) are their speaker's only one: cannot judge their labels "
            "(cannot_judge in the report; only near duplicates are flagged among them)"
        )
    shown = 0
    for i in range(len(report)):
        if not flagged[i] or shown >= limit:
            continue
        shown += 1
        flags = []
        if c["likely_other_speaker"][i]:
            flags.append(f"likely {c['suggested_speaker'][i]}")
        if c["outlier"][i]:
            flags.append("outlier")
        if c["near_duplicate"][i]:
            flags.append(f"duplicate of {c['duplicate_of'][i]}")
        print(
            f"{c['id'][i]}\tspeaker {c['speaker'][i]}\town {_fmt(c['own_similarity'][i])}\t"
            f"nearest {c['nearest_speaker'][i]} {_fmt(c['nearest_similarity'][i])}\t{'; '.join(flags)}"
        )
    if int(flagged.sum()) > shown:
        print(f"... and {int(flagged.sum()) - shown} more; write them all with -o")


def run(args: argparse.Namespace) -> int:
    """Run ``clean``."""
    from pathlib import Path

    out_path = opt.check_output(args.output, SUFFIXES) if args.output else None
    plot_path = opt.check_plot_output(args.plot)
    if not Path(args.input).is_dir():
        raise opt.usage_error(
            f"INPUT {args.input} is not a folder; pass a corpus output or a folder of speaker folders"
        )
    pipeline = opt.pipeline_from_args(args)
    if out_path is not None:
        try:
            import pyarrow  # noqa: F401 - checked before the work, not after
        except ImportError:
            from ..errors import missing_backend

            raise missing_backend("pyarrow", "analysis", "speakerembed clean -o") from None
    from ..analysis.clean import NoSpeakersError, clean_dataset

    embedder = None
    if not any(Path(args.input).rglob("*.parquet")):
        embedder = opt.embedder_from_args(args)
    try:
        report = clean_dataset(
            args.input,
            embedder=embedder,
            pipeline=pipeline,
            outlier_threshold=args.outlier_threshold,
            duplicate_threshold=args.duplicate_threshold,
        )
    except NoSpeakersError as exc:
        raise opt.usage_error(
            f"INPUT {args.input} has no 'speaker' values ({exc.n_rows} embedded row(s), none "
            "labelled), so there are no labels to check; add them with "
            "'speakerembed corpus --manifest FILE -o OUT_DIR' (a manifest with id or path, and "
            "speaker columns), or find the speakers from the voices with 'speakerembed cluster'"
        ) from exc
    for failure in report.failures:
        opt.say(f"skipped {failure.error}")
    if out_path is not None:
        with opt.atomic_output(out_path) as tmp:
            report.write(tmp)
        print(
            f"wrote the report on {len(report)} clips ({int(report.flagged.sum())} flagged) to {out_path}",
            file=sys.stderr,
        )
    else:
        print_flagged(report)
    if plot_path is not None:
        from ..analysis.plots import plot_clean_report, save_figure

        c = report.columns
        fig = plot_clean_report(
            c["own_similarity"],
            c["nearest_similarity"],
            report.flagged,
            outlier_threshold=report.outlier_threshold,
        )
        save_figure(fig, plot_path)
        print(f"wrote the plot to {plot_path}", file=sys.stderr)
    return opt.ExitCode.PARTIAL if report.failures else opt.ExitCode.OK
