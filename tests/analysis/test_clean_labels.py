"""``clean`` where labels are thin: single-clip speakers cannot be judged, and a corpus without
``speaker`` values is refused with what to do (issue 17).
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from speakerembed import ConfigError, clean_dataset, find_outliers
from speakerembed.analysis.clean import NoSpeakersError
from speakerembed.cli import main


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _two_speakers_and_singletons(n_single: int) -> tuple[np.ndarray, list[str]]:
    """Speakers a and b with four clips each, and ``n_single`` speakers of one clip that sound like a."""
    rng = np.random.default_rng(7)
    centres = rng.normal(size=(2, 256))
    x = np.concatenate(
        [
            centres[0] + 0.4 * rng.normal(size=(4, 256)),
            centres[1] + 0.4 * rng.normal(size=(4, 256)),
            centres[0] + 0.4 * rng.normal(size=(n_single, 256)),
        ]
    )
    return _unit(x), ["a"] * 4 + ["b"] * 4 + [f"solo{i}" for i in range(n_single)]


def _corpus(folder: Path, x: np.ndarray, speakers: list[str | None]) -> Path:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    folder.mkdir()
    n = len(x)
    table = pa.table(
        {
            "id": [f"clip{i}" for i in range(n)],
            "path": [f"/data/clip{i}.wav" for i in range(n)],
            "speaker": pa.array(speakers, type=pa.string()),
            "embedding": pa.array([row.tolist() for row in x], type=pa.list_(pa.float32(), 256)),
            "error": pa.array([None] * n, type=pa.string()),
        }
    )
    pq.write_table(table, folder / "part-00000.parquet")
    return folder


def test_single_clip_speakers_are_never_relabelled() -> None:
    x, speakers = _two_speakers_and_singletons(6)
    report = find_outliers(x, speakers, [f"c{i}" for i in range(len(x))])
    c = report.columns
    solo = np.asarray([s.startswith("solo") for s in c["speaker"]])
    # Each singleton is close to speaker a's centroid, which used to earn it "likely a".
    assert (c["nearest_similarity"][solo] > report.outlier_threshold).all()
    assert c["cannot_judge"][solo].all()
    assert not c["cannot_judge"][~solo].any()
    assert not c["likely_other_speaker"][solo].any()
    assert not c["outlier"][solo].any()
    assert (c["suggested_speaker"][solo] == "").all()
    assert np.isnan(c["own_similarity"][solo]).all()
    # No NaN own similarity behind any suggestion or outlier flag.
    flagged_by_label = c["likely_other_speaker"] | c["outlier"]
    assert not np.isnan(c["own_similarity"][flagged_by_label]).any()
    assert report.n_cannot_judge == 6
    table = report.to_arrow()
    assert table.column("cannot_judge").to_pylist().count(True) == 6


def test_single_clip_speakers_can_still_be_duplicates() -> None:
    x, speakers = _two_speakers_and_singletons(1)
    x = np.concatenate([x, x[:1]])  # solo1: a copy of a's first clip
    report = find_outliers(x, [*speakers, "solo1"])
    c = report.columns
    row = int(np.flatnonzero(c["speaker"] == "solo1")[0])
    assert c["cannot_judge"][row]
    assert c["near_duplicate"][row]
    assert not c["likely_other_speaker"][row]


def test_clean_command_reports_singletons_as_cannot_judge(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    x, speakers = _two_speakers_and_singletons(5)
    folder = _corpus(tmp_path / "corpus", x, list(speakers))
    assert main(["clean", str(folder), "--weights", "resemblyzer"]) == 0
    out = capsys.readouterr().out
    assert "5 clip(s) are their speaker's only one: cannot judge" in out
    assert "likely a" not in out


def test_corpus_without_speakers_says_how_to_add_them(tmp_path: Path) -> None:
    x, _ = _two_speakers_and_singletons(0)
    folder = _corpus(tmp_path / "corpus", x, [None] * len(x))
    with pytest.raises(NoSpeakersError, match=r"no 'speaker' values \(8 embedded row\(s\)") as info:
        clean_dataset(folder)
    assert isinstance(info.value, ConfigError)
    assert "manifest=FILE" in str(info.value)
    assert "cluster" in str(info.value)
    again = pickle.loads(pickle.dumps(info.value))  # crosses process boundaries intact
    assert (again.folder, again.n_rows, str(again)) == (info.value.folder, 8, str(info.value))


def test_corpus_with_only_empty_speakers_is_refused_too(tmp_path: Path) -> None:
    x, _ = _two_speakers_and_singletons(0)
    folder = _corpus(tmp_path / "corpus", x, [""] * len(x))
    with pytest.raises(NoSpeakersError):
        clean_dataset(folder)


def test_clean_command_without_speakers_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    x, _ = _two_speakers_and_singletons(0)
    folder = _corpus(tmp_path / "corpus", x, [None] * len(x))
    code = main(["clean", str(folder), "--weights", "resemblyzer"])
    err = capsys.readouterr().err
    assert code == 2
    assert "speakerembed corpus --manifest FILE" in err
    assert "speakerembed cluster" in err
    assert "unexpected" not in err
