"""Typed, frozen configuration of the preprocessing and windowing pipeline.

The stages run in this order: load, convert to float32, downmix to mono, then **resample** and
**trim** in the order that ``Pipeline.order`` names, then the mel, the partial windows, the
encoder and the consolidation.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Literal, get_args

from .errors import ConfigError

__all__ = [
    "DEFAULT_WINDOWS_PER_BATCH",
    "MODEL_SAMPLE_RATE",
    "Order",
    "Pipeline",
    "Precision",
    "ResampleDevice",
    "Resampler",
    "Vad",
]

#: The encoder's sample rate, in Hz. Every utterance is resampled to it.
MODEL_SAMPLE_RATE = 16_000
#: Mel hop, in samples at :data:`MODEL_SAMPLE_RATE` (10 ms).
MEL_HOP_LENGTH = 160

Order = Literal["resample_trim", "trim_resample"]
"""``"resample_trim"``: resample to 16 kHz, then trim (Chatterbox's order).
``"trim_resample"``: trim at the input's own rate, then resample what is left."""

Resampler = Literal["soxr_hq", "kaiser_fast", "polyphase", "torchaudio"]
"""``"soxr_hq"``: libsoxr, high quality (the default; what Chatterbox's TTS conditioning uses).
``"kaiser_fast"``: resampy's kaiser_fast filter, as librosa calls it in Chatterbox's
``embeds_from_wavs`` (needs ``speakerembed[kaiser]``).
``"polyphase"``: :func:`scipy.signal.resample_poly`.
``"torchaudio"``: torchaudio's windowed-sinc algorithm with a cached kernel, computed with torch,
on the CPU or on the embedder's device."""

ResampleDevice = Literal["cpu", "device", "auto"]
"""Where the ``"torchaudio"`` resampler runs: on the CPU, on the embedder's device, or ``"auto"``
(on the device when it is a GPU and the batch holds enough audio to pay for the copy)."""

# The range of every numeric field, checked when a Pipeline is made (see the class docstring).
#: Largest ``top_db``: float32 audio spans about 150 dB, so beyond this only digital silence is cut.
MAX_TOP_DB = 200.0
#: Largest ``trim_frame_length`` (and ``trim_hop_length``), in samples at 16 kHz (4 s).
MAX_TRIM_LENGTH = 2**16
#: Largest ``partial_frames`` (10 s windows; Chatterbox uses 160, 1.6 s).
MAX_PARTIAL_FRAMES = 1000
#: ``rate`` range, in windows per second: above 100 (one window per mel frame) the step is 0.
MIN_RATE, MAX_RATE = 0.05, 100.0
#: Windows per encoder batch when ``Pipeline.max_windows_per_batch`` is ``None``, by device:
#: ``"cpu"``, and ``"gpu"`` for any other. On a CPU the LSTM's time per window is flat from
#: about 24 windows on, and larger batches only take more memory; on a GPU the 160 steps of
#: the LSTM run one after another whatever the batch, so throughput grows with it: on an H200
#: the encoder alone ran 18,895x real time at 64 windows, 66,659x at 256, 194,865x at 1,024 and
#: 394,495x at 4,096, and the whole pipeline 4,584x, 6,038x (1,024) and 5,911x (4,096), bound by
#: the CPU from 1,024 on (docs/performance.rst, "GPU"). ``"cpu_stream"`` is for each call of a
#: CPU encoder run as one-thread streams (speakerembed._engine.streams): on the 2-core dev host, 32
#: windows per call ran the pipeline at 44.1 and 16 kHz in about 4 % less time than 16 or 64
#: (medians of five alternating rounds; 8 was slower still).
DEFAULT_WINDOWS_PER_BATCH = {"cpu": 64, "cpu_stream": 32, "gpu": 1024}
#: Largest ``max_windows_per_batch``.
MAX_WINDOWS_PER_BATCH = 2**16
#: Largest ``min_duration_s``, ``max_duration_s`` and ``stream_min_duration_s``, in seconds (about
#: 116 days: longer than any file libsndfile can hold at 16 kHz).
MAX_DURATION_S = 1e7
Vad = Literal["silero"]
"""``"silero"``: keep only the speech that Silero VAD finds (:mod:`speakerembed.stages.vad`, needs
``speakerembed[vad]``) instead of trimming the edges. ``None`` (or ``"none"``) trims the edges,
as Chatterbox does."""

Precision = Literal["fp32", "bf16", "auto"]
"""The encoder's precision, as callers ask for it: ``"auto"`` resolves to one of the other two
(:func:`speakerembed.stages.encoder.resolve_precision`)."""

_ORDERS: tuple[str, ...] = get_args(Order)
_RESAMPLERS: tuple[str, ...] = get_args(Resampler)
_RESAMPLE_DEVICES: tuple[str, ...] = get_args(ResampleDevice)


def _show(value: object) -> str:
    """``repr(value)``, clipped: a message must stay one readable line."""
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:30]}...({len(text)} characters)"


def _is_real(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclasses.dataclass(frozen=True)
class Pipeline:
    """How audio becomes encoder input: resampling, trimming and partial windows.

    Every field is validated when the Pipeline is made, against the range given below; an
    invalid value raises :class:`~speakerembed.ConfigError` that names the field and the range.
    Integers must be ``int`` and numbers ``int`` or ``float`` (not ``bool``), and finite.

    Parameters
    ----------
    order : {"resample_trim", "trim_resample"}
        Which runs first. ``"resample_trim"`` is Chatterbox's order. Trimming always runs at the
        sample rate the audio has at that point.
    resampler : {"soxr_hq", "kaiser_fast", "polyphase", "torchaudio"}
        The resampling method; see :data:`~speakerembed.config.Resampler`. ``"kaiser_fast"``
        gives exact parity with Chatterbox's ``VoiceEncoder.embeds_from_wavs``.
    resample_device : {"cpu", "device", "auto"}
        Where the ``"torchaudio"`` resampler runs. Other resamplers always run on the CPU.
    top_db : float or None
        In (0, 200]. Trim leading and trailing audio quieter than ``top_db`` decibels below the
        loudest frame, as :func:`librosa.effects.trim` does. Chatterbox uses 20. ``None`` turns
        trimming off.
    trim_frame_length, trim_hop_length : int
        In [1, 65536], the hop no larger than the frame. Frame and hop of the trimming energy, in
        samples at 16 kHz (librosa's defaults, 2048 and 512). At another rate they are scaled to
        keep the same duration.
    partial_frames : int
        In [1, 1000]. Mel frames per partial window (160 frames, 1.6 s, in Chatterbox).
    rate : float or None
        In [0.05, 100]. Partial windows per second of audio (Chatterbox: 1.3). ``None`` uses
        ``overlap``. The step between windows, ``round(100 / rate)`` frames, must be at most
        ``partial_frames``.
    overlap : float
        In [0, 1). Overlap between consecutive windows, used only when ``rate`` is ``None``; the
        step, ``round(partial_frames * (1 - overlap))`` frames, must be at least 1.
    min_coverage : float
        In (0, 1]. The last window is kept when at least this fraction of it holds audio.
    max_windows_per_batch : int or None
        In [1, 65536]. Most partial windows per encoder forward pass; bounds memory. ``None``
        (the default) picks by the encoder's device (:meth:`windows_per_batch`): 64 on a CPU
        (32 per call where the encoder runs as one-thread streams, the default on a CPU of two
        cores or more),
        1024 on a GPU, where the LSTM's 160 steps run one after another whatever the batch, so
        its throughput grows with the batch (see
        ``speakerembed.config.DEFAULT_WINDOWS_PER_BATCH``). The batch does not change the
        embeddings.
    min_duration_s : float
        In [0, 1e7]. Shortest audio accepted after trimming, in seconds. The encoder reads 1.6 s
        windows, and below 0.25 s a window is more than 84 % zero padding, so its embedding says
        more about the padding than the voice.
    max_duration_s : float or None
        In (0, 1e7], and at least ``min_duration_s``. Longest input accepted, in seconds, checked
        before the audio is decoded or resampled, so that a huge input raises
        :class:`~speakerembed.InputTooLongError` instead of allocating gigabytes. ``None`` for no
        limit.
    stream_min_duration_s : float or None
        In [0, 1e7].
        Files at least this long (by their header) are embedded by the streaming path of
        :mod:`speakerembed.stages.longform`: decoded, resampled, trimmed and windowed in blocks, in memory
        that does not grow with their length. It matches the in-memory path to a cosine above
        0.9999. It applies to files that libsndfile reads, with ``resampler="soxr_hq"`` or 16 kHz
        input. ``None`` never streams. With ``vad="silero"`` nothing streams.
    vad : {"silero"} or None
        ``None`` (default, Chatterbox's behaviour) trims the leading and trailing silence with
        ``top_db``. ``"silero"`` runs Silero VAD in trimming's place and keeps only the speech,
        padded (see :mod:`speakerembed.stages.vad`); ``top_db`` is then not used. ``"none"`` is
        accepted for ``None``.
    vad_threshold : float
        Silero's speech probability threshold, in (0, 1) (Silero's default, 0.5).
    vad_pad_s : float
        Seconds of audio kept on each side of every speech segment (default 0.1).
    min_speech_s : float
        With ``vad="silero"``, refuse an input with less speech than this, in seconds, before
        padding (default 0.5).

    Examples
    --------
    >>> from speakerembed import Pipeline
    >>> Pipeline().order
    'resample_trim'
    >>> Pipeline(order="trim_resample", top_db=30).top_db
    30
    """

    order: Order = "resample_trim"
    resampler: Resampler = "soxr_hq"
    resample_device: ResampleDevice = "cpu"
    top_db: float | None = 20
    trim_frame_length: int = 2048
    trim_hop_length: int = 512
    partial_frames: int = 160
    rate: float | None = 1.3
    overlap: float = 0.5
    min_coverage: float = 0.8
    max_windows_per_batch: int | None = None
    min_duration_s: float = 0.25
    max_duration_s: float | None = None
    stream_min_duration_s: float | None = 600.0
    vad: Vad | None = None
    vad_threshold: float = 0.5
    vad_pad_s: float = 0.1
    min_speech_s: float = 0.5

    def __post_init__(self) -> None:
        self._check_choice("order", _ORDERS)
        self._check_choice("resampler", _RESAMPLERS)
        self._check_choice("resample_device", _RESAMPLE_DEVICES)
        if self.top_db is not None:
            self._check_number(
                "top_db",
                low=0.0,
                high=MAX_TOP_DB,
                low_open=True,
                fix=f"a level in (0, {MAX_TOP_DB:g}] dB, e.g. 20, or top_db=None to turn trimming off",
            )
        self._check_int("trim_frame_length", MAX_TRIM_LENGTH)
        self._check_int("trim_hop_length", MAX_TRIM_LENGTH)
        self._check_int("partial_frames", MAX_PARTIAL_FRAMES)
        if self.max_windows_per_batch is not None:
            self._check_int("max_windows_per_batch", MAX_WINDOWS_PER_BATCH)
        if self.trim_hop_length > self.trim_frame_length:
            raise ConfigError(
                f"Pipeline.trim_hop_length={self.trim_hop_length} is larger than "
                f"trim_frame_length={self.trim_frame_length}; pass a hop no larger than the frame"
            )
        if self.rate is not None:
            self._check_number(
                "rate",
                low=MIN_RATE,
                high=MAX_RATE,
                fix=f"windows per second in [{MIN_RATE:g}, {MAX_RATE:g}], e.g. 1.3, Chatterbox's rate",
            )
        self._check_number("overlap", low=0.0, high=1.0, high_open=True, fix="a value in [0, 1)")
        self._check_number("min_coverage", low=0.0, high=1.0, low_open=True, fix="a value in (0, 1]")
        self._check_number(
            "min_duration_s",
            low=0.0,
            high=MAX_DURATION_S,
            fix="a duration in seconds in [0, 1e7], e.g. 0.25",
        )
        if self.max_duration_s is not None:
            self._check_number(
                "max_duration_s",
                low=0.0,
                high=MAX_DURATION_S,
                low_open=True,
                fix="a duration in seconds in (0, 1e7], or max_duration_s=None for no limit",
            )
            if self.max_duration_s < self.min_duration_s:
                raise ConfigError(
                    f"Pipeline.max_duration_s={self.max_duration_s} is below "
                    f"min_duration_s={self.min_duration_s}; no input could pass both: raise max_duration_s "
                    "or lower min_duration_s"
                )
        if self.stream_min_duration_s is not None:
            self._check_number(
                "stream_min_duration_s",
                low=0.0,
                high=MAX_DURATION_S,
                fix="a duration in seconds in [0, 1e7], or None",
            )
        vad: object = self.vad
        if vad == "none":
            object.__setattr__(self, "vad", None)
        if self.vad is not None:
            self._check_choice("vad", ("silero",))
        self._check_number(
            "vad_threshold",
            low=0.0,
            high=1.0,
            low_open=True,
            high_open=True,
            fix="a value in (0, 1), e.g. 0.5",
        )
        self._check_number("vad_pad_s", low=0.0, high=MAX_DURATION_S, fix="a duration in seconds, e.g. 0.1")
        self._check_number(
            "min_speech_s", low=0.0, high=MAX_DURATION_S, fix="a duration in seconds, e.g. 0.5"
        )
        step = self.frame_step
        if self.rate is None and step < 1:
            high = 1 - 0.5 / self.partial_frames
            raise ConfigError(
                f"Pipeline.overlap={self.overlap} gives a window step of {step} frames with "
                f"partial_frames={self.partial_frames}; pass an overlap below {high:.6g}"
            )
        if not 0 < step <= self.partial_frames:
            low = MODEL_SAMPLE_RATE / (MEL_HOP_LENGTH * (self.partial_frames + 0.5))
            raise ConfigError(
                f"Pipeline.rate={self.rate} gives a window step of {step} frames, outside "
                f"1..{self.partial_frames}; pass a rate of at least {low:.3f} windows per second "
                f"and well below {MODEL_SAMPLE_RATE / MEL_HOP_LENGTH:.0f}"
            )

    # -- derived values -------------------------------------------------------------------------

    @property
    def frame_step(self) -> int:
        """Mel frames between the starts of two partial windows."""
        if self.rate is None:
            return round(self.partial_frames * (1 - self.overlap))
        # Chatterbox divides by the partial length rather than the hop; both are 160 there, and
        # the hop is what the formula means.
        return round((MODEL_SAMPLE_RATE / self.rate) / MEL_HOP_LENGTH)

    def trim_frames_at(self, sample_rate: int) -> tuple[int, int]:
        """Trim frame and hop lengths, in samples, scaled to ``sample_rate``."""
        scale = sample_rate / MODEL_SAMPLE_RATE
        frame = max(1, round(self.trim_frame_length * scale))
        hop = max(1, round(self.trim_hop_length * scale))
        return frame, hop

    def windows_per_batch(self, device_type: str = "cpu", streams: int = 1) -> int:
        """Most windows per encoder batch for an encoder on ``device_type`` (``"cpu"``, ``"cuda"``...).

        ``max_windows_per_batch`` when it is set, else
        ``speakerembed.config.DEFAULT_WINDOWS_PER_BATCH``: ``"cpu_stream"`` for a CPU encoder
        laid out for ``streams`` one-thread streams (2 or more: the default on two cores or more; see
        ``speakerembed._engine.streams``).

        Examples
        --------
        >>> Pipeline().windows_per_batch("cpu"), Pipeline().windows_per_batch("cuda")
        (64, 1024)
        >>> Pipeline().windows_per_batch("cpu", streams=2)
        32
        >>> Pipeline(max_windows_per_batch=16).windows_per_batch("cuda")
        16
        """
        if self.max_windows_per_batch is not None:
            return self.max_windows_per_batch
        if device_type != "cpu":
            return DEFAULT_WINDOWS_PER_BATCH["gpu"]
        return DEFAULT_WINDOWS_PER_BATCH["cpu_stream" if streams > 1 else "cpu"]

    def replace(self, **changes: object) -> Pipeline:
        """Return a copy with some fields changed, validated again."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    # -- presets --------------------------------------------------------------------------------

    @classmethod
    def chatterbox(cls) -> Pipeline:
        """The preprocessing of Chatterbox's ``VoiceEncoder.embeds_from_wavs``, exactly.

        It resamples with resampy's ``kaiser_fast``, then trims at 20 dB. Use it for parity with
        embeddings made by Chatterbox itself.

        Audio that is not at 16 kHz needs resampy, which is optional: install it with
        ``pip install "speakerembed[kaiser]"`` (or ``pip install resampy``). Without it, such
        audio raises :class:`~speakerembed.BackendUnavailableError` that says so; 16 kHz audio
        is not resampled and needs nothing more.
        """
        return cls(order="resample_trim", resampler="kaiser_fast", top_db=20)

    # -- validation helpers ---------------------------------------------------------------------

    def _check_choice(self, name: str, choices: tuple[str, ...]) -> None:
        value = getattr(self, name)
        if value not in choices:
            options = ", ".join(repr(c) for c in choices)
            raise ConfigError(f"Pipeline.{name}={_show(value)} is not one of {options}; pass one of them")

    def _check_int(self, name: str, high: int) -> None:
        value = getattr(self, name)
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= high:
            raise ConfigError(
                f"Pipeline.{name}={_show(value)} must be an integer in [1, {high}]; pass an int in that range"
            )

    def _check_number(
        self,
        name: str,
        *,
        low: float | None = None,
        high: float | None = None,
        low_open: bool = False,
        high_open: bool = False,
        fix: str,
    ) -> None:
        value = getattr(self, name)
        try:
            ok = _is_real(value) and math.isfinite(value)
        except OverflowError:  # an int too large for a float
            ok = False
        if ok and low is not None:
            ok = value > low if low_open else value >= low
        if ok and high is not None:
            ok = value < high if high_open else value <= high
        if not ok:
            raise ConfigError(f"Pipeline.{name}={_show(value)} is invalid; pass {fix}")
