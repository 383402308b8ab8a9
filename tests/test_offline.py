"""Hub weights without the network: one fast line when they are missing, the cache when they are not.

Each test runs a fresh interpreter, because huggingface_hub reads ``HF_ENDPOINT``,
``HF_HUB_CACHE`` and ``HF_HUB_OFFLINE`` when it is imported. No test touches the real network:
the Hub endpoint is a closed local port (127.0.0.1:9, the discard port, where nothing listens).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from speakerembed import SpeakerEmbedder

ROOT = Path(__file__).resolve().parents[1]
ALICE = str(ROOT / "examples" / "audio" / "alice_1.wav")
CLOSED_PORT = "http://127.0.0.1:9"
REVISION = "0123456789abcdef0123456789abcdef01234567"  # a commit hash, as the Hub cache names them


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_"))}
    env.pop("TRANSFORMERS_OFFLINE", None)
    env.update(
        PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]),
        HF_HOME=str(tmp_path / "hf-home"),
        HF_ENDPOINT=CLOSED_PORT,
    )
    env.update(extra)
    return env


def _cli(tmp_path: Path, *argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "speakerembed", *argv],
        env=_env(tmp_path, **env),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _python(tmp_path: Path, code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        env=_env(tmp_path, **env),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize("offline", [False, True], ids=["unreachable-hub", "HF_HUB_OFFLINE"])
def test_cli_without_the_hub_fails_in_one_line_naming_the_flag(tmp_path: Path, offline: bool) -> None:
    extra = {"HF_HUB_OFFLINE": "1"} if offline else {}
    proc = _cli(tmp_path, "embed", ALICE, "-o", "out.npy", "--device", "cpu", **extra)
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr  # no retry lines, no warnings, no progress bars
    line = lines[0]
    assert line.startswith("speakerembed: error: weights 'chatterbox'"), line
    assert "--weights resemblyzer" in line
    assert "weights='resemblyzer'" not in line  # the flag, not the Python keyword
    assert "pip install --no-deps resemblyzer" in line
    assert ("HF_HUB_OFFLINE is set" in line) == offline
    assert not (tmp_path / "out.npy").exists()


def test_python_without_the_hub_fails_fast_naming_the_keyword(tmp_path: Path) -> None:
    # Timed inside the interpreter, so the bound covers our call, not Python's start-up. Without
    # the fix huggingface_hub sleeps 1+2+4+8+8 s between its retries, so 5 s is a generous margin.
    code = (
        "import json, sys, time\n"
        "from speakerembed.errors import WeightsError\n"
        "from speakerembed.weights import resolve_weights\n"
        "start = time.perf_counter()\n"
        "try:\n"
        "    resolve_weights('chatterbox')\n"
        "except WeightsError as exc:\n"
        "    print(json.dumps({'seconds': time.perf_counter() - start, 'message': str(exc)}))\n"
    )
    proc = _python(tmp_path, code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""  # huggingface_hub's log lines are silenced during our call
    result = json.loads(proc.stdout)
    assert result["seconds"] < 5.0
    assert "weights='resemblyzer'" in result["message"]
    assert "Connection refused" in result["message"] or "ConnectError" in result["message"]


def _fake_hub_cache(hub: Path, weights_file: Path) -> Path:
    """huggingface_hub's cache layout for ResembleAI/chatterbox's ve.safetensors at REVISION."""
    repo = hub / "models--ResembleAI--chatterbox"
    snapshot = repo / "snapshots" / REVISION
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(REVISION)
    shutil.copyfile(weights_file, snapshot / "ve.safetensors")
    return snapshot / "ve.safetensors"


@pytest.mark.parametrize("offline", [False, True], ids=["unreachable-hub", "HF_HUB_OFFLINE"])
def test_weights_in_the_hub_cache_are_used_without_the_network(
    tmp_path: Path, weights_file: Path, embedder: SpeakerEmbedder, offline: bool
) -> None:
    cached = _fake_hub_cache(tmp_path / "hf-home" / "hub", weights_file)
    extra = {"HF_HUB_OFFLINE": "1"} if offline else {}
    proc = _cli(tmp_path, "embed", ALICE, "-o", "out.npz", "--device", "cpu", **extra)
    assert proc.returncode == 0, proc.stderr
    with np.load(tmp_path / "out.npz") as data:
        assert str(data["weights"]).startswith("chatterbox@")
        got = data["embeddings"]
    # The fake cache holds the Resemblyzer weights under Chatterbox's key names, so the result is
    # the Resemblyzer embedding: proof that the cached file, and nothing else, was loaded.
    np.testing.assert_allclose(got, embedder.embed_speaker([ALICE]), atol=1e-6)
    code = (
        "from speakerembed.weights import resolve_weights\n"
        "info = resolve_weights('chatterbox')\n"
        "print(info.path)\n"
    )
    proc = _python(tmp_path, code, **extra)
    assert proc.returncode == 0, proc.stderr
    assert Path(proc.stdout.strip()).resolve() == cached.resolve()


# -- the "resemblyzer" weights need the wheel's file, not its dependencies --------------------


def test_missing_resemblyzer_names_the_light_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import importlib.util

    from speakerembed.cli import main
    from speakerembed.errors import WeightsError
    from speakerembed.weights import resolve_weights

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "resemblyzer" else real(name, *a)
    )
    with pytest.raises(WeightsError, match=r"pip install --no-deps resemblyzer"):
        resolve_weights("resemblyzer")
    assert main(["embed", ALICE, "--weights", "resemblyzer", "--device", "cpu"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "pip install --no-deps resemblyzer" in err


def test_resemblyzer_weights_work_when_the_package_cannot_be_imported(
    tmp_path: Path, resemblyzer_weights: Path, embedder: SpeakerEmbedder
) -> None:
    # What `pip install --no-deps resemblyzer` leaves: the package's files, but an import that
    # fails because librosa, webrtcvad and the rest are missing. The file alone must be enough.
    package = tmp_path / "site" / "resemblyzer"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("raise ImportError('librosa and webrtcvad are not installed')\n")
    shutil.copyfile(resemblyzer_weights, package / "pretrained.pt")
    code = (
        "import json, sys\n"
        "for name in ('librosa', 'webrtcvad', 'numba'):\n"
        "    sys.modules[name] = None  # importing them now fails, as if not installed\n"
        "from speakerembed import SpeakerEmbedder\n"
        "e = SpeakerEmbedder('resemblyzer', device='cpu')\n"
        f"v = e.embed_speaker([{ALICE!r}])\n"
        "print(json.dumps({'path': e.weights_info.path, 'v': v.tolist(),"
        " 'imported': 'resemblyzer' in sys.modules}))\n"
    )
    env = {"PYTHONPATH": os.pathsep.join([str(tmp_path / "site"), str(ROOT)]), "HF_HUB_OFFLINE": "1"}
    proc = _python(tmp_path, code, **env)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert Path(result["path"]).resolve() == (package / "pretrained.pt").resolve()
    assert not result["imported"]
    np.testing.assert_allclose(result["v"], embedder.embed_speaker([ALICE]), atol=1e-6)
