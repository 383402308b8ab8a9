"""``speakerembed sim-eval``: speaker similarity of TTS output to its prompts (Seed-TTS-eval's SIM)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from . import _options as opt

__all__ = ["add_parser", "run"]

NAME = "sim-eval"


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Add ``sim-eval`` to the subcommands."""
    p: argparse.ArgumentParser = sub.add_parser(
        NAME,
        help="speaker similarity of generated speech to its prompts (Seed-TTS-eval meta.lst or CSV)",
        description="Cosine similarity of each generated file to its reference, and their mean. "
        "META is Seed-TTS-eval's meta.lst ('utt|prompt_text|prompt_wav|infer_text[|gt_wav]', "
        "prompt paths relative to the list; generated files are GEN_DIR/<utt>.EXT, any audio "
        "extension unless --ext says which), or a CSV of "
        "generated,reference pairs (GEN_DIR is then not needed). The numbers come from "
        "Chatterbox's voice encoder (LSTM), NOT Seed-TTS-eval's WavLM-TDNN: do not compare them "
        "across encoders or weights.",
    )
    p.add_argument("meta", metavar="META", help="meta.lst, or a .csv of generated,reference pairs")
    p.add_argument(
        "gen_dir", metavar="GEN_DIR", nargs="?", default=None, help="folder of <utt>.wav (.flac, ...) files"
    )
    p.add_argument(
        "-o",
        "--output",
        metavar="SCORES.jsonl",
        default=None,
        help="write one JSON line per pair, and the summary to SCORES.summary.json beside it "
        "(default: the lines to stdout, the summary to stderr)",
    )
    p.add_argument(
        "--plot",
        metavar="FILE.png",
        default=None,
        help="draw the histogram of the similarities with their mean (.png, .svg or .pdf; needs matplotlib)",
    )
    p.add_argument(
        "--ext",
        metavar="EXT",
        default=None,
        help="the generated files' extension (flac, wav, ...); default: any audio extension, "
        "one file per utterance",
    )
    opt.add_model_options(p)
    opt.add_pipeline_options(p)
    opt.add_verbose(p)
    return p


def summary_path(scores: Path) -> Path:
    """``scores.jsonl`` -> ``scores.summary.json``, beside it."""
    return scores.with_name(f"{scores.stem}.summary.json")


def run(args: argparse.Namespace) -> int:
    """Run ``sim-eval``."""
    out = opt.check_output(args.output, (".jsonl",)) if args.output else None
    plot_path = opt.check_plot_output(args.plot)
    if Path(args.meta).suffix.lower() != ".csv" and args.gen_dir is None:
        raise opt.usage_error(f"{args.meta} is a meta.lst: pass GEN_DIR, the folder of generated <utt>.wav")
    if args.ext is not None and args.gen_dir is None:
        raise opt.usage_error(
            "--ext names the extension of the files in GEN_DIR; it needs a meta.lst and GEN_DIR"
        )
    if Path(args.meta).suffix.lower() == ".csv" and args.gen_dir is not None:
        raise opt.usage_error(f"{args.meta} is a CSV of pairs: GEN_DIR is not used with it; drop it")
    if args.gen_dir is not None and not Path(args.gen_dir).is_dir():
        raise opt.usage_error(f"GEN_DIR {args.gen_dir} is not a folder")
    from ..analysis.sim_eval import read_pairs, tts_similarity
    from ..errors import ConfigError

    try:
        pairs = read_pairs(args.meta, args.gen_dir, ext=args.ext)  # before the model loads
    except ConfigError as exc:  # a malformed list is bad usage, as for verify and corpus
        raise opt.usage_error(str(exc)) from exc
    pipeline = opt.pipeline_from_args(args)
    embedder = opt.embedder_from_args(args)
    report = tts_similarity(pairs, embedder=embedder, pipeline=pipeline)
    # The pairs keep their meta.lst ids.
    lines = [
        json.dumps({**scored.to_dict(), "utt": original.utt})
        for original, scored in zip(pairs, report.pairs, strict=True)
    ]
    summary = report.summary()
    summary["failures"] = [
        {"utt": original.utt, "error": scored.error}
        for original, scored in zip(pairs, report.pairs, strict=True)
        if scored.similarity is None
    ]
    summary["meta"] = str(args.meta)
    for failure in summary["failures"]:
        opt.say(f"failed {failure['utt']}: {failure['error']}")
    text = json.dumps(summary, indent=2) + "\n"
    if out is not None:
        with opt.atomic_output(out) as tmp:
            tmp.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        side = summary_path(out)
        with opt.atomic_output(side) as tmp:
            tmp.write_text(text, encoding="utf-8")
        _print_summary(summary, sys.stdout)
        opt.say(f"wrote {out} and {side}")
    else:
        for line in lines:
            print(line)
        _print_summary(summary, sys.stderr)
    if plot_path is not None and summary["n"]:
        from ..analysis.plots import plot_similarity_histogram, save_figure

        title = "Speaker similarity to the prompt (Chatterbox voice encoder)"
        fig = plot_similarity_histogram(report.similarities, label=summary["weights"], title=title)
        save_figure(fig, plot_path)
        opt.say(f"wrote {plot_path}")
    if summary["n"] == 0:
        opt.say("error: no pair could be scored")
        return opt.ExitCode.FAILED
    return opt.ExitCode.PARTIAL if summary["n_failed"] else opt.ExitCode.OK


def _print_summary(summary: dict[str, Any], stream: Any) -> None:
    if summary["n"]:
        print(
            f"speaker similarity: mean {summary['mean']:.4f}, std {summary['std']:.4f}, "
            f"n {summary['n']}, failed {summary['n_failed']}",
            file=stream,
        )
    else:
        print(f"speaker similarity: no pair scored, failed {summary['n_failed']}", file=stream)
    print(f"encoder: {summary['encoder']}, weights {summary['weights']}", file=stream)
    print(f"note: {summary['note']}", file=stream)
