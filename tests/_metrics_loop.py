"""Embed audio in a loop and serve speakerembed's Prometheus metrics on 127.0.0.1.

Usage::

    python tests/_metrics_loop.py [AUDIO ...] [--port 9100] [--seconds 0] [--interval 0.1]

``AUDIO`` is any number of audio files or folders. Without it, the script uses the WAV files in
``examples/audio/``, or, when there are none, a few generated tones. Each round embeds every
file on its own (``embed_utterances``) and then all of them as one speaker (``embed_speaker``);
files that cannot be embedded are skipped and counted as errors.

Then open http://127.0.0.1:9100/metrics, or point a Prometheus server at it::

    scrape_configs:
      - job_name: speakerembed
        scrape_interval: 5s
        static_configs: [{targets: ["127.0.0.1:9100"]}]

The metrics go into a registry of this program's own (``CollectorRegistry()``), which is what
``start_http_server`` serves; the global ``prometheus_client.REGISTRY`` is left alone.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, start_http_server

from speakerembed import SpeakerEmbedder

HERE = Path(__file__).resolve().parent
AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".mp3"}


def tones(n: int = 4, sample_rate: int = 16000) -> list[np.ndarray]:
    """Speech-like test signals: harmonic tones with a syllable-rate envelope, 1.5 to 3 s."""
    out = []
    for i in range(n):
        t = np.arange(int((1.5 + 0.5 * i) * sample_rate)) / sample_rate
        f0 = 110.0 + 40.0 * i
        wave = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 6))
        envelope = 0.55 + 0.45 * np.sin(2 * np.pi * (3.0 + i) * t)
        out.append((0.1 * wave * envelope).astype(np.float32))
    return out


def find_audio(paths: list[str]) -> list[Any]:
    """The files named (folders expanded), else examples/audio/*.wav, else generated tones."""
    files: list[Path] = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES)
        else:
            files.append(path)  # a missing file is reported by speakerembed, and counted
    if paths:
        if not files:
            raise SystemExit(f"no audio files in {', '.join(paths)}")
        return files
    default = sorted((HERE / "audio").glob("*.wav"))
    return list(default) if default else tones()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("audio", nargs="*", help="audio files or folders (default: examples/audio, or tones)")
    parser.add_argument(
        "--port", type=int, default=9100, help="port for /metrics on 127.0.0.1 (default 9100)"
    )
    parser.add_argument(
        "--seconds", type=float, default=0.0, help="stop after this long (default: run until killed)"
    )
    parser.add_argument("--interval", type=float, default=0.1, help="pause between rounds, in seconds")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or mps (default cpu)")
    args = parser.parse_args(argv)

    inputs = find_audio(args.audio)
    registry = CollectorRegistry()
    embedder = SpeakerEmbedder("resemblyzer", device=args.device, registry=registry)
    start_http_server(args.port, addr="127.0.0.1", registry=registry)
    print(
        f"serving http://127.0.0.1:{args.port}/metrics; embedding {len(inputs)} inputs per round", flush=True
    )

    stop = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    deadline = time.monotonic() + args.seconds if args.seconds > 0 else float("inf")
    rounds = 0
    while not stop and time.monotonic() < deadline:
        for item in inputs:
            embedder.embed_utterances([item], sample_rate=16000, errors="skip")
        result = embedder.embed_utterances(inputs, sample_rate=16000, errors="skip")
        if result.embeddings.shape[0] > 0:
            good = [inputs[int(i)] for i in result.indices]
            embedder.embed_speaker(good, sample_rate=16000)
        rounds += 1
        time.sleep(args.interval)
    print(f"stopped after {rounds} rounds", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
