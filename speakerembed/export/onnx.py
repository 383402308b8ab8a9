"""ONNX export of the voice encoder, checked against torch with onnxruntime.

Two models, both float32, both with the weights' sha256 and the fixed pipeline in their
``metadata_props``:

* **the encoder** (``waveform=False``): input ``mels``, shape ``(batch, 160, 40)``, the
  partial-window mels :mod:`speakerembed.stages.mel` and :mod:`speakerembed.stages.windows` make, with a
  dynamic batch axis; output ``embeddings``, shape ``(batch, 256)``, unit rows.
* **the waveform model** (``waveform=True``): input ``waveform``, shape ``(n_samples,)``, 16 kHz
  mono float audio, already trimmed (at least 201 samples); outputs ``embedding``, shape
  ``(256,)``, the utterance embedding, and ``window_embeddings``, shape ``(n_windows, 256)``.
  The graph holds Chatterbox's 40-band power mel (the STFT as a strided convolution with
  Hann-windowed DFT kernels), the partial windows (their number and starts computed in the graph
  from the input's length, with Chatterbox's ``get_num_wins`` arithmetic), the encoder, the mean
  and the renormalisation: what ``embed_utterances(..., pipeline=Pipeline(top_db=None))`` gives
  for 16 kHz audio.

Every export is run in onnxruntime before it is kept: the encoder on batches of 1 to 256
windows against torch's rows (cosine at least :data:`ENCODER_MIN_COSINE`), the waveform model
on test signals of 1 to 12 s against :meth:`~speakerembed.SpeakerEmbedder.embed_utterances`
(cosine at least :data:`WAVEFORM_MIN_COSINE`). A model that misses is not written.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .._version import __version__
from ..config import MEL_HOP_LENGTH, MODEL_SAMPLE_RATE, Pipeline
from ..errors import ConfigError, SpeakerEmbedError, missing_backend
from ..stages.consolidate import unit_rows

if TYPE_CHECKING:
    import numpy.typing as npt
    import torch

    from ..embedder import SpeakerEmbedder
    from ..weights import WeightsInfo

__all__ = [
    "DEFAULT_OPSET",
    "ENCODER_MIN_COSINE",
    "WAVEFORM_MIN_COSINE",
    "OnnxExport",
    "export_onnx",
    "waveform_module",
]

#: The ONNX opset written unless ``opset`` says otherwise (onnxruntime 1.13 and later run it).
DEFAULT_OPSET = 17
#: Opsets the export accepts: 14 (the first with the ops the graphs need) to 20.
OPSETS = range(14, 21)
#: Worst cosine allowed between onnxruntime's encoder rows and torch's.
ENCODER_MIN_COSINE = 0.99999
#: Worst cosine allowed between the waveform model's embedding and ``embed_utterances``'s.
WAVEFORM_MIN_COSINE = 0.9999
#: Batches the encoder is checked on at export time.
CHECK_BATCHES = (1, 2, 17, 64, 256)
#: Lengths, in seconds, of the test signals the waveform model is checked on at export time:
#: they cover one window, a last window kept and dropped by ``min_coverage``, and many windows.
CHECK_SECONDS = (0.3, 1.0, 2.37, 3.33, 12.0)

_N_FFT = 400
_N_MELS = 40
_EMBEDDING_SIZE = 256
#: Fewest samples the waveform model takes: the mel's reflect padding needs more than 200.
MIN_SAMPLES = _N_FFT // 2 + 1


@dataclasses.dataclass(frozen=True)
class OnnxExport:
    """What :func:`export_onnx` wrote, and how closely onnxruntime matched torch.

    Attributes
    ----------
    path : pathlib.Path
        The ``.onnx`` file.
    waveform : bool
        ``True`` for the waveform model, ``False`` for the encoder.
    opset : int
        The ONNX opset of the model.
    weights : WeightsInfo
        The weights in the model; their sha256 is in its metadata.
    worst_cosine : float
        The lowest cosine between onnxruntime's output and torch's over the export-time checks.
    metadata : dict of str to str
        The model's ``metadata_props``, as written.
    """

    path: Path
    waveform: bool
    opset: int
    weights: WeightsInfo
    worst_cosine: float
    metadata: dict[str, str]


def _import_backends(feature: str) -> tuple[Any, Any]:
    try:
        import onnx
    except ImportError as exc:
        raise missing_backend("onnx", "onnx", feature) from exc
    try:
        import onnxruntime
    except ImportError as exc:
        raise missing_backend("onnxruntime", "onnx", feature) from exc
    return onnx, onnxruntime


def _coverage_frames(partial_frames: int, min_coverage: float) -> int:
    """Fewest audio frames a last window needs to be kept: the least k with k / P >= min_coverage."""
    for k in range(partial_frames + 1):
        if k / partial_frames >= min_coverage:
            return k
    return partial_frames  # pragma: no cover - min_coverage <= 1 always stops the loop


def _dft_kernels() -> npt.NDArray[np.float32]:
    """Hann-windowed real and imaginary DFT kernels, shape (2 * 201, 1, 400), float32."""
    n = np.arange(_N_FFT, dtype=np.float64)
    k = np.arange(_N_FFT // 2 + 1, dtype=np.float64)[:, None]
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * n / _N_FFT)  # torch.hann_window(400): periodic
    angle = 2 * np.pi * k * n / _N_FFT
    kernels = np.concatenate((hann * np.cos(angle), -hann * np.sin(angle)))
    return kernels[:, None, :].astype(np.float32)


def waveform_module(encoder: torch.nn.Module, pipeline: Pipeline | None = None) -> torch.nn.Module:
    """The torch module the waveform model is exported from: 16 kHz audio to its embedding.

    Parameters
    ----------
    encoder : torch.nn.Module
        Mel windows, shape (B, partial_frames, 40), float32, to unit rows, shape (B, 256).
    pipeline : Pipeline or None
        Its ``partial_frames``, ``frame_step`` and ``min_coverage`` fix the windows;
        ``Pipeline()`` by default.

    Returns
    -------
    torch.nn.Module
        ``forward(waveform)`` with ``waveform`` shape (n_samples,), float32, returns the
        utterance embedding, shape (256,), and the window embeddings, shape (n_windows, 256).
    """
    import torch
    from torch import nn

    from ..stages.mel import slaney_filterbank

    pipe = pipeline if pipeline is not None else Pipeline()
    partial = pipe.partial_frames
    step = pipe.frame_step
    keep = _coverage_frames(partial, pipe.min_coverage)

    class _WaveformEncoder(nn.Module):
        encoder: nn.Module
        dft: torch.Tensor
        filterbank: torch.Tensor
        offsets: torch.Tensor

        def __init__(self) -> None:
            super().__init__()
            self.encoder = encoder
            self.register_buffer("dft", torch.from_numpy(_dft_kernels()))
            self.register_buffer("filterbank", torch.from_numpy(slaney_filterbank()))
            self.register_buffer("offsets", torch.arange(partial, dtype=torch.int64))

        def forward(self, waveform: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            half = _N_FFT // 2
            signal = nn.functional.pad(waveform.reshape(1, 1, -1), (half, half), mode="reflect")
            spec = nn.functional.conv1d(signal, self.dft, stride=MEL_HOP_LENGTH)[0]  # (402, F)
            bins = _N_FFT // 2 + 1
            power = spec[:bins].square() + spec[bins:].square()  # (201, F)
            mel = torch.matmul(self.filterbank, power).transpose(0, 1)  # (F, 40)
            # Chatterbox's get_num_wins, on the length as a tensor so that it stays dynamic.
            n_frames = torch._shape_as_tensor(mel)[0]
            spare = torch.clamp(n_frames - (partial - step), min=0)
            n_windows = torch.div(spare, step, rounding_mode="floor")
            remainder = spare - n_windows * step
            last = (n_windows == 0) | (remainder + (partial - step) >= keep)
            n_windows = n_windows + last.to(torch.int64)
            starts = torch.arange(n_windows) * step  # type: ignore[call-overload]
            index = starts.unsqueeze(1) + self.offsets.unsqueeze(0)  # (n_windows, partial)
            padded = torch.cat((mel, torch.zeros_like(mel[:1]).expand(partial, _N_MELS)), dim=0)
            windows = padded[index]  # (n_windows, partial, 40): zero frames past the end
            rows: torch.Tensor = self.encoder(windows)
            mean = rows.mean(dim=0)
            unit = unit_rows(mean)
            return unit, rows

    return _WaveformEncoder().eval()


def _metadata(info: WeightsInfo, pipe: Pipeline, waveform: bool, opset: int, worst: float) -> dict[str, str]:
    fixed: dict[str, Any] = {
        "sample_rate": MODEL_SAMPLE_RATE,
        "n_fft": _N_FFT,
        "hop_length": MEL_HOP_LENGTH,
        "n_mels": _N_MELS,
        "mel": "power, Slaney scale and norm, 0-8000 Hz, centred (reflect)",
        "partial_frames": pipe.partial_frames,
    }
    if waveform:
        fixed.update(
            rate=pipe.rate,
            overlap=pipe.overlap,
            frame_step=pipe.frame_step,
            min_coverage=pipe.min_coverage,
            top_db=None,
            consolidation="mean of window rows, L2-normalised",
        )
    return {
        "speakerembed.version": __version__,
        "speakerembed.model": "waveform" if waveform else "encoder",
        "speakerembed.weights": info.name,
        "speakerembed.weights_sha256": info.sha256 or "",
        "speakerembed.pipeline": json.dumps(fixed, sort_keys=True),
        "speakerembed.opset": str(opset),
        "speakerembed.worst_cosine": f"{worst:.9f}",
    }


def _check_signals() -> list[npt.NDArray[np.float32]]:
    """Speech-like test signals: a pitch glide with formant-like harmonics and noise, at 16 kHz."""
    rng = np.random.default_rng(22)
    signals = []
    for seconds in CHECK_SECONDS:
        t = np.arange(round(seconds * MODEL_SAMPLE_RATE)) / MODEL_SAMPLE_RATE
        f0 = 120 + 40 * np.sin(2 * np.pi * 0.7 * t)
        phase = 2 * np.pi * np.cumsum(f0) / MODEL_SAMPLE_RATE
        voice = sum(np.sin(h * phase) / h for h in range(1, 12))
        envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 3.1 * t) ** 2
        noise = 0.02 * rng.standard_normal(t.size)
        signals.append((0.2 * voice * envelope + noise).astype(np.float32))
    return signals


def _check_mels(n: int) -> npt.NDArray[np.float32]:
    """Mel windows of the test signals, each at a gain from -20 to +20 dB, shape (n, 160, 40)."""
    import torch

    from ..stages.mel import melspectrogram
    from ..stages.windows import partial_windows

    pipe = Pipeline()
    windows = torch.cat(
        [
            partial_windows(melspectrogram(torch.from_numpy(x)), pipe.frame_step, pipe.min_coverage)
            for x in _check_signals()
        ]
    ).numpy()
    rng = np.random.default_rng(n)
    picked = windows[np.arange(n) % windows.shape[0]]
    gains = 10.0 ** rng.uniform(-2.0, 2.0, size=(n, 1, 1))  # power: +-20 dB of amplitude
    return np.ascontiguousarray(picked * gains, dtype=np.float32)


def _worst_cosine(a: npt.NDArray[np.float32], b: npt.NDArray[np.float32]) -> float:
    a64 = np.atleast_2d(a).astype(np.float64)
    b64 = np.atleast_2d(b).astype(np.float64)
    den = np.linalg.norm(a64, axis=1) * np.linalg.norm(b64, axis=1)
    cos = (a64 * b64).sum(axis=1) / np.maximum(den, 1e-30)
    if not np.all(np.isfinite(cos)):
        return float("nan")
    return float(cos.min())


def _verify(session: Any, embedder: SpeakerEmbedder, module: torch.nn.Module, waveform: bool) -> float:
    """Worst cosine between onnxruntime and torch over the export-time checks."""
    import torch

    worst = 1.0
    if waveform:
        pipe = dataclasses.replace(embedder.pipeline, top_db=None, vad=None, min_duration_s=0.0)
        for signal in _check_signals():
            (got, _rows) = session.run(None, {"waveform": signal})
            want = embedder.embed_utterances([signal], sample_rate=MODEL_SAMPLE_RATE, pipeline=pipe)[0]
            worst = min(worst, _worst_cosine(got, want))
    else:
        # torch's rows do not depend on the batch they are in, so one reference serves every batch.
        mels = _check_mels(max(CHECK_BATCHES))
        with torch.inference_mode():
            want = module(torch.from_numpy(mels)).float().numpy()
        for n in CHECK_BATCHES:
            (got,) = session.run(None, {"mels": mels[:n]})
            worst = min(worst, _worst_cosine(got, want[:n]))
    return worst if math.isfinite(worst) else float("nan")


@contextlib.contextmanager
def _export_errors(name: str) -> Iterator[None]:
    """Turn the exporter's own failures into the library's error, naming the module."""
    try:
        yield
    except SpeakerEmbedError:
        raise
    except Exception as exc:  # the exporter raises many types; each becomes one error
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise SpeakerEmbedError(
            f"torch could not export the encoder module {name} to ONNX ({type(exc).__name__}: "
            f"{first[:200]}); export speakerembed's own encoder (SpeakerEmbedder(weights, "
            "encoder='builtin')), which loads the same weights",
            stage="export",
        ) from exc


def export_onnx(
    path: str | os.PathLike[str],
    *,
    embedder: SpeakerEmbedder | None = None,
    waveform: bool = False,
    opset: int = DEFAULT_OPSET,
) -> OnnxExport:
    """Write the encoder, or the waveform-to-embedding model, as an ONNX file, checked first.

    Parameters
    ----------
    path : str or os.PathLike
        The ``.onnx`` file to write. It is written whole or not at all (a temporary file is
        checked, then renamed), and its folder is created.
    embedder : SpeakerEmbedder or None
        Whose weights to export; ``SpeakerEmbedder("chatterbox", device="cpu")`` when ``None``.
        It must run in float32 (``precision="fp32"``, the default). With ``waveform=True`` its
        pipeline's ``partial_frames``, ``rate`` (or ``overlap``) and ``min_coverage`` fix the
        windows; resampling and trimming are the caller's.
    waveform : bool
        ``False``: the encoder, ``mels`` of shape (batch, 160, 40) float32 to ``embeddings`` of
        shape (batch, 256) unit rows. ``True``: ``waveform`` of shape (n_samples,) float32, 16 kHz,
        trimmed, at least 201 samples, to ``embedding`` of shape (256,) and
        ``window_embeddings`` of shape (n_windows, 256).
    opset : int
        ONNX opset, 14 to 20.

    Returns
    -------
    OnnxExport
        The file, the weights and the worst export-time cosine against torch.

    Raises
    ------
    BackendUnavailableError
        If onnx or onnxruntime is not installed (``pip install 'speakerembed[onnx]'``).
    ConfigError
        If ``opset`` is out of range, the path is not a ``.onnx`` file, or the embedder is not
        float32.
    SpeakerEmbedError
        If the exported model does not match torch (cosine below
        :data:`~speakerembed.export.onnx.ENCODER_MIN_COSINE`,
        or :data:`~speakerembed.export.onnx.WAVEFORM_MIN_COSINE` for the waveform model);
        nothing is written then.

    Examples
    --------
    >>> from speakerembed import SpeakerEmbedder, export_onnx
    >>> embedder = SpeakerEmbedder("resemblyzer", device="cpu")  # doctest: +SKIP
    >>> export_onnx("voice_encoder.onnx", embedder=embedder).worst_cosine > 0.99999  # doctest: +SKIP
    True
    """
    if isinstance(opset, bool) or not isinstance(opset, int) or opset not in OPSETS:
        raise ConfigError(
            f"opset={opset!r} is not supported; pass an ONNX opset from {OPSETS.start} to "
            f"{OPSETS.stop - 1} (default {DEFAULT_OPSET})"
        )
    out = Path(os.fspath(path))
    if out.suffix.lower() != ".onnx":
        raise ConfigError(f"path={str(out)!r} is not an .onnx file; pass a path ending in .onnx")
    if out.is_dir():
        raise ConfigError(f"path={str(out)!r} is a folder; pass a file path ending in .onnx")
    onnx, ort = _import_backends("export_onnx")
    import torch

    from ..embedder import SpeakerEmbedder

    if embedder is None:
        embedder = SpeakerEmbedder("chatterbox", device="cpu")
    elif not isinstance(embedder, SpeakerEmbedder):
        raise ConfigError(
            f"embedder={embedder!r} is not a SpeakerEmbedder; pass SpeakerEmbedder(...) or None"
        )
    if embedder.precision != "fp32":
        raise ConfigError(
            f"embedder runs in precision={embedder.precision!r}; ONNX export takes the float32 "
            "weights: pass SpeakerEmbedder(..., precision='fp32')"
        )
    module = embedder.encoder.module  # in eval mode (ModuleEncoder sets it)
    device = next(module.parameters()).device
    if device.type != "cpu":
        import copy

        module = copy.deepcopy(module).cpu()
    pipe = embedder.pipeline
    if waveform:
        exported: torch.nn.Module = waveform_module(module, pipe)
        example: tuple[torch.Tensor, ...] = (torch.from_numpy(_check_signals()[3]),)
        names_in, names_out = ["waveform"], ["embedding", "window_embeddings"]
        axes = {"waveform": {0: "n_samples"}, "window_embeddings": {0: "n_windows"}}
    else:
        exported = module
        example = (torch.from_numpy(_check_mels(1)),)
        names_in, names_out = ["mels"], ["embeddings"]
        axes = {"mels": {0: "batch"}, "embeddings": {0: "batch"}}
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    except OSError as exc:
        raise ConfigError(
            f"path={str(out)!r}: cannot write in {str(out.parent)!r} ({exc.strerror or exc}); "
            "pass a path in a folder you can write to"
        ) from exc
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        with warnings.catch_warnings():
            # The exporter's own notices (its deprecation, LSTM batch advice, tracer warnings
            # about the shape arithmetic, which the checks below verify) are not the caller's.
            warnings.simplefilter("ignore")
            with torch.inference_mode(False), torch.no_grad(), _export_errors(type(module).__name__):
                torch.onnx.export(
                    exported,
                    example,
                    str(tmp),
                    input_names=names_in,
                    output_names=names_out,
                    dynamic_axes=axes,
                    opset_version=opset,
                    do_constant_folding=True,
                    dynamo=False,
                )
        options = ort.SessionOptions()
        options.log_severity_level = 3
        session = ort.InferenceSession(str(tmp), options, providers=["CPUExecutionProvider"])
        worst = _verify(session, embedder, module, waveform)
        floor = WAVEFORM_MIN_COSINE if waveform else ENCODER_MIN_COSINE
        if not worst >= floor:
            raise SpeakerEmbedError(
                f"the exported {'waveform model' if waveform else 'encoder'} does not match torch "
                f"in onnxruntime (worst cosine {worst:.7f}, below {floor}); nothing was written to "
                f"{out}; try another opset, or report it with your onnxruntime version "
                f"({ort.__version__})",
                stage="export",
            )
        metadata = _metadata(embedder.weights_info, pipe, waveform, opset, worst)
        model = onnx.load(str(tmp))
        del model.metadata_props[:]
        for key, value in metadata.items():
            entry = model.metadata_props.add()
            entry.key, entry.value = key, value
        model.producer_name = "speakerembed"
        model.producer_version = __version__
        onnx.save(model, str(tmp))
        mask = os.umask(0o022)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)  # mkstemp's file is private; give it open()'s mode
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return OnnxExport(out, waveform, opset, embedder.weights_info, worst, metadata)
