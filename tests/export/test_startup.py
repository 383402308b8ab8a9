"""Start-up: ``speakerembed --help`` and ``import speakerembed.cli`` load neither torch, pyarrow nor NumPy.

What a command imports before it does its work is what every user waits for; the times are in
``benchmarks/families/startup.py``, never here.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from speakerembed.cli import COMMANDS

HEAVY = ("torch", "pyarrow", "numpy", "onnx", "onnxruntime", "soundfile", "soxr", "scipy", "matplotlib")

_RUN_CLI = """
import json, sys
from speakerembed.cli import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    assert exc.code == 0, exc.code
print(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)), file=sys.stderr)
"""


def _heavy_after(code: str, *argv: str) -> list[str]:
    proc = subprocess.run(
        [sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    loaded: list[str] = json.loads(proc.stderr.strip().splitlines()[-1])
    return loaded


def test_import_speakerembed_cli_loads_no_heavy_module() -> None:
    code = (
        "import json, sys\nimport speakerembed.cli\n"
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)), file=sys.stderr)\n"
    )
    assert _heavy_after(code) == []


def test_help_loads_no_heavy_module() -> None:
    assert _heavy_after(_RUN_CLI.format(heavy=HEAVY), "--help") == []


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_command_help_loads_no_heavy_module(command: str) -> None:
    assert _heavy_after(_RUN_CLI.format(heavy=HEAVY), command, "--help") == []


def test_the_check_sees_a_heavy_import() -> None:
    # The probe itself can fail: a command that does import torch is reported.
    code = (
        "import json, sys\nimport speakerembed.cli, torch\n"
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)), file=sys.stderr)\n"
    )
    assert "torch" in _heavy_after(code)
