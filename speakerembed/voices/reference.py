"""Pick the reference clip (and where to cut it) that conditions Chatterbox best for a voice.

Chatterbox conditions on the start of its reference: T3 on the first 6 s and S3Gen on the first
10 s (``ChatterboxTTS.prepare_conditionals``); Turbo on 15 s and 10 s, and it needs more than
5 s. :func:`pick_reference` scores every clip of a voice, and every start offset inside it, on:

- closeness to the voice: the cosine of the clip's (or the cut's) windows to the voice's own
  embedding, made from the *other* clips (leave one out) or passed in;
- speech: how many seconds of speech the cut holds against the model's window, and the share
  of the clip that is speech;
- level and clipping: RMS level, peak, and the share of samples at full scale;
- noise: the gap between loud and quiet frames (a rough signal-to-noise ratio);
- a second voice: windows whose cosine to the voice falls far below the rest.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

from ..errors import ConfigError

if TYPE_CHECKING:
    from ..embedder import SpeakerEmbedder

__all__ = ["TARGETS", "ClipAssessment", "ReferenceChoice", "Target", "pick_reference"]

#: Which TTS the reference is for.
Target = Literal["chatterbox", "chatterbox-turbo"]


@dataclasses.dataclass(frozen=True)
class _Windows:
    t3_s: float
    s3gen_s: float
    min_s: float


#: Seconds of reference each model reads (T3, S3Gen) and the shortest it accepts.
TARGETS: dict[str, _Windows] = {
    "chatterbox": _Windows(6.0, 10.0, 3.0),
    "chatterbox-turbo": _Windows(15.0, 10.0, 5.0),
}
_CLIP_LEVEL = 0.98
#: Windows this far below the clip's 80th-percentile cosine to the voice count as another voice.
SECOND_VOICE_DROP = 0.15


@dataclasses.dataclass(frozen=True)
class ClipAssessment:
    """How one clip fares as a reference.

    Attributes
    ----------
    clip : str
        The clip (its path, or ``"array N"``).
    score : float
        Higher is better; comparable between the clips of one call.
    eligible : bool
        False when the clip cannot serve (too short for the target, no speech).
    start_s : float
        Where to cut the clip, in its own seconds.
    cut_s : float
        How long the cut should be: the longer of the target's windows, or what is left.
    closeness : float
        Cosine of the cut's windows (their mean) to the voice.
    speech_s, duration_s : float
        Seconds of speech (after trimming) and of the clip.
    rms_dbfs, peak : float
        Level of the clip, in dB below full scale, and its peak (full scale 1.0).
    clipped_fraction : float
        Share of samples at or above 98 % of full scale.
    snr_db : float
        Loud frames against quiet frames, in dB (a rough signal-to-noise ratio).
    second_voice : float
        Share of windows that sound like someone else.
    reasons : tuple of str
        What helped or hurt, in words.
    """

    clip: str
    score: float
    eligible: bool
    start_s: float
    cut_s: float
    closeness: float
    speech_s: float
    duration_s: float
    rms_dbfs: float
    peak: float
    clipped_fraction: float
    snr_db: float
    second_voice: float
    reasons: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        out = dataclasses.asdict(self)
        out["reasons"] = list(self.reasons)
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in out.items()}


@dataclasses.dataclass(frozen=True)
class ReferenceChoice:
    """What :func:`speakerembed.pick_reference` returns.

    Attributes
    ----------
    clip : str
        The best clip.
    start_s : float
        Where to cut it, in its seconds.
    cut_s : float
        How many seconds to keep from ``start_s``.
    reasons : tuple of str
        Why it won.
    target : str
        ``"chatterbox"`` or ``"chatterbox-turbo"``.
    ranking : tuple of ClipAssessment
        Every clip, best first.
    """

    clip: str
    start_s: float
    cut_s: float
    reasons: tuple[str, ...]
    target: str
    ranking: tuple[ClipAssessment, ...]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "clip": self.clip,
            "start_s": round(self.start_s, 3),
            "cut_s": round(self.cut_s, 3),
            "target": self.target,
            "reasons": list(self.reasons),
            "ranking": [a.to_dict() for a in self.ranking],
        }


def _level(wave: npt.NDArray[np.float32], sr: int) -> tuple[float, float, float, float]:
    x = wave.astype(np.float64)
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    rms = float(np.sqrt(np.mean(x * x))) if x.size else 0.0
    clipped = float(np.mean(np.abs(x) >= _CLIP_LEVEL)) if x.size else 0.0
    frame = max(int(0.025 * sr), 1)
    n = x.size // frame
    if n >= 4:
        energy = np.sqrt(np.mean(x[: n * frame].reshape(n, frame) ** 2, axis=1)) + 1e-10
        loud, quiet = np.percentile(energy, 95), np.percentile(energy, 10)
        snr = float(20 * np.log10(loud / quiet))
    else:
        snr = 0.0
    return 20 * float(np.log10(max(rms, 1e-10))), peak, clipped, snr


def _assess(
    label: str,
    wave: npt.NDArray[np.float32],
    sr: int,
    windows: Any,
    voice: npt.NDArray[np.float32] | None,
    target: _Windows,
) -> ClipAssessment:
    rms_db, peak, clipped, snr = _level(wave, sr)
    emb = windows.embeddings
    ref = voice if voice is not None else windows.utterance_embedding()
    cos = emb @ ref
    # The clip's own level is its better windows' (80th percentile), so that a second voice
    # filling half the clip still stands out.
    level = float(np.percentile(cos, 80)) if len(cos) else 0.0
    second = float(np.mean(cos < level - SECOND_VOICE_DROP)) if len(cos) else 0.0
    duration = float(windows.duration_s)
    cut = max(target.t3_s, target.s3gen_s)
    # Best start: the window start whose cut holds the windows closest to the voice.
    starts = np.unique(np.concatenate([[0.0], windows.start_s]))
    best_start, best_close = 0.0, -1.0
    for s in starts:
        if s > 0 and s + min(cut, target.min_s) > duration:
            break
        inside = (windows.start_s >= s - 1e-6) & (windows.end_s <= s + cut + 1e-6)
        if not inside.any():
            continue
        mean = emb[inside].mean(axis=0)
        close = float(mean @ ref / max(np.linalg.norm(mean), 1e-9))
        # A later start must earn its place: it throws away the audio before it.
        if close > best_close + 0.02 or best_close < 0:
            best_start, best_close = float(s), close
    usable = min(duration - best_start, cut)
    speech_ratio = windows.speech_s / duration if duration > 0 else 0.0
    reasons: list[str] = []
    score = best_close
    eligible = True
    if voice is None:
        reasons.append("the only clip: closeness is to itself")
    else:
        reasons.append(f"cosine {best_close:.3f} to the voice from the other clips")
    if windows.speech_s < target.min_s:
        eligible = False
        reasons.append(f"only {windows.speech_s:.1f} s of speech, below the {target.min_s:g} s minimum")
    if usable < cut:
        score -= 0.2 * (cut - usable) / cut
        reasons.append(f"{usable:.1f} s from the cut, short of the {cut:g} s the model reads")
    else:
        reasons.append(f"fills the {cut:g} s the model reads")
    if speech_ratio < 0.6:
        score -= 0.1 * (0.6 - speech_ratio)
        reasons.append(f"only {100 * speech_ratio:.0f} % of it is speech")
    if clipped > 1e-3:
        score -= min(10 * clipped, 0.3) + 0.05
        reasons.append(f"clipped: {100 * clipped:.2f} % of samples at full scale")
    if rms_db < -40:
        score -= 0.05
        reasons.append(f"quiet: {rms_db:.0f} dBFS RMS")
    if snr < 25:
        score -= 0.01 * (25 - snr)
        reasons.append(f"noisy: about {snr:.0f} dB between loud and quiet frames")
    if second > 0.1:
        score -= 0.5 * second
        reasons.append(f"another voice: {100 * second:.0f} % of windows sound like someone else")
    return ClipAssessment(
        clip=label,
        score=float(score),
        eligible=eligible,
        start_s=best_start,
        cut_s=float(usable),
        closeness=best_close,
        speech_s=float(windows.speech_s),
        duration_s=duration,
        rms_dbfs=rms_db,
        peak=peak,
        clipped_fraction=clipped,
        snr_db=snr,
        second_voice=second,
        reasons=tuple(reasons),
    )


def pick_reference(
    clips: Sequence[object] | str | os.PathLike[str],
    *,
    target: Target = "chatterbox",
    voice: npt.ArrayLike | None = None,
    sample_rate: int | None = None,
    embedder: SpeakerEmbedder | None = None,
    weights: str | os.PathLike[str] = "chatterbox",
    device: str | None = None,
) -> ReferenceChoice:
    """Rank a voice's clips as Chatterbox references, and say where to cut the best.

    Parameters
    ----------
    clips : path, numpy.ndarray, or a sequence of them
        Recordings of one voice.
    target : {"chatterbox", "chatterbox-turbo"}
        The TTS: Chatterbox reads 6 s (T3) and 10 s (S3Gen); Turbo 15 s and 10 s, at least 5 s.
    voice : array_like, shape (256,), or None
        The voice's embedding (from a library). ``None``: each clip is compared with the
        mean of the others (leave one out).
    sample_rate : int or None
        The rate of arrays, in Hz.
    embedder : SpeakerEmbedder or None
        Embed with this; else the cached embedder for ``weights`` and ``device``.
    weights, device
        As for :func:`~speakerembed.embed_utterances`.

    Returns
    -------
    ReferenceChoice
        The best clip, its start offset and cut length, the reasons, and every clip ranked.

    Raises
    ------
    ConfigError
        For no clips, or an unknown ``target``.
    AudioError
        For a clip that cannot be read or embedded.
    """
    from ..analysis.per_window import embed_windows
    from ..stages.load import load_audio

    if target not in TARGETS:
        raise ConfigError(f"target={target!r} is not one of {', '.join(repr(t) for t in TARGETS)}")
    items: list[Any] = [clips] if isinstance(clips, (str, os.PathLike, np.ndarray)) else list(clips)
    if not items:
        raise ConfigError("clips= is empty; pass the recordings of one voice")
    if embedder is None:
        from ..api import get_embedder

        embedder = get_embedder(weights, device=device)
    fixed: npt.NDArray[np.float32] | None = None
    if voice is not None:
        fixed = np.asarray(voice, dtype=np.float32).reshape(-1)
        if fixed.shape != (256,) or not np.isfinite(fixed).all() or not np.linalg.norm(fixed) > 0:
            raise ConfigError("voice= must be 256 finite numbers, not all zero")
        fixed = fixed / np.linalg.norm(fixed)
    labels, waves, wins = [], [], []
    for i, item in enumerate(items):
        label = os.fspath(item) if isinstance(item, (str, os.PathLike)) else f"array {i}"
        wave, sr = load_audio(item, sample_rate, source=f"clip {i}")
        w = embed_windows(item, sample_rate=sample_rate, embedder=embedder)
        labels.append(label)
        waves.append((wave, sr))
        wins.append(w)
    utts = np.stack([w.utterance_embedding() for w in wins])
    assessed = []
    for i, w in enumerate(wins):
        ref = fixed
        if ref is None and len(wins) > 1:
            others = np.delete(utts, i, axis=0).mean(axis=0)
            ref = (others / np.linalg.norm(others)).astype(np.float32)
        assessed.append(_assess(labels[i], waves[i][0], waves[i][1], w, ref, TARGETS[target]))
    ranking = tuple(sorted(assessed, key=lambda a: (not a.eligible, -a.score)))
    best = ranking[0]
    reasons = (
        best.reasons
        if best.eligible
        else ("no clip is long enough for the target; the best of them", *best.reasons)
    )
    return ReferenceChoice(best.clip, best.start_s, best.cut_s, tuple(reasons), target, ranking)
