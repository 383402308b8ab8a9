"""The :class:`SpeakerEmbedder`: weights on a device, and the pipeline that feeds them.

The data's trip, one module per stage::

    load.py  ->  resample.py / trim.py  ->  mel.py + windows.py  ->  encoder.py  ->  consolidate.py

Utterances are prepared one at a time, and their partial windows are packed into encoder
batches of at most ``Pipeline.max_windows_per_batch`` windows, across utterances, so memory stays
bounded however many inputs a call has.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Literal, Union, overload

import numpy as np

from . import chatterbox_compat as _cb
from ._engine.prefetch import (
    BURST_PER_THREAD,
    auto_prefetch_depth,
    burst_threads,
    many_core_split,
    map_in_bursts,
    prefetch,
    torch_threads,
)
from ._engine.recorder import NULL_RECORDER, Recorder
from ._engine.streams import batch_layout, encode_in_order, encoder_streams, preparing_threads, split_rows
from .config import MODEL_SAMPLE_RATE, Pipeline
from .errors import AudioError, ConfigError, SpeakerEmbedError
from .stages.consolidate import utt_to_spk_embed
from .stages.load import _is_tensor, _OpenAudio, load_audio
from .stages.resample import SincResampler, resample
from .stages.trim import (
    check_kept,
    check_not_constant,
    check_not_silent,
    frame_power,
    frame_power_tensor,
    trim_bounds,
)

if TYPE_CHECKING:
    import numpy.typing as npt
    import torch
    from prometheus_client import CollectorRegistry

    from .stages.encoder import EncoderImpl, ModuleEncoder, Precision, ResolvedPrecision
    from .weights import WeightsInfo

__all__ = ["AudioInput", "EmbeddingResult", "Failure", "SpeakerEmbedder"]

logger = logging.getLogger("speakerembed")

AudioInput = Union[str, "os.PathLike[str]", "npt.NDArray[Any]", "torch.Tensor"]
"""One utterance: a file path, a NumPy array or a torch tensor."""

#: With ``Pipeline(resample_device="auto")``, utterances at least this long are resampled,
#: trimmed and turned into mels on a CUDA device; shorter ones on the CPU. On an H200 the GPU
#: resampled faster at every length measured (1 s: 0.2 ms against libsoxr's 0.5 ms), one
#: utterance end to end took 8.3 ms against 12.5 ms at 2.5 s (6.6 against 9.1 at 10 s, 8.9
#: against 26.6 at 60 s), and the 86-utterance throughput set ran as fast either way; 2.5 s is
#: the shortest length measured end to end (docs/performance.rst, "GPU").
AUTO_DEVICE_MIN_SECONDS = 2.5


@dataclasses.dataclass(frozen=True)
class Failure:
    """An input that could not be embedded, in ``errors="skip"`` mode.

    Attributes
    ----------
    index : int
        Its position among the inputs.
    source : str
        Its name: ``"input 3"``, with the path for files.
    error : SpeakerEmbedError
        What went wrong.
    """

    index: int
    source: str
    error: SpeakerEmbedError


@dataclasses.dataclass(frozen=True)
class EmbeddingResult:
    """What ``embed_utterances(..., errors="skip")`` returns.

    Attributes
    ----------
    embeddings : numpy.ndarray, shape (n_ok, 256), float32
        One unit row per input that worked, in input order.
    indices : numpy.ndarray, shape (n_ok,), int64
        The input index of each row.
    failures : tuple of Failure
        The inputs that did not work, in input order.
    speech_s : numpy.ndarray, shape (n_ok,), float64
        Seconds of each row's input that reached the encoder: what trimming left, or the
        speech (with its padding) that ``Pipeline(vad="silero")`` kept.
    """

    embeddings: npt.NDArray[np.float32]
    indices: npt.NDArray[np.int64]
    failures: tuple[Failure, ...]
    speech_s: npt.NDArray[np.float64] = dataclasses.field(default_factory=lambda: np.zeros(0, np.float64))

    @property
    def ok(self) -> bool:
        """Whether every input was embedded."""
        return not self.failures

    def speaker_embedding(self) -> npt.NDArray[np.float32]:
        """The speaker embedding of the inputs that worked (:func:`utt_to_spk_embed`)."""
        if self.embeddings.shape[0] == 0:
            raise AudioError("no input could be embedded, so there is no speaker embedding")
        return utt_to_spk_embed(self.embeddings)


@dataclasses.dataclass
class _Prepared:
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


def _describe_inputs(inputs: object) -> list[object]:
    if isinstance(inputs, (str, os.PathLike, np.ndarray)) or _is_tensor(inputs):
        return [inputs]
    if isinstance(inputs, (bytes, dict)) or not isinstance(inputs, Iterable):
        raise AudioError(
            f"inputs is a {type(inputs).__name__}; pass a path, an array or tensor, or a list of them",
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


def _rates(sample_rate: object, n: int) -> list[object]:
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


def _error_type(exc: BaseException) -> str:
    return type(exc).__name__


class SpeakerEmbedder:
    """Voice-encoder weights on a device, ready to embed audio again and again.

    Parameters
    ----------
    weights : str or os.PathLike
        ``"chatterbox"`` (default), ``"chatterbox-turbo"``, ``"chatterbox-multilingual"``,
        ``"resemblyzer"``, or a local ``.safetensors``/``.pt`` file; see
        :mod:`speakerembed.weights`. Ignored when ``encoder`` is a module.
    encoder : {"builtin", "chatterbox"} or torch.nn.Module
        ``"builtin"`` uses speakerembed's own copy of the network (no chatterbox-tts needed).
        ``"chatterbox"`` loads the weights into Chatterbox's ``VoiceEncoder`` class. A module,
        such as a running ``ChatterboxTTS``'s ``.ve``, is used as is, on its own device.
    device : str or torch.device or None
        ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or ``"mps"``. ``None`` picks CUDA, then MPS, then CPU.
    precision : {"fp32", "bf16", "auto"}
        ``"bf16"`` runs the encoder in bfloat16: faster on CPUs with native bf16 (avx512_bf16,
        AMX) and on GPUs, with cosine above 0.999 against fp32; emulated, so slower, elsewhere.
        ``"auto"`` picks bf16 where the hardware runs it faster and fp32 elsewhere
        (:func:`speakerembed.stages.encoder.resolve_precision`); :attr:`precision` holds the choice,
        and the repr shows it.
    pipeline : Pipeline or None
        The default preprocessing for calls that do not pass their own.
    registry : prometheus_client.CollectorRegistry or None
        Record metrics into this registry (see :mod:`speakerembed.metrics`).
    revision : str or None
        Hub revision for Hub weights.

    Examples
    --------
    >>> from speakerembed import SpeakerEmbedder
    >>> embedder = SpeakerEmbedder("resemblyzer", device="cpu")  # doctest: +SKIP
    >>> embedder.embed_speaker(["a.wav", "b.wav"]).shape  # doctest: +SKIP
    (256,)
    """

    #: Utterances prepared ahead of the encoder in a background thread: 0 for none, ``None``
    #: for :func:`~speakerembed._engine.prefetch.auto_prefetch_depth` (2 when torch leaves a core free).
    _prefetch_depth: int | None = None
    #: Threads that prepare utterances in bursts between encoder batches: ``None`` picks
    #: (see :meth:`_preparation_plan`), 1 prepares in line.
    _prepare_threads: int | None = None
    #: One-thread encoder streams on the CPU: ``None`` picks
    #: (:func:`~speakerembed._engine.streams.encoder_streams`), 1 runs one call on torch's threads.
    _encoder_streams: int | None = None

    def __init__(
        self,
        weights: str | os.PathLike[str] = "chatterbox",
        *,
        encoder: EncoderImpl | torch.nn.Module = "builtin",
        device: str | torch.device | None = None,
        precision: Precision = "fp32",
        pipeline: Pipeline | None = None,
        registry: CollectorRegistry | None = None,
        revision: str | None = None,
    ) -> None:
        from .stages import encoder as enc

        if pipeline is not None and not isinstance(pipeline, Pipeline):
            raise ConfigError(
                f"pipeline={pipeline!r} is not a speakerembed.Pipeline; pass Pipeline(...) or None"
            )
        self.pipeline = pipeline if pipeline is not None else Pipeline()
        self._recorder: Recorder = _recorder_for(registry)
        start = time.perf_counter()
        if isinstance(encoder, str):
            self.device = enc.resolve_device(device)
            self._encoder, self.weights_info, _ = enc.load_encoder(
                weights, encoder=encoder, device=self.device, precision=precision, revision=revision
            )
        else:
            import torch

            if not isinstance(encoder, torch.nn.Module):
                raise ConfigError(f"encoder={encoder!r} is not 'builtin', 'chatterbox' or a torch.nn.Module")
            own = enc.module_device(encoder)
            if device is not None and enc.resolve_device(device) != own:
                raise ConfigError(
                    f"device={device!r}, but the encoder module lives on {own}; leave device out "
                    "to use the module where it is"
                )
            self.device = own
            self._encoder = enc.ModuleEncoder(encoder, precision)
            self.weights_info = _module_info(encoder)
        # The precision the encoder runs in ("auto" resolved), and the one asked for.
        self.precision: ResolvedPrecision = self._encoder.precision
        self.requested_precision: Precision = precision
        self.load_seconds = time.perf_counter() - start
        self._recorder.model_loaded(self.load_seconds, self.weights_info, self.device.type)

    def __repr__(self) -> str:
        return (
            f"SpeakerEmbedder(weights={self.weights_info.short!r}, device={str(self.device)!r}, "
            f"precision={self.precision!r}{' (auto)' if self.requested_precision == 'auto' else ''})"
        )

    @property
    def encoder(self) -> ModuleEncoder:
        """The wrapped encoder (windows in, unit vectors out)."""
        return self._encoder

    # -- public API -----------------------------------------------------------------------------

    @overload
    def embed_utterances(
        self,
        inputs: AudioInput | Sequence[AudioInput],
        *,
        sample_rate: int | Sequence[int] | None = ...,
        pipeline: Pipeline | None = ...,
        errors: Literal["raise"] = ...,
    ) -> npt.NDArray[np.float32]: ...

    @overload
    def embed_utterances(
        self,
        inputs: AudioInput | Sequence[AudioInput],
        *,
        sample_rate: int | Sequence[int] | None = ...,
        pipeline: Pipeline | None = ...,
        errors: Literal["skip"],
    ) -> EmbeddingResult: ...

    def embed_utterances(
        self,
        inputs: AudioInput | Sequence[AudioInput],
        *,
        sample_rate: int | Sequence[int] | None = None,
        pipeline: Pipeline | None = None,
        errors: Literal["raise", "skip"] = "raise",
    ) -> npt.NDArray[np.float32] | EmbeddingResult:
        """One L2-normalised embedding per utterance (Chatterbox's ``as_spk=False``).

        Parameters
        ----------
        inputs : path, numpy.ndarray, torch.Tensor, or a sequence of them
            One utterance or several. A 2-D array is one multichannel utterance; pass a list
            for a batch.
        sample_rate : int, sequence of int, or None
            The rate of arrays and tensors, in Hz: one for all, or one per input. Files carry
            their own rate and ignore it.
        pipeline : Pipeline or None
            Overrides the embedder's pipeline for this call.
        errors : {"raise", "skip"}
            ``"raise"`` (default) stops at the first bad input with an error that names it.
            ``"skip"`` embeds every good input, logs each bad one, and returns an
            :class:`EmbeddingResult` that lists them.

        Returns
        -------
        numpy.ndarray, shape (n_inputs, 256), float32
            Unit rows, in input order (an :class:`EmbeddingResult` with ``errors="skip"``).

        Raises
        ------
        AudioError
            For unusable audio, naming the input.
        ConfigError
            For invalid arguments.
        """
        result: npt.NDArray[np.float32] | EmbeddingResult = self._run(
            "embed_utterances", inputs, sample_rate, pipeline, errors, self._recorder
        )
        return result

    def embed_speaker(
        self,
        inputs: AudioInput | Sequence[AudioInput],
        *,
        sample_rate: int | Sequence[int] | None = None,
        pipeline: Pipeline | None = None,
    ) -> npt.NDArray[np.float32]:
        """One speaker embedding: :func:`utt_to_spk_embed` of the utterance embeddings.

        Parameters are those of :meth:`embed_utterances`. Every input must be usable.

        Returns
        -------
        numpy.ndarray, shape (256,), float32, unit norm
        """
        result: npt.NDArray[np.float32] = self._run(
            "embed_speaker", inputs, sample_rate, pipeline, "raise", self._recorder
        )
        return result

    # -- Chatterbox's VoiceEncoder API (speakerembed.chatterbox_compat) ------------------------

    def embeds_from_wavs(
        self,
        wavs: Sequence[npt.NDArray[Any]] | npt.NDArray[Any],
        sample_rate: int,
        as_spk: bool = False,
        batch_size: int | None = 32,
        trim_top_db: float | None = 20,
        **kwargs: float | None,
    ) -> npt.NDArray[np.float32]:
        """Chatterbox's ``VoiceEncoder.embeds_from_wavs``, every argument with its meaning there.

        See :func:`speakerembed.chatterbox_compat.embeds_from_wavs`. Returns (N, 256) unit rows,
        or the (256,) speaker embedding with ``as_spk``.
        """
        return _cb.embeds_from_wavs(self, wavs, sample_rate, as_spk, batch_size, trim_top_db, **kwargs)

    def embeds_from_mels(
        self,
        mels: torch.Tensor | npt.NDArray[Any] | Sequence[Any],
        mel_lens: Sequence[int] | npt.NDArray[Any] | torch.Tensor | None = None,
        as_spk: bool = False,
        batch_size: int | None = 32,
        **kwargs: float | None,
    ) -> npt.NDArray[np.float32]:
        """Chatterbox's ``VoiceEncoder.embeds_from_mels``: embeddings of (n_frames, 40) power mels.

        See :func:`speakerembed.chatterbox_compat.embeds_from_mels`.
        """
        return _cb.embeds_from_mels(self, mels, mel_lens, as_spk, batch_size, **kwargs)

    def embed_conditioning(
        self, inputs: AudioInput | Sequence[AudioInput], *, sample_rate: int | Sequence[int] | None = None
    ) -> npt.NDArray[np.float32]:
        """The (256,) speaker embedding Chatterbox TTS conditions on (``T3Cond.speaker_emb``).

        See :func:`speakerembed.chatterbox_compat.embed_conditioning`.
        """
        return _cb.embed_conditioning(self, inputs, sample_rate=sample_rate)

    #: Chatterbox's ``VoiceEncoder.utt_to_spk_embed``: :func:`speakerembed.utt_to_spk_embed`.
    utt_to_spk_embed = staticmethod(utt_to_spk_embed)

    @staticmethod
    def voice_similarity(embeds_x: npt.ArrayLike, embeds_y: npt.ArrayLike) -> float:
        """Chatterbox's ``VoiceEncoder.voice_similarity``: the cosine of two voices.

        See :func:`speakerembed.chatterbox_compat.voice_similarity`.
        """
        return _cb.voice_similarity(embeds_x, embeds_y)

    # -- the pipeline ---------------------------------------------------------------------------

    def _run(
        self,
        operation: str,
        inputs: object,
        sample_rate: object,
        pipeline: Pipeline | None,
        errors: str,
        rec: Recorder,
    ) -> Any:
        if errors not in ("raise", "skip"):
            raise ConfigError(f"errors={errors!r} is not 'raise' or 'skip'")
        if pipeline is not None and not isinstance(pipeline, Pipeline):
            raise ConfigError(
                f"pipeline={pipeline!r} is not a speakerembed.Pipeline; pass Pipeline(...) or None"
            )
        pipe = pipeline if pipeline is not None else self.pipeline
        start = time.perf_counter()
        rec.in_progress(operation, 1)
        ok = False
        try:
            items = _describe_inputs(inputs)
            rates = _rates(sample_rate, len(items))
            failures: list[Failure] = []
            # One utterance streams too: its last windows are shared out between the streams
            # (_streams.py), so one call would run those pieces one after another.
            streams = self._streams_for(self._encoder)
            depth, threads, encoder_threads = self._preparation_plan(len(items), streams)
            prepared = self._prepare_all(items, rates, pipe, errors == "skip", failures, rec, threads)
            if depth > 0:
                # Prepare the next utterances while the encoder runs (see _prefetch.py).
                prepared = prefetch(prepared, depth)
            kept: dict[int, float] = {}
            with torch_threads(encoder_threads):
                embeds = self._encode(prepared, pipe, errors == "skip", failures, rec, kept, streams)
            failures.sort(key=lambda f: f.index)
            if operation == "embed_speaker":
                rows = np.stack([embeds[i] for i in sorted(embeds)])
                t0 = time.perf_counter()
                result: Any = utt_to_spk_embed(rows)
                rec.stage("consolidate", "cpu", time.perf_counter() - t0)
                rec.speaker(len(rows))
            elif errors == "skip":
                order = sorted(embeds)
                rows = np.stack([embeds[i] for i in order]) if order else np.zeros((0, 256), np.float32)
                speech = np.asarray([kept[i] for i in order], dtype=np.float64)
                result = EmbeddingResult(rows, np.asarray(order, dtype=np.int64), tuple(failures), speech)
            else:
                result = np.stack([embeds[i] for i in range(len(items))])
            ok = True
            return result
        except SpeakerEmbedError as exc:
            if exc.stage is None or exc.source in ("inputs", "sample_rate"):
                rec.error(exc.stage or "load", exc)
            raise
        finally:
            rec.in_progress(operation, -1)
            rec.call(operation, time.perf_counter() - start, ok)

    def _preparation_plan(self, n_items: int, streams: int = 1) -> tuple[int, int, int | None]:
        """``(prefetch depth, preparation threads, torch threads)`` for ``n_items`` inputs.

        See :mod:`speakerembed._engine.prefetch`. When the encoder runs as one-thread streams
        (:mod:`speakerembed._engine.streams`, the rule on a CPU), in line on one torch thread, or from
        :data:`~speakerembed._engine.streams.PREPARE_BESIDE_FROM` cores on, in bursts on a quarter of
        them beside the streams (:func:`~speakerembed._engine.streams.preparing_threads`). Otherwise: a
        prefetch thread when the encoder leaves a core free (a GPU, or fewer torch threads
        than cores); bursts on one thread per core between the encoder's batches; and on a CPU
        of :data:`~speakerembed._engine.prefetch.MANY_CORES` cores or more, the encoder on three
        quarters of them for the call with the rest preparing beside it. The torch threads are
        the calling thread's for the call; ``None`` leaves its count as it is.
        """
        if streams > 1:
            # Encoder streams have no barrier to stall: this thread prepares in line while they
            # run (speakerembed._engine.streams), or on many cores bursts on a quarter of them prepare
            # beside. This thread runs on one torch thread, as each stream does: its idle OpenMP
            # threads would spin against the streams (a 10 s clip on 2 cores took 61-67 ms with
            # two, 52-59 ms with one).
            if n_items < 2:
                return 0, 1, 1
            prepare = self._prepare_threads if self._prepare_threads is not None else preparing_threads()
            depth = self._prefetch_depth
            if depth is None:
                depth = 2 * prepare if prepare > 1 else 0
            return depth, max(1, min(prepare, n_items)), 1
        if n_items < 2:
            return 0, 1, None
        if self._prefetch_depth is None and self._prepare_threads is None:
            split = many_core_split(self.device.type)
            if split is not None:
                encoder_threads, prepare = split
                return 2 * prepare, min(prepare, n_items), encoder_threads
        depth = self._prefetch_depth if self._prefetch_depth is not None else auto_prefetch_depth()
        threads = self._prepare_threads
        if threads is None:
            threads = burst_threads(self.device.type, depth)
        return depth, max(1, min(threads, n_items)), None

    def _streams_for(self, encoder: object) -> int:
        """How many one-thread streams run ``encoder`` (:mod:`speakerembed._engine.streams`)."""
        if self._encoder_streams is None:
            return encoder_streams(encoder, self.device.type)
        return self._encoder_streams if getattr(encoder, "concurrent_calls", False) else 1

    def _prepare_all(
        self,
        items: list[object],
        rates: list[object],
        pipe: Pipeline,
        skip: bool,
        failures: list[Failure],
        rec: Recorder,
        threads: int = 1,
    ) -> Iterator[_Prepared]:
        def attempt(job: tuple[int, object, object]) -> tuple[int, _Prepared | Exception]:
            index, item, rate = job
            try:
                return index, self._prepare(index, item, rate, pipe, rec)
            except Exception as exc:  # noqa: BLE001 - every failure is reported as ours
                return index, exc

        jobs = ((i, item, rate) for i, (item, rate) in enumerate(zip(items, rates, strict=True)))
        for index, outcome in map_in_bursts(attempt, jobs, threads, BURST_PER_THREAD * threads):
            if isinstance(outcome, _Prepared):
                yield outcome
            else:
                exc = outcome
                source = f"input {index}"
                err = _as_library_error(exc, source)
                rec.error(err.stage or "load", err)
                rec.utterance(False)
                if not skip:
                    raise err from (None if err is exc else exc)
                logger.warning("skipping %s", err)
                failures.append(Failure(index, err.source or source, err))

    def _prepare(self, index: int, item: object, rate: object, pipe: Pipeline, rec: Recorder) -> _Prepared:
        import torch

        t0 = time.perf_counter()
        if isinstance(item, (str, os.PathLike)) and pipe.stream_min_duration_s is not None:
            item = self._prepare_stream(index, item, pipe, rec)  # or the file, opened once
            if isinstance(item, _Prepared):
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
        on_device = self._preprocess_on_device(pipe, sr, wav.shape[0])
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
                from .stages.vad import keep_speech

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
        from .stages.mel import melspectrogram

        t0 = time.perf_counter()
        with torch.inference_mode():
            mel = melspectrogram(sig if on_device else torch.from_numpy(np.ascontiguousarray(wav)))
        rec.stage("mel", where, time.perf_counter() - t0)
        return _Prepared(
            index,
            source,
            mel,
            input_seconds,
            max(0.0, input_seconds - kept),
            sample_rate=input_rate,
            spans=spans,
        )

    def _preprocess_on_device(self, pipe: Pipeline, sample_rate: int, n_samples: int) -> bool:
        """Whether resampling, trimming and the mel run on the embedder's device.

        Only the ``"torchaudio"`` resampler can run there. ``resample_device="auto"`` picks the
        device when it is a GPU and the utterance lasts at least :data:`AUTO_DEVICE_MIN_SECONDS`
        (measured on an H200; below it, the copy and the kernel launches are most of the work).
        """
        if pipe.resampler != "torchaudio" or pipe.resample_device == "cpu":
            return False
        if pipe.resample_device == "device":
            return True
        return self.device.type == "cuda" and n_samples >= AUTO_DEVICE_MIN_SECONDS * sample_rate

    def _prepare_stream(
        self, index: int, item: str | os.PathLike[str], pipe: Pipeline, rec: Recorder
    ) -> _Prepared | _OpenAudio:
        """Pass 1 of the streaming path for a long file, or the file opened for the in-memory path."""
        from .stages import longform as stream
        from .stages.load import _check_duration, _open_file

        assert pipe.stream_min_duration_s is not None
        source = f"input {index} ({os.fspath(item)})"
        # The file's one open: it fails as the in-memory path would (missing, unreadable, not
        # audio, a bad header rate), and its header decides; load_audio then decodes its handle.
        opened = _open_file(item, source)
        sr, frames = opened.sample_rate, opened.frames
        if sr is None or frames is None or frames / sr < pipe.stream_min_duration_s:
            return opened
        if not stream.can_stream(sr, pipe):
            return opened
        opened.close()
        _check_duration(frames, sr, pipe.max_duration_s, source)
        t0 = time.perf_counter()
        plan = stream.plan_stream(item, pipe, source=source)
        rec.stage("trim", "cpu", time.perf_counter() - t0)
        return _Prepared(
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

    def _encode(
        self,
        prepared: Iterator[_Prepared],
        pipe: Pipeline,
        skip: bool,
        failures: list[Failure],
        rec: Recorder,
        kept: dict[int, float] | None = None,
        streams: int | None = None,
    ) -> dict[int, npt.NDArray[np.float32]]:
        """Encode the prepared utterances' windows; ``streams`` as :meth:`_streams_for` picks.

        Pass ``streams`` when this runs with the caller's torch threads changed (the streams
        follow torch's count outside the call).
        """
        import torch

        from .stages.consolidate import mean_embedding
        from .stages.windows import partial_windows

        device = self.device
        step = pipe.frame_step
        parts: dict[int, list[torch.Tensor]] = {}
        remaining: dict[int, int] = {}
        info: dict[int, _Prepared] = {}
        out: dict[int, npt.NDArray[np.float32]] = {}

        def finish(idx: int) -> None:
            p = info.pop(idx)
            t0 = time.perf_counter()
            try:
                emb = mean_embedding(torch.cat(parts.pop(idx)), p.source)
                vec = emb.cpu().numpy().astype(np.float32, copy=False)
                if not np.isfinite(vec).all() or abs(float(np.linalg.norm(vec)) - 1.0) > 1e-3:
                    # The guarantee: every row that leaves the library is finite and unit norm.
                    raise SpeakerEmbedError(
                        "the encoder gave an embedding that is not a finite unit vector; check "
                        "that the encoder's weights are finite, or report this as a bug",
                        source=p.source,
                        stage="consolidate",
                    )
            except SpeakerEmbedError as err:
                rec.error(err.stage or "consolidate", err)
                rec.utterance(False)
                if not skip:
                    raise
                logger.warning("skipping %s", err)
                failures.append(Failure(idx, p.source, err))
                return
            rec.stage("consolidate", device.type, time.perf_counter() - t0)
            rec.utterance(True, p.input_seconds, p.trimmed_seconds)
            out[idx] = vec
            if kept is not None:
                kept[idx] = p.kept_seconds

        encoder = self._encoder
        if streams is None:
            streams = self._streams_for(encoder)
        layout = batch_layout(device.type)
        cap = pipe.windows_per_batch(device.type, layout)
        # One call on torch's threads, or several at once, each on one thread (_streams.py).
        call_encoder = encoder.embed_concurrently if streams > 1 else encoder

        def encode(batch: torch.Tensor) -> tuple[torch.Tensor, float]:
            t0 = time.perf_counter()
            try:
                emb = call_encoder(batch)
            except Exception as exc:
                err = SpeakerEmbedError(
                    f"the encoder failed on a batch of {batch.shape[0]} windows ({exc}); "
                    "check the device and the encoder module",
                    stage="encode",
                )
                rec.error("encode", err)
                raise err from exc
            return emb, time.perf_counter() - t0

        def batch_of(pieces: list[tuple[int, torch.Tensor]]) -> tuple[list[tuple[int, int]], torch.Tensor]:
            owners = [(idx, int(w.shape[0])) for idx, w in pieces]
            return owners, torch.cat([w for _, w in pieces]).to(device, non_blocking=False)

        def batches() -> Iterator[tuple[list[tuple[int, int]], torch.Tensor]]:
            pending: list[tuple[int, torch.Tensor]] = []
            n_pending = 0
            # Laid out for streams, each full batch is held until the next one fills, so that
            # the last two can be shared out between the streams and none of them is left to
            # finish alone. The layout is the same however many streams run (_streams.py).
            held: list[tuple[int, torch.Tensor]] = []
            for p in prepared:
                if p.mel is not None:
                    whole = partial_windows(p.mel, step, pipe.min_coverage, pipe.partial_frames)
                    chunks: Iterable[torch.Tensor] = (whole,)
                    total = whole.shape[0]
                else:
                    assert p.windows is not None
                    chunks, total = p.windows, p.n_windows
                info[p.index] = p
                parts[p.index] = []
                remaining[p.index] = total
                for windows in chunks:
                    start = 0
                    while start < windows.shape[0]:
                        take = min(cap - n_pending, windows.shape[0] - start)
                        pending.append((p.index, windows[start : start + take]))
                        n_pending += take
                        start += take
                        if n_pending >= cap:
                            if layout < 2:
                                yield batch_of(pending)
                            else:
                                if held:
                                    yield batch_of(held)
                                held = pending
                            pending, n_pending = [], 0
            rest = held + pending
            if rest:
                n_rest = sum(int(w.shape[0]) for _, w in rest)
                for piece in split_rows(rest, max(layout, -(-n_rest // cap))):
                    yield batch_of(piece)

        # With streams, this thread prepares (the batches pull the prepared inputs) and hands
        # out batches on one torch thread: its idle OpenMP threads would spin against them.
        with torch_threads(1 if streams > 1 else None), torch.inference_mode():
            for owners, emb, seconds in encode_in_order(encode, batches(), streams):
                rec.stage("encode", device.type, seconds)
                rec.batch(int(emb.shape[0]), device.type)
                offset = 0
                for idx, n in owners:
                    parts[idx].append(emb[offset : offset + n])
                    offset += n
                    remaining[idx] -= n
                    if remaining[idx] == 0:
                        finish(idx)
        return out


def _as_library_error(exc: BaseException, source: str) -> SpeakerEmbedError:
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


def _module_info(module: Any) -> WeightsInfo:
    from .weights import WeightsInfo

    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return WeightsInfo("instance", None, digest.hexdigest())


_recorders_lock = threading.Lock()


def _recorder_for(registry: object) -> Recorder:
    if registry is None:
        return NULL_RECORDER
    from .metrics import recorder_for_registry

    with _recorders_lock:
        return recorder_for_registry(registry)
