"""``speakerembed windows``: one embedding per partial window of a file, with its time."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from . import _options as opt

if TYPE_CHECKING:
    from ..analysis.per_window import WindowedEmbeddings

__all__ = ["add_parser", "run", "windows_table"]

NAME = "windows"
SUFFIXES = (".parquet",)


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Add ``windows`` to the subcommands."""
    p: argparse.ArgumentParser = sub.add_parser(
        NAME,
        help="embed each partial window of a file, with its time (speaker changes, drift)",
        description="Embed every partial window of FILE (1.6 s every 0.77 s by default) and "
        "give each its start and end in the file's own seconds, with its cosine to the whole "
        "file's embedding and to the previous window: a dip marks a change of voice.",
    )
    p.add_argument("file", metavar="FILE", help="an audio file")
    p.add_argument(
        "-o",
        "--output",
        metavar="OUT.parquet",
        default=None,
        help="write a Parquet table: start_s, end_s, embedding (256 float32), "
        "similarity_to_file, similarity_to_previous (null for the first window); "
        "default: print the times and similarities",
    )
    p.add_argument(
        "--plot",
        metavar="FILE.png",
        default=None,
        help="draw each window's cosine to the whole file and to the previous window along the "
        "file (.png, .svg or .pdf; needs matplotlib)",
    )
    p.add_argument(
        "--rate",
        type=opt.positive_float,
        default=None,
        metavar="R",
        help="windows per second (default: 1.3, Chatterbox's); 4 finds shorter speaker turns",
    )
    p.add_argument(
        "--partial-frames",
        type=opt.positive_int,
        default=None,
        metavar="N",
        help="mel frames (10 ms) per window (default: 160, 1.6 s)",
    )
    opt.add_model_options(p)
    opt.add_pipeline_options(p)
    opt.add_verbose(p)
    return p


def windows_table(result: WindowedEmbeddings) -> Any:
    """The ``pyarrow.Table`` that ``speakerembed windows -o`` writes."""
    import numpy as np
    import pyarrow as pa

    n = len(result)
    flat = pa.array(result.embeddings.astype(np.float32, copy=False).reshape(-1), type=pa.float32())
    previous = result.similarity_to_previous().tolist()
    return pa.table(
        {
            "start_s": pa.array(result.start_s, type=pa.float64()),
            "end_s": pa.array(result.end_s, type=pa.float64()),
            "embedding": pa.FixedSizeListArray.from_arrays(flat, 256),
            "similarity_to_file": pa.array(result.similarity_to_utterance(), type=pa.float32()),
            "similarity_to_previous": pa.array([None, *previous][:n], type=pa.float32()),
        }
    )


def run(args: argparse.Namespace) -> int:
    """Run ``windows``."""
    out_path = opt.check_output(args.output, SUFFIXES) if args.output else None
    plot_path = opt.check_plot_output(args.plot)
    if out_path is not None:
        try:
            import pyarrow.parquet as pq
        except ImportError:
            from ..errors import missing_backend

            raise missing_backend("pyarrow", "analysis", "speakerembed windows -o") from None
    pipeline = opt.pipeline_from_args(args)
    changes = {
        k: v for k, v in (("rate", args.rate), ("partial_frames", args.partial_frames)) if v is not None
    }
    if changes:
        import dataclasses

        from ..errors import ConfigError

        try:
            pipeline = dataclasses.replace(pipeline, **changes)
        except ConfigError as exc:
            raise opt.usage_error(str(exc)) from exc
    embedder = opt.embedder_from_args(args)
    from ..analysis.per_window import embed_windows

    result = embed_windows(args.file, embedder=embedder, pipeline=pipeline)
    if plot_path is not None:
        from ..analysis.plots import plot_windows, save_figure

        fig = plot_windows(
            result.start_s, result.end_s, result.similarity_to_utterance(), result.similarity_to_previous()
        )
        save_figure(fig, plot_path)
        print(f"wrote the plot to {plot_path}", file=sys.stderr)
    if out_path is not None:
        table = windows_table(result)
        with opt.atomic_output(out_path) as tmp:
            pq.write_table(table, tmp)
        print(f"wrote {len(result)} windows to {out_path}", file=sys.stderr)
        return opt.ExitCode.OK
    to_file = result.similarity_to_utterance()
    previous = result.similarity_to_previous()
    print("start_s\tend_s\tsimilarity_to_file\tsimilarity_to_previous")
    for i in range(len(result)):
        prev = f"{previous[i - 1]:.4f}" if i else ""
        print(f"{result.start_s[i]:.3f}\t{result.end_s[i]:.3f}\t{to_file[i]:.4f}\t{prev}")
    return opt.ExitCode.OK
