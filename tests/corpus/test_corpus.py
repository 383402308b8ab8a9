"""speakerembed.corpus and ``speakerembed corpus``: sources, rows, resume, exit codes.

The corpus is generated in a temporary folder from the bundled voices (and a few shared speech
files when they are there), in several formats and sample rates, with bad files among them.
References are :meth:`SpeakerEmbedder.embed_utterances` on each file, and soundfile's header.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
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

import soundfile as sf  # noqa: E402 - after the skips

from speakerembed import Pipeline, SpeakerEmbedder, embed_corpus, utt_to_spk_embed  # noqa: E402
from speakerembed.cli import main  # noqa: E402
from speakerembed.corpus.sources import (  # noqa: E402
    InputsError,
    Record,
    collect,
    read_file_list,
    read_manifest,
    scan_folder,
)

ROOT = Path(__file__).resolve().parents[2]
AUDIO = ROOT / "examples" / "audio"
W = ["--weights", "resemblyzer", "--device", "cpu"]
SPEAKERS = ("alice", "bob", "carol")


def _resampled(wav: np.ndarray, sr: int, rate: int) -> np.ndarray:
    import soxr

    return wav if rate == sr else soxr.resample(wav, sr, rate).astype(np.float32)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """18 good files in nested folders (WAV 16/48 kHz, FLAC 22.05 kHz, Ogg 44.1 kHz), 2 bad ones,
    and files a scan must skip (hidden, not audio)."""
    root = tmp_path_factory.mktemp("corpus")
    formats = [
        ("wav", 16000, "PCM_16"),
        ("flac", 22050, "PCM_16"),
        ("ogg", 44100, "VORBIS"),
        ("wav", 48000, "FLOAT"),
    ]
    k = 0
    for spk in SPEAKERS:
        for i in (1, 2, 3):
            wav, sr = sf.read(AUDIO / f"{spk}_{i}.wav", dtype="float32")
            for j in range(2):
                ext, rate, subtype = formats[(k + j) % len(formats)]
                folder = root / spk / ("a" if j == 0 else "b/deeper")
                folder.mkdir(parents=True, exist_ok=True)
                sf.write(folder / f"{spk}_{i}.{ext}", _resampled(wav, sr, rate), rate, subtype=subtype)
            k += 1
    (root / "bad").mkdir()
    (root / "bad" / "text.wav").write_bytes(b"this is not audio at all\n" * 20)
    sf.write(root / "bad" / "silent.flac", np.zeros(16000, np.float32), 16000)
    (root / "alice" / "notes.txt").write_text("not audio\n")
    (root / "alice" / ".hidden.wav").write_bytes((AUDIO / "alice_1.wav").read_bytes())
    (root / ".cache").mkdir()
    (root / ".cache" / "x.wav").write_bytes((AUDIO / "alice_1.wav").read_bytes())
    return root


GOOD = 18
BAD = 2


def _read(out: Path) -> dict[str, dict[str, object]]:
    table = pq.read_table(out)
    ids = table.column("id").to_pylist()
    assert len(ids) == len(set(ids)), "an id appears twice"
    return {row["id"]: row for row in table.to_pylist()}


def _reference(embedder: SpeakerEmbedder, path: str, pipeline: Pipeline | None = None) -> np.ndarray:
    return embedder.embed_utterances([path], pipeline=pipeline)[0]


@pytest.fixture(scope="module")
def references(corpus: Path, embedder: SpeakerEmbedder) -> dict[str, np.ndarray]:
    """embed_utterances of every good file of the corpus (default pipeline), by path."""
    paths = [r.path for r in scan_folder(corpus) if not r.id.startswith("bad/")]
    return dict(zip(paths, embedder.embed_utterances(paths), strict=True))


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


# -- rows -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def embedded(corpus: Path, embedder: SpeakerEmbedder, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from speakerembed.corpus import job

    out = tmp_path_factory.mktemp("out") / "embeddings"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(job, "BATCH_SIZE", 6)  # several encoder batches, which do not line up with shards
        report = embed_corpus(corpus, out, embedder=embedder, shard_size=7, workers=0, progress="off")
    assert (report.embedded, report.failed, report.skipped) == (GOOD, BAD, 0)
    return out


def test_each_embedding_equals_embed_utterances(embedded: Path, references: dict[str, np.ndarray]) -> None:
    rows = _read(embedded)
    assert len(rows) == GOOD + BAD
    worst = 0.0
    for row in rows.values():
        if row["error"] is not None:
            continue
        path = str(row["path"])
        ref = references[path]
        got = np.asarray(row["embedding"], dtype=np.float32)
        worst = max(worst, float(np.abs(got - ref).max()))
        info = sf.info(path)
        assert row["sample_rate"] == info.samplerate
        assert row["duration_s"] == pytest.approx(info.frames / info.samplerate)
        assert 0.25 <= row["speech_s"] <= row["duration_s"]
        assert row["n_windows"] >= 1
    assert worst <= 1e-5


def test_bad_files_are_rows_with_their_error(embedded: Path) -> None:
    rows = _read(embedded)
    bad = {k: v for k, v in rows.items() if v["error"] is not None}
    assert set(bad) == {"bad/text.wav", "bad/silent.flac"}
    for row in bad.values():
        assert row["embedding"] is None
        assert row["error_type"] == "AudioError"
    assert "silen" in str(bad["bad/silent.flac"]["error"])


def test_output_reads_as_one_table_with_metadata(embedded: Path, embedder: SpeakerEmbedder) -> None:
    import pandas as pd

    names = sorted(p.name for p in embedded.iterdir())
    assert names == ["_speakerembed.json", "part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    assert len(pd.read_parquet(embedded)) == GOOD + BAD
    table = pq.read_table(embedded)
    assert table.schema.field("embedding").type == pa.list_(pa.float32(), 256)
    meta = json.loads(table.schema.metadata[b"speakerembed"])
    beside = json.loads((embedded / "_speakerembed.json").read_text())
    assert meta == beside
    assert meta["weights_sha256"] == embedder.weights_info.sha256
    assert meta["pipeline"]["top_db"] == embedder.pipeline.top_db
    assert meta["precision"] == "fp32"
    assert {"speakerembed_version", "torch_version", "command"} <= set(meta)


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


# -- engines ----------------------------------------------------------------------------------


def test_worker_processes_and_streaming_give_the_same_rows(
    corpus: Path, embedder: SpeakerEmbedder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from speakerembed.corpus import job

    monkeypatch.setattr(job, "BATCH_SIZE", 4)  # the workers run ahead across batches
    # stream_min_duration_s=4 sends the longer voices through the streaming path.
    pipe = Pipeline(stream_min_duration_s=4.0)
    out = tmp_path / "out"
    report = embed_corpus(corpus / "alice", out, embedder=embedder, pipeline=pipe, workers=1, progress="off")
    assert (report.embedded, report.failed) == (6, 0)
    rows = list(_read(out).values())
    refs = embedder.embed_utterances([str(r["path"]) for r in rows], pipeline=pipe)
    for row, ref in zip(rows, refs, strict=True):
        assert np.abs(np.asarray(row["embedding"]) - ref).max() <= 1e-5
    assert sum(r["duration_s"] >= 4.0 for r in rows) >= 1  # some were streamed


_CRASHING_DECODER = """
import os, signal
if os.environ.get("SPEAKEREMBED_TEST_CRASH_ON"):
    import soundfile

    _init = soundfile.SoundFile.__init__

    def _crashing_init(self, file, *args, **kwargs):
        if os.environ["SPEAKEREMBED_TEST_CRASH_ON"] in str(file):
            os.kill(os.getpid(), signal.SIGSEGV)  # what a decoder bug does to its process
        _init(self, file, *args, **kwargs)

    soundfile.SoundFile.__init__ = _crashing_init
"""


def test_a_worker_killed_by_a_file_makes_an_error_row(
    corpus: Path, embedder: SpeakerEmbedder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    from speakerembed.corpus import job

    monkeypatch.setattr(job, "BATCH_SIZE", 2)
    files = sorted((corpus / "alice").rglob("*.wav")) + sorted((corpus / "bob").rglob("*.wav"))
    poison = tmp_path / "poison_take.wav"
    poison.write_bytes(files[0].read_bytes())
    inputs = [*files[:3], poison, *files[3:]]
    # The worker processes (spawned, so they run sitecustomize) crash natively on "poison".
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(_CRASHING_DECODER)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(hook), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("SPEAKEREMBED_TEST_CRASH_ON", "poison_take")
    out = tmp_path / "out"
    report = embed_corpus(inputs, out, embedder=embedder, workers=2, progress="off")
    assert (report.embedded, report.failed) == (len(files), 1)
    rows = {str(r["path"]): r for r in pq.read_table(out).to_pylist()}
    assert len(rows) == len(inputs)
    bad = rows[str(poison)]
    assert bad["embedding"] is None
    assert bad["error_type"] == "AudioError"
    assert "crash" in bad["error"]
    assert "re-encode" in bad["error"]
    refs = embedder.embed_utterances([str(p) for p in files])
    for path, ref in zip(files, refs, strict=True):
        assert np.abs(np.asarray(rows[str(path)]["embedding"]) - ref).max() <= 1e-5


def test_encoder_workers_need_weights_they_can_load_again(
    corpus: Path, embedder: SpeakerEmbedder, tmp_path: Path
) -> None:
    from speakerembed import ConfigError

    own = SpeakerEmbedder(encoder=embedder.encoder.module)  # weights from a module: "instance"
    with pytest.raises(ConfigError, match=r"workers=0 \(--workers 0\)"):
        embed_corpus(corpus / "alice", tmp_path / "out", embedder=own, workers=1, progress="off")
    # Left to pick, the job runs in line.
    report = embed_corpus(corpus / "alice", tmp_path / "out2", embedder=own, progress="off")
    assert report.embedded == 6


def test_an_encoder_worker_with_other_weights_refuses_to_embed(
    embedder: SpeakerEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run in this process what a worker runs: its weights must be the job's, byte for byte."""
    import torch

    from speakerembed import WeightsError
    from speakerembed.corpus import encoders
    from speakerembed.corpus.schema import corpus_schema
    from speakerembed.corpus.sources import Record
    from speakerembed.corpus.spec import EmbedderSpec

    threads = torch.get_num_threads()
    for name in ("_EMBEDDER", "_SPEC", "_SCHEMA", "_MISMATCH"):
        monkeypatch.setattr(encoders, name, None)
    monkeypatch.setattr("signal.signal", lambda *_: None)
    monkeypatch.setattr("logging.Logger.addHandler", lambda *_: None)
    # _init makes the library's logger quiet, as a worker's should be; undone after the test.
    monkeypatch.setattr(logging.getLogger("speakerembed"), "propagate", True)
    good = EmbedderSpec.of(embedder, device="cpu", threads=threads)
    encoders._init(good, corpus_schema())
    assert encoders._MISMATCH is None
    encoders._init(dataclasses.replace(good, weights_sha256="0" * 64), corpus_schema())
    with pytest.raises(WeightsError, match="sha256"):
        encoders._embed([Record("a", "a.wav")])


def test_default_encoders_follow_the_job_and_the_main_script(
    embedder: SpeakerEmbedder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import types

    from speakerembed._engine.workers import plan_workers
    from speakerembed.corpus import encoders
    from speakerembed.corpus.job import Job
    from speakerembed.corpus.sources import Record

    def job(n: int) -> Job:
        records = [Record(str(i), f"{i}.wav") for i in range(n)]
        return Job(records, None, embedder.pipeline, embedder, None, None)  # type: ignore[arg-type]

    guarded, bare = tmp_path / "guarded.py", tmp_path / "bare.py"
    guarded.write_text('def main():\n    pass\n\nif __name__ == "__main__":\n    main()\n')
    bare.write_text("from speakerembed import embed_corpus\nembed_corpus('x', 'y')\n")
    for path, ok in ((guarded, True), (bare, False)):
        fake = types.ModuleType("__main__")
        fake.__file__ = str(path)
        monkeypatch.setitem(sys.modules, "__main__", fake)
        assert encoders.main_is_guarded() is ok
        expected = max(0, plan_workers(device="cpu").workers - 1) if ok else 0
        assert encoders.default_encoders(job(encoders.MIN_RECORDS)) == expected
        assert encoders.default_encoders(job(encoders.MIN_RECORDS - 1)) == 0
    monkeypatch.setitem(sys.modules, "__main__", types.ModuleType("__main__"))  # python -c, a REPL
    assert encoders.main_is_guarded()


def test_gpu_default_workers_run_small_or_unguarded_jobs_in_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from speakerembed.corpus import encoders
    from speakerembed.corpus.engine import default_workers, gpu_default_workers

    monkeypatch.setattr(encoders, "main_is_guarded", lambda: True)
    assert gpu_default_workers(encoders.MIN_RECORDS - 1) == 0
    assert gpu_default_workers(encoders.MIN_RECORDS) == default_workers("cuda") >= 1
    monkeypatch.setattr(encoders, "main_is_guarded", lambda: False)
    assert gpu_default_workers(10 * encoders.MIN_RECORDS) == 0


def test_speakers_file_is_beside_the_folder(corpus: Path, embedder: SpeakerEmbedder, tmp_path: Path) -> None:
    rows = [
        {"path": str(p), "speaker": p.name.split("_")[0]}
        for p in sorted((corpus / "alice" / "a").iterdir()) + sorted((corpus / "bob" / "a").iterdir())
    ] + [{"path": str(corpus / "bad" / "text.wav"), "speaker": "bob"}]
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out"
    report = embed_corpus(manifest=manifest, output=out, embedder=embedder, speakers=True, progress="off")
    assert report.speakers == tmp_path / "out.speakers.parquet"
    spk = pq.read_table(report.speakers).to_pylist()
    assert [s["speaker"] for s in spk] == ["alice", "bob"]
    assert [(s["n_utterances"], s["n_failed"]) for s in spk] == [(3, 0), (3, 1)]
    table = pq.read_table(out)  # the folder still reads as one table
    for s in spk:
        utts = [
            r["embedding"] for r in table.to_pylist() if r["speaker"] == s["speaker"] and r["error"] is None
        ]
        np.testing.assert_allclose(s["embedding"], utt_to_spk_embed(np.asarray(utts, np.float32)), atol=1e-6)


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


# -- progress ---------------------------------------------------------------------------------


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_on_a_terminal_and_log_lines_elsewhere(
    corpus: Path, embedder: SpeakerEmbedder, tmp_path: Path
) -> None:
    from speakerembed.corpus import progress as prog

    term = _Terminal()
    embed_corpus(corpus / "bad", tmp_path / "a", embedder=embedder, progress_stream=term)
    text = term.getvalue()
    assert "2/2" in text
    assert "file" in text
    assert "x real time" in text
    assert "2 failed" in text
    log = io.StringIO()
    show = prog.Progress(3, "auto", log, interval_s=0.0)
    assert show.mode == "log"
    table = pq.read_table(tmp_path / "a")
    show.update(table)
    show.close()
    lines = log.getvalue().splitlines()
    assert any(line.startswith("speakerembed: 2/3 files,") and "ETA" in line for line in lines)
    quiet = io.StringIO()
    embed_corpus(corpus / "bad", tmp_path / "b", embedder=embedder, progress="off", progress_stream=quiet)
    assert quiet.getvalue() == ""


def test_a_pyarrow_that_cannot_be_imported_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # E.g. pyarrow 26+ beside the NumPy 1.x that chatterbox-tts pins: installed, but not importable.
    import importlib.util
    import sys

    from speakerembed import BackendUnavailableError
    from speakerembed.corpus.api import require_corpus_packages

    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: object())  # "installed"
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # `import pyarrow` now raises ImportError
    with pytest.raises(BackendUnavailableError) as info:
        require_corpus_packages("speakerembed corpus")
    message = str(info.value)
    assert message.startswith("speakerembed corpus needs pyarrow, which is installed but cannot be imported")
    assert "pip install 'pyarrow<26'" in message
