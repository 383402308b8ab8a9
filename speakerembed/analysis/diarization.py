"""Who spoke when: :func:`diarize` one recording into speaker turns.

The steps, each with its settings in one frozen :class:`DiarizationConfig`:

1. **Audio** is read in chunks of ``chunk_s`` seconds (files block by block, as
   :mod:`speakerembed.stages.longform` does, resampled to 16 kHz with libsoxr's streaming resampler), so
   a 4-hour file never sits in memory whole.
2. **Speech.** Each chunk is level-normalised (its loud frames brought to ``vad_level_dbfs``)
   and Silero VAD finds the speech at ``vad_threshold``. Far-field meeting audio is quiet: on
   the AMI excerpts Silero with its defaults (threshold 0.5, no normalisation) found no speech;
   normalised, it finds the turns (see docs/speaker_structure.rst).
3. **Windows.** Every speech segment is cut into ``window_s`` windows every ``step_s`` seconds
   (shorter and denser than the utterance defaults, since turns can be short), each embedded
   by the voice encoder into a unit vector.
4. **Clustering** runs on a bounded set: at most ``max_cluster_windows`` windows, spaced evenly
   in time (by default one in ``window_s / step_s``, the windows that do not overlap). Spectral
   clustering (a cosine affinity, row-wise pruned to each window's nearest neighbours and
   binarised, as Google's spectralcluster and WeSpeaker do) estimates the speaker count from the
   eigengap of its Laplacian, within ``min_speakers..max_speakers``; clusters whose centroids
   are closer than ``merge_threshold`` are merged (3D-Speaker's merge step), so that one voice
   is not split in two. ``method="ahc"`` uses average-linkage AHC with ``ahc_threshold``.
5. **Re-segmentation.** Every window is scored against every centroid and a Viterbi pass picks
   the labels, with a cost ``switch_penalty`` for a change of speaker inside a speech segment:
   isolated one-window flips disappear. Memory is linear in the windows.
6. **Turns** go from each window's centre to the midpoint with the next; each speaker gets a
   unit embedding, ``utt_to_spk_embed`` (Chatterbox's rule) of its windows.

The output is exclusive: one speaker at a time. Overlapped speech is not detected; its second
speaker counts as missed speech in the DER.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

import numpy as np

from ..config import MODEL_SAMPLE_RATE
from ..errors import AudioError, ConfigError
from ..stages.consolidate import guarded_norms

if TYPE_CHECKING:
    import numpy.typing as npt

    from ..embedder import SpeakerEmbedder
    from ..stages.encoder import Precision

__all__ = [
    "Diarization",
    "DiarizationConfig",
    "SpeechWindows",
    "Turn",
    "check_unique_uris",
    "cluster_windows",
    "diarize",
    "input_uri",
    "link_files",
    "speech_windows",
]

ClusterMethod = Literal["spectral", "ahc"]


class Turn(NamedTuple):
    """One speaker turn: ``[start_s, end_s)`` in the input's seconds, and its speaker label."""

    start_s: float
    end_s: float
    speaker: str


@dataclasses.dataclass(frozen=True)
class DiarizationConfig:
    """Settings of :func:`diarize`, validated when built.

    Parameters
    ----------
    window_s : float
        Window length in seconds (0.5 to 10). 1.5 s, as WeSpeaker's diarization uses.
    step_s : float
        Seconds between window starts, up to ``window_s``.
    vad_threshold : float
        Silero's speech probability threshold, in (0, 1); lower finds more speech.
    vad_level_dbfs : float or None
        Bring the 95th-percentile frame level of each chunk to this level (dBFS) before the VAD
        (gain at most ``max_gain_db``); ``None`` leaves the level alone.
    max_gain_db : float
        The most gain the level normalisation applies, in dB (at least 0).
    vad_pad_s : float
        Seconds added to each side of a speech segment (Silero's ``speech_pad_ms``).
    vad_min_silence_s : float
        Pauses shorter than this do not end a speech segment (Silero's ``min_silence_duration_ms``).
    min_segment_s : float
        Speech segments shorter than this are dropped (a cough, a click).
    method : {"spectral", "ahc"}
        How the speakers are found (see the module docstring).
    ahc_threshold : float
        Cosine distance at which ``method="ahc"`` stops merging, in (0, 2).
    merge_threshold : float
        Clusters whose centroids have a cosine above this are merged, in (0, 1]; 1 never merges.
    max_speakers : int
        The largest speaker count estimated when the caller gives none.
    max_cluster_windows : int
        The most windows clustered (the rest are assigned to the centroids); bounds memory and time.
    min_speaker_share : float
        A cluster of fewer clustered windows than this share of them (and never fewer than 3)
        is noise, not a speaker, when the count is estimated: its windows go to the nearest
        speaker. In [0, 0.5]; 0 keeps clusters of 3 windows or more.
    switch_penalty : float
        Cost of a change of speaker between two windows of one speech segment, in cosine units (>= 0).
    chunk_s : float
        Seconds of audio read and detected at a time.
    """

    window_s: float = 1.5
    step_s: float = 0.25
    vad_threshold: float = 0.35
    vad_level_dbfs: float | None = -18.0
    max_gain_db: float = 30.0
    vad_pad_s: float = 0.1
    vad_min_silence_s: float = 0.3
    min_segment_s: float = 0.25
    method: ClusterMethod = "ahc"
    ahc_threshold: float = 0.3
    merge_threshold: float = 0.78
    max_speakers: int = 10
    max_cluster_windows: int = 1500
    min_speaker_share: float = 0.01
    switch_penalty: float = 0.3
    chunk_s: float = 300.0

    def __post_init__(self) -> None:
        def number(name: str, low: float, high: float, fix: str) -> None:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (low <= value <= high):
                raise ConfigError(f"DiarizationConfig({name}={value!r}) is out of range; pass {fix}")

        number("window_s", 0.5, 10.0, "a window length in seconds from 0.5 to 10")
        number(
            "step_s",
            0.05,
            self.window_s if isinstance(self.window_s, (int, float)) else 10.0,
            "a step from 0.05 s up to window_s",
        )
        number("vad_threshold", 0.01, 0.99, "a probability in (0, 1), such as 0.35")
        if self.vad_level_dbfs is not None:
            number("vad_level_dbfs", -60.0, 0.0, "a level in dBFS from -60 to 0, or None")
        number("max_gain_db", 0.0, 80.0, "a gain in dB from 0 to 80")
        number("vad_pad_s", 0.0, 2.0, "seconds from 0 to 2")
        number("vad_min_silence_s", 0.0, 5.0, "seconds from 0 to 5")
        number("min_segment_s", 0.0, 10.0, "seconds from 0 to 10")
        if self.method not in ("spectral", "ahc"):
            raise ConfigError(f"DiarizationConfig(method={self.method!r}) is not 'spectral' or 'ahc'")
        number("ahc_threshold", 1e-3, 1.999, "a cosine distance in (0, 2), such as 0.3")
        number("merge_threshold", 1e-3, 1.0, "a cosine in (0, 1], such as 0.78 (1 never merges)")
        number("switch_penalty", 0.0, 10.0, "a cost from 0 to 10")
        number("min_speaker_share", 0.0, 0.5, "a share of the clustered windows from 0 to 0.5, such as 0.01")
        number("chunk_s", 10.0, 3600.0, "seconds from 10 to 3600")
        for name, low in (("max_speakers", 1), ("max_cluster_windows", 10)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"DiarizationConfig({name}={value!r}) must be an integer of at least {low}")

    @property
    def window_samples(self) -> int:
        """Window length in samples at 16 kHz."""
        return round(self.window_s * MODEL_SAMPLE_RATE)


@dataclasses.dataclass(frozen=True)
class Diarization:
    """What :func:`diarize` returns: the turns of one recording, and one embedding per speaker.

    Attributes
    ----------
    uri : str
        The recording's name (its file name without the extension), as RTTM writes it.
    turns : tuple of Turn
        ``(start_s, end_s, speaker)`` in time order, in the input's own seconds; never overlapping.
    speaker_embeddings : dict of str to numpy.ndarray, shape (256,), float32
        Each speaker's unit embedding, ``utt_to_spk_embed`` of its windows, in label order.
    duration_s : float
        The input's duration.
    speech_s : float
        Seconds of speech the VAD found (padding included).
    """

    uri: str
    turns: tuple[Turn, ...]
    speaker_embeddings: dict[str, npt.NDArray[np.float32]]
    duration_s: float
    speech_s: float

    @property
    def speakers(self) -> list[str]:
        """The speaker labels, in order of first appearance."""
        return list(self.speaker_embeddings)

    def speaker_seconds(self) -> dict[str, float]:
        """Seconds each speaker speaks."""
        out = dict.fromkeys(self.speaker_embeddings, 0.0)
        for t in self.turns:
            out[t.speaker] += t.end_s - t.start_s
        return out

    def to_rttm(self) -> str:
        """The turns as RTTM lines (``SPEAKER <uri> 1 <onset> <duration> <NA> <NA> <speaker> <NA> <NA>``)."""
        return "".join(
            f"SPEAKER {self.uri} 1 {t.start_s:.3f} {t.end_s - t.start_s:.3f} "
            f"<NA> <NA> {t.speaker} <NA> <NA>\n"
            for t in self.turns
        )

    def to_json(self) -> str:
        """The turns as pyannote's ``DiarizeOutput.serialize()`` gives them, as JSON text.

        ``{"diarization": [{"start", "end", "speaker"}, ...], "exclusive_diarization": [...]}``;
        both lists are the same, since this diarization is exclusive.
        """
        rows = [
            {"start": round(t.start_s, 3), "end": round(t.end_s, 3), "speaker": t.speaker} for t in self.turns
        ]
        return json.dumps({"diarization": rows, "exclusive_diarization": rows})

    def to_annotation(self) -> Any:
        """The turns as a ``pyannote.core.Annotation`` (needs pyannote.core installed).

        Raises
        ------
        BackendUnavailableError
            When pyannote.core is not installed.
        """
        try:
            from pyannote.core import Annotation, Segment
        except ImportError as exc:
            from ..errors import BackendUnavailableError

            raise BackendUnavailableError(
                "Diarization.to_annotation() needs pyannote.core, which is not installed; "
                "pip install pyannote.core, or use .turns / .to_rttm()"
            ) from exc
        ann = Annotation(uri=self.uri)
        for i, t in enumerate(self.turns):
            ann[Segment(t.start_s, t.end_s), i] = t.speaker
        return ann


def input_uri(input: object) -> str:
    """The RTTM uri of an input: a file's name without its extension; ``"input"`` for arrays."""
    if isinstance(input, (str, os.PathLike)):
        name = Path(os.fspath(input)).name
        stem = name.split(".")[0] if not name.startswith(".") else name
        return stem or name
    return "input"


# -- audio --------------------------------------------------------------------------------------


def _chunks_16k(
    input: object, sample_rate: int | None, chunk_s: float, source: str
) -> tuple[float, Iterator[npt.NDArray[np.float32]]]:
    """The input's duration, and its 16 kHz mono samples in chunks of ``chunk_s`` seconds."""
    from ..stages.load import load_audio
    from ..stages.resample import resample

    size = round(chunk_s * MODEL_SAMPLE_RATE)
    if isinstance(input, (str, os.PathLike)):
        import soundfile as sf

        try:
            info = sf.info(os.fspath(input))
        except Exception:  # noqa: BLE001 - not for libsndfile: decode it whole (load_audio says why if it cannot)
            info = None
        if info is not None and info.frames > 0:
            from ..stages.longform import file_blocks, resampled_blocks

            duration = info.frames / info.samplerate

            def from_file() -> Iterator[npt.NDArray[np.float32]]:
                buf: list[npt.NDArray[np.float32]] = []
                held = 0
                for block in resampled_blocks(file_blocks(os.fspath(input)), info.samplerate, info.frames):
                    buf.append(block)
                    held += block.shape[0]
                    while held >= size:
                        joined = np.concatenate(buf)
                        yield joined[:size]
                        rest = joined[size:]
                        buf, held = [rest], rest.shape[0]
                if held:
                    yield np.concatenate(buf)

            return duration, from_file()
    wave, sr = load_audio(input, sample_rate, source=source)
    duration = wave.shape[0] / sr
    wave16 = wave if sr == MODEL_SAMPLE_RATE else resample(wave, sr, MODEL_SAMPLE_RATE)

    def from_memory() -> Iterator[npt.NDArray[np.float32]]:
        for lo in range(0, wave16.shape[0], size):
            yield wave16[lo : lo + size]

    return duration, from_memory()


def _normalised(chunk: npt.NDArray[np.float32], config: DiarizationConfig) -> npt.NDArray[np.float32]:
    """``chunk`` with its loud frames (95th percentile of 32 ms RMS) at ``vad_level_dbfs``."""
    if config.vad_level_dbfs is None or chunk.shape[0] < 512:
        return chunk
    frames = chunk[: chunk.shape[0] // 512 * 512].reshape(-1, 512).astype(np.float64)
    level = float(np.percentile(np.sqrt(np.mean(frames**2, axis=1)), 95))
    if not level > 1e-7:
        return chunk
    gain_db = min(config.vad_level_dbfs - 20 * math.log10(level), config.max_gain_db)
    out: npt.NDArray[np.float32] = np.clip(chunk * np.float32(10 ** (gain_db / 20)), -1.0, 1.0).astype(
        np.float32
    )
    return out


def _speech(chunk: npt.NDArray[np.float32], config: DiarizationConfig) -> list[tuple[int, int]]:
    """Padded, merged speech segments of a 16 kHz chunk, in samples."""
    from ..stages.vad import speech_timestamps

    if chunk.shape[0] < 512:
        return []
    stamps = speech_timestamps(
        np.ascontiguousarray(_normalised(chunk, config)),
        threshold=config.vad_threshold,
        speech_pad_ms=0,
        min_silence_duration_ms=round(config.vad_min_silence_s * 1000),
    )
    pad = round(config.vad_pad_s * MODEL_SAMPLE_RATE)
    spans: list[list[int]] = []
    for s in stamps:
        lo, hi = max(0, int(s["start"]) - pad), min(chunk.shape[0], int(s["end"]) + pad)
        if spans and lo <= spans[-1][1]:
            spans[-1][1] = max(spans[-1][1], hi)
        else:
            spans.append([lo, hi])
    least = config.min_segment_s * MODEL_SAMPLE_RATE
    return [(a, b) for a, b in spans if b - a >= max(least, 401)]


# -- clustering ---------------------------------------------------------------------------------


def _centroids(x: npt.NDArray[np.float32], labels: npt.NDArray[np.int64], k: int) -> npt.NDArray[np.float32]:
    c = np.zeros((k, x.shape[1]), np.float64)
    np.add.at(c, labels, x)
    c /= guarded_norms(c)
    out: npt.NDArray[np.float32] = c.astype(np.float32)
    return out


def _spectral(x: npt.NDArray[np.float32], lo: int, hi: int, fixed: int | None) -> npt.NDArray[np.int64]:
    """Spectral clustering with eigengap counting (binarised p-neighbour affinity)."""
    from scipy.cluster.vq import kmeans2
    from scipy.linalg import eigh

    m = x.shape[0]
    affinity = np.clip(x.astype(np.float64) @ x.T.astype(np.float64), -1.0, 1.0)
    keep = max(2, min(m - 1, 10 if m < 1000 else int(0.01 * m)))
    top = np.argpartition(-affinity, keep, axis=1)[:, : keep + 1]
    pruned = np.zeros_like(affinity)
    np.put_along_axis(pruned, top, 1.0, axis=1)
    pruned = 0.5 * (pruned + pruned.T)
    del affinity
    laplacian = np.diag(pruned.sum(axis=1)) - pruned
    n_eig = min(m, hi + 1)
    values, vectors = eigh(laplacian, subset_by_index=[0, n_eig - 1])
    if fixed is not None:
        k = fixed
    else:
        gaps = np.diff(values[: hi + 1])
        k = lo + int(np.argmax(gaps[lo - 1 : hi])) if hi > lo else lo
    if k <= 1:
        return np.zeros(m, np.int64)
    emb = vectors[:, :k]
    emb = emb / guarded_norms(emb)
    _, labels = kmeans2(emb, k, minit="++", seed=np.random.default_rng(0), iter=30)
    return np.asarray(labels, np.int64)


def _ahc(
    x: npt.NDArray[np.float32], threshold: float, lo: int, hi: int, fixed: int | None
) -> npt.NDArray[np.int64]:
    from scipy.cluster.hierarchy import fcluster, linkage

    tree = linkage(x.astype(np.float64), method="average", metric="cosine")
    if fixed is not None:
        labels = fcluster(tree, fixed, criterion="maxclust")
    else:
        labels = fcluster(tree, threshold, criterion="distance")
        k = int(labels.max())
        if not lo <= k <= hi:
            labels = fcluster(tree, min(max(k, lo), hi), criterion="maxclust")
    return np.asarray(labels, np.int64) - 1


def _merge_close(
    x: npt.NDArray[np.float32], labels: npt.NDArray[np.int64], threshold: float, lo: int
) -> npt.NDArray[np.int64]:
    """Merge the two closest clusters while their centroids' cosine exceeds ``threshold``."""
    labels = _relabel(labels)
    while True:
        k = int(labels.max()) + 1
        if k <= lo:
            return labels
        c = _centroids(x, labels, k)
        sim = c @ c.T
        np.fill_diagonal(sim, -np.inf)
        i, j = np.unravel_index(int(np.argmax(sim)), sim.shape)
        if sim[i, j] <= threshold:
            return labels
        labels = _relabel(np.where(labels == max(i, j), min(i, j), labels))


def _relabel(labels: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    _, inverse = np.unique(labels, return_inverse=True)
    return np.asarray(inverse, np.int64)


def _viterbi(scores: npt.NDArray[np.float32], penalties: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
    """Labels maximising the summed scores minus ``penalties[t]`` for each change at ``t``."""
    n, k = scores.shape
    back = np.zeros((n, k), np.int64)
    total = scores[0].astype(np.float64)
    for t in range(1, n):
        best = int(np.argmax(total))
        switch = total[best] - penalties[t]
        stay = total >= switch
        back[t] = np.where(stay, np.arange(k), best)
        total = np.where(stay, total, switch) + scores[t]
    path = np.zeros(n, np.int64)
    path[-1] = int(np.argmax(total))
    for t in range(n - 1, 0, -1):
        path[t - 1] = back[t, path[t]]
    return path


def check_counts(num_speakers: int | None, min_speakers: int | None, max_speakers: int | None) -> None:
    for name, value in (
        ("num_speakers", num_speakers),
        ("min_speakers", min_speakers),
        ("max_speakers", max_speakers),
    ):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ConfigError(f"{name}={value!r} must be a whole number of speakers, at least 1 (or None)")
    if num_speakers is not None:
        if min_speakers is not None and min_speakers > num_speakers:
            raise ConfigError(
                f"min_speakers={min_speakers} contradicts num_speakers={num_speakers}; pass one or the other"
            )
        if max_speakers is not None and max_speakers < num_speakers:
            raise ConfigError(
                f"max_speakers={max_speakers} contradicts num_speakers={num_speakers}; pass one or the other"
            )
    if min_speakers is not None and max_speakers is not None and min_speakers > max_speakers:
        raise ConfigError(f"min_speakers={min_speakers} is above max_speakers={max_speakers}; swap them")


def cluster_windows(
    embeddings: npt.NDArray[np.float32],
    segment: npt.NDArray[np.int64],
    config: DiarizationConfig,
    *,
    num_speakers: int | None = None,
    min_speakers: int | None = None,
    max_speakers: int | None = None,
) -> npt.NDArray[np.int64]:
    """Speaker labels for time-ordered window embeddings (steps 4 and 5 of the module docstring).

    Parameters
    ----------
    embeddings : numpy.ndarray, shape (n_windows, 256), float32
        Unit rows in time order.
    segment : numpy.ndarray, shape (n_windows,), int64
        The speech segment each window belongs to (no switch penalty between segments).
    config : DiarizationConfig
    num_speakers, min_speakers, max_speakers : int or None
        As for :func:`diarize`.

    Returns
    -------
    numpy.ndarray, shape (n_windows,), int64
        Labels ``0..k-1``, numbered in order of first appearance.
    """
    check_counts(num_speakers, min_speakers, max_speakers)
    n = embeddings.shape[0]
    lo = num_speakers or min_speakers or 1
    hi = num_speakers or max_speakers or max(config.max_speakers, lo)
    stride = max(1, round(config.window_s / config.step_s))
    picked = np.arange(0, n, stride)
    if picked.shape[0] > config.max_cluster_windows:
        picked = np.linspace(0, n - 1, config.max_cluster_windows).round().astype(np.int64)
    x = embeddings[picked]
    m = x.shape[0]
    hi = min(hi, m)
    lo = min(lo, hi)
    fixed = min(num_speakers, m) if num_speakers is not None else None
    if m < 2 or hi == 1:
        return np.zeros(n, np.int64)
    if config.method == "spectral" and m >= 12:
        labels = _spectral(x, max(lo, 2) if fixed is None else lo, hi, fixed)
        if fixed is None:
            labels = _merge_close(x, labels, config.merge_threshold, lo)
    else:
        labels = _ahc(x, config.ahc_threshold, lo, hi, fixed)
        if fixed is None:
            labels = _merge_close(x, labels, config.merge_threshold, lo)
    labels = _relabel(labels)
    if fixed is None:
        # Small clusters are noise, not speakers (pauses, breaths, windows across a change of
        # speaker): their windows go to the nearest real speaker in the re-segmentation (unless
        # that leaves too few). Fewer than 3 windows, or than min_speaker_share of them: on an
        # hour-long conversation, 4 such windows of 1,277 drew 84 windows into a fifth speaker.
        sizes = np.bincount(labels)
        least = max(3, math.ceil(config.min_speaker_share * m))
        big = np.flatnonzero(sizes >= min(least, int(sizes.max())))
        if big.shape[0] >= lo:
            keep = np.isin(labels, big)
            x, labels = x[keep], _relabel(labels[keep])
    k = int(labels.max()) + 1
    centroids = _centroids(x, labels, k)
    penalties = np.where(np.diff(segment, prepend=segment[:1]) == 0, config.switch_penalty, 0.0)
    path = _viterbi(embeddings @ centroids.T, penalties)
    # Two refinements: the centroids of all windows, then assign again.
    for _ in range(2):
        if np.unique(path).shape[0] < min(lo, k):
            break  # smoothing would lose a speaker the caller asked for
        centroids = _centroids(embeddings, _relabel(path), int(_relabel(path).max()) + 1)
        path = _viterbi(embeddings @ centroids.T, penalties)
    if np.unique(path).shape[0] < min(lo, k):
        path = np.argmax(embeddings @ centroids.T, axis=1).astype(np.int64)
    _, first = np.unique(path, return_index=True)
    order = np.argsort(np.argsort(first))
    remap = np.zeros(int(path.max()) + 1, np.int64)
    remap[np.unique(path)] = order
    return remap[path]


# -- the whole job ------------------------------------------------------------------------------


def _progress(total_s: float, uri: str) -> Any:
    """A tqdm bar in seconds of audio (off when not a TTY), or None without tqdm or for short input."""
    if total_s < 600:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=round(total_s), unit="s", desc=f"diarize {uri}", disable=None, leave=False)


@dataclasses.dataclass(frozen=True)
class SpeechWindows:
    """The embedded windows of a recording's speech (steps 1-3 of the module docstring).

    Attributes
    ----------
    embeddings : numpy.ndarray, shape (n_windows, 256), float32
        Unit rows, in time order.
    start_s : numpy.ndarray, shape (n_windows,), float64
        Each window's start in the input's seconds (it lasts ``window_s``, cut at its segment's end).
    segment : numpy.ndarray, shape (n_windows,), int64
        The index of the speech segment each window lies in.
    segments : list of (float, float)
        The speech segments, ``(start_s, end_s)``.
    duration_s : float
        The input's duration.
    """

    embeddings: npt.NDArray[np.float32]
    start_s: npt.NDArray[np.float64]
    segment: npt.NDArray[np.int64]
    segments: list[tuple[float, float]]
    duration_s: float


def speech_windows(
    input: object,
    config: DiarizationConfig,
    embedder: SpeakerEmbedder,
    *,
    sample_rate: int | None = None,
    uri: str = "input",
) -> SpeechWindows:
    """Read, detect speech, cut and embed the windows of one recording, chunk by chunk.

    Parameters
    ----------
    input : path, numpy.ndarray or torch.Tensor
    config : DiarizationConfig
    embedder : SpeakerEmbedder
    sample_rate : int or None
        The rate of an array or tensor, in Hz.
    uri : str
        The name shown on the progress bar.

    Returns
    -------
    SpeechWindows

    Raises
    ------
    AudioError
        For unreadable audio, or when no speech is found.
    """
    import torch

    from ..stages.mel import melspectrogram
    from ..stages.windows import partial_windows

    source = os.fspath(input) if isinstance(input, (str, os.PathLike)) else "input"
    duration_s, chunks = _chunks_16k(input, sample_rate, config.chunk_s, source)
    frames = config.window_samples // 160
    step = max(1, round(config.step_s * 100))
    cap = 256
    rows: list[npt.NDArray[np.float32]] = []
    starts: list[npt.NDArray[np.float64]] = []
    seg_of: list[npt.NDArray[np.int64]] = []
    segments: list[tuple[float, float]] = []
    offset = 0
    pending: list[torch.Tensor] = []
    held = 0

    def encode(final: bool) -> None:
        # Windows of consecutive segments share full batches of ``cap``: fewer, larger encoder
        # calls, and one batch shape for all but the last.
        nonlocal pending, held
        while held >= cap or (final and held):
            joined = torch.cat(pending) if len(pending) > 1 else pending[0]
            batch, rest = joined[:cap], joined[cap:]
            with torch.inference_mode():
                out = embedder.encoder(batch.to(embedder.device))
            rows.append(out.cpu().numpy().astype(np.float32, copy=False))
            pending, held = ([rest] if rest.shape[0] else []), int(rest.shape[0])

    bar = _progress(duration_s, uri)
    try:
        for chunk in chunks:
            for a, b in _speech(chunk, config):
                mel = melspectrogram(torch.from_numpy(np.ascontiguousarray(chunk[a:b])))
                windows = partial_windows(mel, step, 0.5, frames).contiguous()
                pending.append(windows)
                held += int(windows.shape[0])
                encode(final=False)
                t0 = (offset + a) / MODEL_SAMPLE_RATE
                starts.append(t0 + np.arange(windows.shape[0]) * step / 100)
                seg_of.append(np.full(windows.shape[0], len(segments), np.int64))
                segments.append((t0, (offset + b) / MODEL_SAMPLE_RATE))
            offset += chunk.shape[0]
            if bar is not None:
                bar.update(round(chunk.shape[0] / MODEL_SAMPLE_RATE))
        encode(final=True)
    finally:
        if bar is not None:
            bar.close()
    if not segments:
        raise AudioError(
            f"no speech found in {duration_s:.2f} s of audio (Silero VAD at threshold "
            f"{config.vad_threshold:g}, after level normalisation); pass audio with speech, or lower "
            "DiarizationConfig.vad_threshold",
            source=source,
            stage="vad",
        )
    emb = np.concatenate(rows)
    norms = np.linalg.norm(emb, axis=1)
    good = np.isfinite(emb).all(axis=1) & (np.abs(norms - 1.0) <= 1e-3)
    if not good.any():
        raise AudioError("the encoder gave no usable window embedding", source=source, stage="encode")
    return SpeechWindows(
        emb[good], np.concatenate(starts)[good], np.concatenate(seg_of)[good], segments, duration_s
    )


def diarize(
    input: object,
    *,
    num_speakers: int | None = None,
    min_speakers: int | None = None,
    max_speakers: int | None = None,
    config: DiarizationConfig | None = None,
    sample_rate: int | None = None,
    uri: str | None = None,
    embedder: SpeakerEmbedder | None = None,
    weights: str | os.PathLike[str] = "chatterbox",
    device: str | None = None,
    precision: Precision = "fp32",
) -> Diarization:
    """Find who spoke when in one recording.

    Parameters
    ----------
    input : path, numpy.ndarray or torch.Tensor
        One recording, of any length: files are read in chunks.
    num_speakers : int or None
        The number of speakers, when known; otherwise it is estimated.
    min_speakers, max_speakers : int or None
        Bounds on the estimated number (``max_speakers`` defaults to ``config.max_speakers``).
    config : DiarizationConfig or None
        Windows, VAD and clustering settings; ``DiarizationConfig()`` by default.
    sample_rate : int or None
        The rate of an array or tensor, in Hz; files carry their own.
    uri : str or None
        The name written in RTTM; by default the file name without its extension.
    embedder : SpeakerEmbedder or None
        The encoder to use; otherwise the cached one for ``weights``, ``device``, ``precision``.
    weights, device, precision
        As for :func:`~speakerembed.embed_utterances`; ignored when ``embedder`` is given.

    Returns
    -------
    Diarization
        ``turns`` ``(start_s, end_s, speaker)`` in the input's seconds, one unit
        ``speaker_embeddings`` entry per speaker, ``to_rttm()``, ``to_json()``, ``to_annotation()``.

    Raises
    ------
    ConfigError
        For a count below 1, counts that contradict each other, or a bad ``config``.
    AudioError
        For unreadable audio, or audio in which the VAD finds no speech.

    Examples
    --------
    >>> from speakerembed import diarize
    >>> d = diarize("examples/audio/alice_1.wav", weights="resemblyzer", device="cpu")
    >>> d.speakers, d.turns[0].speaker
    (['SPEAKER_00'], 'SPEAKER_00')
    """
    from ..embedder import SpeakerEmbedder
    from ..stages.consolidate import utt_to_spk_embed

    check_counts(num_speakers, min_speakers, max_speakers)
    cfg = config if config is not None else DiarizationConfig()
    if not isinstance(cfg, DiarizationConfig):
        raise ConfigError(
            f"config={config!r} is not a DiarizationConfig; pass DiarizationConfig(...) or None"
        )
    if embedder is None:
        from ..api import get_embedder

        embedder = get_embedder(weights, device=device, precision=precision)
    elif not isinstance(embedder, SpeakerEmbedder):
        raise ConfigError(f"embedder={embedder!r} is not a SpeakerEmbedder; pass one, or None")
    name = uri if uri is not None else input_uri(input)
    sw = speech_windows(input, cfg, embedder, sample_rate=sample_rate, uri=name)
    emb, start, seg, segments = sw.embeddings, sw.start_s, sw.segment, sw.segments
    labels = cluster_windows(
        emb, seg, cfg, num_speakers=num_speakers, min_speakers=min_speakers, max_speakers=max_speakers
    )
    speakers = [f"SPEAKER_{i:02d}" for i in range(int(labels.max()) + 1)]
    centre = np.minimum(start + cfg.window_s / 2, np.asarray([segments[s][1] for s in seg]))
    turns: list[Turn] = []
    for s_idx, (s0, s1) in enumerate(segments):
        idx = np.flatnonzero(seg == s_idx)
        if idx.shape[0] == 0:
            continue
        cut = s0
        for j, i in enumerate(idx):
            if j + 1 < idx.shape[0] and labels[idx[j + 1]] == labels[i]:
                continue
            end = s1 if j + 1 == idx.shape[0] else float((centre[i] + centre[idx[j + 1]]) / 2)
            turns.append(Turn(round(cut, 3), round(end, 3), speakers[int(labels[i])]))
            cut = end
    spk = {label: utt_to_spk_embed(emb[labels == i]) for i, label in enumerate(speakers)}
    speech_s = float(sum(b - a for a, b in segments))
    return Diarization(name, tuple(t for t in turns if t.end_s > t.start_s), spk, sw.duration_s, speech_s)


def check_unique_uris(inputs: Sequence[object]) -> list[str]:
    """The uri of each input, or a ConfigError naming two inputs that share one.

    Raises
    ------
    ConfigError
        When two inputs have the same uri (RTTM could not tell them apart).
    """
    seen: dict[str, object] = {}
    out = []
    for item in inputs:
        u = input_uri(item)
        if u in seen:
            raise ConfigError(
                f"inputs {seen[u]!s} and {item!s} have the same uri {u!r} (file name without extension); "
                "RTTM could not tell them apart: rename one, or diarize them in separate runs"
            )
        seen[u] = item
        out.append(u)
    return out


def link_files(
    diarizations: Sequence[Diarization], *, threshold: float | None = None
) -> tuple[list[Diarization], list[dict[str, Any]]]:
    """Give the same speaker the same label in every file.

    The per-file speaker embeddings are clustered with
    ``speakerembed.analysis.clustering.cluster_speakers`` (``threshold`` is its cosine;
    ``None`` its measured default), and each file's speakers are renamed ``SPK_000``,
    ``SPK_001``... after their cluster. Two speakers of one file that fall in one cluster become
    one speaker there.

    Parameters
    ----------
    diarizations : sequence of Diarization
        One per file, with distinct uris.
    threshold : float or None
        Passed to ``cluster_speakers``.

    Returns
    -------
    linked : list of Diarization
        The same turns under global labels, in the input order.
    speakers : list of dict
        The global speakers: ``speaker``, ``embedding`` (256 floats, unit), ``files`` (uris) and
        ``seconds`` (speech in each file).
    """
    from ..stages.consolidate import utt_to_spk_embed
    from .clustering import cluster_speakers

    rows = [(i, label) for i, d in enumerate(diarizations) for label in d.speaker_embeddings]
    if not rows:
        return list(diarizations), []
    matrix = np.stack([diarizations[i].speaker_embeddings[label] for i, label in rows]).astype(np.float32)
    if matrix.shape[0] == 1:
        groups = np.zeros(1, np.int64)
    else:
        groups = np.asarray(cluster_speakers(matrix, threshold=threshold), np.int64)
    # singletons (-1, if any) keep a label of their own
    nxt = int(groups.max()) + 1 if groups.size else 0
    for j in np.flatnonzero(groups < 0):
        groups[j], nxt = nxt, nxt + 1
    order = {g: k for k, g in enumerate(dict.fromkeys(groups.tolist()))}
    names = {row: f"SPK_{order[int(g)]:03d}" for row, g in zip(rows, groups, strict=True)}
    linked: list[Diarization] = []
    table: dict[str, dict[str, Any]] = {}
    members: dict[str, list[npt.NDArray[np.float32]]] = {}
    for i, d in enumerate(diarizations):
        rename = {label: names[(i, label)] for label in d.speaker_embeddings}
        turns: list[Turn] = []
        for t in d.turns:
            new = Turn(t.start_s, t.end_s, rename[t.speaker])
            if turns and turns[-1].speaker == new.speaker and turns[-1].end_s >= new.start_s:
                turns[-1] = Turn(turns[-1].start_s, new.end_s, new.speaker)
            else:
                turns.append(new)
        spk: dict[str, npt.NDArray[np.float32]] = {}
        for label, emb in d.speaker_embeddings.items():
            members.setdefault(rename[label], []).append(emb)
            spk.setdefault(rename[label], emb)
        for label in spk:
            same = [d.speaker_embeddings[k] for k, v in rename.items() if v == label]
            spk[label] = utt_to_spk_embed(np.stack(same)) if len(same) > 1 else same[0]
        linked.append(Diarization(d.uri, tuple(turns), spk, d.duration_s, d.speech_s))
        for label, seconds in linked[-1].speaker_seconds().items():
            entry = table.setdefault(label, {"speaker": label, "files": [], "seconds": {}})
            entry["files"].append(d.uri)
            entry["seconds"][d.uri] = round(seconds, 3)
    for label, entry in table.items():
        entry["embedding"] = [round(float(v), 6) for v in utt_to_spk_embed(np.stack(members[label]))]
    return linked, sorted(table.values(), key=lambda e: str(e["speaker"]))
