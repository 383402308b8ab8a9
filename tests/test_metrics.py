"""Prometheus metrics: values, errors by stage and type, cardinality, sharing, the catalogue contract.

Values are read with ``registry.get_sample_value``; the exposition is parsed with
``prometheus_client.parser`` and checked against :data:`speakerembed.metrics.CATALOGUE`, and
``promtool check metrics`` lints it. No test here measures time (see benchmarks/bench_metrics.py).
"""

from __future__ import annotations

import math
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _signals import require_tool

prometheus_client = pytest.importorskip("prometheus_client")
from prometheus_client import CollectorRegistry, generate_latest  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

import speakerembed  # noqa: E402
from speakerembed import (  # noqa: E402
    AudioError,
    BackendUnavailableError,
    ConfigError,
    InputTooLongError,
    Pipeline,
    SpeakerEmbedder,
    SpeakerEmbedError,
    WeightsError,
)
from speakerembed import metrics as m  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SR = 16000


def tone(seconds: float, freq: float = 220.0, lead_silence: float = 0.0) -> np.ndarray:
    """A speech-like modulated tone (cheap to make), optionally after some digital silence."""
    t = np.arange(int(seconds * SR)) / SR
    wave = 0.3 * np.sin(2 * np.pi * freq * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
    pad = np.zeros(int(lead_silence * SR))
    return np.concatenate([pad, wave]).astype(np.float32)


def value(reg: CollectorRegistry, name: str, **labels: str) -> float:
    got = reg.get_sample_value(name, labels)
    assert got is not None, f"no sample {name}{labels}"
    return got


def series(reg: CollectorRegistry) -> set[tuple[str, tuple[tuple[str, str], ...]]]:
    """Every speakerembed sample in the registry, as (name, sorted labels)."""
    return {
        (s.name, tuple(sorted(s.labels.items())))
        for metric in reg.collect()
        for s in metric.samples
        if s.name.startswith("speakerembed_")
    }


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def metered(embedder: SpeakerEmbedder, registry: CollectorRegistry) -> SpeakerEmbedder:
    """The session's CPU embedder, with this test's registry's recorder swapped in."""
    clone = object.__new__(SpeakerEmbedder)
    clone.__dict__.update(embedder.__dict__)
    clone._recorder = m.recorder_for_registry(registry)
    return clone


# -- import cost and the global registry -----------------------------------------------------------


def test_no_registry_never_imports_prometheus_client() -> None:
    code = (
        "import sys, numpy as np\n"
        "import speakerembed\n"
        "t = np.arange(32000) / 16000\n"
        "x = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)\n"
        "e = speakerembed.SpeakerEmbedder('resemblyzer', device='cpu')\n"
        "assert e.embed_utterances([x, x], sample_rate=16000).shape == (2, 256)\n"
        "assert speakerembed.embed_speaker(x, sample_rate=16000, weights='resemblyzer').shape == (256,)\n"
        "print('LOADED' if 'prometheus_client' in sys.modules else 'ABSENT')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT, check=True
    )
    assert out.stdout.strip().splitlines()[-1] == "ABSENT", out.stderr


def test_global_registry_untouched(metered: SpeakerEmbedder) -> None:
    from prometheus_client import REGISTRY

    metered.embed_utterances(tone(1.0), sample_rate=SR)
    speakerembed.embed_utterances(tone(1.0), sample_rate=SR, weights="resemblyzer", device="cpu")
    names = {s.name for metric in REGISTRY.collect() for s in metric.samples}
    assert not any(name.startswith("speakerembed_") for name in names)


def test_the_global_registry_when_passed_explicitly() -> None:
    from prometheus_client import REGISTRY

    rec = m.recorder_for_registry(REGISTRY)
    try:
        assert REGISTRY.get_sample_value("speakerembed_utterances_total", {"outcome": "success"}) == 0.0
    finally:
        for collector in list(REGISTRY._collector_to_names):  # leave the process as we found it
            if any(n.startswith("speakerembed_") for n in REGISTRY._collector_to_names[collector]):
                REGISTRY.unregister(collector)
        m._recorders.pop(REGISTRY, None)
    assert rec.enabled


# -- one recorder per registry -----------------------------------------------------------------------


def test_one_recorder_per_registry(registry: CollectorRegistry) -> None:
    assert m.recorder_for_registry(registry) is m.recorder_for_registry(registry)
    assert m.recorder_for_registry(CollectorRegistry()) is not m.recorder_for_registry(registry)


def test_recorder_does_not_keep_its_registry_alive() -> None:
    import gc
    import weakref

    reg = CollectorRegistry()
    rec = m.recorder_for_registry(reg)
    ref = weakref.ref(reg)
    del reg
    gc.collect()
    assert ref() is None
    assert rec not in m._recorders.values()


def test_one_recorder_when_threads_race(registry: CollectorRegistry) -> None:
    got: list[Any] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def grab() -> None:
        barrier.wait()
        try:
            got.append(m.recorder_for_registry(registry))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=grab) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(got) == 8
    assert all(r is got[0] for r in got)


def test_embedders_share_collectors_and_counts_add_up(
    registry: CollectorRegistry, resemblyzer_weights: Path
) -> None:
    a = SpeakerEmbedder("resemblyzer", device="cpu", registry=registry)
    b = SpeakerEmbedder(resemblyzer_weights, device="cpu", registry=registry)  # no duplicate error
    a.embed_utterances([tone(1.0), tone(1.2)], sample_rate=SR)
    b.embed_utterances(tone(1.5), sample_rate=SR)
    speakerembed.embed_speaker(
        [tone(1.0), tone(1.1)], sample_rate=SR, weights="resemblyzer", device="cpu", registry=registry
    )
    assert value(registry, "speakerembed_utterances_total", outcome="success") == 5
    assert value(registry, "speakerembed_stage_duration_seconds_count", stage="load", device="cpu") == 5
    assert (
        value(
            registry,
            "speakerembed_call_duration_seconds_count",
            operation="embed_utterances",
            outcome="success",
        )
        == 2
    )
    assert (
        value(
            registry, "speakerembed_call_duration_seconds_count", operation="embed_speaker", outcome="success"
        )
        == 1
    )
    # Two embedders made with the registry, and the api's cached embedder used with it: 3 loads.
    assert value(registry, "speakerembed_model_load_duration_seconds_count") == 3
    # A local file's build info says "file", never its path.
    assert (
        value(
            registry,
            "speakerembed_build_info",
            version=speakerembed.__version__,
            weights="file",
            device="cpu",
        )
        == 1
    )
    assert (
        value(
            registry,
            "speakerembed_build_info",
            version=speakerembed.__version__,
            weights="resemblyzer",
            device="cpu",
        )
        == 1
    )


def test_api_records_the_cached_model_once_per_registry(registry: CollectorRegistry) -> None:
    for _ in range(3):
        speakerembed.embed_utterances(
            tone(1.0), sample_rate=SR, weights="resemblyzer", device="cpu", registry=registry
        )
    assert value(registry, "speakerembed_model_load_duration_seconds_count") == 1
    assert value(registry, "speakerembed_model_load_duration_seconds_sum") > 0
    assert value(registry, "speakerembed_utterances_total", outcome="success") == 3


# -- values -----------------------------------------------------------------------------------------


def test_fresh_registry_has_known_series_at_zero(registry: CollectorRegistry) -> None:
    m.recorder_for_registry(registry)
    for outcome in m.OUTCOMES:
        assert value(registry, "speakerembed_utterances_total", outcome=outcome) == 0
    for stage in m.STAGES:
        assert value(registry, "speakerembed_stage_duration_seconds_count", stage=stage, device="cpu") == 0
        for kind in m.ERROR_TYPES:
            assert value(registry, "speakerembed_errors_total", stage=stage, error_type=kind) == 0
    for op in m.OPERATIONS:
        assert value(registry, "speakerembed_calls_in_progress", operation=op) == 0
        for outcome in m.OUTCOMES:
            assert (
                value(registry, "speakerembed_call_duration_seconds_count", operation=op, outcome=outcome)
                == 0
            )
    assert value(registry, "speakerembed_trimmed_seconds_total") == 0
    assert value(registry, "speakerembed_input_duration_seconds_count") == 0


def test_counters_and_histograms(metered: SpeakerEmbedder, registry: CollectorRegistry) -> None:
    clips = [tone(1.0, 200, lead_silence=0.5), tone(2.0, 250), tone(3.0, 300)]
    metered.embed_utterances(clips, sample_rate=SR)
    metered.embed_speaker(clips[:2], sample_rate=SR)

    assert value(registry, "speakerembed_utterances_total", outcome="success") == 5
    assert value(registry, "speakerembed_utterances_total", outcome="error") == 0
    for stage in ("load", "resample", "trim", "mel"):
        assert value(registry, "speakerembed_stage_duration_seconds_count", stage=stage, device="cpu") == 5
    # Five per-utterance consolidations on the device, plus the speaker mean.
    assert (
        value(registry, "speakerembed_stage_duration_seconds_count", stage="consolidate", device="cpu") == 6
    )
    encodes = value(registry, "speakerembed_stage_duration_seconds_count", stage="encode", device="cpu")
    assert encodes >= 2  # at least one batch per call
    assert value(registry, "speakerembed_stage_duration_seconds_sum", stage="encode", device="cpu") > 0
    assert value(registry, "speakerembed_encoder_batch_windows_count", device="cpu") == encodes

    # Buckets are cumulative and end at _count.
    spec = next(s for s in m.CATALOGUE if s.name == "speakerembed_stage_duration_seconds")
    assert spec.buckets is not None
    counts = [
        value(registry, "speakerembed_stage_duration_seconds_bucket", stage="mel", device="cpu", le=str(le))
        for le in spec.buckets
    ]
    inf = value(registry, "speakerembed_stage_duration_seconds_bucket", stage="mel", device="cpu", le="+Inf")
    assert counts == sorted(counts)
    assert inf == 5

    # Input durations: 1.5 + 2 + 3 s, then 1.5 + 2 s again.
    assert value(registry, "speakerembed_input_duration_seconds_count") == 5
    assert value(registry, "speakerembed_input_duration_seconds_sum") == pytest.approx(10.0, abs=1e-3)
    assert value(registry, "speakerembed_input_duration_seconds_bucket", le="1.0") == 0
    assert value(registry, "speakerembed_input_duration_seconds_bucket", le="2.0") == 4
    # The half second of leading silence is trimmed, twice (give or take a trim frame).
    assert value(registry, "speakerembed_trimmed_seconds_total") == pytest.approx(1.0, abs=0.15)

    assert value(registry, "speakerembed_speaker_utterances_count") == 1
    assert value(registry, "speakerembed_speaker_utterances_sum") == 2
    for op in ("embed_utterances", "embed_speaker"):  # the two calls made above
        assert (
            value(registry, "speakerembed_call_duration_seconds_count", operation=op, outcome="success") == 1
        )
        assert value(registry, "speakerembed_call_duration_seconds_sum", operation=op, outcome="success") > 0
        assert value(registry, "speakerembed_calls_in_progress", operation=op) == 0


def test_calls_in_progress_while_running(metered: SpeakerEmbedder, registry: CollectorRegistry) -> None:
    seen: list[float | None] = []
    rec = metered._recorder
    original = rec.stage

    def spy(stage: str, device: str, seconds: float) -> None:
        seen.append(
            registry.get_sample_value("speakerembed_calls_in_progress", {"operation": "embed_speaker"})
        )
        original(stage, device, seconds)

    rec.stage = spy  # type: ignore[method-assign]
    metered.embed_speaker(tone(1.0), sample_rate=SR)
    assert seen
    assert set(seen) == {1.0}
    assert value(registry, "speakerembed_calls_in_progress", operation="embed_speaker") == 0


# -- errors -----------------------------------------------------------------------------------------


def errors(reg: CollectorRegistry, stage: str, kind: str) -> float:
    return value(reg, "speakerembed_errors_total", stage=stage, error_type=kind)


def test_errors_by_stage_and_type(
    metered: SpeakerEmbedder, registry: CollectorRegistry, tmp_path: Path
) -> None:
    with pytest.raises(AudioError):
        metered.embed_utterances(tmp_path / "missing.wav")
    assert errors(registry, "load", "audio") == 1

    with pytest.raises(AudioError, match="silence"):
        metered.embed_utterances(np.zeros(SR, np.float32), sample_rate=SR)
    assert errors(registry, "trim", "audio") == 1

    with pytest.raises(AudioError):
        metered.embed_utterances(tone(1.0), sample_rate=-5)
    assert errors(registry, "load", "audio") == 2

    with pytest.raises(InputTooLongError):
        metered.embed_utterances(tone(2.0), sample_rate=SR, pipeline=Pipeline(max_duration_s=1.0))
    assert errors(registry, "load", "too_long") == 1

    assert value(registry, "speakerembed_utterances_total", outcome="error") == 4
    assert value(registry, "speakerembed_utterances_total", outcome="success") == 0
    assert (
        value(
            registry,
            "speakerembed_call_duration_seconds_count",
            operation="embed_utterances",
            outcome="error",
        )
        == 4
    )
    total = sum(errors(registry, s, k) for s in m.STAGES for k in m.ERROR_TYPES)
    assert total == 4


def test_call_level_errors_are_counted(metered: SpeakerEmbedder, registry: CollectorRegistry) -> None:
    with pytest.raises(AudioError, match="empty"):
        metered.embed_utterances([])
    assert errors(registry, "load", "audio") == 1
    assert value(registry, "speakerembed_utterances_total", outcome="error") == 0  # no utterance came in


def test_skip_mode_counts_each_failure(
    metered: SpeakerEmbedder, registry: CollectorRegistry, tmp_path: Path
) -> None:
    result = metered.embed_utterances(
        [tone(1.0), tmp_path / "nope.flac", np.zeros(SR, np.float32), tone(1.5)],
        sample_rate=SR,
        errors="skip",
    )
    assert len(result.failures) == 2
    assert value(registry, "speakerembed_utterances_total", outcome="success") == 2
    assert value(registry, "speakerembed_utterances_total", outcome="error") == 2
    assert errors(registry, "load", "audio") == 1
    assert errors(registry, "trim", "audio") == 1
    # The call itself succeeded.
    assert (
        value(
            registry,
            "speakerembed_call_duration_seconds_count",
            operation="embed_utterances",
            outcome="success",
        )
        == 1
    )


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (InputTooLongError("x"), "too_long"),
        (AudioError("x"), "audio"),
        (ConfigError("x"), "config"),
        (WeightsError("x"), "weights"),
        (BackendUnavailableError("x"), "backend"),
        (SpeakerEmbedError("x"), "internal"),
        (RuntimeError("x"), "internal"),
    ],
)
def test_error_type_mapping(error: BaseException, kind: str, registry: CollectorRegistry) -> None:
    assert m.error_type(error) == kind
    rec = m.recorder_for_registry(registry)
    rec.error("encode", error)
    rec.error("not-a-stage", error)  # an unknown stage never makes a new series
    assert errors(registry, "encode", kind) == 1
    assert errors(registry, "load", kind) == 1


# -- cardinality ------------------------------------------------------------------------------------


def test_thousand_distinct_inputs_add_no_series(
    metered: SpeakerEmbedder, registry: CollectorRegistry, tmp_path: Path
) -> None:
    # Warm up: one success and one failure of each kind the loop below produces.
    metered.embed_utterances(
        [tone(1.0), tmp_path / "warm.wav", np.zeros(400, np.float32)], sample_rate=SR, errors="skip"
    )
    before = series(registry)
    # 1,000 distinct inputs: 990 distinct missing paths (with voice-id-like names) and ten
    # distinct silent arrays, plus five distinct real clips.
    bad: list[Any] = [tmp_path / f"speaker-{i:04d}" / f"voice_{i}.wav" for i in range(990)]
    bad += [np.full(400 + i, 0.0, np.float32) for i in range(10)]
    good = [tone(1.0, 150 + 20 * i) for i in range(5)]
    result = metered.embed_utterances(bad + good, sample_rate=SR, errors="skip")
    assert len(result.failures) == 1000
    assert series(registry) == before
    assert value(registry, "speakerembed_utterances_total", outcome="error") == 1002
    assert value(registry, "speakerembed_utterances_total", outcome="success") == 6
    # Every label value comes from the closed lists, whatever the inputs were called.
    for _, labels in series(registry):
        for label, label_value in labels:
            if label != "le":
                assert label_value in m.LABEL_VALUES[label], (label, label_value)
    assert "voice_" not in generate_latest(registry).decode()


# -- the catalogue contract -------------------------------------------------------------------------


def exposition(metered: SpeakerEmbedder, registry: CollectorRegistry) -> str:
    metered.embed_utterances([tone(1.0), np.zeros(SR, np.float32)], sample_rate=SR, errors="skip")
    metered.embed_speaker(tone(1.0), sample_rate=SR)
    m.recorder_for_registry(registry).model_loaded(0.5, metered.weights_info, "cpu")
    return generate_latest(registry).decode()


def test_exposition_matches_catalogue(metered: SpeakerEmbedder, registry: CollectorRegistry) -> None:
    families = {f.name: f for f in text_string_to_metric_families(exposition(metered, registry))}
    catalogue = {spec.family: spec for spec in m.CATALOGUE}
    # Nothing undocumented (prometheus_client adds a *_created gauge to counters and histograms).
    extra = {n for n in families if n not in catalogue and not n.endswith("_created")}
    assert not extra
    for family, spec in catalogue.items():
        assert family in families, spec.name
        got = families[family]
        assert got.type == spec.type, spec.name
        assert got.documentation == spec.help, spec.name
        assert spec.help[:1].isupper()
        assert spec.help.endswith(".")
        assert spec.name.startswith("speakerembed_")
        assert (spec.type == "counter") == spec.name.endswith("_total")
        for sample in got.samples:
            assert set(sample.labels) - {"le"} == set(spec.labels), (spec.name, sample)
        if spec.type == "histogram":
            assert spec.buckets is not None
            edges = sorted({float(s.labels["le"]) for s in got.samples if s.name.endswith("_bucket")})
            assert edges == [*spec.buckets, math.inf]
    for spec in m.CATALOGUE:
        assert set(spec.labels) <= set(m.LABEL_VALUES)
    for required in (
        "speakerembed_stage_duration_seconds",
        "speakerembed_utterances_total",
        "speakerembed_errors_total",
    ):
        assert required in {s.name for s in m.CATALOGUE}


def test_weights_names_cover_the_presets() -> None:
    from speakerembed.weights import PRESETS

    assert set(PRESETS) <= set(m.WEIGHTS_NAMES)


def test_promtool_check_metrics(metered: SpeakerEmbedder, registry: CollectorRegistry) -> None:
    promtool = require_tool("promtool")
    text = exposition(metered, registry)
    out = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert not out.stdout.strip()
    assert not out.stderr.strip()


def test_docs_table_is_the_catalogue() -> None:
    page = (ROOT / "docs" / "metrics.rst").read_text(encoding="utf-8")
    assert m._catalogue_rst() in page, "regenerate the table: python -m speakerembed.metrics"
    assert m._label_values_rst() in page, "regenerate the table: python -m speakerembed.metrics"
    for spec in m.CATALOGUE:
        assert f"``{spec.name}``" in page


# -- misuse -----------------------------------------------------------------------------------------


def test_not_a_registry() -> None:
    with pytest.raises(ConfigError, match="CollectorRegistry"):
        SpeakerEmbedder("resemblyzer", device="cpu", registry=object())  # type: ignore[arg-type]


def test_registry_with_clashing_names(registry: CollectorRegistry) -> None:
    from prometheus_client import Counter

    Counter("speakerembed_utterances", "someone else's", registry=registry)
    with pytest.raises(ConfigError, match="already holds"):
        m.recorder_for_registry(registry)
    # Nothing half-registered is left behind.
    assert (
        registry.get_sample_value(
            "speakerembed_stage_duration_seconds_count", {"stage": "load", "device": "cpu"}
        )
        is None
    )


def test_missing_prometheus_client(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    with pytest.raises(BackendUnavailableError, match=r"speakerembed\[metrics\]"):
        m.recorder_for_registry(object())


@pytest.mark.parametrize("device", ["cuda", "mps"])
def test_accelerator_series_without_the_accelerator(
    registry: CollectorRegistry, embedder: SpeakerEmbedder, device: str
) -> None:
    # What a model load on a GPU sets up, on a machine that may have none: build info, the
    # device's stage and batch series at zero, and a memory gauge read at scrape time that
    # never breaks the scrape.
    rec = m.recorder_for_registry(registry)
    rec.model_loaded(0.25, embedder.weights_info, device)
    version = speakerembed.__version__
    assert (
        value(registry, "speakerembed_build_info", version=version, weights="resemblyzer", device=device) == 1
    )
    assert value(registry, "speakerembed_stage_duration_seconds_count", stage="encode", device=device) == 0
    assert value(registry, "speakerembed_encoder_batch_windows_count", device=device) == 0
    memory = value(registry, "speakerembed_device_memory_bytes", device=device)
    assert math.isnan(memory) or memory >= 0
    assert value(registry, "speakerembed_model_load_duration_seconds_sum") == 0.25
    text = generate_latest(registry).decode()
    assert f'speakerembed_device_memory_bytes{{device="{device}"}}' in text


def test_unknown_device_type_is_other(registry: CollectorRegistry) -> None:
    rec = m.recorder_for_registry(registry)
    rec.stage("encode", "xpu", 0.5)
    rec.batch(8, "xpu")
    assert value(registry, "speakerembed_stage_duration_seconds_count", stage="encode", device="other") == 1
    assert value(registry, "speakerembed_encoder_batch_windows_sum", device="other") == 8
    assert "xpu" not in generate_latest(registry).decode()


@pytest.mark.gpu
def test_device_memory_on_cuda(registry: CollectorRegistry) -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    e = SpeakerEmbedder("resemblyzer", device="cuda", registry=registry)
    e.embed_utterances(tone(1.0), sample_rate=SR)
    assert value(registry, "speakerembed_device_memory_bytes", device="cuda") > 0
    assert value(registry, "speakerembed_stage_duration_seconds_count", stage="encode", device="cuda") >= 1
    assert (
        value(
            registry,
            "speakerembed_build_info",
            version=speakerembed.__version__,
            weights="resemblyzer",
            device="cuda",
        )
        == 1
    )
