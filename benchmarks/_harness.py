"""The harness every benchmark family shares.

* **The machine**: CPU model and the flags that decide precision (avx2, avx512f, avx512_bf16,
  amx_bf16), torch version and CPU capability, threads, cores, load average
  (:func:`machine_info`).
* **Workers**: each configuration runs in a fresh subprocess (:func:`run_worker`), so that its
  peak RSS is its own and its torch threads are set before torch starts; a worker may run under
  another interpreter (another torch). ``python -m benchmarks._harness MODULE:FUNCTION JSON``
  is the worker entry point.
* **Timing**: medians of N runs after a warm-up; configurations compared with each other are
  timed in one process, *alternating* (:func:`rotate`), so that the load of a shared machine hits
  both sides of a ratio alike.
* **Data**: held-out-style real speech from ``../shared/data/speech`` (LibriSpeech test-other,
  VCTK, LJ Speech), resampled with libsoxr HQ to the rate under test (:func:`load_set`).
* **Output**: every figure is a :class:`Figure`, printed as ``figure | measured | limit |
  target | verdict | machine``; each family writes ``benchmarks/results/<family>.json``, and
  :func:`write_summary` writes ``summary.md`` (with verdicts, for developers) and
  ``expect.rst`` (what users should expect, no verdicts; included by docs/performance.rst).

Nothing here imports speakerembed or torch at module level: the workers also run under other
interpreters.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SPEECH = Path(os.environ.get("SPEAKEREMBED_SPEECH_DIR", ROOT.parent / "shared" / "data" / "speech"))
RESULTS = ROOT / "benchmarks" / "results"
RATES = (16_000, 44_100, 48_000)
#: CPU flags that mean native bfloat16 arithmetic (read from /proc/cpuinfo).
BF16_FLAGS = ("avx512_bf16", "amx_bf16")
_SHOWN_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16")

__all__ = [
    "BF16_FLAGS",
    "RATES",
    "RESULTS",
    "ROOT",
    "SPEECH",
    "FamilyResult",
    "Figure",
    "capture_batches",
    "check_ratio",
    "clip_10s",
    "cpu_flags",
    "encoder_alone",
    "eval_files",
    "family_main",
    "limit_of",
    "load_set",
    "machine_info",
    "median_time",
    "peak_rss_mb",
    "rotate",
    "run_worker",
    "write_summary",
]


# --------------------------------------------------------------------------------------------
# The machine
# --------------------------------------------------------------------------------------------


def cpu_flags() -> set[str]:
    """The CPU flags of /proc/cpuinfo (empty where there is none)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_model() -> str:
    """The CPU's model name."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine_info(threads: int) -> dict[str, Any]:
    """What the figures were measured on."""
    import torch

    flags = cpu_flags()
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "flags": [f for f in _SHOWN_FLAGS if f in flags],
        "native_bf16": any(f in flags for f in BF16_FLAGS),
        "torch": torch.__version__,
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": threads,
        "python": platform.python_version(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "load_average": list(os.getloadavg()),
    }


def machine_line(m: dict[str, Any]) -> str:
    """One line naming the machine, for tables."""
    flags = ",".join(m.get("flags", [])) or "no AVX"
    gpu = f", {m['cuda']}" if m.get("cuda") else ""
    threads = f"{m['threads']} torch thread{'' if m['threads'] == 1 else 's'} per worker"
    return f"{m['cpu']} ({m['cores']} cores; {flags}){gpu}, torch {m['torch']}, {threads}"


# --------------------------------------------------------------------------------------------
# Timing and memory
# --------------------------------------------------------------------------------------------


def peak_rss_mb() -> float:
    """Peak resident set size of this process, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def median_time(fn: Callable[[], object], runs: int, warmup: int = 1) -> tuple[float, list[float]]:
    """Median wall time of ``fn`` over ``runs`` runs after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


def rotate(fns: dict[str, Callable[[], object]], runs: int, warmup: int = 1) -> dict[str, list[float]]:
    """Time several functions in turn, ``runs`` rounds, the order reversed every other round.

    Interleaving puts both sides of a ratio under the same load on a shared machine.
    """
    names = list(fns)
    for _ in range(warmup):
        for name in names:
            fns[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(runs):
        for name in names if r % 2 == 0 else names[::-1]:
            t0 = time.perf_counter()
            fns[name]()
            times[name].append(time.perf_counter() - t0)
    return times


def capture_batches(embedder: Any, fn: Callable[[], object]) -> list[Any]:
    """The window batches ``embedder`` sends to its encoder while ``fn`` runs.

    Replaying them through ``embedder.encoder`` costs exactly the encoder's share of the work:
    the limit any pipeline in front of it can reach.
    """
    real = embedder.engine.encoder
    batches: list[Any] = []

    class _Spy:
        device = real.device
        concurrent_calls = getattr(real, "concurrent_calls", False)

        def __call__(self, windows: Any) -> Any:
            batches.append(windows.clone())
            return real(windows)

        def embed_concurrently(self, windows: Any) -> Any:  # the encoder streams' call
            batches.append(windows.clone())  # list.append is atomic
            return real.embed_concurrently(windows)

    embedder.engine.encoder = _Spy()
    try:
        fn()
    finally:
        embedder.engine.encoder = real
    return batches


def encoder_alone(embedder: Any, batches: Sequence[Any]) -> dict[str, Callable[[], object]]:
    """The two ways to run the encoder alone on ``batches``; the faster is the limit.

    ``"encoder"``: one call per batch on all of torch's threads. ``"encoder_streams"``: the
    batches shared between one-thread streams, one per torch thread
    (:mod:`speakerembed._engine.streams`), where the embedder would run them so (a CPU of two cores
    or more); on 2 and 16 cores the LSTM runs faster so than as one call on every thread.
    """
    from speakerembed._engine.streams import encode_in_order

    enc = embedder.encoder
    fns: dict[str, Callable[[], object]] = {"encoder": lambda: [enc(b) for b in batches]}
    streams = embedder.engine.schedule(len(batches)).streams
    if streams > 1:

        def streamed() -> None:
            for _ in encode_in_order(
                lambda b: (enc.embed_concurrently(b), 0.0), ((0, b) for b in batches), streams
            ):
                pass

        fns["encoder_streams"] = streamed
    return fns


def preparation_alone(embedder: Any, wavs: Sequence[Any], rate: int) -> Callable[[], object]:
    """The pipeline's work in front of the encoder (load, resample, trim, mel) on one thread.

    What every input costs before its windows reach the encoder, on one core and one torch
    thread: with :func:`ceiling_share`, how close to the encoder's limit a pipeline on the same
    cores can get at all.
    """
    from speakerembed._engine.prefetch import torch_threads

    pipe, engine = embedder.pipeline, embedder.engine

    def prepare() -> None:
        with torch_threads(1):
            for i, w in enumerate(wavs):
                engine.prepare(i, w, rate, pipe)

    return prepare


def ceiling_share(limit_s: float, prepare_s: float, cores: int) -> float:
    """The most of the encoder's limit a pipeline can reach when both share ``cores`` cores.

    The limit keeps every core busy for ``limit_s``; preparation needs ``prepare_s`` of CPU
    time on top (:func:`preparation_alone`), which at best spreads over every core. The
    pipeline then takes at least ``limit_s + prepare_s / cores``.
    """
    return limit_s / (limit_s + prepare_s / max(1, cores))


def limit_of(median_s: dict[str, float], prefix: str = "encoder") -> tuple[str, float]:
    """The fastest way to run the encoder alone: ``(name, median seconds)``."""
    name = min((k for k in median_s if k.startswith(prefix)), key=lambda k: median_s[k])
    return name, median_s[name]


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------


def eval_files(max_files: int | None = None) -> list[Path]:
    """Held-out-style real speech: LibriSpeech test-other, VCTK (48 kHz), LJ Speech (22.05 kHz).

    Several corpora, rates and recording conditions, none of them tuned on.
    """
    files = sorted((SPEECH / "librispeech").glob("*/*.flac"))
    files += sorted((SPEECH / "vctk48k").glob("*.wav"))
    files += sorted((SPEECH / "ljspeech").glob("*.wav"))
    if not files:
        raise SystemExit(f"real speech not found under {SPEECH}; set SPEAKEREMBED_SPEECH_DIR")
    if not max_files or max_files >= len(files):
        return files
    step = len(files) / max_files  # spread over the corpora, not only the first one
    return [files[int(i * step)] for i in range(max_files)]


def load_set(files: Sequence[Path], rate: int) -> list[Any]:
    """Decode files to mono float32 and resample each to ``rate`` with libsoxr HQ."""
    import numpy as np
    import soundfile as sf
    import soxr

    wavs = []
    for f in files:
        x, sr = sf.read(str(f), dtype="float32", always_2d=True)
        x = x.mean(axis=1)
        if rate != sr:
            x = soxr.resample(x, sr, rate, quality="HQ")
        wavs.append(np.ascontiguousarray(x, dtype=np.float32))
    return wavs


def clip_10s(rate: int) -> Any:
    """A 10 s clip of real speech at ``rate`` (the usual TTS reference clip)."""
    import soundfile as sf

    for f in sorted((SPEECH / "librispeech").glob("*/*.flac")):
        if sf.info(str(f)).duration >= 10.0:
            x = load_set([f], rate)[0]
            return x[: 10 * rate]
    raise SystemExit("no utterance of 10 s or more in the speech data")


# --------------------------------------------------------------------------------------------
# Workers
# --------------------------------------------------------------------------------------------


def run_worker(
    target: str,
    cfg: dict[str, Any],
    *,
    python: str | None = None,
    threads: int = 2,
    timeout: float = 1800,
) -> dict[str, Any]:
    """Run ``module:function(cfg)`` in a fresh interpreter; returns its dict, or ``{"error": ...}``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = str(threads)
    env["PYTHONWARNINGS"] = "ignore"
    cfg = {**cfg, "threads": threads}
    shown = {k: v for k, v in cfg.items() if k not in ("threads", "runs")}
    print(f"  {target.split(':')[-1]} {json.dumps(shown)} ...", file=sys.stderr, flush=True)
    try:
        proc = subprocess.run(
            [python or sys.executable, "-m", "benchmarks._harness", target, json.dumps(cfg)],
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
            cwd=str(ROOT),
        )
    except subprocess.TimeoutExpired:
        return {"error": f"worker timed out after {timeout:.0f} s"}
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return dict(json.loads(line[len("RESULT ") :]))
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
    return {"error": f"worker failed (exit {proc.returncode}): " + " | ".join(tail)}


def _worker_main(target: str, spec: str) -> None:
    cfg = json.loads(spec)
    import torch

    torch.set_num_threads(int(cfg.get("threads", 2)))
    module, function = target.split(":")
    result = getattr(importlib.import_module(module), function)(cfg)
    result.setdefault("torch", torch.__version__)
    result["threads"] = torch.get_num_threads()
    result["peak_rss_mb"] = peak_rss_mb()
    print("RESULT " + json.dumps(result), flush=True)


# --------------------------------------------------------------------------------------------
# Figures and reports
# --------------------------------------------------------------------------------------------


@dataclass
class Figure:
    """One measured figure beside its limit."""

    name: str
    measured: str
    limit: str = ""
    target: str = ""
    verdict: str = "reported"
    value: float | None = None


@dataclass
class FamilyResult:
    """What a family measured: its figures, the raw numbers, and the machine."""

    family: str
    figures: list[Figure]
    data: dict[str, Any]
    machine: dict[str, Any]
    notes: list[str] = field(default_factory=list)


def check_ratio(value: float | None, target: float, higher: bool = True) -> str:
    """``pass`` or ``FAIL`` against a target; ``not measured`` for a missing value."""
    if value is None or value != value:
        return "not measured"
    return "pass" if (value >= target if higher else value <= target) else "FAIL"


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(c.replace("|", "/") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _rst_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    def cell(text: str) -> str:
        # "--" would render as a dash (smart quotes); an escaped hyphen keeps "--help".
        return text.replace("--", "-\\-") if text else ".."

    out = [".. list-table::", "   :header-rows: 1", ""]
    for row in (header, *rows):
        out.append("   * - " + cell(row[0]))
        out += ["     - " + cell(c) for c in row[1:]]
    return "\n".join(out)


def print_figures(res: FamilyResult) -> None:
    """Print a family's figures: figure | measured | limit | target | verdict | machine."""
    header = ("figure", "measured", "limit (same run)", "target", "verdict")
    rows = [(f.name, f.measured, f.limit, f.target, f.verdict) for f in res.figures]
    print(f"\n## {res.family} — {machine_line(res.machine)}\n")
    print(_md_table(header, rows))
    for note in res.notes:
        print(f"\n{note}")


def write_family(res: FamilyResult) -> Path:
    """Write ``benchmarks/results/<family>.json``."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{res.family}.json"
    path.write_text(json.dumps(asdict(res), indent=2) + "\n")
    return path


def write_summary(results: Sequence[FamilyResult]) -> None:
    """``summary.md`` (every figure, with verdicts) and ``expect.rst`` (for the docs)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    md = ["# speakerembed benchmarks", ""]
    rst = []
    for res in results:
        m = res.machine
        md += [
            f"## {res.family}",
            "",
            f"Machine: {machine_line(m)}; measured {m['date']}, "
            f"load average at start {m['load_average'][0]:.2f}.",
            "",
        ]
        md.append(
            _md_table(
                ("figure", "measured", "limit (same run)", "target", "verdict"),
                [(f.name, f.measured, f.limit, f.target, f.verdict) for f in res.figures],
            )
        )
        md += [""] + [f"{n}" for n in res.notes] + ([""] if res.notes else [])
        shown = [f for f in res.figures if not f.verdict.startswith("skipped")]
        if res.family in ("throughput", "latency", "memory") and shown:
            rst += [f"**{res.family.capitalize()}**", ""]
            rst.append(
                _rst_table(
                    ("figure", "measured", "limit (same run)"), [(f.name, f.measured, f.limit) for f in shown]
                )
            )
            rst.append("")
    if results:
        rst.insert(0, f"Measured on {machine_line(results[0].machine)}, {results[0].machine['date'][:10]}.\n")
    (RESULTS / "summary.md").write_text("\n".join(md) + "\n")
    (RESULTS / "expect.rst").write_text("\n".join(rst) + "\n")


def common_args(parser: argparse.ArgumentParser) -> None:
    """Options every family takes."""
    parser.add_argument("--runs", type=int, default=None, help="timed runs per configuration")
    parser.add_argument("--threads", type=int, default=2, help="torch threads per worker (default 2)")
    parser.add_argument("--quick", action="store_true", help="fewer runs and less data: a smoke test")
    parser.add_argument("--check", action="store_true", help="exit 1 when a figure misses its target")


def family_main(
    family: str,
    run: Callable[[argparse.Namespace], FamilyResult],
    add_args: Callable[[argparse.ArgumentParser], None] | None = None,
    doc: str | None = None,
) -> int:
    """Command-line entry point of one family: run it, print and write its figures."""
    parser = argparse.ArgumentParser(
        prog=f"python -m benchmarks.{family}",
        description=(doc or "").split("\n\n")[0],
    )
    common_args(parser)
    if add_args is not None:
        add_args(parser)
    opts = parser.parse_args()
    res = run(opts)
    print_figures(res)
    print(f"\nwrote {write_family(res)}", file=sys.stderr)
    return 1 if opts.check and any(f.verdict == "FAIL" for f in res.figures) else 0


def bootstrap() -> None:
    """Let ``python benchmarks/<family>.py`` import the ``benchmarks`` package."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))


if __name__ == "__main__":
    bootstrap()
    _worker_main(sys.argv[1], sys.argv[2])
