"""Stage 3b: split a mel spectrogram into the encoder's partial windows.

The arithmetic is Chatterbox's ``get_num_wins`` and ``stride_as_partials``: windows of
``partial_frames`` frames every ``frame_step`` frames; the mel is zero-padded (or cut) to
``partial_frames + frame_step * (n_windows - 1)`` frames, and a last, partly filled window is kept
when at least ``min_coverage`` of it would hold audio. There is always at least one window.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

__all__ = ["num_windows", "partial_windows"]


def num_windows(
    n_frames: int, frame_step: int, min_coverage: float, partial_frames: int = 160
) -> tuple[int, int]:
    """Number of partial windows and the padded mel length they span.

    Parameters
    ----------
    n_frames : int
        Mel frames of the utterance, at least 1.
    frame_step : int
        Frames between window starts, in 1..partial_frames.
    min_coverage : float
        In (0, 1].
    partial_frames : int
        Frames per window.

    Returns
    -------
    n_windows : int
    target_frames : int

    Examples
    --------
    >>> from speakerembed.stages.windows import num_windows
    >>> num_windows(1000, 77, 0.8)
    (12, 1007)
    """
    if n_frames < 1:
        raise ValueError(f"n_frames must be at least 1, not {n_frames}")
    n_wins, remainder = divmod(max(n_frames - partial_frames + frame_step, 0), frame_step)
    if n_wins == 0 or (remainder + (partial_frames - frame_step)) / partial_frames >= min_coverage:
        n_wins += 1
    return n_wins, partial_frames + frame_step * (n_wins - 1)


def partial_windows(
    mel: torch.Tensor, frame_step: int, min_coverage: float, partial_frames: int = 160
) -> torch.Tensor:
    """Overlapping windows of a mel spectrogram.

    Parameters
    ----------
    mel : torch.Tensor, shape (n_frames, n_mels)

    Returns
    -------
    torch.Tensor, shape (n_windows, partial_frames, n_mels)
        A strided view where no padding was needed.
    """
    import torch

    _, target = num_windows(mel.shape[0], frame_step, min_coverage, partial_frames)
    if target > mel.shape[0]:
        pad = mel.new_zeros((target - mel.shape[0], mel.shape[1]))
        mel = torch.cat((mel, pad), dim=0)
    else:
        mel = mel[:target]
    return mel.unfold(0, partial_frames, frame_step).transpose(1, 2)
