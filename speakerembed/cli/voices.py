"""``speakerembed voices``: a voice library on the command line (a shell over :mod:`speakerembed.voices`).

.. code-block:: text

    speakerembed voices enroll NAME CLIP... --library LIB [--replace] [--conditioning]
    speakerembed voices identify CLIP... --library LIB [--files-from F] [-o ids.jsonl] [--top-k K]
    speakerembed voices list|show NAME|remove NAME|nearest NAME --library LIB
    speakerembed voices import OUT.speakers.parquet --library LIB [--replace]
    speakerembed voices pick-reference CLIP... [-o best.json] [--for chatterbox|chatterbox-turbo]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import _options as opt

if TYPE_CHECKING:
    from ..voices import VoiceLibrary

__all__ = ["add_parser", "run"]

NAME = "voices"


def _library_options(p: argparse.ArgumentParser, *, weights: bool = True) -> None:
    p.add_argument(
        "--library",
        "-l",
        required=True,
        metavar="LIB",
        help="the library: a file path (SQLite) or a postgresql:// URL",
    )
    if weights:
        p.add_argument(
            "--weights",
            default=None,
            metavar="W",
            help="weights to embed with (default: the library's; a new library: chatterbox); "
            "resemblyzer works offline",
        )
        p.add_argument("--device", type=opt.device, default=None, metavar="D", help="cpu, cuda, cuda:N or mps")
    opt.add_verbose(p)


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Add ``voices`` and its subcommands."""
    p: argparse.ArgumentParser = sub.add_parser(
        NAME,
        help="a voice library: enroll, identify (open-set), list, show, remove, nearest, pick-reference",
        description="Named voices in a database (SQLite file or PostgreSQL URL), all embedded with one "
        "set of weights. identify accepts the best voice only above a threshold set for a "
        "false-alarm rate per query against the whole library (default 1%%).",
    )
    verbs = p.add_subparsers(dest="verb", metavar="VERB", required=True)

    e = verbs.add_parser("enroll", help="embed a speaker's clips and store them as one voice")
    e.add_argument("name", metavar="NAME")
    e.add_argument("clips", nargs="+", metavar="CLIP")
    e.add_argument("--replace", action="store_true", help="overwrite a voice of that name")
    e.add_argument(
        "--conditioning",
        action="store_true",
        help="also store the Chatterbox conditioning embedding of the clips",
    )
    _library_options(e)

    i = verbs.add_parser("identify", help="who is speaking in each clip (or nobody enrolled)")
    i.add_argument("clips", nargs="*", metavar="CLIP")
    opt.add_files_from(i)
    i.add_argument("-o", "--output", metavar="IDS.jsonl", default=None, help="write JSON lines here (default: print)")
    i.add_argument("--top-k", type=opt.positive_int, default=5, metavar="K", help="candidates per clip (default 5)")
    i.add_argument(
        "--false-alarm",
        type=opt.positive_float,
        default=None,
        metavar="P",
        help="chance per clip of accepting a speaker who is not enrolled (default 0.01)",
    )
    _library_options(i)

    ls = verbs.add_parser("list", help="the voices' names, one a line")
    _library_options(ls, weights=False)

    s = verbs.add_parser("show", help="one voice: clips, weights, dates, as JSON")
    s.add_argument("name", metavar="NAME")
    _library_options(s, weights=False)

    r = verbs.add_parser("remove", help="remove a voice")
    r.add_argument("name", metavar="NAME")
    _library_options(r, weights=False)

    n = verbs.add_parser("nearest", help="the voices most like a voice")
    n.add_argument("name", metavar="NAME")
    n.add_argument("-k", type=opt.positive_int, default=5, metavar="K", help="how many (default 5)")
    _library_options(n, weights=False)

    im = verbs.add_parser("import", help="load a `corpus --speakers` table (OUT.speakers.parquet)")
    im.add_argument("table", metavar="SPEAKERS.parquet")
    im.add_argument("--replace", action="store_true", help="overwrite voices of the same names")
    im.add_argument(
        "--weights-sha256",
        default=None,
        metavar="SHA",
        help="the weights' sha256, where the table's corpus metadata is not at hand",
    )
    _library_options(im)

    pr = verbs.add_parser("pick-reference", help="the best clip of a voice for Chatterbox, and where to cut it")
    pr.add_argument("clips", nargs="+", metavar="CLIP")
    pr.add_argument("-o", "--output", metavar="BEST.json", default=None, help="write the ranking as JSON")
    pr.add_argument(
        "--for",
        dest="target",
        choices=("chatterbox", "chatterbox-turbo"),
        default="chatterbox",
        help="the TTS: chatterbox reads 6 s and 10 s; chatterbox-turbo 15 s and 10 s, at least 5 s",
    )
    pr.add_argument("--library", "-l", default=None, metavar="LIB", help="compare with a voice of this library")
    pr.add_argument("--voice", default=None, metavar="NAME", help="the voice in --library (default: leave one out)")
    pr.add_argument("--weights", default=None, metavar="W", help="weights (default: the library's, or chatterbox)")
    pr.add_argument("--device", type=opt.device, default=None, metavar="D", help="cpu, cuda, cuda:N or mps")
    opt.add_verbose(pr)
    return p


def _open(args: argparse.Namespace, *, create: bool) -> VoiceLibrary:
    from ..voices import VoiceLibrary

    location = args.library
    if not location.startswith(("postgresql://", "postgres://")) and not create and not Path(location).exists():
        from ..errors import LibraryError

        raise LibraryError(f"no library at {location}; make one with: speakerembed voices enroll NAME CLIP... --library {location}")
    return VoiceLibrary(location, weights=getattr(args, "weights", None), device=getattr(args, "device", None))


def run(args: argparse.Namespace) -> int:
    """Run ``voices``."""
    verb = args.verb
    if verb == "pick-reference":
        return _pick(args)
    if verb == "identify":
        out = opt.check_output(args.output, (".jsonl", ".json")) if args.output else None
        if args.false_alarm is not None and not args.false_alarm < 1:
            raise opt.usage_error(f"--false-alarm must be below 1, such as 0.01; got {args.false_alarm:g}")
        if not args.clips and args.files_from is None:
            raise opt.usage_error("no clips: pass CLIP... or --files-from FILE")
        with _open(args, create=False) as lib:
            return _identify(args, lib, out)
    with _open(args, create=verb in ("enroll", "import")) as lib:
        if verb == "enroll":
            return _enroll(args, lib)
        if verb == "import":
            n = lib.import_speakers(args.table, replace=args.replace, weights_sha256=args.weights_sha256)
            opt.say(f"imported {n} voices into {lib.location} ({len(lib)} in all)")
            return opt.ExitCode.OK
        if verb == "list":
            names = lib.names()
            print("\n".join(names)) if names else opt.say(f"library {lib.location} is empty")
            return opt.ExitCode.OK
        if verb == "show":
            print(json.dumps(lib.get(args.name).to_dict(), indent=2))
            return opt.ExitCode.OK
        if verb == "remove":
            lib.remove(args.name)
            opt.say(f"removed {args.name!r} from {lib.location}")
            return opt.ExitCode.OK
        if verb == "nearest":
            for m in lib.nearest(args.name, args.k):
                print(f"{m.voice}\t{m.score:.4f}")
            return opt.ExitCode.OK
    raise opt.usage_error(f"unknown verb {verb!r}")  # pragma: no cover - argparse limits the choices


def _enroll(args: argparse.Namespace, lib: VoiceLibrary) -> int:
    from ..errors import ConfigError

    try:
        voice = lib.enroll(args.name, args.clips, replace=args.replace, conditioning=args.conditioning)
    except ConfigError as exc:
        if "replace=True" in str(exc):
            raise ConfigError(str(exc).replace("pass replace=True", "pass --replace")) from None
        raise
    opt.say(f"enrolled {voice.name!r} from {len(voice.clips)} clip(s) into {lib.location} ({len(lib)} voices)")
    return opt.ExitCode.OK


def _identify(args: argparse.Namespace, lib: VoiceLibrary, out: Path | None) -> int:
    from ..corpus.sources import InputsError, read_file_list

    paths = list(args.clips)
    if args.files_from is not None:
        try:
            paths += [r.path for r in read_file_list(args.files_from)]
        except InputsError as exc:
            raise opt.usage_error(f"--files-from: {exc}") from exc
    result = lib.embedder().embed_utterances(paths, pipeline=lib.pipeline, errors="skip")
    answers = lib.identify_embeddings(result.embeddings, top_k=args.top_k, false_alarm=args.false_alarm)
    rows: list[dict[str, Any]] = [{} for _ in paths]
    for index, answer in zip(result.indices, answers):
        rows[int(index)] = {"input": paths[int(index)], **answer.to_dict()}
    for failure in result.failures:
        rows[failure.index] = {
            "input": paths[failure.index],
            "voice": None,
            "score": None,
            "candidates": [],
            "error": str(failure.error) if hasattr(failure, "error") else str(failure),
        }
    text = "".join(json.dumps(row) + "\n" for row in rows)
    if out is not None:
        with opt.atomic_output(out) as tmp:
            tmp.write_text(text, encoding="utf-8")
        accepted = sum(1 for row in rows if row.get("voice"))
        opt.say(f"wrote {out}: {accepted} of {len(rows)} clips matched a voice")
    else:
        sys.stdout.write(text)
    for failure in result.failures:
        opt.say(f"failed {paths[failure.index]}: {rows[failure.index]['error']}")
    return opt.ExitCode.PARTIAL if result.failures else opt.ExitCode.OK


def _pick(args: argparse.Namespace) -> int:
    from ..voices import pick_reference

    out = opt.check_output(args.output, (".json",)) if args.output else None
    if args.voice is not None and args.library is None:
        raise opt.usage_error("--voice needs --library LIB, the library the voice is in")
    voice = None
    embedder = None
    if args.library is not None:
        with _open(args, create=False) as lib:
            if args.voice is not None:
                voice = lib.get(args.voice).embedding
            embedder = lib.embedder()
    if embedder is None:
        from ..api import get_embedder

        embedder = get_embedder(args.weights or "chatterbox", device=args.device)
    choice = pick_reference(args.clips, target=args.target, voice=voice, embedder=embedder)
    data = choice.to_dict()
    if out is not None:
        with opt.atomic_output(out) as tmp:
            tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    print(f"{choice.clip}\tstart {choice.start_s:.2f} s\tcut {choice.cut_s:.2f} s")
    for reason in choice.reasons:
        print(f"  {reason}")
    if out is not None:
        opt.say(f"wrote {out}")
    return opt.ExitCode.OK
