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

ROOT = Path(__file__).resolve().parents[1]

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
    assert plan_actors({"CPU": 32.0, "GPU": 4.0}, workers=2).actors == 2
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


def _schema() -> pa.Schema:
    import pyarrow as pa

    from speakerembed.corpus.schema import corpus_schema

    return corpus_schema([pa.field("take", pa.int64())], {"test": "ray"})


def _embeddings(table: pa.Table) -> np.ndarray:
    return np.stack([np.asarray(v, dtype=np.float32) for v in table.column("embedding").to_pylist() if v])


@pytest.mark.ray
def test_ray_rows_equal_the_local_engine_rows(
    local_ray: Any, tmp_path: Path, embedder: SpeakerEmbedder, request: pytest.FixtureRequest
) -> None:
    import pyarrow as pa

    from speakerembed.corpus.batch import embed_batch
    from speakerembed.corpus.ray_engine import run_ray

    try:
        speech: Path | None = request.getfixturevalue("speech")
    except pytest.skip.Exception:
        speech = None
    records = _corpus(tmp_path, speech)
    schema = _schema()
    tables = list(run_ray(records, embedder, weights="resemblyzer", schema=schema, workers=2, batch_size=2))
    assert len(tables) == -(-len(records) // 2)  # one table per batch: results stream back
    got = pa.concat_tables(tables).sort_by("id")
    assert got.schema == schema  # the job's schema, metadata included
    want = embed_batch(sorted(records, key=lambda r: r.id), embedder, schema=schema)
    assert got.column("id").to_pylist() == sorted(r.id for r in records)
    # Every column but the embedding is equal; embeddings to float32 round-off.
    assert got.drop_columns(["embedding"]).equals(want.drop_columns(["embedding"]))
    np.testing.assert_allclose(_embeddings(got), _embeddings(want), rtol=0, atol=1e-6)
    # And each equals what embed_utterances gives for the same file (the reference).
    ok = [r for r in sorted(records, key=lambda r: r.id) if not r.id.startswith("bad")]
    reference = embedder.embed_utterances([r.path for r in ok])
    np.testing.assert_allclose(_embeddings(got), reference, rtol=0, atol=1e-5)
    errors = dict(zip(got.column("id").to_pylist(), got.column("error_type").to_pylist(), strict=True))
    assert errors["bad-text"] == "AudioError"
    assert errors["bad-empty"] == "AudioError"
    assert got.column("speaker").to_pylist() == [r.speaker for r in sorted(records, key=lambda r: r.id)]


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
