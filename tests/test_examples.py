"""The example programs run offline and print what they promise; the example audio is what it says."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
AUDIO = EXAMPLES / "audio"
VOICES = ("alice", "bob", "carol")


def run_example(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "error::DeprecationWarning:speakerembed"}
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=str(ROOT.parent),  # examples must not depend on the working directory
    )


def test_every_example_is_tested() -> None:
    scripts = {p.name for p in EXAMPLES.glob("*.py") if not p.name.startswith("_")}
    tested = {
        "quickstart.py",
        "verify_speakers.py",
        "chatterbox_conditioning.py",
        "clean_dataset.py",
        "voice_library.py",
        "serve_metrics.py",
        "cluster_clips.py",
        "diarize_conversation.py",
    }
    assert scripts == tested


def test_quickstart() -> None:
    out = run_example("quickstart.py")
    assert out.returncode == 0, out.stderr
    assert "utterance embeddings: shape (9, 256), dtype float32" in out.stdout
    assert "speaker embedding of alice: shape (256,), norm 1.0000" in out.stdout
    # Parse the clip similarity matrix and check that voices cluster.
    rows = re.findall(r"^\s*(\w+_\d)((?:\s+-?\d\.\d{3}){9})$", out.stdout, flags=re.M)
    assert len(rows) == 9
    names = [r[0] for r in rows]
    sims = np.array([[float(v) for v in r[1].split()] for r in rows])
    np.testing.assert_allclose(np.diag(sims), 1.0, atol=1e-3)
    np.testing.assert_allclose(sims, sims.T, atol=1e-3)
    voice = np.array([n.split("_")[0] for n in names])
    same = voice[:, None] == voice[None, :]
    off_diagonal = ~np.eye(9, dtype=bool)
    assert sims[same & off_diagonal].min() > sims[~same].max()
    assert "resemblyzer@" in out.stdout


def test_voice_library() -> None:
    out = run_example("voice_library.py")
    assert out.returncode == 0, out.stderr
    assert "library: 2 voices, weights resemblyzer@" in out.stdout
    found = dict(re.findall(r"^(\w+_3)\.wav: voice=(\w+)", out.stdout, flags=re.M))
    # The enrolled voices are found; carol, who is not enrolled, is nobody.
    assert found == {"alice_3": "alice", "bob_3": "bob", "carol_3": "None"}
    assert "alice's conditioning embedding: shape (256,), dtype float32" in out.stdout
    assert re.search(r"^reference for alice: alice_\d\.wav, cut at \d+\.\d\d s$", out.stdout, flags=re.M)


def test_verify_speakers() -> None:
    out = run_example("verify_speakers.py")
    assert out.returncode == 0, out.stdout + out.stderr
    # The default is the threshold measured on LibriSpeech (docs/_static/thresholds.json).
    table = json.loads((ROOT / "docs" / "_static" / "thresholds.json").read_text())
    measured = table["recommended_threshold"]
    assert f"threshold {measured}: 9/9 trials decided correctly" in out.stdout
    assert out.stdout.count("accept") == 3
    assert "WRONG" not in out.stdout


def test_verify_speakers_fails_with_a_silly_threshold() -> None:
    out = run_example("verify_speakers.py", "--threshold", "0.1")
    assert out.returncode == 1
    assert "WRONG" in out.stdout
    assert "3/9 trials decided correctly" in out.stdout


def test_verify_speakers_on_your_own_files() -> None:
    out = run_example(
        "verify_speakers.py", "--enroll", str(AUDIO / "bob_1.wav"), str(AUDIO / "bob_2.wav"),
        "--test", str(AUDIO / "bob_3.wav"), str(AUDIO / "carol_3.wav"),
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "enrolled one voice from 2 file(s)" in out.stdout
    assert re.search(r"^bob_3\.wav\s+cosine 0\.\d{3}  accept: same voice$", out.stdout, flags=re.M)
    assert re.search(r"^carol_3\.wav\s+cosine 0\.\d{3}  reject: another voice$", out.stdout, flags=re.M)


def test_verify_speakers_needs_both_enroll_and_test() -> None:
    out = run_example("verify_speakers.py", "--enroll", str(AUDIO / "bob_1.wav"))
    assert out.returncode == 2
    assert "--enroll and --test" in out.stderr


def test_clean_dataset_flags_the_intruder() -> None:
    out = run_example("clean_dataset.py")
    assert out.returncode == 0, out.stderr
    assert "10 clips, 3 flagged (worst first):" in out.stdout
    lines = out.stdout.splitlines()[1:]
    # The mislabelled clip first, then the two copies; every other clip is ok.
    assert re.search(r"alice/alice_4\.wav .*LIKELY bob, OUTLIER", lines[0])
    assert {line.split()[0] for line in lines[1:3]} == {"carol/carol_1.wav", "carol/carol_1_again.wav"}
    assert all("DUPLICATE" in line for line in lines[1:3])
    assert all(line.endswith("ok") for line in lines[3:])


def test_cluster_clips_finds_the_three_voices() -> None:
    out = run_example("cluster_clips.py")
    assert out.returncode == 0, out.stderr
    assert "9 clips, 3 speakers" in out.stdout
    for voice in VOICES:
        found = set(re.findall(rf"speaker (\d+)  {voice}_\d\.wav", out.stdout))
        assert len(found) == 1, (voice, out.stdout)
    assert "precision 1.000, recall 1.000" in out.stdout


def test_chatterbox_conditioning_runs_without_chatterbox() -> None:
    out = run_example("chatterbox_conditioning.py", str(AUDIO / "carol_1.wav"), str(AUDIO / "carol_2.wav"))
    assert out.returncode == 0, out.stderr
    norms = [float(x) for x in re.findall(r"conditioning embedding \(256,\), norm (\d\.\d+)", out.stdout)]
    assert norms == [1.0, 1.0]
    cosines = [float(x) for x in re.findall(r"same file: (\d\.\d+)", out.stdout)]
    assert len(cosines) == 2
    assert min(cosines) > 0.999
    together = re.search(r"all 2 files together: norm (\d\.\d+)", out.stdout)
    assert together is not None
    assert 0.8 < float(together.group(1)) < 1.0  # a mean of unit rows is shorter than 1


def test_example_audio_is_small_and_has_several_voices() -> None:
    import soundfile as sf

    clips = sorted(AUDIO.glob("*.wav"))
    assert sum(p.stat().st_size for p in clips) < 1_500_000
    for v in VOICES:
        assert len([p for p in clips if p.name.startswith(f"{v}_")]) >= 2
    for clip in clips:
        info = sf.info(str(clip))
        assert info.samplerate == 16000
        assert info.channels == 1
        assert 2.5 <= info.duration <= 5.5, (clip.name, info.duration)
    assert (AUDIO / "make_audio.sh").is_file()
    assert "CC0" in (AUDIO / "README.md").read_text()


@pytest.mark.skipif(
    shutil.which("espeak-ng") is None or shutil.which("sox") is None, reason="needs espeak-ng and sox"
)
def test_make_audio_regenerates_the_clips(tmp_path: Path) -> None:
    import soundfile as sf

    shutil.copy(AUDIO / "make_audio.sh", tmp_path / "make_audio.sh")
    subprocess.run(["bash", str(tmp_path / "make_audio.sh")], check=True, timeout=120, capture_output=True)
    made = sorted(p.name for p in tmp_path.glob("*.wav"))
    assert made == sorted(p.name for p in AUDIO.glob("*.wav"))
    for name in made:
        # espeak-ng versions differ a little; the durations must still match closely.
        assert abs(sf.info(str(tmp_path / name)).duration - sf.info(str(AUDIO / name)).duration) < 0.3


def test_serve_metrics_is_a_client_of_the_real_service() -> None:
    pytest.importorskip("uvicorn", reason="the serve extra is not installed (speakerembed[serve])")
    pytest.importorskip("starlette", reason="the serve extra is not installed")
    out = run_example("serve_metrics.py")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "POST /v1/embeddings: 200, 256 floats" in out.stdout
    cosines = re.findall(r"/v1/similarity \w+ \w+: 200, cosine (-?\d\.\d+)", out.stdout)
    same, other = (float(x) for x in cosines)
    assert same > other
    assert "POST /v1/embeddings (a text file): 422, AudioError" in out.stdout
    assert 'endpoint="/v1/similarity",status="200"} 2.0' in out.stdout
    assert "service stopped with SIGTERM, exit code 0" in out.stdout


def test_diarize_conversation() -> None:
    pytest.importorskip("silero_vad", reason="the vad extra (silero-vad) is not installed")
    proc = run_example("diarize_conversation.py")
    assert proc.returncode == 0, proc.stderr
    assert "3 speakers found (3 true)" in proc.stdout
    turns = [line.split()[-1] for line in proc.stdout.splitlines() if line.startswith("  ")]
    # alice, bob, carol, alice, bob, carol, alice, bob: the labels follow the voices
    assert len(turns) == 8
    assert turns[:3] == turns[3:6]
    assert turns[6:] == turns[:2]
    assert len(set(turns)) == 3
    confusion = float(re.search(r"confusion ([0-9.]+) s", proc.stdout).group(1))  # type: ignore[union-attr]
    assert confusion < 1.0
