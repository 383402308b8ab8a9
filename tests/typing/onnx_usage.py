"""export_onnx as users call it, checked by ``mypy --strict`` (``nox -s typecheck``); not run."""

from __future__ import annotations

from pathlib import Path

from typing_extensions import assert_type

from speakerembed import OnnxExport, SpeakerEmbedder, WeightsInfo, export_onnx


def export_models() -> None:
    embedder = SpeakerEmbedder("resemblyzer", device="cpu")
    model = export_onnx("ve.onnx", embedder=embedder)
    assert_type(model, OnnxExport)
    assert_type(model.path, Path)
    assert_type(model.worst_cosine, float)
    assert_type(model.weights, WeightsInfo)
    assert_type(model.metadata["speakerembed.weights_sha256"], str)
    export_onnx(Path("ve16k.onnx"), embedder=embedder, waveform=True, opset=18)
    export_onnx("ve.onnx", embedder="resemblyzer")  # type: ignore[arg-type]
    export_onnx("ve.onnx", waveform=1.5)  # type: ignore[arg-type]
