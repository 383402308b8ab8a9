"""``speakerembed cluster``: group the clips of a corpus output into speakers."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from . import _options as opt

__all__ = ["add_parser", "run"]

NAME = "cluster"
SUFFIXES = (".parquet",)


def _threshold(text: str) -> float:
    value = opt.parse_float(text)
    if not -1.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be a cosine in (-1, 1], got {text!r}")
    return value


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Add ``cluster`` to the subcommands."""
    from ..analysis.defaults import DEFAULT_THRESHOLD

    p: argparse.ArgumentParser = sub.add_parser(
        NAME,
        help="group the clips of a corpus output into speakers",
        description="Cluster the embeddings of a `speakerembed corpus` output into speakers "
        "(average linkage on cosine similarity, over a neighbour graph: 200,000 clips in "
        "minutes). Writes a Parquet table with id, path, cluster and confidence (the clip's "
        "cosine to its cluster's centroid) and prints a report of the cluster sizes. A clip "
        "unlike every cluster stays alone.",
    )
    p.add_argument("input", metavar="CORPUS_OUT", help="the output folder of `speakerembed corpus`")
    p.add_argument("-o", "--output", metavar="CLUSTERS.parquet", required=True, help="the table to write")
    p.add_argument(
        "--threshold",
        type=_threshold,
        default=DEFAULT_THRESHOLD,
        metavar="T",
        help="two groups of clips merge while the mean cosine of their pairs is at least T; "
        f"higher splits more (default: {DEFAULT_THRESHOLD}, measured on real speech; see the docs)",
    )
    p.add_argument(
        "--min-cluster-size",
        type=opt.positive_int,
        default=1,
        metavar="N",
        help="clusters with fewer than N clips get no cluster (a null in the table); default 1",
    )
    p.add_argument(
        "--kaldi",
        metavar="DIR",
        default=None,
        help="also write Kaldi's utt2spk and spk2utt into DIR (ids must have no white space)",
    )
    p.add_argument(
        "--plot",
        metavar="FILE.png",
        default=None,
        help="draw the cluster sizes and the clusters and singletons at each threshold from "
        "T-0.15 to T+0.10 (.png, .svg or .pdf; needs matplotlib)",
    )
    p.add_argument("--json", action="store_true", help="print the size report as JSON")
    opt.add_verbose(p)
    return p


def print_sizes(report: dict[str, Any], threshold: float, failed: int) -> None:
    """The size report, a few lines."""
    print(
        f"{report['clips']} clips in {report['clusters']} clusters at threshold {threshold:.2f}: "
        f"{report['singletons']} singletons, {report['unassigned']} unassigned"
        + (f"; {failed} corpus rows without an embedding left out" if failed else "")
    )
    bands = "  ".join(f"{name}: {count}" for name, count in report["bands"].items())
    print(f"clusters by size (clips)  {bands}")
    print(f"largest clusters          {', '.join(map(str, report['largest']))}")


def run(args: argparse.Namespace) -> int:
    """Run ``cluster``."""
    from pathlib import Path

    out_path = opt.check_output(args.output, SUFFIXES)
    plot_path = opt.check_plot_output(args.plot)
    if not Path(args.input).is_dir():
        raise opt.usage_error(
            f"CORPUS_OUT {args.input} is not a folder; pass the output folder of `speakerembed corpus`"
        )
    kaldi = Path(args.kaldi) if args.kaldi else None
    if kaldi is not None and kaldi.exists() and not kaldi.is_dir():
        raise opt.usage_error(f"--kaldi {args.kaldi} is a file; pass a folder")
    from ..analysis.clustering import cluster_corpus

    result = cluster_corpus(args.input, threshold=args.threshold, min_cluster_size=args.min_cluster_size)
    with opt.atomic_output(out_path) as tmp:
        result.write(tmp)
    report = result.sizes()
    if args.json:
        print(json.dumps({"threshold": result.threshold, "failed": result.failed, **report}))
    else:
        print_sizes(report, result.threshold, result.failed)
    print(f"wrote {len(result)} rows to {out_path}", file=sys.stderr)
    if kaldi is not None:
        result.write_kaldi(kaldi)
        print(f"wrote {kaldi / 'utt2spk'} and {kaldi / 'spk2utt'}", file=sys.stderr)
    if plot_path is not None:
        import numpy as np

        from ..analysis.clustering import plot_cluster_sizes, read_corpus_embeddings, threshold_sweep
        from ..analysis.plots import save_figure

        _, _, x, _ = read_corpus_embeddings(Path(args.input))
        ts = [
            t
            for t in np.round(np.arange(args.threshold - 0.15, args.threshold + 0.101, 0.025), 3)
            if -1 < t <= 1
        ]
        sweep = threshold_sweep(x, ts)
        save_figure(plot_cluster_sizes(result.labels, sweep, threshold=result.threshold), plot_path)
        print(f"wrote the plot to {plot_path}", file=sys.stderr)
    return opt.ExitCode.OK
