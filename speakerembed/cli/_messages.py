"""Library messages in the command line's terms: flags where the library names keywords.

The library's errors tell a Python caller what to pass (``weights='resemblyzer'``,
``Pipeline.min_duration_s``, ``device='cpu'``); on the command line the same advice is a flag
(``--weights resemblyzer``, ``--min-duration``, ``--device cpu``). :func:`in_cli_terms` rewrites
the first into the second, for every keyword that a command-line flag sets. Keywords that no flag
reaches are left as they are.
"""

from __future__ import annotations

import re

from ..corpus.sources import as_text

__all__ = ["FLAGS", "in_cli_terms"]

#: Library keyword (a :class:`~speakerembed.Pipeline` field or a ``SpeakerEmbedder`` argument)
#: -> the flag that sets it.
FLAGS: dict[str, str] = {
    "top_db": "--top-db",
    "min_duration_s": "--min-duration",
    "max_duration_s": "--max-duration",
    "order": "--order",
    "resampler": "--resampler",
    "weights": "--weights",
    "device": "--device",
    "precision": "--precision",
    "files_from": "--files-from",
    "manifest": "--manifest",
    "manifest_format": "--manifest-format",
    "ext": "--ext",
    "num_speakers": "--num-speakers",
    "min_speakers": "--min-speakers",
    "max_speakers": "--max-speakers",
    # corpus
    "output": "-o",
    "speakers": "--speakers",
    "shard_size": "--shard-size",
    "workers": "--workers",
    "threads": "--threads",
    "engine": "--engine",
}

# Names distinctive enough to rewrite even without a value (``lower Pipeline.min_duration_s``);
# the others are ordinary words in prose ("the device"), so they are rewritten only as
# ``name=value`` or ``Pipeline.name``.
_BARE = ("top_db", "min_duration_s", "max_duration_s")

_VALUE = r"""(?:'(?P<q1>[^']*)'|"(?P<q2>[^"]*)"|(?P<raw>[\w.:+-]*\w))"""
# Not inside another identifier (trim_top_db=), an option (--top-db) or an extra ([resemblyzer]).
_BEFORE = r"(?<![\w\-\[.])"

_CALL = re.compile(r"Pipeline\((?P<name>\w+)=" + _VALUE + r"\)")
_NO_TRIM = re.compile(_BEFORE + r"(?:Pipeline\.)?top_db=None\b")
_NO_LIMIT = re.compile(_BEFORE + r"(?:Pipeline\.)?max_duration_s=None\b")
_KEYWORD = re.compile(
    _BEFORE
    + r"(?P<prefix>Pipeline\.)?(?P<name>"
    + "|".join(sorted(FLAGS, key=len, reverse=True))
    + r")(?:=(?P<value>"
    + _VALUE
    + r"))?(?![\w(])"
)


def _value(match: re.Match[str]) -> str:
    for group in ("q1", "q2", "raw"):
        text = match.group(group)
        if text is not None:
            return text
    return ""  # pragma: no cover - the pattern always sets one group


def _keyword(match: re.Match[str]) -> str:
    name = match.group("name")
    if match.group("value") is not None:
        return f"{FLAGS[name]} {_value(match)}"
    if match.group("prefix") or name in _BARE:
        return FLAGS[name]
    return match.group(0)


def _call(match: re.Match[str]) -> str:
    name = match.group("name")
    if name not in FLAGS:
        return match.group(0)
    return f"{FLAGS[name]} {_value(match)}"


def in_cli_terms(message: str) -> str:
    r"""Rewrite the library's keyword advice in ``message`` as command-line flags.

    Parameters
    ----------
    message : str
        An error message written for Python callers.

    Returns
    -------
    str
        The message with, e.g., ``weights='resemblyzer'`` as ``--weights resemblyzer``,
        ``Pipeline.min_duration_s`` as ``--min-duration``, ``top_db=None`` as ``--no-trim`` and
        ``max_duration_s=None`` as ``no --max-duration``; file names that are not UTF-8 with
        their bytes as ``\xNN`` (:func:`~speakerembed.corpus.sources.as_text`).

    Examples
    --------
    >>> in_cli_terms("CUDA is not available here; pass device='cpu'")
    'CUDA is not available here; pass --device cpu'
    >>> in_cli_terms("lower Pipeline.min_duration_s, or raise top_db")
    'lower --min-duration, or raise --top-db'
    """
    message = _CALL.sub(_call, message)
    message = _NO_TRIM.sub("--no-trim", message)
    message = _NO_LIMIT.sub("no --max-duration", message)
    # A file name that is not UTF-8 is shown with its bytes as \xNN, on any terminal.
    return as_text(_KEYWORD.sub(_keyword, message))
