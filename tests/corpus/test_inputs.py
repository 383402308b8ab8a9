"""Inputs as users hand them over: CSV manifests read as text, symlink loops, names that are not
UTF-8, Kaldi ``wav.scp`` lists, files with NaN samples, and a job with no inputs (issues 17, 19).
"""

from __future__ import annotations

import io
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from speakerembed import AudioError, SpeakerEmbedder
from speakerembed.cli import main
from speakerembed.corpus.sources import (
    InputsError,
    as_text,
    collect,
    read_file_list,
    read_manifest,
    scan_folder,
)

AUDIO = Path(__file__).resolve().parents[2] / "examples" / "audio"
ALICE = AUDIO / "alice_1.wav"
W = ["--weights", "resemblyzer", "--device", "cpu"]

# A file name whose bytes are not UTF-8 (Latin-1 "café"), as Python holds it.
LATIN1 = os.fsdecode(b"caf\xe9.wav")
needs_bytes_names = pytest.mark.skipif(
    sys.platform in ("win32", "darwin"), reason="this file system stores names as Unicode, not bytes"
)


# -- CSV manifests are text ---------------------------------------------------------------------


def test_csv_manifest_keeps_ids_and_speakers_as_written(tmp_path: Path) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text(
        "id,path,speaker,age\n007,a.wav,0019,31\n01,b.wav,NA,\n1,c.wav,,x\nnull,d.wav,N/A,07\n",
        encoding="utf-8",
    )
    found = read_manifest(manifest)
    assert [r.id for r in found.records] == ["007", "01", "1", "null"]
    assert [r.speaker for r in found.records] == ["0019", "NA", None, "N/A"]
    assert [r.extra["age"] for r in found.records] == ["31", None, "x", "07"]
    assert [str(f.type) for f in found.extra_fields] == ["string"]
    collect(manifest=manifest)  # "01" and "1" are two ids, not duplicates


def test_csv_manifest_with_a_byte_order_mark(tmp_path: Path) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_bytes(b"\xef\xbb\xbfid,path,speaker\n007,a.wav,NA\n")
    found = read_manifest(manifest)
    assert [(r.id, r.speaker) for r in found.records] == [("007", "NA")]


# -- Kaldi / WeSpeaker wav.scp -------------------------------------------------------------------


def test_wav_scp_is_read_by_name_and_by_format(tmp_path: Path) -> None:
    scp = tmp_path / "wav.scp"
    scp.write_text(f"utt-007 {ALICE}\n\n# a comment\nutt-2\t  sub/b c.wav  \n", encoding="utf-8")
    found = read_manifest(scp)
    assert [r.id for r in found.records] == ["utt-007", "utt-2"]
    assert found.records[0].path == str(ALICE)
    assert found.records[1].path == str(tmp_path / "sub" / "b c.wav")
    listed = tmp_path / "list.txt"  # a WeSpeaker list under another name
    shutil.copy(scp, listed)
    assert read_manifest(listed, manifest_format="scp").records == found.records
    with pytest.raises(InputsError, match=r"\.scp"):
        read_manifest(listed)


def test_wav_scp_refuses_commands_and_lines_without_a_path(tmp_path: Path) -> None:
    scp = tmp_path / "wav.scp"
    scp.write_text("u1 sox a.wav -t wav - |\n", encoding="utf-8")
    with pytest.raises(InputsError, match=r"line 1 .* is a command"):
        read_manifest(scp)
    scp.write_text(f"u1 {ALICE}\nlonely\n", encoding="utf-8")
    with pytest.raises(InputsError, match=r"line 2 .*'<id> <path>'"):
        read_manifest(scp)


def test_corpus_reads_a_wav_scp(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import pyarrow.parquet as pq

    listed = tmp_path / "utts.list"
    listed.write_text(f"a1 {ALICE}\na2 {AUDIO / 'alice_2.wav'}\n", encoding="utf-8")
    out = tmp_path / "out"
    argv = ["corpus", "--manifest", str(listed), "--manifest-format", "scp", "-o", str(out), "-q", *W]
    assert main(argv) == 0, capsys.readouterr().err
    assert sorted(pq.read_table(out, columns=["id"]).column("id").to_pylist()) == ["a1", "a2"]


# -- folder scans ---------------------------------------------------------------------------------


def test_symlink_loop_is_scanned_once(tmp_path: Path) -> None:
    root = tmp_path / "data"
    (root / "a").mkdir(parents=True)
    shutil.copy(ALICE, root / "a" / "x.wav")
    (root / "a" / "up").symlink_to("..")  # a loop
    (root / "a" / "y.wav").symlink_to("x.wav")  # a second name for one file
    (root / "b").symlink_to("a")  # a second name for a folder
    records = scan_folder(root)
    assert [r.id for r in records] == ["a/x.wav"]
    # Folders given twice, or one inside another, add nothing either.
    assert [r.id for r in collect([root, root / "a"]).records] == ["a/x.wav"]


def test_symlink_into_a_large_tree_ends(tmp_path: Path) -> None:
    root = tmp_path / "data"
    deep = root
    for i in range(30):
        deep = deep / f"d{i}"
        deep.mkdir(parents=True)
        (deep / "back").symlink_to(root)  # every level links to the top
    shutil.copy(ALICE, deep / "x.wav")
    records = scan_folder(root)
    assert len(records) == 1
    assert records[0].id.endswith("d29/x.wav")


def test_files_listed_twice_on_purpose_are_still_duplicates(tmp_path: Path) -> None:
    listing = tmp_path / "list.txt"
    listing.write_text(f"{ALICE}\n{ALICE}\n", encoding="utf-8")
    with pytest.raises(InputsError, match="more than once"):
        collect(files_from=listing)


# -- names that are not UTF-8 ------------------------------------------------------------------


@needs_bytes_names
def test_non_utf8_names_scan_list_and_embed(tmp_path: Path, embedder: SpeakerEmbedder) -> None:
    folder = tmp_path / "d"
    folder.mkdir()
    target = folder / LATIN1
    shutil.copy(ALICE, target)
    records = scan_folder(folder)
    assert [r.id for r in records] == ["caf\\xe9.wav"]  # the id can be stored and printed
    records[0].id.encode("utf-8")
    assert records[0].path == str(target)
    listing = tmp_path / "list.txt"
    listing.write_bytes(os.fsencode(target) + b"\n")
    (listed,) = read_file_list(listing)
    assert listed.path == str(target)
    assert listed.id == as_text(str(target))
    got = embedder.embed_utterances([target])
    np.testing.assert_allclose(got[0], embedder.embed_utterances([ALICE])[0], atol=1e-6)


@needs_bytes_names
def test_embed_command_embeds_a_non_utf8_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "d"
    folder.mkdir()
    shutil.copy(ALICE, folder / LATIN1)
    out = tmp_path / "one.npy"
    code = main(["embed", str(folder), "-o", str(out), *W])
    assert code == 0, capsys.readouterr().err
    assert np.load(out).shape == (256,)


def test_as_text_escapes_only_bad_bytes() -> None:
    assert as_text("façade/ok.wav") == "façade/ok.wav"
    assert as_text(LATIN1) == "caf\\xe9.wav"


# -- files with NaN or infinite samples ------------------------------------------------------------


@pytest.mark.parametrize(("bad", "named"), [(np.nan, "NaN"), (np.inf, "infinite")])
def test_nan_in_a_file_is_named(tmp_path: Path, embedder: SpeakerEmbedder, bad: float, named: str) -> None:
    import soundfile as sf

    wave, rate = sf.read(ALICE, dtype="float32")
    wave[rate // 2 : rate // 2 + 10] = bad
    path = tmp_path / "bad.wav"
    sf.write(path, wave, rate, subtype="FLOAT")
    expected = rf"10 frame\(s\) with {named} samples, the first at frame {rate // 2}"
    with pytest.raises(AudioError, match=expected):
        embedder.embed_utterances([path])  # filterwarnings=error: a RuntimeWarning would fail too


def test_nan_file_in_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import soundfile as sf

    wave, rate = sf.read(ALICE, dtype="float32")
    wave[0] = np.nan
    path = tmp_path / "bad.wav"
    sf.write(path, wave, rate, subtype="FLOAT")
    assert main(["embed", str(path), *W]) == 1
    err = capsys.readouterr().err
    assert "NaN" in err
    assert "left after trimming" not in err


# -- no inputs -----------------------------------------------------------------------------------


def test_no_inputs_names_the_flags_and_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no audio here\n")
    code = main(["corpus", str(empty), "-o", str(tmp_path / "out"), *W])
    err = capsys.readouterr().err
    assert code == 2
    assert "--files-from FILE or --manifest FILE" in err
    assert "files_from=" not in err
    assert "hold no files with an audio extension" in err
    assert not (tmp_path / "out").exists()
    listing = tmp_path / "list.txt"
    listing.write_text("# nothing listed\n")
    assert main(["corpus", "--files-from", str(listing), "-o", str(tmp_path / "out"), *W]) == 2
    assert "no inputs" in capsys.readouterr().err


def test_no_inputs_in_python_names_the_keywords(tmp_path: Path) -> None:
    with pytest.raises(InputsError, match="files_from=FILE or manifest=FILE"):
        collect([])
    with pytest.raises(InputsError, match="no inputs"):
        collect(files_from="-", stdin=io.StringIO("\n# only a comment\n"))


@needs_bytes_names
def test_a_failing_non_utf8_name_is_shown_escaped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "d"
    folder.mkdir()
    (folder / os.fsdecode(b"bad\xe9.wav")).write_bytes(b"not audio at all, just text\n")
    shutil.copy(ALICE, folder / "good.wav")
    assert main(["embed", str(folder), "--keep-going", *W]) == 3
    err = capsys.readouterr().err
    assert "bad\\xe9.wav" in err
    err.encode("utf-8")  # printable anywhere: no lone surrogates
