"""The voice library: storage, exact search, open-set answers, errors, the CLI."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from conftest import EXAMPLE_AUDIO

from speakerembed import ConfigError, LibraryError, UnknownVoiceError, VoiceLibrary
from speakerembed.cli import main
from speakerembed.voices import Identification, Match, check_name, open_set_threshold


def unit(rows: npt.ArrayLike) -> npt.NDArray[np.float32]:
    x = np.asarray(rows, dtype=np.float64)
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def voices(n: int, seed: int = 0) -> npt.NDArray[np.float32]:
    # Non-negative, like the encoder's ReLU outputs.
    return unit(np.abs(np.random.default_rng(seed).normal(size=(n, 256))))


@pytest.fixture
def lib(tmp_path: Path) -> VoiceLibrary:
    return VoiceLibrary(tmp_path / "voices.db", weights="resemblyzer")


def test_names_are_checked() -> None:
    for good in ("alice", "Bob_2", "ana-maría", "x.y@z+1", "two words"):
        assert check_name(good) == good
    for bad in ("", " lead", "trail ", "a/b", "a\nb", "../etc", "_x", "x" * 129, 3, None):
        with pytest.raises(ConfigError, match="not allowed"):
            check_name(bad)


def test_threshold_rises_with_the_library_and_falls_with_the_false_alarm_rate() -> None:
    sizes = [1, 10, 1000, 10**6]
    ts = [open_set_threshold(n, 0.01, 0.55, 0.075) for n in sizes]
    assert ts == sorted(ts)
    assert ts[0] < ts[-1]
    assert open_set_threshold(100, 0.001, 0.55, 0.075) > open_set_threshold(100, 0.05, 0.55, 0.075)
    # One voice: the threshold is the impostor distribution's 99th percentile.
    assert open_set_threshold(1, 0.01, 0.0, 1.0) == pytest.approx(2.3263, abs=1e-3)
    # The chance the best of n normal impostors passes it is the false-alarm rate.
    rng = np.random.default_rng(0)
    t = open_set_threshold(50, 0.05, 0.0, 1.0)
    assert np.mean(rng.normal(size=(20000, 50)).max(axis=1) > t) == pytest.approx(0.05, abs=0.006)
    with pytest.raises(ConfigError, match="false_alarm"):
        open_set_threshold(10, 1.5, 0.5, 0.1)


def test_add_get_remove_and_exact_search(lib: VoiceLibrary, tmp_path: Path) -> None:
    v = voices(3000)
    names = [f"v{i}" for i in range(3000)]
    assert lib.add_embeddings(names, v) == 3000
    assert lib.names() == names
    assert len(lib) == 3000
    assert "v7" in lib
    got = lib.get("v7")
    np.testing.assert_array_equal(got.embedding, v[7])
    assert got.clips == ()
    assert got.weights.name == "resemblyzer"
    assert got.weights.sha256
    queries = unit(v[[5, 2999, 100]] + 0.05 * voices(3, seed=1))
    answers = lib.identify_embeddings(queries, top_k=4)
    brute = queries @ v.T
    for answer, row in zip(answers, brute, strict=True):
        assert isinstance(answer, Identification)
        assert isinstance(answer[0], Match)
        order = np.argsort(-row)[:4]
        assert [m.voice for m in answer] == [names[i] for i in order]
        np.testing.assert_allclose([m.score for m in answer], row[order], atol=1e-5)
    near = lib.nearest("v5", 3)
    order = [i for i in np.argsort(-(v @ v[5])) if i != 5][:3]
    assert [m.voice for m in near] == [names[i] for i in order]
    lib.remove("v5")
    assert "v5" not in lib
    assert len(lib) == 2999
    assert lib.identify_embeddings(v[5])[0][0].voice != "v5"
    with pytest.raises(UnknownVoiceError, match="'v5'"):
        lib.remove("v5")
    with pytest.raises(UnknownVoiceError, match="'nobody'"):
        lib.get("nobody")
    with pytest.raises(UnknownVoiceError, match="'nobody'"):
        lib.nearest("nobody")


def test_an_existing_name_needs_replace(lib: VoiceLibrary) -> None:
    v = voices(3)
    lib.add_embeddings(["a", "b"], v[:2])
    with pytest.raises(ConfigError, match=r"'b'.*replace=True"):
        lib.add_embeddings(["c", "b"], v[1:3])
    assert lib.names() == ["a", "b"]  # nothing of the failed call was stored
    lib.add_embeddings(["b"], v[2:3], replace=True)
    np.testing.assert_allclose(lib.get("b").embedding, v[2], atol=1e-6)
    assert lib.identify_embeddings(v[2])[0][0].voice == "b"
    with pytest.raises(ConfigError, match="more than once"):
        lib.add_embeddings(["x", "x"], v[:2])


def test_bad_rows_are_refused(lib: VoiceLibrary) -> None:
    with pytest.raises(ConfigError, match="shape"):
        lib.add_embeddings(["a"], np.ones((1, 128)))
    with pytest.raises(ConfigError, match="not finite"):
        lib.add_embeddings(["a", "b"], np.stack([np.ones(256), np.full(256, np.nan)]))
    with pytest.raises(ConfigError, match="all zeros"):
        lib.add_embeddings(["a"], np.zeros((1, 256)))
    with pytest.raises(ConfigError, match="top_k"):
        lib.identify_embeddings(np.ones(256), top_k=0)
    assert len(lib) == 0


def test_an_empty_library_answers_null_and_says_why(lib: VoiceLibrary) -> None:
    (answer,) = lib.identify_embeddings(voices(1))
    assert answer.voice is None
    assert answer.score is None
    assert len(answer) == 0
    assert "empty" in answer.reason
    assert answer.to_dict()["voice"] is None


def test_another_process_sees_changes(lib: VoiceLibrary, tmp_path: Path) -> None:
    other = VoiceLibrary(tmp_path / "voices.db")
    v = voices(4)
    lib.add_embeddings(["a", "b"], v[:2])
    assert other.identify_embeddings(v[1])[0][0].voice == "b"
    other.add_embeddings(["c"], v[2:3])
    lib.remove("a")
    assert lib.identify_embeddings(v[2])[0][0].voice == "c"
    assert [m.voice for m in other.identify_embeddings(v[0], top_k=5)[0]] != ["a"]
    assert sorted(other.names()) == ["b", "c"]


def test_other_weights_are_refused_with_both_sha256s(tmp_path: Path, weights_file: Path) -> None:
    path = tmp_path / "voices.db"
    made = VoiceLibrary(path, weights="resemblyzer")
    made.add_embeddings(["a"], voices(1))
    mine = made.weights.sha256
    assert mine is not None
    with pytest.raises(LibraryError) as info:
        VoiceLibrary(path, weights=weights_file)
    text = str(info.value)
    assert mine in text
    assert "sha256" in text
    assert text.count("sha256") >= 2
    from speakerembed.weights import resolve_weights

    assert str(resolve_weights(weights_file).sha256) in text
    with pytest.raises(LibraryError, match=mine):
        made.add_embeddings(["b"], voices(1), weights_sha256="0" * 64)


def test_another_pipeline_is_refused(tmp_path: Path) -> None:
    from speakerembed import Pipeline

    path = tmp_path / "voices.db"
    VoiceLibrary(path, weights="resemblyzer", pipeline=Pipeline(top_db=30))
    assert VoiceLibrary(path).pipeline.top_db == 30
    with pytest.raises(LibraryError, match="top_db"):
        VoiceLibrary(path, pipeline=Pipeline())


def test_a_corrupt_file_and_another_database_are_one_clear_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(LibraryError, match="not a voice library or is corrupt"):
        VoiceLibrary(junk, weights="resemblyzer")
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE things (x)")
    with pytest.raises(LibraryError, match="something else"):
        VoiceLibrary(other, weights="resemblyzer")
    with pytest.raises(LibraryError, match="folder"):
        VoiceLibrary(tmp_path, weights="resemblyzer")


def test_a_locked_library_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "voices.db"
    VoiceLibrary(path, weights="resemblyzer")
    lib = VoiceLibrary(path, busy_timeout_s=0.2)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(LibraryError, match="locked"):
            lib.add_embeddings(["a"], voices(1))
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    lib.add_embeddings(["a"], voices(1))
    assert lib.names() == ["a"]


def test_conditioning_is_stored_and_given_back(lib: VoiceLibrary) -> None:
    lib.add_embeddings(["a"], voices(1))
    with pytest.raises(LibraryError, match="no conditioning"):
        lib.conditioning("a")
    cond = np.random.default_rng(3).random(256).astype(np.float32)
    lib.set_conditioning("a", cond)
    np.testing.assert_array_equal(lib.conditioning("a"), cond)
    with pytest.raises(UnknownVoiceError):
        lib.set_conditioning("zed", cond)


def test_import_of_a_corpus_speakers_table(lib: VoiceLibrary, tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from speakerembed.corpus.schema import METADATA_KEY

    v = voices(3)
    emb = pa.FixedSizeListArray.from_arrays(
        pa.array(v.reshape(-1), pa.float32()), 256, mask=pa.array([False, True, False])
    )
    table = pa.table({"speaker": ["s1", "s2", "s3"], "embedding": emb})
    plain = tmp_path / "out.speakers.parquet"
    pq.write_table(table, plain)
    with pytest.raises(LibraryError, match="weights_sha256"):
        lib.import_speakers(plain)
    # The corpus folder beside it records the weights.
    (tmp_path / "out").mkdir()
    meta = {METADATA_KEY: json.dumps({"weights_sha256": lib.weights.sha256}).encode()}
    pq.write_table(pa.table({"x": [1]}).replace_schema_metadata(meta), tmp_path / "out" / "part-0.parquet")
    assert lib.import_speakers(plain) == 2
    assert lib.names() == ["s1", "s3"]
    np.testing.assert_allclose(lib.get("s3").embedding, v[2], atol=1e-6)
    other = tmp_path / "other.speakers.parquet"
    pq.write_table(
        table.replace_schema_metadata({METADATA_KEY: json.dumps({"weights_sha256": "f" * 64})}), other
    )
    with pytest.raises(LibraryError, match="f" * 64):
        lib.import_speakers(other, replace=True)


def test_threads_share_one_library(lib: VoiceLibrary) -> None:
    from concurrent.futures import ThreadPoolExecutor

    v = voices(400)

    def work(i: int) -> str | None:
        lib.add_embeddings([f"t{i}"], v[i : i + 1])
        return lib.identify_embeddings(v[i])[0][0].voice

    with ThreadPoolExecutor(8) as pool:
        found = list(pool.map(work, range(400)))
    assert found == [f"t{i}" for i in range(400)]
    assert sorted(lib.names()) == sorted(f"t{i}" for i in range(400))


# -- with the encoder: enroll, identify, the CLI --------------------------------------------------


def test_enroll_and_identify_clips(tmp_path: Path, embedder: object) -> None:
    lib = VoiceLibrary(tmp_path / "voices.db", embedder=embedder)  # type: ignore[arg-type]
    a = EXAMPLE_AUDIO
    voice = lib.enroll("alice", [a / "alice_1.wav", a / "alice_2.wav"], conditioning=True)
    lib.enroll("bob", [a / "bob_1.wav", a / "bob_2.wav"])
    assert voice.clips == (str(a / "alice_1.wav"), str(a / "alice_2.wav"))
    assert voice.conditioning is not None
    assert lib.get("bob").conditioning is None
    alice, bob = lib.identify([a / "alice_3.wav", a / "bob_3.wav"])
    assert alice.voice == "alice"
    assert alice[0].accepted
    assert alice.score is not None
    assert bob.voice == "bob"
    assert bob.threshold is not None
    assert bob.score is not None
    assert bob.score > bob.threshold
    with pytest.raises(ConfigError, match="replace=True"):
        lib.enroll("alice", [a / "alice_3.wav"])


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_voices(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    a = EXAMPLE_AUDIO
    lib = str(tmp_path / "voices.db")
    code, _, err = run_cli(capsys, "voices", "list", "--library", lib)
    assert code == 1
    assert "no library" in err
    assert "Traceback" not in err
    common = ("--library", lib)
    code, _, err = run_cli(
        capsys, "voices", "enroll", "alice", str(a / "alice_1.wav"), str(a / "alice_2.wav"), *common,
        "--weights", "resemblyzer", "--device", "cpu",
    )  # fmt: skip
    assert code == 0, err
    code, _, err = run_cli(
        capsys, "voices", "enroll", "bob", str(a / "bob_1.wav"), str(a / "bob_2.wav"), *common
    )
    assert code == 0, err
    code, _, err = run_cli(capsys, "voices", "enroll", "bob", str(a / "bob_3.wav"), *common)
    assert code == 1
    assert "--replace" in err
    assert "replace=True" not in err
    out_path = tmp_path / "ids.jsonl"
    code, _, err = run_cli(
        capsys, "voices", "identify", str(a / "alice_3.wav"), str(tmp_path / "missing.wav"), *common,
        "-o", str(out_path), "--top-k", "2",
    )  # fmt: skip
    assert code == 3, err
    rows = [json.loads(line) for line in out_path.read_text().splitlines()]
    assert [r["input"] for r in rows] == [str(a / "alice_3.wav"), str(tmp_path / "missing.wav")]
    assert rows[0]["voice"] == "alice"
    assert len(rows[0]["candidates"]) == 2
    assert rows[0]["score"] > 0.8
    assert rows[1]["voice"] is None
    assert "error" in rows[1]
    code, out, _ = run_cli(capsys, "voices", "list", *common)
    assert code == 0
    assert out.split() == ["alice", "bob"]
    code, out, _ = run_cli(capsys, "voices", "show", "alice", *common)
    assert code == 0
    assert json.loads(out)["clips"][0].endswith("alice_1.wav")
    code, out, _ = run_cli(capsys, "voices", "nearest", "alice", *common)
    assert code == 0
    assert out.startswith("bob\t")
    code, _, err = run_cli(capsys, "voices", "show", "zed", *common)
    assert code == 1
    assert "'zed'" in err
    assert "Traceback" not in err
    code, _, err = run_cli(capsys, "voices", "remove", "bob", *common)
    assert code == 0
    code, _, err = run_cli(capsys, "voices", "remove", "bob", *common)
    assert code == 1
    assert "'bob'" in err
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"x" * 4096)
    code, _, err = run_cli(capsys, "voices", "list", "--library", str(junk))
    assert code == 1
    assert len(err.strip().splitlines()) == 1
    assert "corrupt" in err


def test_calibrate_and_the_false_alarm_rate_move_the_threshold(lib: VoiceLibrary, tmp_path: Path) -> None:
    v = voices(50)
    lib.add_embeddings([f"v{i}" for i in range(50)], v)
    query = voices(1, seed=9)
    before = lib.identify_embeddings(query)[0].threshold
    looser = lib.identify_embeddings(query, false_alarm=0.2)[0].threshold
    assert before is not None
    assert looser is not None
    assert looser < before
    # Random non-negative vectors score about 0.64 against each other, with a spread far narrower
    # than the speech prior's: measured, the bar comes down to what these impostors reach.
    cohort = voices(40, seed=5)
    mean, std = lib.calibrate(cohort)
    scores = cohort @ v.T
    assert mean == pytest.approx(float(scores.mean()), abs=1e-4)
    assert std == pytest.approx(float(scores.std()), abs=1e-4)
    after = lib.identify_embeddings(query)[0].threshold
    assert after is not None
    assert mean + 2 * std < after < before
    assert float(scores.max()) < after
    # It is stored: another process opening the library uses it too.
    reopened = VoiceLibrary(tmp_path / "voices.db")
    assert reopened.identify_embeddings(query)[0].threshold == pytest.approx(after)
    with pytest.raises(ConfigError, match="at least 2"):
        lib.calibrate(cohort[:1])


@pytest.mark.parametrize("int8_from", [1 << 30, 64])
def test_search_equals_brute_force_with_ties(
    lib: VoiceLibrary, monkeypatch: pytest.MonkeyPatch, int8_from: int
) -> None:
    # Both ways of searching (every voice in float32; the int8 scan and exact rescoring that
    # large libraries use) give the brute-force top k, equal scores in enrolment order.
    import speakerembed.voices.library as library

    monkeypatch.setattr(library, "_INT8_FROM", int8_from)
    v = voices(2000, seed=3)
    v[[10, 700, 1999]] = v[500]  # duplicates: exact ties
    names = [f"v{i}" for i in range(2000)]
    lib.add_embeddings(names[:1000], v[:1000])
    lib.add_embeddings(names[1000:], v[1000:])  # appended to the in-memory matrix
    queries = np.concatenate([v[[500, 3, 1500]], unit(v[[42, 1234]] + 0.3 * voices(2, seed=4))])
    answers = lib.identify_embeddings(queries, top_k=6)
    exact = queries.astype(np.float64) @ v.astype(np.float64).T
    for answer, row in zip(answers, exact, strict=True):
        order = np.lexsort((np.arange(2000), -np.round(row, 9)))[:6]
        assert [m.voice for m in answer] == [names[i] for i in order]
        np.testing.assert_allclose([m.score for m in answer], row[order], atol=1e-5)
    assert [m.voice for m in answers[0]][:4] == ["v10", "v500", "v700", "v1999"]
    # Reopened (the matrix loaded from the database), the answers and decisions are the same.
    again = VoiceLibrary(lib.location)
    for a, b in zip(again.identify_embeddings(queries, top_k=6), answers, strict=True):
        assert [m.voice for m in a] == [m.voice for m in b]
        assert a.voice == b.voice
    again.close()


def test_int8_search_keeps_the_exact_decision(lib: VoiceLibrary, monkeypatch: pytest.MonkeyPatch) -> None:
    import speakerembed.voices.library as library

    v = voices(3000, seed=5)
    lib.add_embeddings([f"v{i}" for i in range(3000)], v)
    queries = unit(v[:40] + np.linspace(0.05, 1.5, 40)[:, None] * voices(40, seed=6))
    exact = lib.identify_embeddings(queries)
    monkeypatch.setattr(library, "_INT8_FROM", 64)
    lib._cache = None
    scanned = lib.identify_embeddings(queries)
    assert lib._snapshot().codes is not None
    for a, b in zip(scanned, exact, strict=True):
        assert a.voice == b.voice
        assert [m.voice for m in a] == [m.voice for m in b]
        assert a.threshold == pytest.approx(b.threshold, abs=0.1)
