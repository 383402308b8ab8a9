"""``speakerembed export-onnx``: the encoder, or audio to embedding, as an ONNX model."""

from __future__ import annotations

import argparse
from typing import Any

from . import _options as opt

__all__ = ["add_parser", "run"]

NAME = "export-onnx"
SUFFIXES = (".onnx",)


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Add ``export-onnx`` to the subcommands."""
    p: argparse.ArgumentParser = sub.add_parser(
        NAME,
        help="write the voice encoder as an ONNX model, checked against torch (onnxruntime)",
        description="Write the voice encoder as an ONNX model: mel windows (batch, 160, 40) to "
        "unit rows (batch, 256), or with --waveform 16 kHz trimmed audio (n_samples,) to its "
        "utterance embedding (256,). The model runs in onnxruntime and is checked against "
        "torch before it is written; its metadata names the weights' sha256 and the fixed "
        "pipeline. Needs pip install 'speakerembed[onnx]'.",
    )
    p.add_argument("output", metavar="OUT.onnx", help="the model file to write")
    p.add_argument(
        "--waveform",
        action="store_true",
        help="export audio to embedding (mel, partial windows, encoder, mean) instead of the encoder alone",
    )
    p.add_argument(
        "--weights",
        default="chatterbox",
        metavar="W",
        help="chatterbox (default, from the Hugging Face hub), chatterbox-turbo, "
        "chatterbox-multilingual, resemblyzer (offline; pip install 'speakerembed[resemblyzer]'), "
        "or a local .safetensors/.pt file",
    )
    p.add_argument(
        "--opset",
        type=opt.positive_int,
        default=None,
        metavar="N",
        help="ONNX opset, 14 to 20 (default: 17)",
    )
    opt.add_verbose(p)
    return p


def run(args: argparse.Namespace) -> int:
    """Run ``export-onnx``."""
    import importlib.util

    from ..export.onnx import DEFAULT_OPSET, OPSETS

    out = opt.check_output(args.output, SUFFIXES, "OUT.onnx")
    opset = DEFAULT_OPSET if args.opset is None else args.opset
    if opset not in OPSETS:
        raise opt.usage_error(f"--opset {opset}: use an ONNX opset from {OPSETS.start} to {OPSETS.stop - 1}")
    for package in ("onnx", "onnxruntime"):
        if importlib.util.find_spec(package) is None:
            raise opt.usage_error(f"export-onnx needs {package}: pip install 'speakerembed[onnx]'")
    from ..weights import resolve_weights

    resolve_weights(args.weights)  # missing weights fail before torch is imported
    from ..embedder import SpeakerEmbedder
    from ..export.onnx import export_onnx

    embedder = SpeakerEmbedder(args.weights, device="cpu")
    result = export_onnx(out, embedder=embedder, waveform=args.waveform, opset=opset)
    kind = "waveform model" if result.waveform else "encoder"
    print(
        f"wrote the {kind} ({result.weights.short}, opset {result.opset}) to {result.path}; "
        f"onnxruntime matches torch at cosine {result.worst_cosine:.7f} or better"
    )
    return opt.ExitCode.OK
