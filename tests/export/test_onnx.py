"""ONNX export: the models onnxruntime runs match torch on real speech, with honest metadata."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from conftest import speech_wave

from speakerembed import ConfigError, Pipeline
from speakerembed.export.onnx import ENCODER_MIN_COSINE, WAVEFORM_MIN_COSINE, export_onnx

if TYPE_CHECKING:
    from speakerembed import OnnxExport, SpeakerEmbedder

ort = pytest.importorskip("onnxruntime", reason="the ONNX tests need speakerembed[onnx] (onnxruntime)")
onnx = pytest.importorskip("onnx", reason="the ONNX tests need speakerembed[onnx] (onnx)")

SAMPLE_RATE = 16_000


@pytest.fixture(scope="module")
def encoder_model(tmp_path_factory: pytest.TempPathFactory, embedder: SpeakerEmbedder) -> OnnxExport:
    return export_onnx(tmp_path_factory.mktemp("onnx") / "encoder.onnx", embedder=embedder)


@pytest.fixture(scope="module")
def waveform_model(tmp_path_factory: pytest.TempPathFactory, embedder: SpeakerEmbedder) -> OnnxExport:
    return export_onnx(tmp_path_factory.mktemp("onnx") / "waveform.onnx", embedder=embedder, waveform=True)


def _session(path: Path) -> Any:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a64, b64 = np.atleast_2d(a).astype(np.float64), np.atleast_2d(b).astype(np.float64)
    return (a64 * b64).sum(1) / (np.linalg.norm(a64, axis=1) * np.linalg.norm(b64, axis=1))


def _speech_16k(speech: Path) -> list[tuple[str, np.ndarray]]:
    """Real 16 kHz speech of 1 to 30 s: LibriSpeech, CMU Arctic and an AMI meeting excerpt."""
    manifest = (speech / "MANIFEST.tsv").read_text().splitlines()[1:]
    rows = [line.split("\t") for line in manifest]
    picked = [r[0] for r in rows if int(r[3]) == SAMPLE_RATE and 1.0 <= float(r[2]) <= 30.0]
    by_corpus: dict[str, list[str]] = {}
    for rel in picked:
        by_corpus.setdefault(rel.split("/")[0], []).append(rel)
    chosen = [rel for group in by_corpus.values() for rel in sorted(group)[:4]]
    out = []
    for rel in chosen:
        wave, rate = speech_wave(speech / rel)
        assert rate == SAMPLE_RATE
        out.append((rel, wave))
    assert len(out) >= 6, "expected real 16 kHz speech in the shared data"
    return out


def test_encoder_matches_torch_on_real_mels_for_batches_1_to_256(
    encoder_model: OnnxExport, embedder: SpeakerEmbedder, speech: Path
) -> None:
    import torch

    from speakerembed.stages.mel import melspectrogram
    from speakerembed.stages.windows import partial_windows

    pipe = Pipeline()
    windows = torch.cat(
        [
            partial_windows(melspectrogram(torch.from_numpy(wave)), pipe.frame_step, pipe.min_coverage)
            for _, wave in _speech_16k(speech)
        ]
    )
    while windows.shape[0] < 256:
        windows = torch.cat((windows, windows))
    with torch.inference_mode():
        want = embedder.encoder(windows[:256]).numpy()
    session = _session(encoder_model.path)
    assert session.get_inputs()[0].shape == ["batch", 160, 40]
    for batch in (1, 2, 3, 31, 64, 255, 256):
        got = session.run(None, {"mels": windows[:batch].numpy()})[0]
        assert got.shape == (batch, 256)
        assert got.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
        assert _cosines(got, want[:batch]).min() >= ENCODER_MIN_COSINE, batch


def test_waveform_model_matches_embed_utterances_on_real_speech(
    waveform_model: OnnxExport, embedder: SpeakerEmbedder, speech: Path
) -> None:
    import torch

    from speakerembed.stages.mel import melspectrogram
    from speakerembed.stages.windows import num_windows

    session = _session(waveform_model.path)
    pipe = Pipeline(top_db=None)
    clips = _speech_16k(speech)
    want = embedder.embed_utterances([wave for _, wave in clips], sample_rate=SAMPLE_RATE, pipeline=pipe)
    durations = []
    for (name, wave), row in zip(clips, want, strict=True):
        got, rows = session.run(None, {"waveform": wave})
        n_frames = melspectrogram(torch.from_numpy(wave)).shape[0]
        assert rows.shape == (num_windows(n_frames, pipe.frame_step, pipe.min_coverage)[0], 256), name
        assert got.shape == (256,)
        assert float(_cosines(got, row)[0]) >= WAVEFORM_MIN_COSINE, name
        durations.append(wave.size / SAMPLE_RATE)
    assert min(durations) < 5
    assert max(durations) > 20


@pytest.mark.parametrize("n_samples", [201, 1600, 32_639, 32_640, 44_959, 44_960, 50_000])
def test_waveform_windows_follow_the_library_at_window_edges(
    waveform_model: OnnxExport, embedder: SpeakerEmbedder, n_samples: int
) -> None:
    # Lengths either side of where a last, partial window is kept or dropped (min_coverage).
    rng = np.random.default_rng(n_samples)
    t = np.arange(n_samples) / SAMPLE_RATE
    wave = (0.3 * np.sin(2 * np.pi * 180 * t) * (1 + rng.standard_normal(n_samples) * 0.1)).astype(np.float32)
    session = _session(waveform_model.path)
    got, rows = session.run(None, {"waveform": wave})
    pipe = Pipeline(top_db=None, min_duration_s=0.0)
    from speakerembed.stages.mel import n_mel_frames
    from speakerembed.stages.windows import num_windows

    assert rows.shape[0] == num_windows(n_mel_frames(n_samples), pipe.frame_step, pipe.min_coverage)[0]
    want = embedder.embed_utterances([wave], sample_rate=SAMPLE_RATE, pipeline=pipe)[0]
    assert float(_cosines(got, want)[0]) >= WAVEFORM_MIN_COSINE


def test_metadata_names_the_weights_and_the_fixed_pipeline(
    encoder_model: OnnxExport, waveform_model: OnnxExport, embedder: SpeakerEmbedder
) -> None:
    for result, kind in ((encoder_model, "encoder"), (waveform_model, "waveform")):
        model = onnx.load(str(result.path))
        props = {p.key: p.value for p in model.metadata_props}
        assert props == result.metadata
        assert props["speakerembed.model"] == kind
        assert props["speakerembed.weights_sha256"] == embedder.weights_info.sha256
        assert len(props["speakerembed.weights_sha256"]) == 64
        assert props["speakerembed.opset"] == str(result.opset)
        assert any(o.version == result.opset for o in model.opset_import if o.domain in ("", "ai.onnx"))
        fixed = json.loads(props["speakerembed.pipeline"])
        assert fixed["sample_rate"] == SAMPLE_RATE
        assert fixed["partial_frames"] == 160
        assert float(props["speakerembed.worst_cosine"]) == pytest.approx(result.worst_cosine, abs=1e-8)
    fixed = json.loads(
        {p.key: p.value for p in onnx.load(str(waveform_model.path)).metadata_props}["speakerembed.pipeline"]
    )
    pipe = Pipeline()
    assert (fixed["frame_step"], fixed["min_coverage"], fixed["rate"]) == (
        pipe.frame_step,
        pipe.min_coverage,
        pipe.rate,
    )
    assert fixed["top_db"] is None  # the model does not trim: its input is already trimmed


def test_bad_arguments_raise_config_errors_before_any_work(tmp_path: Path, embedder: SpeakerEmbedder) -> None:
    with pytest.raises(ConfigError, match=r"opset=9 .* 14 to 20"):
        export_onnx(tmp_path / "m.onnx", embedder=embedder, opset=9)
    with pytest.raises(ConfigError, match=r"\.onnx"):
        export_onnx(tmp_path / "m.pt", embedder=embedder)
    with pytest.raises(ConfigError, match="is not a SpeakerEmbedder"):
        export_onnx(tmp_path / "m.onnx", embedder="resemblyzer")  # type: ignore[arg-type]
    assert not list(tmp_path.iterdir())


def test_cli_export_onnx_writes_a_checked_model(tmp_path: Path) -> None:
    out = tmp_path / "sub" / "ve.onnx"
    proc = subprocess.run(
        [sys.executable, "-m", "speakerembed", "export-onnx", str(out), "--weights", "resemblyzer"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    assert "cosine" in proc.stdout
    assert str(out) in proc.stdout
    assert _session(out).get_outputs()[0].name == "embeddings"
    assert [p.name for p in tmp_path.joinpath("sub").iterdir()] == ["ve.onnx"]  # no temporary left


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["out.npy"], "cannot write a .npy file; use one of .onnx"),
        (["out.onnx", "--opset", "9"], "--opset 9: use an ONNX opset from 14 to 20"),
    ],
)
def test_cli_usage_errors_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    from speakerembed.cli import ExitCode, main

    code = main(["export-onnx", str(tmp_path / argv[0]), *argv[1:]])
    assert code == ExitCode.USAGE
    assert message in capsys.readouterr().err
    assert not (tmp_path / argv[0]).exists()


def test_a_model_that_does_not_match_torch_is_refused_and_not_written(tmp_path: Path) -> None:
    import torch

    from speakerembed import SpeakerEmbedder, SpeakerEmbedError

    class BatchDependent(torch.nn.Module):
        """Unit rows that depend on a Python branch on the batch size: tracing freezes the branch."""

        def __init__(self) -> None:
            super().__init__()
            self.proj = torch.nn.Linear(40, 256)

        def forward(self, mels: torch.Tensor) -> torch.Tensor:
            raw = self.proj(mels.mean(dim=1))
            raw = torch.relu(raw) if mels.shape[0] == 1 else torch.relu(-raw)
            return raw / torch.linalg.norm(raw, dim=1, keepdim=True).clamp_min(1e-12)

    torch.manual_seed(0)
    embedder = SpeakerEmbedder(encoder=BatchDependent())
    out = tmp_path / "bad.onnx"
    with pytest.raises(SpeakerEmbedError, match=r"does not match torch .* nothing was written"):
        export_onnx(out, embedder=embedder)
    assert list(tmp_path.iterdir()) == []
