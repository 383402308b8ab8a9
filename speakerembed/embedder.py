"""The :class:`SpeakerEmbedder`: weights on a device, and the pipeline that feeds them.

The data's trip, one module per stage (:mod:`speakerembed.stages`)::

    1 load -> 2 resample -> 3 trim, or the VAD -> 4 mel -> 5 windows -> 6 encoder -> 7 consolidate

(2 and 3 in ``Pipeline.order``'s order; 3 is :mod:`~speakerembed.stages.vad` with
``Pipeline(vad="silero")``). A file longer than ``Pipeline.stream_min_duration_s`` takes steps 1
to 5 in blocks (:mod:`~speakerembed.stages.longform`), so its memory does not grow with its length.

The embedder loads the weights and hands each call to its engine (``speakerembed._engine``):
:func:`~speakerembed._engine.schedule.plan` picks the threads, streams and prefetch; the
:class:`~speakerembed._engine.preparation.Preparer` runs steps 1 to 4 on each input; the windows
are packed into encoder batches of at most ``Pipeline.max_windows_per_batch`` windows, across
utterances, so memory stays bounded however many inputs a call has (steps 5 to 7:
:mod:`speakerembed._engine.encoding`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import threading
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, BinaryIO, Literal, Union, overload

import numpy as np

from ._engine.log_summary import SkippedInputs
from ._engine.prefetch import prefetch, torch_threads
from ._engine.preparation import describe_inputs, per_input_rates
from ._engine.recorder import NULL_RECORDER, Recorder
from ._engine.runner import Engine
from ._engine.schedule import NO_OVERRIDES, Overrides
from .chatterbox_compat import ChatterboxAPI
from .config import Pipeline
from .errors import AudioError, ConfigError, SpeakerEmbedError
from .stages.consolidate import utt_to_spk_embed

if TYPE_CHECKING:
    import numpy.typing as npt
    import torch
    from prometheus_client import CollectorRegistry

    from ._engine.preparation import Prepared
    from .stages.encoder import EncoderImpl, ModuleEncoder, Precision, ResolvedPrecision
    from .weights import WeightsInfo

__all__ = ["AudioInput", "EmbeddingResult", "Failure", "SpeakerEmbedder"]

logger = logging.getLogger("speakerembed")

AudioInput = Union[str, "os.PathLike[str]", bytes, "BinaryIO", "npt.NDArray[Any]", "torch.Tensor"]
"""One utterance: a file path, an encoded file (bytes or a binary file object), an array or a tensor."""


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


class SpeakerEmbedder(ChatterboxAPI):
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
        _overrides: Overrides | None = None,
    ) -> None:
        from .stages import encoder as enc

        if pipeline is not None and not isinstance(pipeline, Pipeline):
            raise ConfigError(
                f"pipeline={pipeline!r} is not a speakerembed.Pipeline; pass Pipeline(...) or None"
            )
        self.pipeline = pipeline if pipeline is not None else Pipeline()
        self._recorder: Recorder = recorder_for(registry)
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
        if _overrides is not None and not isinstance(_overrides, Overrides):
            raise ConfigError(f"_overrides={_overrides!r} is not a speakerembed._engine.schedule.Overrides")
        # The engine every call is handed to (internal: speakerembed._engine, not a stable API).
        self.engine = Engine(self._encoder, self.device, self._recorder, _overrides or NO_OVERRIDES)

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
        result: npt.NDArray[np.float32] | EmbeddingResult = run_call(
            self, "embed_utterances", inputs, sample_rate, pipeline, errors, self._recorder
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
        result: npt.NDArray[np.float32] = run_call(
            self, "embed_speaker", inputs, sample_rate, pipeline, "raise", self._recorder
        )
        return result

    def _embed_as(
        self, operation: str, inputs: object, sample_rate: object, pipeline: Pipeline
    ) -> npt.NDArray[np.float32]:
        """Utterance rows, timed and counted in the metrics as ``operation`` (the mixin's calls)."""
        result: npt.NDArray[np.float32] = run_call(
            self, operation, inputs, sample_rate, pipeline, "raise", self._recorder
        )
        return result


def run_call(
    embedder: SpeakerEmbedder,
    operation: str,
    inputs: object,
    sample_rate: object,
    pipeline: Pipeline | None,
    errors: str,
    rec: Recorder,
) -> Any:
    """Run one call (``operation``) of ``embedder`` with the recorder ``rec``: the hand-off.

    :meth:`SpeakerEmbedder.embed_utterances`, :meth:`~SpeakerEmbedder.embed_speaker` and the
    module-level functions of :mod:`speakerembed.api` (which record to their own registry) all
    come here: the inputs are checked, :func:`~speakerembed._engine.schedule.plan` picks the
    schedule, and the embedder's engine prepares and encodes them.
    """
    if errors not in ("raise", "skip"):
        raise ConfigError(f"errors={errors!r} is not 'raise' or 'skip'")
    if pipeline is not None and not isinstance(pipeline, Pipeline):
        raise ConfigError(f"pipeline={pipeline!r} is not a speakerembed.Pipeline; pass Pipeline(...) or None")
    pipe = pipeline if pipeline is not None else embedder.pipeline
    start = time.perf_counter()
    rec.in_progress(operation, 1)
    ok = False
    skips = SkippedInputs(logger)  # the call's failures: logs the first few, then a count
    prepared: Iterator[Prepared] | None = None
    try:
        items = describe_inputs(inputs)
        rates = per_input_rates(sample_rate, len(items))
        failures: list[Failure] = skips

        def skip(index: int, source: str, error: SpeakerEmbedError) -> None:
            skips.skipped(error)  # logs the first few, then counts (summarised when the call ends)
            failures.append(Failure(index, source, error))

        on_failure = skip if errors == "skip" else None
        # One utterance streams too: its last windows are shared out between the streams
        # (_engine/streams.py), so one call would run those pieces one after another.
        schedule = embedder.engine.schedule(len(items))
        # On a GPU, many files are prepared in worker processes (_engine/processes.py), which
        # already run ahead of the encoder: no prefetch thread then.
        processes = embedder.engine.prepare_processes(items, pipe)
        prepared = embedder.engine.prepare_all(
            items, rates, pipe, rec, on_failure, schedule.prepare_threads, processes
        )
        if len(items) == 1:
            # One input: prepared first, it may run as one encoder call (Engine.one_input).
            prepared, schedule = embedder.engine.one_input(prepared, schedule, pipe)
        elif schedule.prefetch_depth > 0 and processes == 0:
            # Prepare the next utterances while the encoder runs (see _engine/prefetch.py).
            prepared = prefetch(prepared, schedule.prefetch_depth)
        kept: dict[int, float] = {}
        with torch_threads(schedule.encoder_threads):
            embeds = embedder.engine.encode(
                prepared, pipe, on_failure=on_failure, kept=kept, rec=rec, schedule=schedule
            )
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
        close = getattr(prepared, "close", None)
        if close is not None:
            close()  # now, not when the traceback goes: worker processes stop here
        skips.summarise()
        rec.in_progress(operation, -1)
        rec.call(operation, time.perf_counter() - start, ok)


def _module_info(module: Any) -> WeightsInfo:
    from .weights import WeightsInfo

    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return WeightsInfo("instance", None, digest.hexdigest())


_recorders_lock = threading.Lock()


def recorder_for(registry: object) -> Recorder:
    """The recorder for ``registry`` (one per registry, shared), or the null one for ``None``."""
    if registry is None:
        return NULL_RECORDER
    from .metrics import recorder_for_registry

    with _recorders_lock:
        return recorder_for_registry(registry)
