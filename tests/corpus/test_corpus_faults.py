"""The corpus job under faults: a second job, damaged or foreign shards, a full disk, odd names.

Each test makes the fault itself (a second process, bytes written into a shard, a small tmpfs,
a name that is not UTF-8) on a small corpus of the bundled voices, and checks what the user gets:
one line naming the file and the fix, the right exit code, and no row lost, mixed or doubled.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from speakerembed import SpeakerEmbedder, embed_corpus  # noqa: E402 - after the skips
from speakerembed.cli import main  # noqa: E402
from speakerembed.corpus.sink import LOCK_FILE, OutputError, OutputLock  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
AUDIO = ROOT / "examples" / "audio"
W = ["--weights", "resemblyzer", "--device", "cpu"]
N = len(list(AUDIO.glob("*.wav")))  # 9 voices


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(list(args))
    return code, capsys.readouterr().err


def _rows(out: Path) -> dict[str, dict[str, object]]:
    rows = pq.read_table(out).to_pylist()
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids)), "an id is in more than one row"
    return {str(r["id"]): r for r in rows}


def _shards(out: Path) -> list[Path]:
    return sorted(out.glob("part-*.parquet"))


@pytest.fixture
def done(tmp_path: Path, embedder: SpeakerEmbedder) -> Path:
    """A finished output of the 9 voices in three shards of three rows."""
    out = tmp_path / "out"
    report = embed_corpus(AUDIO, out, embedder=embedder, shard_size=3, progress="off")
    assert report.ok
    assert report.embedded == N
    assert len(_shards(out)) == 3
    return out


def _job_code(out: Path, *, shard_size: int, sleep: float, extra: str = "") -> str:
    """A Python program that runs the job on the voices, slowed after each shard it writes."""
    return (
        "import time\n"
        "import speakerembed.corpus.sink as sink\n"
        "write = sink.ParquetSink._atomic_write_table\n"
        "def slow(self, path, table):\n"
        f"    write(self, path, table); time.sleep({sleep})\n"
        "sink.ParquetSink._atomic_write_table = slow\n"
        f"{extra}"
        "from speakerembed import embed_corpus\n"
        f"embed_corpus({str(AUDIO)!r}, {str(out)!r}, weights='resemblyzer', device='cpu', "
        f"shard_size={shard_size}, workers=0, progress='off')\n"
    )


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


# -- 1. two jobs on one output --------------------------------------------------------------------


def test_a_second_job_on_one_output_is_refused_and_the_first_loses_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], embedder: SpeakerEmbedder
) -> None:
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-c", _job_code(out, shard_size=1, sleep=1.0)], env=_env())
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not _shards(out):
            if proc.poll() is not None:
                pytest.fail(f"the first job ended (code {proc.returncode}) before the second started")
            time.sleep(0.05)
        assert (out / LOCK_FILE).read_text().strip() == str(proc.pid)
        # The same inputs and other inputs: both refused at once, naming the first job.
        code, err = _cli(capsys, "corpus", str(AUDIO), "-o", str(out), *W)
        assert code == 1, err
        assert f"-o {out} is in use by another job (pid {proc.pid})" in err
        assert "unexpected" not in err
        with pytest.raises(OutputError, match=rf"output={out} is in use by another job \(pid {proc.pid}\)"):
            embed_corpus(AUDIO / "alice_1.wav", out, embedder=embedder, progress="off")
        with pytest.raises(OutputError, match="in use by another job"):  # --overwrite deletes nothing
            embed_corpus(AUDIO, out, embedder=embedder, overwrite=True, progress="off")
        assert proc.wait(timeout=300) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=60)
    rows = _rows(out)
    assert len(rows) == N
    assert all(r["error"] is None for r in rows.values())
    assert not [p for p in out.iterdir() if ".tmp" in p.name]
    # The lock went with the first job: the next one runs.
    report = embed_corpus(AUDIO, out, embedder=embedder, progress="off")
    assert (report.skipped, report.embedded) == (N, 0)


def test_the_lock_is_held_by_an_open_file_not_by_a_process(tmp_path: Path, embedder: SpeakerEmbedder) -> None:
    out = tmp_path / "out"
    out.mkdir()
    with OutputLock(out, flag="-o"):
        with pytest.raises(OutputError, match=rf"-o {out} is in use by another job \(pid {os.getpid()}\)"):
            OutputLock(out, flag="-o").acquire()
        with pytest.raises(OutputError, match="in use by another job"):
            embed_corpus(AUDIO / "bob_1.wav", out, embedder=embedder, progress="off")
    assert not _shards(out)
    report = embed_corpus(AUDIO / "bob_1.wav", out, embedder=embedder, progress="off")
    assert report.embedded == 1


def test_a_shard_is_never_written_over_and_temporary_names_carry_the_pid(
    done: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from speakerembed.corpus import sink as sinks
    from speakerembed.corpus.schema import corpus_schema

    meta = json.loads((done / "_speakerembed.json").read_text())
    sink = sinks.ParquetSink(done, corpus_schema((), meta), meta, shard_size=2)
    sink.open()
    first_ids = pq.read_table(done / "part-00000.parquet").column("id").to_pylist()
    (done / "part-00003.parquet").write_bytes((done / "part-00000.parquet").read_bytes())
    temps: list[str] = []
    real = sinks.ParquetSink._tmp

    def tmp(self: sinks.ParquetSink, path: Path) -> Path:
        temps.append(real(self, path).name)
        return real(self, path)

    monkeypatch.setattr(sinks.ParquetSink, "_tmp", tmp)
    table = pq.read_table(done / "part-00001.parquet").slice(0, 2)
    sink.write(table.set_column(0, "id", pa.array(["new-1", "new-2"])))
    # part-00003 appeared after the sink opened: the new rows go to the next free name.
    assert pq.read_table(done / "part-00004.parquet").column("id").to_pylist() == ["new-1", "new-2"]
    assert pq.read_table(done / "part-00003.parquet").column("id").to_pylist() == first_ids
    assert temps == [f".part-00004.parquet.tmp.{os.getpid()}"]


# -- 2. every shard's settings --------------------------------------------------------------------


def _with_settings(shard: Path, change: dict[str, object]) -> None:
    table = pq.read_table(shard)
    meta = json.loads(table.schema.metadata[b"speakerembed"])
    meta["pipeline"].update(change)
    pq.write_table(table.replace_schema_metadata({b"speakerembed": json.dumps(meta).encode()}), shard)


def test_a_shard_of_other_settings_in_the_middle_is_refused_by_name(
    done: Path, embedder: SpeakerEmbedder, capsys: pytest.CaptureFixture[str]
) -> None:
    _with_settings(done / "part-00001.parquet", {"top_db": 30.0})
    with pytest.raises(OutputError, match=r"other settings \(pipeline \(top_db: 30.0 there.*per part-00001"):
        embed_corpus(AUDIO, done, embedder=embedder, progress="off")
    code, err = _cli(capsys, "corpus", str(AUDIO), "-o", str(done), *W)
    assert code == 1
    assert "part-00001.parquet" in err
    assert "--overwrite" in err


# -- 3. damaged shards ----------------------------------------------------------------------------


def _garbage(shard: Path) -> None:
    data = bytearray(shard.read_bytes())
    start = len(data) // 4
    n = min(2048, len(data) // 3)
    data[start : start + n] = np.random.default_rng(0).integers(0, 256, n, dtype=np.uint8).tobytes()
    shard.write_bytes(bytes(data))


def _truncate(shard: Path) -> None:
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize("damage", [_garbage, _truncate], ids=["garbage", "truncated"])
def test_a_damaged_shard_is_named_with_what_to_do(
    done: Path, embedder: SpeakerEmbedder, capsys: pytest.CaptureFixture[str], damage: object
) -> None:
    before = _rows(done)
    shard = done / "part-00001.parquet"
    damage(shard)  # type: ignore[operator]
    with pytest.raises(
        OutputError, match=r"the shard part-00001.parquet is damaged .*remove it and run the same"
    ):
        embed_corpus(AUDIO, done, embedder=embedder, progress="off")
    code, err = _cli(capsys, "corpus", str(AUDIO), "-o", str(done), *W)
    assert code == 1, err
    assert len(err.strip().splitlines()) == 1, err
    assert "part-00001.parquet is damaged" in err
    assert "already done" not in err
    # What it says to do works: the inputs of that shard are embedded again, the same.
    shard.unlink()
    report = embed_corpus(AUDIO, done, embedder=embedder, shard_size=3, progress="off")
    assert (report.embedded, report.skipped) == (3, N - 3)
    after = _rows(done)
    assert after.keys() == before.keys()
    for rid, row in after.items():
        emb = np.asarray(row["embedding"], np.float32)
        assert np.isfinite(emb).all()
        assert np.abs(emb - np.asarray(before[rid]["embedding"], np.float32)).max() <= 1e-5, rid


def test_one_flipped_byte_is_found_by_the_page_checksums(done: Path, embedder: SpeakerEmbedder) -> None:
    # A flipped byte inside the embedding values: without checksums it reads as another number.
    shard = done / "part-00000.parquet"
    meta = pq.ParquetFile(shard).metadata.row_group(0)
    chunk = next(
        c for c in map(meta.column, range(meta.num_columns)) if c.path_in_schema.startswith("embedding")
    )
    start = chunk.dictionary_page_offset or chunk.data_page_offset
    data = bytearray(shard.read_bytes())
    data[start + 1000] ^= 0xFF
    shard.write_bytes(bytes(data))
    pq.read_table(shard)  # read without verification, nothing looks wrong
    with pytest.raises(OSError, match=r"CRC checksum"):
        pq.read_table(shard, page_checksum_verification=True)
    with pytest.raises(OutputError, match=r"part-00000.parquet is damaged \(could not verify page integrity"):
        embed_corpus(AUDIO, done, embedder=embedder, progress="off")


# -- 11. foreign shards and settings files --------------------------------------------------------


@pytest.mark.parametrize("text", ["[]", "null", "3"])
def test_a_settings_file_that_holds_no_settings_is_refused(
    done: Path, embedder: SpeakerEmbedder, capsys: pytest.CaptureFixture[str], text: str
) -> None:
    (done / "_speakerembed.json").write_text(text)
    with pytest.raises(
        OutputError, match=r"_speakerembed.json that is not speakerembed's settings.*--overwrite"
    ):
        embed_corpus(AUDIO, done, embedder=embedder, progress="off")
    code, err = _cli(capsys, "corpus", str(AUDIO), "-o", str(done), *W)
    assert code == 1
    assert "unexpected" not in err


@pytest.mark.parametrize(
    "table",
    [
        {"x": [1, 2]},  # another table altogether
        {"id": ["a"], "path": ["a.wav"], "error": [None]},  # our columns' names, no settings
    ],
    ids=["other-columns", "no-settings"],
)
def test_a_foreign_shard_is_refused_like_other_stray_files(
    done: Path, embedder: SpeakerEmbedder, capsys: pytest.CaptureFixture[str], table: dict[str, list[object]]
) -> None:
    pq.write_table(pa.table(table), done / "part-00001.parquet")
    with pytest.raises(OutputError, match=r"holds part-00001.parquet, which is not a speakerembed shard"):
        embed_corpus(AUDIO, done, embedder=embedder, progress="off")
    code, err = _cli(capsys, "corpus", str(AUDIO), "-o", str(done), *W)
    assert code == 1
    assert "unexpected" not in err
    assert "part-00001.parquet" in err


# -- 9. a full disk -------------------------------------------------------------------------------


def test_a_failed_write_is_one_line_and_never_tried_again(
    tmp_path: Path,
    embedder: SpeakerEmbedder,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "out"
    real = pq.write_table
    calls: list[str] = []

    def full(table: object, where: object, **kw: object) -> None:
        calls.append(str(where))
        if len(calls) > 1:
            Path(str(where)).write_bytes(b"half")  # what a write cut short leaves
            raise OSError(errno.ENOSPC, "No space left on device")
        real(table, where, **kw)

    monkeypatch.setattr(pq, "write_table", full)
    with pytest.raises(OutputError) as info:
        embed_corpus(AUDIO, out, embedder=embedder, shard_size=3, progress="off")
    assert str(info.value) == (
        f"no space left writing {out / 'part-00001.parquet'}; free space and run the same command again"
    )
    assert len(calls) == 2  # not tried again on the way out
    assert [p.name for p in _shards(out)] == ["part-00000.parquet"]
    assert not [p for p in out.iterdir() if ".tmp" in p.name]
    calls.clear()  # the same command again: one more shard fits, then the disk is full again
    code, err = _cli(capsys, "corpus", str(AUDIO), "-o", str(out), "--shard-size", "3", *W)
    assert code == 1
    assert err.strip() == (
        f"speakerembed: error: no space left writing {out / 'part-00002.parquet'}; "
        "free space and run the same command again"
    )
    monkeypatch.setattr(pq, "write_table", real)
    report = embed_corpus(AUDIO, out, embedder=embedder, shard_size=3, progress="off")
    assert (report.skipped, report.embedded) == (6, N - 6)
    assert len(_rows(out)) == N


@contextlib.contextmanager
def _tmpfs(where: Path, size: str) -> Iterator[Path]:
    where.mkdir()
    if sys.platform != "linux" or os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root on Linux (CI and the dev container run as root)")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()})")
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=False)


def test_a_really_full_disk(
    tmp_path: Path, embedder: SpeakerEmbedder, capsys: pytest.CaptureFixture[str]
) -> None:
    with _tmpfs(tmp_path / "small", "256k") as disk:
        out = disk / "out"
        # Fill the disk, then free 4 pages: the settings file and the lock fit, a shard does not.
        filler = disk / "filler"
        with contextlib.suppress(OSError), filler.open("wb", buffering=0) as f:
            while True:
                f.write(b"\0" * 4096)
        size = filler.stat().st_size
        os.truncate(filler, max(0, size - 4 * 4096))
        code, err = _cli(capsys, "corpus", str(AUDIO), "-o", str(out), "--shard-size", "9", *W)
        assert code == 1, err
        assert err.strip() == (
            f"speakerembed: error: no space left writing {out / 'part-00000.parquet'}; "
            "free space and run the same command again"
        )
        assert not _shards(out)
        assert not [p for p in out.iterdir() if ".tmp" in p.name]  # no half shard
        filler.unlink()  # free space, and run the same command again
        code, err = _cli(capsys, "corpus", str(AUDIO), "-o", str(out), "--shard-size", "9", *W)
        assert code == 0, err
        assert len(_rows(out)) == N


# -- 6. new labels for rows already done ----------------------------------------------------------


def _manifest(path: Path, extra: dict[str, str] | None = None) -> Path:
    with path.open("w") as f:
        for wav in sorted(AUDIO.glob("*.wav")):
            row = {"id": wav.name, "path": str(wav), "speaker": wav.name.split("_")[0], **(extra or {})}
            f.write(json.dumps(row) + "\n")
    return path


def test_a_new_manifest_relabels_rows_already_done_without_embedding_them(
    done: Path, embedder: SpeakerEmbedder, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _rows(done)
    assert {r["speaker"] for r in before.values()} == {None}
    manifest = _manifest(tmp_path / "m.jsonl")
    code, err = _cli(capsys, "corpus", "--manifest", str(manifest), "-o", str(done), *W)
    assert code == 0, err
    assert f"updated the speaker and carried columns of {N} row(s)" in err
    assert "embedded 0" in err
    after = _rows(done)
    for rid, row in after.items():
        assert row["speaker"] == rid.split("_")[0]
        assert row["embedding"] == before[rid]["embedding"]  # kept, bit for bit
        assert row["duration_s"] == before[rid]["duration_s"]
    # Again: nothing to change. Without a manifest: the labels stay.
    report = embed_corpus(manifest=manifest, output=done, embedder=embedder, progress="off")
    assert (report.relabelled, report.skipped, report.embedded) == (0, N, 0)
    embed_corpus(AUDIO, done, embedder=embedder, progress="off")
    assert {r["speaker"] for r in _rows(done).values()} == {"alice", "bob", "carol"}
    # A manifest that adds columns cannot be carried by the rows already written: refused, with how.
    wider = _manifest(tmp_path / "w.jsonl", {"gender": "f"})
    with pytest.raises(OutputError, match=r"other columns.*--overwrite"):
        embed_corpus(manifest=wider, output=done, embedder=embedder, progress="off")


# -- 7, 10. the --speakers path -------------------------------------------------------------------


def test_a_speakers_path_that_cannot_be_written_is_refused_before_any_work(
    tmp_path: Path, embedder: SpeakerEmbedder, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    (tmp_path / "a-file").write_text("x")
    (tmp_path / "a-folder").mkdir()
    cases = {
        out / "x.parquet": "lies inside the output folder",
        out / "deeper" / "x.parquet": "lies inside the output folder",
        tmp_path / "missing" / "s.parquet": "does not exist",
        tmp_path / "a-file" / "s.parquet": "is a file",
        tmp_path / "a-folder": "is a folder",
    }
    for path, why in cases.items():
        with pytest.raises(ValueError, match=why):
            embed_corpus(AUDIO, out, embedder=embedder, speakers=path, progress="off")
        code, err = _cli(capsys, "corpus", str(AUDIO), "-o", str(out), "--speakers", str(path), *W)
        assert code == 2, err
        assert f"--speakers {path}" in err
        assert why in err
    assert not _shards(out)
    assert not (out / "_speakerembed.json").exists()
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(ValueError, match="cannot be written"):
            embed_corpus(AUDIO, out, embedder=embedder, speakers=locked / "s.parquet", progress="off")
    # The default, beside the folder, is fine, also where the job creates the folder's parents.
    report = embed_corpus(AUDIO / "bob_1.wav", out, embedder=embedder, speakers=True, progress="off")
    assert report.speakers == tmp_path / "out.speakers.parquet"
    assert report.speakers.exists()
    deep = tmp_path / "new" / "deeper" / "out"
    code, err = _cli(capsys, "corpus", str(AUDIO / "bob_1.wav"), "-o", str(deep), "--speakers", *W)
    assert code == 0, err
    assert (deep.parent / "out.speakers.parquet").exists()


# -- 8. names that are not UTF-8 ------------------------------------------------------------------


def test_a_name_that_is_not_utf8_is_a_row_with_its_name_escaped(
    tmp_path: Path, embedder: SpeakerEmbedder
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(AUDIO / "alice_1.wav", folder / "alice_1.wav")
    shutil.copy(AUDIO / "bob_1.wav", folder / "bob_1.wav")
    odd = os.path.join(os.fsencode(folder), b"caf\xe9.wav")
    try:
        with open(odd, "wb") as f:
            f.write((AUDIO / "carol_1.wav").read_bytes())
    except OSError as exc:
        pytest.skip(f"this file system refuses names that are not UTF-8 ({exc})")
    out = tmp_path / "out"
    report = embed_corpus(folder, out, embedder=embedder, progress="off")
    assert report.embedded + report.failed == 3  # no batch lost
    rows = _rows(out)
    assert set(rows) == {"alice_1.wav", "bob_1.wav", "caf\\xe9.wav"}
    row = rows["caf\\xe9.wav"]
    assert str(row["path"]).endswith("caf\\xe9.wav")
    if row["error"] is not None:
        assert "caf\\xe9.wav" in str(row["error"]) or "caf" not in str(row["error"])
    else:
        reference = embedder.embed_utterances([AUDIO / "carol_1.wav"])[0]
        assert np.abs(np.asarray(row["embedding"]) - reference).max() <= 1e-5
    again = embed_corpus(folder, out, embedder=embedder, progress="off")  # resume finds it done
    assert (again.skipped, again.embedded, again.failed) == (3, 0, 0)


# -- 19. the failure-listing hint -----------------------------------------------------------------


def test_the_failure_listing_hint_runs_with_pyarrow_alone(tmp_path: Path, embedder: SpeakerEmbedder) -> None:
    folder = tmp_path / "it's in"  # a quote in the name: the hint quotes it for the shell
    folder.mkdir()
    shutil.copy(AUDIO / "alice_1.wav", folder / "alice_1.wav")
    (folder / "text.wav").write_bytes(b"this is not audio\n" * 50)
    report = embed_corpus(folder, tmp_path / "o'ut", embedder=embedder, progress="off")
    assert report.failed == 1
    hint = report.summary().split("list the failed inputs with: ")[1].splitlines()[0]
    assert "pandas" not in hint
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    listed = subprocess.run(hint, shell=True, capture_output=True, text=True, timeout=120, env=env)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("text.wav\t")
