"""The Pipeline: defaults, validation of every field, immutability, replace() and presets."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pytest

from speakerembed import ConfigError, Pipeline
from speakerembed.config import MEL_HOP_LENGTH, MODEL_SAMPLE_RATE


def test_defaults_are_chatterboxs() -> None:
    p = Pipeline()
    assert p.order == "resample_trim"
    assert p.resampler == "soxr_hq"
    assert p.resample_device == "cpu"
    assert p.top_db == 20
    assert (p.trim_frame_length, p.trim_hop_length) == (2048, 512)
    assert p.partial_frames == 160
    assert p.rate == 1.3
    assert p.min_coverage == 0.8
    assert p.max_windows_per_batch is None  # picked by the encoder's device
    assert p.max_duration_s is None


def test_windows_per_batch_by_device() -> None:
    from speakerembed.config import DEFAULT_WINDOWS_PER_BATCH

    p = Pipeline()
    assert p.windows_per_batch("cpu") == DEFAULT_WINDOWS_PER_BATCH["cpu"]
    assert p.windows_per_batch("cuda") == p.windows_per_batch("mps") == DEFAULT_WINDOWS_PER_BATCH["gpu"]
    assert DEFAULT_WINDOWS_PER_BATCH["gpu"] > DEFAULT_WINDOWS_PER_BATCH["cpu"]
    # A value set by the caller wins on every device.
    assert Pipeline(max_windows_per_batch=7).windows_per_batch("cuda") == 7
    assert Pipeline(max_windows_per_batch=7).windows_per_batch("cpu") == 7


def test_model_constants() -> None:
    assert MODEL_SAMPLE_RATE == 16_000
    assert MEL_HOP_LENGTH == 160


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("order", "trim_then_resample"),
        ("order", None),
        ("resampler", "kaiser-fast"),  # must be spelled exactly "kaiser_fast"
        ("resampler", "soxr"),
        ("resampler", "sinc"),
        ("resample_device", "gpu"),
        ("top_db", 0),
        ("top_db", -5),
        ("top_db", math.nan),
        ("top_db", math.inf),
        ("top_db", "20"),
        ("top_db", True),
        ("trim_frame_length", 0),
        ("trim_frame_length", 2048.0),
        ("trim_hop_length", -1),
        ("trim_hop_length", 4096),  # larger than the frame
        ("partial_frames", 0),
        ("partial_frames", True),
        ("rate", 0),
        ("rate", -1.3),
        ("rate", math.nan),
        ("rate", 0.01),  # a step of more than partial_frames
        ("rate", 1e6),  # a step of 0 frames
        ("overlap", 1.0),
        ("overlap", -0.1),
        ("min_coverage", 0),
        ("min_coverage", 1.5),
        ("min_coverage", math.nan),
        ("max_windows_per_batch", 0),
        ("max_windows_per_batch", 2.5),
        ("min_duration_s", -0.1),
        ("min_duration_s", math.inf),
        ("max_duration_s", 0),
        ("max_duration_s", -3),
        ("max_duration_s", 0.1),  # below min_duration_s
    ],
)
def test_invalid_field_raises_config_error_naming_it(field: str, value: Any) -> None:
    with pytest.raises(ConfigError, match=rf"Pipeline\.{field}=") as info:
        Pipeline(**{field: value})
    assert isinstance(info.value, ValueError)
    assert "\n" not in str(info.value)


def test_overlap_is_validated_even_when_rate_is_set() -> None:
    with pytest.raises(ConfigError, match=r"Pipeline\.overlap="):
        Pipeline(rate=1.3, overlap=2.0)


def test_bad_choice_lists_the_options() -> None:
    with pytest.raises(ConfigError) as info:
        Pipeline(resampler="kaiser-fast")  # type: ignore[arg-type]
    message = str(info.value)
    for option in ("soxr_hq", "kaiser_fast", "polyphase", "torchaudio"):
        assert repr(option) in message


@pytest.mark.parametrize(
    "kwargs",
    [
        {"order": "trim_resample"},
        {"resampler": "kaiser_fast"},
        {"resampler": "polyphase"},
        {"resampler": "torchaudio", "resample_device": "auto"},
        {"top_db": None},
        {"top_db": 60.5},
        {"rate": None, "overlap": 0.5},
        {"rate": None, "overlap": 0.0},
        {"min_coverage": 1.0},
        {"max_windows_per_batch": 1},
        {"min_duration_s": 0.0},
        {"max_duration_s": 3600},
        {"partial_frames": 80, "rate": 2.6},
    ],
)
def test_valid_values_are_accepted(kwargs: dict[str, Any]) -> None:
    p = Pipeline(**kwargs)
    for key, value in kwargs.items():
        assert getattr(p, key) == value


def test_frozen() -> None:
    p = Pipeline()
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.top_db = 30  # type: ignore[misc]


def test_hashable_and_equal_by_value() -> None:
    assert Pipeline(top_db=30) == Pipeline(top_db=30)
    assert hash(Pipeline(top_db=30)) == hash(Pipeline(top_db=30))
    assert Pipeline(top_db=30) != Pipeline()
    assert len({Pipeline(), Pipeline(), Pipeline(order="trim_resample")}) == 2


def test_replace_returns_a_validated_copy() -> None:
    p = Pipeline()
    q = p.replace(order="trim_resample", top_db=30)
    assert (q.order, q.top_db) == ("trim_resample", 30)
    assert (p.order, p.top_db) == ("resample_trim", 20)
    with pytest.raises(ConfigError, match=r"Pipeline\.top_db="):
        p.replace(top_db=-1)
    with pytest.raises(TypeError):
        p.replace(no_such_field=1)


def test_chatterbox_preset() -> None:
    p = Pipeline.chatterbox()
    assert p.resampler == "kaiser_fast"
    assert p.order == "resample_trim"
    assert p.top_db == 20
    assert p.rate == 1.3
    assert p.partial_frames == 160
    assert p.min_coverage == 0.8


def test_frame_step_with_rate_is_chatterboxs() -> None:
    # Chatterbox: int(np.round((sample_rate / rate) / partial_frames)) with 160 frames of 160 samples.
    assert Pipeline().frame_step == round((16000 / 1.3) / 160) == 77
    assert Pipeline(rate=2.0).frame_step == 50
    assert Pipeline(rate=1.0).frame_step == 100


def test_frame_step_with_overlap() -> None:
    assert Pipeline(rate=None, overlap=0.5).frame_step == 80
    assert Pipeline(rate=None, overlap=0.0).frame_step == 160
    assert Pipeline(rate=None, overlap=0.75, partial_frames=100).frame_step == 25


def test_trim_frames_scale_with_the_sample_rate() -> None:
    p = Pipeline()
    assert p.trim_frames_at(16000) == (2048, 512)
    assert p.trim_frames_at(48000) == (6144, 1536)
    assert p.trim_frames_at(22050) == (round(2048 * 22050 / 16000), round(512 * 22050 / 16000))


def test_repr_names_fields() -> None:
    assert "resampler='kaiser_fast'" in repr(Pipeline.chatterbox())
