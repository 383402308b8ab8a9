"""Library messages in the command line's terms: flags where a Python caller reads keywords."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speakerembed.cli import main
from speakerembed.cli._messages import in_cli_terms

W = ["--weights", "resemblyzer", "--device", "cpu"]


@pytest.mark.parametrize(
    ("library", "cli"),
    [
        ("pass weights='resemblyzer' or a file", "pass --weights resemblyzer or a file"),
        ('pass weights="resemblyzer"', "pass --weights resemblyzer"),
        (
            "device='cuda', but CUDA is not available here; pass device='cpu'",
            "--device cuda, but CUDA is not available here; pass --device cpu",
        ),
        ("device='cuda:1' is out of range", "--device cuda:1 is out of range"),
        ("use precision='fp32' here", "use --precision fp32 here"),
        (
            "(or lower Pipeline.min_duration_s, or raise top_db)",
            "(or lower --min-duration, or raise --top-db)",
        ),
        (
            "more than max_duration_s=3; raise Pipeline.max_duration_s",
            "more than --max-duration 3; raise --max-duration",
        ),
        (
            "Pipeline.max_duration_s=1.5 is below min_duration_s=2.0;",
            "--max-duration 1.5 is below --min-duration 2.0;",
        ),
        ("Pipeline.top_db=-1 is invalid", "--top-db -1 is invalid"),
        ("or top_db=None to turn trimming off", "or --no-trim to turn trimming off"),
        ('Pipeline(resampler="kaiser_fast") needs resampy', "--resampler kaiser_fast needs resampy"),
        ("use resampler='soxr_hq' instead", "use --resampler soxr_hq instead"),
        ("Pipeline.order='x' is not one of", "--order x is not one of"),
    ],
)
def test_keywords_become_flags(library: str, cli: str) -> None:
    assert in_cli_terms(library) == cli


@pytest.mark.parametrize(
    "text",
    [
        "weights 'chatterbox' (ResembleAI/chatterbox/ve.safetensors) are not in the cache",
        "the resampler and the device are chosen for you",  # ordinary words stay words
        "pip install 'speakerembed[resemblyzer]'",
        "embeds_from_wavs(trim_top_db=20)",  # another identifier that contains a keyword
        "already a flag: --top-db 20 and --max-duration",
        "Pipeline.partial_frames=3 is invalid",  # no flag sets it: left for the Python reader
    ],
)
def test_other_text_is_left_alone(text: str) -> None:
    assert in_cli_terms(text) == text


def test_a_short_clip_names_the_min_duration_flag(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    clip = tmp_path / "short.wav"
    rng = np.random.default_rng(0)
    sf.write(clip, (0.3 * rng.standard_normal(1600)).astype(np.float32), 16000)  # 0.1 s of noise
    code = main(["embed", str(clip), *W])
    err = capsys.readouterr().err
    assert code == 1
    assert "--min-duration" in err
    assert "min_duration_s" not in err
    # ... and the flag it names works.
    assert main(["embed", str(clip), *W, "--min-duration", "0.05"]) == 0


def test_keep_going_skips_are_reported_with_flags(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    clip = tmp_path / "short.wav"
    sf.write(clip, (0.3 * np.random.default_rng(1).standard_normal(1600)).astype(np.float32), 16000)
    alice = str(Path(__file__).resolve().parents[2] / "examples" / "audio" / "alice_1.wav")
    code = main(["embed", alice, str(clip), "--keep-going", *W])
    err = capsys.readouterr().err
    assert code == 3
    assert "skipped" in err
    assert "--min-duration" in err
    assert "Pipeline.min_duration_s" not in err


def test_unavailable_cuda_names_the_device_flag(capsys: pytest.CaptureFixture[str]) -> None:
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    alice = str(Path(__file__).resolve().parents[2] / "examples" / "audio" / "alice_1.wav")
    code = main(["embed", alice, "--weights", "resemblyzer", "--device", "cuda"])
    err = capsys.readouterr().err
    assert code == 1
    assert "pass --device cpu" in err
    assert "device='cpu'" not in err
