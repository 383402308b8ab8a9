"""embed_corpus as users call it, checked by ``mypy --strict`` (``nox -s typecheck``); not run."""

from __future__ import annotations

from pathlib import Path

from typing_extensions import assert_type

from speakerembed import CorpusReport, Pipeline, embed_corpus


def corpus_job() -> None:
    report = embed_corpus(["clips/", "more.wav"], "out", weights="resemblyzer", pipeline=Pipeline(top_db=30))
    assert_type(report, CorpusReport)
    assert_type(report.ok, bool)
    assert_type(report.output, Path)
    assert_type(report.realtime_factor, float)
    assert_type(report.summary(), str)
    embed_corpus(files_from="-", output=Path("out"), workers=2, shard_size=500, speakers=True)
    embed_corpus("clips", "out", engine="spark")  # type: ignore[arg-type]
    embed_corpus("clips", "out", progress="loud")  # type: ignore[arg-type]
    embed_corpus(manifest="data/train/wav.scp", output="out")  # a Kaldi list, by its suffix
    embed_corpus(manifest="utts.list", output="out", manifest_format="scp")
    embed_corpus(manifest="m.txt", output="out", manifest_format="tsv")  # type: ignore[arg-type]
