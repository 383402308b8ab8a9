"""``speakerembed similarity``: cosine between two files or two sets of files."""

from __future__ import annotations

import argparse
from typing import Any

from . import _options as opt

__all__ = ["add_parser", "run"]

NAME = "similarity"


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Add ``similarity`` to the subcommands."""
    p: argparse.ArgumentParser = sub.add_parser(
        NAME,
        help="cosine similarity between two files or two sets of files",
        description="Cosine similarity of two speakers: A against B, or the files before "
        "--against against the files after it. Each side is consolidated to one speaker embedding.",
    )
    p.add_argument("a", nargs="+", metavar="A", help="file(s) of the first speaker")
    p.add_argument("--against", nargs="+", metavar="B", default=None, help="file(s) of the second speaker")
    opt.add_model_options(p)
    opt.add_pipeline_options(p)
    opt.add_verbose(p)
    return p


def run(args: argparse.Namespace) -> int:
    """Run ``similarity``."""
    from ..errors import SpeakerEmbedError
    from ..stages.consolidate import cosine_similarity

    if args.against is None:
        if len(args.a) != 2:
            raise opt.usage_error("similarity takes two files, or A... --against B...")
        a_files, b_files = [args.a[0]], [args.a[1]]
    else:
        a_files, b_files = list(args.a), list(args.against)
    opt.pipeline_from_args(args)
    embedder = opt.embedder_from_args(args)
    sides = {}
    for side, files in (("A", a_files), ("B", b_files)):
        try:
            sides[side] = embedder.embed_speaker(files)
        except SpeakerEmbedError as exc:
            exc.message = f"side {side}: {exc}"
            exc.source = None
            raise
    print(f"{cosine_similarity(sides['A'], sides['B']):.4f}")
    return opt.ExitCode.OK
