"""Prometheus metrics, recorded into a ``prometheus_client.CollectorRegistry`` that you pass in.

Pass ``registry=`` to :class:`~speakerembed.SpeakerEmbedder`,
:func:`~speakerembed.embed_speaker` or :func:`~speakerembed.embed_utterances`, and every call
records into it::

    from prometheus_client import CollectorRegistry, start_http_server

    registry = CollectorRegistry()
    embedder = SpeakerEmbedder("resemblyzer", registry=registry)
    start_http_server(9100, addr="127.0.0.1", registry=registry)

Without a registry nothing is recorded and ``prometheus_client`` is not imported. Nothing is
ever registered in ``prometheus_client.REGISTRY`` (the global default) unless you pass it in.

Every embedder and every call that uses the same registry shares one set of collectors (one
:class:`PrometheusRecorder` per registry), so there is no duplicate-registration error and the
counts add up.

The metrics follow Prometheus' guidance for instrumenting a library: one ``speakerembed_``
prefix, base units (seconds, bytes), ``_total`` on counters, histograms rather than summaries
(so they aggregate across instances), and labels whose values come from closed lists
(:data:`LABEL_VALUES`): never a file name, a path, a voice id or an exception's text. The series
that every process will have are created at zero when the recorder is made, so ``rate()`` and
ratios work from the first scrape.

:data:`CATALOGUE` lists every metric: its name, type, labels and help text. The docs' table and
the contract tests are made from it.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from ._engine.recorder import Recorder
from ._version import __version__
from .errors import (
    AudioError,
    BackendUnavailableError,
    ConfigError,
    InputTooLongError,
    SpeakerEmbedError,
    WeightsError,
    missing_backend,
)

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from .weights import WeightsInfo

__all__ = [
    "CATALOGUE",
    "DEVICES",
    "ERROR_TYPES",
    "LABEL_VALUES",
    "OPERATIONS",
    "OUTCOMES",
    "STAGES",
    "WEIGHTS_NAMES",
    "MetricSpec",
    "PrometheusRecorder",
    "error_type",
    "recorder_for_registry",
]

# -- closed label values ---------------------------------------------------------------------------

STAGES: tuple[str, ...] = ("load", "resample", "trim", "mel", "encode", "consolidate")
"""The pipeline stages, in the order the audio goes through them."""

DEVICES: tuple[str, ...] = ("cpu", "cuda", "mps", "other")
"""Device types. ``"other"`` stands for any torch device type that is not CPU, CUDA or MPS."""

OPERATIONS: tuple[str, ...] = ("embed_utterances", "embed_speaker", "embed_conditioning")
"""The public calls that are timed (``embed_conditioning`` once per reference recording)."""

OUTCOMES: tuple[str, ...] = ("success", "error")
"""How an utterance or a call ended."""

ERROR_TYPES: tuple[str, ...] = ("audio", "too_long", "config", "weights", "backend", "internal")
"""The ``error_type`` label: one value per error class (see :func:`error_type`)."""

WEIGHTS_NAMES: tuple[str, ...] = (
    "chatterbox",
    "chatterbox-turbo",
    "chatterbox-multilingual",
    "resemblyzer",
    "file",
    "instance",
)
"""The ``weights`` label of ``speakerembed_build_info``: a preset name, ``"file"`` for a local
file (never its path), or ``"instance"`` for an encoder module passed in."""

LABEL_VALUES: Mapping[str, tuple[str, ...]] = {
    "stage": STAGES,
    "device": DEVICES,
    "operation": OPERATIONS,
    "outcome": OUTCOMES,
    "error_type": ERROR_TYPES,
    "weights": WEIGHTS_NAMES,
    "version": (__version__,),
}
"""Every label, and the only values it takes."""

_ERROR_CLASSES: tuple[tuple[type[BaseException], str], ...] = (
    (InputTooLongError, "too_long"),  # before AudioError, its base class
    (AudioError, "audio"),
    (ConfigError, "config"),
    (WeightsError, "weights"),
    (BackendUnavailableError, "backend"),
    (SpeakerEmbedError, "internal"),
)


def error_type(error: BaseException) -> str:
    """Map an error to its ``error_type`` label, a value of :data:`ERROR_TYPES`.

    Parameters
    ----------
    error : BaseException
        An error raised while embedding.

    Returns
    -------
    str
        ``"too_long"`` for :class:`~speakerembed.InputTooLongError`, ``"audio"`` for other
        :class:`~speakerembed.AudioError`, ``"config"``, ``"weights"`` and ``"backend"`` for
        :class:`~speakerembed.ConfigError`, :class:`~speakerembed.WeightsError` and
        :class:`~speakerembed.BackendUnavailableError`, and ``"internal"`` for anything else.

    Examples
    --------
    >>> from speakerembed import InputTooLongError
    >>> from speakerembed.metrics import error_type
    >>> error_type(InputTooLongError("too long")), error_type(KeyError("x"))
    ('too_long', 'internal')
    """
    for cls, name in _ERROR_CLASSES:
        if isinstance(error, cls):
            return name
    return "internal"


# -- the catalogue ---------------------------------------------------------------------------------

# Bucket edges, fitted to stage and call times measured on the LibriSpeech test-other set
# (60 utterances, 2-20 s, 16 kHz) with the Resemblyzer weights on a 2-core CPU. With one torch
# thread: load 1-14 ms, trim 0.3-13 ms, mel 0.6-24 ms, consolidate 0.06-4 ms, encode 30 ms-1.1 s
# per batch of up to 64 windows; embed_utterances calls 33-190 ms, embed_speaker calls of ten
# utterances 0.8-1.6 s. On the same machine under heavy contention every figure grew up to 15x
# (encode up to 16 s, calls up to 27 s). Resampling (a no-op at 16 kHz) takes 1-30 ms for 44.1
# and 48 kHz input, and a GPU brings encode down to milliseconds. So stage edges reach from
# 100 us to 30 s, about three per decade, and call edges from 5 ms to 2 minutes.
_STAGE_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip
_CALL_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0)
_INPUT_BUCKETS = (0.5, 1.0, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0, 60.0, 120.0, 300.0)
_BATCH_BUCKETS = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0)
_SPEAKER_BUCKETS = (1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 50.0, 100.0)
_LOAD_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)

MetricType = Literal["counter", "gauge", "histogram"]


@dataclasses.dataclass(frozen=True)
class MetricSpec:
    """One metric of the catalogue.

    Attributes
    ----------
    name : str
        The name as PromQL sees it: counters end in ``_total``; a histogram's samples add
        ``_bucket``, ``_sum`` and ``_count`` to it.
    type : {"counter", "gauge", "histogram"}
        The Prometheus metric type.
    labels : tuple of str
        Its label names, each with closed values in :data:`LABEL_VALUES`.
    help : str
        The ``# HELP`` text.
    buckets : tuple of float, optional
        A histogram's upper bucket edges (``+Inf`` is added).
    """

    name: str
    type: MetricType
    labels: tuple[str, ...]
    help: str
    buckets: tuple[float, ...] | None = None

    @property
    def family(self) -> str:
        """The metric family name, which is the name without a counter's ``_total``."""
        return self.name[: -len("_total")] if self.type == "counter" else self.name


CATALOGUE: tuple[MetricSpec, ...] = (
    MetricSpec(
        "speakerembed_stage_duration_seconds",
        "histogram",
        ("stage", "device"),
        "Time one pipeline stage took, per utterance (per batch of windows for encode).",
        _STAGE_BUCKETS,
    ),
    MetricSpec(
        "speakerembed_utterances_total",
        "counter",
        ("outcome",),
        "Utterances processed, by outcome.",
    ),
    MetricSpec(
        "speakerembed_errors_total",
        "counter",
        ("stage", "error_type"),
        "Errors raised, by the stage that failed and the kind of error.",
    ),
    MetricSpec(
        "speakerembed_call_duration_seconds",
        "histogram",
        ("operation", "outcome"),
        "Latency of a public call (embed_utterances, embed_speaker or embed_conditioning), end to end.",
        _CALL_BUCKETS,
    ),
    MetricSpec(
        "speakerembed_calls_in_progress",
        "gauge",
        ("operation",),
        "Public calls running now.",
    ),
    MetricSpec(
        "speakerembed_input_duration_seconds",
        "histogram",
        (),
        "Duration of each embedded utterance as given, before trimming.",
        _INPUT_BUCKETS,
    ),
    MetricSpec(
        "speakerembed_trimmed_seconds_total",
        "counter",
        (),
        "Seconds of audio removed by silence trimming, over all embedded utterances.",
    ),
    MetricSpec(
        "speakerembed_encoder_batch_windows",
        "histogram",
        ("device",),
        "Partial windows in each encoder forward pass.",
        _BATCH_BUCKETS,
    ),
    MetricSpec(
        "speakerembed_speaker_utterances",
        "histogram",
        (),
        "Utterances averaged into each speaker embedding.",
        _SPEAKER_BUCKETS,
    ),
    MetricSpec(
        "speakerembed_device_memory_bytes",
        "gauge",
        ("device",),
        "Accelerator memory held by tensors (CUDA or MPS only), read at scrape time.",
    ),
    MetricSpec(
        "speakerembed_model_load_duration_seconds",
        "histogram",
        (),
        "Time taken to load the encoder weights onto the device.",
        _LOAD_BUCKETS,
    ),
    MetricSpec(
        "speakerembed_build_info",
        "gauge",
        ("version", "weights", "device"),
        "Always 1: the speakerembed version, and the weights and device type of each loaded model.",
    ),
)
"""Every metric speakerembed exports. The docs' table and the contract tests use it."""

_SPEC = {spec.name: spec for spec in CATALOGUE}


def _device(device: str) -> str:
    return device if device in DEVICES else "other"


def _device_memory_reader(device: str) -> Any:
    """Make a function that reads the bytes held by tensors on ``device`` (cuda or mps).

    It runs at scrape time, so it never raises: a failed read gives NaN, not a failed scrape.
    """
    import torch

    def read() -> float:
        try:
            if device == "mps":
                return float(torch.mps.current_allocated_memory())
            if not torch.cuda.is_initialized():  # type: ignore[no-untyped-call]
                return 0.0
            return float(sum(torch.cuda.memory_allocated(i) for i in range(torch.cuda.device_count())))
        except Exception:  # noqa: BLE001 - a scrape must not fail because of this gauge
            return math.nan

    return read


class PrometheusRecorder(Recorder):
    """The collectors of :data:`CATALOGUE`, registered in one registry.

    Do not make one directly: :func:`recorder_for_registry` returns the one recorder of a
    registry. The label children of the series the hot path writes are looked up once and kept
    in dictionaries, so recording a measurement costs a dictionary lookup and an ``observe``.

    Parameters
    ----------
    registry : prometheus_client.CollectorRegistry
        Where the collectors are registered. The recorder keeps no reference to it.
    """

    enabled = True

    def __init__(self, registry: CollectorRegistry) -> None:
        from prometheus_client import Counter, Gauge, Histogram

        self._lock = threading.Lock()
        self._loaded: weakref.WeakSet[Any] = weakref.WeakSet()
        self._memory_devices: set[str] = set()
        made: dict[str, Any] = {}
        try:
            for spec in CATALOGUE:
                if spec.type == "counter":
                    made[spec.name] = Counter(spec.family, spec.help, spec.labels, registry=registry)
                elif spec.type == "gauge":
                    made[spec.name] = Gauge(spec.name, spec.help, spec.labels, registry=registry)
                else:
                    buckets = spec.buckets if spec.buckets is not None else Histogram.DEFAULT_BUCKETS
                    made[spec.name] = Histogram(
                        spec.name, spec.help, spec.labels, registry=registry, buckets=buckets
                    )
        except ValueError as exc:
            for collector in made.values():
                registry.unregister(collector)
            raise ConfigError(
                f"the registry already holds a metric named like speakerembed's ({exc}); pass a "
                "registry that speakerembed's metrics were not registered in by other means"
            ) from exc
        self._stage_hist = made["speakerembed_stage_duration_seconds"]
        self._utterances = made["speakerembed_utterances_total"]
        self._errors = made["speakerembed_errors_total"]
        self._call_hist = made["speakerembed_call_duration_seconds"]
        self._in_progress_gauge = made["speakerembed_calls_in_progress"]
        self._input_hist = made["speakerembed_input_duration_seconds"]
        self._trimmed = made["speakerembed_trimmed_seconds_total"]
        self._batch_hist = made["speakerembed_encoder_batch_windows"]
        self._speaker_hist = made["speakerembed_speaker_utterances"]
        self._memory = made["speakerembed_device_memory_bytes"]
        self._load_hist = made["speakerembed_model_load_duration_seconds"]
        self._build_info = made["speakerembed_build_info"]

        # Label children, made once. The series every process has are made now, at zero.
        self._stages: dict[tuple[str, str], Any] = {}
        self._batches: dict[str, Any] = {}
        self._add_device("cpu")
        self._utterance_ok = self._utterances.labels(outcome="success")
        self._utterance_failed = self._utterances.labels(outcome="error")
        self._error_children: dict[tuple[str, str], Any] = {
            (stage, kind): self._errors.labels(stage=stage, error_type=kind)
            for stage in STAGES
            for kind in ERROR_TYPES
        }
        self._calls: dict[tuple[str, bool], Any] = {
            (op, ok): self._call_hist.labels(operation=op, outcome="success" if ok else "error")
            for op in OPERATIONS
            for ok in (True, False)
        }
        self._running: dict[str, Any] = {
            op: self._in_progress_gauge.labels(operation=op) for op in OPERATIONS
        }

    def _add_device(self, device: str) -> None:
        """Make the stage and batch series of a device type (idempotent)."""
        with self._lock:
            if device in self._batches:
                return
            stages = dict(self._stages)
            for stage in STAGES:
                stages[(stage, device)] = self._stage_hist.labels(stage=stage, device=device)
            self._stages = stages
            self._batches = {**self._batches, device: self._batch_hist.labels(device=device)}

    # -- the hooks ----------------------------------------------------------------------------------

    def stage(self, stage: str, device: str, seconds: float) -> None:
        """Observe one stage's duration."""
        try:
            child = self._stages[(stage, device)]
        except KeyError:
            dev = _device(device)
            self._add_device(dev)
            # An unknown stage is a bug in the caller; keep the label closed and drop it.
            child = self._stages.get((stage, dev))
            if child is None:
                return
        child.observe(seconds)

    def call(self, operation: str, seconds: float, ok: bool) -> None:
        """Observe a public call's latency."""
        child = self._calls.get((operation, ok))
        if child is not None:
            child.observe(seconds)

    def in_progress(self, operation: str, delta: int) -> None:
        """Count a call in (+1) or out (-1)."""
        child = self._running.get(operation)
        if child is not None:
            child.inc(delta)

    def utterance(
        self, ok: bool, input_seconds: float | None = None, trimmed_seconds: float | None = None
    ) -> None:
        """Count one utterance; for a success, observe its duration and the seconds trimmed."""
        if not ok:
            self._utterance_failed.inc()
            return
        self._utterance_ok.inc()
        if input_seconds is not None:
            self._input_hist.observe(input_seconds)
        if trimmed_seconds:
            self._trimmed.inc(trimmed_seconds)

    def error(self, stage: str, error: BaseException) -> None:
        """Count an error by stage and :func:`error_type`."""
        child = self._error_children.get((stage, error_type(error)))
        if child is None:  # a stage outside STAGES: count it where the input came in
            child = self._error_children[("load", error_type(error))]
        child.inc()

    def batch(self, windows: int, device: str) -> None:
        """Observe an encoder batch's size in windows."""
        child = self._batches.get(device)
        if child is None:
            dev = _device(device)
            self._add_device(dev)
            child = self._batches[dev]
        child.observe(windows)

    def speaker(self, n_utterances: int) -> None:
        """Observe how many utterances went into a speaker embedding."""
        self._speaker_hist.observe(n_utterances)

    def model_loaded(self, seconds: float, info: WeightsInfo, device: str) -> None:
        """Observe a model load, and set the build info of its weights and device."""
        dev = _device(device)
        weights = info.name if info.name in WEIGHTS_NAMES else "file"
        self._load_hist.observe(seconds)
        self._build_info.labels(version=__version__, weights=weights, device=dev).set(1)
        self._add_device(dev)
        if dev in ("cuda", "mps"):
            self.device_memory(dev)

    def device_memory(self, device: str) -> None:
        """Report the memory in use on a CUDA or MPS device, read whenever Prometheus scrapes."""
        dev = _device(device)
        if dev not in ("cuda", "mps"):
            return
        with self._lock:
            if dev in self._memory_devices:
                return
            self._memory_devices.add(dev)
        self._memory.labels(device=dev).set_function(_device_memory_reader(dev))

    def embedder_used(self, embedder: Any) -> None:
        """Record the model load of an embedder the first time a call on this registry uses it.

        The module-level functions share cached embedders that were loaded without a registry;
        this gives their load time and build info to each registry that uses them, once.
        """
        if embedder in self._loaded:
            return
        with self._lock:
            if embedder in self._loaded:
                return
            self._loaded.add(embedder)
        self.model_loaded(embedder.load_seconds, embedder.weights_info, embedder.device.type)


_recorders: weakref.WeakKeyDictionary[Any, PrometheusRecorder] = weakref.WeakKeyDictionary()
_recorders_lock = threading.Lock()


def recorder_for_registry(registry: object) -> PrometheusRecorder:
    """Return the one :class:`PrometheusRecorder` of ``registry``, made on first use.

    Parameters
    ----------
    registry : prometheus_client.CollectorRegistry
        The registry to record into.

    Returns
    -------
    PrometheusRecorder
        The same object for every call with the same registry, for as long as it lives.

    Raises
    ------
    BackendUnavailableError
        If ``prometheus_client`` is not installed (``pip install 'speakerembed[metrics]'``).
    ConfigError
        If ``registry`` is not a ``CollectorRegistry``, or already holds metrics with
        speakerembed's names that speakerembed did not register.
    """
    try:
        from prometheus_client import CollectorRegistry
    except ImportError as exc:
        raise missing_backend("prometheus_client", "metrics", "registry=") from exc
    if not isinstance(registry, CollectorRegistry):
        raise ConfigError(
            f"registry={registry!r} is not a prometheus_client.CollectorRegistry; pass "
            "CollectorRegistry() (or prometheus_client.REGISTRY to use the global one)"
        )
    with _recorders_lock:
        recorder = _recorders.get(registry)
        if recorder is None:
            recorder = PrometheusRecorder(registry)
            _recorders[registry] = recorder
        return recorder


def _catalogue_rst() -> str:
    """Render the catalogue as the reStructuredText table in ``docs/metrics.rst``."""
    lines = [
        ".. list-table::",
        "   :header-rows: 1",
        "   :widths: 35 10 20 35",
        "",
        "   * - Metric",
        "     - Type",
        "     - Labels",
        "     - Help",
    ]
    for spec in CATALOGUE:
        labels = ", ".join(f"``{label}``" for label in spec.labels) or "none"
        lines += [
            f"   * - ``{spec.name}``",
            f"     - {spec.type}",
            f"     - {labels}",
            f"     - {spec.help}",
        ]
    return "\n".join(lines) + "\n"


def _label_values_rst() -> str:
    """Render the closed label values as the reStructuredText table in ``docs/metrics.rst``."""
    lines = [
        ".. list-table::",
        "   :header-rows: 1",
        "   :widths: 20 80",
        "",
        "   * - Label",
        "     - Values",
    ]
    for label, values in LABEL_VALUES.items():
        shown = "the installed version" if label == "version" else ", ".join(f"``{v}``" for v in values)
        lines += [f"   * - ``{label}``", f"     - {shown}"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # python -m speakerembed.metrics: the tables for docs/metrics.rst
    print(_catalogue_rst())
    print(_label_values_rst())
