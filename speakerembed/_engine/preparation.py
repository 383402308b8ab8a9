"""Preparing one input for the encoder: the stages from the file (or array) to its mel.

The data's trip, one module per stage (:mod:`speakerembed.stages`)::

    1 load -> 2 resample -> 3 trim (or the VAD) -> 4 mel   (the order of 2 and 3: Pipeline.order)

A file longer than ``Pipeline.stream_min_duration_s`` is not loaded whole: its plan is made in
one pass (:mod:`speakerembed.stages.longform`) and its windows come in blocks when the encoder
asks for them. The :class:`Preparer` holds only the device: corpus workers prepare with one
that has no weights.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from ..config import MODEL_SAMPLE_RATE, Pipeline
from ..errors import AudioError, SpeakerEmbedError
from ..stages.load import OpenAudio, is_encoded_audio, is_tensor, load_audio
from ..stages.resample import SincResampler, resample
from ..stages.trim import (
    check_kept,
    check_not_constant,
    check_not_silent,
    frame_power,
    frame_power_tensor,
    trim_bounds,
)
from .prefetch import BURST_PER_THREAD, map_in_bursts
from .recorder import NULL_RECORDER, Recorder

if TYPE_CHECKING:
    import torch

__all__ = [
    "AUTO_DEVICE_MIN_SECONDS",
    "OnFailure",
    "Prepared",
    "Preparer",
    "as_library_error",
    "describe_inputs",
    "per_input_rates",
    "preprocess_on_device",
    "settle",
]

logger = logging.getLogger("speakerembed")

OnFailure = Callable[[int, str, SpeakerEmbedError], None]
"""What ``errors="skip"`` does with a failed input: ``(index, source, error)``."""

#: With ``Pipeline(resample_device="auto")``, utterances at least this long are resampled,
#: trimmed and turned into mels on a CUDA device; shorter ones on the CPU. On an H200 the GPU
#: resampled faster at every length measured (1 s: 0.2 ms against libsoxr's 0.5 ms), one
#: utterance end to end took 8.3 ms against 12.5 ms at 2.5 s (6.6 against 9.1 at 10 s, 8.9
#: against 26.6 at 60 s), and the 86-utterance throughput set ran as fast either way; 2.5 s is
#: the shortest length measured end to end (docs/performance.rst, "GPU").
AUTO_DEVICE_MIN_SECONDS = 2.5


@dataclasses.dataclass
class Prepared:
    """One input, prepared: its mel (or, for a streamed long file, its windows to come)."""

    index: int
    source: str
    mel: torch.Tensor | None
    input_seconds: float
    trimmed_seconds: float
    # A streamed long file (speakerembed.stages.longform) has no mel: its window batches come lazily.
    windows: Iterator[torch.Tensor] | None = None
    n_windows: int = 0
    # The input's own rate, in Hz, before resampling (0 for arrays and tensors given without one).
    sample_rate: int = 0
    # The kept audio, as (start, end) spans in the input's own seconds, joined end to end in
    # the mel (one span after trimming; several after the VAD). speakerembed.analysis.per_window maps
    # window times back through them.
    spans: tuple[tuple[float, float], ...] = ()

    @property
    def kept_seconds(self) -> float:
        """Seconds of the input that reached the mel (``speech_s``)."""
        return float(sum(end - start for start, end in self.spans))


def describe_inputs(inputs: object) -> list[object]:
    """The inputs of a call as a list: one path, encoded file, array or tensor is a list of one."""
    if isinstance(inputs, (str, os.PathLike, np.ndarray)) or is_tensor(inputs) or is_encoded_audio(inputs):
        return [inputs]
    if isinstance(inputs, dict) or not isinstance(inputs, Iterable):
        raise AudioError(
            f"inputs is a {type(inputs).__name__}; pass a path, bytes, an array or tensor, or a list of them",
            source="inputs",
            stage="load",
        )
    items = list(inputs)
    if not items:
        raise AudioError("inputs is empty; pass at least one utterance", source="inputs", stage="load")
    if all(isinstance(x, (int, float, np.number)) and not isinstance(x, bool) for x in items):
        raise AudioError(
            "inputs is a list of numbers; pass the samples as one array (np.asarray(samples, "
            "dtype=np.float32)) with sample_rate",
            source="inputs",
            stage="load",
        )
    return items


def per_input_rates(sample_rate: object, n: int) -> list[object]:
    """One sample rate per input: ``sample_rate`` repeated, or checked against ``n``."""
    if isinstance(sample_rate, np.ndarray) and sample_rate.ndim == 0:
        sample_rate = sample_rate.item()
    if isinstance(sample_rate, np.ndarray):
        sample_rate = sample_rate.tolist()
    if isinstance(sample_rate, (list, tuple)):
        if len(sample_rate) != n:
            raise AudioError(
                f"sample_rate has {len(sample_rate)} entries for {n} inputs; pass one rate, or one per input",
                source="sample_rate",
                stage="load",
            )
        return list(sample_rate)
    return [sample_rate] * n


def as_library_error(exc: BaseException, source: str) -> SpeakerEmbedError:
    """``exc`` as the library's error about ``source`` (a SpeakerEmbedError is given the source)."""
    if isinstance(exc, SpeakerEmbedError):
        if exc.source is None:
            exc.source = source
        return exc
    if isinstance(exc, MemoryError):
        return AudioError(
            "is too large to process in memory; set Pipeline.max_duration_s, or cut it into parts",
            source=source,
            stage="load",
        )
    return SpeakerEmbedError(
        f"unexpected {type(exc).__name__} while embedding it: {exc}; this is a bug in "
        "speakerembed, please report it with the input",
        source=source,
    )


def preprocess_on_device(device_type: str, pipe: Pipeline, sample_rate: int, n_samples: int) -> bool:
    """Whether resampling, trimming and the mel run on the encoder's device.

    Only the ``"torchaudio"`` resampler can run there. ``resample_device="auto"`` picks the
    device when it is a GPU and the utterance lasts at least :data:`AUTO_DEVICE_MIN_SECONDS`
    (measured on an H200; below it, the copy and the kernel launches are most of the work).
    """
    if pipe.resampler != "torchaudio" or pipe.resample_device == "cpu":
        return False
    if pipe.resample_device == "device":
        return True
    return device_type == "cuda" and n_samples >= AUTO_DEVICE_MIN_SECONDS * sample_rate


def settle(
    outcomes: Iterable[tuple[int, Prepared | Exception]], rec: Recorder, on_failure: OnFailure | None
) -> Iterator[Prepared]:
    """The prepared inputs of ``outcomes``, in their order; a failed one is raised or handed on.

    A failure is recorded to ``rec``, then raised as the library's error naming its input, or
    with ``on_failure`` (``errors="skip"``) handed to it and left out. ``outcomes`` is closed
    when this iterator is (a pool of workers behind it stops then).
    """
    try:
        for index, outcome in outcomes:
            if isinstance(outcome, Prepared):
                yield outcome
                continue
            exc = outcome
            source = f"input {index}"
            err = as_library_error(exc, source)
            rec.error(err.stage or "load", err)
            rec.utterance(False)
            if on_failure is None:
                raise err from (None if err is exc else exc)
            on_failure(index, err.source or source, err)
    finally:
        close = getattr(outcomes, "close", None)
        if close is not None:
            close()


class Preparer:
    """Runs the stages on inputs for an encoder on ``device`` (which decides where the mel is made).

    Parameters
    ----------
    device : torch.device
        The encoder's device: ``Pipeline(resample_device=...)`` may prepare on it.
    plan_streams : bool
        False in worker processes (:mod:`speakerembed._engine.processes`), where a file long
        enough to stream is only recognised, from its header: :meth:`prepare` returns it with
        neither a mel nor windows, and the encoder's process streams it.
    """

    def __init__(self, device: torch.device, *, plan_streams: bool = True) -> None:
        self.device = device
        self.plan_streams = plan_streams

    def prepare_all(
        self,
        items: list[object],
        rates: list[object],
        pipe: Pipeline,
        rec: Recorder,
        on_failure: OnFailure | None,
        threads: int = 1,
    ) -> Iterator[Prepared]:
        """Prepare each input, in order, in bursts on ``threads`` threads (1: in line).

        A failing input is raised as the library's error naming it, or with ``on_failure``
        handed to it (``errors="skip"``) and left out (:func:`settle`).
        """

        def attempt(job: tuple[int, object, object]) -> tuple[int, Prepared | Exception]:
            index, item, rate = job
            try:
                return index, self.prepare(index, item, rate, pipe, rec)
            except Exception as exc:  # noqa: BLE001 - every failure is reported as ours
                return index, exc

        jobs = ((i, item, rate) for i, (item, rate) in enumerate(zip(items, rates, strict=True)))
        return settle(map_in_bursts(attempt, jobs, threads, BURST_PER_THREAD * threads), rec, on_failure)

    def prepare(
        self, index: int, item: object, rate: object, pipe: Pipeline, rec: Recorder = NULL_RECORDER
    ) -> Prepared:
        """Load, resample, trim (or keep the speech) and mel one input (or plan its stream)."""
        import torch

        t0 = time.perf_counter()
        if isinstance(item, (str, os.PathLike)) and pipe.stream_min_duration_s is not None:
            item = self._stream(index, item, pipe, rec)  # or the file, opened once
            if isinstance(item, Prepared):
                return item
        wav, sr = load_audio(item, rate, max_duration_s=pipe.max_duration_s, source=f"input {index}")
        source = f"input {index}"
        if isinstance(item, (str, os.PathLike)):
            source = f"{source} ({os.fspath(item)})"
        rec.stage("load", "cpu", time.perf_counter() - t0)
        input_seconds, input_rate = wav.shape[0] / sr, sr
        low, high = (float(np.min(wav)), float(np.max(wav))) if wav.size else (0.0, 0.0)
        check_not_silent(max(-low, high), source)
        check_not_constant(low, high, source)
        on_device = preprocess_on_device(self.device.type, pipe, sr, wav.shape[0])
        where = self.device.type if on_device else "cpu"
        # On the device path this is the one host-to-device copy of the utterance.
        sig: Any = torch.from_numpy(wav).to(self.device) if on_device else wav
        spans: tuple[tuple[float, float], ...] = ((0.0, input_seconds),)
        for step in ("resample", "trim") if pipe.order == "resample_trim" else ("trim", "resample"):
            t0 = time.perf_counter()
            if step == "resample":
                if on_device:
                    with torch.inference_mode():
                        sig = SincResampler.get(sr, MODEL_SAMPLE_RATE, self.device)(sig)
                else:
                    sig = resample(sig, sr, MODEL_SAMPLE_RATE, pipe.resampler)
                sr = MODEL_SAMPLE_RATE
            elif pipe.vad is not None:
                from ..stages.vad import keep_speech

                sig, speech = keep_speech(sig, sr, pipe, source)
                spans = tuple((a / sr, b / sr) for a, b in speech.bounds.tolist())
            elif pipe.top_db is not None:
                frame, hop = pipe.trim_frames_at(sr)
                if on_device:
                    with torch.inference_mode():
                        power = frame_power_tensor(sig, frame, hop).cpu().numpy()
                else:
                    power = frame_power(sig, frame, hop)
                start, end = trim_bounds(power, sig.shape[0], pipe.top_db, hop)
                sig = sig[start:end]
                spans = ((start / sr, end / sr),)
            rec.stage(step, where, time.perf_counter() - t0)
        wav = sig
        kept = wav.shape[0] / MODEL_SAMPLE_RATE
        check_kept(wav.shape[0], pipe, source)
        from ..stages.mel import melspectrogram

        t0 = time.perf_counter()
        with torch.inference_mode():
            mel = melspectrogram(sig if on_device else torch.from_numpy(np.ascontiguousarray(wav)))
        rec.stage("mel", where, time.perf_counter() - t0)
        return Prepared(
            index,
            source,
            mel,
            input_seconds,
            max(0.0, input_seconds - kept),
            sample_rate=input_rate,
            spans=spans,
        )

    def _stream(
        self, index: int, item: str | os.PathLike[str], pipe: Pipeline, rec: Recorder
    ) -> Prepared | OpenAudio:
        """Pass 1 of the streaming path for a long file, or the file opened for the in-memory path."""
        from ..stages import longform as stream
        from ..stages.load import check_duration, open_file

        assert pipe.stream_min_duration_s is not None
        source = f"input {index} ({os.fspath(item)})"
        # The file's one open: it fails as the in-memory path would (missing, unreadable, not
        # audio, a bad header rate), and its header decides; load_audio then decodes its handle.
        opened = open_file(item, source)
        sr, frames = opened.sample_rate, opened.frames
        if sr is None or frames is None or frames / sr < pipe.stream_min_duration_s:
            return opened
        if not stream.can_stream(sr, pipe):
            return opened
        opened.close()
        check_duration(frames, sr, pipe.max_duration_s, source)
        if not self.plan_streams:  # a worker: the encoder's process streams it (pass 1 there)
            return Prepared(index, source, None, frames / sr, 0.0, sample_rate=sr)
        t0 = time.perf_counter()
        plan = stream.plan_stream(item, pipe, source=source)
        rec.stage("trim", "cpu", time.perf_counter() - t0)
        return Prepared(
            index,
            source,
            None,
            plan.input_seconds,
            max(0.0, plan.input_seconds - plan.kept_seconds),
            windows=stream.stream_windows(plan, pipe),
            n_windows=plan.n_windows,
            sample_rate=plan.sample_rate,
            spans=(plan.kept_span,),
        )
