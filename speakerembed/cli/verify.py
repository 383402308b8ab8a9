"""``speakerembed verify``: score a trial list; EER and minDCF when it is labelled."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from . import _options as opt

__all__ = ["add_parser", "run"]

NAME = "verify"


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Add ``verify`` to the subcommands."""
    p: argparse.ArgumentParser = sub.add_parser(
        NAME,
        help="score speaker-verification trials: EER, minDCF, per-trial scores",
        description="Score a trial list, one pair of files a line: '1|0 enroll test' (VoxCeleb), "
        "'enroll test target|nontarget' (Kaldi/WeSpeaker), or unlabelled 'enroll test'. Each file "
        "is embedded once; a trial's score is the cosine of its two embeddings. Files that fail "
        "are reported and their trials left out (exit 3).",
    )
    p.add_argument("trials", metavar="TRIALS", help="the trial list")
    p.add_argument(
        "--root",
        metavar="DIR",
        default=None,
        help="folder the trial paths are relative to (default: the list's)",
    )
    p.add_argument("-o", "--output", metavar="REPORT.json", default=None, help="write the report as JSON")
    p.add_argument(
        "--scores",
        metavar="FILE",
        default=None,
        help="write 'enroll test score [target|nontarget]', one trial a line (default for an "
        "unlabelled list: print them)",
    )
    p.add_argument(
        "--plot",
        metavar="FILE.png",
        default=None,
        help="draw the score histograms and the DET curve (.png, .svg or .pdf; needs matplotlib)",
    )
    p.add_argument(
        "--cohort",
        nargs="+",
        metavar="PATH",
        default=None,
        help="audio files or folders of other speakers: AS-normalise the scores against them",
    )
    p.add_argument(
        "--top-n",
        type=opt.positive_int,
        default=300,
        metavar="N",
        help="cohort embeddings AS-norm uses per side (default: 300)",
    )
    opt.add_model_options(p)
    opt.add_pipeline_options(p)
    opt.add_verbose(p)
    return p


def run(args: argparse.Namespace) -> int:
    """Run ``verify``."""
    report_path = opt.check_output(args.output, (".json",)) if args.output else None
    scores_path = (
        opt.check_output(args.scores, (".txt", ".tsv", ".scores", ""), "--scores") if args.scores else None
    )
    plot_path = opt.check_plot_output(args.plot)
    if args.top_n < 2:
        raise opt.usage_error(f"--top-n must be at least 2, got {args.top_n}")
    if args.root is not None and not Path(args.root).is_dir():
        raise opt.usage_error(f"--root {args.root} is not a folder")
    from ..analysis.verify import read_trials, verify_trials
    from ..errors import ConfigError

    try:
        trials = read_trials(args.trials)  # a malformed list fails before the model loads
    except ConfigError as exc:  # a list that cannot be read is bad usage, as a bad --manifest is
        raise opt.usage_error(str(exc)) from exc
    pipeline = opt.pipeline_from_args(args)
    embedder = opt.embedder_from_args(args)
    report = verify_trials(
        trials,
        root=args.root if args.root is not None else Path(args.trials).resolve().parent,
        embedder=embedder,
        pipeline=pipeline,
        cohort=args.cohort,
        top_n=args.top_n,
    )
    for path, error in report.failed_files.items():
        opt.say(f"failed {path}: {error}")
    data = report.to_dict()
    data["trials"] = str(args.trials)
    if report_path is not None:
        with opt.atomic_output(report_path) as tmp:
            tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    if scores_path is not None:
        with opt.atomic_output(scores_path) as tmp:
            report.write_scores(tmp)
    if scores_path is None and report.labels is None:
        print("\n".join(report.score_lines()))  # unlabelled: the scores are the answer
    _print_summary(report, data)
    if plot_path is not None:
        if report.eer is None:
            opt.say("--plot: no plot, the trials need both same-speaker and different-speaker labels")
        else:
            _plot(report, plot_path)
    wrote = [str(p) for p in (report_path, scores_path, plot_path) if p is not None and p.exists()]
    if wrote:
        opt.say(f"wrote {', '.join(wrote)}")
    return opt.ExitCode.PARTIAL if report.failed_files or report.n_excluded else opt.ExitCode.OK


def _print_summary(report: Any, data: dict[str, Any]) -> None:
    n = data["n_trials"]
    print(f"{n} trials scored ({report.score_kind}), weights {report.weights}")
    if report.eer is not None:
        print(f"EER {100 * report.eer:.2f}% at threshold {report.eer_threshold:.4f}")
        for p, (value, threshold) in report.min_dcf.items():
            print(f"minDCF(p_target={p:g}) {value:.4f} at threshold {threshold:.4f}")
        print(f"{report.n_target} same-speaker, {report.n_nontarget} different-speaker trials")
    elif report.labels is not None:
        print("no EER: the trials need both same-speaker and different-speaker labels")
    if report.n_excluded:
        print(f"{report.n_excluded} trial(s) left out: {len(report.failed_files)} file(s) failed")


def _plot(report: Any, path: Path) -> None:
    from ..analysis.plots import plot_verification, save_figure

    fig = plot_verification(report.scores, report.labels)  # at the EER threshold
    save_figure(fig, path)
