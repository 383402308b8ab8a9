"""The rows a corpus job writes: embeddings, error rows, metadata, and the speakers file.

The corpus and its references are built in ``conftest.py``, from ``_corpus_data.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

import soundfile as sf  # noqa: E402 - after the skips
from _corpus_data import BAD, GOOD, _read  # noqa: E402

from speakerembed import SpeakerEmbedder, embed_corpus, utt_to_spk_embed  # noqa: E402

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


def test_every_shard_is_valid_arrow(embedded: Path) -> None:
    # The columns are built from buffers (speakerembed.corpus.batch.arrow_column): a wrong
    # offset or bitmap would read back wrong, or fail Arrow's own full validation.
    for shard in sorted(embedded.glob("part-*.parquet")):
        table = pq.read_table(shard)
        table.validate(full=True)
        errors = table.column("error")
        assert table.column("embedding").null_count == len(errors) - errors.null_count


@pytest.mark.parametrize(
    ("values", "type_"),
    [
        (["a", None, "h\u00e9llo", "", "\u58f0"], "string"),
        ([None, None], "string"),
        ([], "string"),
        ([2.5, None, 3.0, 0], "float64"),
        ([0.5, None], "float32"),
        ([16000, None, 48000], "int32"),
        ([2**40, -1], "int64"),
        ([2**40], "int32"),  # out of range: pa.array refuses it, as before
        ([1.7, 2], "int32"),  # a float in an integer column: whatever pa.array does
        ([True, None], "bool_"),
        (["x", 1], "string"),  # of two kinds: refused
    ],
)
def test_arrow_column_is_pa_array(values: list[object], type_: str) -> None:
    from speakerembed.corpus.batch import arrow_column

    typ = getattr(pa, type_)()
    try:
        want = pa.array(values, type=typ)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        with pytest.raises(type(exc)):
            arrow_column(values, typ)
        return
    got = arrow_column(values, typ)
    got.validate(full=True)
    assert got.type == typ
    assert got.equals(want), (got, want)


def test_a_job_does_not_import_pandas(corpus: Path, tmp_path: Path) -> None:
    # pa.array imports pandas on its first call when it is installed (0.28 s of a core on the
    # 2-core host): the job's tables are built without it.
    pytest.importorskip("pandas")
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from speakerembed import embed_corpus\n"
        f"embed_corpus([{str(corpus)!r}], {str(tmp_path / 'out')!r}, weights='resemblyzer', "
        "device='cpu', workers=0, progress='off')\n"
        "print('pandas' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False", out.stderr[-2000:]
    assert len(pq.read_table(tmp_path / "out")) > 0


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
