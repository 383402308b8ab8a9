"""Stage 4: the encoder. Partial-window mels in, L2-normalised embeddings out.

An :class:`Encoder` has one job: map a batch of mel windows, shape ``(B, 160, 40)``, to unit
vectors, shape ``(B, 256)``. :class:`ModuleEncoder` adapts any ``torch.nn.Module`` of that shape:
speakerembed's own :class:`VoiceEncoder`, Chatterbox's ``VoiceEncoder`` class, or an instance
already running in a ``ChatterboxTTS`` (its ``.ve``), which is used as is, on its own device.

:class:`VoiceEncoder` has Chatterbox's architecture and parameter names (``lstm.*``, ``proj.*``,
``similarity_weight``, ``similarity_bias``), so it loads the same checkpoints strictly without
chatterbox-tts installed.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
import warnings
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import torch
from torch import nn

from ..config import Precision
from ..errors import BackendUnavailableError, ConfigError, WeightsError
from ..weights import WeightsInfo, load_state_dict, resolve_weights
from .consolidate import unit_rows

logger = logging.getLogger("speakerembed")

if TYPE_CHECKING:
    import os

__all__ = [
    "Encoder",
    "EncoderImpl",
    "ModuleEncoder",
    "Precision",
    "ResolvedPrecision",
    "VoiceEncoder",
    "adapt_state_dict",
    "cpu_bf16_ok",
    "cpu_has_native_bf16",
    "load_encoder",
    "resolve_device",
    "resolve_precision",
]

#: What an encoder runs in.
ResolvedPrecision = Literal["fp32", "bf16"]

#: CPU flags (Linux ``/proc/cpuinfo``) that mean native bfloat16 arithmetic.
BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
#: torch releases ("major.minor") whose CPU bfloat16 LSTM is pathologically slow even with the
#: module cast that speakerembed uses. Measured (docs/performance.rst, benchmarks/
#: torch_versions.py): none of the supported releases (2.6 to 2.13). torch 2.13's *autocast*
#: bf16 LSTM is pathological (6.7 s for 12 windows against 16 ms on 2.6), which is why
#: speakerembed never uses autocast: bf16 always means a bfloat16 copy of the weights.
CPU_BF16_SLOW_TORCH: frozenset[str] = frozenset()
EncoderImpl = Literal["builtin", "chatterbox"]

N_MELS = 40
HIDDEN_SIZE = 256
EMBEDDING_SIZE = 256
NUM_LAYERS = 3


class VoiceEncoder(nn.Module):
    """Chatterbox's voice encoder: a 3-layer LSTM, a projection, ReLU, L2 normalisation.

    Parameters have Chatterbox's names, so ``load_state_dict(strict=True)`` accepts its files.
    """

    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(N_MELS, HIDDEN_SIZE, num_layers=NUM_LAYERS, batch_first=True)
        self.proj = nn.Linear(HIDDEN_SIZE, EMBEDDING_SIZE)
        # Unused at inference; kept so that training checkpoints load strictly.
        self.similarity_weight = nn.Parameter(torch.tensor([10.0]))
        self.similarity_bias = nn.Parameter(torch.tensor([-5.0]))

    def forward(self, mels: torch.Tensor) -> torch.Tensor:
        """Embed windows.

        Parameters
        ----------
        mels : torch.Tensor, shape (B, T, 40)

        Returns
        -------
        torch.Tensor, shape (B, 256), unit rows (a row that is all zero after the ReLU stays zero)
        """
        _, (hidden, _) = self.lstm(mels)
        raw = torch.relu(self.proj(hidden[-1]))
        return unit_rows(raw)


@runtime_checkable
class Encoder(Protocol):
    """Anything that maps mel windows to unit embeddings."""

    @property
    def device(self) -> torch.device:
        """Where the encoder's parameters live; windows are sent there."""
        ...

    def __call__(self, windows: torch.Tensor) -> torch.Tensor:
        """Map windows of shape (B, T, 40) to float32 unit vectors of shape (B, E)."""
        ...


def adapt_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename checkpoint keys to Chatterbox's names.

    Resemblyzer's ``linear.*`` becomes ``proj.*``, and a ``module.`` prefix (from DataParallel)
    is dropped.
    """
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        key = key.removeprefix("module.")
        if key.startswith("linear."):
            key = "proj." + key[len("linear.") :]
        out[key] = value
    return out


def load_into(module: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load ``state`` strictly.

    The error names every missing, unexpected or mis-shaped key.
    """
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = sorted(
        f"{k}: file {tuple(state[k].shape)}, model {tuple(expected[k].shape)}"
        for k in set(expected) & set(state)
        if tuple(state[k].shape) != tuple(expected[k].shape)
    )
    problems = []
    if missing:
        problems.append(f"missing keys {missing}")
    if unexpected:
        problems.append(f"unexpected keys {unexpected}")
    if shapes:
        problems.append(f"wrong shapes [{'; '.join(shapes)}]")
    if problems:
        raise WeightsError(
            f"weights {source} do not fit the voice encoder: {', '.join(problems)}; pass a "
            "Chatterbox or Resemblyzer voice-encoder checkpoint"
        )
    # NumPy checks the CPU tensors of a freshly loaded file in about a millisecond each, where
    # torch.isfinite took 20-40 ms per tensor on the first call of a CLI command.
    bad = [k for k, v in state.items() if v.is_floating_point() and not _all_finite(v)]
    if bad:
        raise WeightsError(f"weights {source} hold NaN or Inf in {bad}; the file is corrupt")
    module.load_state_dict(state, strict=True)


def _all_finite(tensor: torch.Tensor) -> bool:
    """Whether every value is finite: with NumPy for CPU tensors, torch for the rest."""
    if tensor.device.type == "cpu" and tensor.dtype in (torch.float32, torch.float64, torch.float16):
        import numpy as np

        return bool(np.isfinite(tensor.detach().numpy()).all())
    return bool(torch.isfinite(tensor).all())


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None`` picks CUDA, then MPS, then the CPU; otherwise the device is checked."""
    if device is None:
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"device={device!r} is not a torch device; pass 'cpu', 'cuda' or 'mps'") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device={device!r}, but CUDA is not available here; pass device='cpu'")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError(f"device={device!r}, but MPS is not available here; pass device='cpu'")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"device={device!r} is not supported; pass 'cpu', 'cuda' or 'mps'")
    return dev


class ModuleEncoder:
    """Adapt a ``torch.nn.Module`` (windows in, unit vectors out) to :class:`Encoder`.

    The module is used in eval mode on its own device. Calls are serialised by a lock, so one
    instance is safe to share between threads and each call sees the whole CPU;
    :meth:`embed_concurrently` skips the lock for callers that run calls side by side.

    Parameters
    ----------
    module : torch.nn.Module
    precision : {"fp32", "bf16", "auto"}
        ``"auto"`` picks one for the module's device (:func:`resolve_precision`); the choice is
        the ``precision`` attribute, and the reason ``precision_reason``.
        ``"bf16"`` runs a reduced-precision copy of the module (the module passed in is left
        untouched) and renormalises the output in float32. For Chatterbox's architecture
        (an ``nn.LSTM`` ``lstm`` and a ``proj``), every LSTM layer but the last runs in
        bfloat16 and the last layer and the projection in float32: on the dev speech, an
        all-bfloat16 LSTM gives a worst cosine of 0.9986 against float32, and the float32
        last layer 0.9999 (see docs/performance.rst). Other modules run wholly in bfloat16.
        The cast is of the weights (a bfloat16 copy of the module), never ``torch.autocast``.
    """

    def __init__(self, module: nn.Module, precision: Precision = "fp32") -> None:
        if precision not in ("fp32", "bf16", "auto"):
            raise ConfigError(f"precision={precision!r} is not 'fp32', 'bf16' or 'auto'")
        device = module_device(module)
        resolved, reason = resolve_precision(precision, device)
        self.requested: Precision = precision
        self.precision: ResolvedPrecision = resolved
        self.precision_reason: str = reason
        #: Whether calls may run side by side (:meth:`embed_concurrently`): for the voice
        #: encoders whose forward only reads the module (speakerembed's and chatterbox's), not
        #: for a module of the caller's own, which may keep state between calls.
        self.concurrent_calls: bool = isinstance(module, VoiceEncoder) or type(module).__module__.startswith(
            "chatterbox."
        )
        if resolved == "bf16":
            module = _bf16_copy(module)
            if device.type == "cpu" and not cpu_has_native_bf16():
                logger.warning(
                    "precision='bf16' on a CPU without native bfloat16 (no avx512_bf16 or AMX; "
                    "torch sees %s) is emulated and slower than fp32; use precision='auto' or 'fp32' here",
                    torch.backends.cpu.get_cpu_capability(),
                )
        self.module = module.eval()
        self._dtype = torch.bfloat16 if resolved == "bf16" else torch.float32
        self._lock = threading.Lock()

    @property
    def device(self) -> torch.device:
        """The device of the module's first parameter."""
        return next(self.module.parameters()).device

    def __call__(self, windows: torch.Tensor) -> torch.Tensor:
        """Embed windows of shape (B, T, 40); returns float32 (B, E) unit rows."""
        with self._lock:
            return self.embed_concurrently(windows)

    def embed_concurrently(self, windows: torch.Tensor) -> torch.Tensor:
        """Embed windows as calling the instance does, without taking the instance's lock.

        For callers that run several calls at once, each on its own torch thread (the
        embedder's encoder streams, ``speakerembed._engine.streams``): the module is only read.
        """
        with torch.inference_mode():
            out = self.module(windows.to(self._dtype)).float()
        if self._dtype != torch.float32:
            out = unit_rows(out)
        unit: torch.Tensor = out
        return unit


#: The start of the warning cuDNN gives for an RNN whose weights are not one block.
_CUDNN_COMPACT_WARNING = "RNN module weights are not part of single contiguous chunk of memory"
#: Devices whose LSTM is cuDNN's, where that warning comes.
_CUDNN_DEVICES = frozenset({"cuda"})


class _MixedBF16Encoder(nn.Module):
    """A voice encoder whose LSTM layers but the last run in bfloat16, the rest in float32."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        lstm: nn.LSTM = module.lstm  # type: ignore[assignment]
        layers = []
        for k in range(lstm.num_layers):
            size_in = lstm.input_size if k == 0 else lstm.hidden_size
            layer = nn.LSTM(size_in, lstm.hidden_size, batch_first=True)
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(layer, f"{name}_l0").data.copy_(getattr(lstm, f"{name}_l{k}").data)
            last = k == lstm.num_layers - 1
            layers.append(layer.to(torch.float32 if last else torch.bfloat16))
        self.layers = nn.ModuleList(layers)
        proj: nn.Module = module.proj  # type: ignore[assignment]
        self.proj = copy.deepcopy(proj).float()

    def forward(self, mels: torch.Tensor) -> torch.Tensor:
        """Embed windows of shape (B, T, 40); float32 unit rows."""
        x = mels
        hidden = x
        for layer in self.layers:
            dtype = next(layer.parameters()).dtype
            if dtype == torch.bfloat16 and x.device.type in _CUDNN_DEVICES:
                # cuDNN runs bfloat16 LSTMs, but torch cannot flatten their weights (bfloat16 is
                # not in torch.backends.cudnn's accepted dtypes), so every call would warn that
                # they are compacted again. They are: the cost is in the measured bf16 figures
                # (docs/performance.rst, "GPU"), and the warning says nothing actionable. Only
                # there: warnings' filters are process-wide, and the CPU encoder streams
                # (speakerembed._engine.streams) call this from several threads at once.
                with warnings.catch_warnings():
                    warnings.filterwarnings("ignore", message=_CUDNN_COMPACT_WARNING, category=UserWarning)
                    x, (h, _) = layer(x.to(dtype))
            else:
                x, (h, _) = layer(x.to(dtype))
            hidden = h[-1]
        raw: torch.Tensor = torch.relu(self.proj(hidden.float()))
        return unit_rows(raw)


def _bf16_copy(module: nn.Module) -> nn.Module:
    lstm = getattr(module, "lstm", None)
    proj = getattr(module, "proj", None)
    if (
        isinstance(lstm, nn.LSTM)
        and isinstance(proj, nn.Linear)
        and lstm.num_layers >= 2
        and lstm.batch_first
        and not lstm.bidirectional
        and lstm.proj_size == 0
        and lstm.bias
    ):
        device = next(module.parameters()).device
        return _MixedBF16Encoder(module).to(device)
    return copy.deepcopy(module).to(torch.bfloat16)


def _chatterbox_class() -> type[nn.Module]:
    try:
        from chatterbox.models.voice_encoder import VoiceEncoder as ChatterboxVoiceEncoder
    except ImportError as exc:
        raise BackendUnavailableError(
            "encoder='chatterbox' needs the optional package 'chatterbox-tts', which is not "
            "installed (or failed to import: "
            f"{exc}); install it with: pip install 'speakerembed[chatterbox]', or use "
            "encoder='builtin', which loads the same weights"
        ) from exc
    return ChatterboxVoiceEncoder  # type: ignore[no-any-return]


def load_encoder(
    weights: str | os.PathLike[str],
    *,
    encoder: EncoderImpl = "builtin",
    device: torch.device,
    precision: Precision = "fp32",
    revision: str | None = None,
) -> tuple[ModuleEncoder, WeightsInfo, float]:
    """Load weights into an encoder on ``device``.

    Returns
    -------
    encoder : ModuleEncoder
    info : WeightsInfo
    load_seconds : float
        Wall time to find, hash and load the weights.
    """
    start = time.perf_counter()
    info = resolve_weights(weights, revision=revision)
    assert info.path is not None
    state = adapt_state_dict(load_state_dict(info.path))
    if encoder == "builtin":
        module: nn.Module = VoiceEncoder()
    elif encoder == "chatterbox":
        module = _chatterbox_class()()
    else:
        raise ConfigError(f"encoder={encoder!r} is not 'builtin', 'chatterbox' or an nn.Module instance")
    load_into(module, state, repr(info.name if info.name != "file" else info.path))
    module = module.to(device)
    return ModuleEncoder(module, precision), info, time.perf_counter() - start


def _cpu_flags() -> frozenset[str]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX), so bf16 can pay off.

    Reads the CPU flags (``avx512_bf16``, ``amx_bf16``) from ``/proc/cpuinfo``; where there is
    none (not Linux), asks torch's CPU capability for AMX or BF16. An AVX-512 CPU without
    ``avx512_bf16`` emulates bfloat16 and counts as *not* native.
    """
    flags = _cpu_flags()
    if flags:
        return bool(flags & BF16_CPU_FLAGS)
    capability = str(torch.backends.cpu.get_cpu_capability()).upper()
    return "AMX" in capability or "BF16" in capability


def cpu_bf16_ok(version: str | None = None) -> bool:
    """Whether this torch release runs the module-cast bfloat16 LSTM on the CPU at a sane speed.

    Parameters
    ----------
    version : str or None
        A torch version such as ``"2.13.0+cpu"``; ``None`` for the running torch.
    """
    release = ".".join((version or torch.__version__).split("+")[0].split(".")[:2])
    return release not in CPU_BF16_SLOW_TORCH


def resolve_precision(precision: Precision, device: torch.device) -> tuple[ResolvedPrecision, str]:
    """The precision an encoder on ``device`` runs in, and why.

    The rule for ``"auto"``: bfloat16 where the hardware runs it faster, float32 elsewhere.

    * a CUDA device that supports bfloat16 (``torch.cuda.is_bf16_supported()``, Ampere and
      later): ``"bf16"``;
    * a CPU with native bfloat16 (:func:`cpu_has_native_bf16`: ``avx512_bf16`` or AMX), under
      a torch whose CPU bf16 LSTM is not pathological (:func:`cpu_bf16_ok`): ``"bf16"``;
    * anything else (AVX2 or AVX-512 CPUs without bf16, MPS, older GPUs): ``"fp32"``.

    An explicit ``"bf16"`` is kept, except on a CPU under a torch release whose bf16 path is
    known to be pathological, where it falls back to ``"fp32"`` with a warning.

    Parameters
    ----------
    precision : {"fp32", "bf16", "auto"}
    device : torch.device

    Returns
    -------
    precision : {"fp32", "bf16"}
    reason : str
        One line for logs and reprs, e.g. ``"auto: CPU without avx512_bf16 or AMX"``.
    """
    if precision == "fp32":
        return "fp32", "asked for"
    if precision == "bf16":
        if device.type == "cpu" and not cpu_bf16_ok():
            logger.warning(
                "precision='bf16' falls back to 'fp32': torch %s's CPU bfloat16 LSTM is "
                "pathologically slow; use another torch release for bf16 on the CPU",
                torch.__version__,
            )
            return "fp32", f"bf16 asked for, but torch {torch.__version__}'s CPU bf16 is slow"
        return "bf16", "asked for"
    if precision != "auto":
        raise ConfigError(f"precision={precision!r} is not 'fp32', 'bf16' or 'auto'")
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return "bf16", "auto: CUDA device with bfloat16"
        return "fp32", "auto: CUDA device without bfloat16"
    if device.type == "cpu":
        if not cpu_has_native_bf16():
            return "fp32", "auto: CPU without avx512_bf16 or AMX"
        if not cpu_bf16_ok():
            return "fp32", f"auto: torch {torch.__version__}'s CPU bf16 LSTM is slow"
        return "bf16", "auto: CPU with native bfloat16"
    return "fp32", f"auto: {device.type} device"


def module_device(module: Any) -> torch.device:
    """Device of a module's parameters (CPU for a module without parameters)."""
    try:
        return next(module.parameters()).device  # type: ignore[no-any-return]
    except StopIteration:
        return torch.device("cpu")
