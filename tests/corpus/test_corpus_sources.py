"""Sources of a corpus job: folders, file lists, manifests, and their ids.

The corpus and its references are built in ``conftest.py``, from ``_corpus_data.py``.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from _corpus_data import BAD, GOOD  # noqa: E402

from speakerembed import embed_corpus  # noqa: E402
from speakerembed.corpus.sources import (  # noqa: E402
    InputsError,
    Record,
    collect,
    read_file_list,
    read_manifest,
    scan_folder,
)

# -- sources ----------------------------------------------------------------------------------


def test_folder_scan_is_recursive_and_skips_hidden_and_other_files(corpus: Path) -> None:
    records = scan_folder(corpus)
    ids = [r.id for r in records]
    assert len(ids) == GOOD + BAD
    assert sum(i.startswith("alice/b/deeper/alice_") for i in ids) == 3
    assert not any(Path(i).name.startswith(".") or i.startswith(".cache") for i in ids)
    assert not any(i.endswith(".txt") for i in ids)
    for r in records:
        assert Path(r.path) == corpus / r.id


def test_file_list_resolves_against_its_folder_and_reads_stdin(corpus: Path, tmp_path: Path) -> None:
    lists = tmp_path / "lists"
    lists.mkdir()
    rel = os.path.relpath(corpus / "bob" / "a", lists)
    bob = sorted((corpus / "bob" / "a").iterdir())[0].name
    carol = str(sorted((corpus / "carol" / "a").iterdir())[0])
    listing = lists / "files.txt"
    listing.write_text(f"# a comment\n\n{rel}/{bob}\n{carol}\n")
    records = read_file_list(listing)
    assert [r.id for r in records] == [f"{rel}/{bob}", carol]
    assert all(Path(r.path).exists() for r in records)
    from_stdin = read_file_list("-", stdin=io.StringIO(f"{carol}\n"))
    assert from_stdin == [Record(carol, carol)]


@pytest.mark.parametrize("kind", ["csv", "jsonl", "parquet"])
def test_manifest_carries_extra_columns(corpus: Path, tmp_path: Path, kind: str) -> None:
    alice = sorted((corpus / "alice" / "a").iterdir())[0]
    bob = sorted((corpus / "bob" / "a").iterdir())[0]
    rows = [
        {
            "path": f"../{corpus.name}/alice/a/{alice.name}",
            "id": "u1",
            "speaker": "alice",
            "age": 31,
            "note": "x",
        },
        {
            "path": str(bob),
            "id": "u2",
            "speaker": "bob",
            "age": 42,
            "note": "y",
        },
    ]
    table = pa.Table.from_pylist(rows)
    path = corpus.parent / "m" / f"manifest.{kind}"
    path.parent.mkdir(exist_ok=True)
    if kind == "csv":
        import pyarrow.csv as pcsv

        pcsv.write_csv(table, path)
    elif kind == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        pq.write_table(table, path)
    found = read_manifest(path)
    assert [f.name for f in found.extra_fields] == ["age", "note"]
    assert [r.id for r in found.records] == ["u1", "u2"]
    assert [r.speaker for r in found.records] == ["alice", "bob"]
    # A CSV is read as text, every column; JSON and Parquet keep their types.
    assert found.records[0].extra == {"age": "31" if kind == "csv" else 31, "note": "x"}
    assert Path(found.records[0].path).resolve() == alice.resolve()


def test_duplicate_ids_are_named_before_any_audio_is_read(corpus: Path, tmp_path: Path) -> None:
    listing = tmp_path / "list.txt"
    listing.write_text("x/missing_1.wav\nx/missing_1.wav\nx/other.wav\n")
    out = tmp_path / "out"
    with pytest.raises(InputsError, match=r"x/missing_1\.wav"):
        embed_corpus(files_from=listing, output=out, weights="resemblyzer", device="cpu", progress="off")
    assert not out.exists()  # refused before the output was touched
    with pytest.raises(InputsError, match="does not exist"):
        collect([tmp_path / "nope"])
