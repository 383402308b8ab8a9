"""The ``speakerembed`` command line: outputs, flags, help, exit codes and error reporting.

Most tests call :func:`speakerembed.cli.main` in-process (fast); one runs the real program.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from speakerembed import Pipeline, SpeakerEmbedder
from speakerembed.cli import build_parser, main

AUDIO = Path(__file__).resolve().parents[2] / "examples" / "audio"
ALICE = [str(AUDIO / f"alice_{i}.wav") for i in (1, 2, 3)]
BOB = [str(AUDIO / f"bob_{i}.wav") for i in (1, 2, 3)]
W = ["--weights", "resemblyzer", "--device", "cpu"]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def usage_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    with pytest.raises(SystemExit) as info:
        main(list(argv))
    assert info.value.code == 2
    return capsys.readouterr().err


# -- embed -----------------------------------------------------------------------------------


def test_embed_writes_a_speaker_embedding_npy(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, embedder: SpeakerEmbedder
) -> None:
    out = tmp_path / "speaker.npy"
    code, _, err = run(capsys, "embed", *ALICE, "-o", str(out), *W)
    assert code == 0, err
    arr = np.load(out)
    assert arr.shape == (256,)
    assert arr.dtype == np.float32
    np.testing.assert_allclose(arr, embedder.embed_speaker(ALICE), atol=1e-6)
    assert "wrote speaker embedding (256,)" in err


def test_embed_utterances_npz(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, embedder: SpeakerEmbedder
) -> None:
    out = tmp_path / "utts.npz"
    code, _, err = run(capsys, "embed", *ALICE, *BOB, "--utterances", "-o", str(out), *W)
    assert code == 0, err
    with np.load(out) as data:
        assert data["embeddings"].shape == (6, 256)
        assert list(data["files"]) == ALICE + BOB
        assert str(data["weights"]).startswith("resemblyzer@")
        assert str(data["kind"]) == "utterance"
        np.testing.assert_allclose(data["embeddings"], embedder.embed_utterances(ALICE + BOB), atol=1e-5)


@pytest.mark.parametrize("name", ["emb", "out.csv", "out.txt"])
def test_embed_refuses_an_output_it_cannot_write(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, name: str
) -> None:
    code, _, err = run(capsys, "embed", str(tmp_path / "missing.wav"), "-o", str(tmp_path / name), *W)
    assert code == 2, err
    assert "-o" in err
    assert ".npy, .npz" in err
    assert not list(tmp_path.iterdir()), "nothing may be written for a usage error"


def test_embed_without_output_prints_a_summary(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "embed", ALICE[0], *W)
    assert code == 0
    assert out.startswith("speaker embedding (256,) from 1 file(s), weights resemblyzer@")


@pytest.mark.parametrize(
    ("flags", "pipeline"),
    [
        (["--order", "trim_resample"], Pipeline(order="trim_resample")),
        (["--resampler", "polyphase"], Pipeline(resampler="polyphase")),
        (
            ["--resampler", "torchaudio", "--order", "trim_resample"],
            Pipeline(resampler="torchaudio", order="trim_resample"),
        ),
        (["--no-trim"], Pipeline(top_db=None)),
        (["--top-db", "35"], Pipeline(top_db=35)),
    ],
)
def test_embed_pipeline_flags(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    embedder: SpeakerEmbedder,
    flags: list[str],
    pipeline: Pipeline,
    speech: Path,
) -> None:
    # A 48 kHz file, so the resampler and the order matter.
    path = str(speech / "vctk48k" / "p236_023.wav")
    out = tmp_path / "e.npy"
    code, _, err = run(capsys, "embed", path, "-o", str(out), *flags, *W)
    assert code == 0, err
    np.testing.assert_allclose(np.load(out), embedder.embed_speaker(path, pipeline=pipeline), atol=1e-6)


def test_embed_kaiser_fast_flag(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, embedder: SpeakerEmbedder
) -> None:
    pytest.importorskip("resampy")
    out = tmp_path / "e.npy"
    assert run(capsys, "embed", ALICE[0], "--resampler", "kaiser_fast", "-o", str(out), *W)[0] == 0
    np.testing.assert_allclose(
        np.load(out), embedder.embed_speaker(ALICE[0], pipeline=Pipeline.chatterbox()), atol=1e-6
    )


def test_embed_stops_at_a_bad_file_with_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.wav")
    out = tmp_path / "e.npy"
    code, stdout, err = run(capsys, "embed", ALICE[0], missing, "-o", str(out), *W)
    assert code == 1
    assert not out.exists()
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("speakerembed: error: input 1")
    assert "missing.wav" in lines[0]
    assert "no such file" in lines[0]
    assert "Traceback" not in err
    assert stdout == ""


def test_embed_keep_going_skips_bad_files(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"this is not audio at all" * 10)
    out = tmp_path / "utts.npz"
    code, _, err = run(
        capsys, "embed", ALICE[0], str(bad), ALICE[1], "--utterances", "--keep-going", "-o", str(out), *W
    )
    assert code == 3  # finished, but something failed: the rest was written
    assert "skipped input 1" in err
    assert "bad.wav" in err
    with np.load(out) as data:
        assert data["embeddings"].shape == (2, 256)
        assert list(data["files"]) == [ALICE[0], ALICE[1]]
        assert list(data["failed_files"]) == [str(bad)]
        assert list(data["failed_error_types"]) == ["AudioError"]
        assert "bad.wav" in str(data["failed_errors"][0])


def test_embed_keep_going_with_nothing_left(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, "embed", str(tmp_path / "a.wav"), "--keep-going", *W)
    assert code == 1
    assert "no file could be embedded" in err


def test_verbose_prints_the_traceback(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, "embed", str(tmp_path / "missing.wav"), "--verbose", *W)
    assert code == 1
    assert "Traceback (most recent call last)" in err
    assert err.strip().splitlines()[-1].startswith("speakerembed: error:")


def test_unknown_weights_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "embed", ALICE[0], "--weights", "no-such-weights")
    assert code == 1
    assert err.strip().splitlines() == [err.strip()]
    assert "unknown weights 'no-such-weights'" in err
    assert "resemblyzer" in err


@pytest.mark.parametrize("dev", ["toaster", "gpu", "cuda:x"])
def test_bad_device_is_a_usage_error(capsys: pytest.CaptureFixture[str], dev: str) -> None:
    err = usage_error(capsys, "embed", ALICE[0], "--weights", "resemblyzer", "--device", dev)
    assert "--device" in err
    assert "cpu, cuda" in err


# -- similarity ------------------------------------------------------------------------------


def test_similarity_of_two_files(capsys: pytest.CaptureFixture[str], embedder: SpeakerEmbedder) -> None:
    code, same, _ = run(capsys, "similarity", ALICE[0], ALICE[1], *W)
    assert code == 0
    code, different, _ = run(capsys, "similarity", ALICE[0], BOB[0], *W)
    assert code == 0
    a, b = embedder.embed_utterances([ALICE[0], ALICE[1]])
    assert float(same) == pytest.approx(float(a @ b), abs=1e-4)
    assert float(same) > float(different)


def test_similarity_of_two_sets(capsys: pytest.CaptureFixture[str], embedder: SpeakerEmbedder) -> None:
    code, out, _ = run(capsys, "similarity", *ALICE[:2], "--against", *BOB, *W)
    assert code == 0
    expected = float(embedder.embed_speaker(ALICE[:2]) @ embedder.embed_speaker(BOB))
    assert float(out) == pytest.approx(expected, abs=1e-4)


def test_similarity_needs_two_files(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "similarity", *ALICE, *W)
    assert code == 2
    assert "--against" in err


def test_similarity_error_is_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, "similarity", ALICE[0], str(tmp_path / "nope.flac"), *W)
    assert code == 1
    assert len(err.strip().splitlines()) == 1
    assert "nope.flac" in err


# -- usage and help --------------------------------------------------------------------------


def test_no_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert "usage: speakerembed" in usage_error(capsys)


@pytest.mark.parametrize(
    "argv",
    [
        ["embed"],  # no files
        ["embed", "a.wav", "--resampler", "kaiser-fast"],
        ["embed", "a.wav", "--order", "sideways"],
        ["embed", "a.wav", "--precision", "fp8"],
        ["embed", "a.wav", "--top-db", "loud"],
        ["frobnicate"],
    ],
)
def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    assert "error:" in usage_error(capsys, *argv)


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    for word in ("embed", "similarity", "Examples:", "--weights resemblyzer", "--against"):
        assert word in text


def test_embed_help_documents_the_flags(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["embed", "--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    for flag in (
        "--utterances",
        "--keep-going",
        "--weights",
        "--order",
        "--resampler",
        "--device",
        "--verbose",
        ".npz",
    ):
        assert flag in text
    for choice in (
        "resample_trim",
        "trim_resample",
        "soxr_hq",
        "kaiser_fast",
        "polyphase",
        "torchaudio",
        "resemblyzer",
    ):
        assert choice in text


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    import speakerembed

    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"speakerembed {speakerembed.__version__}"


def test_parser_is_importable_for_docs() -> None:
    assert build_parser().prog == "speakerembed"


# -- the real program ------------------------------------------------------------------------


def test_program_end_to_end(tmp_path: Path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    out = tmp_path / "speaker.npy"
    ok = subprocess.run(
        [sys.executable, "-m", "speakerembed", "embed", *ALICE, "-o", str(out), *W],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert ok.returncode == 0, ok.stderr
    assert np.load(out).shape == (256,)
    bad = subprocess.run(
        [sys.executable, "-m", "speakerembed", "embed", str(tmp_path / "missing.wav"), *W],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert bad.returncode == 1
    assert bad.stderr.count("\n") == 1
    assert "Traceback" not in bad.stderr
    usage = subprocess.run(
        [sys.executable, "-m", "speakerembed", "embed"], capture_output=True, text=True, timeout=300, env=env
    )
    assert usage.returncode == 2
