"""``speakerembed diarize``: who spoke when, in each input, as RTTM, JSON lines or Parquet."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from . import _options as opt

if TYPE_CHECKING:
    from ..analysis.diarization import Diarization

__all__ = ["add_parser", "run"]

NAME = "diarize"
FORMATS = ("rttm", "json", "parquet")
SUFFIX_FORMAT = {".rttm": "rttm", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Add ``diarize`` to the subcommands."""
    p: argparse.ArgumentParser = sub.add_parser(
        NAME,
        help="find who spoke when in recordings (RTTM, JSON or Parquet turns)",
        description="Diarize each INPUT: speech detection (Silero VAD, level-normalised), "
        "1.5 s windows every 0.25 s, speaker clustering with the count estimated unless given, "
        "and a Viterbi re-segmentation. One speaker at a time: overlapped speech is not detected. "
        "Inputs run one after another; a file with no speech is reported and the job goes on "
        "(exit 3 at the end).",
        epilog="Example: speakerembed diarize meeting.wav -o turns.rttm --weights resemblyzer",
    )
    p.add_argument("inputs", nargs="*", metavar="INPUT", help="audio files")
    opt.add_files_from(p)
    p.add_argument(
        "-o",
        "--output",
        metavar="OUT",
        default=None,
        help="write the turns here (.rttm, .json for JSON lines, .parquet); default: RTTM on stdout",
    )
    p.add_argument(
        "--format", default=None, metavar="F", help="rttm, json or parquet (default: from -o's suffix)"
    )
    p.add_argument(
        "--num-speakers",
        type=opt.positive_int,
        default=None,
        metavar="N",
        help="the number of speakers, when known",
    )
    p.add_argument(
        "--min-speakers", type=opt.positive_int, default=None, metavar="N", help="at least N speakers"
    )
    p.add_argument(
        "--max-speakers", type=opt.positive_int, default=None, metavar="N", help="at most N speakers"
    )
    p.add_argument(
        "--link-files",
        action="store_true",
        help="give the same speaker the same label in every file (clusters the per-file speaker "
        "embeddings) and write the global speakers to OUT.speakers.json",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="with an .rttm or .json output that exists, skip the inputs whose uri it already has and append",
    )
    g = p.add_argument_group("windows")
    g.add_argument(
        "--window",
        type=opt.positive_float,
        default=None,
        metavar="S",
        help="window length in seconds (default: 1.5)",
    )
    g.add_argument(
        "--step",
        type=opt.positive_float,
        default=None,
        metavar="S",
        help="seconds between windows (default: 0.25)",
    )
    g.add_argument(
        "--vad-threshold",
        type=opt.positive_float,
        default=None,
        metavar="P",
        help="Silero VAD threshold (default: 0.35)",
    )
    opt.add_model_options(p)
    opt.add_verbose(p)
    return p


def _inputs(args: argparse.Namespace) -> list[str]:
    items = list(args.inputs)
    if args.files_from is not None:
        from ..corpus.sources import InputsError, read_file_list

        try:
            items.extend(str(r.path) for r in read_file_list(args.files_from))
        except InputsError as exc:
            raise opt.usage_error(f"--files-from: {exc}") from exc
    if not items:
        raise opt.usage_error("no inputs; pass audio files, or --files-from FILE")
    return items


def _format(args: argparse.Namespace) -> str:
    fmt = args.format
    if fmt is None:
        fmt = SUFFIX_FORMAT.get(Path(args.output).suffix.lower(), "rttm") if args.output else "rttm"
    if fmt not in FORMATS:
        raise opt.usage_error(f"--format {fmt} is not one of rttm, json, parquet")
    return str(fmt)


def _done_uris(path: Path, fmt: str) -> set[str]:
    if not path.exists():
        return set()
    done = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        if fmt == "rttm":
            parts = line.split()
            if len(parts) >= 2 and parts[0] == "SPEAKER":
                done.add(parts[1])
        elif line.strip():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if "error" not in row:
                done.add(str(row.get("uri")))
    return done


def _json_line(uri: str, d: Diarization | None, error: str | None) -> str:
    if d is None:
        return json.dumps({"uri": uri, "error": error}) + "\n"
    return json.dumps({"uri": uri, **json.loads(d.to_json())}) + "\n"


def _write(stream: TextIO, fmt: str, uri: str, d: Diarization | None, error: str | None) -> None:
    if fmt == "rttm":
        if d is not None:
            stream.write(d.to_rttm())
    else:
        stream.write(_json_line(uri, d, error))
    stream.flush()


def _parquet(path: Path, results: list[tuple[str, Diarization | None, str | None]]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows: dict[str, list[Any]] = {"uri": [], "start_s": [], "end_s": [], "speaker": [], "error": []}
    for uri, d, error in results:
        for t in d.turns if d is not None else [None]:
            rows["uri"].append(uri)
            rows["start_s"].append(None if t is None else t.start_s)
            rows["end_s"].append(None if t is None else t.end_s)
            rows["speaker"].append(None if t is None else t.speaker)
            rows["error"].append(error)
    table = pa.table(
        {
            "uri": pa.array(rows["uri"], pa.string()),
            "start_s": pa.array(rows["start_s"], pa.float64()),
            "end_s": pa.array(rows["end_s"], pa.float64()),
            "speaker": pa.array(rows["speaker"], pa.string()),
            "error": pa.array(rows["error"], pa.string()),
        }
    )
    with opt.atomic_output(path) as tmp:
        pq.write_table(table, tmp)


def run(args: argparse.Namespace) -> int:
    """Run ``diarize``."""
    from ..analysis.diarization import (
        DiarizationConfig,
        check_counts,
        check_unique_uris,
        diarize,
        link_files,
    )
    from ..errors import ConfigError, SpeakerEmbedError

    fmt = _format(args)
    try:
        check_counts(args.num_speakers, args.min_speakers, args.max_speakers)
    except ConfigError as exc:
        raise opt.usage_error(str(exc)) from exc
    items = _inputs(args)
    try:
        uris = check_unique_uris(items)
    except ConfigError as exc:
        raise opt.usage_error(str(exc)) from exc
    fields: dict[str, Any] = {}
    for flag, name in (("window", "window_s"), ("step", "step_s"), ("vad_threshold", "vad_threshold")):
        if getattr(args, flag) is not None:
            fields[name] = getattr(args, flag)
    try:
        config = DiarizationConfig(**fields)
    except ConfigError as exc:
        raise opt.usage_error(str(exc)) from exc
    out = opt.check_output(args.output, tuple(SUFFIX_FORMAT)) if args.output else None
    if args.resume and (out is None or fmt == "parquet" or args.link_files):
        raise opt.usage_error("--resume needs -o with an .rttm or .json output, and no --link-files")
    if fmt == "parquet" and out is None:
        raise opt.usage_error("--format parquet needs -o OUT.parquet")
    done = _done_uris(out, fmt) if (args.resume and out is not None) else set()
    embedder = opt.embedder_from_args(argparse.Namespace(**{**vars(args), **_no_pipeline()}))

    streaming = fmt != "parquet" and not args.link_files
    stream: TextIO | None = None
    if streaming:
        stream = sys.stdout if out is None else open(out, "a" if args.resume else "w", encoding="utf-8")  # noqa: SIM115
    results: list[tuple[str, Diarization | None, str | None]] = []
    failed = 0
    skipped = 0
    try:
        for item, uri in zip(items, uris, strict=True):
            if uri in done:
                skipped += 1
                continue
            try:
                d = diarize(
                    item,
                    num_speakers=args.num_speakers,
                    min_speakers=args.min_speakers,
                    max_speakers=args.max_speakers,
                    config=config,
                    embedder=embedder,
                )
                error = None
            except SpeakerEmbedError as exc:
                d, error = None, str(exc)
                failed += 1
                print(f"speakerembed diarize: {uri}: {error}", file=sys.stderr)
            if stream is not None:
                _write(stream, fmt, uri, d, error)
            else:
                results.append((uri, d, error))
    finally:
        if stream is not None and stream is not sys.stdout:
            stream.close()
    if args.link_files:
        linked, speakers = link_files([d for _, d, _ in results if d is not None])
        it = iter(linked)
        results = [(u, next(it) if d is not None else None, e) for u, d, e in results]
        table_path = out.with_suffix(".speakers.json") if out is not None else Path("speakers.json")
        with opt.atomic_output(table_path) as tmp:
            tmp.write_text(json.dumps(speakers, indent=1), encoding="utf-8")
        print(f"wrote {len(speakers)} global speakers to {table_path}", file=sys.stderr)
    if not streaming:
        if fmt == "parquet":
            assert out is not None
            _parquet(out, results)
        else:
            target = sys.stdout if out is None else open(out, "w", encoding="utf-8")  # noqa: SIM115
            try:
                for uri, d, error in results:
                    _write(target, fmt, uri, d, error)
            finally:
                if target is not sys.stdout:
                    target.close()
    if skipped:
        print(f"skipped {skipped} inputs already in {out} (--resume)", file=sys.stderr)
    if out is not None:
        print(f"diarized {len(items) - skipped - failed} of {len(items)} inputs into {out}", file=sys.stderr)
    return opt.ExitCode.PARTIAL if failed else opt.ExitCode.OK


def _no_pipeline() -> dict[str, Any]:
    """The pipeline flags ``embedder_from_args`` reads, at their defaults (diarize has its own)."""
    return {
        "order": "resample_trim",
        "resampler": "soxr_hq",
        "top_db": None,
        "no_trim": False,
        "min_duration": None,
        "max_duration": None,
        "vad": "none",
        "min_speech": None,
    }
