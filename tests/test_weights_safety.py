"""Weights: every bad weights file gets a WeightsError, and no file can run code when loaded.

Loading goes through :func:`speakerembed.weights.load_state_dict`: safetensors files hold only
tensors, and anything else is read with ``torch.load(weights_only=True)``, whose restricted
unpickler refuses every global that is not a tensor or a plain container. The pickle tests
below use payloads that would create a file if they ran, and check that the file is not there.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from speakerembed import SpeakerEmbedder, WeightsError
from speakerembed import weights as weights_mod
from speakerembed.stages.encoder import adapt_state_dict
from speakerembed.weights import PRESETS, load_state_dict, resolve_weights

FIX = re.compile(r"\b(pass|check|download|reinstall|convert|install|chmod)\b")


def _load(weights: object) -> SpeakerEmbedder:
    return SpeakerEmbedder(weights, device="cpu")  # type: ignore[arg-type]


def _assert_weights_error(call: Callable[[], object], name: str, says: str) -> WeightsError:
    with pytest.raises(WeightsError) as info:
        call()
    text = str(info.value)
    assert name in text, text
    assert re.search(says, text), text
    assert FIX.search(text), f"no fix in: {text}"
    assert isinstance(info.value, RuntimeError)
    return info.value


@pytest.fixture
def state(resemblyzer_weights: Path) -> dict[str, torch.Tensor]:
    return {k: v.contiguous() for k, v in adapt_state_dict(load_state_dict(resemblyzer_weights)).items()}


def _save_st(path: Path, tensors: dict[str, torch.Tensor]) -> Path:
    from safetensors.torch import save_file

    save_file(tensors, str(path))
    return path


# -- names and paths ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["nope", "resemblizer", "Chatterbox", "chatterbox_turbo"])
def test_unknown_name(name: str) -> None:
    err = _assert_weights_error(lambda: _load(name), repr(name), r"unknown weights")
    assert "'resemblyzer'" in str(err)  # it lists the valid names


@pytest.mark.parametrize("value", ["", "   "])
def test_empty_name(value: str) -> None:
    _assert_weights_error(lambda: _load(value), repr(value), r"is empty")


def test_not_a_name_or_path() -> None:
    _assert_weights_error(lambda: _load(5), "weights=5", r"not a name or a path")


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_missing_file(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"absent{suffix}"
    _assert_weights_error(lambda: _load(path), str(path), r"does not exist")
    _assert_weights_error(lambda: _load(str(path)), str(path), r"does not exist")


def test_directory(tmp_path: Path) -> None:
    _assert_weights_error(lambda: _load(tmp_path), str(tmp_path), r"is not a file")


def test_unreadable_file(tmp_path: Path, weights_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_open = Path.open

    def guarded(self: Path, *args: Any, **kwargs: Any) -> Any:
        if self == weights_file:
            raise PermissionError(13, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", guarded)
    _assert_weights_error(lambda: _load(weights_file), str(weights_file), r"permission denied")


@pytest.mark.skipif(not hasattr(os, "geteuid"), reason="POSIX users only")
@pytest.mark.parametrize("directory_mode", [0o755, 0o700], ids=["file-locked", "directory-locked"])
def test_unreadable_file_real(tmp_path: Path, weights_file: Path, directory_mode: int) -> None:
    """A real mode-000 file, read as an unprivileged effective user when running as root.

    With the directory at 0o700, the file cannot even be reached (``stat`` fails).
    """
    locked = tmp_path / "locked.safetensors"
    shutil.copy(weights_file, locked)
    locked.chmod(0)
    tmp_path.chmod(directory_mode)
    dropped = False
    try:
        if os.geteuid() == 0:
            try:
                os.seteuid(65534)
                dropped = True
            except OSError as exc:  # pragma: no cover
                pytest.skip(f"cannot drop to an unprivileged user here ({exc})")
        with pytest.raises(WeightsError) as info:
            resolve_weights(locked)
    finally:
        if dropped:
            os.seteuid(0)
        locked.chmod(0o644)
    assert str(locked) in str(info.value)
    assert re.search(r"permission denied|Permission denied", str(info.value))
    assert FIX.search(str(info.value))


# -- contents -----------------------------------------------------------------------------------


def test_a_good_local_file_loads(weights_file: Path) -> None:
    embedder = _load(weights_file)
    assert embedder.weights_info.name == "file"
    assert embedder.weights_info.path == str(weights_file)


def test_wrong_keys(tmp_path: Path, state: dict[str, torch.Tensor]) -> None:
    path = _save_st(tmp_path / "keys.safetensors", {"encoder." + k: v for k, v in state.items()})
    err = _assert_weights_error(lambda: _load(path), str(path), r"do not fit the voice encoder")
    assert "missing keys" in str(err)
    assert "unexpected keys" in str(err)


def test_a_missing_key(tmp_path: Path, state: dict[str, torch.Tensor]) -> None:
    dropped = sorted(state)[0]
    path = _save_st(tmp_path / "fewer.safetensors", {k: v for k, v in state.items() if k != dropped})
    err = _assert_weights_error(lambda: _load(path), str(path), r"missing keys")
    assert dropped in str(err)


def test_wrong_shapes(tmp_path: Path, state: dict[str, torch.Tensor]) -> None:
    bad = dict(state)
    bad["proj.weight"] = torch.zeros(128, 256)
    path = _save_st(tmp_path / "shapes.safetensors", bad)
    err = _assert_weights_error(lambda: _load(path), str(path), r"wrong shapes")
    assert "proj.weight: file (128, 256)" in str(err)


def test_non_finite_weights(tmp_path: Path, state: dict[str, torch.Tensor]) -> None:
    bad = {k: v.clone() for k, v in state.items()}
    bad["proj.bias"][3] = float("nan")
    path = _save_st(tmp_path / "nan.safetensors", bad)
    with pytest.raises(WeightsError, match=r"NaN or Inf in \['proj\.bias'\]"):
        _load(path)


@pytest.mark.parametrize(
    ("name", "damage"),
    [
        ("truncated-half", lambda b: b[: len(b) // 2]),
        ("truncated-header", lambda b: b[:5]),
        ("truncated-last-byte", lambda b: b[:-1]),
        ("corrupt-header", lambda b: b[:8] + b"#" * 16 + b[24:]),
        ("huge-header-size", lambda b: (1 << 40).to_bytes(8, "little") + b[8:]),
        ("zero-bytes", lambda b: b""),
        ("random", lambda b: os.urandom(len(b) // 100)),
    ],
)
def test_corrupt_safetensors(
    tmp_path: Path, weights_file: Path, name: str, damage: Callable[[bytes], bytes]
) -> None:
    path = tmp_path / f"{name}.safetensors"
    path.write_bytes(damage(weights_file.read_bytes()))
    _assert_weights_error(lambda: _load(path), str(path), r"could not be read|do not fit")


def test_truncated_pt(tmp_path: Path, resemblyzer_weights: Path) -> None:
    path = tmp_path / "truncated.pt"
    path.write_bytes(resemblyzer_weights.read_bytes()[:5000])
    _assert_weights_error(lambda: _load(path), str(path), r"could not be read")


def test_not_a_state_dict(tmp_path: Path) -> None:
    path = tmp_path / "list.pt"
    torch.save([torch.zeros(3)], str(path))
    _assert_weights_error(lambda: _load(path), str(path), r"does not hold a state dict")


# -- pickled code is refused, and does not run ----------------------------------------------------


class _CreatesFile:
    """Unpickling this calls ``open(marker, "w")``: it would create ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.marker), "w"))


class _RunsShell:
    """Unpickling this runs ``touch marker`` in a shell."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


def _raw_pickle(path: Path, obj: object) -> None:
    with path.open("wb") as f:
        pickle.dump(obj, f, protocol=2)


def _torch_zip(path: Path, obj: object) -> None:
    torch.save(obj, str(path))


@pytest.mark.parametrize("payload", [_CreatesFile, _RunsShell])
@pytest.mark.parametrize(
    ("filename", "writer"),
    [
        ("evil.pt", _raw_pickle),
        ("evil.bin", _raw_pickle),
        ("evil.pth", _torch_zip),
        ("evil_zip.pt", _torch_zip),
        ("evil.safetensors", _raw_pickle),  # a pickle in disguise
        ("evil_noext", _raw_pickle),
    ],
)
def test_pickled_code_is_refused_and_never_runs(
    tmp_path: Path,
    state: dict[str, torch.Tensor],
    filename: str,
    writer: Callable[[Path, object], None],
    payload: type,
) -> None:
    marker = tmp_path / "PWNED"
    path = tmp_path / filename
    # A real-looking checkpoint, with the payload hidden beside the tensors.
    writer(path, {"model_state": {**state, "extra": payload(marker)}})
    assert not marker.exists()  # writing the pickle did not run it
    with pytest.raises(WeightsError) as info:
        _load(path)
    assert not marker.exists(), "loading the weights ran code from the file"
    assert str(path) in str(info.value)
    assert re.search(r"pickled code|could not be read", str(info.value))
    with pytest.raises(WeightsError):
        load_state_dict(path)
    assert not marker.exists()


def test_pickled_code_message_explains_why(tmp_path: Path) -> None:
    marker = tmp_path / "PWNED"
    path = tmp_path / "evil.pt"
    _raw_pickle(path, _CreatesFile(marker))
    err = _assert_weights_error(lambda: load_state_dict(path), str(path), r"holds pickled code")
    assert "arbitrary code" in str(err)
    assert not marker.exists()


def test_pt_files_are_read_with_weights_only(
    resemblyzer_weights: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every non-safetensors load asks torch for the restricted unpickler."""
    calls: list[dict[str, Any]] = []
    real = torch.load

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    SpeakerEmbedder("resemblyzer", device="cpu")
    SpeakerEmbedder(resemblyzer_weights, device="cpu")
    assert len(calls) == 2
    assert all(c.get("weights_only") is True for c in calls)


# -- known digests ------------------------------------------------------------------------------


def test_preset_digest_is_checked() -> None:
    info = resolve_weights("resemblyzer")
    assert PRESETS["resemblyzer"].sha256 is not None
    assert info.sha256 == PRESETS["resemblyzer"].sha256


def test_preset_digest_mismatch_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    wrong = dataclasses.replace(PRESETS["resemblyzer"], sha256="0" * 64)
    monkeypatch.setitem(weights_mod.PRESETS, "resemblyzer", wrong)
    err = _assert_weights_error(lambda: _load("resemblyzer"), "'resemblyzer'", r"not the known 0{64}")
    assert "corrupt or was replaced" in str(err)


def test_preset_file_replaced_is_an_error(
    tmp_path: Path, weights_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A preset whose file was swapped for another (valid!) checkpoint is refused."""
    monkeypatch.setattr(weights_mod, "_package_file", lambda name, preset: weights_file)
    with pytest.raises(WeightsError, match="not the known"):
        _load("resemblyzer")
