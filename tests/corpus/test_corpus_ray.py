"""The Ray Data engine of ``corpus`` (speakerembed.corpus.ray_engine), on a local Ray.

Tests marked ``ray`` start one local Ray (2 CPUs) for the module and need ``ray[data]``
(``nox -s tests_ray``); the default ``tests`` session deselects them. The planning, address and
missing-Ray tests need no Ray and run everywhere.
"""

from __future__ import annotations

import shutil
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from speakerembed import BackendUnavailableError, ConfigError, SpeakerEmbedError, WeightsError
from speakerembed.corpus.ray_engine import _check_reachable, plan_actors, ray_session

if TYPE_CHECKING:
    import pyarrow as pa

    from speakerembed import SpeakerEmbedder
    from speakerembed.corpus.sources import Record

ROOT = Path(__file__).resolve().parents[2]

# -- planning, addresses, a missing Ray: no Ray needed ------------------------------------------


def test_plan_cpu_cluster_gives_one_single_thread_actor_per_cpu() -> None:
    plan = plan_actors({"CPU": 8.0})
    assert (plan.actors, plan.threads, plan.num_cpus, plan.num_gpus, plan.device) == (8, 1, 1, 0, "cpu")
    plan = plan_actors({"CPU": 8.0}, threads=3)
    assert (plan.actors, plan.threads, plan.num_cpus) == (2, 3, 3)
    assert plan_actors({"CPU": 1.0}, threads=4).actors == 1


def test_plan_gpu_cluster_gives_one_actor_per_gpu_unless_cpu_is_asked() -> None:
    plan = plan_actors({"CPU": 32.0, "GPU": 4.0})
    assert (plan.actors, plan.num_gpus, plan.num_cpus, plan.device) == (4, 1, 1, "cuda")
    assert plan_actors({"CPU": 32.0, "GPU": 4.0}, workers=2).num_gpus == 1
    shared = plan_actors({"CPU": 32.0, "GPU": 2.0}, workers=6)  # 3 decoding actors per GPU
    assert shared.actors == 6
    assert shared.num_gpus * shared.actors <= 2
    assert shared.num_gpus == pytest.approx(1 / 3, abs=1e-3)
    cpu = plan_actors({"CPU": 32.0, "GPU": 4.0}, device="cpu")
    assert (cpu.actors, cpu.num_gpus, cpu.device) == (32, 0, "cpu")


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"device": "cuda"}, "no GPU"),
        ({"device": "cuda:1"}, "no GPU"),
        ({"device": "mps"}, "mps"),
        ({"workers": 0}, "--workers"),
        ({"threads": 0}, "--threads"),
    ],
)
def test_plan_refuses_what_the_cluster_cannot_do(kwargs: dict[str, Any], words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        plan_actors({"CPU": 4.0}, **kwargs)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_unreachable_address_fails_fast_and_names_it() -> None:
    address = f"127.0.0.1:{_free_port()}"
    with pytest.raises(SpeakerEmbedError, match=r"--ray-address.*RAY_ADDRESS") as info:
        _check_reachable(address)
    assert address in str(info.value)
    _check_reachable("auto")  # left to Ray: no port to try


def test_missing_ray_is_a_backend_error_naming_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(BackendUnavailableError, match=r"speakerembed\[ray\]"), ray_session():
        pass


# -- on a local Ray -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def local_ray() -> Iterator[Any]:
    """One local Ray with 2 CPUs for the module (the engine uses it and leaves it running)."""
    ray = pytest.importorskip("ray", reason="needs ray[data]: pip install 'speakerembed[ray]'")
    pytest.importorskip("ray.data", reason="needs ray[data]: pip install 'speakerembed[ray]'")
    with ray_session(num_cpus=2):
        yield ray
    assert not ray.is_initialized()


def _corpus(root: Path, speech: Path | None) -> list[Record]:
    """About ten files in several formats and rates, two bad ones, speakers and a carried column."""
    from speakerembed.corpus.sources import Record

    audio = root / "audio"
    (audio / "nested").mkdir(parents=True)
    voices = ("alice_1", "alice_2", "bob_1", "carol_1")
    picks = [ROOT / "examples" / "audio" / f"{name}.wav" for name in voices]
    if speech is not None:
        picks += [
            speech / "ljspeech" / "LJ001-0002.wav",  # 22.05 kHz
            speech / "misc" / "commonvoice_48k.mp3",  # MP3, 48 kHz
            speech / "misc" / "libritts_24k.wav",  # 24 kHz
            speech / "librispeech" / "3005" / "3005-163389-0007.flac",  # FLAC
        ]
    records = []
    for i, src in enumerate(picks):
        dst = audio / ("nested" if i % 2 else "") / src.name
        shutil.copyfile(src, dst)
        records.append(Record(f"utt{i:02d}", str(dst), speaker=src.stem[:4], extra={"take": i}))
    (audio / "not_audio.wav").write_text("this is not a WAV file\n")
    (audio / "empty.flac").write_bytes(b"")
    records.append(Record("bad-text", str(audio / "not_audio.wav"), speaker="none", extra={"take": 98}))
    records.append(Record("bad-empty", str(audio / "empty.flac"), speaker=None, extra={"take": 99}))
    return records


def _embeddings(table: pa.Table) -> np.ndarray:
    return np.stack([np.asarray(v, dtype=np.float32) for v in table.column("embedding").to_pylist() if v])


@pytest.mark.ray
def test_an_actor_with_other_weights_fails_the_job_with_a_weights_error(
    local_ray: Any, tmp_path: Path, embedder: SpeakerEmbedder
) -> None:
    import types

    from speakerembed import WeightsInfo
    from speakerembed.corpus.ray_engine import run_ray

    records = _corpus(tmp_path, None)[:2]
    other = types.SimpleNamespace(
        precision=embedder.precision,
        pipeline=embedder.pipeline,
        weights_info=WeightsInfo("resemblyzer", None, "0" * 64),
    )
    with pytest.raises(WeightsError, match=r"sha256.*same weights on every node"):
        list(run_ray(records, other, weights="resemblyzer", workers=1))  # type: ignore[arg-type]


# -- the whole job: embed_corpus(engine="ray") and `speakerembed corpus --engine ray` ----------


def _manifest(path: Path, records: list[Record]) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table(
        {
            "id": [r.id for r in records],
            "path": [r.path for r in records],
            "speaker": [r.speaker for r in records],
            "take": [r.extra["take"] for r in records],
        }
    )
    pq.write_table(table, path)
    return path


def _read(out: Path) -> pa.Table:
    import pyarrow.parquet as pq

    return pq.read_table(out).sort_by("id")


@pytest.mark.ray
def test_embed_corpus_ray_writes_the_local_engines_dataset_and_resumes_by_id(
    local_ray: Any, tmp_path: Path, embedder: SpeakerEmbedder, request: pytest.FixtureRequest
) -> None:
    import json

    from speakerembed import embed_corpus
    from speakerembed.corpus.schema import METADATA_KEY, settings_key

    try:
        speech: Path | None = request.getfixturevalue("speech")
    except pytest.skip.Exception:
        speech = None
    records = _corpus(tmp_path, speech)
    full = _manifest(tmp_path / "all.parquet", records)
    half = _manifest(tmp_path / "half.parquet", records[: len(records) // 2])
    common: dict[str, Any] = {"embedder": embedder, "progress": "off", "shard_size": 3}

    local = embed_corpus(manifest=full, output=tmp_path / "local", engine="local", workers=0, **common)
    first = embed_corpus(manifest=half, output=tmp_path / "ray", engine="ray", workers=2, **common)
    assert (first.embedded + first.failed, first.skipped) == (len(records) // 2, 0)
    second = embed_corpus(manifest=full, output=tmp_path / "ray", engine="ray", workers=2, **common)
    # Resume by id: the first run's inputs are skipped, the others run once.
    assert second.skipped == len(records) // 2
    assert second.embedded + second.failed == len(records) - len(records) // 2
    assert (first.failed + second.failed, local.failed) == (2, 2)

    got, want = _read(tmp_path / "ray"), _read(tmp_path / "local")
    assert got.column("id").to_pylist() == sorted(r.id for r in records)  # every id once
    assert got.drop_columns(["embedding"]).equals(want.drop_columns(["embedding"]))
    np.testing.assert_allclose(_embeddings(got), _embeddings(want), rtol=0, atol=1e-6)
    # And each embedding equals what embed_utterances gives for the same file (the test).
    ok = [r for r in sorted(records, key=lambda r: r.id) if not r.id.startswith("bad")]
    np.testing.assert_allclose(_embeddings(got), embedder.embed_utterances([r.path for r in ok]), atol=1e-5)
    assert got.column("speaker").to_pylist() == [r.speaker for r in sorted(records, key=lambda r: r.id)]
    assert got.column("take").to_pylist() == [r.extra["take"] for r in sorted(records, key=lambda r: r.id)]
    meta_ray = json.loads(got.schema.metadata[METADATA_KEY])
    meta_local = json.loads(want.schema.metadata[METADATA_KEY])
    assert settings_key(meta_ray) == settings_key(meta_local)

    third = embed_corpus(manifest=full, output=tmp_path / "ray", engine="ray", workers=2, **common)
    assert (third.embedded, third.failed, third.skipped) == (0, 0, len(records))
    assert _read(tmp_path / "ray").equals(got)


@pytest.mark.ray
def test_cli_engine_ray_exit_codes(
    local_ray: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from speakerembed.cli import main

    folder = tmp_path / "clips"
    folder.mkdir()
    for name in ("alice_1", "bob_1", "carol_1"):
        shutil.copyfile(ROOT / "examples" / "audio" / f"{name}.wav", folder / f"{name}.wav")
    out = tmp_path / "out"
    base = ["corpus", str(folder), "-o", str(out), "--engine", "ray", "--weights", "resemblyzer"]
    base += ["--device", "cpu", "--workers", "1", "--quiet"]
    assert main(base) == 0
    (folder / "broken.wav").write_bytes(b"RIFF but not really")
    assert main(base) == 3  # finished, one input failed: it is a row with its error
    assert "failed" in capsys.readouterr().err
    table = _read(out)
    assert table.column("id").to_pylist() == ["alice_1.wav", "bob_1.wav", "broken.wav", "carol_1.wav"]
    assert table.column("error_type").to_pylist()[2] == "AudioError"
    (folder / "broken.wav").unlink()
    shutil.copyfile(ROOT / "examples" / "audio" / "bob_2.wav", folder / "broken.wav")
    assert main([*base, "--retry-failed"]) == 0  # the error row is embedded again
    assert _read(out).column("error").null_count == 4
    (folder / "zz_broken.wav").write_bytes(b"not audio")
    fresh = [*base[:3], str(tmp_path / "fresh"), *base[4:]]
    assert main([*fresh, "--fail-fast"]) == 3  # stops at the failure, keeping the rows before it
    kept = _read(tmp_path / "fresh")
    assert kept.column("error_type").to_pylist()[-1] == "AudioError"
    assert kept.column("id").to_pylist()[-1] == "zz_broken.wav"
    local = [a if a != "ray" else "local" for a in base]
    assert main([*local, "--ray-address", "auto"]) == 2  # bad usage: --ray-address needs --engine ray
    capsys.readouterr()


@pytest.mark.ray
def test_cli_unreachable_ray_address_exits_1_naming_the_flag(tmp_path: Path) -> None:
    import subprocess

    pytest.importorskip("ray", reason="needs ray[data]: pip install 'speakerembed[ray]'")
    address = f"127.0.0.1:{_free_port()}"
    cmd = [sys.executable, "-m", "speakerembed", "corpus", str(ROOT / "examples" / "audio" / "alice_1.wav")]
    cmd += ["-o", str(tmp_path / "out"), "--engine", "ray", "--ray-address", address]
    cmd += ["--weights", "resemblyzer", "--device", "cpu", "--quiet"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False, cwd=ROOT)
    assert done.returncode == 1, done.stderr
    assert address in done.stderr
    assert "--ray-address" in done.stderr
