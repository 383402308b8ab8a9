"""What recording Prometheus metrics costs: the LibriSpeech set embedded with and without a registry.

Usage::

    python benchmarks/bench_metrics.py [--runs 5] [--per-speaker 10] [--device cpu] [--check]

It embeds the LibriSpeech test-other set of ``../shared/data/speech`` (6 speakers, 10 utterances
each, 2-20 s) with one embedder that has no registry and one that records into a
``CollectorRegistry``, alternating the two, ``--runs`` times each after a warm-up, and prints:

* the wall-clock overhead: median time with a registry over median time without, minus one;
* the time spent inside the recorder, measured by timing every hook call during one more run,
  as a share of the median time without a registry. This one is not drowned by the noise of a
  shared machine, and it is an upper bound (the timing adds its own cost);
* the cost of one hook call.

The target is at most 2%. ``--check`` exits with status 1 when the time inside the recorder is
above it (the wall-clock figure is too noisy on a shared machine to gate on).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SPEECH = Path(os.environ.get("SPEAKEREMBED_SPEECH_DIR", ROOT.parent / "shared" / "data" / "speech"))


class TimedRecorder:
    """Forwards every hook to a recorder and adds up the time each call takes."""

    HOOKS = ("stage", "call", "in_progress", "utterance", "error", "batch", "speaker", "model_loaded")

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.enabled = True
        self.seconds = 0.0
        self.calls: Counter[str] = Counter()
        for name in self.HOOKS:
            setattr(self, name, self._timed(name, getattr(inner, name)))

    def _timed(self, name: str, fn: Any) -> Any:
        clock = time.perf_counter

        def hook(*args: Any, **kwargs: Any) -> None:
            t0 = clock()
            fn(*args, **kwargs)
            self.seconds += clock() - t0
            self.calls[name] += 1

        return hook


def load_set(per_speaker: int) -> list[list[Path]]:
    folder = SPEECH / "librispeech"
    if not folder.is_dir():
        sys.exit(f"LibriSpeech not found at {folder}; set SPEAKEREMBED_SPEECH_DIR")
    groups = [sorted(d.glob("*.flac"))[:per_speaker] for d in sorted(folder.iterdir()) if d.is_dir()]
    return [g for g in groups if g]


def run_once(embedder: Any, groups: list[list[Path]]) -> float:
    t0 = time.perf_counter()
    for files in groups:
        embedder.embed_utterances(files)
    return time.perf_counter() - t0


def hook_cost(recorder: Any, n: int = 100_000) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        recorder.stage("mel", "cpu", 0.01)
    return (time.perf_counter() - t0) / n


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--runs", type=int, default=5, help="timed runs with and without a registry (default 5)"
    )
    parser.add_argument("--per-speaker", type=int, default=10, help="utterances per speaker (default all 10)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch CPU threads (default: torch's choice); 1 is steadier on a busy machine",
    )
    parser.add_argument("--check", action="store_true", help="exit 1 if the recorder takes more than 2%%")
    parser.add_argument("--json", action="store_true", help="also print the figures as one RESULT line")
    args = parser.parse_args()

    import torch
    from prometheus_client import CollectorRegistry

    from speakerembed import SpeakerEmbedder

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    groups = load_set(args.per_speaker)
    n_files = sum(len(g) for g in groups)
    import soundfile as sf

    audio_s = sum(sf.info(str(p)).duration for g in groups for p in g)
    registry = CollectorRegistry()
    plain = SpeakerEmbedder("resemblyzer", device=args.device)
    metered = SpeakerEmbedder("resemblyzer", device=args.device, registry=registry)
    print(
        f"{n_files} LibriSpeech utterances, {audio_s:.0f} s of audio, device {plain.device}, "
        f"{torch.get_num_threads()} torch threads, {args.runs} runs each"
    )

    run_once(plain, groups[:1])  # warm-up: caches, allocator, page cache
    run_once(metered, groups[:1])
    without: list[float] = []
    with_registry: list[float] = []
    for i in range(args.runs):
        # Alternate, and swap the order every run, so drift in the machine's load hits both.
        order = [(plain, without), (metered, with_registry)]
        for embedder, times in order if i % 2 == 0 else order[::-1]:
            times.append(run_once(embedder, groups))
        print(
            f"  run {i + 1}: without {without[-1]:.2f} s, with registry {with_registry[-1]:.2f} s", flush=True
        )

    timed = TimedRecorder(metered._recorder)
    metered._recorder = timed
    run_once(metered, groups)
    metered._recorder = timed.inner

    base = statistics.median(without)
    wall = statistics.median(with_registry) / base - 1.0
    inside = timed.seconds / base
    per_hook = hook_cost(timed.inner)
    print(f"median without registry: {base:.3f} s  (min {min(without):.3f}, max {max(without):.3f})")
    print(
        f"median with registry:    {statistics.median(with_registry):.3f} s  "
        f"(min {min(with_registry):.3f}, max {max(with_registry):.3f})"
    )
    print(f"wall-clock overhead (median vs median): {wall * 100:+.2f}%")
    print(
        f"time inside the recorder: {timed.seconds * 1e3:.2f} ms over {sum(timed.calls.values())} hook calls "
        f"= {inside * 100:.4f}% of the embedding time"
    )
    print(f"one stage() hook: {per_hook * 1e6:.2f} us")
    print("hook calls per run:", dict(sorted(timed.calls.items())))
    utterances = registry.get_sample_value("speakerembed_utterances_total", {"outcome": "success"})
    print(f"utterances recorded: {utterances:.0f} (expected {n_files * (args.runs + 1) + len(groups[0])})")
    if args.json:
        figures = {"wall_overhead": wall, "inside_share": inside, "hook_us": per_hook * 1e6, "base_s": base}
        print("RESULT " + json.dumps(figures))
    if args.check and inside > 0.02:
        print("FAIL: recording takes more than 2% of the embedding time")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
