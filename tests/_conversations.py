"""Simulated conversations with known turns, built from single-speaker recordings.

Used by the diarization tests and ``benchmarks/speakers_diarize.py``. A conversation draws
turns of ``turn_s`` seconds (1-15 s by default) from each speaker's recordings, in a random
order of speakers (never the same speaker twice running), with pauses of ``pause_s`` between
them, and returns the waveform at ``sample_rate`` with its reference turns. Long conversations
loop over each speaker's recordings.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import numpy.typing as npt

__all__ = ["Conversation", "build_conversation", "speaker_pools"]


class Conversation:
    """A simulated conversation: ``wave`` (float32), ``sample_rate``, ``turns`` (start, end, speaker)."""

    def __init__(
        self, wave: npt.NDArray[np.float32], sample_rate: int, turns: list[tuple[float, float, str]]
    ):
        self.wave = wave
        self.sample_rate = sample_rate
        self.turns = turns

    @property
    def duration_s(self) -> float:
        return self.wave.shape[0] / self.sample_rate

    @property
    def speakers(self) -> set[str]:
        return {t[2] for t in self.turns}

    def write(self, path: Path) -> Path:
        import soundfile as sf

        sf.write(str(path), self.wave, self.sample_rate, subtype="PCM_16")
        return path


def speaker_pools(speech: Path) -> dict[str, list[Path]]:
    """LibriSpeech speakers (16 kHz FLAC) of the shared speech: speaker -> sorted files."""
    root = speech / "librispeech"
    return {
        d.name: sorted(d.glob("*.flac"))
        for d in sorted(root.iterdir())
        if d.is_dir() and any(d.glob("*.flac"))
    }


def _trimmed(path: Path) -> npt.NDArray[np.float32]:
    import soundfile as sf

    x, sr = sf.read(str(path), dtype="float32", always_2d=True)
    x = x.mean(axis=1)
    assert sr == 16000, f"{path} is at {sr} Hz; the pools are 16 kHz"
    loud = np.flatnonzero(np.abs(x) > 0.02 * np.abs(x).max())
    return np.ascontiguousarray(x[loud[0] : loud[-1] + 1]) if loud.size else x


def _voiced(x: npt.NDArray[np.float32], sr: int, min_pause_s: float = 0.3) -> list[tuple[float, float]]:
    """The spans of a clean turn an annotator would mark: Silero VAD (its defaults) on the clean
    piece alone, before it is mixed, with pauses shorter than ``min_pause_s`` bridged."""
    import torch
    from silero_vad import get_speech_timestamps

    from speakerembed.stages.vad import load_vad_model

    with torch.inference_mode():
        stamps = get_speech_timestamps(
            torch.from_numpy(np.ascontiguousarray(x)),
            load_vad_model(),
            sampling_rate=sr,
            min_silence_duration_ms=round(min_pause_s * 1000),
            speech_pad_ms=0,
        )
    return [(s["start"] / sr, s["end"] / sr) for s in stamps]


def build_conversation(
    pools: dict[str, Sequence[Path]],
    speakers: Sequence[str],
    *,
    duration_s: float = 60.0,
    turn_s: tuple[float, float] = (1.0, 15.0),
    pause_s: tuple[float, float] = (0.2, 1.2),
    sample_rate: int = 16000,
    seed: int = 0,
    noise_dbfs: float | None = -60.0,
) -> Conversation:
    """A conversation of ``speakers`` lasting about ``duration_s`` seconds, with its turns."""
    rng = np.random.default_rng(seed)
    audio = {s: np.concatenate([_trimmed(p) for p in pools[s]]) for s in speakers}
    cursor = dict.fromkeys(speakers, 0)
    sr16 = 16000
    parts: list[npt.NDArray[np.float32]] = []
    turns: list[tuple[float, float, str]] = []
    t = 0
    last = None
    while t < duration_s * sr16:
        pause = int(rng.uniform(*pause_s) * sr16)
        parts.append(np.zeros(pause, np.float32))
        t += pause
        who = str(rng.choice([s for s in speakers if s != last] or list(speakers)))
        last = who
        n = int(rng.uniform(*turn_s) * sr16)
        src = audio[who]
        take = np.take(src, np.arange(cursor[who], cursor[who] + n), mode="wrap")
        cursor[who] = (cursor[who] + n) % src.shape[0]
        take = take / max(float(np.abs(take).max()), 1e-6) * float(rng.uniform(0.3, 0.8))
        parts.append(take.astype(np.float32))
        turns += [(t / sr16 + a, t / sr16 + b, who) for a, b in _voiced(take, sr16)]
        t += n
    parts.append(np.zeros(int(0.5 * sr16), np.float32))
    wave = np.concatenate(parts)
    if noise_dbfs is not None:
        wave = wave + (10 ** (noise_dbfs / 20) * rng.standard_normal(wave.shape[0])).astype(np.float32)
    if sample_rate != sr16:
        import soxr

        wave = soxr.resample(wave, sr16, sample_rate, quality="HQ").astype(np.float32)
    return Conversation(np.clip(wave, -1, 1).astype(np.float32), sample_rate, turns)
