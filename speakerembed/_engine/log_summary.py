"""Repeated warnings, summarised: the first few skipped inputs of a call, then one line with the count.

``embed_utterances(..., errors="skip")`` over 10,000 clips that are all too short would otherwise
log 10,000 lines. :class:`SkippedInputs` is the list of a call's failures; it logs the first
:data:`FIRST_LOGGED` of them as ``skipping input N: ...`` and, when the call ends,
:meth:`SkippedInputs.summarise` logs one line for the rest. The failures themselves are all kept
(the result's ``failures``). Inside :func:`quiet_skips`, a caller that reports failures in its own
terms (the pairs of ``tts_similarity``, say) turns these lines off for the calls it makes.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import threading
from collections.abc import Iterator
from typing import Any

__all__ = ["FIRST_LOGGED", "SkippedInputs", "log_skip", "quiet_skips"]

#: Skipped inputs logged one by one in a call; the rest are counted in one summary line.
FIRST_LOGGED = 5

_QUIET: contextvars.ContextVar[bool] = contextvars.ContextVar("speakerembed_quiet_skips", default=False)


@contextlib.contextmanager
def quiet_skips() -> Iterator[None]:
    """Within this block, calls made from this thread log no ``skipping input N`` lines."""
    token = _QUIET.set(True)
    try:
        yield
    finally:
        _QUIET.reset(token)


class SkippedInputs(list[Any]):
    """A call's failures, as a list, that logs the first few and summarises the rest.

    Parameters
    ----------
    logger : logging.Logger
        Where the lines go.
    first : int
        How many skipped inputs are logged one by one.

    Notes
    -----
    Create it in the calling thread: whether it is quiet (:func:`quiet_skips`) is read then.
    :meth:`skipped` may be called from any thread.
    """

    def __init__(self, logger: logging.Logger, first: int = FIRST_LOGGED) -> None:
        super().__init__()
        self._logger = logger
        self._first = first
        self._quiet = _QUIET.get()
        self._count = 0
        self._lock = threading.Lock()

    def skipped(self, error: BaseException) -> None:
        """Note one skipped input: log it while fewer than ``first`` were, else count it."""
        with self._lock:
            self._count += 1
            count = self._count
        if not self._quiet and count <= self._first:
            self._logger.warning("skipping %s", error)

    @property
    def n_skipped(self) -> int:
        """Inputs noted by :meth:`skipped`."""
        return self._count

    def summarise(self) -> None:
        """Log one line for the skipped inputs beyond the first few, if any."""
        hidden = self._count - self._first
        if hidden > 0 and not self._quiet:
            self._logger.warning(
                "skipped %d more input(s) not shown (%d in all); the result's failures list each "
                "with its error",
                hidden,
                self._count,
            )


def log_skip(failures: list[Any], logger: logging.Logger, error: BaseException) -> None:
    """Log a skipped input through ``failures`` when it summarises, else as one line of its own."""
    if isinstance(failures, SkippedInputs):
        failures.skipped(error)
    else:
        logger.warning("skipping %s", error)
