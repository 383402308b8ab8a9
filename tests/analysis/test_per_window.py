"""Windowed embeddings: window times against the windowing stage, and a speaker change."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import speech_wave

from speakerembed import AudioError, Pipeline, SpeakerEmbedder, embed_windows
from speakerembed.analysis.per_window import window_times
from speakerembed.cli import main
from speakerembed.stages.mel import n_mel_frames
from speakerembed.stages.resample import resample
from speakerembed.stages.trim import trim_silence
from speakerembed.stages.windows import num_windows

HOP_S = 0.01


def _expected(wav: np.ndarray, sr: int, pipe: Pipeline) -> tuple[np.ndarray, np.ndarray]:
    """Window times from the stages themselves: resample, trim_silence, num_windows."""
    if pipe.order == "resample_trim":
        y = resample(wav, sr, 16000, pipe.resampler)
        frame, hop = pipe.trim_frames_at(16000)
        kept, (start, end) = trim_silence(y, pipe.top_db, frame, hop)
        at, n16 = 16000, kept.shape[0]
    else:
        frame, hop = pipe.trim_frames_at(sr)
        kept, (start, end) = trim_silence(wav, pipe.top_db, frame, hop)
        at, n16 = sr, resample(kept, sr, 16000, pipe.resampler).shape[0]
    n, _ = num_windows(n_mel_frames(n16), pipe.frame_step, pipe.min_coverage, pipe.partial_frames)
    k = np.arange(n)
    first = k * pipe.frame_step * HOP_S
    last = np.minimum(first + pipe.partial_frames * HOP_S, (end - start) / at)
    return start / at + first, start / at + last


@pytest.mark.parametrize("order", ["resample_trim", "trim_resample"])
def test_window_times_match_the_windowing_stage(embedder: SpeakerEmbedder, speech: Path, order: str) -> None:
    path = speech / "vctk48k" / "p233_023.wav"  # 48 kHz, with leading and trailing silence
    wav, sr = speech_wave(path)
    pipe = Pipeline(order=order)  # type: ignore[arg-type]
    result = embed_windows(path, embedder=embedder, pipeline=pipe)
    start, end = _expected(wav, sr, pipe)
    assert start[0] > 0.05  # the trim offset is really there
    assert len(result) == start.shape[0]
    np.testing.assert_allclose(result.start_s, start, atol=1e-9)
    np.testing.assert_allclose(result.end_s, end, atol=1e-9)
    assert result.duration_s == pytest.approx(wav.shape[0] / sr)
    # The windows' mean is the utterance embedding the library gives for the whole file.
    whole = embedder.embed_utterances(path, pipeline=pipe)[0]
    assert float(whole @ result.utterance_embedding()) > 0.9999
    norms = np.linalg.norm(result.embeddings, axis=1)
    np.testing.assert_allclose(norms, 1.0, atol=1e-4)
    assert result.embeddings.dtype == np.float32


def test_window_length_and_rate_come_from_the_pipeline(
    embedder: SpeakerEmbedder, short_utterances: list[Path]
) -> None:
    path = max(short_utterances, key=lambda p: p.stat().st_size)
    pipe = Pipeline(partial_frames=100, rate=None, overlap=0.5)
    result = embed_windows(path, embedder=embedder, pipeline=pipe)
    np.testing.assert_allclose(np.diff(result.start_s), 0.5, atol=1e-9)
    full = result.end_s[:-1] - result.start_s[:-1]
    np.testing.assert_allclose(full, 1.0, atol=1e-9)


def test_streaming_path_gives_the_same_windows(
    embedder: SpeakerEmbedder, short_utterances: list[Path]
) -> None:
    path = short_utterances[0]
    memory = embed_windows(path, embedder=embedder, pipeline=Pipeline(stream_min_duration_s=None))
    streamed = embed_windows(path, embedder=embedder, pipeline=Pipeline(stream_min_duration_s=0.5))
    assert len(memory) == len(streamed)
    np.testing.assert_allclose(streamed.start_s, memory.start_s, atol=1e-3)
    np.testing.assert_allclose(streamed.end_s, memory.end_s, atol=1e-3)
    assert float(np.min(np.einsum("ij,ij->i", memory.embeddings, streamed.embeddings))) > 0.999


def test_vad_window_times_stay_in_the_input(
    embedder: SpeakerEmbedder, librispeech: dict[str, list[Path]]
) -> None:
    pytest.importorskip("silero_vad")
    files = next(iter(librispeech.values()))[:2]
    a, sr = speech_wave(files[0])
    b, _ = speech_wave(files[1])
    gap = np.random.default_rng(0).normal(0, 1e-4, 4 * sr).astype(np.float32)
    joined = np.concatenate([a, gap, b])
    result = embed_windows(joined, sample_rate=sr, embedder=embedder, pipeline=Pipeline(vad="silero"))
    assert np.all(np.diff(result.start_s) > 0)
    assert np.all(result.end_s > result.start_s)
    assert result.end_s[-1] <= joined.shape[0] / sr + 1e-9
    # No window starts inside the 4 s gap (minus the VAD padding): the VAD removed it.
    lo, hi = a.shape[0] / sr + 0.5, a.shape[0] / sr + 3.5
    assert not np.any((result.start_s > lo) & (result.start_s < hi))
    assert result.speech_s < joined.shape[0] / sr - 3.0


def test_window_times_map_through_gaps() -> None:
    pipe = Pipeline()
    # 1 s kept at 2-3 s, then 3 s kept at 10-13 s: window 1 starts at 0.77 s of kept audio
    # (2.77 s) and ends at 2.37 s of kept audio (11.37 s), across the gap.
    start, end = window_times(3, [(2.0, 3.0), (10.0, 13.0)], pipe)
    np.testing.assert_allclose(start, [2.0, 2.77, 10.54])
    np.testing.assert_allclose(end, [10.6, 11.37, 12.14])
    with pytest.raises(ValueError, match="spans is empty"):
        window_times(1, [], pipe)


def test_speaker_change_shows_in_the_windows(
    embedder: SpeakerEmbedder, librispeech: dict[str, list[Path]]
) -> None:
    groups = list(librispeech.values())
    a, sr = speech_wave(groups[0][0])
    b, _ = speech_wave(groups[1][0])
    a, b = a[: 10 * sr], b[: 10 * sr]
    boundary = a.shape[0] / sr
    result = embed_windows(np.concatenate([a, b]), sample_rate=sr, embedder=embedder)
    ref_a, ref_b = embedder.embed_utterances([a, b], sample_rate=sr)
    sim_a, sim_b = result.embeddings @ ref_a, result.embeddings @ ref_b
    before, after = result.end_s <= boundary, result.start_s >= boundary
    assert before.sum() >= 5
    assert after.sum() >= 5
    assert np.all(sim_a[before] > sim_b[before])
    assert np.all(sim_b[after] > sim_a[after])
    # Consecutive windows agree within a speaker and disagree across the change.
    prev = result.similarity_to_previous()
    across = (result.start_s[1:] < boundary) & (result.end_s[1:] > boundary)
    assert prev[across].min() < np.median(prev[~across])
    assert float(np.median(result.similarity_to_utterance())) > 0.5


def test_one_input_only(embedder: SpeakerEmbedder) -> None:
    with pytest.raises(AudioError, match="takes one input"):
        embed_windows(["a.wav", "b.wav"], embedder=embedder)  # type: ignore[arg-type]


def test_cli_writes_parquet(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, short_utterances: list[Path]
) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    out = tmp_path / "w.parquet"
    path = str(short_utterances[2])
    code = main(["windows", path, "-o", str(out), "--weights", "resemblyzer", "--device", "cpu"])
    assert code == 0
    table = pq.read_table(out)
    assert table.column_names == [
        "start_s",
        "end_s",
        "embedding",
        "similarity_to_file",
        "similarity_to_previous",
    ]
    kind = table.schema.field("embedding").type
    assert kind.list_size == 256
    assert str(kind.value_type) == "float"
    prev = table.column("similarity_to_previous").to_pylist()
    assert prev[0] is None
    assert all(v is not None for v in prev[1:])
    rows = np.asarray(table.column("embedding").to_pylist(), dtype=np.float32)
    direct = embed_windows(path, weights="resemblyzer", device="cpu")
    np.testing.assert_allclose(rows, direct.embeddings, atol=1e-6)
    np.testing.assert_allclose(table.column("start_s").to_numpy(), direct.start_s)


def test_cli_prints_without_output(capsys: pytest.CaptureFixture[str], short_utterances: list[Path]) -> None:
    assert main(["windows", str(short_utterances[2]), "--weights", "resemblyzer", "--device", "cpu"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split("\t") == ["start_s", "end_s", "similarity_to_file", "similarity_to_previous"]
    assert len(lines) >= 3


def test_cli_refuses_other_outputs(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["windows", "x.wav", "-o", str(tmp_path / "w.csv")]) == 2
    assert "use one of .parquet" in capsys.readouterr().err


def test_cli_plot(capsys: pytest.CaptureFixture[str], tmp_path: Path, short_utterances: list[Path]) -> None:
    pytest.importorskip("matplotlib")
    out = tmp_path / "w.png"
    argv = [
        "windows",
        str(short_utterances[0]),
        "--plot",
        str(out),
        "--weights",
        "resemblyzer",
        "--device",
        "cpu",
    ]
    assert main(argv) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["windows", "x.wav", "--plot", str(tmp_path / "w.jpg")]) == 2
    assert "--plot" in capsys.readouterr().err


def test_plot_windows_draws_the_similarities() -> None:
    pytest.importorskip("matplotlib")
    from speakerembed.analysis.plots import plot_windows

    fig = plot_windows([0.0, 0.77, 1.54], [1.6, 2.37, 3.14], [0.9, 0.8, 0.85], [0.7, 0.75])
    to_file, to_prev = fig.axes[0].lines
    np.testing.assert_allclose(to_file.get_ydata(), [0.9, 0.8, 0.85])
    np.testing.assert_allclose(to_prev.get_xdata(), [1.185, 1.955])
    with pytest.raises(Exception, match="one fewer"):
        plot_windows([0.0], [1.6], [0.9], [0.5])
