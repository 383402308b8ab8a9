"""The local engine: decode workers, encoder workers, their defaults, and workers that die.

The corpus and its references are built in ``conftest.py``, from ``_corpus_data.py``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
from pathlib import Path

import numpy as np
import pytest

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from _corpus_data import _read  # noqa: E402

from speakerembed import Pipeline, SpeakerEmbedder, embed_corpus  # noqa: E402
from speakerembed.corpus.sources import (  # noqa: E402
    Record,
)

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


@pytest.mark.skipif(not Path("/dev/shm").is_dir(), reason="counts shared-memory segments in /dev/shm (Linux)")
def test_decode_workers_give_the_rows_of_in_line_preparation(
    librispeech_files: list[Path], embedder: SpeakerEmbedder, tmp_path: Path
) -> None:
    """The GPU's decode pool, run on the CPU: mels through shared memory, long files streamed here."""
    import soundfile as sf

    from speakerembed._engine.processes import SEGMENT_PREFIX
    from speakerembed.corpus.batch import encode_outcomes
    from speakerembed.corpus.decode_pool import inline, pooled

    bad = tmp_path / "text.wav"
    bad.write_bytes(b"this is not audio at all\n" * 20)
    silent = tmp_path / "silent.flac"
    sf.write(silent, np.zeros(16000, np.float32), 16000)
    paths = [str(p) for p in librispeech_files[::5][:12]]
    paths[3:3] = [str(bad)]
    paths[8:8] = [str(silent)]
    records = [Record(f"r{i}", p) for i, p in enumerate(paths)]
    pipe = Pipeline(stream_min_duration_s=6.0)
    assert any(sf.info(p).duration >= 6.0 for p in paths if p.endswith(".flac") and "silent" not in p)
    table = encode_outcomes(records, pooled(records, pipe, 2, embedder), embedder, pipe).to_pylist()
    ref = encode_outcomes(records, inline(records, pipe, embedder), embedder, pipe).to_pylist()
    assert not list(Path("/dev/shm").glob(f"{SEGMENT_PREFIX}{os.getpid()}-*"))
    assert [r["error_type"] for r in table] == [r["error_type"] for r in ref]
    assert [r["error"] for r in table] == [r["error"] for r in ref]
    assert [i for i, r in enumerate(table) if r["error"]] == [3, 8]
    for row, want in zip(table, ref, strict=True):
        assert (row["duration_s"], row["speech_s"], row["n_windows"]) == (
            want["duration_s"],
            want["speech_s"],
            want["n_windows"],
        )
        if want["embedding"] is not None:
            a, b = np.asarray(row["embedding"]), np.asarray(want["embedding"])
            assert float(a @ b) >= 0.999999
            np.testing.assert_allclose(a, b, atol=1e-6)


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

    def job(n: int) -> Job:
        records = [Record(str(i), f"{i}.wav") for i in range(n)]
        return Job(records, None, embedder.pipeline, embedder, None, None)  # type: ignore[arg-type]

    monkeypatch.setattr(encoders, "usable_cores", lambda: encoders.MIN_CORES)
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
        # Below MIN_CORES the job's own encoder streams run it (they were faster on 2 cores).
        monkeypatch.setattr(encoders, "usable_cores", lambda: encoders.MIN_CORES - 1)
        assert encoders.default_encoders(job(10 * encoders.MIN_RECORDS)) == 0
        monkeypatch.setattr(encoders, "usable_cores", lambda: encoders.MIN_CORES)
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


def test_in_line_job_encodes_across_its_batches_of_rows(
    corpus: Path,
    embedder: SpeakerEmbedder,
    references: dict[str, np.ndarray],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Tables of 3 rows, but one encoder stream: windows of several tables share encoder calls."""
    from speakerembed.corpus import job
    from speakerembed.corpus.sources import scan_folder

    monkeypatch.setattr(job, "BATCH_SIZE", 3)
    records = scan_folder(corpus)  # 18 good files and 2 bad ones, the bad ones in the middle
    paths = [r.path for r in records]
    assert any(p.endswith("silent.flac") for p in paths[3:-3])
    calls: list[int] = []
    real = embedder.engine.encoder

    class Spy:
        device = real.device
        concurrent_calls = getattr(real, "concurrent_calls", False)

        def __call__(self, windows: object) -> object:
            calls.append(int(windows.shape[0]))  # type: ignore[attr-defined]
            return real(windows)

        def embed_concurrently(self, windows: object) -> object:
            calls.append(int(windows.shape[0]))  # type: ignore[attr-defined]
            return real.embed_concurrently(windows)

    monkeypatch.setattr(embedder.engine, "encoder", Spy())
    out = tmp_path / "out"
    report = embed_corpus(paths, out, embedder=embedder, workers=0, progress="off")
    assert (report.embedded, report.failed) == (18, 2)
    tables = -(-len(paths) // 3)
    # Encoding each table of 3 on its own takes at least one call a table.
    assert len(calls) < tables, calls
    rows = _read(out)
    assert list(rows) == paths  # every row, in input order (a list's ids are its paths)
    for r in records:
        row = rows[r.path]
        if r.id.startswith("bad/"):
            assert row["embedding"] is None
            assert row["error"]
        else:
            assert row["error"] is None
            assert np.abs(np.asarray(row["embedding"]) - references[r.path]).max() <= 1e-5
