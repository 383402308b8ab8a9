"""Verification over trial lists: ``verify_trials``, ``read_trials`` and ``speakerembed verify``.

Scores are checked against cosines computed here from ``SpeakerEmbedder.embed_utterances``, and
the metrics against a brute-force count over those scores.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from speakerembed import ConfigError, SpeakerEmbedder, verify_trials
from speakerembed.analysis.verify import Trial, read_trials
from speakerembed.cli import main

AUDIO = Path(__file__).resolve().parents[2] / "examples" / "audio"
CLIPS = sorted(p.name for p in AUDIO.glob("*.wav"))
W = ["--weights", "resemblyzer", "--device", "cpu"]


def all_pairs() -> list[tuple[str, str, bool]]:
    return [(a, b, a.split("_")[0] == b.split("_")[0]) for a, b in itertools.combinations(CLIPS, 2)]


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path


def reference_scores(embedder: SpeakerEmbedder, pairs: list[tuple[str, str, bool]], root: Path) -> np.ndarray:
    rows = embedder.embed_utterances([root / f for f in CLIPS])
    index = {f: i for i, f in enumerate(CLIPS)}
    return np.array([float(rows[index[a]] @ rows[index[b]]) for a, b, _ in pairs])


# -- reading trial lists ----------------------------------------------------------------------


def test_read_trials_detects_each_form(tmp_path: Path) -> None:
    vox = write(tmp_path / "vox.txt", ["# a comment", "1 a.wav b.wav", "", "0 a.wav c.wav"])
    kaldi = write(tmp_path / "kaldi.txt", ["a.wav b.wav target", "a.wav c.wav nontarget"])
    bare = write(tmp_path / "bare.txt", ["a.wav b.wav", "a.wav c.wav"])
    expected = [Trial("a.wav", "b.wav", True), Trial("a.wav", "c.wav", False)]
    assert read_trials(vox) == expected
    assert read_trials(kaldi) == expected
    assert read_trials(bare) == [Trial("a.wav", "b.wav"), Trial("a.wav", "c.wav")]


@pytest.mark.parametrize(
    ("lines", "where", "what"),
    [
        (["1 a.wav b.wav", "a.wav b.wav target"], ":2", "VoxCeleb|voxceleb"),
        (["1 a.wav b.wav", "2 a.wav b.wav"], ":2", "cannot read"),
        (["a.wav b.wav maybe"], ":1", "cannot read"),
        (["1 a.wav b.wav extra"], ":1", "cannot read"),
        (["# only a comment"], "", "no trials"),
    ],
)
def test_read_trials_errors_name_file_and_line(
    tmp_path: Path, lines: list[str], where: str, what: str
) -> None:
    path = write(tmp_path / "trials.txt", lines)
    with pytest.raises(ConfigError, match=what) as info:
        read_trials(path)
    assert f"{path}{where}" in str(info.value)


# -- the Python function ----------------------------------------------------------------------


def test_verify_trials_scores_are_the_cosines(embedder: SpeakerEmbedder, tmp_path: Path) -> None:
    pairs = all_pairs()
    trials = write(tmp_path / "trials.txt", [f"{int(y)} {a} {b}" for a, b, y in pairs])
    report = verify_trials(trials, root=AUDIO, embedder=embedder)
    ref = reference_scores(embedder, pairs, AUDIO)
    np.testing.assert_allclose(report.scores, ref, atol=1e-5)
    labels = np.array([y for *_, y in pairs])
    assert (report.n_target, report.n_nontarget) == (int(labels.sum()), int((~labels).sum()))
    # EER by counting: the bundled voices are separable, so 0 at a threshold between the classes.
    assert report.eer is not None
    assert report.eer_threshold is not None
    if ref[labels].min() > ref[~labels].max():
        assert report.eer == 0.0
        assert ref[~labels].max() < report.eer_threshold <= ref[labels].min() + 1e-5
    assert set(report.min_dcf) == {0.01, 0.05}
    assert report.weights.startswith("resemblyzer@")


def test_each_file_is_embedded_once(embedder: SpeakerEmbedder, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []
    original = embedder.embed_utterances

    def spy(inputs, **kwargs):  # type: ignore[no-untyped-def]
        seen.extend(str(p) for p in inputs)
        return original(inputs, **kwargs)

    monkeypatch.setattr(embedder, "embed_utterances", spy)
    verify_trials(all_pairs(), root=AUDIO, embedder=embedder)
    assert sorted(seen) == sorted(str(AUDIO / f) for f in CLIPS)


def test_missing_file_excludes_its_trials_and_is_reported(embedder: SpeakerEmbedder) -> None:
    pairs = [*all_pairs(), ("alice_1.wav", "nobody.wav", False), ("nobody.wav", "bob_1.wav", False)]
    report = verify_trials(pairs, root=AUDIO, embedder=embedder)
    assert report.n_excluded == 2
    assert len(report.trials) == len(pairs) - 2
    assert list(report.failed_files) == [str(AUDIO / "nobody.wav")]
    assert "no such file" in report.failed_files[str(AUDIO / "nobody.wav")]
    data = report.to_dict()
    assert data["n_failed"] == 1
    assert data["n_excluded"] == 2


def test_unlabelled_trials_give_scores_without_metrics(embedder: SpeakerEmbedder) -> None:
    report = verify_trials([(a, b) for a, b, _ in all_pairs()[:5]], root=AUDIO, embedder=embedder)
    assert report.scores.shape == (5,)
    assert report.eer is None
    assert report.min_dcf == {}
    assert report.labels is None
    assert report.to_dict()["eer"] is None


def test_cohort_as_norm_matches_scoring(embedder: SpeakerEmbedder, speech: Path) -> None:
    from speakerembed.analysis.scoring import as_norm

    pairs = all_pairs()
    cohort = sorted((speech / "vctk48k").glob("*.wav"))[:6]
    report = verify_trials(pairs, root=AUDIO, embedder=embedder, cohort=[str(p) for p in cohort], top_n=4)
    rows = embedder.embed_utterances([AUDIO / f for f in CLIPS])
    index = {f: i for i, f in enumerate(CLIPS)}
    e = np.array([rows[index[a]] for a, _, _ in pairs])
    t = np.array([rows[index[b]] for _, b, _ in pairs])
    expected = as_norm(np.einsum("ij,ij->i", e, t), e, t, embedder.embed_utterances(cohort), top_n=4)
    np.testing.assert_allclose(report.scores, expected, atol=1e-4)
    assert report.score_kind == "as-norm(top_n=4)"


def test_bad_arguments_name_the_keyword(embedder: SpeakerEmbedder, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="root="):
        verify_trials(all_pairs(), root=tmp_path / "nowhere", embedder=embedder)
    with pytest.raises(ConfigError, match="item 1 has the label 'maybe'"):
        verify_trials([("a", "b", "target"), ("a", "c", "maybe")], embedder=embedder)
    with pytest.raises(ConfigError, match="mixes labelled"):
        verify_trials([("a", "b", True), ("a", "c")], embedder=embedder)
    with pytest.raises(ConfigError, match="cohort="):
        verify_trials(all_pairs()[:3], root=AUDIO, embedder=embedder, cohort=[tmp_path / "none"])


# -- the command --------------------------------------------------------------------------------


def test_cli_verify_writes_report_scores_and_plot(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, embedder: SpeakerEmbedder, speech: Path
) -> None:
    pytest.importorskip("matplotlib")
    # Kaldi form, paths relative to the list's folder (the default --root), with a shared file
    # given by absolute path.
    shared = sorted((speech / "arctic").glob("*.wav"))[:2]
    pairs = [*all_pairs(), (str(shared[0]), str(shared[1]), True), (str(shared[0]), "alice_1.wav", False)]
    listing = tmp_path / "lists" / "trials.txt"
    listing.parent.mkdir()
    for clip in CLIPS:
        (listing.parent / clip).symlink_to(AUDIO / clip)
    write(listing, [f"{a} {b} {'target' if y else 'nontarget'}" for a, b, y in pairs])
    report, scores, plot = tmp_path / "out" / "report.json", tmp_path / "scores.txt", tmp_path / "det.png"
    code = main(["verify", str(listing), "-o", str(report), "--scores", str(scores), "--plot", str(plot), *W])
    out, err = capsys.readouterr()
    assert code == 0, err
    data = json.loads(report.read_text())
    labels = np.array([y for *_, y in pairs])
    assert data["n_target"] == int(labels.sum())
    assert data["n_nontarget"] == int((~labels).sum())
    assert set(data["min_dcf"]) == {"0.01", "0.05"}
    assert 0.0 <= data["eer"] <= 1.0
    assert data["weights"].startswith("resemblyzer@")
    lines = [line.split() for line in scores.read_text().splitlines()]
    assert [(a, b) for a, b, *_ in lines] == [(a, b) for a, b, _ in pairs]
    assert [kind for *_, kind in lines] == ["target" if y else "nontarget" for y in labels]
    got = np.array([float(s) for _, _, s, _ in lines])
    from speakerembed.analysis.scoring import eer

    assert data["eer"] == pytest.approx(eer(got, labels).value, abs=1e-3)
    assert plot.read_bytes()[:4] == b"\x89PNG"
    assert f"EER {100 * data['eer']:.2f}%" in out


def test_cli_verify_unlabelled_still_writes_scores(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, embedder: SpeakerEmbedder
) -> None:
    listing = write(tmp_path / "trials.txt", [f"{AUDIO / a} {AUDIO / b}" for a, b, _ in all_pairs()[:4]])
    scores = tmp_path / "scores.txt"
    code = main(["verify", str(listing), "--scores", str(scores), "-o", str(tmp_path / "r.json"), *W])
    _, err = capsys.readouterr()
    assert code == 0, err
    assert len(scores.read_text().splitlines()) == 4
    assert all(len(line.split()) == 3 for line in scores.read_text().splitlines())
    assert json.loads((tmp_path / "r.json").read_text())["eer"] is None
    # Without --scores, an unlabelled list's scores go to stdout.
    assert main(["verify", str(listing), *W]) == 0
    printed = [line.split() for line in capsys.readouterr().out.splitlines() if line.startswith(str(AUDIO))]
    written = [float(line.split()[2]) for line in scores.read_text().splitlines()]
    assert [float(s) for *_, s in printed] == written


def test_cli_verify_missing_file_exits_3(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    listing = write(tmp_path / "t.txt", [f"1 {AUDIO / 'alice_1.wav'} {AUDIO / 'alice_2.wav'}",
                                         f"0 {AUDIO / 'alice_1.wav'} {tmp_path / 'gone.wav'}"])  # fmt: skip
    code = main(["verify", str(listing), "-o", str(tmp_path / "r.json"), *W])
    out, err = capsys.readouterr()
    assert code == 3
    assert f"failed {tmp_path / 'gone.wav'}" in err
    assert "1 trial(s) left out" in out
    assert json.loads((tmp_path / "r.json").read_text())["n_excluded"] == 1


def test_cli_verify_malformed_list_is_one_line_naming_the_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    listing = write(tmp_path / "t.txt", ["1 a.wav b.wav", "x a.wav b.wav"])
    code = main(["verify", str(listing), *W])
    err = capsys.readouterr().err
    assert code == 2  # bad usage, as a malformed --manifest is for corpus
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1
    assert f"{listing}:2" in errors[0]


@pytest.mark.parametrize(
    ("extra", "flag"),
    [(["-o", "r.csv"], "-o"), (["--plot", "d.jpg"], "--plot"), (["--root", "/nonexistent"], "--root")],
)
def test_cli_verify_usage_errors_before_any_work(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, extra: list[str], flag: str
) -> None:
    listing = write(tmp_path / "t.txt", ["1 a.wav b.wav"])
    code = main(
        ["verify", str(listing), *[str(tmp_path / e) if e.startswith(("r.", "d.")) else e for e in extra], *W]
    )
    assert code == 2
    assert flag in capsys.readouterr().err


def test_large_lists_go_through_the_corpus_job_with_the_same_rows(
    embedder: SpeakerEmbedder, tmp_path: Path
) -> None:
    from speakerembed.analysis._file_lists import embed_files

    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio" * 50)
    paths = [*(str(p) for p in sorted(AUDIO.glob("*_1.wav"))), str(bad), str(tmp_path / "missing.wav")]
    chunked_rows, chunked_failed = embed_files(embedder, paths)
    corpus_rows, corpus_failed = embed_files(embedder, paths, corpus_min_files=1)
    assert set(corpus_rows) == set(chunked_rows) == set(paths[:3])
    for path in chunked_rows:
        np.testing.assert_allclose(corpus_rows[path], chunked_rows[path], atol=1e-5)
    assert set(corpus_failed) == set(chunked_failed) == {str(bad), str(tmp_path / "missing.wav")}


@pytest.mark.skipif(sys.platform in ("darwin", "win32"), reason="these file systems want UTF-8 names")
def test_the_corpus_path_keys_rows_by_the_paths_given_when_names_are_not_utf8(
    embedder: SpeakerEmbedder, tmp_path: Path
) -> None:
    """A name that is not UTF-8 is stored escaped by the job; the caller gets its own path back."""
    from speakerembed.analysis._file_lists import embed_files

    source = sorted(AUDIO.glob("*_1.wav"))[0]
    raw = os.fsdecode(bytes(tmp_path) + b"/caf\xe9.wav")  # 'caf\udce9.wav'
    shutil.copyfile(source, raw)
    paths = [raw, str(source)]
    rows, failed = embed_files(embedder, paths, corpus_min_files=1)
    assert failed == {}
    assert set(rows) == set(paths)
    np.testing.assert_allclose(rows[raw], rows[str(source)], atol=1e-5)
