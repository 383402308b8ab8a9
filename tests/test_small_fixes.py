"""Small items of issue 17: the conditioning metrics label, the verify wording and exit code, the
``--weights`` help, the released version and the git-ignored README output.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from speakerembed import SpeakerEmbedder
from speakerembed.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[1]
AUDIO = ROOT / "examples" / "audio"


def test_embed_conditioning_has_its_own_operation_label(embedder: SpeakerEmbedder) -> None:
    pytest.importorskip("prometheus_client")
    from prometheus_client import CollectorRegistry

    from speakerembed import metrics as m

    registry = CollectorRegistry()
    clone = object.__new__(SpeakerEmbedder)
    clone.__dict__.update(embedder.__dict__)
    clone._recorder = m.recorder_for_registry(registry)
    cond = clone.embed_conditioning(AUDIO / "alice_1.wav")
    assert cond.shape == (256,)
    np.testing.assert_allclose(cond, embedder.embed_conditioning(AUDIO / "alice_1.wav"), atol=1e-6)

    def count(operation: str) -> float:
        found = registry.get_sample_value(
            "speakerembed_call_duration_seconds_count", {"operation": operation, "outcome": "success"}
        )
        return 0.0 if found is None else found

    assert "embed_conditioning" in m.OPERATIONS
    assert count("embed_conditioning") == 1
    assert count("embed_utterances") == 0
    clone.embed_utterances([AUDIO / "alice_2.wav"])
    assert (count("embed_conditioning"), count("embed_utterances")) == (1, 1)


def test_mixed_trial_list_says_an_unlabelled(tmp_path: Path) -> None:
    from speakerembed import ConfigError
    from speakerembed.analysis.verify import read_trials

    listing = tmp_path / "t.txt"
    listing.write_text("1 a.wav b.wav\na.wav c.wav\n")
    with pytest.raises(ConfigError, match="is an unlabelled trial") as info:
        read_trials(listing)
    assert "a unlabelled" not in str(info.value)


def test_verify_malformed_list_is_usage(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    listing = tmp_path / "t.txt"
    listing.write_text("1 a.wav b.wav extra\n")
    assert main(["verify", str(listing), "--weights", "resemblyzer"]) == 2
    assert f"{listing}:1" in capsys.readouterr().err


def test_weights_help_recommends_no_deps_resemblyzer() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    help_text = sub.choices["embed"].format_help()  # type: ignore[attr-defined]
    assert "pip install --no-deps resemblyzer" in " ".join(help_text.split())
    assert "speakerembed[resemblyzer]" not in help_text


def test_version_is_released_in_the_changelog() -> None:
    from speakerembed import __version__

    changelog = (ROOT / "docs" / "changelog.rst").read_text(encoding="utf-8")
    assert f"{__version__} (unreleased)" not in changelog
    assert f"\n{__version__} (" in changelog  # dated
    assert changelog.index("(unreleased)") < changelog.index(f"\n{__version__} (")


def test_readme_output_folder_is_git_ignored() -> None:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: .gitignore cannot be asked")
    done = subprocess.run(
        ["git", "check-ignore", "-q", "embeddings/part-00000.parquet"], cwd=ROOT, check=False
    )
    assert done.returncode == 0
