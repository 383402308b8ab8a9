"""Long audio in bounded memory: decode, resample, trim, mel and window in blocks.

An hour of 48 kHz audio is 691 MB as float32, and the in-memory path also holds its 16 kHz copy,
its mel and its windows. :func:`stream_file` never holds more than a block of samples (about
:data:`BLOCK_SECONDS` seconds) and one encoder batch of windows, so its peak memory does not grow
with the file's length (torch itself costs 250-300 MB of resident memory).

Trimming needs the loudest frame of the whole file, so the file is read twice:

1. **Pass 1** decodes block by block, resamples with a streaming resampler where the order is
   ``"resample_trim"``, and keeps only the trimming energy of each frame (one float per 512
   samples at 16 kHz): the trim bounds come from them, as in :func:`speakerembed.stages.trim.trim_bounds`.
2. **Pass 2** decodes again (for ``"trim_resample"``, from the trim start only), resamples,
   keeps the samples between the bounds, and computes mel frames in blocks, with the STFT's
   reflect padding at the true edges of the trimmed audio. Partial windows are cut as soon as
   their frames exist and go to the encoder in batches.

The result matches the in-memory path to a cosine above 0.9999 (the tests check it on real speech);
the differences are float rounding in the frame energies and block boundaries of the FFT.

Only ``resampler="soxr_hq"`` (libsoxr's streaming resampler gives the same samples as the
one-shot call) and 16 kHz input need no whole-signal resampler; other resamplers use the in-memory
path. :class:`~speakerembed.SpeakerEmbedder` streams a file automatically when it lasts at least
:attr:`Pipeline.stream_min_duration_s <speakerembed.Pipeline.stream_min_duration_s>` seconds.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

from ..config import MEL_HOP_LENGTH, MODEL_SAMPLE_RATE, Pipeline
from ..errors import AudioError
from ._quiet_stderr import decoder_output_quiet
from .mel import N_FFT
from .resample import resampled_length
from .trim import check_kept, check_not_constant, check_not_silent, trim_bounds
from .windows import num_windows

if TYPE_CHECKING:
    import numpy.typing as npt
    import torch

__all__ = ["BLOCK_SECONDS", "StreamPlan", "can_stream", "plan_stream", "stream_file", "stream_windows"]

#: Seconds of audio decoded per block.
BLOCK_SECONDS = 20.0
_PAD = N_FFT // 2  # reflect padding of the centred STFT


@dataclasses.dataclass(frozen=True)
class StreamPlan:
    """What pass 1 found: everything pass 2 needs.

    Attributes
    ----------
    path : str
        The file.
    sample_rate : int
        Its rate, in Hz.
    n_samples : int
        Its length, in samples at ``sample_rate``.
    start, end : int
        Trim bounds, in samples at 16 kHz for ``"resample_trim"`` and at ``sample_rate`` for
        ``"trim_resample"``.
    n_frames : int
        Mel frames of the trimmed 16 kHz audio.
    n_windows : int
        Partial windows the encoder will see.
    order : str
        The pipeline's order, which says at which rate ``start`` and ``end`` count.
    """

    path: str
    sample_rate: int
    n_samples: int
    start: int
    end: int
    n_frames: int
    n_windows: int
    order: str = "resample_trim"

    @property
    def input_seconds(self) -> float:
        """The file's duration, in seconds."""
        return self.n_samples / self.sample_rate

    @property
    def kept_span(self) -> tuple[float, float]:
        """The trimmed audio's ``(start, end)``, in seconds of the input."""
        at = MODEL_SAMPLE_RATE if self.order == "resample_trim" else self.sample_rate
        return self.start / at, self.end / at

    @property
    def kept_seconds(self) -> float:
        """Seconds of audio left after trimming."""
        return (self.n_frames - 1) * MEL_HOP_LENGTH / MODEL_SAMPLE_RATE


def can_stream(sample_rate: int, pipeline: Pipeline) -> bool:
    """Whether :func:`stream_file` supports this rate and pipeline (soxr_hq, or 16 kHz input).

    A pipeline with ``vad="silero"`` does not stream: Silero VAD runs on the whole signal, so
    such files take the in-memory path whatever their length.
    """
    if pipeline.vad is not None:
        return False
    return sample_rate == MODEL_SAMPLE_RATE or pipeline.resampler == "soxr_hq"


# -- blocks -------------------------------------------------------------------------------------


def file_blocks(path: str, start: int = 0, stop: int | None = None) -> Iterator[npt.NDArray[np.float32]]:
    """Mono float32 blocks of ``path`` from sample ``start`` to ``stop``."""
    import soundfile as sf

    # Each libsndfile call is wrapped on its own: a window must not stay open across a yield.
    with decoder_output_quiet():
        opened = sf.SoundFile(os.fsencode(path))  # bytes: names that are not UTF-8 open
    with opened as f:
        stop = f.frames if stop is None else min(stop, f.frames)
        size = max(1, int(BLOCK_SECONDS * f.samplerate))
        if start:
            with decoder_output_quiet():
                f.seek(start)
        pos = start
        while pos < stop:
            with decoder_output_quiet():
                data = f.read(min(size, stop - pos), dtype="float32", always_2d=True)
            if data.shape[0] == 0:
                break
            pos += data.shape[0]
            mono = data[:, 0] if data.shape[1] == 1 else data.mean(axis=1, dtype=np.float32)
            yield np.ascontiguousarray(mono)


def resampled_blocks(
    blocks: Iterator[npt.NDArray[np.float32]], orig_sr: int, n_samples: int
) -> Iterator[npt.NDArray[np.float32]]:
    """Stream ``blocks`` through libsoxr (HQ), cut or zero-padded to the one-shot length."""
    if orig_sr == MODEL_SAMPLE_RATE:
        yield from blocks
        return
    import soxr

    size = resampled_length(n_samples, orig_sr, MODEL_SAMPLE_RATE)
    stream = soxr.ResampleStream(orig_sr, MODEL_SAMPLE_RATE, 1, dtype="float32", quality="HQ")
    done = 0
    for block in blocks:
        out = stream.resample_chunk(block, last=False)
        out = out[: max(0, size - done)]
        done += out.shape[0]
        if out.shape[0]:
            yield out
    out = stream.resample_chunk(np.zeros(0, np.float32), last=True)[: max(0, size - done)]
    done += out.shape[0]
    if out.shape[0]:
        yield out
    if done < size:
        yield np.zeros(size - done, np.float32)


class _FramePower:
    """:func:`speakerembed.stages.trim.frame_power`, fed block by block."""

    def __init__(self, frame: int, hop: int) -> None:
        self.frame, self.hop = frame, hop
        self.n = 0
        self._buf = np.zeros(frame // 2, dtype=np.float64)  # the left zero padding
        self._next = 0  # index of the next frame; it starts at buffer offset 0
        self._out: list[npt.NDArray[np.float64]] = []

    def feed(self, x: npt.NDArray[np.float32]) -> None:
        self.n += x.shape[0]
        self._buf = np.concatenate((self._buf, np.square(x, dtype=np.float64)))
        self._drain()

    def _drain(self) -> None:
        avail = self._buf.shape[0]
        if avail < self.frame:
            return
        count = 1 + (avail - self.frame) // self.hop
        cumsum = np.zeros(avail + 1, dtype=np.float64)
        np.cumsum(self._buf, out=cumsum[1:])
        starts = np.arange(count) * self.hop
        power = (cumsum[starts + self.frame] - cumsum[starts]) / self.frame
        self._out.append(np.maximum(power, 0.0))
        self._next += count
        self._buf = self._buf[count * self.hop :]

    def finish(self) -> npt.NDArray[np.float64]:
        """Frame powers, shape (1 + n // hop,)."""
        self._buf = np.concatenate((self._buf, np.zeros(self.frame // 2, dtype=np.float64)))
        self._drain()
        power = np.concatenate(self._out) if self._out else np.zeros(0, np.float64)
        return power[: 1 + (self.n + 2 * (self.frame // 2) - self.frame) // self.hop]


# -- pass 1 -------------------------------------------------------------------------------------


def plan_stream(path: str | os.PathLike[str], pipeline: Pipeline, *, source: str | None = None) -> StreamPlan:
    """Pass 1: read the file once and find the trim bounds and the number of windows.

    Raises
    ------
    AudioError
        For digital silence, too little audio after trimming, non-finite samples, or a
        resampler that cannot stream.
    """
    import soundfile as sf

    path = os.fspath(path)
    source = source if source is not None else path
    with decoder_output_quiet():
        info = sf.info(os.fsencode(path))  # bytes: names that are not UTF-8 open
    sr, n = int(info.samplerate), int(info.frames)
    if not can_stream(sr, pipeline):
        why = "vad='silero'" if pipeline.vad is not None else f"resampler={pipeline.resampler!r}"
        raise AudioError(
            f"cannot be streamed with {why}; use resampler='soxr_hq' and vad=None, or the in-memory path",
            source=source,
            stage="resample",
        )
    peak, low, high = 0.0, np.inf, -np.inf

    def checked(blocks: Iterator[npt.NDArray[np.float32]]) -> Iterator[npt.NDArray[np.float32]]:
        nonlocal peak, low, high
        for b in blocks:
            if not b.size:
                continue
            lo, hi = float(np.min(b)), float(np.max(b))
            if not (np.isfinite(lo) and np.isfinite(hi)):
                raise AudioError(
                    "holds NaN or infinite samples; repair this audio", source=source, stage="load"
                )
            peak, low, high = max(peak, abs(lo), abs(hi)), min(low, lo), max(high, hi)
            yield b

    trim_first = pipeline.order == "trim_resample"
    at = sr if trim_first else MODEL_SAMPLE_RATE
    frame, hop = pipeline.trim_frames_at(at)
    energy = _FramePower(frame, hop)
    blocks = checked(file_blocks(path))
    for block in blocks if trim_first else resampled_blocks(blocks, sr, n):
        if pipeline.top_db is not None:
            energy.feed(block)
        else:
            energy.n += block.shape[0]
    check_not_silent(peak, source)
    check_not_constant(low, high, source)
    total = energy.n
    if pipeline.top_db is None:
        start, end = 0, total
    else:
        start, end = trim_bounds(energy.finish(), total, pipeline.top_db, hop)
    kept = end - start if not trim_first else resampled_length(end - start, sr, MODEL_SAMPLE_RATE)
    check_kept(kept, pipeline, source)
    n_frames = 1 + kept // MEL_HOP_LENGTH
    n_wins, _ = num_windows(n_frames, pipeline.frame_step, pipeline.min_coverage, pipeline.partial_frames)
    return StreamPlan(path, sr, n, start, end, n_frames, n_wins, pipeline.order)


# -- pass 2 -------------------------------------------------------------------------------------


def _trimmed_16k(plan: StreamPlan, pipeline: Pipeline) -> Iterator[npt.NDArray[np.float32]]:
    """Yield the trimmed 16 kHz samples, block by block."""
    if pipeline.order == "trim_resample":
        blocks = file_blocks(plan.path, plan.start, plan.end)
        yield from resampled_blocks(blocks, plan.sample_rate, plan.end - plan.start)
        return
    pos = 0
    for block in resampled_blocks(file_blocks(plan.path), plan.sample_rate, plan.n_samples):
        lo, hi = max(plan.start - pos, 0), min(plan.end - pos, block.shape[0])
        pos += block.shape[0]
        if hi > lo:
            yield block[lo:hi]
        if pos >= plan.end:
            return


def _mel_blocks(samples: Iterator[npt.NDArray[np.float32]]) -> Iterator[torch.Tensor]:
    """Mel frames, shape (T, 40), of the concatenated samples, as the centred STFT gives them."""
    import torch

    from .mel import melspectrogram

    buf = np.zeros(0, np.float32)
    started = False
    tail = np.zeros(0, np.float32)  # the last _PAD + 1 samples seen, for the right reflection
    for x in samples:
        tail = np.concatenate((tail, x))[-(_PAD + 1) :]
        buf = np.concatenate((buf, x))
        if not started:
            if buf.shape[0] < _PAD + 1:
                continue
            buf = np.concatenate((buf[1 : _PAD + 1][::-1], buf))
            started = True
        if buf.shape[0] >= N_FFT:
            count = 1 + (buf.shape[0] - N_FFT) // MEL_HOP_LENGTH
            used = (count - 1) * MEL_HOP_LENGTH + N_FFT
            with torch.inference_mode():
                yield melspectrogram(torch.from_numpy(buf[:used]), center=False)
            buf = buf[count * MEL_HOP_LENGTH :]
    if not started:
        raise AudioError("is too short for the mel spectrogram", stage="mel")
    buf = np.concatenate((buf, tail[-(_PAD + 1) : -1][::-1]))
    if buf.shape[0] >= N_FFT:
        with torch.inference_mode():
            yield melspectrogram(torch.from_numpy(np.ascontiguousarray(buf)), center=False)


def stream_windows(plan: StreamPlan, pipeline: Pipeline) -> Iterator[torch.Tensor]:
    """Pass 2: yield partial windows, shape (k, partial_frames, 40).

    At most ``pipeline.windows_per_batch("cpu")`` at a time (the encoder joins them into its
    own batches), ``plan.n_windows`` in all.
    """
    import torch

    step, width, cap = pipeline.frame_step, pipeline.partial_frames, pipeline.windows_per_batch("cpu")
    _, target = num_windows(plan.n_frames, step, pipeline.min_coverage, width)
    mel: torch.Tensor | None = None  # frames from index `first` on
    first = 0
    seen = 0
    emitted = 0

    def ready(final: bool) -> Iterator[torch.Tensor]:
        nonlocal mel, first, emitted
        assert mel is not None
        have = first + mel.shape[0]
        if final and have < target:
            mel = torch.cat((mel, mel.new_zeros((target - have, mel.shape[1]))))
            have = target
        count = 0 if have < width else min(plan.n_windows, 1 + (have - width) // step) - emitted
        while count > 0:
            take = min(cap, count)
            lo = emitted * step - first
            span = mel[lo : lo + (take - 1) * step + width]
            yield span.unfold(0, width, step).transpose(1, 2).contiguous()
            emitted += take
            count -= take
        drop = emitted * step - first
        if drop > 0:
            mel = mel[drop:]
            first += drop

    for block in _mel_blocks(_trimmed_16k(plan, pipeline)):
        block = block[: max(0, plan.n_frames - seen)]
        seen += block.shape[0]
        mel = block if mel is None else torch.cat((mel, block))
        yield from ready(False)
    if mel is None or seen != plan.n_frames:
        raise AudioError(
            f"gave {seen} mel frames where {plan.n_frames} were expected; the file changed "
            "while it was read, or is truncated",
            source=plan.path,
            stage="mel",
        )
    yield from ready(True)
    if emitted != plan.n_windows:  # pragma: no cover - an arithmetic bug
        raise AudioError(f"streamed {emitted} windows, not {plan.n_windows}", source=plan.path, stage="mel")


def stream_file(
    path: str | os.PathLike[str], pipeline: Pipeline | None = None
) -> tuple[StreamPlan, Iterator[torch.Tensor]]:
    """Plan a file (pass 1) and return its window batches (pass 2, lazily).

    Parameters
    ----------
    path : str or os.PathLike
        An audio file that libsndfile reads.
    pipeline : Pipeline or None
        The preprocessing (default :class:`~speakerembed.Pipeline`).

    Returns
    -------
    plan : StreamPlan
    windows : iterator of torch.Tensor, each shape (k, partial_frames, 40), float32
        ``plan.n_windows`` windows in all, ``k <= pipeline.windows_per_batch("cpu")``.

    Examples
    --------
    >>> from speakerembed.stages.longform import stream_file
    >>> plan, batches = stream_file("long.wav")  # doctest: +SKIP
    >>> sum(b.shape[0] for b in batches) == plan.n_windows  # doctest: +SKIP
    True
    """
    pipe = pipeline if pipeline is not None else Pipeline()
    plan = plan_stream(path, pipe)
    return plan, stream_windows(plan, pipe)
