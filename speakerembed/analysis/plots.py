"""Plots of embeddings and verification scores (extra ``speakerembed[plot]``: matplotlib).

Each function takes data and, optionally, a matplotlib :class:`~matplotlib.axes.Axes` to draw
into, and returns the :class:`~matplotlib.figure.Figure` (the new one, or the Axes' own). None
calls ``pyplot.show()`` or touches pyplot's global state: figures are made with the Agg canvas,
so they work in scripts, servers and notebooks alike. Save one with :func:`save_figure` or
``fig.savefig(...)``.

* :func:`plot_similarity_matrix`: cosine similarity of every pair of embeddings, grouped by speaker.
* :func:`plot_score_histograms`: same-speaker and different-speaker scores, with a threshold.
* :func:`plot_similarity_histogram`: the distribution of one set of similarities (TTS output
  against its prompts), with its mean.
* :func:`plot_det_curve`: the DET curve on normal-deviate axes, with the EER marked.
* :func:`plot_verification`: the histograms and the DET curve side by side.
* :func:`plot_projection`: a 2-D projection of embeddings coloured by speaker (PCA, or UMAP if
  the ``umap-learn`` package is installed).
* :func:`plot_windows`: windowed embeddings' similarity along a file (speaker changes, drift).
* :func:`plot_clean_report`: a dataset-cleaning report, own speaker against nearest other.

Importing this module does not import matplotlib; the first plot does, and raises
:class:`~speakerembed.BackendUnavailableError` if it is missing.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from statistics import NormalDist
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ..errors import ConfigError, missing_backend

if TYPE_CHECKING:
    import numpy.typing as npt
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "plot_clean_report",
    "plot_det_curve",
    "plot_projection",
    "plot_score_histograms",
    "plot_similarity_histogram",
    "plot_similarity_matrix",
    "plot_verification",
    "plot_windows",
    "save_figure",
]

#: The false-accept / false-reject rates labelled on DET axes.
DET_TICKS = (0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8)
_TARGET_COLOUR = "tab:blue"
_NONTARGET_COLOUR = "tab:orange"


def new_axes(ax: Axes | None, figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    """The Axes to draw into and its Figure; a fresh Agg figure when ``ax`` is None."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise missing_backend("matplotlib", "plot", "plotting") from None
    if ax is not None:
        owner: Any = ax.figure
        while owner is not None and not isinstance(owner, Figure):  # a SubFigure: up to its root
            owner = owner.figure
        if owner is None:  # pragma: no cover - an Axes always belongs to a figure in practice
            raise ConfigError("ax= does not belong to a figure")
        return owner, ax
    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _embeddings(x: npt.ArrayLike, name: str = "embeddings") -> npt.NDArray[np.float64]:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] < 2:
        raise ConfigError(f"{name}= must have shape (n, dim) with n >= 2, got {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ConfigError(f"{name}= must be finite")
    norms = np.linalg.norm(a, axis=1, keepdims=True)
    if np.any(norms == 0):
        raise ConfigError(f"{name}= has a zero row; it has no direction")
    unit: npt.NDArray[np.float64] = a / norms
    return unit


def _speakers(speakers: Sequence[object], n: int) -> list[str]:
    names = [str(s) for s in speakers]
    if len(names) != n:
        raise ConfigError(f"speakers= has {len(names)} entries but there are {n} embeddings; pass one each")
    return names


def plot_similarity_matrix(
    embeddings: npt.ArrayLike,
    speakers: Sequence[object],
    *,
    names: Sequence[str] | None = None,
    ax: Axes | None = None,
    title: str | None = "Cosine similarity, grouped by speaker",
) -> Figure:
    """Cosine similarity of every pair of embeddings, rows and columns grouped by speaker.

    Parameters
    ----------
    embeddings : array_like, shape (n, dim)
        Utterance embeddings (any length; they are normalised).
    speakers : sequence of str, length n
        The speaker of each embedding; rows are grouped by it (in order of first appearance)
        and the groups are separated by lines.
    names : sequence of str, length n, optional
        A label for each row (file names); drawn when there are at most 40 rows.
    ax : matplotlib.axes.Axes, optional
        Draw here instead of in a new figure.
    title : str or None
        The Axes title.

    Returns
    -------
    matplotlib.figure.Figure
        With one image (the matrix) and a colour bar.

    Examples
    --------
    >>> import numpy as np
    >>> from speakerembed.analysis.plots import plot_similarity_matrix
    >>> x = np.random.default_rng(0).normal(size=(6, 8))
    >>> fig = plot_similarity_matrix(x, ["a", "b", "a", "b", "a", "b"])
    >>> len(fig.axes[0].images)
    1
    """
    x = _embeddings(embeddings)
    spk = _speakers(speakers, x.shape[0])
    if names is not None and len(names) != x.shape[0]:
        raise ConfigError(f"names= has {len(names)} entries but there are {x.shape[0]} embeddings")
    first = {s: i for i, s in reversed(list(enumerate(spk)))}
    order = sorted(range(len(spk)), key=lambda i: (first[spk[i]], i))
    x, spk = x[order], [spk[i] for i in order]
    labels = [names[i] for i in order] if names is not None else None
    sim = x @ x.T
    n = x.shape[0]
    fig, ax = new_axes(ax, (6.4, 5.6) if n > 12 else (5.6, 4.8))
    image = ax.imshow(sim, vmin=min(0.0, float(sim.min())), vmax=1.0, cmap="viridis", interpolation="nearest")
    fig.colorbar(image, ax=ax, label="cosine similarity", shrink=0.85)
    bounds = [i for i in range(1, n) if spk[i] != spk[i - 1]]
    for b in bounds:
        ax.axhline(b - 0.5, color="white", linewidth=1.2)
        ax.axvline(b - 0.5, color="white", linewidth=1.2)
    if labels is not None and n <= 40:
        ax.set_xticks(range(n), labels, rotation=90, fontsize="small")
        ax.set_yticks(range(n), labels, fontsize="small")
    else:
        edges = [0, *bounds, n]
        centres = [(edges[i] + edges[i + 1] - 1) / 2 for i in range(len(edges) - 1)]
        groups = [spk[e] for e in edges[:-1]]
        ax.set_xticks(centres, groups, rotation=90 if len(groups) > 6 else 0)
        ax.set_yticks(centres, groups)
        ax.set_xlabel("speaker")
        ax.set_ylabel("speaker")
    if title:
        ax.set_title(title)
    return fig


def _trials(
    scores: npt.ArrayLike, labels: npt.ArrayLike
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    from .scoring import check_scores

    return check_scores(scores, labels)


def plot_score_histograms(
    scores: npt.ArrayLike,
    labels: npt.ArrayLike,
    *,
    threshold: float | None = None,
    bins: int = 40,
    ax: Axes | None = None,
    title: str | None = "Same-speaker and different-speaker scores",
) -> Figure:
    """Histograms of same-speaker (target) and different-speaker (non-target) trial scores.

    Parameters
    ----------
    scores : array_like, shape (n_trials,)
        Trial scores (cosines).
    labels : array_like, shape (n_trials,), bool or 0/1
        ``True``/1 for same-speaker trials.
    threshold : float, optional
        Drawn as a vertical line, with the error rates it gives on these trials in the legend.
    bins : int
        Number of bins, shared by both histograms.
    ax : matplotlib.axes.Axes, optional
        Draw here instead of in a new figure.
    title : str or None
        The Axes title.

    Returns
    -------
    matplotlib.figure.Figure
        Two histograms (density, so classes of different sizes compare) and a legend with the
        number of trials in each.

    Examples
    --------
    >>> from speakerembed.analysis.plots import plot_score_histograms
    >>> fig = plot_score_histograms([0.9, 0.8, 0.3, 0.4], [1, 1, 0, 0], threshold=0.6)
    >>> len(fig.axes[0].lines)
    1
    """
    s, y = _trials(scores, labels)
    if not (isinstance(bins, int) and bins >= 1):
        raise ConfigError(f"bins= must be a whole number of at least 1, got {bins!r}")
    fig, ax = new_axes(ax, (6.4, 4.0))
    edges = np.histogram_bin_edges(s, bins=bins).tolist()
    ax.hist(s[~y], bins=edges, density=True, alpha=0.6, color=_NONTARGET_COLOUR,
            label=f"different speakers ({int((~y).sum())} trials)")  # fmt: skip
    ax.hist(s[y], bins=edges, density=True, alpha=0.6, color=_TARGET_COLOUR,
            label=f"same speaker ({int(y.sum())} trials)")  # fmt: skip
    if threshold is not None:
        if not np.isfinite(threshold):
            raise ConfigError(f"threshold= must be finite, got {threshold!r}")
        far = float(np.mean(s[~y] >= threshold))
        frr = float(np.mean(s[y] < threshold))
        ax.axvline(
            threshold,
            color="black",
            linestyle="--",
            label=f"threshold {threshold:.3f}: "
            f"{100 * far:.2g}% false accepts, {100 * frr:.2g}% false rejects",
        )
    ax.set_xlabel("score (cosine similarity)")
    ax.set_ylabel("density")
    ax.legend(loc="upper left", fontsize="small")
    ax.margins(y=0.25)  # room for the legend
    if title:
        ax.set_title(title)
    return fig


def plot_similarity_histogram(
    similarities: npt.ArrayLike,
    *,
    bins: int = 30,
    label: str | None = None,
    ax: Axes | None = None,
    title: str | None = "Speaker similarity to the reference",
) -> Figure:
    """Histogram of one set of similarities (such as TTS output against its prompts), with its mean.

    Parameters
    ----------
    similarities : array_like, shape (n,)
        Cosine similarities, n >= 1, finite.
    bins : int
        Number of bins.
    label : str, optional
        Legend entry of the histogram (the weights, say); call again on the same ``ax`` to
        compare systems.
    ax : matplotlib.axes.Axes, optional
        Draw here instead of in a new figure.
    title : str or None
        The Axes title.

    Returns
    -------
    matplotlib.figure.Figure
        One histogram and a dashed line at the mean, both in the legend.

    Examples
    --------
    >>> from speakerembed.analysis.plots import plot_similarity_histogram
    >>> fig = plot_similarity_histogram([0.81, 0.78, 0.85, 0.52], label="system A")
    >>> fig.axes[0].get_legend_handles_labels()[1]
    ['system A (4 pairs)', 'mean 0.740']
    """
    s = np.asarray(similarities, dtype=np.float64)
    if s.ndim != 1 or s.size == 0 or not np.all(np.isfinite(s)):
        raise ConfigError("similarities= must be a non-empty one-dimensional array of finite numbers")
    if not (isinstance(bins, int) and bins >= 1):
        raise ConfigError(f"bins= must be a whole number of at least 1, got {bins!r}")
    fig, ax = new_axes(ax, (6.4, 4.0))
    name = f"{label} ({s.size} pairs)" if label else f"{s.size} pairs"
    ax.hist(s, bins=bins, alpha=0.6, label=name)
    colour = ax.patches[-1].get_facecolor()[:3]  # the histogram's own colour, opaque
    ax.axvline(float(s.mean()), color=colour, linestyle="--", label=f"mean {s.mean():.3f}")
    ax.set_xlabel("cosine similarity")
    ax.set_ylabel("pairs")
    from matplotlib.ticker import MaxNLocator

    ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # counts
    ax.legend(loc="upper left", fontsize="small")
    ax.margins(y=0.2)
    if title:
        ax.set_title(title)
    return fig


def plot_det_curve(
    scores: npt.ArrayLike,
    labels: npt.ArrayLike,
    *,
    label: str | None = None,
    mark_eer: bool = True,
    ax: Axes | None = None,
    title: str | None = "DET curve",
) -> Figure:
    """The detection error trade-off curve, on normal-deviate (probit) axes.

    False-accept rate on x, false-reject rate on y, each on the normal-deviate scale (a
    Gaussian score distribution gives a straight line). Call it again with the same ``ax`` to
    compare systems or data sets on one plot.

    Parameters
    ----------
    scores : array_like, shape (n_trials,)
        Trial scores.
    labels : array_like, shape (n_trials,), bool or 0/1
        ``True``/1 for same-speaker trials.
    label : str, optional
        Legend entry for this curve; the EER is appended to it.
    mark_eer : bool
        Mark the equal error rate with a dot.
    ax : matplotlib.axes.Axes, optional
        Draw here instead of in a new figure.
    title : str or None
        The Axes title.

    Returns
    -------
    matplotlib.figure.Figure
        One line (the curve) per call, plus the diagonal on a new figure.

    Examples
    --------
    >>> from speakerembed.analysis.plots import plot_det_curve
    >>> fig = plot_det_curve([0.9, 0.8, 0.7, 0.6, 0.5, 0.4], [1, 1, 0, 1, 0, 0], label="demo")
    >>> fig.axes[0].get_legend_handles_labels()[1]
    ['demo (EER 33.3%)']
    """
    from .scoring import det_curve, eer

    s, y = _trials(scores, labels)
    curve = det_curve(s, y)
    result = eer(s, y)
    fig, ax = new_axes(ax, (5.0, 5.0))
    fresh = not ax.lines
    # Rates of exactly 0 or 1 have no normal deviate: draw them at half a trial of their class.
    lo_fa, lo_fr = 0.5 / int((~y).sum()), 0.5 / int(y.sum())
    ppf = NormalDist().inv_cdf
    lim = (ppf(min(DET_TICKS)) - 0.2, ppf(0.5) + 0.2)

    def deviate(p: npt.NDArray[np.float64], lo: float) -> npt.NDArray[np.float64]:
        clipped = np.clip(p, lo, 1 - lo)
        return np.array([ppf(float(v)) for v in clipped])

    text = f"EER {100 * result.value:.1f}%"
    (line,) = ax.plot(
        deviate(curve.fpr, lo_fa), deviate(curve.fnr, lo_fr), label=f"{label} ({text})" if label else text
    )
    if mark_eer and result.value > 0:
        v = ppf(min(max(result.value, lo_fa), 1 - lo_fa))
        ax.plot([v], [v], "o", color=line.get_color(), markersize=5)
    if fresh:
        ax.plot(lim, lim, color="0.7", linewidth=0.8, linestyle=":", zorder=0)
    ticks = [t for t in DET_TICKS if t <= 0.5]
    positions = [ppf(t) for t in ticks]
    names = [f"{100 * t:g}" for t in ticks]
    ax.set_xticks(positions, names)
    ax.set_yticks(positions, names)
    ax.set_xlim(*lim)
    ax.set_ylim(*lim)
    ax.set_aspect("equal")
    ax.grid(True, color="0.9")
    ax.set_xlabel("false accepts (%)")
    ax.set_ylabel("false rejects (%)")
    ax.legend(loc="upper right", fontsize="small")
    if title:
        ax.set_title(title)
    return fig


def plot_verification(
    scores: npt.ArrayLike,
    labels: npt.ArrayLike,
    *,
    threshold: float | None = None,
    label: str | None = None,
    title: str | None = None,
) -> Figure:
    """Score histograms (with a threshold) and the DET curve, side by side in one figure.

    Parameters
    ----------
    scores : array_like, shape (n_trials,)
        Trial scores.
    labels : array_like, shape (n_trials,), bool or 0/1
        ``True``/1 for same-speaker trials.
    threshold : float, optional
        The threshold to draw; by default the EER threshold.
    label : str, optional
        Legend entry of the DET curve.
    title : str, optional
        The figure's title.

    Returns
    -------
    matplotlib.figure.Figure
        Two Axes: :func:`plot_score_histograms` and :func:`plot_det_curve`.

    Examples
    --------
    >>> from speakerembed.analysis.plots import plot_verification
    >>> fig = plot_verification([0.9, 0.8, 0.7, 0.6, 0.5, 0.4], [1, 1, 0, 1, 0, 0])
    >>> len(fig.axes)
    2
    """
    from .scoring import eer

    s, y = _trials(scores, labels)
    if threshold is None:
        threshold = eer(s, y).threshold
        where = "EER threshold"
    else:
        where = "threshold"
    fig, first = new_axes(None, (11.0, 4.6))
    fig.delaxes(first)
    left, right = fig.subplots(1, 2, width_ratios=(1.5, 1))
    plot_score_histograms(s, y, threshold=threshold, ax=left, title=f"Scores, with the {where}")
    plot_det_curve(s, y, label=label, ax=right)
    if title:
        fig.suptitle(title)
    return fig


def _pca(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    centred = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    out: npt.NDArray[np.float64] = centred @ vt[:2].T
    if out.shape[1] < 2:
        out = np.pad(out, ((0, 0), (0, 2 - out.shape[1])))
    return out


def _umap_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("umap") is not None


def plot_projection(
    embeddings: npt.ArrayLike,
    speakers: Sequence[object],
    *,
    method: Literal["auto", "pca", "umap"] = "auto",
    ax: Axes | None = None,
    title: str | None = None,
    random_state: int = 0,
) -> Figure:
    """A 2-D projection of embeddings, one colour per speaker.

    Parameters
    ----------
    embeddings : array_like, shape (n, dim)
        Embeddings (normalised before projecting).
    speakers : sequence of str, length n
        The speaker of each embedding.
    method : {"auto", "pca", "umap"}
        ``"pca"``: the two principal components (NumPy SVD). ``"umap"``: UMAP with cosine
        distance (needs the ``umap-learn`` package). ``"auto"``: UMAP when it is installed and
        there are at least 16 embeddings, else PCA.
    ax : matplotlib.axes.Axes, optional
        Draw here instead of in a new figure.
    title : str or None
        The Axes title; by default, the method used.
    random_state : int
        Seed for UMAP.

    Returns
    -------
    matplotlib.figure.Figure
        One scatter per speaker.

    Examples
    --------
    >>> import numpy as np
    >>> from speakerembed.analysis.plots import plot_projection
    >>> x = np.random.default_rng(0).normal(size=(6, 8))
    >>> fig = plot_projection(x, ["a", "a", "b", "b", "c", "c"], method="pca")
    >>> len(fig.axes[0].collections)
    3
    """
    x = _embeddings(embeddings)
    spk = _speakers(speakers, x.shape[0])
    if method not in ("auto", "pca", "umap"):
        raise ConfigError(f"method= must be 'auto', 'pca' or 'umap', got {method!r}")
    use_umap = method == "umap" or (method == "auto" and _umap_available() and x.shape[0] >= 16)
    if use_umap:
        try:
            import umap
        except ImportError:
            raise missing_backend("umap-learn", "plot", "plot_projection(method='umap')") from None
        reducer: Any = umap.UMAP(
            n_components=2, metric="cosine", n_neighbors=min(15, x.shape[0] - 1), random_state=random_state
        )
        xy = np.asarray(reducer.fit_transform(x), dtype=np.float64)
        axis_names = ("UMAP 1", "UMAP 2")
    else:
        xy = _pca(x)
        axis_names = ("principal component 1", "principal component 2")
    fig, ax = new_axes(ax, (6.4, 4.8))
    groups = list(dict.fromkeys(spk))
    cmap_name = "tab10" if len(groups) <= 10 else "tab20"
    from matplotlib import colormaps

    cmap = colormaps[cmap_name]
    for i, g in enumerate(groups):
        rows = [j for j, s in enumerate(spk) if s == g]
        ax.scatter(xy[rows, 0], xy[rows, 1], s=28, color=cmap(i % cmap.N), label=g, alpha=0.85)
    ax.set_xlabel(axis_names[0])
    ax.set_ylabel(axis_names[1])
    if len(groups) <= 20:
        ax.legend(title="speaker", fontsize="small", loc="best")
    ax.set_title(title if title is not None else f"Embeddings, {'UMAP' if use_umap else 'PCA'}")
    return fig


def save_figure(fig: Figure, path: str | os.PathLike[str], *, dpi: int = 150) -> None:
    """Write a figure to a file (PNG, SVG or PDF by its suffix), atomically.

    The figure is written to a temporary file beside ``path`` and renamed, so ``path`` is
    never a partial image.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure, from one of the ``plot_*`` functions.
    path : str or os.PathLike
        Where to write it; the suffix picks the format.
    dpi : int
        Resolution of raster formats.
    """
    import tempfile

    target = os.fspath(path)
    suffix = os.path.splitext(target)[1].lower()
    if suffix not in (".png", ".svg", ".pdf"):
        raise ConfigError(
            f"path= {target!r}: cannot write a {suffix or 'suffix-less'} figure; use .png, .svg or .pdf"
        )
    folder = os.path.dirname(target) or "."
    fd, tmp = tempfile.mkstemp(prefix=".plot.", suffix=suffix, dir=folder)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # as an ordinary new file, not mkstemp's 0600
    try:
        fig.savefig(tmp, dpi=dpi, format=suffix[1:])
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def plot_windows(
    start_s: npt.ArrayLike,
    end_s: npt.ArrayLike,
    similarity_to_file: npt.ArrayLike,
    similarity_to_previous: npt.ArrayLike,
    *,
    ax: Axes | None = None,
    title: str | None = "Window similarity over time",
) -> Figure:
    """Each window's cosine to the whole file and to the previous window, along the file.

    Parameters
    ----------
    start_s, end_s : array_like, shape (n_windows,)
        Window spans in seconds (:class:`~speakerembed.WindowedEmbeddings`).
    similarity_to_file : array_like, shape (n_windows,)
        :meth:`~speakerembed.WindowedEmbeddings.similarity_to_utterance`.
    similarity_to_previous : array_like, shape (n_windows - 1,)
        :meth:`~speakerembed.WindowedEmbeddings.similarity_to_previous`; drawn at the
        midpoint of each window pair. A dip marks a change of voice.
    ax : matplotlib.axes.Axes, optional
        Draw here instead of in a new figure.
    title : str or None
        The Axes title.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> from speakerembed.analysis.plots import plot_windows
    >>> fig = plot_windows([0, 0.77], [1.6, 2.37], [0.9, 0.8], [0.7])
    >>> len(fig.axes[0].lines)
    2
    """
    start = np.asarray(start_s, dtype=np.float64)
    end = np.asarray(end_s, dtype=np.float64)
    to_file = np.asarray(similarity_to_file, dtype=np.float64)
    to_prev = np.asarray(similarity_to_previous, dtype=np.float64)
    n = start.shape[0]
    if end.shape != (n,) or to_file.shape != (n,) or to_prev.shape != (max(n - 1, 0),) or n == 0:
        raise ConfigError(
            "start_s=, end_s= and similarity_to_file= need one value per window and "
            "similarity_to_previous= one fewer"
        )
    fig, ax = new_axes(ax, (8.0, 3.2))
    centre = (start + end) / 2
    ax.plot(centre, to_file, marker=".", color=_TARGET_COLOUR, label="cosine to the whole file")
    ax.plot((centre[1:] + centre[:-1]) / 2, to_prev, marker=".", color=_NONTARGET_COLOUR,
            label="cosine to the previous window")  # fmt: skip
    ax.set_xlabel("time in the file (s), window centres")
    ax.set_ylabel("cosine similarity")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=2, fontsize="small", frameon=False)
    if title:
        ax.set_title(title)
    return fig


def plot_clean_report(
    own_similarity: npt.ArrayLike,
    nearest_similarity: npt.ArrayLike,
    flagged: npt.ArrayLike,
    *,
    outlier_threshold: float | None = None,
    ax: Axes | None = None,
    title: str | None = "Each clip: its own speaker against the nearest other",
) -> Figure:
    """A dataset-cleaning report as a scatter: own-speaker cosine against nearest-other cosine.

    Clips below the diagonal sound more like their own speaker than any other; clips above it,
    or left of the outlier threshold, are suspicious.

    Parameters
    ----------
    own_similarity, nearest_similarity : array_like, shape (n_clips,)
        The report's columns (:class:`~speakerembed.CleanReport`); clips where either is NaN
        (a speaker with one clip, a dataset with one speaker) are left out.
    flagged : array_like, shape (n_clips,), bool
        Drawn in another colour.
    outlier_threshold : float, optional
        Drawn as a vertical and a horizontal line.
    ax : matplotlib.axes.Axes, optional
        Draw here instead of in a new figure.
    title : str or None
        The Axes title.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> from speakerembed.analysis.plots import plot_clean_report
    >>> fig = plot_clean_report([0.9, 0.5], [0.6, 0.8], [False, True], outlier_threshold=0.74)
    >>> len(fig.axes[0].collections)
    2
    """
    own = np.asarray(own_similarity, dtype=np.float64)
    near = np.asarray(nearest_similarity, dtype=np.float64)
    flag = np.asarray(flagged, dtype=bool)
    if own.shape != near.shape or own.shape != flag.shape or own.ndim != 1:
        raise ConfigError("own_similarity=, nearest_similarity= and flagged= need one value per clip")
    ok = np.isfinite(own) & np.isfinite(near)
    fig, ax = new_axes(ax, (5.2, 5.0))
    ax.scatter(own[ok & ~flag], near[ok & ~flag], s=12, color=_TARGET_COLOUR,
               label=f"ok ({int((ok & ~flag).sum())})")  # fmt: skip
    ax.scatter(own[ok & flag], near[ok & flag], s=24, marker="x", color="tab:red",
               label=f"flagged ({int((ok & flag).sum())})")  # fmt: skip
    low = min(own[ok].min(initial=1.0), near[ok].min(initial=1.0), outlier_threshold or 1.0)
    lo = max(-1.0, np.floor((low - 0.05) * 10) / 10)
    ax.plot([lo, 1.0], [lo, 1.0], color="grey", linewidth=0.8, linestyle=":")
    ax.set_xlim(lo, 1.02)
    ax.set_ylim(lo, 1.02)
    if outlier_threshold is not None:
        ax.axvline(outlier_threshold, color="black", linestyle="--", linewidth=0.8,
                   label=f"outlier threshold {outlier_threshold:.2f}")  # fmt: skip
        ax.axhline(outlier_threshold, color="black", linestyle="--", linewidth=0.8)
    ax.set_xlabel("cosine to its own speaker (leave-one-out)")
    ax.set_ylabel("cosine to the nearest other speaker")
    ax.legend(loc="upper left", fontsize="small")
    if title:
        ax.set_title(title)
    return fig
