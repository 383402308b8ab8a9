"""Dataset cleaning: a labelled set with a mislabelled clip and a duplicate is cleaned worst first."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import speech_wave

from speakerembed import CleanReport, ConfigError, SpeakerEmbedder, clean_dataset, find_outliers
from speakerembed.analysis.clean import robust_centroid
from speakerembed.cli import main


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory, librispeech: dict[str, list[Path]]) -> dict[str, Path]:
    """Three speakers, four clips each (links to the shared speech), plus two planted problems.

    - ``mislabelled.flac``: a clip of speaker B filed under speaker A;
    - ``copy.wav``: speaker C's first clip, resampled to 22.05 kHz and written as WAV.
    """
    import soundfile as sf
    import soxr

    root = tmp_path_factory.mktemp("dataset")
    speakers = list(librispeech)[:3]
    import soundfile as sf_info

    def shortest(files: list[Path], k: int) -> list[Path]:
        return sorted(files, key=lambda p: sf_info.info(str(p)).frames)[:k]

    for spk in speakers:
        (root / spk).mkdir()
        for f in shortest(librispeech[spk], 4):
            (root / spk / f.name).symlink_to(f)
    a, b, c = speakers
    stray = shortest(librispeech[b], 5)[4]
    (root / a / "mislabelled.flac").symlink_to(stray)
    original = shortest(librispeech[c], 1)[0]
    wav, sr = speech_wave(original)
    sf.write(root / c / "copy.wav", soxr.resample(wav, sr, 22050), 22050)
    return {
        "root": root,
        "mislabelled": root / a / "mislabelled.flac",
        "copy": root / c / "copy.wav",
        "original": root / c / original.name,
        "b": Path(b),
    }


def test_planted_problems_are_flagged_and_ranked_first(
    embedder: SpeakerEmbedder, dataset: dict[str, Path]
) -> None:
    report = clean_dataset(dataset["root"], embedder=embedder)
    c = report.columns
    assert len(report) == 14
    assert not report.failures
    top = {str(i) for i in c["id"][:3]}
    assert top == {str(dataset["mislabelled"]), str(dataset["copy"]), str(dataset["original"])}
    row = {str(i): k for k, i in enumerate(c["id"])}
    m = row[str(dataset["mislabelled"])]
    assert c["likely_other_speaker"][m]
    assert c["suggested_speaker"][m] == str(dataset["b"])
    assert c["nearest_similarity"][m] > c["own_similarity"][m]
    for one, other in (("copy", "original"), ("original", "copy")):
        k = row[str(dataset[one])]
        assert c["near_duplicate"][k]
        assert c["duplicate_of"][k] == str(dataset[other])
    # Nothing else is flagged as another speaker's or as a duplicate.
    rest = np.ones(len(report), bool)
    rest[:3] = False
    assert not c["likely_other_speaker"][rest].any()
    assert not c["near_duplicate"][rest].any()


def test_leave_one_out_and_robust_centroid_against_a_direct_computation() -> None:
    rng = np.random.default_rng(0)
    centre = rng.normal(size=16)
    x = centre + 0.3 * rng.normal(size=(8, 16))
    x[7] = rng.normal(size=16) * 3  # an outlier
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    centroid, kept = robust_centroid(x)
    assert kept.tolist() == [True] * 7 + [False]
    direct = x[:7].mean(0) / np.linalg.norm(x[:7].mean(0))
    np.testing.assert_allclose(centroid, direct)
    report = find_outliers(x, ["s"] * 8, [f"c{i}" for i in range(8)])
    by_id = dict(zip(report.columns["id"], report.columns["own_similarity"], strict=True))
    for i in range(7):  # leave-one-out: the mean of the six other kept clips
        loo = x[[j for j in range(7) if j != i]].mean(0)
        assert by_id[f"c{i}"] == pytest.approx(float(x[i] @ loo / np.linalg.norm(loo)))
    assert by_id["c7"] == pytest.approx(float(x[7] @ direct))
    assert report.columns["id"][0] == "c7"
    assert report.columns["outlier"][0]


def _corpus_folder(tmp_path: Path, x: np.ndarray, speakers: list[str]) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    n = x.shape[0]
    folder = tmp_path / "corpus"
    folder.mkdir()
    embeds = [row.tolist() for row in x] + [None]
    table = pa.table(
        {
            "id": [f"clip{i}" for i in range(n + 1)],
            "path": [f"/data/clip{i}.wav" for i in range(n + 1)],
            "speaker": [*speakers, speakers[0]],
            "embedding": pa.array(embeds, type=pa.list_(pa.float32(), 256)),
            "duration_s": [3.0] * (n + 1),
            "speech_s": [2.5] * n + [None],
            "sample_rate": [16000] * (n + 1),
            "n_windows": [3] * n + [None],
            "error": [None] * n + ["clip8.wav: is digital silence"],
            "error_type": [None] * n + ["AudioError"],
        }
    )
    pq.write_table(table.slice(0, 5), folder / "part-0.parquet")
    pq.write_table(table.slice(5), folder / "part-1.parquet")
    return folder


def test_corpus_output_is_read(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(2, 256))
    x = np.concatenate(
        [centres[0] + 0.5 * rng.normal(size=(4, 256)), centres[1] + 0.5 * rng.normal(size=(4, 256))]
    )
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    speakers = ["a"] * 4 + ["b"] * 4
    report = clean_dataset(_corpus_folder(tmp_path, x, speakers))
    direct = find_outliers(x, speakers, [f"clip{i}" for i in range(8)])
    assert report.columns["id"].tolist() == direct.columns["id"].tolist()
    np.testing.assert_allclose(report.columns["own_similarity"], direct.columns["own_similarity"], rtol=1e-6)
    assert [(f.index, f.source) for f in report.failures] == [(8, "clip8")]
    assert "digital silence" in str(report.failures[0].error)


def test_report_writes_parquet_and_csv(tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    rng = np.random.default_rng(2)
    x = rng.normal(size=(5, 256))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    report = find_outliers(x, ["a", "a", "a", "b", "lonely"])
    report.write(tmp_path / "r.parquet")
    report.write(tmp_path / "r.csv")
    table = pq.read_table(tmp_path / "r.parquet")
    assert table.num_rows == 5
    lonely = table.filter(table.column("speaker").to_numpy(zero_copy_only=False) == "lonely")
    assert lonely.column("own_similarity").to_pylist() == [None]  # one clip: no centroid
    text = (tmp_path / "r.csv").read_text().splitlines()
    assert text[0].startswith('"id","speaker"')
    assert len(text) == 6
    with pytest.raises(ConfigError, match=r"use \.parquet or \.csv"):
        report.write(tmp_path / "r.json")


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((np.eye(3, 256), ["a", "b"]), "3 embeddings, 2 speakers"),
        ((np.ones((2, 256)), ["a", "b"]), "finite unit rows"),
        ((np.zeros((0, 256)), []), "non-empty"),
    ],
)
def test_bad_inputs(args: tuple[np.ndarray, list[str]], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        find_outliers(*args)


def test_thresholds_are_checked() -> None:
    with pytest.raises(ConfigError, match="outlier_threshold=2"):
        find_outliers(np.eye(2, 256), ["a", "b"], outlier_threshold=2)


def test_thresholds_can_be_overridden() -> None:
    x = np.eye(4, 256)
    strict = find_outliers(x, ["a", "a", "b", "b"], outlier_threshold=0.5)
    assert strict.columns["outlier"].all()  # orthogonal clips: cosine 0 to their own speaker
    lenient = find_outliers(x, ["a", "a", "b", "b"], outlier_threshold=-0.5)
    assert not lenient.columns["outlier"].any()
    assert isinstance(lenient, CleanReport)


def test_cli_clean(capsys: pytest.CaptureFixture[str], dataset: dict[str, Path], tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    w = ["--weights", "resemblyzer", "--device", "cpu"]
    out = tmp_path / "report.csv"
    assert main(["clean", str(dataset["root"]), "-o", str(out), *w]) == 0
    lines = out.read_text().splitlines()
    assert len(lines) == 15
    assert any(str(dataset["mislabelled"]) in line for line in lines[1:4])
    assert main(["clean", str(dataset["root"]), *w]) == 0
    printed = capsys.readouterr().out
    assert "3 of 14 clips flagged" in printed
    assert f"likely {dataset['b']}" in printed


def test_cli_clean_usage_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["clean", str(tmp_path / "missing")]) == 2
    assert "is not a folder" in capsys.readouterr().err
    assert main(["clean", str(tmp_path), "-o", str(tmp_path / "r.txt")]) == 2
    with pytest.raises(SystemExit) as info:
        main(["clean", str(tmp_path), "--outlier-threshold", "3"])
    assert info.value.code == 2


def test_cli_clean_plot(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    pytest.importorskip("pyarrow")
    rng = np.random.default_rng(3)
    centres = rng.normal(size=(2, 256))
    x = np.concatenate(
        [centres[0] + 0.5 * rng.normal(size=(4, 256)), centres[1] + 0.5 * rng.normal(size=(4, 256))]
    )
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    folder = _corpus_folder(tmp_path, x, ["a"] * 4 + ["b"] * 4)
    out = tmp_path / "clean.png"
    assert main(["clean", str(folder), "--plot", str(out)]) == 3  # the corpus has one failed row
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "skipped clip8" in capsys.readouterr().err


def test_plot_clean_report_marks_the_flagged() -> None:
    pytest.importorskip("matplotlib")
    from speakerembed.analysis.plots import plot_clean_report

    fig = plot_clean_report([0.9, 0.5, np.nan], [0.6, 0.8, 0.7], [False, True, False], outlier_threshold=0.74)
    ok, flagged = fig.axes[0].collections
    np.testing.assert_allclose(ok.get_offsets(), [[0.9, 0.6]])
    np.testing.assert_allclose(flagged.get_offsets(), [[0.5, 0.8]])
