"""``sim-eval`` inputs as TTS teams have them: generated FLAC (or any audio extension), ``--ext``,
CSVs written with a byte order mark, and warnings that name the pair (issue 17).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest

from speakerembed import SpeakerEmbedder, tts_similarity
from speakerembed.analysis.sim_eval import find_generated, read_pairs
from speakerembed.cli import main

AUDIO = Path(__file__).resolve().parents[2] / "examples" / "audio"
W = ["--weights", "resemblyzer", "--device", "cpu"]


def _layout(tmp_path: Path, suffixes: dict[str, str]) -> tuple[Path, Path]:
    """meta.lst + prompts + generated files, the generated ``utt`` written with ``suffixes[utt]``."""
    import soundfile as sf

    prompts, gen = tmp_path / "prompts", tmp_path / "gen"
    prompts.mkdir()
    gen.mkdir()
    lines = []
    for i, (utt, suffix) in enumerate(suffixes.items(), start=1):
        shutil.copy(AUDIO / f"alice_{i}.wav", prompts / f"p{i}.wav")
        wave, rate = sf.read(AUDIO / f"bob_{i}.wav", dtype="float32")
        if suffix:
            sf.write(gen / f"{utt}{suffix}", wave, rate)
        lines.append(f"{utt}|prompt|prompts/p{i}.wav|text")
    meta = tmp_path / "meta.lst"
    meta.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return meta, gen


def test_generated_flac_and_other_extensions_are_found(tmp_path: Path) -> None:
    meta, gen = _layout(tmp_path, {"u1": ".flac", "u2": ".WAV", "u3": ".ogg"})
    pairs = read_pairs(meta, gen)
    assert [Path(p.generated).name for p in pairs] == ["u1.flac", "u2.WAV", "u3.ogg"]
    assert all(p.error is None for p in pairs)


def test_missing_and_ambiguous_generated_files_name_the_paths(tmp_path: Path) -> None:
    meta, gen = _layout(tmp_path, {"u1": ".flac", "u2": "", "u3": ".wav"})
    shutil.copy(gen / "u3.wav", gen / "u3.flac")
    (gen / "u2.txt").write_text("not audio")
    by_utt = {p.utt: p for p in read_pairs(meta, gen)}
    assert by_utt["u1"].error is None
    missing = by_utt["u2"].error
    assert missing is not None
    assert f"{gen / 'u2'}.<ext>" in missing
    assert "no such file" in missing
    ambiguous = by_utt["u3"].error
    assert ambiguous is not None
    assert "u3.flac, u3.wav" in ambiguous
    assert "ext=EXT" in ambiguous
    chosen = read_pairs(meta, gen, ext="flac")
    assert [p.error is None for p in chosen] == [True, False, True]
    assert chosen[1].error is not None
    assert str(gen / "u2.flac") in chosen[1].error


def test_find_generated_refuses_a_path_as_extension(tmp_path: Path) -> None:
    from speakerembed import ConfigError

    with pytest.raises(ConfigError, match="not a file extension"):
        find_generated(tmp_path, ["u1"], ext="a/b")


def test_cli_sim_eval_scores_flac_and_takes_ext(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    meta, gen = _layout(tmp_path, {"u1": ".flac", "u2": ".flac"})
    assert main(["sim-eval", str(meta), str(gen), *W]) == 0, capsys.readouterr().err
    capsys.readouterr()
    code = main(["sim-eval", str(meta), str(gen), "--ext", "wav", *W])
    err = capsys.readouterr().err
    assert code == 1  # no pair could be scored
    assert f"no such file {gen / 'u1.wav'} (by --ext EXT)" in err


def test_csv_with_a_byte_order_mark(tmp_path: Path, embedder: SpeakerEmbedder) -> None:
    csv = tmp_path / "pairs.csv"
    text = f"generated,reference\n{AUDIO / 'bob_1.wav'},{AUDIO / 'alice_1.wav'}\n"
    csv.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    pairs = read_pairs(csv)
    assert len(pairs) == 1  # the header is a header, not a failed pair
    report = tts_similarity(csv, embedder=embedder)
    assert not report.failures
    assert len(report.similarities) == 1


def test_warning_names_the_pair_not_the_file(
    tmp_path: Path, embedder: SpeakerEmbedder, caplog: pytest.LogCaptureFixture
) -> None:
    csv = tmp_path / "pairs.csv"
    good, ref = AUDIO / "bob_1.wav", AUDIO / "alice_1.wav"
    csv.write_text(
        f"utt,generated,reference\nfirst,{good},{ref}\nsecond,{good},{tmp_path / 'gone.wav'}\n",
        encoding="utf-8",
    )
    with caplog.at_level(logging.WARNING, logger="speakerembed"):
        report = tts_similarity(csv, embedder=embedder)
    assert [p.utt for p in report.failures] == ["second"]
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("skipping pair 2 (utt second): reference: ") for m in messages), messages
    assert not any("skipping input" in m for m in messages), messages
