"""Progress of a corpus job: a tqdm bar on a terminal, a log line about every 10 s elsewhere.

The counts (files done, failures, audio seconds) are kept here too, whatever is shown, so that
the final report and the display agree.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any, Literal, TextIO

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["LOG_INTERVAL_S", "MAX_FAILURES_SHOWN", "Progress", "ProgressMode"]

ProgressMode = Literal["auto", "bar", "log", "off"]
"""``"auto"``: a bar on a terminal, log lines otherwise; ``"off"``: nothing but errors."""

#: Seconds between two log lines when the output is not a terminal.
LOG_INTERVAL_S = 10.0
#: Failures printed one by one, and kept in the report; later ones are only counted.
MAX_FAILURES_SHOWN = 20


def _hms(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class Progress:
    """Count the rows of a job as they are written, and show it.

    Parameters
    ----------
    total : int
        Inputs this run will process.
    mode : {"auto", "bar", "log", "off"}
        How to show progress; see :data:`ProgressMode`.
    stream : text stream or None
        Where to show it (default: standard error).
    interval_s : float
        Seconds between log lines.
    """

    def __init__(
        self,
        total: int,
        mode: ProgressMode = "auto",
        stream: TextIO | None = None,
        interval_s: float = LOG_INTERVAL_S,
    ) -> None:
        self.total = total
        self.stream = stream if stream is not None else sys.stderr
        if mode == "auto":
            isatty = getattr(self.stream, "isatty", None)
            mode = "bar" if callable(isatty) and isatty() else "log"
        self.mode = mode
        self.interval_s = interval_s
        self.done = 0
        self.failed = 0
        self.audio_s = 0.0
        self.failures: list[tuple[str, str]] = []
        self.start = time.perf_counter()
        self._last_log = self.start
        self._bar: Any = None
        if mode == "bar" and total:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, unit="file", file=self.stream, dynamic_ncols=True, smoothing=0.05)

    @property
    def wall_s(self) -> float:
        """Seconds since the job started."""
        return time.perf_counter() - self.start

    def _summary(self) -> str:
        wall = self.wall_s
        speed = self.audio_s / wall if wall > 0 else 0.0
        return f"{self.audio_s / 3600:.2f} h audio, {speed:.0f}x real time, {self.failed} failed"

    def update(self, table: pa.Table) -> None:
        """Count a batch of written rows (in the corpus schema)."""
        import pyarrow.compute as pc

        n = table.num_rows
        errors = table.column("error")
        n_failed = n - errors.null_count
        self.done += n
        self.failed += n_failed
        audio = pc.sum(table.column("duration_s")).as_py()
        self.audio_s += float(audio or 0.0)
        if n_failed:
            ids = table.column("id").to_pylist()
            for rid, err in zip(ids, errors.to_pylist(), strict=True):
                if err is None:
                    continue
                if len(self.failures) < MAX_FAILURES_SHOWN:
                    self.failures.append((rid, err))
                    self._say(f"failed {rid}: {err}")
                elif len(self.failures) == MAX_FAILURES_SHOWN:
                    self.failures.append(("", ""))  # a marker: the rest are only counted
                    self._say("more failures are not shown; the summary says how to list them")
        if self._bar is not None:
            self._bar.set_postfix_str(self._summary(), refresh=False)
            self._bar.update(n)
        elif self.mode == "log":
            now = time.perf_counter()
            if now - self._last_log >= self.interval_s:
                self._last_log = now
                self._log()

    def _log(self) -> None:
        wall = self.wall_s
        eta = wall / self.done * (self.total - self.done) if self.done else 0.0
        print(
            f"speakerembed: {self.done}/{self.total} files, {self._summary()}, "
            f"elapsed {_hms(wall)}, ETA {_hms(eta)}",
            file=self.stream,
            flush=True,
        )

    def _say(self, message: str) -> None:
        if self.mode == "off":
            return
        if self._bar is not None:
            self._bar.write(f"speakerembed: {message}", file=self.stream)
        else:
            print(f"speakerembed: {message}", file=self.stream, flush=True)

    def shown_failures(self) -> list[tuple[str, str]]:
        """The first :data:`MAX_FAILURES_SHOWN` failures: (id, error)."""
        return [f for f in self.failures if f[0]]

    def close(self) -> None:
        """Close the bar, or log the last line."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self.mode == "log" and self.done:
            self._log()
