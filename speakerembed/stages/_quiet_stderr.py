"""Keep the C decoders' own messages off the terminal.

libsndfile decodes MP3 with libmpg123, which prints lines such as ``Note: Illegal
Audio-MPEG-Header 0x... at offset 19041.`` straight to file descriptor 2 when a file has junk in
it, even when the decode succeeds. Python's ``warnings`` and ``logging`` cannot catch them, so
:func:`decoder_output_quiet` points fd 2 at a temporary file around each libsndfile call. When the
last concurrent call ends, fd 2 is restored, and whatever else was written meanwhile (by Python
code in another thread, say) is written to the real fd 2; only the decoders' lines are dropped.
Our own warnings and log records are raised outside these windows, so they go out as usual.

Redirecting fd 2 is process-wide, so the windows are counted: the first one to open redirects,
the last one to close restores, under one lock, so threads that decode at once are safe.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterator

__all__ = ["decoder_output_quiet", "is_decoder_noise"]

# libmpg123's messages (src/libmpg123/debug.h and its callers): "Note: ...", "Warning: ...",
# "Error: ...", and "[src/libmpg123/parse.c:wetwork():1349] error: ...".
_NOISE = re.compile(rb"^(?:Note|Warning|Error): |^\[[^\]\s]*(?:mpg123|mpeg|mpg)[^\]\s]*:[^\]]*\] ")

_lock = threading.Lock()
_depth = 0
_saved_fd: int | None = None
_capture_fd: int | None = None  # an unlinked temporary file, kept open for the process


def is_decoder_noise(line: bytes) -> bool:
    r"""Whether one line written to fd 2 is a C decoder's message (dropped) rather than ours.

    Examples
    --------
    >>> is_decoder_noise(b"Note: Illegal Audio-MPEG-Header 0xc5d71484 at offset 19041.\n")
    True
    >>> is_decoder_noise(b"[src/libmpg123/parse.c:wetwork():1349] error: Giving up resync\n")
    True
    >>> is_decoder_noise(b"UserWarning: something of ours\n")
    False
    """
    return bool(_NOISE.match(line))


def _flush_python_stderr() -> None:
    for stream in (sys.stderr, sys.__stderr__):
        with contextlib.suppress(Exception):
            if stream is not None:
                stream.flush()


def _open() -> None:
    global _depth, _saved_fd, _capture_fd
    with _lock:
        _depth += 1
        if _depth > 1:
            return
        try:
            if _capture_fd is None:
                # A raw descriptor, not a file object: it lives as long as the process does.
                _capture_fd, name = tempfile.mkstemp(prefix="speakerembed-stderr-")
                with contextlib.suppress(OSError):
                    os.unlink(name)
            saved = os.dup(2)
        except OSError:  # no fd 2 (a daemon) or no temporary folder: decode as is
            return
        _flush_python_stderr()
        os.dup2(_capture_fd, 2)
        _saved_fd = saved


def _read_all(fd: int) -> bytes:
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while chunk := os.read(fd, 1 << 16):
        chunks.append(chunk)
    return b"".join(chunks)


def _close() -> None:
    global _depth, _saved_fd
    with _lock:
        _depth -= 1
        if _depth > 0 or _saved_fd is None:
            return
        _flush_python_stderr()
        saved, _saved_fd = _saved_fd, None
        os.dup2(saved, 2)
        os.close(saved)
        assert _capture_fd is not None
        written = _read_all(_capture_fd)
        os.lseek(_capture_fd, 0, os.SEEK_SET)
        os.ftruncate(_capture_fd, 0)
        kept = b"".join(line for line in written.splitlines(keepends=True) if not is_decoder_noise(line))
        with contextlib.suppress(OSError):
            while kept:
                kept = kept[os.write(2, kept) :]


@contextlib.contextmanager
def decoder_output_quiet() -> Iterator[None]:
    """Within this block, the C decoders' own messages on fd 2 do not reach the terminal.

    Re-entrant and thread-safe; everything that is not a decoder's message is passed on when the
    last open block closes.
    """
    _open()
    try:
        yield
    finally:
        _close()
