"""Finding and safely loading voice-encoder weights.

``weights=`` takes a preset name or a local file:

=============================  ===============================================================
``"chatterbox"``               ``ve.safetensors`` from the Hugging Face repo ``ResembleAI/chatterbox``
``"chatterbox-turbo"``         ``ve.safetensors`` from ``ResembleAI/chatterbox-turbo``
``"chatterbox-multilingual"``  ``ve.pt`` from ``ResembleAI/chatterbox``
``"resemblyzer"``              ``pretrained.pt`` inside the installed ``resemblyzer`` package
a path                         a local ``.safetensors``, ``.pt``, ``.pth`` or ``.bin`` file
=============================  ===============================================================

Hub files come through :func:`huggingface_hub.hf_hub_download`. A file already in the Hugging
Face cache is used without the network; with ``HF_HUB_OFFLINE`` set nothing else is tried, and an
unreachable Hub is reported in one line within seconds (huggingface_hub's own retries and log
lines are silenced). The ``"resemblyzer"`` file needs only the package's wheel, not its
dependencies: ``pip install --no-deps resemblyzer``.

**Loading never runs pickled code**: safetensors files hold only tensors, and every other file
goes through ``torch.load(weights_only=True)``, which refuses anything but tensors and plain
containers. Files with a known digest are checked against it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib.util
import logging
import os
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import BackendUnavailableError, WeightsError

if TYPE_CHECKING:
    import torch

__all__ = [
    "HUB_TIMEOUT_S",
    "PRESETS",
    "RESEMBLYZER_INSTALL",
    "WeightsInfo",
    "load_state_dict",
    "resolve_weights",
]


@dataclasses.dataclass(frozen=True)
class _Preset:
    description: str
    repo_id: str | None = None
    filename: str | None = None
    package: str | None = None
    sha256: str | None = None
    install: str | None = None


#: The light way to get the ``"resemblyzer"`` weights: the package's wheel holds the 17 MB file,
#: and speakerembed reads it without importing resemblyzer, so none of its dependencies (librosa,
#: numba, webrtcvad, which needs a C compiler) are needed.
RESEMBLYZER_INSTALL = "pip install --no-deps resemblyzer"


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
        install=RESEMBLYZER_INSTALL,
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


# (path, size, mtime) -> sha256, so a file found twice (the CLI checks the weights before it
# imports torch, then the embedder finds them again) is hashed once.
_DIGESTS: dict[tuple[str, int, int], str] = {}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        stat = path.stat()
        key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
        if key in _DIGESTS:
            return _DIGESTS[key]
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    except OSError as exc:
        why = "permission denied" if isinstance(exc, PermissionError) else exc.strerror or "OSError"
        raise WeightsError(
            f"weights file {str(path)!r} cannot be read ({why}); check its permissions "
            "(chmod +r) or pass another file"
        ) from exc
    if len(_DIGESTS) > 64:
        _DIGESTS.clear()
    _DIGESTS[key] = digest.hexdigest()
    return _DIGESTS[key]


def _package_file(preset_name: str, preset: _Preset) -> Path:
    assert preset.package is not None
    assert preset.filename is not None
    # find_spec locates the package without importing it (importing resemblyzer fails on
    # current setuptools, and would pull in librosa and webrtcvad).
    install = preset.install or f"pip install {preset.package}"
    spec = importlib.util.find_spec(preset.package)
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError(
            f"weights {preset_name!r} ship inside the {preset.package!r} package, which is not "
            f"installed; install it with: {install}, "
            "or pass a local weights file"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / preset.filename
    if not path.is_file():
        raise WeightsError(
            f"weights {preset_name!r}: {path} is missing from the installed {preset.package!r} "
            f"package; reinstall it ({install.replace('pip install', 'pip install --force-reinstall', 1)})"
        )
    return path


#: Seconds to wait for the Hub's answer before deciding it is unreachable. huggingface_hub's own
#: retries (five, with backoff) would take about 25 s to say the same.
HUB_TIMEOUT_S = 3.0

# huggingface_hub's logger, warnings filter and progress-bar switch are process-wide: one lock
# serialises our calls, so that what one call silences the next one restores correctly.
_HUB_LOCK = threading.Lock()


def _hub_offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` (or huggingface_hub's own offline switch) is on."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "on", "yes", "true"):
        return True
    try:
        from huggingface_hub import constants

        return bool(constants.HF_HUB_OFFLINE)
    except (ImportError, AttributeError):  # pragma: no cover - very old huggingface_hub
        return False


@contextlib.contextmanager
def _quiet_hub() -> Iterator[None]:
    """Silence huggingface_hub's log lines, warnings and progress bars: we report in one line."""
    log = logging.getLogger("huggingface_hub")
    level, propagate = log.level, log.propagate
    try:
        from huggingface_hub.utils.tqdm import (
            are_progress_bars_disabled,
            disable_progress_bars,
            enable_progress_bars,
        )
    except ImportError:  # pragma: no cover - very old huggingface_hub
        bars_were_on = False
    else:
        bars_were_on = not are_progress_bars_disabled()
        if bars_were_on:
            disable_progress_bars()
    log.setLevel(logging.CRITICAL + 1)
    log.propagate = False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        log.setLevel(level)
        log.propagate = propagate
        if bars_were_on:
            enable_progress_bars()


def _hub_error(preset_name: str, preset: _Preset, why: str) -> WeightsError:
    return WeightsError(
        f"weights {preset_name!r} ({preset.repo_id}/{preset.filename}) are not in the Hugging Face "
        f"cache and {why}; pass weights='resemblyzer' (offline: {RESEMBLYZER_INSTALL}) "
        "or a local weights file"
    )


def _hub_file(preset_name: str, preset: _Preset, revision: str | None) -> Path:
    """The cached Hub file, or a download; fails in seconds, in one message, when offline.

    The Hugging Face cache is tried first, without the network (``local_files_only=True``), so a
    file downloaded once is used as is. With ``HF_HUB_OFFLINE`` set, nothing else is tried.
    Otherwise one request with a :data:`HUB_TIMEOUT_S` timeout and no retries checks that the Hub
    answers before the download starts.
    """
    assert preset.repo_id is not None
    assert preset.filename is not None
    try:
        from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url
    except ImportError:
        # huggingface_hub is a dependency of speakerembed; it is missing only from a broken install.
        raise BackendUnavailableError(
            f"weights {preset_name!r} need the package 'huggingface_hub', which is not installed; "
            f"pip install huggingface_hub, or pass weights='resemblyzer' ({RESEMBLYZER_INSTALL}) "
            "or a local weights file"
        ) from None
    with _HUB_LOCK, _quiet_hub():
        try:
            return Path(
                hf_hub_download(preset.repo_id, preset.filename, revision=revision, local_files_only=True)
            )
        except Exception:  # noqa: BLE001 - not in the cache (the hub raises several types)
            pass
        if _hub_offline():
            raise _hub_error(preset_name, preset, "HF_HUB_OFFLINE is set") from None
        url = hf_hub_url(preset.repo_id, preset.filename, revision=revision)
        try:
            get_hf_file_metadata(url, timeout=HUB_TIMEOUT_S)
        except Exception as exc:
            raise _hub_error(
                preset_name, preset, f"the Hugging Face hub did not answer ({_why(exc)})"
            ) from exc
        try:
            return Path(hf_hub_download(preset.repo_id, preset.filename, revision=revision))
        except Exception as exc:
            raise _hub_error(preset_name, preset, f"the download failed ({_why(exc)})") from exc


def _why(exc: BaseException) -> str:
    """A short reason: the exception's type and the first line of its text, clipped."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if len(text) > 100:
        text = text[:97] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


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
