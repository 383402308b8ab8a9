"""Serve: ``speakerembed serve`` under load from a bounded asyncio client, on 127.0.0.1 only.

Usage: ``python -m benchmarks.families.serve_load [--quick] [--runs N]``, or ``benchmarks/run.py --only
serve_load``.

* **Throughput**, in audio seconds per second, at 1, 4, 16 and 64 concurrent clients, each
  posting real speech of mixed lengths and rates (LibriSpeech 16 kHz FLAC, VCTK 48 kHz, LJ
  Speech 22.05 kHz; :func:`benchmarks._harness.eval_files`) as raw bodies to
  ``/v1/embeddings``, against ``embed_utterances`` on the same files in the same run (one call,
  the same weights and threads, the service stopped). Target: 0.85 of it at 16 clients.
* **Latency of a 10 s clip**: one more client posts a 10 s clip again and again while the
  others load the service: p50, p95 and p99 at each concurrency, against the clip alone (no
  other client).
* **Dynamic batching on and off** (``--no-batching``) at 16 clients, and the batching wait
  (``--max-wait-ms`` 0, 2, 5 and 20) at 16 clients: the measurement behind
  ``speakerembed.serve.DEFAULT_MAX_WAIT_MS``.
* **CPU or GPU resampling under concurrent load** (the seed question): with a CUDA device, the
  service on the GPU with libsoxr on the CPU against the torchaudio resampler on the GPU, at 16
  clients. Skipped, with the reason, where torch sees no CUDA device.

The service runs as a subprocess (uvicorn), so the client's work is not the server's; on a
shared machine both compete for the same cores, and the machine line says how loaded it was.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import _harness as h

__all__ = ["add_args", "run"]

CONCURRENCY = (1, 4, 16, 64)
WAITS_MS = (0.0, 2.0, 5.0, 20.0)
TARGET_AT_16 = 0.85


def add_args(parser: argparse.ArgumentParser) -> None:
    """This family's options."""
    parser.add_argument("--serve-files", type=int, default=None, help="speech files to post (default 40)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Service:
    """``speakerembed serve`` on 127.0.0.1 and a free port (or the GPU launcher below)."""

    def __init__(self, flags: list[str], threads: int, launcher: dict[str, Any] | None = None) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(h.ROOT)}
        if launcher is None:
            cmd = [sys.executable, "-m", "speakerembed", "serve", "--weights", "resemblyzer"]
            cmd += ["--port", str(self.port), "--threads", str(threads), "--max-queue", "4096", *flags]
        else:
            cmd = [
                sys.executable,
                str(Path(__file__).resolve()),
                "--launch",
                json.dumps({**launcher, "port": self.port}),
            ]
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in __exit__
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=env)

    def __enter__(self) -> _Service:
        import httpx

        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.log.seek(0)
                raise RuntimeError(f"the service exited: {self.log.read().decode(errors='replace')[-2000:]}")
            try:
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError("the service did not get ready in 120 s")

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.log.close()


async def _load(
    url: str, bodies: list[tuple[bytes, float]], clients: int, probe: bytes | None, min_probes: int
) -> dict[str, Any]:
    """``clients`` loops over ``bodies`` (each body once), plus a probe client posting ``probe``."""
    import httpx

    headers = {"content-type": "application/octet-stream"}
    next_index = 0
    audio = 0.0
    errors: dict[int, int] = {}
    done = asyncio.Event()
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=clients + 2, max_keepalive_connections=clients + 2)
    async with httpx.AsyncClient(base_url=url, timeout=300, limits=limits) as client:

        async def worker() -> None:
            nonlocal next_index, audio
            while next_index < len(bodies):
                body, seconds = bodies[next_index]
                next_index += 1
                r = await client.post("/v1/embeddings", content=body, headers=headers)
                if r.status_code == 200:
                    audio += seconds
                else:
                    errors[r.status_code] = errors.get(r.status_code, 0) + 1

        async def prober() -> None:
            assert probe is not None
            while not done.is_set() or len(latencies) < min_probes:
                t0 = time.perf_counter()
                r = await client.post("/v1/embeddings", content=probe, headers=headers)
                if r.status_code == 200:
                    latencies.append(time.perf_counter() - t0)
                if len(latencies) >= 10 * min_probes:
                    break

        probing = asyncio.create_task(prober()) if probe is not None else None
        t0 = time.perf_counter()
        if clients:
            await asyncio.gather(*(worker() for _ in range(clients)))
        wall = time.perf_counter() - t0
        done.set()
        if probing is not None:
            await probing
    return {"audio_s": audio, "wall_s": wall, "latencies_s": latencies, "errors": errors}


def _quantiles(values: list[float]) -> tuple[float, float, float]:
    xs = sorted(values)

    def q(p: float) -> float:
        return xs[min(len(xs) - 1, max(0, round(p * (len(xs) - 1))))]

    return q(0.5), q(0.95), q(0.99)


def _baseline(files: list[Path], threads: int, runs: int) -> float:
    """``embed_utterances`` on the files, audio seconds per second (median of ``runs``)."""
    import soundfile as sf
    import torch

    from speakerembed import SpeakerEmbedder

    torch.set_num_threads(threads)
    embedder = SpeakerEmbedder("resemblyzer", device="cpu")
    audio = sum(sf.info(str(f)).duration for f in files)
    seconds, _ = h.median_time(lambda: embedder.embed_utterances(files), runs)
    return audio / seconds


def _clip_bytes() -> bytes:
    import io

    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, h.clip_10s(16_000), 16_000, format="FLAC")
    return buf.getvalue()


def run(opts: argparse.Namespace) -> h.FamilyResult:
    """Measure the service; the figures of the module docstring."""
    import soundfile as sf

    threads = int(opts.threads)
    runs = opts.runs or (1 if opts.quick else 3)
    n_files = opts.serve_files or (8 if opts.quick else 40)
    files = h.eval_files(n_files)
    bodies = [(f.read_bytes(), float(sf.info(str(f)).duration)) for f in files]
    probe = _clip_bytes()
    min_probes = 5 if opts.quick else 20
    levels = (1, 4) if opts.quick else CONCURRENCY
    figures: list[h.Figure] = []
    data: dict[str, Any] = {"files": len(files), "audio_s": sum(s for _, s in bodies)}
    notes: list[str] = []

    base = _baseline(files, threads, runs)
    data["embed_utterances_audio_s_per_s"] = base

    def measure(flags: list[str], clients: int, launcher: dict[str, Any] | None = None) -> dict[str, Any]:
        best: dict[str, Any] | None = None
        with _Service(flags, threads, launcher) as svc:
            for _ in range(runs):
                out = asyncio.run(
                    _load(svc.url, bodies * (1 if clients < 16 else 2), clients, probe, min_probes)
                )
                if best is None or out["audio_s"] / out["wall_s"] > best["audio_s"] / best["wall_s"]:
                    best = out
        assert best is not None
        return best

    with _Service([], threads) as svc:
        alone = asyncio.run(_load(svc.url, [], 0, probe, min_probes))
    p50_alone, p95_alone, p99_alone = _quantiles(alone["latencies_s"])
    data["clip_10s_alone_s"] = [p50_alone, p95_alone, p99_alone]
    figures.append(
        h.Figure(
            "10 s clip, no other client: p50 / p95 / p99",
            f"{p50_alone * 1e3:.0f} / {p95_alone * 1e3:.0f} / {p99_alone * 1e3:.0f} ms",
            verdict="reported",
        )
    )
    for clients in levels:
        out = measure([], clients)
        rate = out["audio_s"] / out["wall_s"]
        ratio = rate / base
        p50, p95, p99 = _quantiles(out["latencies_s"])
        data[f"clients_{clients}"] = {**out, "ratio": ratio}
        figures.append(
            h.Figure(
                f"throughput at {clients} clients (audio s/s)",
                f"{rate:.1f} ({ratio:.2f}x embed_utterances)",
                limit=f"{base:.1f} embed_utterances",
                target=f">= {TARGET_AT_16}x" if clients == 16 else "",
                verdict=h.check_ratio(ratio, TARGET_AT_16) if clients == 16 else "reported",
                value=ratio,
            )
        )
        figures.append(
            h.Figure(
                f"10 s clip at {clients} clients: p50 / p95 / p99",
                f"{p50 * 1e3:.0f} / {p95 * 1e3:.0f} / {p99 * 1e3:.0f} ms",
                limit=f"{p50_alone * 1e3:.0f} ms alone (p50)",
                verdict="reported",
            )
        )
        if out["errors"]:
            notes.append(f"at {clients} clients, non-200 answers: {out['errors']}")

    at = 16 if not opts.quick else 4
    off = measure(["--no-batching"], at)
    on = data[f"clients_{at}"]
    rate_off, rate_on = off["audio_s"] / off["wall_s"], on["audio_s"] / on["wall_s"]
    figures.append(
        h.Figure(
            f"dynamic batching off at {at} clients (audio s/s)",
            f"{rate_off:.1f} (on: {rate_on:.1f}, {rate_on / rate_off:.2f}x)",
            limit=f"{base:.1f} embed_utterances",
            verdict="reported",
        )
    )
    data["batching_off"] = off
    for wait in WAITS_MS if not opts.quick else (0.0, 2.0):
        out = measure(["--max-wait-ms", f"{wait:g}"], at)
        rate = out["audio_s"] / out["wall_s"]
        p50, _, p99 = _quantiles(out["latencies_s"])
        data[f"wait_{wait:g}ms"] = out
        figures.append(
            h.Figure(
                f"--max-wait-ms {wait:g} at {at} clients",
                f"{rate:.1f} audio s/s; 10 s clip p50 {p50 * 1e3:.0f} ms, p99 {p99 * 1e3:.0f} ms",
                limit=f"{base:.1f} embed_utterances",
                verdict="reported",
            )
        )

    figures.append(_gpu_resampling(opts, measure, at))
    return h.FamilyResult("serve_load", figures, data, h.machine_info(threads), notes)


def _gpu_resampling(opts: argparse.Namespace, measure: Any, clients: int) -> h.Figure:
    name = f"GPU: libsoxr on the CPU vs torchaudio on the GPU, {clients} clients"
    try:
        import torch

        cuda = torch.cuda.is_available()
    except ImportError:
        cuda = False
    if not cuda:
        return h.Figure(name, "", verdict="skipped: no CUDA device visible to torch on this machine")
    cpu = measure([], clients, {"resampler": "soxr_hq", "resample_device": "cpu"})
    gpu = measure([], clients, {"resampler": "torchaudio", "resample_device": "device"})
    a, b = cpu["audio_s"] / cpu["wall_s"], gpu["audio_s"] / gpu["wall_s"]
    return h.Figure(name, f"CPU {a:.1f} / GPU {b:.1f} audio s/s ({b / a:.2f}x)", verdict="reported")


def _launch(spec: str) -> None:
    """The service on CUDA with a given resampling pipeline (the GPU figure)."""
    import uvicorn

    from speakerembed import Pipeline, SpeakerEmbedder
    from speakerembed.serve import create_app

    cfg = json.loads(spec)
    pipe = Pipeline(resampler=cfg["resampler"], resample_device=cfg["resample_device"])
    embedder = SpeakerEmbedder("resemblyzer", device="cuda", pipeline=pipe)
    uvicorn.run(create_app(embedder), host="127.0.0.1", port=int(cfg["port"]), log_level="warning")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--launch":
        _launch(sys.argv[2])
        sys.exit(0)
    sys.exit(h.family_main("serve_load", run, add_args, __doc__))
