"""Stage 1: decode a file, or take an array, as mono float32.

The rules, in order:

1. **Decode.** Paths are read with soundfile (libsndfile: WAV, FLAC, Ogg Vorbis/Opus, MP3 and
   more). Where libsndfile cannot read a file and ``ffmpeg`` is on the ``PATH``, ffmpeg decodes
   it instead. Encoded bytes and binary file objects (an upload, ``io.BytesIO``) are decoded in
   memory by the same libsndfile, with the same errors; only when libsndfile cannot read them
   and ffmpeg can are they written to a private temporary file, removed as soon as it is read.
2. **Convert to float32 in [-1, 1].** Signed PCM is divided by its full scale (``int8`` by 2**7,
   ``int16`` by 2**15, ``int32`` by 2**31); ``uint8`` is offset by 128 first. Floats are kept as
   they are. Float audio that peaks above :data:`MAX_FLOAT_PEAK` is rejected: it is nearly always
   integer PCM stored as float, and would give a silently wrong embedding.
3. **Downmix to mono** by the mean of the channels. A 2-D array is read as channels-first,
   ``(channels, samples)``, when its first axis is the shorter one and holds at most
   :data:`MAX_CHANNELS` entries; as channels-last, ``(samples, channels)``, in the mirror case.
   An axis of length 1 is dropped. Anything else is ambiguous and rejected.
"""

from __future__ import annotations

import errno
import io
import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import AudioError, InputTooLongError
from ._quiet_stderr import decoder_output_quiet

if TYPE_CHECKING:
    import numpy.typing as npt
    from soundfile import SoundFile

__all__ = [
    "MAX_CHANNELS",
    "MAX_FLOAT_PEAK",
    "MAX_SAMPLE_RATE",
    "MIN_SAMPLE_RATE",
    "check_finite_file",
    "check_sample_rate",
    "is_encoded_audio",
    "load_audio",
    "read_bytes",
    "read_file",
    "to_float32",
    "to_mono",
]

#: Most channels a 2-D array may have along its channel axis.
MAX_CHANNELS = 16
#: Lowest sample rate accepted, in Hz.
MIN_SAMPLE_RATE = 4_000
#: Highest sample rate accepted, in Hz.
MAX_SAMPLE_RATE = 768_000
#: Float audio peaking above this is taken for mis-scaled integer PCM and rejected.
MAX_FLOAT_PEAK = 2.0

_INT_SCALE = {np.dtype(np.int8): 2.0**7, np.dtype(np.int16): 2.0**15, np.dtype(np.int32): 2.0**31}
_FFMPEG_TIMEOUT_S = 600


def check_sample_rate(sample_rate: object, source: str) -> int:
    """Validate a sample rate and return it as an int.

    Raises
    ------
    AudioError
        If it is missing, not a whole number, or outside
        [:data:`MIN_SAMPLE_RATE`, :data:`MAX_SAMPLE_RATE`].
    """
    if sample_rate is None:
        raise AudioError(
            "an array or tensor needs its sample rate; pass sample_rate=16000 (or the rate of "
            "your audio), or pass a file path, which carries its own",
            source=source,
            stage="load",
        )
    value: float
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, float, np.integer, np.floating)):
        raise AudioError(
            f"sample_rate={sample_rate!r} is not a number; pass the rate in Hz as an int, e.g. 16000",
            source=source,
            stage="load",
        )
    value = float(sample_rate)
    if not np.isfinite(value) or value != int(value):
        raise AudioError(
            f"sample_rate={sample_rate!r} is not a whole number of Hz; pass an int, e.g. 44100",
            source=source,
            stage="load",
        )
    if not MIN_SAMPLE_RATE <= value <= MAX_SAMPLE_RATE:
        raise AudioError(
            f"sample_rate={sample_rate!r} Hz is outside the supported {MIN_SAMPLE_RATE}.."
            f"{MAX_SAMPLE_RATE} Hz; check that you passed the rate in Hz",
            source=source,
            stage="load",
        )
    return int(value)


def to_float32(array: npt.NDArray[Any], source: str) -> npt.NDArray[np.float32]:
    """Convert PCM or float samples of any supported dtype to float32 in [-1, 1].

    Parameters
    ----------
    array : numpy.ndarray
        Samples: signed or unsigned 8-bit, 16- or 32-bit signed PCM, or float.
    source : str
        The input's name for error messages.

    Returns
    -------
    numpy.ndarray, float32, same shape

    Raises
    ------
    AudioError
        For other dtypes (complex, bool, strings, objects, int64), for NaN or Inf, and for float
        audio peaking above :data:`MAX_FLOAT_PEAK`.
    """
    dtype = array.dtype
    out: npt.NDArray[np.float32]
    if dtype in _INT_SCALE:
        out = array.astype(np.float32) / np.float32(_INT_SCALE[dtype])
    elif dtype == np.uint8:
        out = (array.astype(np.float32) - np.float32(128.0)) / np.float32(128.0)
    elif dtype.kind == "f":
        # Check the values in their own dtype: a float64 sample beyond float32's range would
        # overflow (with a RuntimeWarning) in the cast.
        # Two reductions, no temporary: the minimum and maximum are NaN or infinite exactly
        # when some sample is, and they give the peak.
        low = float(np.min(array)) if array.size else 0.0
        high = float(np.max(array)) if array.size else 0.0
        if not (np.isfinite(low) and np.isfinite(high)):
            finite = np.isfinite(array)
            bad = int(array.size - np.count_nonzero(finite))
            first = int(np.argmin(finite.reshape(-1)))
            raise AudioError(
                f"holds {bad} NaN or infinite sample(s), the first at flat index {first}; "
                "repair or drop this audio (np.nan_to_num can zero them)",
                source=source,
                stage="load",
            )
        peak = max(-low, high)
        if peak > MAX_FLOAT_PEAK:
            raise AudioError(
                f"float samples peak at {peak:.4g}, outside [-1, 1]; this looks like integer PCM "
                "stored as float: divide by its full scale (32768 for 16-bit) or pass the "
                "integer array itself",
                source=source,
                stage="load",
            )
        out = np.asarray(array, dtype=np.float32)
    elif dtype.kind == "c":
        raise AudioError(
            f"has complex dtype {dtype}; pass real samples (for example np.real(x), or a "
            "waveform rather than a spectrum)",
            source=source,
            stage="load",
        )
    elif dtype.kind in "iu":
        # int64, uint16, uint32...: no audio format stores these, so their full scale is unknown.
        raise AudioError(
            f"has dtype {dtype}, which has no standard PCM full scale; convert it: "
            "x.astype(np.int16) if it holds 16-bit samples, x.astype(np.int32) for 32-bit, or "
            "float32 in [-1, 1]",
            source=source,
            stage="load",
        )
    else:
        raise AudioError(
            f"has dtype {dtype}, which is not audio; pass float32/float64 in [-1, 1], or "
            "int16, int32, int8 or uint8 PCM",
            source=source,
            stage="load",
        )
    return out


def to_mono(array: npt.NDArray[np.float32], source: str) -> npt.NDArray[np.float32]:
    """Downmix a 1-D or 2-D float32 array to mono (see the module rules).

    Returns
    -------
    numpy.ndarray, shape (n_samples,), float32, C-contiguous
    """
    if array.ndim == 0:
        raise AudioError("is a scalar, not audio; pass a 1-D array of samples", source=source, stage="load")
    if array.ndim == 1:
        return np.ascontiguousarray(array)
    if array.ndim > 2:
        raise AudioError(
            f"has {array.ndim} dimensions {tuple(array.shape)}; pass one utterance as 1-D "
            "(samples,) or 2-D (channels, samples), and a batch as a list of those",
            source=source,
            stage="load",
        )
    rows, cols = array.shape
    if rows == 1 or cols == 1:
        return np.ascontiguousarray(array.reshape(-1))
    if rows < cols and rows <= MAX_CHANNELS:
        mono = array.mean(axis=0, dtype=np.float32)
    elif cols < rows and cols <= MAX_CHANNELS:
        mono = array.mean(axis=1, dtype=np.float32)
    else:
        raise AudioError(
            f"has shape {tuple(array.shape)}, and neither axis looks like up to {MAX_CHANNELS} "
            "channels; pass (channels, samples) or (samples, channels), or a list for a batch",
            source=source,
            stage="load",
        )
    return np.ascontiguousarray(mono, dtype=np.float32)


def _check_path(path: Path, source: str) -> bytes:
    """Check that ``path`` is a readable, non-empty regular file; return its first bytes.

    The file is opened for real (rather than asked about with :func:`os.access`, which answers
    for the real rather than the effective user), so a permission problem is reported as one.
    """
    if not str(path) or str(path) == ".":
        raise AudioError("is an empty path; pass the path of an audio file", source=source, stage="load")
    try:
        try:
            mode = os.stat(path).st_mode  # the one stat: what Path.exists, is_dir and is_file ask
        except OSError as exc:
            if exc.errno not in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                raise
            raise AudioError(
                "no such file; check the path and the working directory",
                source=source,
                stage="load",
            ) from None
        if stat.S_ISDIR(mode):
            raise AudioError(
                "is a directory, not an audio file; pass the files in it (for example "
                "sorted(Path(d).glob('*.wav')))",
                source=source,
                stage="load",
            )
        if not stat.S_ISREG(mode):
            # A FIFO or a device would block or never end.
            raise AudioError(
                "is not a regular file (a pipe, socket or device); save the audio to a file first",
                source=source,
                stage="load",
            )
        with open(path, "rb", buffering=0) as f:  # unbuffered: 64 bytes, not a 4 KiB block
            head = f.read(64)
    except PermissionError as exc:
        raise _permission_error(source) from exc
    except OSError as exc:
        raise AudioError(
            f"cannot be opened ({exc.strerror or type(exc).__name__}); check the path and its permissions",
            source=source,
            stage="load",
        ) from exc
    if not head:
        raise AudioError(
            "is an empty file (0 bytes); it holds no audio: check that it was written completely, "
            "or drop it from the inputs",
            source=source,
            stage="load",
        )
    return head


def _permission_error(source: str) -> AudioError:
    return AudioError(
        "cannot be read: permission denied; check its permissions (chmod +r) or run as a user "
        "who may read it",
        source=source,
        stage="load",
    )


def _wav_header_rate(head: bytes) -> int | None:
    """Return the sample rate a RIFF/RF64 WAVE header declares, or None if ``head`` is not one.

    Only the ``fmt `` chunk at its usual place (right after the 12-byte RIFF header) is read;
    this is enough to explain why libsndfile refused a file, not to parse every WAV.
    """
    if len(head) < 28 or head[:4] not in (b"RIFF", b"RF64") or head[8:16] != b"WAVEfmt ":
        return None
    return int.from_bytes(head[24:28], "little")


def _describe_undecodable(head: bytes) -> str:
    """Guess, from its first bytes, what a file that is not audio holds."""
    if head.startswith(b"\x89PNG") or head[:3] == b"\xff\xd8\xff" or head[:4] == b"GIF8":
        return "it is an image"
    if head.startswith((b"%PDF", b"PK\x03\x04")):
        return "it is a document or an archive"
    if head.startswith((b"RIFF", b"RF64")) and head[8:12] == b"WAVE":
        return "its WAV header is corrupt or uses an unsupported codec"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = ""
    if text and all(c.isprintable() or c.isspace() for c in text):
        return "it is a text file"
    return "it is not in a format libsndfile recognises, or it is corrupt"


def check_duration(frames: float, sample_rate: int, max_duration_s: float | None, source: str) -> None:
    if max_duration_s is not None and frames / sample_rate > max_duration_s:
        raise InputTooLongError(
            f"lasts {frames / sample_rate:.1f} s, more than max_duration_s={max_duration_s:g}; "
            "cut it into parts, or raise Pipeline.max_duration_s",
            source=source,
            stage="load",
        )


class OpenAudio(os.PathLike[str]):
    """An audio file checked and opened once: its header read, its samples not yet decoded.

    It is path-like (:func:`os.fspath` gives its path), so it goes wherever a path goes, and
    :func:`read_file` (hence :func:`load_audio`) decodes its open handle instead of opening the
    path again. It is read once: a closed one is opened again from its path.

    Attributes
    ----------
    path : pathlib.Path
    source : str
        The name used in error messages.
    handle : soundfile.SoundFile or None
        None when libsndfile cannot read the file and ``ffmpeg`` (at :attr:`ffmpeg`) decodes it.
    ffmpeg : str or None
    """

    __slots__ = ("ffmpeg", "handle", "path", "source")

    def __init__(self, path: Path, source: str, handle: SoundFile | None, ffmpeg: str | None) -> None:
        self.path, self.source, self.handle, self.ffmpeg = path, source, handle, ffmpeg

    def __fspath__(self) -> str:
        return str(self.path)

    @property
    def sample_rate(self) -> int | None:
        """The rate its header declares, in Hz; None when only ffmpeg reads it."""
        return None if self.handle is None else int(self.handle.samplerate)

    @property
    def frames(self) -> int | None:
        """The number of samples per channel its header declares; None when only ffmpeg reads it."""
        return None if self.handle is None else int(self.handle.frames)

    @property
    def closed(self) -> bool:
        return self.handle is None and self.ffmpeg is None

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()
        self.handle = self.ffmpeg = None

    def __enter__(self) -> OpenAudio:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_file(path: str | os.PathLike[str], source: str) -> OpenAudio:
    """Check ``path`` and open it with libsndfile, once, checking the rate its header declares.

    Raises
    ------
    AudioError
        When the file is missing, a directory, unreadable, empty, not audio (and ffmpeg is not
        installed), or has a bad rate.
    """
    import soundfile as sf

    path = Path(path)
    head = _check_path(path, source)
    declared = _wav_header_rate(head)
    if declared is not None and declared <= 0:
        raise AudioError(
            f"has a WAV header that says {declared} Hz; the file is corrupt: re-encode it with "
            "the right sample rate (for example sox, or soundfile.write(path, data, rate))",
            source=source,
            stage="load",
        )
    try:
        with decoder_output_quiet():
            # Bytes, so that a name that is not valid UTF-8 (held as surrogate escapes) opens;
            # soundfile would encode a str strictly and fail.
            handle = sf.SoundFile(os.fsencode(path))
    except PermissionError as exc:
        raise _permission_error(source) from exc
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError, OSError) as exc:
        _raise_if_unreadable(path, source, exc)
        ffmpeg = shutil.which("ffmpeg")
        if ffmpeg is not None:
            return OpenAudio(path, source, None, ffmpeg)
        raise AudioError(
            f"is not audio that libsndfile can decode: {_describe_undecodable(head)}"
            f"{_libsndfile_reason(exc)}; convert it to WAV or FLAC, or install ffmpeg for other "
            "formats",
            source=source,
            stage="load",
        ) from exc
    rate = handle.samplerate
    if rate <= 0 or not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        handle.close()
        raise AudioError(
            f"has a header that says {rate} Hz, outside the supported "
            f"{MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz; the file is corrupt or not speech: "
            "re-encode it with the right sample rate",
            source=source,
            stage="load",
        )
    return OpenAudio(path, source, handle, None)


def read_file(
    path: str | os.PathLike[str], *, max_duration_s: float | None = None, source: str | None = None
) -> tuple[npt.NDArray[np.float32], int]:
    """Decode an audio file to float32 samples.

    Parameters
    ----------
    path : str or os.PathLike
        WAV, FLAC, Ogg, MP3 or anything else libsndfile reads (or ffmpeg, where installed).
    max_duration_s : float or None
        Reject the file, before decoding it, when its header says it is longer.
    source : str or None
        The name used in error messages; defaults to the path.

    Returns
    -------
    samples : numpy.ndarray, shape (n_samples, n_channels), float32
    sample_rate : int

    Raises
    ------
    AudioError
        When the file is missing, a directory, unreadable, empty, not audio, or has a bad rate.
    InputTooLongError
        When it is longer than ``max_duration_s``.
    """
    import soundfile as sf

    if isinstance(path, OpenAudio):
        # Opened by a caller that looked at its header: decode that handle.
        opened = path if not path.closed else open_file(path.path, path.source)
    else:
        opened = open_file(path, source if source is not None else str(Path(path)))
    with opened:
        source = opened.source
        if opened.handle is None:
            assert opened.ffmpeg is not None
            return _read_with_ffmpeg(opened.ffmpeg, opened.path, max_duration_s, source)
        f = opened.handle
        sample_rate = check_sample_rate(f.samplerate, source)
        check_duration(f.frames, sample_rate, max_duration_s, source)
        try:
            with decoder_output_quiet():
                data = f.read(dtype="float32", always_2d=True)
        except PermissionError as exc:
            raise _permission_error(source) from exc
        except (sf.LibsndfileError, RuntimeError, TypeError, ValueError, OSError, MemoryError) as exc:
            _raise_if_unreadable(opened.path, source, exc)
            raise AudioError(
                f"could not be decoded ({_short(exc)}); the file may be truncated or corrupt: re-encode it",
                source=source,
                stage="load",
            ) from exc
    if data.size == 0:
        raise AudioError(
            "holds no samples (the file may be truncated); re-encode it", source=source, stage="load"
        )
    check_duration(data.shape[0], sample_rate, max_duration_s, source)
    check_finite_file(data, sample_rate, source)
    return data, sample_rate


def check_finite_file(data: npt.NDArray[np.float32], sample_rate: int, source: str) -> None:
    """Raise :class:`~speakerembed.AudioError` naming the NaN or infinite samples a decoded file holds.

    Parameters
    ----------
    data : numpy.ndarray, shape (n_frames, n_channels), float32
        The decoded samples.
    sample_rate : int
        Their rate, to say where the first bad sample is in seconds.
    source : str
        The file's name for the message.

    Raises
    ------
    AudioError
        When any sample is NaN or infinite (a float WAV or FLAC can store them).
    """
    # Two reductions, no temporary, and no RuntimeWarning: min and max are NaN or infinite
    # exactly when some sample is.
    low = float(np.min(data))
    high = float(np.max(data))
    if np.isfinite(low) and np.isfinite(high):
        return
    finite = np.isfinite(data).all(axis=1) if data.ndim == 2 else np.isfinite(data)
    bad = int(finite.size - np.count_nonzero(finite))
    first = int(np.argmin(finite))
    nan = bool(np.isnan(data).any())
    inf = bool(np.isinf(data).any())
    kind = " and ".join(k for k, on in (("NaN", nan), ("infinite", inf)) if on)
    raise AudioError(
        f"holds {bad} frame(s) with {kind} samples, the first at frame {first} "
        f"({first / sample_rate:.3f} s); the file is damaged: re-encode it from its source, "
        "or drop it from the inputs",
        source=source,
        stage="load",
    )


def is_encoded_audio(item: object) -> bool:
    """Whether ``item`` holds an encoded audio file: bytes, or a binary file object.

    ``bytes``, ``bytearray`` and ``memoryview`` count, and so does anything with a ``read``
    method that is not a path (``io.BytesIO``, ``open(path, "rb")``, an upload's stream).
    """
    if isinstance(item, (bytes, bytearray, memoryview)):
        return True
    return not isinstance(item, (str, os.PathLike)) and callable(getattr(item, "read", None))


def _bytes_of(item: object, source: str) -> bytes:
    if isinstance(item, (bytes, bytearray, memoryview)):
        return bytes(item)
    read = item.read  # type: ignore[attr-defined]
    try:
        data = read()
    except (OSError, ValueError) as exc:
        raise AudioError(
            f"is a file object that cannot be read ({_short(exc)}); pass an open binary file "
            "(open(path, 'rb')), or its bytes",
            source=source,
            stage="load",
        ) from exc
    if isinstance(data, str):
        raise AudioError(
            "is a file object opened in text mode; open it in binary mode (open(path, 'rb'))",
            source=source,
            stage="load",
        )
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise AudioError(
            f"is a file object whose read() gave a {type(data).__name__}, not bytes; pass an "
            "open binary file or the file's bytes",
            source=source,
            stage="load",
        )
    return bytes(data)


def read_bytes(
    data: object, *, max_duration_s: float | None = None, source: str = "input"
) -> tuple[npt.NDArray[np.float32], int]:
    """Decode an encoded audio file held in memory, as :func:`read_file` decodes a path.

    Parameters
    ----------
    data : bytes, bytearray, memoryview or binary file object
        The whole file: WAV, FLAC, Ogg, MP3 or anything else libsndfile reads. A file object is
        read from its current position to its end.
    max_duration_s : float or None
        Reject the audio, before decoding it, when its header says it is longer.
    source : str
        The name used in error messages, such as ``"input 3"``.

    Returns
    -------
    samples : numpy.ndarray, shape (n_samples, n_channels), float32
    sample_rate : int

    Raises
    ------
    AudioError
        When the bytes are empty, not audio, truncated, or declare a bad rate.
    InputTooLongError
        When the audio is longer than ``max_duration_s``.
    """
    import soundfile as sf

    raw = _bytes_of(data, source)
    if not raw:
        raise AudioError(
            "is empty (0 bytes); it holds no audio: check that the whole file was sent",
            source=source,
            stage="load",
        )
    head = raw[:64]
    declared = _wav_header_rate(head)
    if declared is not None and declared <= 0:
        raise AudioError(
            f"has a WAV header that says {declared} Hz; the file is corrupt: re-encode it with "
            "the right sample rate",
            source=source,
            stage="load",
        )
    try:
        with decoder_output_quiet():
            handle = sf.SoundFile(io.BytesIO(raw))
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError, OSError) as exc:
        ffmpeg = shutil.which("ffmpeg")
        if ffmpeg is not None:
            return _read_bytes_with_ffmpeg(ffmpeg, raw, max_duration_s, source)
        raise AudioError(
            f"is not audio that libsndfile can decode: {_describe_undecodable(head)}"
            f"{_libsndfile_reason(exc)}; convert it to WAV or FLAC, or install ffmpeg for other "
            "formats",
            source=source,
            stage="load",
        ) from exc
    with handle:
        rate = handle.samplerate
        if rate <= 0 or not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
            raise AudioError(
                f"has a header that says {rate} Hz, outside the supported "
                f"{MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz; the file is corrupt or not speech: "
                "re-encode it with the right sample rate",
                source=source,
                stage="load",
            )
        sample_rate = int(rate)
        check_duration(handle.frames, sample_rate, max_duration_s, source)
        try:
            with decoder_output_quiet():
                samples = handle.read(dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError, TypeError, ValueError, OSError, MemoryError) as exc:
            raise AudioError(
                f"could not be decoded ({_short(exc)}); the file may be truncated or corrupt: re-encode it",
                source=source,
                stage="load",
            ) from exc
    if samples.size == 0:
        raise AudioError(
            "holds no samples (the file may be truncated); re-encode it", source=source, stage="load"
        )
    check_duration(samples.shape[0], sample_rate, max_duration_s, source)
    return samples, sample_rate


def _read_bytes_with_ffmpeg(
    ffmpeg: str, raw: bytes, max_duration_s: float | None, source: str
) -> tuple[npt.NDArray[np.float32], int]:
    """Decode with ffmpeg: the bytes go to a private temporary file (mode 0600), always removed."""
    fd, name = tempfile.mkstemp(prefix="speakerembed-", suffix=".audio")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
        return _read_with_ffmpeg(ffmpeg, Path(name), max_duration_s, source)
    finally:
        os.unlink(name)


def _raise_if_unreadable(path: Path, source: str, exc: BaseException) -> None:
    """Raise the permission error when libsndfile failed because it may not read the file.

    libsndfile reports a permission problem as a bare system error, so ask the OS directly.
    """
    if isinstance(exc, PermissionError) or "Permission denied" in str(exc):
        raise _permission_error(source) from exc
    try:
        with open(path, "rb"):
            pass
    except PermissionError as perm:
        raise _permission_error(source) from perm
    except OSError:
        pass


def _read_with_ffmpeg(
    ffmpeg: str, path: Path, max_duration_s: float | None, source: str
) -> tuple[npt.NDArray[np.float32], int]:
    """Decode with the ffmpeg program: its native rate, float32, interleaved channels."""
    probe = shutil.which("ffprobe")
    if probe is None:
        raise AudioError(
            "is not audio that libsndfile can decode, and ffprobe is missing; convert it to WAV",
            source=source,
            stage="load",
        )
    try:
        meta = (
            subprocess.run(
                [
                    probe,
                    "-v",
                    "error",
                    "-select_streams",
                    "a:0",
                    "-show_entries",
                    "stream=sample_rate,channels",
                    "-of",
                    "csv=p=0",
                    str(path),
                ],
                capture_output=True,
                text=True,
                timeout=60,
                check=True,
            )
            .stdout.strip()
            .split(",")
        )
        sample_rate, channels = int(meta[0]), int(meta[1])
    except (subprocess.SubprocessError, ValueError, IndexError) as exc:
        raise AudioError(
            "is not audio that libsndfile or ffmpeg can decode; check that it is an audio file",
            source=source,
            stage="load",
        ) from exc
    sample_rate = check_sample_rate(sample_rate, source)
    cmd = [ffmpeg, "-v", "error", "-nostdin", "-i", str(path)]
    if max_duration_s is not None:
        cmd += ["-t", str(max_duration_s + 1.0)]
    cmd += ["-f", "f32le", "-acodec", "pcm_f32le", "-"]
    try:
        raw = subprocess.run(cmd, capture_output=True, timeout=_FFMPEG_TIMEOUT_S, check=True).stdout
    except subprocess.SubprocessError as exc:
        raise AudioError(
            "could not be decoded by ffmpeg; the file may be corrupt", source=source, stage="load"
        ) from exc
    data = np.frombuffer(raw, dtype="<f4").astype(np.float32)
    if data.size == 0 or channels < 1:
        raise AudioError(
            "holds no samples; re-encode it, or drop it from the inputs", source=source, stage="load"
        )
    data = data[: data.size - data.size % channels].reshape(-1, channels)
    check_duration(data.shape[0], sample_rate, max_duration_s, source)
    return data, sample_rate


def _libsndfile_reason(exc: BaseException) -> str:
    text = _short(exc)
    # libsndfile says "File does not exist or is not a regular file" for formats it cannot
    # identify; the file does exist (checked above), so that text would mislead.
    if not text or "does not exist" in text or text.endswith(": "):
        return ""
    return f" ({text.split(': ', 1)[-1] if text.startswith('Error opening') else text})"


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[-1][:200] if text else type(exc).__name__


def _tensor_to_numpy(tensor: Any, source: str = "input") -> npt.NDArray[Any]:
    """Copy a torch tensor, on any device, to a NumPy array on the host."""
    import torch

    t = tensor.detach()
    if t.is_complex():
        return np.zeros(1, dtype=np.complex64)  # dtype check reports it
    try:
        if t.layout != torch.strided:
            t = t.to_dense()
        if t.dtype in (torch.bfloat16, torch.float16):
            t = t.float()
        return np.asarray(t.cpu().numpy())
    except (RuntimeError, TypeError, NotImplementedError) as exc:
        raise AudioError(
            f"is a torch tensor ({t.dtype}, on {t.device}) that cannot be copied to the host "
            f"({_short(exc)}); pass a dense float32 tensor that holds data",
            source=source,
            stage="load",
        ) from exc


def is_tensor(obj: object) -> bool:
    cls = type(obj)
    return cls.__module__.startswith("torch") and cls.__name__ in ("Tensor", "Parameter")


def load_audio(
    item: object,
    sample_rate: object = None,
    *,
    max_duration_s: float | None = None,
    source: str = "input",
) -> tuple[npt.NDArray[np.float32], int]:
    """Load one utterance: a path, encoded bytes, a NumPy array or a torch tensor, as mono float32.

    Parameters
    ----------
    item : str, os.PathLike, bytes, binary file object, numpy.ndarray or torch.Tensor
        The utterance. Arrays and tensors are 1-D, or 2-D with channels (see the module rules).
        Bytes (``bytes``, ``bytearray``, ``memoryview``) and binary file objects (``io.BytesIO``,
        ``open(path, "rb")``) hold an encoded file, decoded in memory by :func:`read_bytes`.
    sample_rate : int or None
        The rate of an array or tensor, in Hz. Ignored for files and bytes, which carry their own.
    max_duration_s : float or None
        Reject input longer than this, before resampling.
    source : str
        The input's name in error messages, such as ``"input 3"``.

    Returns
    -------
    waveform : numpy.ndarray, shape (n_samples,), float32
    sample_rate : int

    Raises
    ------
    AudioError
        For anything that is not usable audio, with the input named.
    """
    if isinstance(item, (str, os.PathLike)):
        labelled = f"{source} ({os.fspath(item)!s})"
        data, sr = read_file(item, max_duration_s=max_duration_s, source=labelled)
        return to_mono(data, labelled), sr
    if is_encoded_audio(item):
        data, sr = read_bytes(item, max_duration_s=max_duration_s, source=source)
        return to_mono(data, source), sr
    if is_tensor(item):
        array = _tensor_to_numpy(item, source)
    elif isinstance(item, np.ndarray):
        array = item
    else:
        raise AudioError(
            f"is a {type(item).__name__}; pass a file path, a numpy.ndarray or a torch.Tensor",
            source=source,
            stage="load",
        )
    sr = check_sample_rate(sample_rate, source)
    if array.size == 0:
        raise AudioError(
            f"is empty (shape {tuple(array.shape)}); pass some audio", source=source, stage="load"
        )
    if array.ndim == 0 or array.ndim > 2:
        return to_mono(array, source), sr  # to_mono raises, naming the shape
    samples = array.shape[-1] if array.ndim == 1 else max(array.shape)
    check_duration(samples, sr, max_duration_s, source)
    mono = to_mono(to_float32(array, source), source)
    if not mono.flags.writeable:
        # A read-only input (np.load(mmap_mode="r"), a frozen array) passed through as a view:
        # copy it, since torch.from_numpy warns on read-only memory.
        mono = mono.copy()
    return mono, sr
