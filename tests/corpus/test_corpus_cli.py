"""``speakerembed corpus`` and ``speakerembed embed``: exit codes, fail-fast, stdin, Parquet.

The corpus and its references are built in ``conftest.py``, from ``_corpus_data.py``.
"""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from _corpus_data import W, _read  # noqa: E402

from speakerembed.cli import main  # noqa: E402

# -- the command line -------------------------------------------------------------------------


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_exit_codes(corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    code, _, err = run(capsys, "corpus", str(corpus / "carol" / "a"), "-o", str(out), *W)
    assert code == 0, err
    assert "embedded 3, failed 0" in err
    # Bad files: the job finishes, exit 3, and the summary says how to list them.
    code, _, err = run(capsys, "corpus", str(corpus / "bad"), str(corpus / "carol" / "a"), "-o", str(out), *W)
    assert code == 3, err
    assert "failed 2" in err
    assert "list the failed inputs with:" in err
    query = err.split("list the failed inputs with: ")[1].splitlines()[0]
    listed = subprocess.run(query, shell=True, capture_output=True, text=True, check=True, timeout=120)
    assert "text.wav" in listed.stdout
    assert "silent.flac" in listed.stdout
    # Usage: a missing input, no inputs, contradictory flags.
    code, _, err = run(capsys, "corpus", str(tmp_path / "nope"), "-o", str(out), *W)
    assert code == 2
    assert "does not exist" in err
    code, _, err = run(capsys, "corpus", "-o", str(out), *W)
    assert code == 2
    assert "no inputs" in err
    # Could not run: another pipeline in the same output, or an output that is a file.
    code, _, err = run(capsys, "corpus", str(corpus / "carol" / "a"), "-o", str(out), "--top-db", "30", *W)
    assert code == 1
    assert "other settings" in err
    assert "--overwrite" in err
    (tmp_path / "file").write_text("x")
    code, _, err = run(capsys, "corpus", str(corpus / "carol" / "a"), "-o", str(tmp_path / "file"), *W)
    assert code == 1
    assert "is a file" in err


def test_cli_fail_fast_and_quiet(corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    listing = tmp_path / "l.txt"
    carol = sorted((corpus / "carol" / "a").iterdir())[0]
    listing.write_text(f"{corpus}/bad/text.wav\n{carol}\n")
    code, stdout, err = run(
        capsys, "corpus", "--files-from", str(listing), "-o", str(out), "--fail-fast", "--quiet", *W
    )
    assert code == 3
    assert stdout == ""
    assert "1 input(s) failed" in err
    assert len(err.strip().splitlines()) == 1
    assert len(_read(out)) == 1  # stopped after the batch with the failure


def test_cli_reads_stdin(
    corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    files = sorted(p.name for p in (corpus / "bob" / "a").iterdir())
    monkeypatch.setattr(sys, "stdin", io.StringIO("".join(f"{corpus}/bob/a/{f}\n" for f in files)))
    code, _, err = run(capsys, "corpus", "--files-from", "-", "-o", str(out), *W)
    assert code == 0, err
    assert sorted(Path(i).name for i in _read(out)) == files


def test_embed_takes_folders_and_lists_and_writes_parquet(
    corpus: Path, tmp_path: Path, references: dict[str, np.ndarray], capsys: pytest.CaptureFixture[str]
) -> None:
    listing = tmp_path / "l.txt"
    listing.write_text(f"{sorted((corpus / 'bob' / 'a').iterdir())[0]}\n")
    out = tmp_path / "utts.parquet"
    code, _, err = run(
        capsys,
        "embed",
        str(corpus / "carol" / "a"),
        "--files-from",
        str(listing),
        "--utterances",
        "-o",
        str(out),
        *W,
    )
    assert code == 0, err
    table = pq.read_table(out)
    assert table.num_rows == 4
    assert table.schema.field("embedding").type == pa.list_(pa.float32(), 256)
    for row in table.to_pylist():
        assert np.abs(np.asarray(row["embedding"]) - references[row["path"]]).max() <= 1e-5
    code, _, err = run(capsys, "embed", str(corpus / "carol" / "a"), "-o", str(tmp_path / "s.parquet"), *W)
    assert code == 2
    assert "--utterances" in err
    code, _, err = run(
        capsys,
        "embed",
        str(corpus / "bad"),
        str(corpus / "carol" / "a"),
        "--utterances",
        "--keep-going",
        "-o",
        str(tmp_path / "k.parquet"),
        *W,
    )
    assert code == 3, err
    assert pq.read_table(tmp_path / "k.parquet").column("error").null_count == 3
