"""Each pipeline stage against its reference implementation, on real speech.

References: ``librosa.effects.trim`` (trim); ``librosa.filters.mel`` with ``librosa.stft``
(``center=True, pad_mode="reflect"``), squared magnitudes, which is exactly Chatterbox 0.1.7's
``melspectrogram`` (mel); Chatterbox's ``get_num_wins``/``stride_as_partials`` (windows, written
out below); ``librosa.resample`` with the matching ``res_type`` (resamplers); soundfile (load).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from conftest import speech_wave

from speakerembed import AudioError
from speakerembed.config import Pipeline
from speakerembed.stages.load import load_audio, to_float32, to_mono
from speakerembed.stages.resample import resample, resampled_length
from speakerembed.stages.trim import frame_power, trim_bounds, trim_silence
from speakerembed.stages.windows import num_windows, partial_windows

librosa = pytest.importorskip("librosa", reason="librosa is the reference implementation (test group)")

# Real files at rates other than 16 kHz, relative to the speech directory.
OTHER_RATES = [
    "ljspeech/LJ001-0002.wav",  # 22.05 kHz
    "misc/libritts_24k.wav",  # 24 kHz
    "misc/hifitts_44k.wav",  # 44.1 kHz
    "vctk48k/p236_023.wav",  # 48 kHz
]


# -- trim ------------------------------------------------------------------------------------


@pytest.mark.parametrize("top_db", [20, 30, 60])
def test_trim_matches_librosa_on_librispeech(librispeech_files: list[Path], top_db: float) -> None:
    for path in librispeech_files[::3]:
        wav, sr = speech_wave(path)
        assert sr == 16000
        ref, ref_bounds = librosa.effects.trim(wav, top_db=top_db)
        trimmed, bounds = trim_silence(wav, top_db=top_db)
        assert bounds == tuple(int(b) for b in ref_bounds), path.name
        np.testing.assert_array_equal(trimmed, ref)


@pytest.mark.parametrize("name", OTHER_RATES)
def test_trim_matches_librosa_at_other_rates(speech: Path, name: str) -> None:
    wav, sr = speech_wave(speech / name)
    # The pure function with librosa's default framing, at the file's own rate.
    assert trim_silence(wav, 20)[1] == tuple(int(b) for b in librosa.effects.trim(wav, top_db=20)[1])
    # The Pipeline's framing, scaled to keep 2048/512 samples' worth of 16 kHz time.
    frame, hop = Pipeline().trim_frames_at(sr)
    ref = librosa.effects.trim(wav, top_db=20, frame_length=frame, hop_length=hop)[1]
    assert trim_silence(wav, 20, frame, hop)[1] == tuple(int(b) for b in ref)


def test_trim_synthetic_bounds_and_view() -> None:
    x = np.zeros(32000, np.float32)
    x[10000:20000] = 0.5 * np.sin(np.arange(10000) / 5.0)
    trimmed, (start, end) = trim_silence(x)
    assert (start, end) == tuple(int(b) for b in librosa.effects.trim(x, top_db=20)[1])
    assert start <= 10000
    assert end >= 20000
    assert np.shares_memory(trimmed, x)


def test_frame_power_matches_librosa_rms(short_utterances: list[Path]) -> None:
    wav, _ = speech_wave(short_utterances[0])
    ref = librosa.feature.rms(y=wav, frame_length=2048, hop_length=512)[0].astype(np.float64) ** 2
    ours = frame_power(wav, 2048, 512)
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-12)


def test_trim_bounds_never_exceed_the_signal() -> None:
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(1000) * 0.1).astype(np.float32)
    start, end = trim_bounds(frame_power(x), x.shape[0], 20, 512)
    assert 0 <= start < end <= 1000


# -- mel -------------------------------------------------------------------------------------


def _reference_mel(wav: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    """Chatterbox 0.1.7's melspectrogram (hp: n_fft 400, hop 160, 40 mels, 0-8 kHz, power 2)."""
    basis = librosa.filters.mel(sr=16000, n_fft=400, n_mels=40, fmin=0, fmax=8000)
    spec = np.abs(
        librosa.stft(wav, n_fft=400, hop_length=160, win_length=400, center=True, pad_mode="reflect")
    )
    return np.asarray(np.dot(basis, spec**2.0), dtype=np.float64).T  # (frames, 40)


def test_filterbank_matches_librosa() -> None:
    from speakerembed.stages.mel import slaney_filterbank

    ref = librosa.filters.mel(sr=16000, n_fft=400, n_mels=40, fmin=0, fmax=8000)
    ours = slaney_filterbank()
    assert ours.shape == (40, 201)
    assert ours.dtype == np.float32
    np.testing.assert_allclose(ours, ref, rtol=1e-6, atol=1e-9)


def test_mel_matches_librosa_on_real_speech(librispeech_files: list[Path]) -> None:
    import torch

    from speakerembed.stages.mel import melspectrogram, n_mel_frames

    for path in librispeech_files[::6]:
        wav, _ = speech_wave(path)
        ref = _reference_mel(wav)
        ours = melspectrogram(torch.from_numpy(wav)).numpy().astype(np.float64)
        assert ours.shape == ref.shape == (n_mel_frames(wav.shape[0]), 40)
        rel = np.linalg.norm(ours - ref) / np.linalg.norm(ref)
        assert rel < 1e-5, (path.name, rel)
        # Frame by frame too, for the frames that hold speech energy.
        loud = ref.sum(axis=1) > 1e-3 * ref.sum(axis=1).max()
        np.testing.assert_allclose(ours[loud], ref[loud], rtol=1e-3, atol=1e-6 * ref.max())


@pytest.mark.parametrize("n_samples", [201, 400, 16000, 16159, 16160, 16161])
def test_mel_frame_count(n_samples: int) -> None:
    import torch

    from speakerembed.stages.mel import melspectrogram

    x = np.random.default_rng(n_samples).standard_normal(n_samples).astype(np.float32) * 0.1
    ours = melspectrogram(torch.from_numpy(x))
    assert tuple(ours.shape) == (1 + n_samples // 160, 40)
    if n_samples >= 400:  # librosa warns for signals shorter than n_fft
        assert _reference_mel(x).shape == tuple(ours.shape)


# -- partial windows -------------------------------------------------------------------------


def _chatterbox_get_num_wins(
    n_frames: int, step: int, min_coverage: float, win_size: int = 160
) -> tuple[int, int]:
    """chatterbox 0.1.7 ``voice_encoder.get_num_wins``, verbatim but for the config object."""
    assert n_frames > 0
    n_wins, remainder = divmod(max(n_frames - win_size + step, 0), step)
    if n_wins == 0 or (remainder + (win_size - step)) / win_size >= min_coverage:
        n_wins += 1
    target_n = win_size + step * (n_wins - 1)
    return n_wins, target_n


def _chatterbox_stride_as_partials(
    mel: npt.NDArray[np.float32], frame_step: int, min_coverage: float, partial_frames: int = 160
) -> npt.NDArray[np.float32]:
    """chatterbox 0.1.7 ``stride_as_partials`` after ``get_frame_step``."""
    from numpy.lib.stride_tricks import as_strided

    n_partials, target_len = _chatterbox_get_num_wins(len(mel), frame_step, min_coverage, partial_frames)
    if target_len > len(mel):
        mel = np.concatenate((mel, np.full((target_len - len(mel), mel.shape[1]), 0)))
    elif target_len < len(mel):
        mel = mel[:target_len]
    mel = mel.astype(np.float32, order="C")
    shape = (n_partials, partial_frames, mel.shape[1])
    strides = (mel.strides[0] * frame_step, mel.strides[0], mel.strides[1])
    return np.array(as_strided(mel, shape, strides))


@pytest.mark.parametrize("min_coverage", [0.8, 0.5, 1.0, 0.01])
@pytest.mark.parametrize("step", [77, 1, 50, 80, 160])
def test_num_windows_matches_chatterbox(step: int, min_coverage: float) -> None:
    for n_frames in range(1, 1200):
        assert num_windows(n_frames, step, min_coverage) == _chatterbox_get_num_wins(
            n_frames, step, min_coverage
        )


def test_num_windows_other_partial_sizes() -> None:
    for n_frames in (1, 50, 99, 100, 101, 333):
        assert num_windows(n_frames, 40, 0.8, partial_frames=100) == _chatterbox_get_num_wins(
            n_frames, 40, 0.8, 100
        )


def test_num_windows_rejects_empty() -> None:
    with pytest.raises(ValueError, match="n_frames"):
        num_windows(0, 77, 0.8)


@pytest.mark.parametrize("n_frames", [1, 100, 160, 237, 238, 1000])
def test_partial_windows_match_chatterbox(n_frames: int) -> None:
    import torch

    mel = np.random.default_rng(n_frames).random((n_frames, 40), dtype=np.float32)
    ours = partial_windows(torch.from_numpy(mel), 77, 0.8).numpy()
    np.testing.assert_array_equal(ours, _chatterbox_stride_as_partials(mel, 77, 0.8))


# -- resampling ------------------------------------------------------------------------------

METHODS = ["soxr_hq", "polyphase", "kaiser_fast", "torchaudio"]
RATES = [8000, 11025, 22050, 24000, 32000, 44100, 48000, 96000]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("orig_sr", RATES)
def test_resample_length(method: str, orig_sr: int) -> None:
    if method == "kaiser_fast":
        pytest.importorskip("resampy")
    for n in (1000, 12345, orig_sr):
        x = np.random.default_rng(n).standard_normal(n).astype(np.float32) * 0.1
        y = resample(x, orig_sr, 16000, method)  # type: ignore[arg-type]
        assert y.shape == (resampled_length(n, orig_sr, 16000),) == (math.ceil(n * 16000 / orig_sr),)
        assert y.dtype == np.float32
        assert y.flags.c_contiguous
        assert np.isfinite(y).all()


def test_resample_same_rate_is_identity() -> None:
    x = np.ones(100, np.float32)
    assert resample(x, 16000, 16000) is x


@pytest.mark.parametrize(
    ("method", "res_type"),
    [("soxr_hq", "soxr_hq"), ("polyphase", "polyphase"), ("kaiser_fast", "kaiser_fast")],
)
@pytest.mark.parametrize("name", OTHER_RATES)
def test_resample_matches_librosa(speech: Path, name: str, method: str, res_type: str) -> None:
    if method == "kaiser_fast":
        pytest.importorskip("resampy")
    wav, sr = speech_wave(speech / name)
    ref = librosa.resample(wav, orig_sr=sr, target_sr=16000, res_type=res_type)
    ours = resample(wav, sr, 16000, method)  # type: ignore[arg-type]
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", OTHER_RATES)
def test_torchaudio_port_is_a_good_resampler(speech: Path, name: str) -> None:
    # Exact agreement with torchaudio itself is in test_parity_chatterbox.py (torchaudio lives
    # in that environment); here, it must agree with soxr's high-quality filter on speech.
    wav, sr = speech_wave(speech / name)
    ours = resample(wav, sr, 16000, "torchaudio")
    ref = resample(wav, sr, 16000, "soxr_hq")
    assert ours.shape == ref.shape
    snr = 10 * np.log10(np.sum(ref.astype(np.float64) ** 2) / np.sum((ours - ref).astype(np.float64) ** 2))
    # The filters differ only near 8 kHz (rolloff 0.99 vs soxr's); a misaligned or wrongly scaled
    # kernel gives under 10 dB.
    assert snr > 25, snr


def test_torchaudio_resampler_is_cached() -> None:
    from speakerembed.stages.resample import SincResampler

    a = SincResampler.get(44100, 16000, "cpu")
    b = SincResampler.get(44100, 16000, "cpu")
    assert a is b
    assert SincResampler.get(48000, 16000, "cpu") is not a


def test_kaiser_fast_without_resampy_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from speakerembed import BackendUnavailableError

    monkeypatch.setitem(sys.modules, "resampy", None)
    with pytest.raises(BackendUnavailableError, match=r"speakerembed\[kaiser\]"):
        resample(np.zeros(4410, np.float32), 44100, 16000, "kaiser_fast")


# -- load ------------------------------------------------------------------------------------


def test_int16_full_scale() -> None:
    x = np.array([-32768, -16384, 0, 16384, 32767], dtype=np.int16)
    np.testing.assert_array_equal(
        to_float32(x, "x"), np.array([-1.0, -0.5, 0.0, 0.5, 32767 / 32768], np.float32)
    )


def test_int32_full_scale() -> None:
    x = np.array([-(2**31), 0, 2**30], dtype=np.int32)
    np.testing.assert_allclose(to_float32(x, "x"), [-1.0, 0.0, 0.5])


def test_int8_and_uint8() -> None:
    np.testing.assert_array_equal(
        to_float32(np.array([-128, 64], np.int8), "x"), np.array([-1.0, 0.5], np.float32)
    )
    np.testing.assert_array_equal(
        to_float32(np.array([0, 128, 192, 255], np.uint8), "x"),
        np.array([-1.0, 0.0, 0.5, 127 / 128], np.float32),
    )


def test_float64_becomes_float32_unchanged() -> None:
    x = np.linspace(-1, 1, 101)
    y = to_float32(x, "x")
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, x, atol=1e-7)


def test_pcm_and_float_give_the_same_embedding_input() -> None:
    x16 = (np.sin(np.arange(16000) / 7) * 20000).astype(np.int16)
    a, sr_a = load_audio(x16, 16000)
    b, sr_b = load_audio(x16.astype(np.float64) / 32768, 16000)
    assert sr_a == sr_b == 16000
    np.testing.assert_allclose(a, b, atol=1e-7)


@pytest.mark.parametrize("dtype", [np.int64, np.complex64, np.bool_, np.uint16])
def test_unsupported_dtypes_are_rejected(dtype: type) -> None:
    with pytest.raises(AudioError, match="dtype"):
        to_float32(np.zeros(10, dtype=dtype), "input 0")


def test_float_audio_out_of_range_is_rejected() -> None:
    with pytest.raises(AudioError, match="integer PCM stored as float"):
        to_float32(np.array([0.0, 3000.0], np.float32), "input 0")


def test_stereo_channels_first_and_last_downmix_to_the_mean() -> None:
    rng = np.random.default_rng(1)
    left, right = rng.standard_normal((2, 8000)).astype(np.float32) * 0.1
    expected = (left + right) / 2
    first = to_mono(np.stack([left, right]), "x")  # (2, 8000)
    last = to_mono(np.stack([left, right], axis=1), "x")  # (8000, 2)
    np.testing.assert_allclose(first, expected, atol=1e-7)
    np.testing.assert_allclose(last, expected, atol=1e-7)
    assert first.flags.c_contiguous
    assert last.flags.c_contiguous


def test_single_channel_axes_are_dropped() -> None:
    x = np.arange(100, dtype=np.float32) / 100
    np.testing.assert_array_equal(to_mono(x[None, :], "x"), x)
    np.testing.assert_array_equal(to_mono(x[:, None], "x"), x)


def test_ambiguous_or_high_dimensional_layouts_are_rejected() -> None:
    with pytest.raises(AudioError, match="channels"):
        to_mono(np.zeros((40, 50), np.float32), "input 0")
    with pytest.raises(AudioError, match="dimensions"):
        to_mono(np.zeros((2, 2, 100), np.float32), "input 0")


def test_load_audio_needs_a_sample_rate_for_arrays() -> None:
    with pytest.raises(AudioError, match="sample_rate"):
        load_audio(np.zeros(1600, np.float32))


def test_load_audio_tensor_equals_array() -> None:
    import torch

    x = np.random.default_rng(2).standard_normal((2, 4000)).astype(np.float32) * 0.1
    a, _ = load_audio(x, 16000)
    b, _ = load_audio(torch.from_numpy(x), 16000)
    np.testing.assert_array_equal(a, b)


def _manifest(speech: Path) -> dict[str, dict[str, str]]:
    with (speech / "MANIFEST.tsv").open() as f:
        return {row["path"]: row for row in csv.DictReader(f, delimiter="\t")}


@pytest.mark.parametrize(
    "name",
    [
        "arctic/cmu_arctic_us_aew_a0001.wav",  # WAV PCM_16
        "ami/dev00.wav",  # WAV 32-bit float
        "librispeech/1688/1688-142285-0002.flac",  # FLAC
        "misc/jfk_44k_stereo.flac",  # FLAC, stereo, 24-bit
        "misc/librispeech_198_22k.ogg",  # Ogg Vorbis
        "misc/1320_00000.mp3",  # MP3
        "misc/commonvoice_48k.mp3",  # MP3, 48 kHz
    ],
)
def test_load_files_of_every_format(speech: Path, name: str) -> None:
    import soundfile as sf

    row = _manifest(speech)[name]
    wav, sr = load_audio(speech / name)
    assert sr == int(row["sample_rate"])
    assert wav.ndim == 1
    assert wav.dtype == np.float32
    assert abs(wav.shape[0] / sr - float(row["duration_s"])) < 0.1
    ref, ref_sr = sf.read(str(speech / name), dtype="float32", always_2d=True)
    assert ref_sr == sr
    np.testing.assert_allclose(wav, ref.mean(axis=1), atol=1e-6)
    assert 0.01 < float(np.max(np.abs(wav))) <= 1.0
