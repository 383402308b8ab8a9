"""speakerembed.analysis.plots: each function draws the artists it promises (no pixel comparisons)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from speakerembed import BackendUnavailableError, ConfigError

pytest.importorskip("matplotlib", reason="the plots need matplotlib (pip install 'speakerembed[plot]')")

from matplotlib.figure import Figure

from speakerembed.analysis import plots
from speakerembed.analysis.scoring import det_curve, eer


def clusters(n_per: int = 4, speakers: tuple[str, ...] = ("a", "b", "c")) -> tuple[np.ndarray, list[str]]:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(len(speakers), 32))
    x = np.concatenate([c + 0.1 * rng.normal(size=(n_per, 32)) for c in centres])
    spk = [s for s in speakers for _ in range(n_per)]
    perm = rng.permutation(len(spk))  # interleaved; the matrix must regroup them
    return x[perm], [spk[i] for i in perm]


def trials() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    s = np.r_[rng.normal(0.8, 0.05, 200), rng.normal(0.55, 0.1, 2000)]
    y = np.r_[np.ones(200, bool), np.zeros(2000, bool)]
    return s, y


def test_similarity_matrix_is_grouped_by_speaker() -> None:
    x, spk = clusters()
    fig = plots.plot_similarity_matrix(x, spk)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    (image,) = ax.images
    sim = np.asarray(image.get_array())
    assert sim.shape == (12, 12)
    np.testing.assert_allclose(np.diag(sim), 1.0)
    # Grouped: each 4x4 diagonal block is one speaker, more alike than anything off it.
    block = np.kron(np.eye(3), np.ones((4, 4))).astype(bool)
    assert sim[block].min() > sim[~block].max()
    assert [t.get_text() for t in ax.get_yticklabels()] == sorted(set(spk), key=spk.index)
    assert len(ax.lines) == 4  # two separators, each drawn across and down
    assert len(fig.axes) == 2  # the colour bar


def test_similarity_matrix_names_rows_when_given() -> None:
    x, spk = clusters(2)
    names = [f"{s}_{i}.wav" for i, s in enumerate(spk)]
    ax = plots.plot_similarity_matrix(x, spk, names=names).axes[0]
    shown = [t.get_text() for t in ax.get_yticklabels()]
    assert sorted(shown) == sorted(names)
    assert [n.split("_")[0] for n in shown] == sorted([n.split("_")[0] for n in shown], key=spk.index)


def test_score_histograms_draw_both_classes_and_the_threshold() -> None:
    s, y = trials()
    fig = plots.plot_score_histograms(s, y, threshold=0.7, bins=30)
    ax = fig.axes[0]
    assert len(ax.patches) == 60  # two histograms of 30 bars
    (line,) = ax.lines
    assert line.get_xdata()[0] == 0.7
    labels = ax.get_legend_handles_labels()[1]
    assert labels[0] == "different speakers (2000 trials)"
    assert labels[1] == "same speaker (200 trials)"
    far, frr = np.mean(s[~y] >= 0.7), np.mean(s[y] < 0.7)
    assert f"{100 * far:.2g}% false accepts" in labels[2]
    assert f"{100 * frr:.2g}% false rejects" in labels[2]


def test_similarity_histogram_counts_every_pair_and_marks_the_mean() -> None:
    values = np.random.default_rng(2).uniform(0.4, 0.95, 57)
    ax = plots.plot_similarity_histogram(values, bins=12, label="A").axes[0]
    assert len(ax.patches) == 12
    assert sum(p.get_height() for p in ax.patches) == 57
    (mean_line,) = ax.lines
    assert mean_line.get_xdata()[0] == pytest.approx(values.mean())
    plots.plot_similarity_histogram(values - 0.1, bins=12, label="B", ax=ax)
    assert ax.get_legend_handles_labels()[1] == [
        "A (57 pairs)",
        f"mean {values.mean():.3f}",
        "B (57 pairs)",
        f"mean {values.mean() - 0.1:.3f}",
    ]
    with pytest.raises(ConfigError, match="similarities="):
        plots.plot_similarity_histogram([])


def test_det_curve_plots_the_curve_on_normal_deviates() -> None:
    from statistics import NormalDist

    s, y = trials()
    fig = plots.plot_det_curve(s, y, label="demo")
    ax = fig.axes[0]
    curve = ax.lines[0]
    ref = det_curve(s, y)
    expected_x = [NormalDist().inv_cdf(min(max(p, 0.5 / 2000), 1 - 0.5 / 2000)) for p in ref.fpr]
    expected_y = [NormalDist().inv_cdf(min(max(p, 0.5 / 200), 1 - 0.5 / 200)) for p in ref.fnr]
    np.testing.assert_allclose(curve.get_xdata(), expected_x)
    np.testing.assert_allclose(curve.get_ydata(), expected_y)
    e = eer(s, y).value
    assert ax.get_legend_handles_labels()[1] == [f"demo (EER {100 * e:.1f}%)"]
    marker = ax.lines[1]
    assert marker.get_xdata()[0] == pytest.approx(NormalDist().inv_cdf(e))
    # A second call on the same axes adds a curve, not a figure.
    again = plots.plot_det_curve(s, ~y, label="inverted", ax=ax)
    assert again is fig
    assert len(ax.get_legend_handles_labels()[1]) == 2


def test_projection_one_scatter_per_speaker_and_pca_separates_clusters() -> None:
    x, spk = clusters()
    fig = plots.plot_projection(x, spk, method="pca")
    ax = fig.axes[0]
    assert len(ax.collections) == 3
    assert [c.get_label() for c in ax.collections] == list(dict.fromkeys(spk))
    assert ax.get_title() == "Embeddings, PCA"
    points = [c.get_offsets() for c in ax.collections]
    spread = max(np.ptp(p, axis=0).max() for p in points)
    centres = np.array([p.mean(axis=0) for p in points])
    gaps = [np.linalg.norm(centres[i] - centres[j]) for i in range(3) for j in range(i)]
    assert min(gaps) > spread


def test_projection_pca_matches_numpy_svd_up_to_sign() -> None:
    x, spk = clusters()
    ax = plots.plot_projection(x, spk, method="pca").axes[0]
    got = np.concatenate([c.get_offsets() for c in ax.collections])
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    order = [i for g in dict.fromkeys(spk) for i, s in enumerate(spk) if s == g]
    centred = unit - unit.mean(axis=0)
    ref = centred @ np.linalg.svd(centred)[2][:2].T
    ref = ref[order]
    for k in range(2):
        assert np.allclose(got[:, k], ref[:, k]) or np.allclose(got[:, k], -ref[:, k])


def test_umap_without_the_package_is_a_backend_error() -> None:
    import importlib.util

    if importlib.util.find_spec("umap") is not None:
        pytest.skip("umap-learn is installed here")
    x, spk = clusters()
    with pytest.raises(BackendUnavailableError, match="umap-learn"):
        plots.plot_projection(x, spk, method="umap")
    assert plots.plot_projection(x, spk).axes[0].get_title() == "Embeddings, PCA"


def test_draws_into_a_given_axes() -> None:
    fig = Figure()
    ax1, ax2 = fig.subplots(1, 2)
    s, y = trials()
    assert plots.plot_score_histograms(s, y, ax=ax1) is fig
    assert plots.plot_det_curve(s, y, ax=ax2) is fig
    assert len(fig.axes) == 2


def test_save_figure_writes_the_format_atomically(tmp_path: Path) -> None:
    s, y = trials()
    fig = plots.plot_det_curve(s, y)
    plots.save_figure(fig, tmp_path / "det.png")
    plots.save_figure(fig, tmp_path / "det.svg")
    assert (tmp_path / "det.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"<svg" in (tmp_path / "det.svg").read_bytes()[:400]
    with pytest.raises(ConfigError, match=r"\.jpeg"):
        plots.save_figure(fig, tmp_path / "det.jpeg")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["det.png", "det.svg"]


def test_bad_inputs_name_the_keyword() -> None:
    x, spk = clusters()
    with pytest.raises(ConfigError, match="speakers="):
        plots.plot_similarity_matrix(x, spk[:-1])
    with pytest.raises(ConfigError, match="embeddings="):
        plots.plot_projection(x[:1], spk[:1])
    with pytest.raises(ConfigError, match="method="):
        plots.plot_projection(x, spk, method="tsne")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="labels="):
        plots.plot_det_curve([0.1, 0.2], [1])


def test_importing_plots_does_not_import_matplotlib() -> None:
    code = "import speakerembed.analysis.plots, sys; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
