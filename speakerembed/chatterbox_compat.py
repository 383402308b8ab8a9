"""Chatterbox's ``VoiceEncoder`` API, with Chatterbox's meaning for every argument.

:class:`~speakerembed.SpeakerEmbedder` exposes these as methods, so that code written against
chatterbox-tts 0.1.7's ``VoiceEncoder`` runs unchanged on an embedder:

=====================================================  =============================================
``SpeakerEmbedder`` method                             chatterbox-tts 0.1.7
=====================================================  =============================================
``embeds_from_wavs(wavs, sample_rate, as_spk,``        ``VoiceEncoder.embeds_from_wavs``
``batch_size, trim_top_db, **kwargs)``
``embeds_from_mels(mels, mel_lens, as_spk,``           ``VoiceEncoder.embeds_from_mels``
``batch_size, **kwargs)``
``utt_to_spk_embed(utt_embeds)``                       ``VoiceEncoder.utt_to_spk_embed``
``voice_similarity(embeds_x, embeds_y)``               ``VoiceEncoder.voice_similarity``
``embed_conditioning(path)``                           ``T3Cond.speaker_emb``, as
                                                       ``ChatterboxTTS.prepare_conditionals`` makes it
=====================================================  =============================================

Each argument maps onto a :class:`~speakerembed.Pipeline` field (:meth:`Pipeline.replace
<speakerembed.Pipeline.replace>`), and the embedder's own pipeline runs:

* ``sample_rate`` other than 16 kHz: resampled with resampy's ``kaiser_fast``, as Chatterbox's
  ``librosa.resample(..., res_type="kaiser_fast")`` (``resampler="kaiser_fast"``, which needs
  ``pip install "speakerembed[kaiser]"``); at 16 kHz nothing is resampled.
* ``trim_top_db``: the trim threshold in dB (``top_db``); ``None`` or ``0`` does not trim, as
  Chatterbox's ``if trim_top_db:`` does.
* ``rate``: partial windows per second (``rate``); ``embeds_from_wavs`` uses 1.3 when it is not
  passed, ``embeds_from_mels`` uses ``None``, which steps by ``overlap`` instead.
* ``overlap`` (default 0.5) and ``min_coverage`` (default 0.8): the fields of the same names.
* ``batch_size``: the most windows per encoder pass (``max_windows_per_batch``). Chatterbox's
  ``None`` (or ``0``) means one pass over every window; here it keeps the pipeline's bounded
  ``max_windows_per_batch``, which gives the same embeddings in bounded memory.

Any other keyword raises :class:`~speakerembed.ConfigError` naming it, where Chatterbox would raise
``TypeError`` deep inside. The embedder's ``min_duration_s`` and ``max_duration_s`` still apply:
an input that would give the embedding of padding is refused with an error that names it.
"""

from __future__ import annotations

import operator
import os
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np

from .config import MEL_HOP_LENGTH, MODEL_SAMPLE_RATE, Pipeline
from .errors import AudioError, ConfigError, SpeakerEmbedError
from .stages.consolidate import cosine_similarity, utt_to_spk_embed

if TYPE_CHECKING:
    import numpy.typing as npt
    import torch

    from ._engine.runner import Engine

    #: One utterance, as :data:`speakerembed.embedder.AudioInput`.
    AudioInput = str | os.PathLike[str] | bytes | BinaryIO | npt.NDArray[Any] | torch.Tensor

__all__ = [
    "CONDITIONING_SAMPLE_RATE",
    "INFERENCE_KWARGS",
    "ChatterboxAPI",
    "chatterbox_pipeline",
    "voice_similarity",
]

#: The rate ``ChatterboxTTS.prepare_conditionals`` loads its reference audio at (S3Gen's rate),
#: before it resamples to the encoder's 16 kHz.
CONDITIONING_SAMPLE_RATE = 24_000

#: The keywords Chatterbox's ``embeds_from_wavs`` and ``embeds_from_mels`` pass on to
#: ``VoiceEncoder.inference``, and their defaults there.
INFERENCE_KWARGS: Mapping[str, float | None] = {"overlap": 0.5, "rate": None, "min_coverage": 0.8}

# Chatterbox's fixed preprocessing: resample then trim, librosa.effects.trim's frames, 160-frame
# windows (VoiceEncConfig.ve_partial_frames).
_FIXED: Mapping[str, Any] = {
    "order": "resample_trim",
    "trim_frame_length": 2048,
    "trim_hop_length": 512,
    "partial_frames": 160,
}
# Pipeline field -> the keyword the caller used, for error messages in the caller's terms.
_KEYWORD_OF = {
    "top_db": "trim_top_db",
    "rate": "rate",
    "overlap": "overlap",
    "min_coverage": "min_coverage",
    "max_windows_per_batch": "batch_size",
}


def chatterbox_pipeline(
    base: Pipeline,
    *,
    function: str = "embeds_from_wavs",
    batch_size: object = 32,
    trim_top_db: object = 20,
    resampler: str = "kaiser_fast",
    default_rate: float | None = 1.3,
    inference: Mapping[str, object] | None = None,
) -> Pipeline:
    """The :class:`~speakerembed.Pipeline` that gives Chatterbox's arguments their meaning.

    Parameters
    ----------
    base : Pipeline
        Supplies the fields Chatterbox has no argument for (``min_duration_s``,
        ``max_duration_s``, ``stream_min_duration_s``, ``resample_device``).
    function : str
        The caller's name, for error messages.
    batch_size : int or None
        Chatterbox's ``batch_size``; ``None`` or 0 keeps ``base.max_windows_per_batch``.
    trim_top_db : float or None
        Chatterbox's ``trim_top_db``; ``None`` or 0 turns trimming off.
    resampler : str
        The resampler (``"kaiser_fast"`` for ``embeds_from_wavs``).
    default_rate : float or None
        The ``rate`` used when ``kwargs`` has none (1.3 in ``embeds_from_wavs``).
    inference : mapping or None
        The ``**kwargs`` for ``VoiceEncoder.inference``: ``overlap``, ``rate`` and
        ``min_coverage``.

    Returns
    -------
    Pipeline

    Raises
    ------
    ConfigError
        For an unknown keyword, or a value out of range, named as the caller spelled it.

    Examples
    --------
    >>> from speakerembed import Pipeline
    >>> from speakerembed.chatterbox_compat import chatterbox_pipeline
    >>> p = chatterbox_pipeline(Pipeline(), trim_top_db=None, batch_size=8, inference={"rate": 2.0})
    >>> p.rate, p.top_db, p.max_windows_per_batch, p.resampler
    (2.0, None, 8, 'kaiser_fast')
    """
    kwargs = dict(inference or {})
    unknown = sorted(set(kwargs) - set(INFERENCE_KWARGS))
    if unknown:
        names = ", ".join(f"{k}=" for k in unknown)
        raise ConfigError(
            f"{function}: unknown keyword argument(s) {names}; Chatterbox's VoiceEncoder.inference "
            "takes overlap=, rate= and min_coverage="
        )
    fields: dict[str, Any] = dict(_FIXED)
    fields["resampler"] = resampler
    fields["top_db"] = trim_top_db if trim_top_db else None  # Chatterbox: `if trim_top_db:`
    fields["overlap"] = kwargs.get("overlap", INFERENCE_KWARGS["overlap"])
    fields["rate"] = kwargs.get("rate", default_rate)
    fields["min_coverage"] = kwargs.get("min_coverage", INFERENCE_KWARGS["min_coverage"])
    fields["max_windows_per_batch"] = _batch_size(function, batch_size, base.max_windows_per_batch)
    try:
        return base.replace(**fields)
    except ConfigError as exc:
        message = str(exc)
        for field, keyword in _KEYWORD_OF.items():
            message = message.replace(f"Pipeline.{field}=", f"{keyword}=")
        raise ConfigError(f"{function}: {message}") from None


def _batch_size(function: str, batch_size: object, default: int | None) -> int | None:
    if batch_size is None:
        return default
    try:
        if isinstance(batch_size, bool):
            raise TypeError
        value = operator.index(batch_size)  # type: ignore[arg-type]
    except TypeError:
        raise ConfigError(
            f"{function}: batch_size={batch_size!r} is not an integer; pass a number of windows "
            "per encoder pass, e.g. 32, or None"
        ) from None
    if value < 0:
        raise ConfigError(f"{function}: batch_size={batch_size!r} is negative; pass e.g. 32, or None")
    return value if value > 0 else default


def _mels_and_lengths(mels: object, mel_lens: object) -> list[tuple[torch.Tensor, int]]:
    """Each mel as a float32 CPU tensor (frames, 40), with the frames that count."""
    import torch

    from .stages.load import is_tensor
    from .stages.mel import N_MELS

    def as_tensor(x: object, name: str) -> torch.Tensor:
        try:
            t = x.detach().cpu() if is_tensor(x) else torch.from_numpy(np.asarray(x))  # type: ignore[attr-defined]
        except (TypeError, ValueError) as exc:
            raise AudioError(f"is not an array of numbers ({exc})", source=name, stage="mel") from None
        if not (t.is_floating_point() or t.dtype in (torch.int16, torch.int32, torch.int64)):
            raise AudioError(f"has dtype {t.dtype}; pass a float mel spectrogram", source=name, stage="mel")
        return t.to(torch.float32)

    if isinstance(mels, (list, tuple)):
        if not mels:
            raise AudioError("is empty; pass at least one mel spectrogram", source="mels", stage="mel")
        items = [as_tensor(m, f"mels[{i}]") for i, m in enumerate(mels)]
        lengths = [int(m.shape[0]) if m.ndim >= 1 else 0 for m in items]
    else:
        batch = as_tensor(mels, "mels")
        if batch.ndim != 3:
            raise AudioError(
                f"has shape {tuple(batch.shape)}; pass a (B, T, {N_MELS}) batch with mel_lens, or a "
                f"list of (n_frames, {N_MELS}) arrays",
                source="mels",
                stage="mel",
            )
        items = list(batch)
        lengths = _lengths(mel_lens, len(items), int(batch.shape[1]))
    out = []
    for i, (mel, n) in enumerate(zip(items, lengths, strict=True)):
        name = f"mels[{i}]"
        if mel.ndim != 2 or mel.shape[1] != N_MELS:
            raise AudioError(
                f"has shape {tuple(mel.shape)}; pass (n_frames, {N_MELS}), frames first "
                "(Chatterbox's melspectrogram(wav, hp).T)",
                source=name,
                stage="mel",
            )
        if n < 1:
            raise AudioError("has no frames; pass at least one mel frame", source=name, stage="mel")
        if not bool(torch.isfinite(mel).all()):
            raise AudioError("holds NaN or Inf; pass a finite mel spectrogram", source=name, stage="mel")
        out.append((mel, n))
    return out


def _lengths(mel_lens: object, batch: int, frames: int) -> list[int]:
    if mel_lens is None:
        return [frames] * batch
    values = np.asarray(mel_lens.tolist() if hasattr(mel_lens, "tolist") else mel_lens)
    if values.shape != (batch,) or values.dtype.kind not in "iu":
        raise ConfigError(f"embeds_from_mels: mel_lens={mel_lens!r} must hold one integer per mel ({batch})")
    bad = [int(v) for v in values if not 1 <= v <= frames]
    if bad:
        raise ConfigError(
            f"embeds_from_mels: mel_lens holds {bad[:5]}, outside 1..{frames} (the batch's frames)"
        )
    return [int(v) for v in values]


def _windows(
    mel: torch.Tensor, n_frames: int, step: int, min_coverage: float, partial_frames: int
) -> tuple[torch.Tensor, int]:
    """Chatterbox's ``inference`` windows: counted from ``n_frames``, read from ``mel``."""
    import torch

    from .stages.windows import num_windows

    n_windows, target = num_windows(n_frames, step, min_coverage, partial_frames)
    mel = mel[:target]
    if mel.shape[0] < target:
        mel = torch.cat((mel, mel.new_zeros((target - mel.shape[0], mel.shape[1]))))
    return mel.unfold(0, partial_frames, step).transpose(1, 2), n_windows


def voice_similarity(embeds_x: npt.ArrayLike, embeds_y: npt.ArrayLike) -> float:
    """Chatterbox's ``VoiceEncoder.voice_similarity``: the cosine of two voices.

    Each side is one embedding, shape (256,), or utterance rows of one speaker, shape (N, 256),
    consolidated first with :func:`~speakerembed.utt_to_spk_embed`. For unit vectors, as every
    embedding speakerembed returns is, this is Chatterbox's dot product; it is
    :func:`~speakerembed.cosine_similarity`, which also normalises a side that is not unit.

    Returns
    -------
    float
        In [-1, 1].

    Examples
    --------
    >>> import numpy as np
    >>> from speakerembed.chatterbox_compat import voice_similarity
    >>> round(voice_similarity(np.eye(2)[0], np.eye(2)), 4)
    0.7071
    """
    return cosine_similarity(embeds_x, embeds_y)


def _relabel(label: str | None, source: str) -> str:
    """``input 0`` (from the one-input call) as the caller's ``input 3 (ref.wav)``."""
    if label is None or re.fullmatch(r"input 0( \(.*\))?", label):
        return source
    return label


class ChatterboxAPI:
    """Chatterbox's ``VoiceEncoder`` methods, for :class:`~speakerembed.SpeakerEmbedder` (a mixin).

    Each method maps Chatterbox's arguments onto a :class:`~speakerembed.Pipeline`
    (:func:`chatterbox_pipeline`) and runs the embedder's own calls, or, for mels, its engine.
    """

    if TYPE_CHECKING:
        pipeline: Pipeline
        engine: Engine

        def embed_utterances(  # noqa: D102 - SpeakerEmbedder documents it
            self,
            inputs: AudioInput | Sequence[AudioInput],
            *,
            sample_rate: int | Sequence[int] | None = None,
            pipeline: Pipeline | None = None,
        ) -> npt.NDArray[np.float32]: ...

        def embed_speaker(  # noqa: D102 - SpeakerEmbedder documents it
            self,
            inputs: AudioInput | Sequence[AudioInput],
            *,
            sample_rate: int | Sequence[int] | None = None,
            pipeline: Pipeline | None = None,
        ) -> npt.NDArray[np.float32]: ...

        def _embed_as(
            self, operation: str, inputs: object, sample_rate: object, pipeline: Pipeline
        ) -> npt.NDArray[np.float32]: ...

    def embeds_from_wavs(
        self,
        wavs: Sequence[Any] | npt.NDArray[Any],
        sample_rate: int,
        as_spk: bool = False,
        batch_size: int | None = 32,
        trim_top_db: float | None = 20,
        **kwargs: float | None,
    ) -> npt.NDArray[np.float32]:
        """Chatterbox's ``VoiceEncoder.embeds_from_wavs``.

        Parameters
        ----------
        wavs : sequence of numpy.ndarray, each shape (n_samples,), float
            The utterances (a 2-D array is read as one utterance per row, as Chatterbox reads it).
        sample_rate : int
            Their rate, in Hz. At any rate but 16 kHz they are resampled with ``kaiser_fast``.
        as_spk : bool
            Return one speaker embedding (:func:`~speakerembed.utt_to_spk_embed` of the rows).
        batch_size : int or None
            Most windows per encoder pass.
        trim_top_db : float or None
            Trim threshold in dB; ``None`` or 0 does not trim.
        **kwargs
            ``rate`` (default 1.3), ``overlap`` (0.5, used when ``rate=None``) and ``min_coverage``
            (0.8), as Chatterbox passes them to ``VoiceEncoder.inference``.

        Returns
        -------
        numpy.ndarray, shape (n_wavs, 256), float32, unit rows; or shape (256,) with ``as_spk``

        Raises
        ------
        ConfigError
            For an unknown keyword or a value out of range.
        AudioError
            For unusable audio, naming the input.
        BackendUnavailableError
            When the audio needs resampling and resampy is not installed.
        """
        pipe = chatterbox_pipeline(
            self.pipeline, batch_size=batch_size, trim_top_db=trim_top_db, inference=kwargs
        )
        inputs = list(wavs)
        if as_spk:
            return self.embed_speaker(inputs, sample_rate=sample_rate, pipeline=pipe)
        return self.embed_utterances(inputs, sample_rate=sample_rate, pipeline=pipe)

    def embeds_from_mels(
        self,
        mels: torch.Tensor | npt.NDArray[Any] | Sequence[Any],
        mel_lens: Sequence[int] | npt.NDArray[Any] | torch.Tensor | None = None,
        as_spk: bool = False,
        batch_size: int | None = 32,
        **kwargs: float | None,
    ) -> npt.NDArray[np.float32]:
        """Chatterbox's ``VoiceEncoder.embeds_from_mels``, on a :class:`~speakerembed.SpeakerEmbedder`.

        Parameters
        ----------
        mels : list of arrays or tensors, each shape (n_frames, 40); or a tensor or array, shape (B, T, 40)
            Power mel spectrograms as :func:`speakerembed.stages.mel.melspectrogram` (or Chatterbox's
            ``melspectrogram(wav, hp).T``) makes them, frames first.
        mel_lens : sequence of int or None
            With a (B, T, 40) batch, the number of frames of each; ``None`` means all ``T``. Ignored
            for a list, whose arrays carry their own lengths. As in Chatterbox, a window that runs past
            an utterance's length reads the batch's frames there (zeros, in a padded batch).
        as_spk : bool
            Return one speaker embedding instead of one row per mel.
        batch_size : int or None
            Most windows per encoder pass.
        **kwargs
            ``rate`` (default ``None``: step by ``overlap``), ``overlap`` (0.5) and ``min_coverage``
            (0.8).

        Returns
        -------
        numpy.ndarray, shape (B, 256), float32, unit rows; or shape (256,) with ``as_spk``

        Raises
        ------
        AudioError
            For a mel that is empty, not (n_frames, 40), or not finite, naming it.
        ConfigError
            For bad ``mel_lens``, an unknown keyword or a value out of range.
        """
        from ._engine.preparation import Prepared

        pipe = chatterbox_pipeline(
            self.pipeline,
            function="embeds_from_mels",
            batch_size=batch_size,
            trim_top_db=None,
            default_rate=None,
            inference=kwargs,
        )
        step, pf = pipe.frame_step, pipe.partial_frames
        prepared = []
        for index, (mel, n_frames) in enumerate(_mels_and_lengths(mels, mel_lens)):
            windows, n_windows = _windows(mel, n_frames, step, pipe.min_coverage, pf)
            seconds = n_frames * MEL_HOP_LENGTH / MODEL_SAMPLE_RATE
            prepared.append(Prepared(index, f"mels[{index}]", None, seconds, 0.0, iter([windows]), n_windows))
        embeds = self.engine.encode(prepared, pipe)
        rows = np.stack([embeds[i] for i in range(len(prepared))])
        return utt_to_spk_embed(rows) if as_spk else rows

    def embed_conditioning(
        self,
        inputs: AudioInput | Sequence[AudioInput],
        *,
        sample_rate: int | Sequence[int] | None = None,
    ) -> npt.NDArray[np.float32]:
        """The speaker embedding that Chatterbox TTS conditions on, for a reference recording.

        ``ChatterboxTTS.prepare_conditionals(path)`` (chatterbox-tts 0.1.7) loads the file at
        24 kHz with librosa (mono, soxr ``"soxr_hq"``), resamples that to 16 kHz (soxr again), and
        calls ``embeds_from_wavs([wav_16k], 16000)``: a 20 dB trim, rate 1.3, the mean of the windows,
        renormalised. The mean over utterances of that, **not** renormalised, is
        ``T3Cond.speaker_emb``. This runs the same chain. Only the embedder's weights, device,
        precision, ``min_duration_s``, ``max_duration_s`` and ``max_windows_per_batch`` apply: the rest
        of its pipeline is Chatterbox's.

        Parameters
        ----------
        inputs : path, numpy.ndarray, torch.Tensor, or a sequence of them
            The reference recording. Chatterbox takes one file; for several, the rows are averaged the
            same way (their mean, not renormalised).
        sample_rate : int, sequence of int, or None
            The rate of arrays and tensors, in Hz.

        Returns
        -------
        numpy.ndarray, shape (256,), float32
            Unit norm for one reference; shorter than 1 for several, as in Chatterbox.
            ``torch.from_numpy(cond)[None]`` is ``T3Cond.speaker_emb``, shape (1, 256).

        Raises
        ------
        AudioError
            For unusable audio, naming the input.
        """
        from ._engine.preparation import describe_inputs, per_input_rates
        from .stages.load import load_audio
        from .stages.resample import resample

        pipe = chatterbox_pipeline(self.pipeline, function="embed_conditioning", resampler="soxr_hq")
        items = describe_inputs(inputs)
        rows = []
        rates = per_input_rates(sample_rate, len(items))
        for index, (item, rate) in enumerate(zip(items, rates, strict=True)):
            source = f"input {index}"
            if isinstance(item, (str, os.PathLike)):
                source = f"{source} ({os.fspath(item)})"
            try:
                wav, sr = load_audio(item, rate, max_duration_s=pipe.max_duration_s, source=source)
                # librosa.load(path, sr=24000); embed_utterances then resamples to 16 kHz with soxr.
                wav_24k = resample(wav, sr, CONDITIONING_SAMPLE_RATE, "soxr_hq")
                # Timed and counted as its own operation ("embed_conditioning"), not embed_utterances.
                rows.append(self._embed_as("embed_conditioning", wav_24k, CONDITIONING_SAMPLE_RATE, pipe)[0])
            except SpeakerEmbedError as exc:
                exc.source = _relabel(exc.source, source)
                raise
        cond: npt.NDArray[np.float32] = np.mean(np.stack(rows), axis=0, dtype=np.float32)
        return cond

    #: Chatterbox's ``VoiceEncoder.utt_to_spk_embed``: :func:`speakerembed.utt_to_spk_embed`.
    utt_to_spk_embed = staticmethod(utt_to_spk_embed)

    @staticmethod
    def voice_similarity(embeds_x: npt.ArrayLike, embeds_y: npt.ArrayLike) -> float:
        """Chatterbox's ``VoiceEncoder.voice_similarity``: the cosine of two voices.

        See :func:`speakerembed.chatterbox_compat.voice_similarity`.
        """
        return voice_similarity(embeds_x, embeds_y)
