"""Speakers family: diarization speed, peak memory and DER, each figure beside its target.

Usage::

    python benchmarks/speakers_diarize.py [--quick] [--durations 60,3600,14400] [--threads N]

* **Speed and memory.** A simulated conversation (4 LibriSpeech speakers of the shared speech,
  turns of 1-15 s, pauses) of each duration is written to a 16 kHz FLAC (a 30-minute
  conversation repeated for the longest), and ``diarize()`` runs on it in a fresh process, so
  the peak resident memory is its own. Targets: 1 h at >= 30x real time within 1.5 GB; 4 h in
  bounded memory (not more than 1.5x the 1 h peak).
* **Accuracy.** DER and its parts (missed, false alarm, confusion; strict, no collar) on
  simulated conversations of 2, 3 and 4 speakers at 16, 22.05 and 44.1 kHz, and on the two AMI
  excerpts (count estimated, and given).

Prints the machine first. ``--quick`` runs 60 s and 300 s only, and fewer simulations.
"""

# The report's lines are printed whole, as they read on the terminal.
# ruff: noqa: E501

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

SPEECH = Path(os.environ.get("SPEAKEREMBED_SPEECH_DIR", ROOT.parent / "shared" / "data" / "speech"))


def _write_conversation(path: Path, duration_s: float) -> list[tuple[float, float, str]]:
    """Write a 4-speaker conversation of about ``duration_s`` seconds; return its turns."""
    import soundfile as sf
    from _conversations import build_conversation, speaker_pools

    pools = speaker_pools(SPEECH)
    names = sorted(pools)[:4]
    piece = build_conversation(pools, names, duration_s=min(duration_s, 1800.0), seed=7)
    turns: list[tuple[float, float, str]] = []
    with sf.SoundFile(str(path), "w", samplerate=16000, channels=1, subtype="PCM_16") as f:
        offset = 0.0
        while offset < duration_s - 1:
            f.write(piece.wave)
            turns += [(s + offset, e + offset, k) for s, e, k in piece.turns]
            offset += piece.duration_s
    return turns


def _child(path: str, threads: int) -> None:
    """Run in a fresh process: diarize ``path``, print seconds, peak RSS and the speaker count."""
    import resource

    import torch

    torch.set_num_threads(threads)
    from speakerembed import SpeakerEmbedder, diarize

    embedder = SpeakerEmbedder("resemblyzer", device="cpu")
    t0 = time.perf_counter()
    d = diarize(path, embedder=embedder)
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(
        json.dumps(
            {
                "seconds": seconds,
                "peak_mb": peak,
                "speakers": len(d.speakers),
                "turns": [list(t) for t in d.turns],
            }
        )
    )


def _speed(durations: list[float], threads: int) -> dict[float, dict[str, float]]:
    from speakerembed.analysis.scoring import der

    out: dict[float, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for duration in durations:
            path = Path(tmp) / f"conv_{int(duration)}.flac"
            ref = _write_conversation(path, duration)
            proc = subprocess.run(
                [sys.executable, __file__, "--child", str(path), "--threads", str(threads)],
                capture_output=True,
                text=True,
                check=True,
            )
            row = json.loads(proc.stdout.strip().splitlines()[-1])
            import soundfile as sf

            audio_s = sf.info(str(path)).duration
            r = der(ref, [tuple(t) for t in row["turns"]])
            out[duration] = {
                "audio_s": audio_s,
                "seconds": row["seconds"],
                "x_real_time": audio_s / row["seconds"],
                "peak_mb": row["peak_mb"],
                "speakers": row["speakers"],
                "der": r.der,
            }
            print(
                f"  {audio_s / 60:7.1f} min: {audio_s / row['seconds']:6.1f}x real time "
                f"({row['seconds']:.1f} s), peak RSS {row['peak_mb']:.0f} MB, "
                f"{row['speakers']} speakers (4 true), DER {r.der:.3f}",
                flush=True,
            )
    return out


def _accuracy(quick: bool) -> None:
    import numpy as np
    from _conversations import build_conversation, speaker_pools

    from speakerembed import SpeakerEmbedder, diarize
    from speakerembed.analysis.scoring import der

    embedder = SpeakerEmbedder("resemblyzer", device="cpu")
    pools = speaker_pools(SPEECH)
    names = sorted(pools)
    print(
        "\nDER on simulated conversations (strict: no collar, overlap kept; reference = Silero on the clean turns):"
    )
    print("  set              est  DER    missed  false alarm  confusion")
    seeds = range(2) if quick else range(4)
    for n in (2, 3, 4):
        parts = []
        for seed in seeds:
            rate = (16000, 22050, 44100)[seed % 3]
            rng = np.random.default_rng(1000 + 10 * n + seed)
            spk = [str(s) for s in rng.choice(names, n, replace=False)]
            conv = build_conversation(pools, spk, duration_s=90, seed=seed, sample_rate=rate)
            d = diarize(conv.wave, sample_rate=rate, embedder=embedder)
            r = der(conv.turns, d.turns)
            parts.append((r, len(d.speakers)))
            print(
                f"  sim {n} spk {rate:5d} Hz {len(d.speakers):3d}  {r.der:.3f}  {r.missed_s / r.total_s:.3f}   "
                f"{r.false_alarm_s / r.total_s:.3f}        {r.confusion_s / r.total_s:.3f}"
            )
        tot = sum(p[0].total_s for p in parts)
        agg = [
            sum(getattr(p[0], k) for p in parts) / tot for k in ("missed_s", "false_alarm_s", "confusion_s")
        ]
        right = sum(p[1] == n for p in parts)
        print(
            f"  sim {n} spk, all    {right}/{len(parts)} counts right; DER {sum(agg):.3f} = {agg[0]:.3f} + {agg[1]:.3f} + {agg[2]:.3f}"
        )
    print(
        "\nDER on the real AMI excerpts (far-field meeting, 5-9 % overlap; pyannote community-1: 17.0 % IHM, 19.9 % SDM on full AMI):"
    )
    rttm = (SPEECH / "ami" / "dev.rttm").read_text().splitlines()
    for uri in ("dev00", "dev01"):
        ref = [
            (float(f[3]), float(f[3]) + float(f[4]), f[7]) for f in (x.split() for x in rttm) if f[1] == uri
        ]
        for k in (None, 2):
            d = diarize(SPEECH / "ami" / f"{uri}.wav", embedder=embedder, num_speakers=k)
            r = der(ref, d.turns)
            ov = der(ref, d.turns, skip_overlap=True)
            print(
                f"  {uri} ({'count given' if k else 'estimated'}): {len(d.speakers)} speakers, DER {r.der:.3f} = "
                f"missed {r.missed_s / r.total_s:.3f} + false alarm {r.false_alarm_s / r.total_s:.3f} + "
                f"confusion {r.confusion_s / r.total_s:.3f}; without overlap {ov.der:.3f}"
            )


def main() -> int:
    """Run the benchmark and print every figure beside its target."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="60 s and 300 s only, fewer simulations")
    parser.add_argument("--durations", default=None, help="comma-separated seconds (default 60,3600,14400)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--no-accuracy", action="store_true", help="skip the DER sets")
    opts = parser.parse_args()
    if opts.child:
        _child(opts.child, opts.threads)
        return 0
    from benchmarks import _harness as h

    print("machine:", h.machine_line(h.machine_info(opts.threads)), f"load average {os.getloadavg()}")
    if opts.durations:
        durations = [float(x) for x in opts.durations.split(",")]
    else:
        durations = [60.0, 300.0] if opts.quick else [60.0, 3600.0, 14400.0]
    print(
        "diarize() speed and peak memory (4-speaker simulated conversation, 16 kHz FLAC, resemblyzer weights):"
    )
    speed = _speed(durations, opts.threads)
    if 3600.0 in speed:
        s = speed[3600.0]
        ok = s["x_real_time"] >= 30 and s["peak_mb"] <= 1536
        print(
            f"  1 h: {s['x_real_time']:.1f}x real time (target >= 30x), {s['peak_mb']:.0f} MB (target <= 1536 MB): {'met' if ok else 'NOT met'}"
        )
    if 3600.0 in speed and 14400.0 in speed:
        ratio = speed[14400.0]["peak_mb"] / speed[3600.0]["peak_mb"]
        print(
            f"  4 h peak / 1 h peak: {ratio:.2f} (target: bounded, <= 1.5): {'met' if ratio <= 1.5 else 'NOT met'}"
        )
    if not opts.no_accuracy:
        _accuracy(opts.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
