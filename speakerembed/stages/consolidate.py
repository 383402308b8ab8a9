"""Stage 5: consolidate partial embeddings into utterance and speaker embeddings.

* An **utterance embedding** is the mean of its partial-window embeddings, L2-normalised.
* A **speaker embedding** is the mean of utterance embeddings, L2-normalised: Chatterbox's
  ``VoiceEncoder.utt_to_spk_embed``.

:func:`~speakerembed.utt_to_spk_embed` **rejects** rows that are not unit norm rather than
renormalising them: Chatterbox's rule assumes unit rows, and a row of another length is nearly
always a raw or mixed-up vector whose weight in the mean would be silently wrong. Normalise rows
yourself first if you mean to.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import AudioError, ConfigError

if TYPE_CHECKING:
    import numpy.typing as npt
    import torch

__all__ = [
    "UNIT_NORM_TOLERANCE",
    "ZERO_NORM",
    "cosine_similarity",
    "guarded_norms",
    "mean_embedding",
    "unit_rows",
    "utt_to_spk_embed",
]

#: How far from 1 a row's L2 norm may be for :func:`~speakerembed.utt_to_spk_embed` to accept it.
UNIT_NORM_TOLERANCE = 1e-3
_MIN_NORM = 1e-6
#: Below this L2 norm, a row of an analysis (a sum of embeddings, a centroid) is zero: it has no
#: direction. :func:`guarded_norms` floors the norms here.
ZERO_NORM = 1e-12


def unit_rows(x: torch.Tensor) -> torch.Tensor:
    """The rows of ``x`` (along its last axis) divided by their L2 norm; a zero row stays zero.

    The norm is floored at the dtype's smallest normal number, so nothing else changes: the
    encoder's outputs go through here, as Chatterbox's ``VoiceEncoder`` normalises them.
    """
    import torch

    norm = torch.linalg.norm(x, dim=-1, keepdim=True)
    unit: torch.Tensor = x / norm.clamp_min(torch.finfo(x.dtype).tiny)
    return unit


def guarded_norms(x: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """The L2 norms of the rows of ``x`` (last axis, kept), at least :data:`ZERO_NORM`.

    ``x / guarded_norms(x)`` gives unit rows, and zero for a row that is zero.
    """
    norms: npt.NDArray[Any] = np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), ZERO_NORM)
    return norms


def mean_embedding(partials: torch.Tensor, source: str = "input") -> torch.Tensor:
    """L2-normalised mean of partial embeddings, shape (E,), float32.

    Raises
    ------
    AudioError
        If the mean is zero or not finite (the windows cancel out), so no direction exists.
    """
    import torch

    mean = partials.float().mean(dim=0)
    norm = torch.linalg.norm(mean)
    if not bool(torch.isfinite(norm)) or float(norm) < _MIN_NORM:
        raise AudioError(
            "the encoder found no voice in it (its window embeddings cancel out or are zero); "
            "pass audio with audible speech",
            source=source,
            stage="consolidate",
        )
    unit: torch.Tensor = mean / norm
    return unit


def utt_to_spk_embed(utt_embeds: npt.ArrayLike) -> npt.NDArray[np.float32]:
    """Speaker embedding from utterance embeddings: the mean of the rows, L2-normalised.

    The name and the rule are Chatterbox's (``VoiceEncoder.utt_to_spk_embed``); this version
    validates its input.

    Parameters
    ----------
    utt_embeds : array_like, shape (n_utterances, embedding_size)
        Unit-norm rows, such as :func:`speakerembed.embed_utterances` returns.

    Returns
    -------
    numpy.ndarray, shape (embedding_size,), float32, unit norm

    Raises
    ------
    ConfigError
        If the array is not 2-D, is empty, holds NaN or Inf, has rows that are not unit norm
        (within :data:`~speakerembed.stages.consolidate.UNIT_NORM_TOLERANCE`), or its rows cancel out.

    Examples
    --------
    >>> import numpy as np
    >>> from speakerembed import utt_to_spk_embed
    >>> utt_to_spk_embed(np.eye(2, dtype=np.float32)).round(4)
    array([0.7071, 0.7071], dtype=float32)
    """
    try:
        arr = np.asarray(utt_embeds)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"utt_to_spk_embed: cannot read utt_embeds as an array ({exc})") from exc
    if arr.dtype.kind not in "fiu":
        raise ConfigError(f"utt_to_spk_embed: utt_embeds has dtype {arr.dtype}; pass real numbers")
    if arr.ndim != 2:
        raise ConfigError(
            f"utt_to_spk_embed: utt_embeds has shape {arr.shape}; pass a 2-D (n_utterances, dim) "
            "array (for one utterance, x[None, :])"
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ConfigError(f"utt_to_spk_embed: utt_embeds has shape {arr.shape}; pass at least one row")
    arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        rows = sorted({int(r) for r in np.argwhere(~np.isfinite(arr))[:, 0]})
        raise ConfigError(f"utt_to_spk_embed: rows {rows[:10]} hold NaN or Inf; drop or recompute them")
    norms = np.linalg.norm(arr, axis=1)
    off = np.flatnonzero(np.abs(norms - 1.0) > UNIT_NORM_TOLERANCE)
    if off.size:
        raise ConfigError(
            f"utt_to_spk_embed: rows {off[:10].tolist()} are not unit norm (norms "
            f"{np.round(norms[off[:3]], 4).tolist()}); pass L2-normalised rows "
            "(x / np.linalg.norm(x, axis=1, keepdims=True))"
        )
    mean = arr.mean(axis=0)
    norm = float(np.linalg.norm(mean))
    if norm < _MIN_NORM:
        raise ConfigError(
            "utt_to_spk_embed: the rows cancel out (their mean is zero); no speaker direction exists"
        )
    spk: npt.NDArray[np.float32] = (mean / norm).astype(np.float32)
    return spk


def cosine_similarity(a: npt.ArrayLike, b: npt.ArrayLike) -> float:
    """Cosine similarity between two embeddings.

    Each side is one embedding, shape (E,), or several utterance embeddings of one speaker,
    shape (N, E), which are first consolidated with :func:`~speakerembed.utt_to_spk_embed`, as
    Chatterbox's ``voice_similarity`` does.

    Returns
    -------
    float
        In [-1, 1].
    """

    def as_vector(x: Any, name: str) -> npt.NDArray[np.float64]:
        arr = np.asarray(x, dtype=np.float64)
        if arr.ndim == 2:
            arr = utt_to_spk_embed(arr).astype(np.float64)
        if arr.ndim != 1 or not np.isfinite(arr).all():
            raise ConfigError(f"cosine_similarity: {name} must be a finite (E,) or (N, E) array")
        norm = np.linalg.norm(arr)
        if norm == 0:
            raise ConfigError(f"cosine_similarity: {name} is the zero vector")
        unit: npt.NDArray[np.float64] = arr / norm
        return unit

    va, vb = as_vector(a, "a"), as_vector(b, "b")
    if va.shape != vb.shape:
        raise ConfigError(f"cosine_similarity: shapes differ, {va.shape} and {vb.shape}")
    return float(np.clip(va @ vb, -1.0, 1.0))
