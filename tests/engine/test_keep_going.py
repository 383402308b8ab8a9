"""``errors="skip"`` and the CLI's ``--keep-going``: bad inputs are reported, good ones all embedded."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from _signals import voice

from speakerembed import AudioError, EmbeddingResult, SpeakerEmbedder, SpeakerEmbedError, embed_utterances
from speakerembed.cli import main

SR = 16_000


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("keep_going")
    out = {}
    for i, f0 in enumerate((110.0, 160.0, 220.0)):
        out[f"good{i}"] = d / f"good{i}.wav"
        sf.write(out[f"good{i}"], voice(2.0, SR, f0=f0, seed=i), SR, subtype="PCM_16")
    out["text"] = d / "notes.wav"
    out["text"].write_text("not audio\n" * 50)
    out["silent"] = d / "silent.wav"
    sf.write(out["silent"], np.zeros(SR, np.float32), SR)
    out["missing"] = d / "missing.wav"
    return out


def test_skip_embeds_every_good_input_and_lists_the_bad(
    embedder: SpeakerEmbedder, clips: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    inputs: list[object] = [
        clips["good0"],
        np.zeros(SR, np.float32),  # silence
        clips["good1"],
        clips["text"],
        voice(2.0, SR, f0=140.0, seed=7),
        clips["missing"],
        voice(0.05, SR),  # too short
        clips["good2"],
    ]
    with caplog.at_level(logging.WARNING, logger="speakerembed"):
        result = embedder.embed_utterances(inputs, sample_rate=SR, errors="skip")
    assert isinstance(result, EmbeddingResult)
    assert not result.ok
    assert result.indices.tolist() == [0, 2, 4, 7]
    assert [f.index for f in result.failures] == [1, 3, 5, 6]
    assert result.embeddings.shape == (4, 256)
    assert result.embeddings.dtype == np.float32
    # Each row is the embedding of its own input: the same as embedding it alone (to float
    # rounding: the encoder batches windows differently), and far from the others.
    for row, index in zip(result.embeddings, result.indices, strict=True):
        alone = embedder.embed_utterances(inputs[index], sample_rate=SR)[0]
        np.testing.assert_allclose(row, alone, atol=1e-6)
    np.testing.assert_array_equal(
        result.embeddings, embedder.embed_utterances([inputs[i] for i in result.indices], sample_rate=SR)
    )
    # Each failure names its input and carries our error.
    assert result.failures[0].source == "input 1"
    assert result.failures[1].source == f"input 3 ({clips['text']})"
    assert "no such file" in str(result.failures[2].error)
    assert "less than the minimum" in str(result.failures[3].error)
    for failure in result.failures:
        assert isinstance(failure.error, SpeakerEmbedError)
        assert failure.source in str(failure.error)
    # ...and each one was logged.
    logged = [r.getMessage() for r in caplog.records if r.name == "speakerembed"]
    for failure in result.failures:
        assert any(failure.source in m for m in logged), (failure.source, logged)


def test_skip_mode_with_nothing_wrong_is_the_raise_mode(
    embedder: SpeakerEmbedder, clips: dict[str, Path]
) -> None:
    files = [clips["good0"], clips["good1"]]
    result = embedder.embed_utterances(files, errors="skip")
    assert result.ok
    assert result.indices.tolist() == [0, 1]
    np.testing.assert_array_equal(result.embeddings, embedder.embed_utterances(files))


def test_skip_mode_speaker_embedding_uses_the_good_inputs(
    embedder: SpeakerEmbedder, clips: dict[str, Path]
) -> None:
    result = embedder.embed_utterances([clips["good0"], clips["text"], clips["good1"]], errors="skip")
    expected = embedder.embed_speaker([clips["good0"], clips["good1"]])
    np.testing.assert_allclose(result.speaker_embedding(), expected, atol=1e-6)


def test_skip_mode_when_everything_fails(embedder: SpeakerEmbedder, clips: dict[str, Path]) -> None:
    result = embedder.embed_utterances([clips["text"], clips["missing"]], errors="skip")
    assert result.embeddings.shape == (0, 256)
    assert result.indices.shape == (0,)
    assert len(result.failures) == 2
    with pytest.raises(AudioError, match="no input could be embedded"):
        result.speaker_embedding()


def test_skip_mode_through_the_module_api(clips: dict[str, Path]) -> None:
    result = embed_utterances(
        [clips["missing"], clips["good2"]], weights="resemblyzer", device="cpu", errors="skip"
    )
    assert result.indices.tolist() == [1]
    assert result.failures[0].index == 0


def test_raise_mode_is_the_default_and_names_the_input(
    embedder: SpeakerEmbedder, clips: dict[str, Path]
) -> None:
    with pytest.raises(AudioError, match=r"input 1 \(.*notes\.wav\)"):
        embedder.embed_utterances([clips["good0"], clips["text"], clips["good1"]])


# -- the CLI ------------------------------------------------------------------------------------


def _cli(*args: str) -> int:
    return main([*args, "--weights", "resemblyzer", "--device", "cpu"])


def test_cli_keep_going_reports_on_stderr_and_writes_the_rest(
    embedder: SpeakerEmbedder, clips: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "utts.npz"
    files = [clips["good0"], clips["text"], clips["good1"], clips["silent"], clips["good2"]]
    code = _cli("embed", *map(str, files), "--utterances", "--keep-going", "-o", str(out))
    err = capsys.readouterr().err
    assert code == 3  # finished, but something failed, and the exit code says so
    assert f"skipped input 1 ({clips['text']})" in err
    assert f"skipped input 3 ({clips['silent']})" in err
    assert "digital silence" in err
    data = np.load(out)
    good = [clips["good0"], clips["good1"], clips["good2"]]
    assert data["files"].tolist() == [str(p) for p in good]
    np.testing.assert_allclose(data["embeddings"], embedder.embed_utterances(good), atol=1e-6)


def test_cli_keep_going_speaker_embedding(
    embedder: SpeakerEmbedder, clips: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "speaker.npy"
    code = _cli(
        "embed",
        str(clips["good0"]),
        str(clips["missing"]),
        str(clips["good1"]),
        "--keep-going",
        "-o",
        str(out),
    )
    err = capsys.readouterr().err
    assert code == 3
    assert f"skipped input 1 ({clips['missing']}): no such file" in err
    expected = embedder.embed_speaker([clips["good0"], clips["good1"]])
    np.testing.assert_allclose(np.load(out), expected, atol=1e-6)


def test_cli_without_keep_going_stops_and_writes_nothing(
    clips: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "speaker.npy"
    code = _cli("embed", str(clips["good0"]), str(clips["text"]), "-o", str(out))
    err = capsys.readouterr().err
    assert code == 1
    assert f"speakerembed: error: input 1 ({clips['text']})" in err
    assert not out.exists()


def test_cli_keep_going_with_nothing_left(clips: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    code = _cli("embed", str(clips["text"]), str(clips["silent"]), "--keep-going")
    err = capsys.readouterr().err
    assert code == 1
    assert "skipped input 0" in err
    assert "skipped input 1" in err
    assert "no file could be embedded" in err


def test_cli_keep_going_all_good_exits_0(clips: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    code = _cli("embed", str(clips["good0"]), str(clips["good1"]), "--keep-going")
    captured = capsys.readouterr()
    assert code == 0
    assert "skipped" not in captured.err
    assert "from 2 file(s)" in captured.out
