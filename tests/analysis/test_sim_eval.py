"""TTS speaker similarity: ``tts_similarity``, ``read_pairs`` and ``speakerembed sim-eval``.

Seed-TTS-eval lays out a test set as ``meta.lst`` (``utt|prompt_text|prompt_wav|infer_text``,
prompt paths relative to the list) and a folder of generated ``<utt>.wav``. The tests build one
in tmp_path from the bundled voices, with one real LibriSpeech file, and check each similarity
against the cosine of embeddings computed here.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from speakerembed import ConfigError, SpeakerEmbedder, tts_similarity
from speakerembed.analysis.sim_eval import ENCODER_NOTE, read_pairs
from speakerembed.cli import main

AUDIO = Path(__file__).resolve().parents[2] / "examples" / "audio"
W = ["--weights", "resemblyzer", "--device", "cpu"]


def seed_tts_layout(
    tmp_path: Path, extra: Path | None = None
) -> tuple[Path, Path, dict[str, tuple[Path, Path]]]:
    """meta.lst + prompt-wavs/ + generated/; returns (meta, gen_dir, {utt: (generated, prompt)})."""
    prompts, gen = tmp_path / "set" / "prompt-wavs", tmp_path / "generated"
    prompts.mkdir(parents=True)
    gen.mkdir()
    pairs = {
        "alice-a": ("alice_1", "alice_2"),  # a good clone
        "bob-b": ("bob_1", "bob_3"),
        "carol-as-alice": ("carol_1", "alice_3"),  # the wrong voice
    }
    lines, truth = [], {}
    for utt, (generated, prompt) in pairs.items():
        shutil.copy(AUDIO / f"{prompt}.wav", prompts / f"{prompt}.wav")
        shutil.copy(AUDIO / f"{generated}.wav", gen / f"{utt}.wav")
        lines.append(f"{utt}|prompt text, with a comma|prompt-wavs/{prompt}.wav|the text to say")
        truth[utt] = (gen / f"{utt}.wav", prompts / f"{prompt}.wav")
    if extra is not None:
        # A real recording as its own "clone", with the five-field form (gt_wav at the end).
        shutil.copy(extra, prompts / "real.wav")
        shutil.copy(extra, gen / "real.wav")
        lines.append("real|a|prompt-wavs/real.wav|b|prompt-wavs/real.wav")
        truth["real"] = (gen / "real.wav", prompts / "real.wav")
    meta = tmp_path / "set" / "meta.lst"
    meta.write_text("\n".join(lines) + "\n")
    return meta, gen, truth


def cosine(embedder: SpeakerEmbedder, a: Path, b: Path) -> float:
    rows = embedder.embed_utterances([a, b])
    return float(rows[0] @ rows[1])


def test_read_pairs_meta_lst_resolves_paths(tmp_path: Path) -> None:
    meta, gen, truth = seed_tts_layout(tmp_path)
    pairs = read_pairs(meta, gen)
    assert [p.utt for p in pairs] == list(truth)
    for p in pairs:
        assert (Path(p.generated), Path(p.reference)) == truth[p.utt]


def test_read_pairs_csv_with_and_without_header(tmp_path: Path) -> None:
    with_header = tmp_path / "pairs.csv"
    with_header.write_text("utt,generated,reference\nx1,g/x1.wav,r/x1.wav\n")
    bare = tmp_path / "bare.csv"
    bare.write_text(f"g/x2.wav,{AUDIO / 'bob_1.wav'}\n")
    (p,) = read_pairs(with_header)
    assert (p.utt, p.generated, p.reference) == ("x1", str(tmp_path / "g/x1.wav"), str(tmp_path / "r/x1.wav"))
    (q,) = read_pairs(bare)
    assert (q.utt, q.reference) == ("x2", str(AUDIO / "bob_1.wav"))


@pytest.mark.parametrize(
    ("text", "what"),
    [("utt|only two\n", ":1"), ("a|b|c|d\n\nx|y\n", ":3"), ("", "no pairs"), ("u|t||d\n", ":1")],
)
def test_read_pairs_errors_name_the_line(tmp_path: Path, text: str, what: str) -> None:
    meta = tmp_path / "meta.lst"
    meta.write_text(text)
    with pytest.raises(ConfigError, match=what):
        read_pairs(meta, tmp_path)


def test_meta_lst_needs_gen_dir(tmp_path: Path) -> None:
    meta, _, _ = seed_tts_layout(tmp_path)
    with pytest.raises(ConfigError, match="gen_dir="):
        read_pairs(meta)


def test_similarities_are_the_cosines(tmp_path: Path, embedder: SpeakerEmbedder, speech: Path) -> None:
    real = sorted((speech / "arctic").glob("*.wav"))[0]
    meta, gen, truth = seed_tts_layout(tmp_path, extra=real)
    report = tts_similarity(meta, gen, embedder=embedder)
    got = {p.utt: p.similarity for p in report.pairs}
    for utt, (g, r) in truth.items():
        assert got[utt] == pytest.approx(cosine(embedder, g, r), abs=1e-5)
    assert got["real"] == pytest.approx(1.0, abs=1e-5)  # the same file on both sides
    assert got["carol-as-alice"] < min(got["alice-a"], got["bob-b"])
    summary = report.summary()
    values = np.array(list(got.values()))
    assert summary["mean"] == pytest.approx(values.mean())
    assert summary["std"] == pytest.approx(values.std())
    assert (summary["n"], summary["n_failed"]) == (4, 0)
    assert summary["weights"].startswith("resemblyzer@")
    assert "WavLM" in summary["note"]


def test_missing_generated_file_fails_its_pair_only(tmp_path: Path, embedder: SpeakerEmbedder) -> None:
    meta, gen, _ = seed_tts_layout(tmp_path)
    (gen / "bob-b.wav").unlink()
    report = tts_similarity(meta, gen, embedder=embedder)
    (failed,) = report.failures
    assert failed.utt == "bob-b"
    assert failed.error is not None
    assert failed.error.startswith("generated: ")
    assert "no such file" in failed.error
    assert len(report.similarities) == 2
    assert report.summary()["failures"] == [{"utt": "bob-b", "error": failed.error}]


def test_cli_sim_eval_writes_jsonl_and_summary(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, embedder: SpeakerEmbedder
) -> None:
    meta, gen, truth = seed_tts_layout(tmp_path)
    (gen / "bob-b.wav").unlink()
    out = tmp_path / "out" / "scores.jsonl"
    plot = tmp_path / "sim.png"
    code = main(["sim-eval", str(meta), str(gen), "-o", str(out), "--plot", str(plot), *W])
    stdout, err = capsys.readouterr()
    assert code == 3, err  # finished, with a failed pair
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["utt"] for line in lines] == list(truth)
    by_utt = {line["utt"]: line for line in lines}
    assert by_utt["bob-b"]["similarity"] is None
    assert "no such file" in by_utt["bob-b"]["error"]
    g, r = truth["alice-a"]
    assert by_utt["alice-a"]["generated"] == str(g)
    assert by_utt["alice-a"]["reference"] == str(r)
    assert by_utt["alice-a"]["similarity"] == pytest.approx(cosine(embedder, g, r), abs=1e-5)
    summary = json.loads((tmp_path / "out" / "scores.summary.json").read_text())
    ok = [line["similarity"] for line in lines if line["similarity"] is not None]
    assert summary["mean"] == pytest.approx(np.mean(ok))
    assert (summary["n"], summary["n_failed"]) == (2, 1)
    assert summary["note"] == ENCODER_NOTE
    assert f"mean {summary['mean']:.4f}" in stdout
    assert "not the WavLM-TDNN" in stdout
    assert "failed bob-b" in err
    assert plot.read_bytes()[:4] == b"\x89PNG"


def test_cli_sim_eval_csv_to_stdout(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    csv = tmp_path / "pairs.csv"
    csv.write_text(f"generated,reference\n{AUDIO / 'alice_1.wav'},{AUDIO / 'alice_2.wav'}\n")
    code = main(["sim-eval", str(csv), *W])
    out, err = capsys.readouterr()
    assert code == 0, err
    (line,) = [json.loads(x) for x in out.splitlines()]
    assert line["utt"] == "alice_1"
    assert 0.5 < line["similarity"] <= 1.0
    assert "speaker similarity: mean" in err


def test_cli_sim_eval_usage_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    meta, gen, _ = seed_tts_layout(tmp_path)
    assert main(["sim-eval", str(meta), *W]) == 2
    assert "GEN_DIR" in capsys.readouterr().err
    assert main(["sim-eval", str(meta), str(gen), "-o", str(tmp_path / "x.json"), *W]) == 2
    assert "-o" in capsys.readouterr().err
    assert main(["sim-eval", str(meta), str(tmp_path / "nowhere"), *W]) == 2
    csv = tmp_path / "pairs.csv"
    csv.write_text("generated,reference\na.wav,b.wav\n")
    assert main(["sim-eval", str(csv), str(gen), *W]) == 2
    assert "not used" in capsys.readouterr().err
