"""speakerembed benchmarks: throughput, per-stage time, latency, memory, start-up, bf16, order.

Run everything (``nox -s bench`` runs this file)::

    python benchmarks/run.py \\
        --chatterbox-python /work/venvs/cb/bin/python \\
        --resemblyzer-python /work/venvs/bench/bin/python

Results go to ``benchmarks/results/results.json``, ``benchmarks/results/summary.md`` (the
Markdown table) and ``benchmarks/results/summary.rst`` (the same table, included by
``docs/performance.rst``), and the order plot to ``docs/_static/order.png``.

Every configuration runs in its own subprocess, so that its peak RSS is its own, with
``--threads`` torch threads (default 2), a warm-up and ``--runs`` timed runs; medians are
reported. Competitors run in the same invocation, with the same weights (Resemblyzer's
``pretrained.pt``, which ``weights="resemblyzer"`` loads), on the same samples:

* Chatterbox's ``VoiceEncoder.embeds_from_wavs`` (resampy ``kaiser_fast``), in the interpreter
  given by ``--chatterbox-python`` or ``$SPEAKEREMBED_BENCH_CHATTERBOX_PYTHON`` (chatterbox-tts
  pins torch 2.6, so it lives in its own environment; ``PYTHONPATH`` points at this checkout
  so that the worker can find the weights file);
* Resemblyzer's ``preprocess_wav`` + ``embed_utterance``, in ``--resemblyzer-python`` or
  ``$SPEAKEREMBED_BENCH_RESEMBLYZER_PYTHON``. Resemblyzer imports ``webrtcvad``, whose import
  needs ``pkg_resources``, which setuptools >= 81 no longer ships: use an environment with
  ``setuptools<81`` and ``webrtcvad`` (or ``webrtcvad-wheels``);
* the encoder alone on precomputed mel windows: the limit.

Data: the 60 LibriSpeech utterances (447 s) of ``../shared/data/speech`` at 16 kHz, resampled
inside the benchmark (libsoxr HQ) to 44.1 and 48 kHz; the ARCTIC utterances for the EER trials;
and a one-hour 48 kHz WAV built in a temporary directory from the ``long/`` files.

``--quick`` runs fewer repetitions and a 10-minute long file, for a smoke test. Numbers from a
busy machine are noisy: rerun on a quiet one for figures to quote.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SPEECH = Path(os.environ.get("SPEAKEREMBED_SPEECH_DIR", ROOT.parent / "shared" / "data" / "speech"))
RESULTS = ROOT / "benchmarks" / "results"
ORDER_PNG = ROOT / "docs" / "_static" / "order.png"
RATES = (16_000, 44_100, 48_000)

# --------------------------------------------------------------------------------------------
# Helpers shared by workers (they must run under the chatterbox interpreter too: numpy 1.26,
# torch 2.6; nothing here imports speakerembed at module level).
# --------------------------------------------------------------------------------------------


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _median_time(fn: Any, runs: int, warmup: int = 1) -> tuple[float, list[float]]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


def _librispeech_files() -> list[Path]:
    return sorted((SPEECH / "librispeech").glob("*/*.flac"))


def _arctic_files() -> list[Path]:
    return sorted((SPEECH / "arctic").glob("*.wav"))


def _load_set(files: list[Path], rate: int) -> tuple[list[Any], list[str]]:
    """Decode files (all 16 kHz) and resample them to ``rate`` with libsoxr HQ."""
    import numpy as np
    import soundfile as sf
    import soxr

    wavs, labels = [], []
    for f in files:
        x, sr = sf.read(str(f), dtype="float32")
        if rate != sr:
            x = soxr.resample(x, sr, rate, quality="HQ").astype(np.float32)
        wavs.append(np.ascontiguousarray(x, dtype=np.float32))
        labels.append(f.parent.name if f.parent.name != "arctic" else f.name.split("_")[3])
    return wavs, labels


def _clip_10s(rate: int) -> Any:
    """A 10 s clip of real speech at ``rate`` (the usual TTS reference clip)."""
    import numpy as np
    import soundfile as sf
    import soxr

    for f in _librispeech_files():
        x, sr = sf.read(str(f), dtype="float32")
        if x.shape[0] >= 10 * sr:
            x = x[: 10 * sr]
            return np.ascontiguousarray(soxr.resample(x, sr, rate, quality="HQ"), dtype=np.float32)
    raise RuntimeError("no utterance of 10 s or more")


def _resemblyzer_state() -> dict[str, Any]:
    """Resemblyzer's pretrained.pt with Chatterbox's parameter names."""
    sys.path.insert(0, str(ROOT))
    from speakerembed.encoder import adapt_state_dict
    from speakerembed.weights import load_state_dict, resolve_weights

    info = resolve_weights("resemblyzer")
    return adapt_state_dict(load_state_dict(info.path))


# --------------------------------------------------------------------------------------------
# Workers: one configuration each, in a fresh process. Each returns a JSON-able dict.
# --------------------------------------------------------------------------------------------


def worker_speakerembed(cfg: dict[str, Any]) -> dict[str, Any]:
    """speakerembed end to end on arrays, with a per-stage breakdown."""
    import numpy as np
    import soundfile as sf
    import torch

    from speakerembed import Pipeline, SpeakerEmbedder
    from speakerembed.mel import melspectrogram
    from speakerembed.resample import resample
    from speakerembed.trim import trim_silence
    from speakerembed.windows import partial_windows

    rate, runs = cfg["rate"], cfg["runs"]
    pipe = Pipeline(order=cfg.get("order", "resample_trim"))
    emb = SpeakerEmbedder("resemblyzer", device="cpu", precision=cfg.get("precision", "fp32"), pipeline=pipe)
    SpeakerEmbedder._prefetch_depth = cfg.get("prefetch", SpeakerEmbedder._prefetch_depth)
    wavs, labels = _load_set(_librispeech_files(), rate)
    audio_s = sum(w.shape[0] for w in wavs) / rate
    emb.embed_utterances(wavs[:4], sample_rate=rate)
    med, times = _median_time(lambda: emb.embed_utterances(wavs, sample_rate=rate), runs)
    out: dict[str, Any] = {"audio_s": audio_s, "seconds": med, "times": times, "xrt": audio_s / med}

    # Per-stage breakdown, each stage alone, sequentially (the end-to-end run overlaps them).
    stages = dict.fromkeys(("decode", "resample", "trim", "mel", "encode"), 0.0)
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i, w in enumerate(wavs):
            p = Path(tmp) / f"{i}.wav"
            sf.write(str(p), w, rate, subtype="PCM_16")
            paths.append(p)
        t0 = time.perf_counter()
        for p in paths:
            sf.read(str(p), dtype="float32")
        stages["decode"] = time.perf_counter() - t0
    windows = []
    for w in wavs:
        x, sr = w, rate
        for step in ("resample", "trim") if pipe.order == "resample_trim" else ("trim", "resample"):
            t0 = time.perf_counter()
            if step == "resample":
                x, sr = resample(x, sr, 16_000, pipe.resampler), 16_000
            else:
                frame, hop = pipe.trim_frames_at(sr)
                x, _ = trim_silence(x, pipe.top_db or 20, frame, hop)
            stages[step] += time.perf_counter() - t0
        t0 = time.perf_counter()
        with torch.inference_mode():
            mel = melspectrogram(torch.from_numpy(np.ascontiguousarray(x)))
        stages["mel"] += time.perf_counter() - t0
        windows.append(partial_windows(mel, pipe.frame_step, pipe.min_coverage))
    batch = torch.cat(windows)
    cap = pipe.max_windows_per_batch

    def encode() -> None:
        for i in range(0, batch.shape[0], cap):
            emb.encoder(batch[i : i + cap])

    stages["encode"], _ = _median_time(encode, max(1, runs // 2))
    out["stages"] = stages
    out["n_windows"] = int(batch.shape[0])
    if cfg.get("latency"):
        clip = _clip_10s(rate)
        lat, _ = _median_time(
            lambda: emb.embed_utterances(clip, sample_rate=rate), cfg.get("latency_runs", 30), 5
        )
        out["latency_10s_ms"] = lat * 1000
    if cfg.get("embeddings"):
        out["embeddings"] = emb.embed_utterances(wavs, sample_rate=rate).tolist()
        out["labels"] = labels
        awavs, alabels = _load_set(_arctic_files(), rate)
        out["arctic_embeddings"] = emb.embed_utterances(awavs, sample_rate=rate).tolist()
        out["arctic_labels"] = alabels
    out["peak_rss_mb"] = _peak_rss_mb()
    return out


def worker_encoder(cfg: dict[str, Any]) -> dict[str, Any]:
    """The encoder alone on precomputed windows (16 kHz pipeline): the limit."""
    import numpy as np
    import torch

    from speakerembed import Pipeline, SpeakerEmbedder
    from speakerembed.mel import melspectrogram
    from speakerembed.trim import trim_silence
    from speakerembed.windows import partial_windows

    pipe = Pipeline()
    emb = SpeakerEmbedder("resemblyzer", device="cpu", precision=cfg.get("precision", "fp32"))
    wavs, _ = _load_set(_librispeech_files(), 16_000)
    audio_s = sum(w.shape[0] for w in wavs) / 16_000
    wins = []
    for w in wavs:
        x, _ = trim_silence(w, 20)
        wins.append(
            partial_windows(melspectrogram(torch.from_numpy(np.ascontiguousarray(x))), pipe.frame_step, 0.8)
        )
    batch = torch.cat(wins).contiguous()
    cap = pipe.max_windows_per_batch

    def encode() -> None:
        for i in range(0, batch.shape[0], cap):
            emb.encoder(batch[i : i + cap])

    med, times = _median_time(encode, cfg["runs"])
    return {
        "audio_s": audio_s,
        "seconds": med,
        "times": times,
        "xrt": audio_s / med,
        "n_windows": int(batch.shape[0]),
        "peak_rss_mb": _peak_rss_mb(),
    }


def worker_chatterbox(cfg: dict[str, Any]) -> dict[str, Any]:
    """Chatterbox's VoiceEncoder.embeds_from_wavs (resampy kaiser_fast), same weights."""
    import torch
    from chatterbox.models.voice_encoder import VoiceEncoder

    ve = VoiceEncoder()
    ve.load_state_dict(_resemblyzer_state(), strict=True)
    ve = ve.eval()
    rate = cfg["rate"]
    wavs, _ = _load_set(_librispeech_files(), rate)
    audio_s = sum(w.shape[0] for w in wavs) / rate
    with torch.inference_mode():
        ve.embeds_from_wavs(wavs[:4], sample_rate=rate)
        med, times = _median_time(lambda: ve.embeds_from_wavs(wavs, sample_rate=rate), cfg["runs"])
        out: dict[str, Any] = {"audio_s": audio_s, "seconds": med, "times": times, "xrt": audio_s / med}
        if cfg.get("latency"):
            clip = _clip_10s(rate)
            lat, _ = _median_time(
                lambda: ve.embeds_from_wavs([clip], sample_rate=rate), cfg.get("latency_runs", 30), 5
            )
            out["latency_10s_ms"] = lat * 1000
    out["torch"] = torch.__version__
    out["peak_rss_mb"] = _peak_rss_mb()
    return out


def worker_resemblyzer(cfg: dict[str, Any]) -> dict[str, Any]:
    """Resemblyzer's own pipeline: preprocess_wav (resample, VAD, normalise) + embed_utterance."""
    import torch
    from resemblyzer import VoiceEncoder, preprocess_wav

    enc = VoiceEncoder("cpu", verbose=False)
    rate = cfg["rate"]
    wavs, _ = _load_set(_librispeech_files(), rate)
    audio_s = sum(w.shape[0] for w in wavs) / rate

    def run() -> None:
        for w in wavs:
            enc.embed_utterance(preprocess_wav(w, source_sr=rate))

    enc.embed_utterance(preprocess_wav(wavs[0], source_sr=rate))
    med, times = _median_time(run, cfg["runs"], warmup=0)
    return {
        "audio_s": audio_s,
        "seconds": med,
        "times": times,
        "xrt": audio_s / med,
        "torch": torch.__version__,
        "peak_rss_mb": _peak_rss_mb(),
    }


def worker_long_inmemory(cfg: dict[str, Any]) -> dict[str, Any]:
    """The in-memory path on the long file (the reference for the streaming CLI)."""
    from speakerembed import Pipeline, SpeakerEmbedder

    emb = SpeakerEmbedder("resemblyzer", device="cpu", pipeline=Pipeline(stream_min_duration_s=None))
    t0 = time.perf_counter()
    vec = emb.embed_speaker([cfg["path"]])
    return {"seconds": time.perf_counter() - t0, "embedding": vec.tolist(), "peak_rss_mb": _peak_rss_mb()}


def worker_gpu(cfg: dict[str, Any]) -> dict[str, Any]:
    """CPU against GPU resampling, and the whole pipeline on the GPU, when one is present."""
    import torch

    if not torch.cuda.is_available():
        return {"skipped": "no CUDA device on this machine: GPU timings were not measured"}
    import numpy as np

    from speakerembed import Pipeline, SpeakerEmbedder
    from speakerembed.resample import SincResampler, resample

    clip = _clip_10s(44_100)
    out: dict[str, Any] = {"device": torch.cuda.get_device_name(0)}
    out["resample_cpu_soxr_ms"] = _median_time(lambda: resample(clip, 44_100, 16_000), 30, 3)[0] * 1000
    res = SincResampler.get(44_100, 16_000, "cuda")
    t0 = time.perf_counter()
    x = torch.from_numpy(clip).cuda()
    res(x)
    torch.cuda.synchronize()
    out["resample_gpu_first_call_ms"] = (time.perf_counter() - t0) * 1000

    def gpu_resample() -> None:
        res(torch.from_numpy(clip).cuda()).cpu()

    out["resample_gpu_ms"] = _median_time(gpu_resample, 30, 3)[0] * 1000
    wavs, _ = _load_set(_librispeech_files(), 44_100)
    audio_s = sum(w.shape[0] for w in wavs) / 44_100
    for device_rule in ("cpu", "device", "auto"):
        pipe = Pipeline(resampler="torchaudio", resample_device=device_rule)  # type: ignore[arg-type]
        emb = SpeakerEmbedder("resemblyzer", device="cuda", pipeline=pipe)
        emb.embed_utterances(wavs[:4], sample_rate=44_100)

        def run(e: Any = emb) -> None:
            e.embed_utterances(wavs, sample_rate=44_100)
            torch.cuda.synchronize()

        med, _ = _median_time(run, cfg["runs"])
        out[f"pipeline_resample_{device_rule}_xrt"] = audio_s / med
        lat, _ = _median_time(lambda e=emb: e.embed_utterances(clip, sample_rate=44_100), 30, 5)
        out[f"latency_10s_resample_{device_rule}_ms"] = lat * 1000
    del np
    return out


WORKERS = {
    "speakerembed": worker_speakerembed,
    "encoder": worker_encoder,
    "chatterbox": worker_chatterbox,
    "resemblyzer": worker_resemblyzer,
    "long_inmemory": worker_long_inmemory,
    "gpu": worker_gpu,
}


def _worker_main(spec: str) -> None:
    cfg = json.loads(spec)
    threads = int(cfg.get("threads", 2))
    import torch

    torch.set_num_threads(threads)
    result = WORKERS[cfg["kind"]](cfg)
    result["threads"] = torch.get_num_threads()
    print("RESULT " + json.dumps(result), flush=True)


# --------------------------------------------------------------------------------------------
# The orchestrator.
# --------------------------------------------------------------------------------------------


def _run_worker(python: str, cfg: dict[str, Any], timeout: float = 3600) -> dict[str, Any]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("OMP_NUM_THREADS", str(cfg.get("threads", 2)))
    env["PYTHONWARNINGS"] = "ignore"
    label = (
        f"{cfg['kind']} {json.dumps({k: v for k, v in cfg.items() if k not in ('kind', 'threads', 'runs')})}"
    )
    print(f"  running {label} ...", file=sys.stderr, flush=True)
    proc = subprocess.run(
        [python, str(Path(__file__).resolve()), "--worker", json.dumps(cfg)],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        cwd=str(ROOT),
    )
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return dict(json.loads(line[len("RESULT ") :]))
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
    return {"error": f"worker failed (exit {proc.returncode}): " + " | ".join(tail)}


def _usable(python: str | None, module: str) -> str | None:
    if not python:
        return None
    try:
        subprocess.run(
            [python, "-c", f"import {module}"],
            check=True,
            capture_output=True,
            timeout=300,
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return python


def _eer(scores: list[float], target: list[bool]) -> float:
    import numpy as np

    s, t = np.asarray(scores), np.asarray(target)
    best, eer = 2.0, 1.0
    for thr in np.unique(s):
        far = float(np.mean(s[~t] >= thr))
        frr = float(np.mean(s[t] < thr))
        if abs(far - frr) < best:
            best, eer = abs(far - frr), (far + frr) / 2
    return 100.0 * eer


def _trials(emb: list[list[float]], labels: list[str]) -> tuple[list[float], list[bool]]:
    import numpy as np

    e = np.asarray(emb)
    scores, target = [], []
    for i in range(len(labels)):
        for j in range(i + 1, len(labels)):
            scores.append(float(e[i] @ e[j]))
            target.append(labels[i] == labels[j])
    return scores, target


def _eers(r: dict[str, Any]) -> dict[str, float]:
    ls, lt = _trials(r["embeddings"], r["labels"])
    a_s, at = _trials(r["arctic_embeddings"], r["arctic_labels"])
    return {"librispeech": _eer(ls, lt), "arctic": _eer(a_s, at), "pooled": _eer(ls + a_s, lt + at)}


def _min_cosine(a: list[list[float]], b: list[list[float]]) -> float:
    import numpy as np

    return float(np.min(np.sum(np.asarray(a) * np.asarray(b), axis=1)))


def _make_long_file(path: Path, minutes: float) -> float:
    """An hour (or ``minutes``) of real speech at 48 kHz, PCM 16, written block by block."""
    import numpy as np
    import soundfile as sf
    import soxr

    parts = []
    for f in sorted((SPEECH / "long").glob("*.flac")) + _librispeech_files():
        x, sr = sf.read(str(f), dtype="float32")
        parts.append(soxr.resample(x, sr, 48_000, quality="HQ").astype(np.float32))
    target = int(minutes * 60 * 48_000)
    done = 0
    with sf.SoundFile(str(path), "w", samplerate=48_000, channels=1, subtype="PCM_16") as out:
        while done < target:
            for p in parts:
                take = p[: target - done]
                out.write(take)
                done += take.shape[0]
                if done >= target:
                    break
    return done / 48_000


def _run_cli_rss(args: list[str]) -> tuple[float, float, int]:
    """Run a command; returns (wall seconds, peak RSS of the child in MB, exit code)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=str(ROOT))
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_maxrss / 1024.0, proc.returncode


def _startup(python: str, runs: int, tmp: Path) -> dict[str, Any]:
    import numpy as np
    import soundfile as sf

    out: dict[str, Any] = {}
    code = (
        "import time, sys; t = time.perf_counter(); import speakerembed; "
        "print(time.perf_counter() - t, 'torch' in sys.modules)"
    )
    vals, torch_loaded = [], False
    for _ in range(runs):
        res = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True).stdout.split()
        vals.append(float(res[0]))
        torch_loaded |= res[1] == "True"
    out["import_s"] = statistics.median(vals)
    out["import_loads_torch"] = torch_loaded
    script = Path(python).with_name("speakerembed")
    cmd = [str(script), "--help"] if script.exists() else [python, "-m", "speakerembed", "--help"]
    vals = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True)
        vals.append(time.perf_counter() - t0)
    out["help_s"] = statistics.median(vals)
    clip = _clip_10s(44_100)[: 5 * 44_100]
    path = tmp / "five_seconds.wav"
    sf.write(str(path), np.asarray(clip), 44_100)
    code = (
        f"from speakerembed import embed_speaker; embed_speaker({str(path)!r}, weights='resemblyzer', "
        "device='cpu')"
    )
    vals = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([python, "-c", code], capture_output=True, check=True)
        vals.append(time.perf_counter() - t0)
    out["first_embedding_5s_file_s"] = statistics.median(vals)
    return out


def _machine(threads: int) -> dict[str, Any]:
    import torch

    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "threads": threads,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "platform": platform.platform(),
        "load_average": os.getloadavg(),
    }


def _check(value: float | None, target: float, higher: bool = True) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "not measured"
    ok = value >= target if higher else value <= target
    return "pass" if ok else "FAIL"


def orchestrate(args: argparse.Namespace) -> dict[str, Any]:
    python = sys.executable
    runs = args.runs or (2 if args.quick else 5)
    base = {"threads": args.threads, "runs": runs}
    cb = _usable(args.chatterbox_python, "chatterbox.models.voice_encoder")
    rz = _usable(args.resemblyzer_python, "resemblyzer")
    res: dict[str, Any] = {"machine": _machine(args.threads), "runs": runs, "competitors": {}}
    res["competitors"]["chatterbox"] = (
        cb or "not run: pass --chatterbox-python (an interpreter with chatterbox-tts)"
    )
    res["competitors"]["resemblyzer"] = rz or (
        "not run: pass --resemblyzer-python (an interpreter with resemblyzer, webrtcvad and setuptools<81)"
    )
    sections = set(args.only.split(",")) if args.only else None

    def want(name: str) -> bool:
        return sections is None or name in sections

    if want("throughput"):
        tp: dict[str, Any] = {}
        tp["encoder_fp32"] = _run_worker(python, {**base, "kind": "encoder"})
        tp["encoder_bf16"] = _run_worker(python, {**base, "kind": "encoder", "precision": "bf16"})
        for rate in RATES:
            tp[f"speakerembed_{rate}"] = _run_worker(
                python,
                {
                    **base,
                    "kind": "speakerembed",
                    "rate": rate,
                    "latency": rate == 44_100,
                    "embeddings": rate == 16_000,
                },
            )
            if cb:
                tp[f"chatterbox_{rate}"] = _run_worker(
                    cb, {**base, "kind": "chatterbox", "rate": rate, "latency": rate == 44_100}
                )
            if rz and rate in (16_000, 44_100):
                tp[f"resemblyzer_{rate}"] = _run_worker(
                    rz, {**base, "runs": max(1, runs // 2), "kind": "resemblyzer", "rate": rate}
                )
        tp["speakerembed_44100_bf16"] = _run_worker(
            python, {**base, "kind": "speakerembed", "rate": 44_100, "precision": "bf16", "latency": True}
        )
        tp["speakerembed_44100_prefetch"] = _run_worker(
            python, {**base, "kind": "speakerembed", "rate": 44_100, "prefetch": 2}
        )
        res["throughput"] = tp
    if want("bf16"):
        fp = _run_worker(
            python, {**base, "runs": 1, "kind": "speakerembed", "rate": 16_000, "embeddings": True}
        )
        bf = _run_worker(
            python,
            {
                **base,
                "runs": 1,
                "kind": "speakerembed",
                "rate": 16_000,
                "embeddings": True,
                "precision": "bf16",
            },
        )
        if "error" not in fp and "error" not in bf:
            res["bf16"] = {
                "min_cosine_vs_fp32": min(
                    _min_cosine(fp["embeddings"], bf["embeddings"]),
                    _min_cosine(fp["arctic_embeddings"], bf["arctic_embeddings"]),
                ),
                "eer_fp32": _eers(fp),
                "eer_bf16": _eers(bf),
            }
        else:
            res["bf16"] = {"error": fp.get("error") or bf.get("error")}
    if want("order"):
        order: dict[str, Any] = {}
        for rate in (44_100, 48_000):
            runs_by_order = {}
            for o in ("resample_trim", "trim_resample"):
                r = _run_worker(
                    python, {**base, "kind": "speakerembed", "rate": rate, "order": o, "embeddings": True}
                )
                runs_by_order[o] = r
            a, b = runs_by_order["resample_trim"], runs_by_order["trim_resample"]
            if "error" in a or "error" in b:
                order[str(rate)] = {"error": a.get("error") or b.get("error")}
                continue
            order[str(rate)] = {
                o: {"stages": r["stages"], "xrt": r["xrt"], "eer": _eers(r)} for o, r in runs_by_order.items()
            }
            order[str(rate)]["min_cosine"] = min(
                _min_cosine(a["embeddings"], b["embeddings"]),
                _min_cosine(a["arctic_embeddings"], b["arctic_embeddings"]),
            )
        res["order"] = order
        _plot_order(order)
    with tempfile.TemporaryDirectory(prefix="speakerembed-bench-") as tmpdir:
        tmp = Path(tmpdir)
        if want("long"):
            minutes = args.long_minutes or (10.0 if args.quick else 60.0)
            path = tmp / "long48k.wav"
            seconds = _make_long_file(path, minutes)
            out_npy = tmp / "long.npy"
            script = Path(python).with_name("speakerembed")
            cli = [str(script)] if script.exists() else [python, "-m", "speakerembed"]
            wall, rss, code = _run_cli_rss(
                [*cli, "embed", str(path), "--weights", "resemblyzer", "--device", "cpu", "-o", str(out_npy)]
            )
            long: dict[str, Any] = {
                "audio_s": seconds,
                "cli_seconds": wall,
                "cli_peak_rss_mb": rss,
                "exit": code,
            }
            ref = _run_worker(python, {**base, "kind": "long_inmemory", "path": str(path)})
            if code == 0 and "embedding" in ref:
                import numpy as np

                long["cosine_vs_in_memory"] = float(np.load(out_npy) @ np.asarray(ref["embedding"]))
                long["in_memory_peak_rss_mb"] = ref["peak_rss_mb"]
                long["in_memory_seconds"] = ref["seconds"]
            res["long"] = long
        if want("startup"):
            res["startup"] = _startup(python, 3 if args.quick else 7, tmp)
    if want("gpu"):
        res["gpu"] = _run_worker(python, {**base, "kind": "gpu"})
    return res


# --------------------------------------------------------------------------------------------
# Reporting.
# --------------------------------------------------------------------------------------------


def _g(d: dict[str, Any], *keys: str) -> Any:
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def targets(res: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(target, measured, goal, verdict) rows."""
    tp = res.get("throughput", {})
    rows: list[tuple[str, str, str, str]] = []

    def ratio(a: str, b: str) -> float | None:
        x, y = _g(tp, a, "xrt"), _g(tp, b, "xrt")
        return x / y if x and y else None

    def fmt(v: float | None, spec: str = ".2f", unit: str = "") -> str:
        return "—" if v is None else f"{v:{spec}}{unit}"

    r = ratio("speakerembed_44100", "chatterbox_44100")
    rows.append(("44.1 kHz throughput vs Chatterbox", fmt(r, ".2f", "x"), "≥ 3.8x", _check(r, 3.8)))
    r = ratio("speakerembed_44100", "encoder_fp32")
    rows.append(
        ("44.1 kHz throughput vs encoder alone", fmt(r and 100 * r, ".0f", " %"), "≥ 92 %", _check(r, 0.92))
    )
    v = _g(tp, "speakerembed_44100", "latency_10s_ms")
    rows.append(
        ("10 s 44.1 kHz clip, median latency, fp32", fmt(v, ".1f", " ms"), "≤ 20 ms", _check(v, 20, False))
    )
    v = _g(tp, "speakerembed_44100_bf16", "latency_10s_ms")
    rows.append(
        ("10 s 44.1 kHz clip, median latency, bf16", fmt(v, ".1f", " ms"), "≤ 13 ms", _check(v, 13, False))
    )
    r = ratio("speakerembed_16000", "chatterbox_16000")
    rows.append(("16 kHz throughput vs Chatterbox (batched)", fmt(r, ".2f", "x"), "≥ 0.95x", _check(r, 0.95)))
    r = ratio("speakerembed_44100", "resemblyzer_44100")
    rows.append(("44.1 kHz throughput vs Resemblyzer's pipeline", fmt(r, ".1f", "x"), "≥ 8x", _check(r, 8)))
    r = ratio("speakerembed_16000", "resemblyzer_16000")
    rows.append(("16 kHz throughput vs Resemblyzer's pipeline", fmt(r, ".1f", "x"), "≥ 8x", _check(r, 8)))
    r = ratio("encoder_bf16", "encoder_fp32")
    rows.append(("bf16 encoder speed vs fp32", fmt(r, ".2f", "x"), "≥ 1.5x", _check(r, 1.5)))
    c = _g(res, "bf16", "min_cosine_vs_fp32")
    rows.append(("bf16 cosine vs fp32, worst dev utterance", fmt(c, ".5f"), "≥ 0.999", _check(c, 0.999)))
    e32, e16 = _g(res, "bf16", "eer_fp32", "pooled"), _g(res, "bf16", "eer_bf16", "pooled")
    d = None if e32 is None or e16 is None else e16 - e32
    rows.append(
        (
            "bf16 dev EER change (LibriSpeech + ARCTIC)",
            fmt(d, "+.2f", " points"),
            "≤ +0.3",
            _check(d, 0.3, False),
        )
    )
    long = res.get("long", {})
    v = long.get("cli_peak_rss_mb")
    minutes = long.get("audio_s", 0) / 60
    rows.append(
        (
            f"CLI peak RSS, {minutes:.0f}-min 48 kHz WAV",
            fmt(v, ".0f", " MB"),
            "≤ 600 MB",
            _check(v, 600, False),
        )
    )
    c = long.get("cosine_vs_in_memory")
    rows.append(("long file: streamed vs in-memory cosine", fmt(c, ".6f"), "≥ 0.9999", _check(c, 0.9999)))
    st = res.get("startup", {})
    v = st.get("import_s")
    verdict = _check(v, 0.3, False)
    if st.get("import_loads_torch"):
        verdict = "FAIL (loads torch)"
    rows.append(("`import speakerembed`", fmt(v, ".3f", " s"), "< 0.3 s, no torch", verdict))
    v = st.get("help_s")
    rows.append(("`speakerembed --help`", fmt(v, ".3f", " s"), "< 0.5 s", _check(v, 0.5, False)))
    v = st.get("first_embedding_5s_file_s")
    rows.append(("cold start to first embedding, 5 s file", fmt(v, ".2f", " s"), "reported", "—"))
    return rows


def throughput_rows(res: dict[str, Any]) -> list[tuple[str, ...]]:
    tp = res.get("throughput", {})
    limit = _g(tp, "encoder_fp32", "xrt")
    rows = []
    for key in sorted(tp):
        r = tp[key]
        if "error" in r:
            rows.append((key, "error", "", "", "", r["error"][:80]))
            continue
        st = r.get("stages")
        stages = (
            " / ".join(f"{1000 * st[k]:.0f}" for k in ("decode", "resample", "trim", "mel", "encode"))
            if st
            else ""
        )
        lat = r.get("latency_10s_ms")
        rows.append(
            (
                key,
                f"{r['xrt']:.0f}",
                f"{100 * r['xrt'] / limit:.0f} %" if limit else "",
                f"{r['peak_rss_mb']:.0f}",
                f"{lat:.1f}" if lat else "",
                stages,
            )
        )
    return rows


def _md_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _rst_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    def cell(c: object) -> str:
        text = str(c).replace("`", "``") if "`" in str(c) and "``" not in str(c) else str(c)
        return text or ".."

    if not rows:
        return "*(not measured in this run)*"
    out = [".. list-table::", "   :header-rows: 1", ""]
    for row in (header, *rows):
        out.append("   * - " + cell(row[0]))
        out += ["     - " + cell(c) for c in row[1:]]
    return "\n".join(out)


def write_reports(res: dict[str, Any]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    slim = json.loads(json.dumps(res))
    for section in ("throughput",):
        for r in slim.get(section, {}).values():
            for k in ("embeddings", "arctic_embeddings", "labels", "arctic_labels"):
                r.pop(k, None)
    (RESULTS / "results.json").write_text(json.dumps(slim, indent=2) + "\n")
    m = res["machine"]
    head = (
        f"Measured {m['date']} on {m['cpu']} ({m['cores']} cores), {m['threads']} torch threads, "
        f"torch {m['torch']}, Python {m['python']}, median of {res['runs']} runs after a warm-up; "
        f"load average at start {m['load_average'][0]:.2f}."
    )
    t_header = ("target", "measured", "goal", "verdict")
    p_header = (
        "configuration",
        "x real time",
        "of encoder limit",
        "peak RSS (MB)",
        "10 s clip latency (ms)",
        "stages ms: decode / resample / trim / mel / encode",
    )
    t_rows, p_rows = targets(res), throughput_rows(res)
    md = [head, "", _md_table(t_header, t_rows), "", _md_table(p_header, p_rows)]
    gpu = res.get("gpu", {})
    if gpu.get("skipped"):
        md += ["", f"GPU: {gpu['skipped']}."]
    for name, what in res["competitors"].items():
        if isinstance(what, str) and what.startswith("not run"):
            md += ["", f"{name}: {what}."]
    (RESULTS / "summary.md").write_text("\n".join(md) + "\n")
    rst = [head, "", _rst_table(t_header, t_rows)]
    if p_rows:
        rst += ["", _rst_table(p_header, p_rows)]
    if gpu.get("skipped"):
        rst += ["", f"GPU: {gpu['skipped']}."]
    (RESULTS / "summary.rst").write_text("\n".join(rst) + "\n")


def _plot_order(order: dict[str, Any]) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: the order plot was not made", file=sys.stderr)
        return
    rates = [r for r in order if "error" not in order[r]]
    if not rates:
        return
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    stages = ("resample", "trim", "mel")
    width = 0.35
    for k, o in enumerate(("resample_trim", "trim_resample")):
        bottom = [0.0] * len(rates)
        for s, colour in zip(stages, ("#4c72b0", "#dd8452", "#55a868"), strict=True):
            vals = [1000 * order[r][o]["stages"][s] for r in rates]
            axes[0].bar(
                [i + (k - 0.5) * width for i in range(len(rates))],
                vals,
                width,
                bottom=bottom,
                color=colour,
                edgecolor="black",
                hatch="" if k == 0 else "//",
                label=f"{s} ({o.replace('_', ' then ')})",
            )
            bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
    axes[0].set_xticks(range(len(rates)), [f"{int(r) / 1000:g} kHz" for r in rates])
    axes[0].set_ylabel("ms for 447 s of speech (60 utterances)")
    axes[0].set_title("Preprocessing time by order")
    axes[0].legend(fontsize=7)
    labels, eer_rt, eer_tr = [], [], []
    for r in rates:
        for trial in ("librispeech", "arctic"):
            labels.append(f"{int(r) / 1000:g} kHz\n{trial}")
            eer_rt.append(order[r]["resample_trim"]["eer"][trial])
            eer_tr.append(order[r]["trim_resample"]["eer"][trial])
    xs = range(len(labels))
    axes[1].bar([x - width / 2 for x in xs], eer_rt, width, label="resample then trim", color="#4c72b0")
    axes[1].bar([x + width / 2 for x in xs], eer_tr, width, label="trim then resample", color="#dd8452")
    axes[1].set_xticks(list(xs), labels, fontsize=8)
    axes[1].set_ylabel("EER (%)")
    cos = ", ".join(f"{int(r) / 1000:g} kHz {order[r]['min_cosine']:.4f}" for r in rates)
    axes[1].set_title(f"EER by order (worst cosine between orders: {cos})", fontsize=9)
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    ORDER_PNG.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(ORDER_PNG, dpi=110)
    print(f"wrote {ORDER_PNG}", file=sys.stderr)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="fewer runs and a 10-minute long file")
    parser.add_argument("--runs", type=int, default=None, help="timed runs per configuration (default 5)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument(
        "--only", default=None, help="comma-separated sections: throughput,bf16,order,long,startup,gpu"
    )
    parser.add_argument(
        "--long-minutes", type=float, default=None, help="length of the long file (default 60)"
    )
    parser.add_argument(
        "--chatterbox-python",
        default=os.environ.get("SPEAKEREMBED_BENCH_CHATTERBOX_PYTHON"),
        help="an interpreter with chatterbox-tts (e.g. /work/venvs/cb/bin/python)",
    )
    parser.add_argument(
        "--resemblyzer-python",
        default=os.environ.get("SPEAKEREMBED_BENCH_RESEMBLYZER_PYTHON"),
        help="an interpreter with resemblyzer + webrtcvad + setuptools<81",
    )
    parser.add_argument("--report-only", action="store_true", help="rewrite the tables from results.json")
    args = parser.parse_args()
    if args.worker:
        _worker_main(args.worker)
        return 0
    if args.report_only:
        res = json.loads((RESULTS / "results.json").read_text())
        write_reports(res)
        return 0
    if not (SPEECH / "librispeech").is_dir():
        print(f"real speech not found at {SPEECH}; set SPEAKEREMBED_SPEECH_DIR", file=sys.stderr)
        return 2
    res = orchestrate(args)
    if args.only and (RESULTS / "results.json").exists():
        old = json.loads((RESULTS / "results.json").read_text())
        old.update(res)
        res = old
    write_reports(res)
    print((RESULTS / "summary.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
