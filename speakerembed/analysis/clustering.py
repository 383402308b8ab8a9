"""Group unlabelled clips into speakers: average-linkage clustering on a neighbour graph.

:func:`~speakerembed.cluster_speakers` takes unit embeddings, one row a clip, and returns one speaker label
a row. It is agglomerative clustering with **average linkage** on cosine similarity, cut at a
similarity ``threshold``: two groups of clips merge while the mean cosine over all their pairs
of clips is at least the threshold, the closest groups first. For unit rows that mean is exactly
the dot product of the two groups' mean vectors, so the linkage is computed from one sum vector
a group, never from a matrix of every pair.

Which groups may merge comes from a **neighbour graph**: an edge joins two clips whose cosine is
at least ``threshold`` (at most ``max_neighbors`` a clip, the most similar kept). Two groups whose
mean cosine reaches the threshold hold at least one such pair, so when no clip has more than
``max_neighbors`` neighbours above the threshold, the partition is exactly that of scipy's
``linkage(x, "average", "cosine")`` cut with ``fcluster(Z, 1 - threshold, "distance")``
(tested). The graph is found

* ``search="exact"``: by blocked float32 matrix products over every pair of rows (the matrix of
  every pair is never held: memory is linear in the rows);
* ``search="ivf"``: by an inverted file, as faiss's ``IndexIVFFlat`` does: spherical k-means
  cuts the rows into about ``2 sqrt(n)`` cells, and each cell's rows are compared exactly with
  the rows of its :data:`IVF_PROBES` nearest cells. It can miss a pair whose clips fall in cells
  far apart; ``benchmarks/speakers_cluster.py`` measures how many;
* ``search="auto"`` (default): exact up to :data:`EXACT_MAX_ROWS` rows, the inverted file above.

A clip heard once is not pulled into the nearest crowd: it joins a group only if its mean
cosine to the whole group reaches the threshold, which a clip of another speaker does not
(different speakers score 0.60 +- 0.08 on average with the resemblyzer weights, the same speaker
0.85). Groups smaller than ``min_cluster_size`` are labelled ``-1`` (no speaker), never merged.

:func:`~speakerembed.bcubed` scores a clustering against reference labels (B-cubed precision and recall), and
:func:`~speakerembed.cluster_corpus` clusters a ``speakerembed corpus`` output (``speakerembed cluster``).
"""

from __future__ import annotations

import dataclasses
import heapq
import json
import math
import os
from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

import numpy as np

from ..errors import ConfigError, missing_backend
from ..stages.consolidate import guarded_norms
from .defaults import DEFAULT_THRESHOLD

if TYPE_CHECKING:
    import numpy.typing as npt
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "DEFAULT_THRESHOLD",
    "EXACT_MAX_ROWS",
    "IVF_PROBES",
    "AverageLinkage",
    "BCubed",
    "SpeakerClusters",
    "bcubed",
    "cluster_confidence",
    "cluster_corpus",
    "cluster_sizes",
    "cluster_speakers",
    "plot_cluster_sizes",
    "threshold_sweep",
]

#: ``search="auto"`` compares every pair of rows up to this many rows, and uses the inverted
#: file above it.
EXACT_MAX_ROWS = 30_000
#: Cells of the inverted file that each cell's rows are compared with (its own included).
IVF_PROBES = 10
#: Default ``max_neighbors``: the most neighbours above the threshold kept a clip.
MAX_NEIGHBORS = 16

Search = Literal["auto", "exact", "ivf"]
_SEARCHES = ("auto", "exact", "ivf")
_BLOCK_BYTES = 1 << 27  # 128 MiB of float32 similarities at a time


class BCubed(NamedTuple):
    """B-cubed precision, recall and their harmonic mean (Bagga and Baldwin, 1998)."""

    precision: float
    recall: float
    f1: float


def _codes(labels: Sequence[Hashable] | npt.ArrayLike) -> npt.NDArray[np.intp]:
    values = np.asarray(labels)
    if values.ndim != 1:
        raise ConfigError(f"labels have shape {values.shape}; pass one label per item")
    _, codes = np.unique(values, return_inverse=True)
    out: npt.NDArray[np.intp] = codes.reshape(-1).astype(np.intp)
    return out


def bcubed(
    labels_true: Sequence[Hashable] | npt.ArrayLike, labels_pred: Sequence[Hashable] | npt.ArrayLike
) -> BCubed:
    """B-cubed precision and recall of a clustering against reference labels.

    For each item, precision is the share of its predicted cluster that has its reference
    label, and recall the share of its reference class that is in its predicted cluster; both
    are averaged over the items. Every label is a group, ``-1`` included.

    Parameters
    ----------
    labels_true : array_like, shape (n,)
        Reference labels (any comparable values: speaker names, ints).
    labels_pred : array_like, shape (n,)
        Predicted labels, as :func:`~speakerembed.cluster_speakers` returns them.

    Returns
    -------
    BCubed
        ``precision``, ``recall`` and ``f1``, floats in (0, 1].

    Raises
    ------
    ConfigError
        For empty or unequal label arrays.

    Examples
    --------
    >>> from speakerembed.analysis.clustering import bcubed
    >>> bcubed(["a", "a", "b", "b"], [0, 0, 0, 1])
    BCubed(precision=0.6666666666666666, recall=0.75, f1=0.7058823529411765)
    """
    t, p = _codes(labels_true), _codes(labels_pred)
    if t.size == 0 or t.size != p.size:
        raise ConfigError(
            f"labels_true has {t.size} labels and labels_pred {p.size}; pass one of each per item"
        )
    n = t.size
    pair, joint = np.unique(t.astype(np.int64) * (int(p.max()) + 1) + p, return_counts=True)
    ti, pi = pair // (int(p.max()) + 1), pair % (int(p.max()) + 1)
    size_t, size_p = np.bincount(t), np.bincount(p)
    sq = joint.astype(np.float64) ** 2
    precision = float((sq / size_p[pi]).sum() / n)
    recall = float((sq / size_t[ti]).sum() / n)
    return BCubed(precision, recall, 2 * precision * recall / (precision + recall))


# -- the neighbour graph -----------------------------------------------------------------------


def _keep_rows(
    sims: npt.NDArray[np.float32], threshold: float, k: int
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """(row, column) of the entries >= threshold, at most the k largest a row."""
    mask = sims >= threshold
    over = np.flatnonzero(mask.sum(axis=1) > k)
    if over.size:
        top = np.argpartition(-sims[over], k - 1, axis=1)[:, :k]
        mask[over] = False
        mask[over[:, None], top] = sims[over[:, None], top] >= threshold
    r, c = np.nonzero(mask)
    return r, c


def _exact_pairs(
    x: npt.NDArray[np.float32], threshold: float, k: int
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    n = x.shape[0]
    block = max(1, _BLOCK_BYTES // (4 * n))
    rows, cols = [], []
    for lo in range(0, n, block):
        s = x[lo : lo + block] @ x.T
        s[np.arange(s.shape[0]), np.arange(lo, lo + s.shape[0])] = -np.inf
        r, c = _keep_rows(s, threshold, k)
        rows.append(r + lo)
        cols.append(c)
    return np.concatenate(rows), np.concatenate(cols)


def _argmax_rows(x: npt.NDArray[np.float32], centroids: npt.NDArray[np.float32]) -> npt.NDArray[np.intp]:
    block = max(1, _BLOCK_BYTES // (4 * centroids.shape[0]))
    out = np.empty(x.shape[0], dtype=np.intp)
    for lo in range(0, x.shape[0], block):
        out[lo : lo + block] = np.argmax(x[lo : lo + block] @ centroids.T, axis=1)
    return out


def _spherical_kmeans(
    x: npt.NDArray[np.float32], n_cells: int, rng: np.random.Generator, iterations: int = 8
) -> npt.NDArray[np.float32]:
    sample = x[rng.choice(x.shape[0], size=min(x.shape[0], 16 * n_cells), replace=False)]
    centroids = sample[rng.choice(sample.shape[0], size=n_cells, replace=False)].copy()
    for _ in range(iterations):
        cell = _argmax_rows(sample, centroids)
        sums = np.zeros_like(centroids)
        np.add.at(sums, cell, sample)
        norms = np.linalg.norm(sums, axis=1)
        empty = norms < 1e-6
        sums[empty] = sample[rng.choice(sample.shape[0], size=int(empty.sum()), replace=False)]
        norms[empty] = 1.0
        centroids = (sums / norms[:, None]).astype(np.float32)
    out: npt.NDArray[np.float32] = centroids
    return out


def _ivf_pairs(
    x: npt.NDArray[np.float32], threshold: float, k: int, probes: int
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    n = x.shape[0]
    rng = np.random.default_rng(0)
    n_cells = int(min(4096, n, max(8, round(2 * math.sqrt(n)))))
    centroids = _spherical_kmeans(x, n_cells, rng)
    cell = _argmax_rows(x, centroids)
    order = np.argsort(cell, kind="stable")
    bounds = np.searchsorted(cell[order], np.arange(n_cells + 1))
    near = np.argsort(-(centroids @ centroids.T), axis=1)[:, : min(probes, n_cells)]
    rows, cols = [], []
    for c in range(n_cells):
        queries = order[bounds[c] : bounds[c + 1]]
        if queries.size == 0:
            continue
        cand = np.concatenate([order[bounds[p] : bounds[p + 1]] for p in near[c]])
        block = max(1, _BLOCK_BYTES // (4 * max(1, cand.size)))
        xc = x[cand]
        for lo in range(0, queries.size, block):
            q = queries[lo : lo + block]
            s = x[q] @ xc.T
            s[q[:, None] == cand[None, :]] = -np.inf
            r, j = _keep_rows(s, threshold, k)
            rows.append(q[r])
            cols.append(cand[j])
    return np.concatenate(rows), np.concatenate(cols)


def _graph(
    x: npt.NDArray[np.float32], threshold: float, k: int, search: Search
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """The symmetric neighbour graph as CSR (indptr, indices), without self-loops."""
    n = x.shape[0]
    if n < 2:
        return np.zeros(n + 1, dtype=np.intp), np.zeros(0, dtype=np.intp)
    use_ivf = search == "ivf" or (search == "auto" and n > EXACT_MAX_ROWS)
    r, c = _ivf_pairs(x, threshold, k, IVF_PROBES) if use_ivf else _exact_pairs(x, threshold, k)
    key = np.unique(np.concatenate([r * n + c, c * n + r]).astype(np.int64))
    rows, cols = (key // n).astype(np.intp), (key % n).astype(np.intp)
    indptr = np.searchsorted(rows, np.arange(n + 1)).astype(np.intp)
    return indptr, cols


# -- average linkage on the graph --------------------------------------------------------------


def _links(
    sums: npt.NDArray[np.float64],
    counts: npt.NDArray[np.float64],
    a: npt.NDArray[np.intp],
    b: npt.NDArray[np.intp],
) -> npt.NDArray[np.float64]:
    """The linkage of each pair of groups (a[i], b[i]): ``sum_a @ sum_b / (n_a n_b)``, in blocks."""
    out = np.empty(a.size)
    step = 1 << 15
    for lo in range(0, a.size, step):
        sa, sb = a[lo : lo + step], b[lo : lo + step]
        out[lo : lo + step] = np.einsum("ij,ij->i", sums[sa], sums[sb]) / (counts[sa] * counts[sb])
    return out


#: The rounds of mutual nearest-neighbour merges stop, for the heap, once a round merges fewer
#: pairs than this share of the groups that still have a candidate merge.
_ROUNDS_MIN_SHARE = 0.005


def _average_linkage(
    x: npt.NDArray[np.float32], indptr: npt.NDArray[np.intp], indices: npt.NDArray[np.intp], floor: float
) -> tuple[npt.NDArray[np.intp], list[tuple[int, int, float]]]:
    """Average-linkage merges down to ``floor``: (final owner of each row, the merges, highest first).

    Each group is named by one of its rows and kept as the sum of its rows, so the linkage of
    two groups (the mean cosine of their pairs) is ``sum_a @ sum_b / (n_a n_b)``. Only pairs of
    groups joined by a graph edge are candidates, and a candidate whose linkage falls below
    ``floor`` is dropped for good: average linkage is reducible (the linkage of a merged group
    to a third is the size-weighted mean of its parts', never above the higher), so a pair below
    ``floor`` can only reach it again through another candidate pair that reaches it.

    The merges run in two stages, both giving the greedy sequence's merges (most similar pair
    first) for a reducible linkage without ties:

    1. **Rounds**, in NumPy: every group finds its most similar candidate, and every pair of
       groups that are each other's most similar merges at once (a mutual nearest pair merges
       in the greedy sequence too, as nothing it could merge with first is closer). Only the
       candidates of merged groups are re-scored. A round costs the candidates, not a step of
       Python per merge, and early rounds merge a few per cent of the groups each.
    2. **A heap**, once a round merges fewer pairs than 0.5 % of the groups with
       candidates (a few large groups growing one merge at a time): candidates keyed by a
       linkage that is never below the pair's current one. Merging a smaller group B into A
       changes A's linkage to D into the size-weighted mean of A-D and B-D, so only B's
       candidates get fresh keys; a popped entry is re-scored, merged if it still beats the
       next key, pushed back with its exact value otherwise.
    """
    n = x.shape[0]
    sums = x.astype(np.float64)
    counts = np.ones(n)
    owner = np.arange(n, dtype=np.intp)
    rows = np.repeat(np.arange(n, dtype=np.intp), np.diff(indptr))
    upper = rows < indices
    ea, eb = rows[upper], indices[upper]
    del rows, upper
    link = _links(sums, counts, ea, eb)
    keep = link >= floor
    ea, eb, link = ea[keep], eb[keep], link[keep]
    merges: list[tuple[int, int, float]] = []
    while ea.size:
        src, dst = np.concatenate([ea, eb]), np.concatenate([eb, ea])
        both = np.concatenate([link, link])
        order = np.lexsort((dst, -both, src))  # each group's best candidate first; ties: lowest name
        src, dst, both = src[order], dst[order], both[order]
        first = np.ones(src.size, dtype=bool)
        first[1:] = src[1:] != src[:-1]
        g, best, best_link = src[first], dst[first], both[first]
        choice = np.full(n, -1, dtype=np.intp)
        choice[g] = best
        mutual = (choice[best] == g) & (g < best)
        a, b, ab = g[mutual], best[mutual], best_link[mutual]
        if a.size < _ROUNDS_MIN_SHARE * g.size:
            break
        swap = counts[a] < counts[b]  # the larger group keeps its name
        a, b = np.where(swap, b, a), np.where(swap, a, b)
        merges.extend(zip(a.tolist(), b.tolist(), ab.tolist(), strict=True))
        sums[a] += sums[b]
        counts[a] += counts[b]
        rename = np.arange(n, dtype=np.intp)
        rename[b] = a
        owner = rename[owner]
        ea, eb = rename[ea], rename[eb]
        live = ea != eb
        lo, hi = np.minimum(ea[live], eb[live]), np.maximum(ea[live], eb[live])
        _, at = np.unique(lo.astype(np.int64) * n + hi, return_index=True)
        ea, eb, link = lo[at], hi[at], link[live][at]
        merged = np.zeros(n, dtype=bool)
        merged[a] = True
        fresh = merged[ea] | merged[eb]
        link[fresh] = _links(sums, counts, ea[fresh], eb[fresh])
        keep = link >= floor
        ea, eb, link = ea[keep], eb[keep], link[keep]
    if ea.size:
        _heap_merges(sums, counts, owner, ea, eb, link, floor, merges)
    heights = np.asarray([h for _, _, h in merges])
    ranked = np.argsort(-heights, kind="stable")  # a merge comes after the merges it is made of
    return owner, [merges[i] for i in ranked.tolist()]


def _heap_merges(
    sums: npt.NDArray[np.float64],
    counts: npt.NDArray[np.float64],
    owner: npt.NDArray[np.intp],
    ea: npt.NDArray[np.intp],
    eb: npt.NDArray[np.intp],
    link: npt.NDArray[np.float64],
    floor: float,
    merges: list[tuple[int, int, float]],
) -> None:
    """The greedy merges from the candidate pairs (ea, eb) of linkage ``link``, in place."""
    names = np.unique(np.concatenate([ea, eb]))
    by_group = np.argsort(owner, kind="stable")
    bounds = np.searchsorted(owner[by_group], names)
    ends = np.searchsorted(owner[by_group], names, side="right")
    members: dict[int, list[int]] = {
        int(g): by_group[s:e].tolist() for g, s, e in zip(names, bounds, ends, strict=True)
    }
    src, dst = np.concatenate([ea, eb]), np.concatenate([eb, ea])
    order = np.argsort(src, kind="stable")
    src, dst = src[order], dst[order]
    cuts = np.searchsorted(src, names)
    stops = np.searchsorted(src, names, side="right")
    chunks: dict[int, list[npt.NDArray[np.intp]]] = {
        int(g): [dst[s:e]] for g, s, e in zip(names, cuts, stops, strict=True)
    }
    del src, dst, order
    heap = [(-s, a, b) for s, a, b in zip(link.tolist(), ea.tolist(), eb.tolist(), strict=True)]
    heapq.heapify(heap)
    while heap:
        _, i, j = heapq.heappop(heap)
        a, b = int(owner[i]), int(owner[j])
        if a == b:
            continue
        score = float(sums[a] @ sums[b]) / (counts[a] * counts[b])
        if score < floor:
            continue
        if heap and score < -heap[0][0]:
            heapq.heappush(heap, (-score, a, b))
            continue
        if counts[a] < counts[b]:
            a, b = b, a
        moved = members.pop(b)
        owner[moved] = a
        members[a].extend(moved)
        sums[a] += sums[b]
        counts[a] += counts[b]
        merges.append((a, b, score))
        raw = chunks.pop(b)
        cand = np.unique(owner[raw[0] if len(raw) == 1 else np.concatenate(raw)])
        cand = cand[cand != a]
        chunks[a].append(cand)
        if cand.size:
            fresh = (sums[cand] @ sums[a]) / (counts[cand] * counts[a])
            up = fresh >= floor
            for d, s in zip(cand[up].tolist(), fresh[up].tolist(), strict=True):
                heapq.heappush(heap, (-s, a, d))


def _relabel(owner: npt.NDArray[np.intp], min_cluster_size: int) -> npt.NDArray[np.int64]:
    """Labels 0, 1, ... by decreasing size (ties: first row first); small groups -1."""
    groups, first, inverse, size = np.unique(
        owner, return_index=True, return_inverse=True, return_counts=True
    )
    rank = np.lexsort((first, -size))
    new = np.empty(groups.size, dtype=np.int64)
    new[rank] = np.arange(groups.size)
    new[size < min_cluster_size] = -1
    labels: npt.NDArray[np.int64] = new[inverse.reshape(-1)]
    return labels


def _check_embeddings(embeddings: npt.ArrayLike) -> npt.NDArray[np.float32]:
    x = np.asarray(embeddings)
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise ConfigError(f"embeddings has shape {x.shape}; pass a non-empty (n_clips, 256) array")
    if x.dtype.kind not in "fiu":
        raise ConfigError(f"embeddings has dtype {x.dtype}; pass numbers, as embed_utterances returns them")
    x = np.ascontiguousarray(x, dtype=np.float32)
    if not np.isfinite(x).all():
        raise ConfigError("embeddings holds NaN or infinite values; pass finite unit rows")
    norms = np.linalg.norm(x, axis=1)
    if np.abs(norms - 1.0).max() > 1e-3:
        bad = int(np.argmax(np.abs(norms - 1.0)))
        raise ConfigError(
            f"embeddings row {bad} has norm {norms[bad]:.4g}; pass unit rows "
            "(as embed_utterances returns them, or divide each row by its norm)"
        )
    return x


@dataclasses.dataclass(frozen=True)
class AverageLinkage:
    """Average-linkage clustering of unit embeddings on a neighbour graph, cut at a cosine.

    Parameters
    ----------
    threshold : float
        Groups merge while the mean cosine of their pairs of clips is at least this, in (-1, 1).
    min_cluster_size : int
        Groups with fewer clips are labelled ``-1``; at least 1 (1 keeps every group).
    max_neighbors : int
        The most neighbours above the threshold kept a clip in the graph.
    search : {"auto", "exact", "ivf"}
        How the graph is found (see :mod:`speakerembed.analysis.clustering`).

    Examples
    --------
    >>> import numpy as np
    >>> from speakerembed.analysis.clustering import AverageLinkage
    >>> x = np.array([[1, 0], [0.96, 0.28], [0, 1]], dtype=np.float32)
    >>> AverageLinkage(threshold=0.9).fit_predict(x).tolist()
    [0, 0, 1]
    """

    threshold: float = DEFAULT_THRESHOLD
    min_cluster_size: int = 1
    max_neighbors: int = MAX_NEIGHBORS
    search: Search = "auto"

    def __post_init__(self) -> None:
        t = self.threshold
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not -1.0 < t <= 1.0:
            raise ConfigError(
                f"threshold={t!r} is not a cosine; pass a number in (-1, 1], such as {DEFAULT_THRESHOLD}"
            )
        for name in ("min_cluster_size", "max_neighbors"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ConfigError(f"{name}={value!r} is not a count; pass a whole number of at least 1")
        if self.search not in _SEARCHES:
            raise ConfigError(
                f"search={self.search!r} is unknown; pass one of {', '.join(map(repr, _SEARCHES))}"
            )

    def fit_predict(self, embeddings: npt.ArrayLike) -> npt.NDArray[np.int64]:
        """Cluster the rows.

        Parameters
        ----------
        embeddings : array_like, shape (n_clips, dim)
            Finite unit rows (float32 or float64).

        Returns
        -------
        numpy.ndarray, shape (n_clips,), int64
            ``0`` for the largest cluster, ``1`` for the next, ...; ``-1`` for clips in groups
            smaller than ``min_cluster_size``.

        Raises
        ------
        ConfigError
            For an empty, non-finite or non-unit array.
        """
        x = _check_embeddings(embeddings)
        indptr, indices = _graph(x, float(self.threshold), int(self.max_neighbors), self.search)
        owner, _ = _average_linkage(x, indptr, indices, float(self.threshold))
        return _relabel(owner, int(self.min_cluster_size))


def cluster_speakers(
    embeddings: npt.ArrayLike,
    *,
    threshold: float | None = None,
    min_cluster_size: int = 1,
    max_neighbors: int = MAX_NEIGHBORS,
    search: Search = "auto",
) -> npt.NDArray[np.int64]:
    """Group clips into speakers: one label a row of unit embeddings.

    Average-linkage clustering on cosine similarity, cut at ``threshold``, over a neighbour
    graph, so 200,000 clips cluster in minutes on two CPU cores (see
    :mod:`speakerembed.analysis.clustering`). A clip unlike every group stays alone.

    Parameters
    ----------
    embeddings : array_like, shape (n_clips, 256)
        Finite unit rows, as :func:`~speakerembed.embed_utterances` returns them.
    threshold : float or None
        Mean cosine between two groups of clips from which they merge; ``None`` is
        ``speakerembed.analysis.clustering.DEFAULT_THRESHOLD`` (measured). Higher splits more.
    min_cluster_size : int
        Clusters with fewer clips get the label ``-1``.
    max_neighbors : int
        Neighbours a clip keeps in the graph.
    search : {"auto", "exact", "ivf"}
        How the neighbour graph is found.

    Returns
    -------
    numpy.ndarray, shape (n_clips,), int64
        Cluster labels, 0 for the largest; ``-1`` for clips of clusters below
        ``min_cluster_size``.

    Raises
    ------
    ConfigError
        For a bad array or argument.

    Examples
    --------
    >>> import numpy as np
    >>> from speakerembed import cluster_speakers
    >>> x = np.array([[1, 0, 0], [0.98, 0.2, 0], [0, 0, 1]], dtype=np.float32)
    >>> x /= np.linalg.norm(x, axis=1, keepdims=True)
    >>> cluster_speakers(x).tolist()
    [0, 0, 1]
    """
    return AverageLinkage(
        threshold=DEFAULT_THRESHOLD if threshold is None else threshold,
        min_cluster_size=min_cluster_size,
        max_neighbors=max_neighbors,
        search=search,
    ).fit_predict(embeddings)


def cluster_confidence(embeddings: npt.ArrayLike, labels: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Each row's cosine to its cluster's centroid (the L2-normalised mean of the cluster).

    Parameters
    ----------
    embeddings : array_like, shape (n_clips, dim)
        Unit rows.
    labels : array_like, shape (n_clips,), int
        Cluster labels; ``-1`` rows get NaN.

    Returns
    -------
    numpy.ndarray, shape (n_clips,), float64
        In [-1, 1]; 1.0 for a cluster of one clip.
    """
    x = _check_embeddings(embeddings).astype(np.float64)
    lab = np.asarray(labels, dtype=np.int64).reshape(-1)
    if lab.size != x.shape[0]:
        raise ConfigError(f"{x.shape[0]} embeddings and {lab.size} labels; pass one label per row")
    out = np.full(lab.size, np.nan)
    ok = lab >= 0
    if ok.any():
        sums = np.zeros((int(lab.max()) + 1, x.shape[1]))
        np.add.at(sums, lab[ok], x[ok])
        sums /= guarded_norms(sums)
        out[ok] = np.einsum("ij,ij->i", x[ok], sums[lab[ok]])
    clipped: npt.NDArray[np.float64] = np.clip(out, -1.0, 1.0)
    return clipped


def cluster_sizes(labels: npt.ArrayLike) -> dict[str, Any]:
    """A report of cluster sizes: how many clusters, singletons, and clips in each size band.

    Parameters
    ----------
    labels : array_like, shape (n_clips,), int
        As :func:`~speakerembed.cluster_speakers` returns them.

    Returns
    -------
    dict
        ``clips``, ``clusters`` (labels >= 0), ``singletons`` (clusters of one clip),
        ``unassigned`` (label ``-1``), ``largest`` (the sizes of the ten largest clusters) and
        ``bands``: ``{"1": clusters, "2": ..., "3-5", "6-10", "11-50", "51-200", "201+"}``.
    """
    lab = np.asarray(labels, dtype=np.int64).reshape(-1)
    sizes = np.bincount(lab[lab >= 0]) if (lab >= 0).any() else np.zeros(0, dtype=np.int64)
    sizes = sizes[sizes > 0]
    bands = {"1": (1, 1), "2": (2, 2), "3-5": (3, 5), "6-10": (6, 10), "11-50": (11, 50), "51-200": (51, 200)}
    report: dict[str, Any] = {
        "clips": int(lab.size),
        "clusters": int(sizes.size),
        "singletons": int((sizes == 1).sum()),
        "unassigned": int((lab < 0).sum()),
        "largest": sorted(sizes.tolist(), reverse=True)[:10],
        "bands": {name: int(((sizes >= lo) & (sizes <= hi)).sum()) for name, (lo, hi) in bands.items()},
    }
    report["bands"]["201+"] = int((sizes > 200).sum())
    return report


def threshold_sweep(
    embeddings: npt.ArrayLike,
    thresholds: Sequence[float],
    *,
    max_neighbors: int = MAX_NEIGHBORS,
    search: Search = "auto",
) -> dict[str, npt.NDArray[Any]]:
    """Clusters and singletons at each of several thresholds, from one clustering run.

    Average linkage has no inversions, so the partition at a threshold is the first merges of a
    run down to the lowest one.

    Parameters
    ----------
    embeddings : array_like, shape (n_clips, dim)
        Unit rows.
    thresholds : sequence of float
        Cosines in (-1, 1].
    max_neighbors, search
        As for :func:`~speakerembed.cluster_speakers`.

    Returns
    -------
    dict of str to numpy.ndarray
        ``threshold`` (float64, sorted), ``clusters`` and ``singletons`` (int64), and
        ``largest`` (int64, the largest cluster's size), one entry each.
    """
    ts = np.sort(np.asarray(list(thresholds), dtype=np.float64))
    if ts.size == 0:
        raise ConfigError("thresholds is empty; pass at least one cosine")
    AverageLinkage(threshold=float(ts[0]), max_neighbors=max_neighbors, search=search)
    AverageLinkage(threshold=float(ts[-1]))
    x = _check_embeddings(embeddings)
    indptr, indices = _graph(x, float(ts[0]), int(max_neighbors), search)
    _, merges = _average_linkage(x, indptr, indices, float(ts[0]))
    n = x.shape[0]
    size = np.ones(n, dtype=np.int64)
    heights = np.asarray([h for _, _, h in merges])
    clusters, singles, largest = n, n, 1
    at = {
        "clusters": np.empty(ts.size, np.int64),
        "singletons": np.empty(ts.size, np.int64),
        "largest": np.empty(ts.size, np.int64),
    }
    done = 0
    for k in range(ts.size - 1, -1, -1):  # highest threshold first: the fewest merges
        stop = int((heights >= ts[k]).sum())
        for a, b, _ in merges[done:stop]:
            singles -= int(size[a] == 1) + int(size[b] == 1)
            size[a] += size[b]
            largest = max(largest, int(size[a]))
            clusters -= 1
        done = max(done, stop)
        at["clusters"][k], at["singletons"][k], at["largest"][k] = clusters, singles, largest
    return {"threshold": ts, **at}


def plot_cluster_sizes(
    labels: npt.ArrayLike,
    sweep: dict[str, npt.NDArray[Any]] | None = None,
    *,
    threshold: float | None = None,
    ax: Axes | None = None,
) -> Figure:
    """Draw the cluster sizes, and what the threshold does (from :func:`threshold_sweep`).

    Parameters
    ----------
    labels : array_like, shape (n_clips,), int
        The clustering to draw.
    sweep : dict or None
        :func:`threshold_sweep`'s result; with it a second panel shows the clusters and
        singletons at each threshold, ``threshold`` marked.
    threshold : float or None
        The threshold ``labels`` were cut at.
    ax : matplotlib.axes.Axes or None
        Draw the size histogram into this Axes (and nothing else); a new Agg figure by default.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from .plots import new_axes

    lab = np.asarray(labels, dtype=np.int64).reshape(-1)
    if ax is None and sweep is not None:
        try:
            from matplotlib.figure import Figure as _Figure
        except ImportError as exc:
            raise missing_backend("matplotlib", "plot", "plot_cluster_sizes") from exc
        fig = _Figure(figsize=(10, 4), layout="constrained")
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        FigureCanvasAgg(fig)
        ax_sizes, ax_sweep = fig.subplots(1, 2)
    else:
        fig, ax_sizes = new_axes(ax, (5.5, 4))
        ax_sweep = None
    sizes = np.bincount(lab[lab >= 0]) if (lab >= 0).any() else np.zeros(1, dtype=np.int64)
    sizes = sizes[sizes > 0]
    top = max(1, int(sizes.max()) if sizes.size else 1)
    edges = np.unique(np.round(np.logspace(0, math.log10(top + 1), 30)).astype(int))
    ax_sizes.hist(sizes, bins=np.append(edges, edges[-1] + 1) - 0.5, color="tab:blue")
    ax_sizes.set_xscale("log")
    ax_sizes.set_yscale("log")
    ax_sizes.set_xlabel("clips in the cluster")
    ax_sizes.set_ylabel("clusters")
    report = cluster_sizes(lab)
    where = f" at threshold {threshold:.2f}" if threshold is not None else ""
    ax_sizes.set_title(
        f"{report['clusters']} clusters, {report['singletons']} singletons{where}", fontsize=10
    )
    if ax_sweep is not None and sweep is not None:
        ax_sweep.plot(sweep["threshold"], sweep["clusters"], marker="o", label="clusters")
        ax_sweep.plot(sweep["threshold"], sweep["singletons"], marker="s", label="singletons")
        ax_sweep.plot(sweep["threshold"], sweep["largest"], marker="^", label="largest cluster (clips)")
        if threshold is not None:
            ax_sweep.axvline(threshold, color="k", linestyle="--", linewidth=1)
        ax_sweep.set_yscale("symlog", linthresh=1.0)  # counts can be 0
        ax_sweep.set_xlabel("threshold (mean cosine between merged groups)")
        ax_sweep.set_ylabel("count")
        ax_sweep.legend(fontsize=8)
        ax_sweep.set_title("what the threshold does", fontsize=10)
    return fig


# -- a corpus output ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SpeakerClusters:
    """The clusters of a corpus output, from :func:`~speakerembed.cluster_corpus`.

    Attributes
    ----------
    ids, paths : numpy.ndarray, shape (n,), object (str)
        The clustered rows' ``id`` and ``path``.
    labels : numpy.ndarray, shape (n,), int64
        Cluster labels (0 the largest; ``-1`` below ``min_cluster_size``).
    confidence : numpy.ndarray, shape (n,), float64
        Cosine to the cluster's centroid (NaN for ``-1``).
    threshold : float
        The threshold used.
    failed : int
        Rows of the corpus without an embedding (failed inputs), not clustered.
    """

    ids: npt.NDArray[Any]
    paths: npt.NDArray[Any]
    labels: npt.NDArray[np.int64]
    confidence: npt.NDArray[np.float64]
    threshold: float
    failed: int = 0

    def __len__(self) -> int:
        return len(self.ids)

    def sizes(self) -> dict[str, Any]:
        """:func:`~speakerembed.analysis.clustering.cluster_sizes` of the labels."""
        return cluster_sizes(self.labels)

    def to_arrow(self) -> Any:
        """The table: ``id``, ``path`` (string), ``cluster`` (int64, null for -1), ``confidence``."""
        import pyarrow as pa

        unassigned = self.labels < 0
        return pa.table(
            {
                "id": pa.array(self.ids.tolist(), type=pa.string()),
                "path": pa.array(self.paths.tolist(), type=pa.string()),
                "cluster": pa.array(self.labels, type=pa.int64(), mask=unassigned),
                "confidence": pa.array(self.confidence, type=pa.float64(), mask=np.isnan(self.confidence)),
            },
            metadata={b"speakerembed": json.dumps({"threshold": self.threshold}).encode()},
        )

    def write(self, path: str | os.PathLike[str]) -> None:
        """Write the table as Parquet."""
        import pyarrow.parquet as pq

        pq.write_table(self.to_arrow(), path)

    def speaker_names(self) -> list[str]:
        """Kaldi speaker ids: ``spk00000``, ... (zero-padded to sort), ``unassigned-<id>`` for -1."""
        width = max(5, len(str(max(0, int(self.labels.max(initial=0))))))
        return [
            f"spk{label:0{width}d}" if label >= 0 else f"unassigned-{i}"
            for label, i in zip(self.labels.tolist(), self.ids.tolist(), strict=True)
        ]

    def write_kaldi(self, folder: str | os.PathLike[str]) -> None:
        """Write Kaldi's ``utt2spk`` and ``spk2utt`` into ``folder``, sorted as Kaldi wants.

        Kaldi wants utterance ids that start with their speaker id to sort consistently; these
        files use the corpus ids as they are, so run Kaldi's ``utils/fix_data_dir.sh`` if your
        ids do not sort that way.
        """
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        for i in self.ids.tolist():
            if not i or any(ch.isspace() for ch in i):
                raise ConfigError(f"id {i!r} has white space; Kaldi's files need ids without it")
        pairs = sorted(zip(self.ids.tolist(), self.speaker_names(), strict=True))
        by_spk: dict[str, list[str]] = {}
        for utt, spk in pairs:
            by_spk.setdefault(spk, []).append(utt)
        (out / "utt2spk").write_text("".join(f"{u} {s}\n" for u, s in pairs), encoding="utf-8")
        (out / "spk2utt").write_text(
            "".join(f"{s} {' '.join(us)}\n" for s, us in sorted(by_spk.items())), encoding="utf-8"
        )


def read_corpus_embeddings(folder: Path) -> tuple[list[str], list[str], npt.NDArray[np.float32], int]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise missing_backend("pyarrow", "analysis", "cluster_corpus") from exc
    from ..corpus.schema import METADATA_KEY, settings_key

    shards = sorted(p for p in folder.rglob("*.parquet") if not p.name.startswith((".", "_")))
    if not shards:
        raise ConfigError(
            f"{folder} holds no Parquet shards; pass the output folder of `speakerembed corpus`"
        )
    seen: dict[str, Any] | None = None
    first = ""
    for shard in shards:
        schema = pq.read_schema(shard)
        if "embedding" not in schema.names:
            raise ConfigError(
                f"{shard} has no embedding column, so there is nothing to cluster; pass the output "
                "folder of `speakerembed corpus`, which has one"
            )
        raw = (schema.metadata or {}).get(METADATA_KEY)
        key = settings_key(json.loads(raw)) if raw else None
        if seen is None:
            seen, first = key, shard.name
        elif key != seen:
            raise ConfigError(
                f"{folder} mixes embeddings made with different settings ({first} and {shard.name} differ "
                "in weights, Pipeline or precision); cluster each job's output on its own, or embed "
                "everything again with one setting"
            )
    table = pq.read_table(shards[0].parent if len({s.parent for s in shards}) == 1 else folder)
    names = table.column_names
    n = table.num_rows
    ids = [str(v) for v in table.column("id" if "id" in names else "path").to_pylist()] if n else []
    paths = [str(v) for v in table.column("path").to_pylist()] if "path" in names else list(ids)
    column = table.column("embedding").combine_chunks()
    valid = ~np.asarray(column.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    kept = column.filter(pa.array(valid)) if not valid.all() else column  # no null slots
    flat = np.asarray(kept.flatten().to_numpy(zero_copy_only=False), dtype=np.float32)
    x = flat.reshape(int(valid.sum()), -1) if valid.any() else np.zeros((0, 256), dtype=np.float32)
    keep = np.flatnonzero(valid)
    return [ids[i] for i in keep], [paths[i] for i in keep], x, int(n - keep.size)


def cluster_corpus(
    source: str | os.PathLike[str],
    *,
    threshold: float | None = None,
    min_cluster_size: int = 1,
    max_neighbors: int = MAX_NEIGHBORS,
    search: Search = "auto",
) -> SpeakerClusters:
    """Cluster the clips of a ``speakerembed corpus`` output into speakers.

    Parameters
    ----------
    source : str or os.PathLike
        The corpus output folder (Parquet shards with ``id``, ``path`` and ``embedding``).
        Rows whose embedding is null (failed inputs) are left out and counted in ``failed``.
    threshold, min_cluster_size, max_neighbors, search
        As for :func:`~speakerembed.cluster_speakers`.

    Returns
    -------
    SpeakerClusters

    Raises
    ------
    ConfigError
        When ``source`` is not a folder of shards, has no embedding column, mixes shards made
        with different weights, Pipeline or precision, or holds no embedded clip.
    """
    folder = Path(source)
    if not folder.is_dir():
        raise ConfigError(f"{folder} is not a folder; pass the output folder of `speakerembed corpus`")
    ids, paths, x, failed = read_corpus_embeddings(folder)
    if not ids:
        raise ConfigError(
            f"{folder} holds no embedded clip ({failed} failed rows); there is nothing to cluster"
        )
    t = DEFAULT_THRESHOLD if threshold is None else threshold
    labels = cluster_speakers(
        x, threshold=t, min_cluster_size=min_cluster_size, max_neighbors=max_neighbors, search=search
    )
    return SpeakerClusters(
        ids=np.asarray(ids, dtype=object),
        paths=np.asarray(paths, dtype=object),
        labels=labels,
        confidence=cluster_confidence(x, labels),
        threshold=float(t),
        failed=failed,
    )
