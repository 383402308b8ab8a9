"""``speakerembed windows --rate --partial-frames``."""

from __future__ import annotations

from pathlib import Path

import pytest

from speakerembed.cli import main


def test_rate_and_partial_frames_set_the_windows(
    short_utterances: list[Path], resemblyzer_weights: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = str(short_utterances[0])
    assert main(["windows", path, "--weights", "resemblyzer", "--rate", "4", "--partial-frames", "150"]) == 0
    rows = [line.split("\t") for line in capsys.readouterr().out.splitlines()[1:]]
    starts = [float(r[0]) for r in rows]
    assert starts[1] - starts[0] == pytest.approx(0.25)
    assert float(rows[0][1]) - float(rows[0][0]) == pytest.approx(1.5)
    assert main(["windows", path, "--weights", "resemblyzer"]) == 0
    default = capsys.readouterr().out.splitlines()[1:]
    assert len(default) < len(rows)


def test_a_rate_too_low_for_the_window_is_a_usage_error(short_utterances: list[Path]) -> None:
    args = ["windows", str(short_utterances[0]), "--rate", "0.5", "--partial-frames", "100"]
    assert main(args) == 2
