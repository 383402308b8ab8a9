"""Property-based fuzzing: any array, rate and Pipeline give a finite unit vector or a
SpeakerEmbedError, never anything else.

The main property runs 500 examples by default (and in the ``ci`` profile), and 10,000 with
``--hypothesis-profile=long`` (``nox -s fuzz``); the profiles are registered in conftest.py. It
uses a cheap stand-in encoder, so that thousands of examples stay fast: everything before the
encoder (loading, dtype and shape rules, resampling, trimming, mel, windows) and everything
after it (consolidation, the finiteness and unit-norm checks) is the real code. A second
property runs the real Resemblyzer-weights encoder on fewer, shorter examples.

Two more properties fuzz the Pipeline itself: any value of any field (wrong types, huge ints,
NaN, subnormals, values at the edges of the documented ranges) gives a Pipeline whose derived
values are sane, or a ConfigError that names the field and the fix; and an accepted Pipeline
embeds, or raises our error, but is never refused late. The CI run (no profile) gives them 3,000
and 150 examples, about 20 s; ``--hypothesis-profile=long`` gives 10,000 and 2,000.

Arrays are built from a few drawn parameters (length, dtype, layout, signal kind, level, where
NaN or Inf go) rather than element by element, which keeps generation cheap for 10 s arrays.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import pytest
import torch
from _signals import voice
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from speakerembed import ConfigError, Pipeline, SpeakerEmbedder, SpeakerEmbedError
from speakerembed.config import MODEL_SAMPLE_RATE
from speakerembed.stages.load import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE
from speakerembed.stages.windows import num_windows

GOOD_DTYPES = [np.float32, np.float64, np.float16, np.int16, np.int32, np.int8, np.uint8]
BAD_DTYPES = [np.int64, np.uint16, np.bool_, np.complex64]
GOOD_RATES = [8000, 11025, 16000, 22050, 24000, 44100, 48000, 96000]


def _budget(default: int) -> int:
    """``default`` examples, unless a profile (``ci``, ``long``) was loaded on the command line."""
    if settings.get_current_profile_name() == "default":
        return default
    return settings().max_examples


class _CheapEncoder(torch.nn.Module):
    """Mels (B, T, 40) to unit rows (B, 256): log of the mean mel, a fixed projection, ReLU."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = torch.nn.Linear(40, 256)
        g = torch.Generator().manual_seed(0)
        with torch.no_grad():
            self.proj.weight.copy_(torch.randn(256, 40, generator=g))
            self.proj.bias.copy_(torch.randn(256, generator=g))

    def forward(self, mels: torch.Tensor) -> torch.Tensor:
        raw = torch.relu(self.proj(torch.log1p(mels.mean(dim=1) * 1e4)))
        return raw / torch.linalg.norm(raw, dim=1, keepdim=True).clamp_min(torch.finfo(raw.dtype).tiny)


@pytest.fixture(scope="module")
def cheap() -> SpeakerEmbedder:
    return SpeakerEmbedder(encoder=_CheapEncoder())


@st.composite
def audio(draw: st.DrawFn, max_seconds: float = 10.0) -> tuple[Any, Any]:
    """An (array or tensor, sample_rate) pair: valid, odd, or broken in one of many ways."""
    # Half the examples are clean (odd but valid: every rate, dtype, layout and level that must
    # work); in the other half each way of breaking the input is drawn with a modest probability.
    clean = draw(st.booleans())
    good_rate = st.one_of(
        st.sampled_from(GOOD_RATES),
        st.sampled_from(GOOD_RATES).map(float),
        st.sampled_from(GOOD_RATES).map(np.int64),
    )
    rate = draw(
        good_rate
        if clean
        else st.one_of(
            st.sampled_from(GOOD_RATES),
            st.sampled_from(GOOD_RATES),
            st.sampled_from(GOOD_RATES),
            st.sampled_from(GOOD_RATES).map(float),
            st.sampled_from(GOOD_RATES).map(np.int64),
            st.integers(-100_000, 2_000_000),
            st.floats(allow_nan=True, allow_infinity=True),
            st.sampled_from([None, "16000", True, 0, 1e9, 16000.5, [16000]]),
        )
    )
    numeric = isinstance(rate, (int, float, np.integer)) and not isinstance(rate, bool)
    gen_rate = int(rate) if numeric and 4000 <= rate <= 200_000 and float(rate).is_integer() else 16000
    # Mostly short (fast) clips above the 0.25 s minimum; sometimes anything from 0 to the max.
    seconds = draw(
        st.one_of(st.floats(0.3, 1.5), st.floats(0.3, 1.5), st.floats(0.3 if clean else 0, max_seconds))
    )
    n = int(seconds * gen_rate)
    kind = draw(
        st.sampled_from(
            ["voice", "noise", "sine"] if clean else ["voice", "noise", "silence", "dc", "impulse", "sine"]
        )
    )
    level = 10 ** draw(st.floats(-3, 0) if clean else st.one_of(st.floats(-3, 0), st.floats(-7, 1)))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    if kind == "voice":
        x = voice(n / gen_rate, gen_rate, seed=seed)[:n].astype(np.float64) / 0.4
    elif kind == "noise":
        x = rng.standard_normal(n)
    elif kind == "silence":
        x = np.zeros(n)
    elif kind == "dc":
        x = np.ones(n)
    elif kind == "impulse":
        x = np.zeros(n)
        if n:
            x[rng.integers(n)] = 1.0
    else:
        x = np.sin(2 * np.pi * 440 * np.arange(n) / gen_rate)
    x = x * level
    layout = draw(
        st.sampled_from(["1d", "cf", "cl", "row"] if clean else ["1d"] * 6 + ["cf", "cl", "row", "3d", "0d"])
    )
    channels = draw(st.integers(1, 3))
    if layout == "cf":
        x = np.stack([x] * channels)
    elif layout == "cl":
        x = np.stack([x] * channels, axis=1)
    elif layout == "row":
        x = x[None, :]
    elif layout == "3d":
        x = x[None, None, :]
    elif layout == "0d":
        x = np.asarray(level)
    dtype = np.dtype(draw(st.sampled_from(GOOD_DTYPES if clean else GOOD_DTYPES * 3 + BAD_DTYPES)))
    if dtype.kind in "iu" and dtype != np.bool_:
        info = np.iinfo(dtype)
        lo, hi = max(int(info.min), -(2**31)), min(int(info.max), 2**31 - 1)
        mid = (hi + lo + 1) / 2
        x = np.clip(np.round(mid + x * (hi - mid)), lo, hi)
    with np.errstate(over="ignore"):  # loud float16 overflows to Inf: a valid test input
        arr = x.astype(dtype)
    bad = 0 if clean else draw(st.sampled_from([0] * 4 + [1, 3]))
    if bad and dtype.kind in "fc" and arr.size:
        flat = arr.reshape(-1)
        for i in rng.integers(0, flat.size, bad):
            flat[i] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    if draw(st.booleans()) and arr.flags.writeable and arr.ndim > 0 and arr.shape[-1] > 2:
        arr = arr[..., ::2]  # a non-contiguous view
    if draw(st.integers(0, 4)) == 0 and dtype not in (np.uint16,):
        arr = torch.from_numpy(np.ascontiguousarray(arr))
    return arr, rate


PIPELINE_FIELDS = {
    "order": st.sampled_from(["resample_trim", "trim_resample", "bogus"]),
    "resampler": st.sampled_from(["soxr_hq", "polyphase", "torchaudio", "soxr"]),
    "top_db": st.one_of(st.none(), st.floats(-10, 80), st.just(float("nan"))),
    "trim_frame_length": st.integers(-1, 4096),
    "trim_hop_length": st.integers(-1, 2048),
    "partial_frames": st.integers(0, 200),
    "rate": st.one_of(st.none(), st.floats(0, 20)),
    "overlap": st.floats(-0.5, 1.5),
    "min_coverage": st.floats(-0.5, 1.5),
    "max_windows_per_batch": st.integers(0, 70),
    "min_duration_s": st.floats(-1, 3),
    "max_duration_s": st.one_of(st.none(), st.floats(-1, 20)),
}


@st.composite
def pipelines(draw: st.DrawFn) -> Any:
    """Usually the default Pipeline; otherwise a few random fields, valid or not (or None)."""
    if draw(st.integers(0, 3)) > 0:
        return None  # the default Pipeline
    fields = draw(st.lists(st.sampled_from(sorted(PIPELINE_FIELDS)), max_size=4, unique=True))
    return {f: draw(PIPELINE_FIELDS[f]) for f in fields}


def _check(embedder: SpeakerEmbedder, item: Any, rate: Any, pipe_fields: dict[str, Any] | None) -> None:
    try:
        pipe = Pipeline(**pipe_fields) if pipe_fields is not None else None
        out = embedder.embed_utterances(item, sample_rate=rate, pipeline=pipe)
    except SpeakerEmbedError as exc:
        event(f"raised {type(exc).__name__} at {exc.stage or 'config'}")
        return  # a clear error is an acceptable outcome; anything else propagates and fails
    event("embedded")
    assert isinstance(out, np.ndarray)
    assert out.dtype == np.float32
    assert out.shape == (1, 256)
    assert np.isfinite(out).all()
    assert math.isclose(float(np.linalg.norm(out[0])), 1.0, abs_tol=1e-4)


@settings(
    max_examples=_budget(500),
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.function_scoped_fixture,
        HealthCheck.data_too_large,
    ],
)
@given(sample=audio(), pipe_fields=pipelines())
def test_any_input_gives_a_unit_vector_or_our_error(
    cheap: SpeakerEmbedder, sample: tuple[Any, Any], pipe_fields: dict[str, Any] | None
) -> None:
    _check(cheap, *sample, pipe_fields)


@settings(
    max_examples=_budget(60) // 10 if settings.get_current_profile_name() == "long" else 60,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.function_scoped_fixture,
        HealthCheck.data_too_large,
    ],
)
@given(sample=audio(max_seconds=4.0), pipe_fields=pipelines())
def test_real_encoder_gives_a_unit_vector_or_our_error(
    embedder: SpeakerEmbedder, sample: tuple[Any, Any], pipe_fields: dict[str, Any] | None
) -> None:
    _check(embedder, *sample, pipe_fields)


@settings(max_examples=_budget(200), deadline=None)
@given(
    rows=st.integers(0, 4),
    dim=st.integers(0, 8),
    scale=st.floats(-2, 2),
    poison=st.sampled_from([None, np.nan, np.inf]),
    seed=st.integers(0, 1000),
)
def test_utt_to_spk_embed_unit_or_our_error(
    rows: int, dim: int, scale: float, poison: Any, seed: int
) -> None:
    from speakerembed import utt_to_spk_embed

    x = np.random.default_rng(seed).standard_normal((rows, dim))
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    x = np.divide(x, norms, out=np.zeros_like(x), where=norms > 0) * (1 + scale * 1e-2)
    if poison is not None and x.size:
        x.flat[0] = poison
    try:
        out = utt_to_spk_embed(x)
    except SpeakerEmbedError:
        return
    assert np.isfinite(out).all()
    assert math.isclose(float(np.linalg.norm(out)), 1.0, abs_tol=1e-5)


# -- Pipeline construction: any value of any field is a usable Pipeline or a ConfigError ---------

# Anything a caller might pass: the wrong type, a huge or tiny number, NaN, a subnormal.
ANY_VALUE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(-(2**70), 2**70),
    st.sampled_from([2**63, 10**30, 10**400, -(2**63)]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(allow_subnormal=True, min_value=0, max_value=1e-300),
    st.text(max_size=4),
    st.sampled_from(["resample_trim", "trim_resample", "soxr_hq", "polyphase", "kaiser_fast", "auto", "cpu"]),
)
# Values in each field's documented range.
VALID = {
    "order": st.sampled_from(["resample_trim", "trim_resample"]),
    "resampler": st.sampled_from(["soxr_hq", "kaiser_fast", "polyphase", "torchaudio"]),
    "resample_device": st.sampled_from(["cpu", "device", "auto"]),
    "top_db": st.one_of(st.none(), st.floats(1e-3, 200)),
    "trim_frame_length": st.integers(1, 2**16),
    "trim_hop_length": st.integers(1, 4096),
    "partial_frames": st.integers(1, 1000),
    "rate": st.one_of(st.none(), st.floats(0.05, 100)),
    "overlap": st.floats(0, 0.99),
    "min_coverage": st.floats(1e-6, 1),
    "max_windows_per_batch": st.integers(1, 2**16),
    "min_duration_s": st.floats(0, 5),
    "max_duration_s": st.one_of(st.none(), st.floats(5, 1e7)),
    "stream_min_duration_s": st.one_of(st.none(), st.floats(0, 1e7)),
    "vad": st.sampled_from([None, "none", "silero"]),
    "vad_threshold": st.floats(1e-3, 0.999),
    "vad_pad_s": st.floats(0, 5),
    "min_speech_s": st.floats(0, 5),
}
# Values around each field's range, where the edges are.
NEAR_RANGE = {
    "top_db": st.floats(0, 400),
    "trim_frame_length": st.integers(0, 2**17),
    "trim_hop_length": st.integers(0, 2**17),
    "partial_frames": st.integers(0, 2000),
    "rate": st.floats(0, 300),
    "overlap": st.floats(-0.1, 1.1),
    "min_coverage": st.floats(-0.1, 1.1),
    "max_windows_per_batch": st.integers(0, 2**17),
    "min_duration_s": st.floats(-1, 2e7),
    "max_duration_s": st.floats(-1, 2e7),
    "stream_min_duration_s": st.floats(-1, 2e7),
    "vad_threshold": st.floats(-0.1, 1.1),
    "vad_pad_s": st.floats(-1, 2e7),
    "min_speech_s": st.floats(-1, 2e7),
}
ALL_FIELDS = sorted(f.name for f in dataclasses.fields(Pipeline))


@st.composite
def any_pipeline_fields(draw: st.DrawFn) -> dict[str, Any]:
    """A few fields: mostly valid values, some at the edges of the range, some anything at all."""
    names = draw(st.lists(st.sampled_from(ALL_FIELDS), min_size=1, max_size=5, unique=True))
    fields = {}
    for name in names:
        kind = draw(st.sampled_from(["valid", "valid", "valid", "near", "any"]))
        if kind == "near" and name in NEAR_RANGE:
            fields[name] = draw(NEAR_RANGE[name])
        elif kind == "any":
            fields[name] = draw(ANY_VALUE)
        else:
            fields[name] = draw(VALID[name])
    return fields


def _config_error_is_clear(exc: ConfigError) -> None:
    message = str(exc)
    assert message.startswith("Pipeline."), message  # names the field
    assert any(fix in message for fix in ("; pass ", "raise ", "lower ")), message  # and the fix
    assert "\n" not in message
    assert len(message) < 400


@settings(max_examples=_budget(3000), deadline=None)
@given(fields=any_pipeline_fields())
def test_any_pipeline_fields_give_a_usable_pipeline_or_a_config_error(fields: dict[str, Any]) -> None:
    try:
        pipe = Pipeline(**fields)
    except ConfigError as exc:
        event("ConfigError")
        _config_error_is_clear(exc)
        return
    event("accepted")
    # Every value the stages derive from the fields is sane.
    assert 1 <= pipe.frame_step <= pipe.partial_frames
    for rate in (MIN_SAMPLE_RATE, MODEL_SAMPLE_RATE, MAX_SAMPLE_RATE):
        frame, hop = pipe.trim_frames_at(rate)
        assert 1 <= hop <= frame
    for n_frames in (1, pipe.partial_frames, 10 * pipe.partial_frames + 7):
        windows, target = num_windows(n_frames, pipe.frame_step, pipe.min_coverage, pipe.partial_frames)
        assert 1 <= windows <= n_frames
        assert target == pipe.partial_frames + pipe.frame_step * (windows - 1)
    assert pipe.replace() == pipe


@settings(
    max_examples=_budget(150) if settings.get_current_profile_name() != "long" else 2000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(fields=any_pipeline_fields(), seconds=st.floats(0.3, 3.0))
def test_an_accepted_pipeline_embeds_or_raises_our_error(
    cheap: SpeakerEmbedder, fields: dict[str, Any], seconds: float
) -> None:
    # Accepted values must not crash at use (partial_frames=2**63 once raised RuntimeError there).
    try:
        pipe = Pipeline(**fields)
    except ConfigError:
        return
    try:
        out = cheap.embed_utterances(voice(seconds, 16_000, seed=1), sample_rate=16_000, pipeline=pipe)
    except SpeakerEmbedError as exc:
        if isinstance(exc, ConfigError):
            pytest.fail(f"an accepted Pipeline was refused at use: {exc}")
        event(f"raised {type(exc).__name__}")
        return
    event("embedded")
    assert out.shape == (1, 256)
    assert np.isfinite(out).all()
