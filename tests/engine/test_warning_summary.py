"""Repeated warnings are summarised: many skipped inputs log a few lines and one count (issue 17)."""

from __future__ import annotations

import logging
import threading

import numpy as np
import pytest

from speakerembed import SpeakerEmbedder
from speakerembed._engine.log_summary import FIRST_LOGGED, SkippedInputs, quiet_skips


def test_many_tiny_arrays_log_a_few_lines_and_a_count(
    embedder: SpeakerEmbedder, caplog: pytest.LogCaptureFixture
) -> None:
    rng = np.random.default_rng(3)
    tiny = [0.01 * rng.standard_normal(100).astype(np.float32) for _ in range(400)]
    with caplog.at_level(logging.WARNING, logger="speakerembed"):
        result = embedder.embed_utterances(tiny, sample_rate=16000, errors="skip")
    assert len(result.failures) == 400  # every failure is still in the result
    messages = [r.getMessage() for r in caplog.records if r.name == "speakerembed"]
    assert len(messages) == FIRST_LOGGED + 1, messages[:10]
    assert all(m.startswith("skipping input") for m in messages[:FIRST_LOGGED])
    assert messages[-1].startswith(f"skipped {400 - FIRST_LOGGED} more input(s) not shown (400 in all)")


def test_a_few_failures_are_each_logged_without_a_summary(
    embedder: SpeakerEmbedder, caplog: pytest.LogCaptureFixture
) -> None:
    tiny = [np.full(100, 0.01, dtype=np.float32)] * 2
    with caplog.at_level(logging.WARNING, logger="speakerembed"):
        embedder.embed_utterances(tiny, sample_rate=16000, errors="skip")
    messages = [r.getMessage() for r in caplog.records if r.name == "speakerembed"]
    assert [m.split(":")[0] for m in messages] == ["skipping input 0", "skipping input 1"]


def test_skipped_inputs_counts_across_threads_and_can_be_quiet(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("speakerembed.test")
    skips = SkippedInputs(log, first=3)
    with caplog.at_level(logging.WARNING, logger="speakerembed.test"):
        threads = [threading.Thread(target=skips.skipped, args=(ValueError(f"e{i}"),)) for i in range(50)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        skips.summarise()
    assert skips.n_skipped == 50
    assert len(caplog.records) == 4
    assert "47 more" in caplog.records[-1].getMessage()
    caplog.clear()
    with quiet_skips():
        quiet = SkippedInputs(log)
    with caplog.at_level(logging.WARNING, logger="speakerembed.test"):
        for i in range(10):
            quiet.skipped(ValueError(str(i)))
        quiet.summarise()
    assert quiet.n_skipped == 10
    assert not caplog.records
