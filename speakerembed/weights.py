"""Finding and safely loading voice-encoder weights.

``weights=`` takes a preset name or a local file:

=============================  ===============================================================
``"chatterbox"``               ``ve.safetensors`` from the Hugging Face repo ``ResembleAI/chatterbox``
``"chatterbox-turbo"``         ``ve.safetensors`` from ``ResembleAI/chatterbox-turbo``
``"chatterbox-multilingual"``  ``ve.pt`` from ``ResembleAI/chatterbox``
``"resemblyzer"``              ``pretrained.pt`` inside the installed ``resemblyzer`` package
a path                         a local ``.safetensors``, ``.pt``, ``.pth`` or ``.bin`` file
=============================  ===============================================================

Hub files come through :func:`huggingface_hub.hf_hub_download`, so its cache and
``HF_HUB_OFFLINE`` apply. **Loading never runs pickled code**: safetensors files hold only
tensors, and every other file goes through ``torch.load(weights_only=True)``, which refuses
anything but tensors and plain containers. Files with a known digest are checked against it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import BackendUnavailableError, WeightsError

if TYPE_CHECKING:
    import torch

__all__ = ["PRESETS", "WeightsInfo", "load_state_dict", "resolve_weights"]


@dataclasses.dataclass(frozen=True)
class _Preset:
    description: str
    repo_id: str | None = None
    filename: str | None = None
    package: str | None = None
    sha256: str | None = None


PRESETS: dict[str, _Preset] = {
    "chatterbox": _Preset("Chatterbox's voice encoder", "ResembleAI/chatterbox", "ve.safetensors"),
    "chatterbox-turbo": _Preset(
        "Chatterbox Turbo's voice encoder", "ResembleAI/chatterbox-turbo", "ve.safetensors"
    ),
    "chatterbox-multilingual": _Preset(
        "Chatterbox Multilingual's voice encoder", "ResembleAI/chatterbox", "ve.pt"
    ),
    "resemblyzer": _Preset(
        "Resemblyzer's pretrained encoder",
        package="resemblyzer",
        filename="pretrained.pt",
        sha256="39373b86598fa3da9fcddee6142382efe09777e8d37dc9c0561f41f0070f134e",
    ),
}
"""The named weights, with the sha256 of each file where it is known."""

_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin")


@dataclasses.dataclass(frozen=True)
class WeightsInfo:
    """Which weights an embedder holds. Embeddings from different weights must not be mixed.

    Attributes
    ----------
    name : str
        The preset name, or ``"file"`` for a local path, or ``"instance"`` for a passed-in module.
    path : str or None
        The file the weights came from.
    sha256 : str or None
        The file's sha256 digest.
    """

    name: str
    path: str | None
    sha256: str | None

    @property
    def short(self) -> str:
        """``name@sha256[:12]``: a compact tag for logs and file metadata."""
        return f"{self.name}@{self.sha256[:12]}" if self.sha256 else self.name


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    except OSError as exc:
        why = "permission denied" if isinstance(exc, PermissionError) else exc.strerror or "OSError"
        raise WeightsError(
            f"weights file {str(path)!r} cannot be read ({why}); check its permissions "
            "(chmod +r) or pass another file"
        ) from exc
    return digest.hexdigest()


def _package_file(preset_name: str, preset: _Preset) -> Path:
    assert preset.package is not None
    assert preset.filename is not None
    # find_spec locates the package without importing it (importing resemblyzer fails on
    # current setuptools, and would pull in librosa and webrtcvad).
    spec = importlib.util.find_spec(preset.package)
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError(
            f"weights {preset_name!r} ship inside the {preset.package!r} package, which is not "
            f"installed; pip install 'speakerembed[{preset.package}]', or pass a local file path"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / preset.filename
    if not path.is_file():
        raise WeightsError(
            f"weights {preset_name!r}: {path} is missing from the installed {preset.package!r} "
            f"package; reinstall it (pip install --force-reinstall {preset.package})"
        )
    return path


def _hub_file(preset_name: str, preset: _Preset, revision: str | None) -> Path:
    assert preset.repo_id is not None
    assert preset.filename is not None
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        # huggingface_hub is a dependency of speakerembed; it is missing only from a broken install.
        raise BackendUnavailableError(
            f"weights {preset_name!r} need the package 'huggingface_hub', which is not installed; "
            "pip install huggingface_hub, or pass weights='resemblyzer' or a local file path"
        ) from None
    try:
        return Path(hf_hub_download(preset.repo_id, preset.filename, revision=revision))
    except Exception as exc:  # the hub raises many types; all mean "not available"
        offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0", "false", "False")
        why = (
            "HF_HUB_OFFLINE is set and the file is not in the cache"
            if offline
            else ("the Hugging Face hub is unreachable and the file is not in the cache")
        )
        raise WeightsError(
            f"weights {preset_name!r} ({preset.repo_id}/{preset.filename}) need the Hugging Face "
            f"hub: {why} ({type(exc).__name__}); pass weights='resemblyzer' "
            "(pip install 'speakerembed[resemblyzer]') or a local file path"
        ) from exc


def resolve_weights(weights: str | os.PathLike[str], *, revision: str | None = None) -> WeightsInfo:
    """Find the file behind a ``weights=`` value and hash it.

    Parameters
    ----------
    weights : str or os.PathLike
        A name from :data:`PRESETS`, or a path to a local weights file.
    revision : str or None
        A Hub revision (commit, tag or branch) for the Hub presets.

    Returns
    -------
    WeightsInfo

    Raises
    ------
    WeightsError
        For an unknown name, a missing file, unreachable weights, or a digest mismatch.
    """
    if isinstance(weights, str) and weights in PRESETS:
        preset = PRESETS[weights]
        path = _package_file(weights, preset) if preset.package else _hub_file(weights, preset, revision)
        digest = _sha256(path)
        if preset.sha256 is not None and digest != preset.sha256:
            raise WeightsError(
                f"weights {weights!r}: {path} has sha256 {digest}, not the known {preset.sha256}; "
                "the file is corrupt or was replaced: reinstall or download it again"
            )
        return WeightsInfo(weights, str(path), digest)
    if not isinstance(weights, (str, os.PathLike)):
        raise WeightsError(
            f"weights={weights!r} is not a name or a path; pass one of {', '.join(PRESETS)}, "
            "a local file path, or an encoder module as encoder="
        )
    if not os.fspath(weights).strip():
        raise WeightsError(
            f"weights={weights!r} is empty; pass one of {', '.join(repr(n) for n in PRESETS)}, "
            "or a path to a .safetensors or .pt file"
        )
    path = Path(weights)
    looks_like_path = isinstance(weights, os.PathLike) or path.suffix in _SUFFIXES or os.sep in str(weights)
    try:
        exists = path.exists()
    except OSError as exc:  # e.g. a parent directory this user may not enter
        raise WeightsError(
            f"weights file {str(path)!r} cannot be reached ({exc.strerror or 'OSError'}); check "
            "the permissions of the file and of its directories"
        ) from exc
    if not exists:
        if looks_like_path:
            raise WeightsError(f"weights file {str(path)!r} does not exist; check the path")
        raise WeightsError(
            f"unknown weights {weights!r}; pass one of {', '.join(repr(n) for n in PRESETS)}, "
            "or a path to a .safetensors or .pt file"
        )
    if not path.is_file():
        raise WeightsError(f"weights path {str(path)!r} is not a file; pass the weights file itself")
    return WeightsInfo("file", str(path), _sha256(path))


def _is_safetensors(path: Path) -> bool:
    if path.suffix == ".safetensors":
        return True
    with path.open("rb") as f:
        head = f.read(9)
    # A safetensors file starts with an 8-byte little-endian header size, then '{'.
    return len(head) == 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < (1 << 28)


def load_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Load a state dict without running any code from the file.

    ``.safetensors`` files are read with safetensors; anything else with
    ``torch.load(weights_only=True)``. A checkpoint that wraps its state dict under
    ``"model_state"`` or ``"state_dict"`` (as Resemblyzer's does) is unwrapped.

    Raises
    ------
    WeightsError
        If the file is corrupt, truncated, holds pickled code, or holds no state dict.
    """
    import torch

    path = Path(path)
    try:
        if _is_safetensors(path):
            from safetensors.torch import load_file

            state: Any = load_file(str(path), device="cpu")
        else:
            with warnings.catch_warnings():
                # torch warns about old pickle protocols; the restricted unpickler below is
                # what keeps the load safe, so the warning adds nothing for our users.
                warnings.simplefilter("ignore", UserWarning)
                state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt files raise many types
        text = str(exc)
        # torch's restricted unpickler says "Weights only load failed ... Unsupported global".
        if any(marker in text for marker in ("weights_only", "Weights only", "Unsupported global", "GLOBAL")):
            raise WeightsError(
                f"weights file {str(path)!r} holds pickled code or objects, which speakerembed "
                "never loads because unpickling can run arbitrary code; convert it to "
                "safetensors with a trusted tool"
            ) from exc
        raise WeightsError(
            f"weights file {str(path)!r} could not be read ({type(exc).__name__}); it is "
            "truncated, corrupt, or not a weights file: download it again"
        ) from exc
    if isinstance(state, dict):
        for key in ("model_state", "state_dict"):
            if isinstance(state.get(key), dict):
                state = state[key]
                break
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise WeightsError(
            f"weights file {str(path)!r} does not hold a state dict of tensors; pass a voice "
            "encoder checkpoint"
        )
    return dict(state)
