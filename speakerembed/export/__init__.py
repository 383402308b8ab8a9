"""Exporting the encoder to other runtimes.

* :func:`~speakerembed.export.onnx.export_onnx` writes the encoder (mel windows in, unit rows
  out), or the whole path from 16 kHz audio to an utterance embedding, as an ONNX model, checked
  against torch with onnxruntime before it is kept (``pip install 'speakerembed[onnx]'``).
"""

from __future__ import annotations

from .onnx import OnnxExport, export_onnx

__all__ = ["OnnxExport", "export_onnx"]
