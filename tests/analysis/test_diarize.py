"""diarize() and ``speakerembed diarize`` on simulated conversations and the real AMI excerpts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from _conversations import Conversation, build_conversation, speaker_pools

from speakerembed import Diarization, DiarizationConfig, SpeakerEmbedder, diarize
from speakerembed.analysis.diarization import check_unique_uris, cluster_windows, link_files
from speakerembed.analysis.scoring import der
from speakerembed.cli import main
from speakerembed.errors import AudioError, ConfigError

pytest.importorskip("silero_vad", reason="the vad extra (silero-vad) is not installed")


@pytest.fixture(scope="module")
def pools(speech: Path) -> dict[str, list[Path]]:
    return speaker_pools(speech)


def _conversation(
    pools: dict[str, list[Path]], n: int, seed: int, sample_rate: int, duration_s: float = 60.0
) -> Conversation:
    names = sorted(pools)
    rng = np.random.default_rng(100 + 10 * n + seed)
    speakers = [str(s) for s in rng.choice(names, n, replace=False)]
    return build_conversation(pools, speakers, duration_s=duration_s, seed=seed, sample_rate=sample_rate)


@pytest.mark.parametrize(
    ("n", "seed", "sample_rate"), [(2, 0, 16000), (2, 1, 44100), (3, 2, 22050), (3, 3, 16000)]
)
def test_simulated_conversations_count_and_der(
    pools: dict[str, list[Path]], embedder: SpeakerEmbedder, n: int, seed: int, sample_rate: int
) -> None:
    conv = _conversation(pools, n, seed, sample_rate)
    d = diarize(conv.wave, sample_rate=sample_rate, embedder=embedder)
    assert len(d.speakers) == n  # the count is estimated, not given
    r = der(conv.turns, d.turns)
    # The reference is Silero on the clean turns: misses and false alarms are the detection's,
    # confusion is the clustering's. A one-cluster answer would confuse about half the speech.
    assert r.confusion_s < 0.03 * r.total_s, r
    assert r.der < 0.15, r
    # turns are in time order, never overlap, and lie inside the input
    starts = np.array([t.start_s for t in d.turns])
    ends = np.array([t.end_s for t in d.turns])
    assert np.all(ends > starts)
    assert np.all(starts[1:] >= ends[:-1] - 1e-9)
    assert ends[-1] <= conv.duration_s + 1e-6
    for label, e in d.speaker_embeddings.items():
        assert e.shape == (256,), label
        assert abs(float(np.linalg.norm(e)) - 1) < 1e-4, label


def test_counts_are_respected(pools: dict[str, list[Path]], embedder: SpeakerEmbedder) -> None:
    conv = _conversation(pools, 3, 4, 16000, duration_s=45)
    assert len(diarize(conv.wave, sample_rate=16000, embedder=embedder, num_speakers=2).speakers) == 2
    assert len(diarize(conv.wave, sample_rate=16000, embedder=embedder, max_speakers=2).speakers) <= 2
    assert len(diarize(conv.wave, sample_rate=16000, embedder=embedder, min_speakers=4).speakers) >= 4


def test_single_speaker_file_and_outputs(embedder: SpeakerEmbedder, speech: Path) -> None:
    path = speech / "long" / "librispeech_1688_70s.flac"
    if not path.exists():
        path = sorted((speech / "long").glob("*.flac"))[0]
    d = diarize(path, embedder=embedder)
    assert d.speakers == ["SPEAKER_00"]
    assert d.uri == path.name.split(".")[0]
    lines = d.to_rttm().splitlines()
    assert len(lines) == len(d.turns)
    fields = lines[0].split()
    assert fields[0] == "SPEAKER"
    assert fields[1] == d.uri
    assert fields[2] == "1"
    assert fields[7] == "SPEAKER_00"
    assert fields[5:7] == ["<NA>", "<NA>"]
    assert fields[8:] == ["<NA>", "<NA>"]
    payload = json.loads(d.to_json())
    assert payload["diarization"] == payload["exclusive_diarization"]
    assert payload["diarization"][0]["speaker"] == "SPEAKER_00"
    core = pytest.importorskip("pyannote.core")
    ann = d.to_annotation()
    assert isinstance(ann, core.Annotation)
    assert ann.labels() == ["SPEAKER_00"]
    assert ann.get_timeline().duration() == pytest.approx(sum(t.end_s - t.start_s for t in d.turns))


def test_ami_far_field_speech_is_found(embedder: SpeakerEmbedder, speech: Path) -> None:
    """Real meetings: Silero with its defaults finds no speech in these; normalised, it does."""
    rttm = (speech / "ami" / "dev.rttm").read_text().splitlines()
    for uri in ("dev00", "dev01"):
        ref = [
            (float(f[3]), float(f[3]) + float(f[4]), f[7]) for f in (x.split() for x in rttm) if f[1] == uri
        ]
        d = diarize(speech / "ami" / f"{uri}.wav", embedder=embedder, num_speakers=2)
        r = der(ref, d.turns)
        assert d.speech_s > 10.0
        assert r.missed_s < 0.35 * r.total_s, r  # overlap alone is 5-9 % of it
        assert r.der < 0.75, r  # a loose sanity bound: far-field voices are close for this encoder


def test_no_speech_is_an_audio_error(embedder: SpeakerEmbedder) -> None:
    with pytest.raises(AudioError, match="no speech"):
        diarize(np.zeros(16000 * 3, np.float32), sample_rate=16000, embedder=embedder)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_speakers": 0}, "num_speakers"),
        ({"num_speakers": 2, "max_speakers": 1}, "contradicts"),
        ({"num_speakers": 2, "min_speakers": 3}, "contradicts"),
        ({"min_speakers": 3, "max_speakers": 2}, "above"),
    ],
)
def test_bad_counts_are_refused_before_any_audio(kwargs: dict[str, int], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        diarize("does-not-exist.wav", **kwargs)  # type: ignore[arg-type]


def test_config_is_validated() -> None:
    with pytest.raises(ConfigError, match="step_s"):
        DiarizationConfig(window_s=1.0, step_s=2.0)
    with pytest.raises(ConfigError, match="method"):
        DiarizationConfig(method="kmeans")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="min_speaker_share"):
        DiarizationConfig(min_speaker_share=0.7)
    with pytest.raises(dataclasses_frozen_error()):
        DiarizationConfig().window_s = 2.0  # type: ignore[misc]


def dataclasses_frozen_error() -> type[Exception]:
    import dataclasses

    return dataclasses.FrozenInstanceError


def test_cluster_windows_bounded_set_and_smoothing() -> None:
    """Synthetic windows: two directions with noise, 20,000 windows (more than are clustered)."""
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((2, 256))
    truth = (np.arange(20_000) // 500) % 2
    x = centres[truth] + 0.9 * rng.standard_normal((20_000, 256))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    labels = cluster_windows(x, np.zeros(20_000, np.int64), DiarizationConfig(max_cluster_windows=500))
    agree = max(np.mean(labels == truth), np.mean(labels == 1 - truth))
    assert labels.max() == 1
    assert agree > 0.99


def test_a_cluster_under_the_share_is_not_a_speaker() -> None:
    """Two voices of 3,000 windows each, and 120 windows of a third direction (a 2 % cluster).

    Clustered one in six, the third is 20 windows of 1,000: a speaker at the default 1 % share,
    noise at a 3 % share, and a speaker again when the caller asks for three.
    """
    rng = np.random.default_rng(4)
    centres = rng.standard_normal((3, 256))
    truth = np.concatenate([(np.arange(6000) // 300) % 2, np.full(120, 2)])
    order = np.argsort(np.concatenate([np.arange(6000), 3000 + np.arange(120) * 6 + 0.5]))
    truth = truth[order]
    x = centres[truth] + 0.9 * rng.standard_normal((truth.size, 256))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    seg = np.zeros(truth.size, np.int64)
    assert cluster_windows(x, seg, DiarizationConfig()).max() == 2
    noise = cluster_windows(x, seg, DiarizationConfig(min_speaker_share=0.03))
    assert noise.max() == 1
    assert np.all(noise[truth < 2] == truth[truth < 2]) or np.all(noise[truth < 2] == 1 - truth[truth < 2])
    assert cluster_windows(x, seg, DiarizationConfig(min_speaker_share=0.03), min_speakers=3).max() == 2


def test_duplicate_uris_are_refused() -> None:
    with pytest.raises(ConfigError, match="same uri 'talk'"):
        check_unique_uris(["a/talk.wav", "b/talk.flac"])


def test_link_files_gives_one_label_to_one_voice(
    pools: dict[str, list[Path]], embedder: SpeakerEmbedder
) -> None:
    names = sorted(pools)
    a = build_conversation(pools, names[:2], duration_s=40, seed=1)
    b = build_conversation(pools, [names[1], names[2]], duration_s=40, seed=2)
    da = diarize(a.wave, sample_rate=16000, embedder=embedder, uri="a")
    db = diarize(b.wave, sample_rate=16000, embedder=embedder, uri="b")
    linked, table = link_files([da, db])
    assert {e["speaker"] for e in table} == set(linked[0].speakers) | set(linked[1].speakers)
    assert len(table) == 3  # names[1] speaks in both files
    shared = set(linked[0].speakers) & set(linked[1].speakers)
    assert len(shared) == 1
    (label,) = shared
    entry = next(e for e in table if e["speaker"] == label)
    assert entry["files"] == ["a", "b"]
    assert len(entry["embedding"]) == 256
    # the shared label is on the shared voice's turns in each file
    for conv, d in ((a, linked[0]), (b, linked[1])):
        mapped = [(s, e, names[1] if k == label else "other") for s, e, k in d.turns]
        ref = [(s, e, k if k == names[1] else "other") for s, e, k in conv.turns]
        assert der(ref, mapped).confusion_s < 0.05 * der(ref, mapped).total_s


def test_cli_diarize_rttm_errors_and_resume(
    tmp_path: Path, pools: dict[str, list[Path]], resemblyzer_weights: Path
) -> None:
    conv = _conversation(pools, 2, 5, 16000, duration_s=30)
    wav = conv.write(tmp_path / "talk.wav")
    import soundfile as sf

    sf.write(str(tmp_path / "quiet.wav"), np.zeros(32000, np.float32), 16000)
    out = tmp_path / "turns.rttm"
    args = [
        str(wav),
        str(tmp_path / "quiet.wav"),
        "-o",
        str(out),
        "--weights",
        "resemblyzer",
        "--device",
        "cpu",
    ]
    assert main(["diarize", *args]) == 3  # the silent file fails, the job goes on
    lines = out.read_text().splitlines()
    assert lines
    assert all(x.split()[1] == "talk" for x in lines)
    assert len({x.split()[7] for x in lines}) == 2
    assert main(["diarize", *args, "--resume"]) == 3  # talk is skipped, quiet fails again
    assert out.read_text().splitlines() == lines
    js = tmp_path / "turns.json"
    assert main(["diarize", str(wav), "-o", str(js), "--weights", "resemblyzer", "--num-speakers", "2"]) == 0
    row = json.loads(js.read_text().splitlines()[0])
    assert row["uri"] == "talk"
    assert {t["speaker"] for t in row["diarization"]} == {"SPEAKER_00", "SPEAKER_01"}


@pytest.mark.parametrize(
    "extra",
    [
        ["--num-speakers", "2", "--max-speakers", "1"],
        ["--min-speakers", "3", "--max-speakers", "2"],
        ["--format", "csv"],
        ["--resume"],
    ],
)
def test_cli_usage_errors_exit_2_before_audio(
    tmp_path: Path, extra: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    # the input does not exist: reaching the audio would be exit 1 or 3, not 2
    assert main(["diarize", str(tmp_path / "missing.wav"), *extra]) == 2
    assert "error" in capsys.readouterr().err


def test_cli_count_below_one_exits_2(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["diarize", str(tmp_path / "missing.wav"), "--num-speakers", "0"])
    assert exc.value.code == 2


def test_cli_duplicate_uri_is_a_usage_error(tmp_path: Path) -> None:
    assert main(["diarize", str(tmp_path / "a" / "x.wav"), str(tmp_path / "b" / "x.flac")]) == 2


def test_diarization_is_data() -> None:
    d = Diarization("u", (), {}, 1.0, 0.0)
    assert d.to_rttm() == ""
    assert json.loads(d.to_json()) == {"diarization": [], "exclusive_diarization": []}
