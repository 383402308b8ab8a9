"""Every class of bad input gets a SpeakerEmbedError subclass that names the input and the fix.

The table below is the suite the reliability issue asks for: each case is one bad input, the
error class it must raise, the name the message must carry (the input's index, its path, or the
Pipeline field), and what the message must say was wrong. Every message must also say what to
do, which :data:`FIX` checks. Nothing else (no TypeError, no RuntimeWarning turned error, no
crash in a C library) may come out.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import struct
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from _signals import voice, write_header_only_wav

import speakerembed
from speakerembed import (
    AudioError,
    ConfigError,
    InputTooLongError,
    Pipeline,
    SpeakerEmbedder,
    SpeakerEmbedError,
    utt_to_spk_embed,
)

SR = 16_000
GOOD = voice(2.0)

#: Words that tell the user what to do. Every message must hold one.
FIX = re.compile(
    r"\b(pass|convert|check|re-encode|install|cut|repair|drop|raise|lower|divide|save|chmod|"
    r"reinstall|download|decode|normalise|use)\b"
)


@dataclasses.dataclass(frozen=True)
class Case:
    """One bad input.

    ``call(embedder, files)`` makes the failing call; ``name`` is what the message must name
    (``{d}`` stands for the directory of crafted files); ``says`` is a regex for the problem.
    """

    id: str
    call: Callable[[SpeakerEmbedder, Path], object]
    error: type[SpeakerEmbedError]
    name: str
    says: str


def _arr(x: Any, **kw: Any) -> Callable[[SpeakerEmbedder, Path], object]:
    """Embed one array (or any object) at 16 kHz unless ``kw`` says otherwise."""
    kw.setdefault("sample_rate", SR)
    return lambda e, d: e.embed_utterances(x, **kw)


def _file(name: str, **kw: Any) -> Callable[[SpeakerEmbedder, Path], object]:
    return lambda e, d: e.embed_utterances(d / name, **kw)


def _nan_at(i: int, value: float) -> np.ndarray:
    x = GOOD.copy()
    x[i] = value
    return x


def _meta_tensor() -> Any:
    import torch

    return torch.empty(SR, device="meta")


def _complex_tensor() -> Any:
    import torch

    return torch.from_numpy(GOOD).to(torch.complex64)


_click = np.zeros(3 * SR, np.float32)
_click[SR : SR + 40] = 0.9

CASES: list[Case] = [
    # -- arrays and tensors ---------------------------------------------------------------------
    Case("empty-1d", _arr(np.zeros(0, np.float32)), AudioError, "input 0", r"is empty"),
    Case("empty-2d", _arr(np.zeros((2, 0), np.float32)), AudioError, "input 0", r"is empty"),
    Case("too-short-0.1s", _arr(voice(0.1)), AudioError, "input 0", r"less than the minimum of 0\.25 s"),
    Case(
        "too-short-no-trim",
        _arr(voice(0.2), pipeline=Pipeline(top_db=None)),
        AudioError,
        "input 0",
        r"0\.200 s of audio is left, less than the minimum of 0\.25 s",
    ),
    Case("digital-silence", _arr(np.zeros(3 * SR, np.float32)), AudioError, "input 0", r"digital silence"),
    Case("below-minus-100-dBFS", _arr(GOOD * 1e-6), AudioError, "input 0", r"digital silence"),
    Case(
        "nothing-left-after-trim",
        _arr(_click),
        AudioError,
        "input 0",
        r"after trimming silence, 0\.\d+ s of audio is left",
    ),
    Case("dc-offset-only", _arr(np.full(2 * SR, 0.25, np.float32)), AudioError, "input 0", r"DC offset"),
    Case("nan", _arr(_nan_at(100, np.nan)), AudioError, "input 0", r"1 NaN or infinite sample.*index 100"),
    Case("inf", _arr(_nan_at(7, np.inf)), AudioError, "input 0", r"NaN or infinite"),
    Case(
        "minus-inf-stereo",
        _arr(np.stack([GOOD, _nan_at(3, -np.inf)])),
        AudioError,
        "input 0",
        r"NaN or infinite",
    ),
    Case("float64-overflows-float32", _arr(np.full(SR, 1e300)), AudioError, "input 0", r"peak at 1e\+300"),
    Case("int-pcm-as-float", _arr(GOOD * 32767.0), AudioError, "input 0", r"outside \[-1, 1\]"),
    Case("3-d", _arr(GOOD[None, None, :]), AudioError, "input 0", r"has 3 dimensions"),
    Case("4-d", _arr(np.zeros((1, 1, 2, SR), np.float32)), AudioError, "input 0", r"has 4 dimensions"),
    Case("numpy-scalar", _arr(np.float32(0.5)), AudioError, "inputs", r"is a float32"),
    Case("0-d-array", _arr(np.array(0.5, np.float32)), AudioError, "input 0", r"scalar"),
    Case("ambiguous-2d", _arr(np.zeros((40, 50), np.float32) + 0.1), AudioError, "input 0", r"channels"),
    Case("strings", _arr(np.array(["a", "b", "c"])), AudioError, "input 0", r"dtype <U1, which is not audio"),
    Case("objects", _arr(np.array([GOOD, None], dtype=object)), AudioError, "input 0", r"dtype object"),
    Case("complex", _arr(GOOD.astype(np.complex128)), AudioError, "input 0", r"complex"),
    Case(
        "complex-tensor",
        lambda e, d: e.embed_utterances(_complex_tensor(), sample_rate=SR),
        AudioError,
        "input 0",
        r"complex",
    ),
    Case("bool", _arr(GOOD > 0), AudioError, "input 0", r"dtype bool"),
    Case("int64", _arr((GOOD * 32767).astype(np.int64)), AudioError, "input 0", r"int64.*no standard PCM"),
    Case("uint16", _arr((GOOD * 32767 + 32768).astype(np.uint16)), AudioError, "input 0", r"uint16"),
    Case(
        "meta-tensor",
        lambda e, d: e.embed_utterances(_meta_tensor(), sample_rate=SR),
        AudioError,
        "input 0",
        r"cannot be copied to the host",
    ),
    Case("python-list-in-batch", _arr([GOOD, GOOD.tolist()]), AudioError, "input 1", r"is a list"),
    Case("none-in-batch", _arr([GOOD, None]), AudioError, "input 1", r"NoneType"),
    # bytes are an encoded file (embed_utterances(open(p, "rb").read())); these are not audio
    Case("bytes-not-audio", _arr(b"RIFF0000WAVE"), AudioError, "input 0", r"is not audio"),
    Case("dict", _arr({"audio": GOOD}), AudioError, "inputs", r"dict"),
    Case("empty-batch", _arr([]), AudioError, "inputs", r"inputs is empty"),
    Case("list-of-numbers", _arr([0.1, 0.2, 0.3]), AudioError, "inputs", r"list of numbers"),
    # -- sample rates ---------------------------------------------------------------------------
    Case("rate-missing", _arr(GOOD, sample_rate=None), AudioError, "input 0", r"needs its sample rate"),
    Case("rate-zero", _arr(GOOD, sample_rate=0), AudioError, "input 0", r"sample_rate=0 Hz is outside"),
    Case("rate-negative", _arr(GOOD, sample_rate=-16000), AudioError, "input 0", r"-16000 Hz is outside"),
    Case("rate-fractional", _arr(GOOD, sample_rate=16000.5), AudioError, "input 0", r"not a whole number"),
    Case("rate-absurd", _arr(GOOD, sample_rate=1e9), AudioError, "input 0", r"outside the supported"),
    Case("rate-nan", _arr(GOOD, sample_rate=float("nan")), AudioError, "input 0", r"not a whole number"),
    Case("rate-string", _arr(GOOD, sample_rate="16000"), AudioError, "input 0", r"not a number"),
    Case("rate-bool", _arr(GOOD, sample_rate=True), AudioError, "input 0", r"not a number"),
    Case(
        "rate-list-too-short",
        _arr([GOOD, GOOD, GOOD], sample_rate=[SR, SR]),
        AudioError,
        "sample_rate",
        r"2 entries for 3 inputs",
    ),
    Case("rate-per-input-bad", _arr([GOOD, GOOD], sample_rate=[SR, 0]), AudioError, "input 1", r"0 Hz"),
    Case("file-header-0-hz", _file("zero_hz.wav"), AudioError, "{d}/zero_hz.wav", r"header that says 0 Hz"),
    Case("file-header-1-hz", _file("one_hz.wav"), AudioError, "{d}/one_hz.wav", r"header that says 1 Hz"),
    # -- files ----------------------------------------------------------------------------------
    Case("missing", _file("missing.wav"), AudioError, "{d}/missing.wav", r"no such file"),
    Case("directory", _file("a_directory"), AudioError, "{d}/a_directory", r"is a directory"),
    Case("empty-path", lambda e, d: e.embed_utterances(""), AudioError, "input 0", r"empty path"),
    Case("zero-bytes", _file("zero.wav"), AudioError, "{d}/zero.wav", r"empty file \(0 bytes\)"),
    Case(
        "truncated-header",
        _file("truncated_header.wav"),
        AudioError,
        "{d}/truncated_header.wav",
        r"not audio that libsndfile can decode",
    ),
    Case(
        "truncated-data",
        _file("truncated_data.wav"),
        AudioError,
        "{d}/truncated_data.wav",
        r"less than the minimum",
    ),
    Case("text-as-wav", _file("text.wav"), AudioError, "{d}/text.wav", r"text file"),
    Case("png-as-wav", _file("image.wav"), AudioError, "{d}/image.wav", r"image"),
    Case("random-bytes-wav", _file("random.wav"), AudioError, "{d}/random.wav", r"not audio"),
    Case("random-bytes-flac", _file("random.flac"), AudioError, "{d}/random.flac", r"not audio"),
    Case("unsupported-codec", _file("codec.wav"), AudioError, "{d}/codec.wav", r"unsupported codec"),
    Case("wav-0-frames", _file("no_frames.wav"), AudioError, "{d}/no_frames.wav", r"holds no samples"),
    Case("mp3-0-frames", _file("no_frames.mp3"), AudioError, "{d}/no_frames.mp3", r"not audio"),
    Case("fifo", _file("a_fifo.wav"), AudioError, "{d}/a_fifo.wav", r"not a regular file"),
    # -- bounded work ---------------------------------------------------------------------------
    Case(
        "long-file-header",
        _file("ten_hours.wav", pipeline=Pipeline(max_duration_s=60)),
        InputTooLongError,
        "{d}/ten_hours.wav",
        r"lasts 36000\.0 s, more than max_duration_s=60",
    ),
    Case(
        "huge-array",
        _arr(np.broadcast_to(np.float32(0.1), (SR * 3600 * 10,)), pipeline=Pipeline(max_duration_s=60)),
        InputTooLongError,
        "input 0",
        r"max_duration_s=60",
    ),
    Case(
        "huge-stereo-array",
        _arr(np.broadcast_to(np.int16(3), (2, SR * 3600)), pipeline=Pipeline(max_duration_s=5)),
        InputTooLongError,
        "input 0",
        r"lasts 3600\.0 s",
    ),
    # -- batches: fail fast, naming which -------------------------------------------------------
    Case(
        "bad-among-good",
        _arr([GOOD, GOOD, np.zeros(SR, np.float32), GOOD]),
        AudioError,
        "input 2",
        r"digital silence",
    ),
    Case(
        "bad-file-among-good",
        lambda e, d: e.embed_utterances([GOOD, d / "text.wav"], sample_rate=SR),
        AudioError,
        "input 1 ({d}/text.wav)",
        r"text file",
    ),
    # -- configuration --------------------------------------------------------------------------
    Case(
        "errors-mode", _arr(GOOD, errors="ignore"), ConfigError, "errors='ignore'", r"not 'raise' or 'skip'"
    ),
    Case(
        "pipeline-type",
        _arr(GOOD, pipeline={"top_db": 20}),
        ConfigError,
        "pipeline=",
        r"not a speakerembed\.Pipeline",
    ),
    Case(
        "utt-1d",
        lambda e, d: utt_to_spk_embed(np.ones(256, np.float32) / 16),
        ConfigError,
        "utt_embeds",
        r"shape \(256,\)",
    ),
    Case(
        "utt-empty",
        lambda e, d: utt_to_spk_embed(np.zeros((0, 256), np.float32)),
        ConfigError,
        "utt_embeds",
        r"at least one row",
    ),
    Case(
        "utt-nan",
        lambda e, d: utt_to_spk_embed(np.full((2, 4), np.nan)),
        ConfigError,
        "rows [0, 1]",
        r"NaN or Inf",
    ),
    Case(
        "utt-not-unit",
        lambda e, d: utt_to_spk_embed(np.eye(3) * 2.0),
        ConfigError,
        "rows [0, 1, 2]",
        r"not unit norm",
    ),
]

#: Invalid values for every Pipeline field: each must raise ConfigError naming the field.
BAD_PIPELINES: list[tuple[str, object]] = [
    ("order", "trim"),
    ("resampler", "sinc"),
    ("resample_device", "gpu"),
    ("top_db", 0),
    ("top_db", -5.0),
    ("top_db", float("nan")),
    ("trim_frame_length", 0),
    ("trim_hop_length", 4096),
    ("partial_frames", 1.5),
    ("rate", 0.0),
    ("rate", 1e6),
    ("overlap", 1.0),
    ("min_coverage", 0.0),
    ("max_windows_per_batch", True),
    ("min_duration_s", -1.0),
    ("max_duration_s", 0.0),
    ("max_duration_s", 0.1),  # below min_duration_s
]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory of crafted bad files."""
    d = tmp_path_factory.mktemp("bad_files")
    sf.write(d / "good.wav", GOOD, SR, subtype="PCM_16")
    good = (d / "good.wav").read_bytes()
    fmt = good.find(b"fmt ")
    (d / "a_directory").mkdir()
    (d / "zero.wav").write_bytes(b"")
    (d / "truncated_header.wav").write_bytes(good[:30])
    (d / "truncated_data.wav").write_bytes(good[: 44 + 2 * 1600])  # 0.1 s of 2 s
    (d / "text.wav").write_text("this is a text file, not audio\n" * 20)
    (d / "image.wav").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4)
    rng = np.random.default_rng(0)
    (d / "random.wav").write_bytes(rng.bytes(8192))
    (d / "random.flac").write_bytes(rng.bytes(8192))
    for name, rate in (("zero_hz.wav", 0), ("one_hz.wav", 1)):
        b = bytearray(good)
        struct.pack_into("<I", b, fmt + 12, rate)
        (d / name).write_bytes(bytes(b))
    codec = bytearray(good)
    struct.pack_into("<H", codec, fmt + 8, 0x1234)  # an unknown WAVE format tag
    (d / "codec.wav").write_bytes(bytes(codec))
    sf.write(d / "no_frames.wav", np.zeros(0, np.float32), SR)
    (d / "no_frames.mp3").write_bytes(b"ID3\x04\x00\x00\x00\x00\x00\x00")  # an ID3 tag, no frames
    if hasattr(os, "mkfifo"):
        os.mkfifo(d / "a_fifo.wav")
    write_header_only_wav(d / "ten_hours.wav", 10 * 3600)
    return d


@pytest.fixture(autouse=True)
def _no_ffmpeg(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hide ffmpeg, so the messages are libsndfile's on every machine."""
    real_which = shutil.which
    monkeypatch.setattr(
        speakerembed.stages.load.shutil,
        "which",
        lambda cmd, *a, **k: None if "ff" in cmd else real_which(cmd, *a, **k),
    )


def assert_actionable(err: BaseException, name: str, says: str) -> None:
    """The message names the input, says what is wrong, and says what to do."""
    text = str(err)
    assert name in text, f"message does not name {name!r}: {text}"
    assert re.search(says, text), f"message does not say {says!r}: {text}"
    assert FIX.search(text), f"message does not say what to do: {text}"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_gets_a_clear_error(case: Case, embedder: SpeakerEmbedder, files: Path) -> None:
    if case.id == "fifo" and not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs on this platform")
    with pytest.raises(SpeakerEmbedError) as info:
        case.call(embedder, files)
    err = info.value
    assert type(err) is case.error, f"{type(err).__name__}: {err}"
    assert_actionable(err, case.name.format(d=files), case.says)
    # The built-in it resembles still catches it.
    if isinstance(err, (AudioError, ConfigError)):
        assert isinstance(err, ValueError)


def test_the_table_is_large_enough() -> None:
    assert len(CASES) + len(BAD_PIPELINES) >= 40
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize(("field", "value"), BAD_PIPELINES, ids=[f"{f}={v!r}" for f, v in BAD_PIPELINES])
def test_every_invalid_pipeline_field_is_rejected_at_construction(field: str, value: object) -> None:
    with pytest.raises(ConfigError) as info:
        Pipeline(**{field: value})  # type: ignore[arg-type]
    assert_actionable(info.value, f"Pipeline.{field}", r".")


def test_errors_carry_the_input_and_the_stage(embedder: SpeakerEmbedder, files: Path) -> None:
    with pytest.raises(AudioError) as info:
        embedder.embed_utterances([GOOD, files / "zero.wav"], sample_rate=SR)
    assert info.value.source == f"input 1 ({files / 'zero.wav'})"
    assert info.value.stage == "load"
    with pytest.raises(AudioError) as info:
        embedder.embed_utterances([GOOD, np.zeros(SR, np.float32)], sample_rate=SR)
    assert info.value.source == "input 1"
    assert info.value.stage == "trim"


def test_fail_fast_stops_at_the_first_bad_input(
    tuned: Callable[..., SpeakerEmbedder], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The default mode prepares no input after the bad one beyond the burst it was in."""
    from speakerembed._engine.prefetch import BURST_PER_THREAD

    seen: list[object] = []
    from speakerembed._engine import preparation

    real = preparation.load_audio

    def spy(item: object, *args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs.get("source"))
        return real(item, *args, **kwargs)

    monkeypatch.setattr(preparation, "load_audio", spy)
    inputs = [GOOD, np.zeros(0, np.float32), *[GOOD] * 20]
    # In line: nothing after the bad input.
    with pytest.raises(AudioError, match="input 1"):
        tuned(prefetch_depth=0, prepare_threads=1).embed_utterances(inputs, sample_rate=SR)
    assert seen == ["input 0", "input 1"]
    # In bursts on two threads: the rest of the first burst at most, never the next burst.
    seen.clear()
    with pytest.raises(AudioError, match="input 1"):
        tuned(prefetch_depth=0, prepare_threads=2).embed_utterances(inputs, sample_rate=SR)
    assert {"input 0", "input 1"} <= set(seen) <= {f"input {i}" for i in range(2 * BURST_PER_THREAD)}


# -- bounded work: the cap acts before any decoding or allocation -------------------------------


def test_max_duration_rejects_a_long_file_before_decoding(
    embedder: SpeakerEmbedder, files: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_read(*args: object, **kwargs: object) -> None:
        raise AssertionError("the file was decoded despite max_duration_s")

    monkeypatch.setattr(sf, "read", no_read)
    monkeypatch.setattr(sf.SoundFile, "read", no_read)
    with pytest.raises(InputTooLongError):
        embedder.embed_utterances(files / "ten_hours.wav", pipeline=Pipeline(max_duration_s=3600))


def test_max_duration_rejects_a_huge_tensor_without_copying_it(embedder: SpeakerEmbedder) -> None:
    import torch

    huge = torch.zeros(1, dtype=torch.float32).expand(SR * 3600 * 24)  # one day, 4 bytes held
    with pytest.raises(InputTooLongError, match=r"lasts 86400\.0 s"):
        embedder.embed_utterances(huge, sample_rate=SR, pipeline=Pipeline(max_duration_s=600))


def test_max_duration_admits_what_is_under_the_cap(embedder: SpeakerEmbedder) -> None:
    out = embedder.embed_utterances(GOOD, sample_rate=SR, pipeline=Pipeline(max_duration_s=2.5))
    assert out.shape == (1, 256)
    with pytest.raises(InputTooLongError):
        embedder.embed_utterances(GOOD, sample_rate=SR, pipeline=Pipeline(max_duration_s=1.5))


def test_cli_max_duration(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from speakerembed.cli import main

    code = main(
        [
            "embed",
            str(files / "ten_hours.wav"),
            "--weights",
            "resemblyzer",
            "--device",
            "cpu",
            "--max-duration",
            "60",
        ]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert "ten_hours.wav" in err
    assert "more than --max-duration 60" in err  # the flag's spelling, not the keyword's
    assert "max_duration_s" not in err


# -- permissions: tests run as root, so unreadability is simulated, and also made real ------------


def test_unreadable_file_simulated(
    embedder: SpeakerEmbedder, files: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A PermissionError from opening the file becomes an AudioError naming it."""
    real_open = open
    target = str(files / "good.wav")

    def guarded_open(file: Any, *args: Any, **kwargs: Any) -> Any:
        if os.fspath(file) == target:
            raise PermissionError(13, "Permission denied", target)
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(speakerembed.stages.load, "open", guarded_open, raising=False)
    with pytest.raises(AudioError) as info:
        embedder.embed_utterances(files / "good.wav")
    assert_actionable(info.value, target, r"permission denied")


@pytest.mark.parametrize("stage", ["open", "read"])
def test_permission_error_from_soundfile_is_mapped(
    stage: str, embedder: SpeakerEmbedder, files: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """soundfile raising PermissionError (as it does for file objects) is ours, naming the file."""

    def denied(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    if stage == "open":
        monkeypatch.setattr(sf, "SoundFile", denied)
    else:
        monkeypatch.setattr(sf.SoundFile, "read", denied)
    with pytest.raises(AudioError) as info:
        embedder.embed_utterances(files / "good.wav")
    assert_actionable(info.value, str(files / "good.wav"), r"permission denied")


@pytest.mark.skipif(not hasattr(os, "geteuid"), reason="POSIX users only")
@pytest.mark.parametrize("directory_mode", [0o755, 0o700], ids=["file-locked", "directory-locked"])
def test_unreadable_file_real(
    embedder: SpeakerEmbedder, files: Path, tmp_path: Path, directory_mode: int
) -> None:
    """A real permission failure: a mode-000 file read as an unprivileged effective user.

    As root, the effective uid is dropped for the duration of the call (libsndfile itself then
    fails to open the file and reports a bare system error, which must still be mapped). As
    another user, the mode alone is enough.
    """
    path = tmp_path / "locked.wav"
    shutil.copy(files / "good.wav", path)
    path.chmod(0)
    tmp_path.chmod(directory_mode)  # 0o700: the file cannot even be reached
    dropped = False
    try:
        if os.geteuid() == 0:
            try:
                os.seteuid(65534)
                dropped = True
            except OSError as exc:  # pragma: no cover - containers without setuid
                pytest.skip(f"cannot drop to an unprivileged user here ({exc})")
        with pytest.raises(AudioError) as info:
            embedder.embed_utterances(path)
    finally:
        if dropped:
            os.seteuid(0)
        path.chmod(0o644)
    assert_actionable(info.value, str(path), r"permission denied")


def test_unreadable_file_is_a_failure_in_skip_mode(
    embedder: SpeakerEmbedder, files: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def denied(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(sf, "SoundFile", denied)
    result = embedder.embed_utterances([GOOD, files / "good.wav"], sample_rate=SR, errors="skip")
    assert result.indices.tolist() == [0]
    assert [f.index for f in result.failures] == [1]
    assert "permission denied" in str(result.failures[0].error)


def test_no_stray_warnings_escape(embedder: SpeakerEmbedder) -> None:
    """pytest turns warnings into errors; these inputs must raise ours, not a warning."""
    with pytest.raises(AudioError):
        embedder.embed_utterances(np.array([1e300, -1e300] * SR), sample_rate=SR)
    with pytest.raises(AudioError):
        embedder.embed_utterances(np.array([np.nan] * SR, dtype=np.float16), sample_rate=SR)


if sys.platform == "win32":  # pragma: no cover
    pytestmark = pytest.mark.skip(reason="the crafted files assume POSIX paths")
