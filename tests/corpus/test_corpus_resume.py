"""Resume: a corpus job run again skips what is done, refuses other settings, survives SIGKILL.

The corpus and its references are built in ``conftest.py``, from ``_corpus_data.py``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from _corpus_data import AUDIO, BAD, GOOD, ROOT, _read, _reference  # noqa: E402

from speakerembed import Pipeline, SpeakerEmbedder, embed_corpus  # noqa: E402

# -- resume -----------------------------------------------------------------------------------


def test_rerun_skips_done_ids_and_retry_failed_runs_errors_again(
    corpus: Path, embedder: SpeakerEmbedder, tmp_path: Path
) -> None:
    work = tmp_path / "c"
    shutil.copytree(corpus / "bob", work / "bob")
    shutil.copytree(corpus / "bad", work / "bad")
    out = tmp_path / "out"
    first = embed_corpus(work, out, embedder=embedder, shard_size=3, progress="off")
    assert (first.embedded, first.failed) == (6, 2)
    shards = sorted(out.glob("part-*.parquet"))
    again = embed_corpus(work, out, embedder=embedder, shard_size=3, progress="off")
    assert (again.embedded, again.failed, again.skipped, again.previously_failed) == (0, 0, 8, 2)
    assert sorted(out.glob("part-*.parquet")) == shards
    # Repair one bad file, then retry the failures: each id is still there exactly once.
    shutil.copy(AUDIO / "carol_1.wav", work / "bad" / "text.wav")
    retry = embed_corpus(work, out, embedder=embedder, shard_size=3, retry_failed=True, progress="off")
    assert (retry.retried, retry.embedded, retry.failed) == (2, 1, 1)
    rows = _read(out)
    assert len(rows) == 8
    assert rows["bad/text.wav"]["error"] is None
    ref = _reference(embedder, str(work / "bad" / "text.wav"))
    assert np.abs(np.asarray(rows["bad/text.wav"]["embedding"]) - ref).max() <= 1e-5
    assert not retry.ok


def test_refuses_to_mix_settings(corpus: Path, embedder: SpeakerEmbedder, tmp_path: Path) -> None:
    out = tmp_path / "out"
    embed_corpus(corpus / "carol" / "a", out, embedder=embedder, progress="off")
    before = sorted(p.name for p in out.iterdir())
    with pytest.raises(Exception, match=r"other settings.*top_db: 20 there, 30 now") as info:
        embed_corpus(
            corpus / "carol" / "a", out, embedder=embedder, pipeline=Pipeline(top_db=30), progress="off"
        )
    assert isinstance(info.value, ValueError)  # a ConfigError
    assert sorted(p.name for p in out.iterdir()) == before
    # --overwrite starts afresh with the new settings.
    report = embed_corpus(
        corpus / "carol" / "a",
        out,
        embedder=embedder,
        pipeline=Pipeline(top_db=30),
        overwrite=True,
        progress="off",
    )
    assert report.embedded == 3
    meta = json.loads((out / "_speakerembed.json").read_text())
    assert meta["pipeline"]["top_db"] == 30


def test_resumes_with_another_batch_size(corpus: Path, embedder: SpeakerEmbedder, tmp_path: Path) -> None:
    """The batch size never changes the embeddings, so a job resumes across it (another device)."""
    out = tmp_path / "out"
    files = sorted(str(p) for p in (corpus / "carol" / "a").iterdir())
    embed_corpus(
        files[:1], out, embedder=embedder, pipeline=Pipeline(max_windows_per_batch=2), progress="off"
    )
    report = embed_corpus(files, out, embedder=embedder, progress="off")
    assert (report.embedded, report.skipped) == (len(files) - 1, 1)
    # Anything else that changes the embeddings still refuses.
    with pytest.raises(ValueError, match="other settings"):
        embed_corpus(files, out, embedder=embedder, pipeline=Pipeline(rate=2.0), progress="off")


def test_sigkill_mid_run_then_rerun(
    corpus: Path, embedder: SpeakerEmbedder, references: dict[str, np.ndarray], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    code = (
        "import sys, time\n"
        "import speakerembed.corpus.sink as sink\n"
        "write = sink.ParquetSink._atomic_write_table\n"
        "def slow(self, path, table):\n"
        "    write(self, path, table); time.sleep(0.5)\n"  # room for the kill between shards
        "sink.ParquetSink._atomic_write_table = slow\n"
        "from speakerembed import embed_corpus\n"
        f"embed_corpus({str(corpus)!r}, {str(out)!r}, weights='resemblyzer', device='cpu', shard_size=2,"
        " workers=0, progress='off')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", code], env=env)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and len(list(out.glob("part-*.parquet"))) < 2:
            if proc.poll() is not None:
                pytest.fail(f"the job ended (code {proc.returncode}) before it could be killed")
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    written = _read(out)  # every shard reads, no id twice
    assert 2 <= len(written) < GOOD + BAD
    (out / ".part-00042.parquet.tmp").write_bytes(b"half a shard")  # what a kill mid-write leaves
    report = embed_corpus(corpus, out, embedder=embedder, shard_size=2, progress="off")
    assert report.skipped == len(written)
    assert report.embedded + report.failed == GOOD + BAD - len(written)
    assert not (out / ".part-00042.parquet.tmp").exists()
    rows = _read(out)
    assert len(rows) == GOOD + BAD
    for rid, row in rows.items():
        if row["error"] is None:
            ref = references[str(row["path"])]
            assert np.abs(np.asarray(row["embedding"]) - ref).max() <= 1e-5, rid
