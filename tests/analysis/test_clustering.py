"""Clustering clips into speakers: against scipy's average linkage, brute-force B-cubed, the CLI."""

from __future__ import annotations

import json
from itertools import product
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from speakerembed import ConfigError, bcubed, cluster_speakers
from speakerembed.analysis import clustering
from speakerembed.analysis.clustering import (
    AverageLinkage,
    cluster_confidence,
    cluster_corpus,
    cluster_sizes,
    threshold_sweep,
)
from speakerembed.cli import main


def voices(
    n_repeated: int, per: int, n_single: int, seed: int = 0, d: int = 256
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    """Unit rows with speaker structure: a shared direction, a speaker's own, a clip's noise."""
    rng = np.random.default_rng(seed)
    m = rng.standard_normal(d)
    m /= np.linalg.norm(m)
    sizes = [per] * n_repeated + [1] * n_single
    rows, labels = [], []
    for s, size in enumerate(sizes):
        u = rng.standard_normal(d)
        u /= np.linalg.norm(u)
        for _ in range(size):
            e = rng.standard_normal(d)
            e /= np.linalg.norm(e)
            v = np.sqrt(0.6) * m + np.sqrt(0.25) * u + np.sqrt(rng.uniform(0.05, 0.25)) * e
            rows.append(v / np.linalg.norm(v))
            labels.append(s)
    order = rng.permutation(len(rows))
    return np.asarray(rows, dtype=np.float32)[order], np.asarray(labels)[order]


def scipy_average(x: npt.NDArray[np.float32], threshold: float) -> npt.NDArray[np.int64]:
    from scipy.cluster.hierarchy import fcluster, linkage

    z = linkage(x.astype(np.float64), method="average", metric="cosine")
    return np.asarray(fcluster(z, 1.0 - threshold, criterion="distance"))


def same_partition(a: npt.NDArray[np.int64], b: npt.NDArray[np.int64]) -> bool:
    pairs = set(zip(a.tolist(), b.tolist(), strict=True))
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


# -- B-cubed -----------------------------------------------------------------------------------


def bcubed_brute(t: list[int], p: list[int]) -> tuple[float, float]:
    n = len(t)
    prec = sum(
        sum(p[j] == p[i] and t[j] == t[i] for j in range(n)) / sum(p[j] == p[i] for j in range(n))
        for i in range(n)
    )
    rec = sum(
        sum(p[j] == p[i] and t[j] == t[i] for j in range(n)) / sum(t[j] == t[i] for j in range(n))
        for i in range(n)
    )
    return prec / n, rec / n


@pytest.mark.parametrize("seed", range(20))
def test_bcubed_matches_a_brute_force_count(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 40))
    t = rng.integers(0, int(rng.integers(1, 8)), size=n).tolist()
    p = rng.integers(-1, int(rng.integers(1, 8)), size=n).tolist()
    score = bcubed([f"spk{v}" for v in t], p)
    want = bcubed_brute(t, p)
    assert score.precision == pytest.approx(want[0])
    assert score.recall == pytest.approx(want[1])
    assert score.f1 == pytest.approx(2 * want[0] * want[1] / (want[0] + want[1]))


def test_bcubed_extremes_and_errors() -> None:
    assert bcubed([1, 1, 2], [5, 5, 7]) == (1.0, 1.0, 1.0)
    assert bcubed([1, 2, 3, 4], [0, 0, 0, 0]).precision == pytest.approx(0.25)
    with pytest.raises(ConfigError, match="one of each"):
        bcubed([1, 2], [1])


# -- against scipy's average linkage on the full matrix ----------------------------------------


@pytest.mark.parametrize(("seed", "threshold"), list(product(range(3), (0.55, 0.7, 0.76, 0.85, 0.95))))
def test_exact_graph_gives_scipys_partition(seed: int, threshold: float) -> None:
    # With every neighbour above the threshold kept, the graph method is exact average linkage.
    x, _ = voices(12, 9, 30, seed=seed)
    ours = cluster_speakers(x, threshold=threshold, max_neighbors=x.shape[0], search="exact")
    assert same_partition(ours, scipy_average(x, threshold))


@pytest.mark.parametrize("share", [0.0, 1.0])
@pytest.mark.parametrize(("seed", "threshold"), list(product(range(3), (0.55, 0.76, 0.9))))
def test_each_merge_stage_alone_gives_scipys_partition(
    seed: int, threshold: float, share: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    # share 0: mutual-nearest rounds to the end; share 1: the heap from the first merge.
    monkeypatch.setattr(clustering, "_ROUNDS_MIN_SHARE", share)
    x, _ = voices(12, 9, 30, seed=seed)
    ours = cluster_speakers(x, threshold=threshold, max_neighbors=x.shape[0], search="exact")
    assert same_partition(ours, scipy_average(x, threshold))


@pytest.mark.parametrize("share", [0.0, 1.0])
def test_each_merge_stage_alone_gives_the_sweeps_counts(
    share: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The sweep replays the merges highest first: its counts at each threshold must be those
    # of a clustering run at that threshold, whichever stage made the merges.
    monkeypatch.setattr(clustering, "_ROUNDS_MIN_SHARE", share)
    x, _ = voices(15, 8, 40, seed=7)
    ts = [0.6, 0.7, 0.8, 0.9]
    sweep = threshold_sweep(x, ts, max_neighbors=x.shape[0])
    for k, t in enumerate(ts):
        labels = scipy_average(x, t)
        sizes = np.bincount(labels)[1:]
        assert sweep["clusters"][k] == (sizes > 0).sum()
        assert sweep["singletons"][k] == (sizes == 1).sum()
        assert sweep["largest"][k] == sizes.max()


@pytest.mark.parametrize("threshold", [0.7, 0.8])
def test_ivf_graph_gives_the_exact_partition_on_speaker_data(threshold: float) -> None:
    x, _ = voices(60, 12, 400, seed=3)
    exact = cluster_speakers(x, threshold=threshold, search="exact")
    ivf = cluster_speakers(x, threshold=threshold, search="ivf")
    score = bcubed(exact, ivf)
    assert score.precision > 0.99
    assert score.recall > 0.99


def test_capped_graph_keeps_speakers_together() -> None:
    # 40 clips a speaker and 16 neighbours a clip: the cap binds, the speakers still come out.
    x, truth = voices(10, 40, 50, seed=5)
    score = bcubed(truth, cluster_speakers(x, max_neighbors=16))
    assert score.precision > 0.98
    assert score.recall > 0.98


# -- behaviour ---------------------------------------------------------------------------------


def test_speakers_heard_once_stay_alone() -> None:
    x, truth = voices(15, 10, 60, seed=1)
    labels = cluster_speakers(x)
    counts = np.bincount(truth)
    sizes = np.bincount(labels)
    singles = counts[truth] == 1
    assert (sizes[labels[singles]] == 1).all()
    assert bcubed(truth, labels).f1 > 0.98


def test_labels_run_from_the_largest_cluster_and_small_ones_are_minus_one() -> None:
    x, _ = voices(3, 8, 5, seed=2)
    labels = cluster_speakers(x)
    sizes = np.bincount(labels)
    assert (np.diff(sizes) <= 0).all()
    cut = cluster_speakers(x, min_cluster_size=2)
    assert (cut[sizes[labels] < 2] == -1).all()
    assert (cut[sizes[labels] >= 2] >= 0).all()


def test_one_row_and_identical_rows() -> None:
    one = np.eye(1, 256, dtype=np.float32)
    assert cluster_speakers(one).tolist() == [0]
    assert cluster_speakers(np.repeat(one, 4, axis=0)).tolist() == [0, 0, 0, 0]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"threshold": 1.5}, "threshold=1.5 is not a cosine"),
        ({"threshold": -1.0}, "is not a cosine"),
        ({"min_cluster_size": 0}, "min_cluster_size=0"),
        ({"max_neighbors": 0}, "max_neighbors=0"),
        ({"search": "faiss"}, "search='faiss' is unknown"),
    ],
)
def test_bad_arguments(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        AverageLinkage(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("x", "match"),
    [
        (np.zeros((0, 256)), "non-empty"),
        (np.ones(256), "non-empty"),
        (np.full((2, 256), np.nan), "NaN"),
        (np.ones((2, 256)), "row 0 has norm 16"),
    ],
)
def test_bad_embeddings(x: npt.NDArray[np.float64], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        cluster_speakers(x)


def test_confidence_is_the_cosine_to_the_centroid() -> None:
    x, _ = voices(2, 5, 2, seed=4)
    labels = cluster_speakers(x, min_cluster_size=2)
    conf = cluster_confidence(x, labels)
    for k in set(labels.tolist()) - {-1}:
        c = x[labels == k].astype(np.float64).sum(0)
        np.testing.assert_allclose(conf[labels == k], x[labels == k] @ (c / np.linalg.norm(c)), rtol=1e-6)
    assert np.isnan(conf[labels == -1]).all()


def test_sweep_agrees_with_clustering_at_each_threshold() -> None:
    x, _ = voices(10, 8, 20, seed=6)
    ts = [0.6, 0.7, 0.76, 0.85]
    sweep = threshold_sweep(x, ts, max_neighbors=x.shape[0])
    for t, clusters, singles in zip(sweep["threshold"], sweep["clusters"], sweep["singletons"], strict=True):
        labels = cluster_speakers(x, threshold=float(t), max_neighbors=x.shape[0])
        report = cluster_sizes(labels)
        assert (report["clusters"], report["singletons"]) == (clusters, singles)


def test_default_threshold_on_real_speech(librispeech_embeddings: dict[str, npt.NDArray[np.float32]]) -> None:
    # Six LibriSpeech speakers of 10 clips each (test-other, held out from the threshold's
    # measurement only in part: see docs/clustering.rst): six speakers, or close to it.
    names = sorted(librispeech_embeddings)
    x = np.concatenate([librispeech_embeddings[s] for s in names])
    truth = np.repeat(np.arange(len(names)), [len(librispeech_embeddings[s]) for s in names])
    score = bcubed(truth, cluster_speakers(x))
    assert score.precision > 0.9
    assert score.recall > 0.85


# -- a corpus output and the command -----------------------------------------------------------


def write_corpus(
    folder: Path, x: npt.NDArray[np.float32], *, weights: str = "resemblyzer", shard: int = 0
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from speakerembed.corpus.schema import METADATA_KEY

    n = x.shape[0]
    meta = {"weights": weights, "weights_sha256": weights * 4, "pipeline": {}, "precision": "fp32"}
    embeds: list[list[float] | None] = [row.tolist() for row in x]
    embeds.append(None)  # one failed input
    ids = [f"utt{shard}_{i:04d}" for i in range(n + 1)]
    table = pa.table(
        {
            "id": ids,
            "path": [f"/data/{i}.wav" for i in ids],
            "embedding": pa.array(embeds, type=pa.list_(pa.float32(), 256)),
            "error": [None] * n + ["AudioError: silent"],
        }
    ).replace_schema_metadata({METADATA_KEY: json.dumps(meta).encode()})
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, folder / f"part-{shard:05d}.parquet")


def test_cluster_corpus_reads_shards_and_counts_failures(tmp_path: Path) -> None:
    x, truth = voices(4, 6, 3, seed=7)
    write_corpus(tmp_path / "out", x[:20], shard=0)
    write_corpus(tmp_path / "out", x[20:], shard=1)
    result = cluster_corpus(tmp_path / "out")
    assert len(result) == x.shape[0]
    assert result.failed == 2
    order = np.argsort(result.ids)
    assert bcubed(truth, result.labels[order]).f1 > 0.98


def test_cli_cluster_writes_table_report_and_kaldi(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    import pyarrow.parquet as pq

    x, _ = voices(4, 6, 3, seed=8)
    write_corpus(tmp_path / "out", x)
    out = tmp_path / "clusters.parquet"
    code = main(["cluster", str(tmp_path / "out"), "-o", str(out), "--kaldi", str(tmp_path / "kaldi")])
    assert code == 0
    table = pq.read_table(out)
    assert table.column_names == ["id", "path", "cluster", "confidence"]
    assert len(set(table.column("cluster").to_pylist())) == 7
    stdout = capsys.readouterr().out
    assert "27 clips in 7 clusters at threshold 0.76: 3 singletons" in stdout
    utt2spk = (tmp_path / "kaldi" / "utt2spk").read_text().splitlines()
    spk2utt = (tmp_path / "kaldi" / "spk2utt").read_text().splitlines()
    assert len(utt2spk) == 27
    assert len(spk2utt) == 7
    assert sorted(utt2spk) == utt2spk
    assert sum(len(line.split()) - 1 for line in spk2utt) == 27


def test_cli_cluster_plot(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    x, _ = voices(4, 6, 3, seed=9)
    write_corpus(tmp_path / "out", x)
    plot = tmp_path / "sizes.png"
    assert (
        main(["cluster", str(tmp_path / "out"), "-o", str(tmp_path / "c.parquet"), "--plot", str(plot)]) == 0
    )
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_cluster_refuses_mixed_settings_and_missing_embeddings(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    x, _ = voices(2, 3, 1, seed=10)
    write_corpus(tmp_path / "mixed", x, weights="resemblyzer", shard=0)
    write_corpus(tmp_path / "mixed", x, weights="chatterbox", shard=1)
    assert main(["cluster", str(tmp_path / "mixed"), "-o", str(tmp_path / "c.parquet")]) == 1
    assert "mixes embeddings made with different settings" in capsys.readouterr().err
    (tmp_path / "bare").mkdir()
    pq.write_table(pa.table({"id": ["a"], "path": ["a.wav"]}), tmp_path / "bare" / "part-0.parquet")
    assert main(["cluster", str(tmp_path / "bare"), "-o", str(tmp_path / "c.parquet")]) == 1
    assert "no embedding column" in capsys.readouterr().err
    assert not (tmp_path / "c.parquet").exists()


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["--threshold", "1.5"], "--threshold: must be a cosine in (-1, 1]"),
        (["--min-cluster-size", "0"], "--min-cluster-size"),
    ],
)
def test_cli_cluster_bad_values_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: list[str], match: str
) -> None:
    (tmp_path / "out").mkdir()
    with pytest.raises(SystemExit) as info:
        main(["cluster", str(tmp_path / "out"), "-o", str(tmp_path / "c.parquet"), *argv])
    assert info.value.code == 2
    assert match in capsys.readouterr().err


def test_cli_cluster_bad_output_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    assert main(["cluster", str(tmp_path / "out"), "-o", str(tmp_path / "c.csv")]) == 2
    assert "cannot write a .csv file" in capsys.readouterr().err


def test_cli_cluster_not_a_folder(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["cluster", str(tmp_path / "nope"), "-o", str(tmp_path / "c.parquet")]) == 2
    assert "is not a folder" in capsys.readouterr().err


def test_ivf_search_on_a_handful_of_rows() -> None:
    x, truth = voices(2, 3, 1, seed=11)
    assert same_partition(cluster_speakers(x, search="ivf"), cluster_speakers(x, search="exact"))
    assert bcubed(truth, cluster_speakers(x, search="ivf")).f1 == 1.0
