"""The HTTP service: the app under an ASGI client, and a real uvicorn process on 127.0.0.1.

Embeddings that come back equal ``embed_utterances`` on the same files whatever they were
batched with; bad uploads get JSON errors with the library's message; auth, backpressure,
SIGTERM and /metrics behave as docs/serve.rst says.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip(
    "starlette", reason="the serve extra is not installed (pip install 'speakerembed[serve]')"
)
pytest.importorskip("uvicorn", reason="the serve extra is not installed (pip install 'speakerembed[serve]')")
pytest.importorskip("prometheus_client", reason="the serve extra is not installed")

import httpx
import soundfile as sf
from _signals import require_tool
from starlette.testclient import TestClient

from speakerembed import SpeakerEmbedder
from speakerembed.serve import ServiceLimits, create_app
from speakerembed.serve.app import SERVICE_METRICS

ROOT = Path(__file__).resolve().parents[2]
AUDIO = ROOT / "examples" / "audio"
WAV = {"content-type": "audio/wav"}


def wav_bytes(samples: np.ndarray, rate: int) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, samples, rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def mixed_files(librispeech: dict[str, list[Path]], speech: Path) -> list[Path]:
    """Real speech of several lengths and rates: LibriSpeech FLAC (16 kHz) and others."""
    files = [p for group in librispeech.values() for p in group[:2]]
    others = sorted(
        p for p in speech.rglob("*") if p.suffix in (".wav", ".flac") and "librispeech" not in p.parts
    )
    return files + others[:4]


async def post_all(app: Any, bodies: list[bytes], path: str = "/v1/embeddings") -> list[httpx.Response]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return list(await asyncio.gather(*(client.post(path, content=b, headers=WAV) for b in bodies)))


# -- the app under an ASGI client -----------------------------------------------------------------


@pytest.fixture(scope="module")
def app(embedder: SpeakerEmbedder) -> Iterator[Any]:
    application = create_app(embedder, limits=ServiceLimits(max_body_mb=8, max_duration_s=120))
    with TestClient(application):
        yield application


def test_concurrent_requests_equal_embed_utterances(
    embedder: SpeakerEmbedder, librispeech: dict[str, list[Path]], speech: Path
) -> None:
    files = mixed_files(librispeech, speech)
    want = embedder.embed_utterances(files)
    application = create_app(embedder, max_batch_windows=48, max_wait_ms=20)
    batches: list[int] = []
    batcher = application.state.batcher
    observe = batcher._observe
    batcher._observe = lambda n: (batches.append(n), observe(n) if observe else None)
    try:
        responses = asyncio.run(post_all(application, [p.read_bytes() for p in files]))
    finally:
        batcher.close()
    assert [r.status_code for r in responses] == [200] * len(files)
    got = np.array([r.json()["embeddings"][0]["embedding"] for r in responses], dtype=np.float32)
    cos = np.sum(got * want, axis=1) / np.linalg.norm(got, axis=1)
    assert cos.min() >= 0.99999, cos
    # They really were batched together: some batch held windows of several requests.
    per_request = [max(1, int(sf.info(str(p)).duration / 0.77)) for p in files]
    assert max(batches) > max(per_request)
    assert max(batches) <= 48


def test_embeddings_answer_shape(app: Any, embedder: SpeakerEmbedder) -> None:
    client = TestClient(app)
    files = [("file", (p.name, p.read_bytes(), "audio/wav")) for p in sorted(AUDIO.glob("alice_*.wav"))]
    r = client.post("/v1/embeddings?speaker=true", files=files)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["weights"] == embedder.weights_info.short
    assert [e["file"] for e in body["embeddings"]] == [f[1][0] for f in files]
    for e in body["embeddings"]:
        assert len(e["embedding"]) == 256
        assert 0 < e["speech_s"] <= e["duration_s"]
    want = embedder.embed_speaker(sorted(AUDIO.glob("alice_*.wav")))
    assert float(np.dot(want, body["speaker_embedding"])) >= 0.99999


def test_similarity_conditioning_and_windows(app: Any, embedder: SpeakerEmbedder) -> None:
    from speakerembed import embed_windows

    client = TestClient(app)
    a, b = AUDIO / "alice_1.wav", AUDIO / "bob_1.wav"
    r = client.post(
        "/v1/similarity", files=[("a", (a.name, a.read_bytes())), ("b", (b.name, b.read_bytes()))]
    )
    assert r.status_code == 200, r.text
    want = embedder.embed_utterances([a, b])
    assert r.json()["similarity"] == pytest.approx(float(want[0] @ want[1]), abs=1e-5)
    r = client.post("/v1/similarity", content=a.read_bytes(), headers=WAV)
    assert r.status_code == 400
    assert "exactly two" in r.json()["error"]["message"]

    r = client.post("/v1/conditioning", content=a.read_bytes(), headers=WAV)
    assert r.status_code == 200, r.text
    cond = np.array(r.json()["conditioning"], dtype=np.float32)
    assert float(cond @ embedder.embed_conditioning(a)) >= 0.99999

    r = client.post("/v1/windows", content=a.read_bytes(), headers=WAV)
    assert r.status_code == 200, r.text
    w = embed_windows(a, embedder=embedder)
    np.testing.assert_allclose(np.array(r.json()["embeddings"]), w.embeddings, atol=1e-5)
    np.testing.assert_allclose(r.json()["start_s"], w.start_s)
    np.testing.assert_allclose(r.json()["end_s"], w.end_s)


def test_bad_uploads_get_json_errors_with_the_librarys_message(app: Any) -> None:
    client = TestClient(app)
    good = (AUDIO / "alice_1.wav").read_bytes()
    silence = wav_bytes(np.zeros(16000 * 2, dtype=np.float32), 16000)
    cases = [
        (b"", WAV, 422, "is empty (0 bytes)"),
        (b"this is not audio at all\n" * 40, WAV, 422, "it is a text file"),
        (good[: len(good) // 50], WAV, 422, "file 'upload'"),  # truncated: too little audio left
        (silence, WAV, 422, "digital silence"),
        (good, {"content-type": "text/plain"}, 415, "is not audio"),
        (good, {}, 415, "is not audio"),
        (b"0" * (9 * 2**20), WAV, 413, "8 MiB"),
    ]
    for body, headers, status, words in cases:
        r = client.post("/v1/embeddings", content=body, headers=headers)
        assert r.status_code == status, (words, r.text)
        error = r.json()["error"]
        assert set(error) == {"type", "message"}
        assert words in error["message"], error
        assert "Traceback" not in r.text


def test_audio_over_max_duration_gets_422(embedder: SpeakerEmbedder) -> None:
    application = create_app(embedder, limits=ServiceLimits(max_duration_s=1.0))
    try:
        r = TestClient(application).post(
            "/v1/embeddings", content=(AUDIO / "alice_1.wav").read_bytes(), headers=WAV
        )
    finally:
        application.state.batcher.close()
    assert r.status_code == 422
    assert r.json()["error"]["type"] == "InputTooLongError"
    assert "max_duration_s=1" in r.json()["error"]["message"]


def test_multipart_bodies_are_never_spooled_to_disk(app: Any, monkeypatch: pytest.MonkeyPatch) -> None:

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("an upload was written to a temporary file")

    monkeypatch.setattr(tempfile, "SpooledTemporaryFile", refuse)
    monkeypatch.setattr(tempfile, "NamedTemporaryFile", refuse)
    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    big = (AUDIO / "alice_1.wav").read_bytes()
    r = TestClient(app).post("/v1/embeddings", files=[("f", ("a.wav", big)), ("g", ("b.wav", big))])
    assert r.status_code == 200, r.text


def test_auth_on_and_off(embedder: SpeakerEmbedder) -> None:
    body = (AUDIO / "alice_1.wav").read_bytes()
    open_app = create_app(embedder)
    locked = create_app(embedder, api_key="s3cret-key")
    try:
        with TestClient(open_app) as c:
            assert c.post("/v1/embeddings", content=body, headers=WAV).status_code == 200
            assert c.get("/metrics").status_code == 200
        with TestClient(locked) as c:
            assert c.get("/healthz").status_code == 200  # liveness needs no key
            for path, method in [("/readyz", "GET"), ("/metrics", "GET"), ("/v1/embeddings", "POST")]:
                for auth in (None, "Bearer wrong", "s3cret-key", "Basic s3cret-key"):
                    headers = {**WAV, **({"authorization": auth} if auth else {})}
                    r = c.request(method, path, content=body if method == "POST" else None, headers=headers)
                    assert r.status_code == 401, (path, auth)
                    assert r.headers["www-authenticate"] == "Bearer"
                    assert "Authorization: Bearer" in r.json()["error"]["message"]
            good = {**WAV, "authorization": "Bearer s3cret-key"}
            assert c.post("/v1/embeddings", content=body, headers=good).status_code == 200
            assert c.get("/readyz", headers=good).status_code == 200
            assert 'reason="unauthorized"' in c.get("/metrics", headers=good).text
    finally:
        open_app.state.batcher.close()
        locked.state.batcher.close()


def test_a_flood_gets_503_with_retry_after(embedder: SpeakerEmbedder) -> None:
    application = create_app(embedder, limits=ServiceLimits(max_queue=2))
    bodies = [(AUDIO / f"{v}_{i}.wav").read_bytes() for v in ("alice", "bob", "carol") for i in (1, 2, 3)] * 2
    try:
        responses = asyncio.run(post_all(application, bodies))
        metrics = TestClient(application).get("/metrics").text
    finally:
        application.state.batcher.close()
    codes = [r.status_code for r in responses]
    assert set(codes) == {200, 503}, codes
    for r in responses:
        if r.status_code == 503:
            assert r.headers["retry-after"] == "1"
            assert r.json()["error"]["type"] == "QueueFullError"
            assert "--max-queue" in r.json()["error"]["message"]
    assert (
        f'speakerembed_serve_rejected_requests_total{{reason="queue_full"}} {codes.count(503)}.0' in metrics
    )


def test_readyz_waits_for_the_warm_up(embedder: SpeakerEmbedder) -> None:
    application = create_app(embedder)
    client = TestClient(application)
    assert client.get("/readyz").status_code == 503  # no lifespan run: not warmed up
    with TestClient(application) as c:
        assert c.get("/readyz").json()["status"] == "ready"


def test_voice_routes_on_a_real_library(embedder: SpeakerEmbedder, tmp_path: Path) -> None:
    from speakerembed.voices import VoiceLibrary

    library = VoiceLibrary(tmp_path / "voices.db", embedder=embedder)
    application = create_app(embedder, library=library)
    files = {
        v: [("f", (f"{v}_{i}.wav", (AUDIO / f"{v}_{i}.wav").read_bytes())) for i in (1, 2)]
        for v in ("alice", "bob", "carol")
    }
    try:
        with TestClient(application) as c:
            for voice, clips in files.items():
                r = c.put(f"/v1/voices/{voice}", files=clips)
                assert r.status_code == 200, r.text
                assert r.json()["voice"]["name"] == voice
            r = c.put("/v1/voices/alice", files=files["alice"])
            assert r.status_code == 400
            assert "replace=True" in r.json()["error"]["message"]
            assert c.put("/v1/voices/alice?replace=true", files=files["alice"]).status_code == 200
            assert c.get("/v1/voices").json()["voices"] == ["alice", "bob", "carol"]
            shown = c.get("/v1/voices/alice").json()["voice"]
            want = embedder.embed_speaker([AUDIO / "alice_1.wav", AUDIO / "alice_2.wav"])
            assert float(np.dot(shown["embedding"], want)) >= 0.99999
            r = c.get("/v1/voices/nobody")
            assert r.status_code == 404
            assert "nobody" in r.json()["error"]["message"]
            for bad in ("-x", "x" * 129, "a%00b", "%20lead"):
                r = c.get(f"/v1/voices/{bad}")
                assert r.status_code == 400, bad
                assert "not allowed" in r.json()["error"]["message"]
            r = c.post(
                "/v1/voices/identify?top_k=2", content=(AUDIO / "alice_3.wav").read_bytes(), headers=WAV
            )
            assert r.status_code == 200, r.text
            answer = r.json()["results"][0]
            assert answer["candidates"][0]["voice"] == "alice"
            assert len(answer["candidates"]) == 2
            assert set(answer) >= {"voice", "score", "threshold", "reason"}
            nearest = c.get("/v1/voices/alice/nearest?k=2").json()["nearest"]
            assert sorted(m["voice"] for m in nearest) == ["bob", "carol"]
            assert c.delete("/v1/voices/bob").status_code == 200
            assert c.get("/v1/voices").json()["voices"] == ["alice", "carol"]
            assert c.delete("/v1/voices/bob").status_code == 404
    finally:
        application.state.batcher.close()
        library.close()
    without = create_app(embedder)
    try:
        r = TestClient(without).get("/v1/voices")
    finally:
        without.state.batcher.close()
    assert r.status_code == 404
    assert "--library" in r.json()["error"]["message"]


# -- a real uvicorn process --------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, *flags: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
        cmd = [sys.executable, "-m", "speakerembed", "serve", "--weights", "resemblyzer", "--device", "cpu"]
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [*cmd, "--port", str(self.port), *flags], stdout=self.log, stderr=subprocess.STDOUT, env=env
        )

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def wait_ready(self, timeout: float = 60.0, **kwargs: Any) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"the service exited: {self.proc.stdout.read() if self.proc.stdout else ''}"
                )
            try:
                if httpx.get(self.url + "/readyz", timeout=1.0, **kwargs).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise AssertionError("the service did not get ready in time")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=60)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(timeout=10)
            self.log.close()


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server("--max-wait-ms", "5")
    try:
        s.wait_ready()
        yield s
    finally:
        s.stop()


def test_real_service_concurrent_clients(
    server: Server, embedder: SpeakerEmbedder, librispeech: dict[str, list[Path]], speech: Path
) -> None:
    files = mixed_files(librispeech, speech)
    want = embedder.embed_utterances(files)

    def post(path: Path) -> httpx.Response:
        return httpx.post(server.url + "/v1/embeddings", content=path.read_bytes(), headers=WAV, timeout=120)

    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(post, files))
    assert [r.status_code for r in responses] == [200] * len(files)
    got = np.array([r.json()["embeddings"][0]["embedding"] for r in responses], dtype=np.float32)
    assert (np.sum(got * want, axis=1) / np.linalg.norm(got, axis=1)).min() >= 0.99999
    metrics = httpx.get(server.url + "/metrics", timeout=10)
    assert (
        'speakerembed_serve_request_duration_seconds_count{endpoint="/v1/embeddings",status="200"}'
        in metrics.text
    )
    assert "speakerembed_calls_in_progress" in metrics.text or "speakerembed_build_info" in metrics.text


def test_promtool_accepts_metrics(server: Server) -> None:
    promtool = require_tool("promtool")
    httpx.post(
        server.url + "/v1/embeddings", content=(AUDIO / "bob_1.wav").read_bytes(), headers=WAV, timeout=60
    )
    httpx.post(server.url + "/v1/embeddings", content=b"junk", headers=WAV, timeout=60)
    text = httpx.get(server.url + "/metrics", timeout=10).text
    out = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stdout + out.stderr
    for name, _ in SERVICE_METRICS:
        assert f"# TYPE {name} " in text, name
    assert 'speakerembed_serve_rejected_requests_total{reason="bad_audio"}' in text
    assert "speakerembed_build_info" in text  # the embedder's own metrics, in the same registry


def test_sigterm_finishes_requests_in_flight(server: Server, librispeech: dict[str, list[Path]]) -> None:
    bodies = [p.read_bytes() for group in librispeech.values() for p in group[-2:]]
    all_held = threading.Event()

    def upload(body: bytes) -> Iterator[bytes]:
        yield body[:1024]  # the service now holds the request...
        all_held.wait(60)  # ...and gets the rest after SIGTERM
        yield body[1024:]

    def post(body: bytes) -> int:
        return httpx.post(
            server.url + "/v1/embeddings", content=upload(body), headers=WAV, timeout=120
        ).status_code

    with ThreadPoolExecutor(len(bodies)) as pool:
        futures = [pool.submit(post, b) for b in bodies]
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                text = httpx.get(server.url + "/metrics", timeout=5).text
                held = re.search(r"^speakerembed_serve_requests_in_flight (\S+)$", text, re.MULTILINE)
                assert held is not None, "the service does not export its in-flight gauge"
                if float(held.group(1)) >= len(bodies):
                    break
                time.sleep(0.01)
            else:
                pytest.fail(f"the service never held all {len(bodies)} requests at once")
            server.proc.send_signal(signal.SIGTERM)
            time.sleep(0.2)  # the signal lands while every request is still being received
        finally:
            all_held.set()
        codes = [f.result() for f in futures]
    assert codes == [200] * len(bodies)
    assert server.proc.wait(timeout=60) == 0
    with pytest.raises(httpx.TransportError):
        httpx.get(server.url + "/healthz", timeout=2)


def test_api_key_file_on_a_real_service(tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_text("k-123\n")
    s = Server("--api-key-file", str(key))
    try:
        s.wait_ready(headers={"authorization": "Bearer k-123"})
        assert httpx.get(s.url + "/readyz", timeout=5).status_code == 401
        assert httpx.get(s.url + "/healthz", timeout=5).status_code == 200
    finally:
        assert s.stop() == 0


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["--weights", "/nonexistent/weights.safetensors"], "weights"),
        (["--library", "/nonexistent/dir/voices.db"], "/nonexistent/dir/voices.db"),
        (["--api-key-file", "/nonexistent/key"], "--api-key-file"),
    ],
)
def test_startup_fails_fast_with_exit_1(flags: list[str], words: str) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "speakerembed", "serve", "--weights", "resemblyzer", "--device", "cpu"]
    out = subprocess.run(
        [*cmd, "--port", str(free_port()), *flags], capture_output=True, text=True, timeout=120, env=env
    )
    assert out.returncode == 1, out.stdout + out.stderr
    assert words in out.stderr.lower() or words in out.stderr
    assert "Traceback" not in out.stderr


def test_a_real_prometheus_scrapes_the_service(server: Server, tmp_path: Path) -> None:
    prometheus = require_tool("prometheus")
    httpx.post(
        server.url + "/v1/embeddings", content=(AUDIO / "carol_1.wav").read_bytes(), headers=WAV, timeout=60
    )
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        json.dumps(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "scrape_configs": [
                    {
                        "job_name": "speakerembed",
                        "static_configs": [{"targets": [f"127.0.0.1:{server.port}"]}],
                    }
                ],
            }
        )
    )
    proc = subprocess.Popen(
        [
            prometheus,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    query = (
        'sum(speakerembed_serve_request_duration_seconds_count{job="speakerembed",endpoint="/v1/embeddings"})'
    )
    found: list[Any] = []
    try:
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline and not found:
            time.sleep(1.0)
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/api/v1/query", params={"query": query}, timeout=5)
            except httpx.TransportError:
                continue
            if r.status_code == 200:
                found = r.json()["data"]["result"]
        up = httpx.get(
            f"http://127.0.0.1:{port}/api/v1/query", params={"query": 'up{job="speakerembed"}'}, timeout=5
        )
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert found, "Prometheus never saw the service's request histogram"
    assert float(found[0]["value"][1]) >= 1
    assert up.json()["data"]["result"][0]["value"][1] == "1"


def test_the_docs_curl_examples_run(server: Server) -> None:
    import shlex

    curl = require_tool("curl")
    page = (ROOT / "docs" / "serve.rst").read_text(encoding="utf-8")
    commands = [line.strip()[2:] for line in page.splitlines() if line.strip().startswith("$ curl -s ")]
    assert len(commands) >= 8
    for command in commands:
        argv = shlex.split(command.replace("127.0.0.1:8000", f"127.0.0.1:{server.port}"))
        out = subprocess.run(
            [curl, *argv[1:], "-w", "\n%{http_code}"], capture_output=True, text=True, timeout=120, cwd=ROOT
        )
        assert out.returncode == 0, (command, out.stderr)
        body, _, status = out.stdout.rpartition("\n")
        if "/metrics" in command:
            assert status == "200"
            assert "speakerembed_serve_requests_in_flight" in body
            continue
        answer = json.loads(body)
        if "README.md" in command:  # the example of an error
            assert status == "422"
            assert answer["error"]["type"] == "AudioError"
        else:
            assert status == "200", (command, body)
            assert "error" not in answer


def test_oversized_and_slow_requests_on_a_real_service(server: Server) -> None:
    big = b"\0" * (51 * 2**20)  # over the default --max-body-mb 50
    r = httpx.post(server.url + "/v1/embeddings", content=big, headers=WAV, timeout=60)
    assert r.status_code == 413
    assert "--max-body-mb" in r.json()["error"]["message"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while reading
        for _ in range(52):
            yield b"\0" * 2**20

    r = httpx.post(server.url + "/v1/embeddings", content=chunks(), headers=WAV, timeout=60)
    assert r.status_code == 413
    # The service still answers afterwards.
    r = httpx.post(
        server.url + "/v1/embeddings", content=(AUDIO / "bob_2.wav").read_bytes(), headers=WAV, timeout=60
    )
    assert r.status_code == 200


def test_a_request_over_its_timeout_gets_504(embedder: SpeakerEmbedder) -> None:
    application = create_app(embedder, limits=ServiceLimits(request_timeout_s=1e-4))
    try:
        r = TestClient(application).post(
            "/v1/embeddings", content=(AUDIO / "alice_1.wav").read_bytes(), headers=WAV
        )
        metrics = TestClient(application).get("/metrics").text
    finally:
        application.state.batcher.close()
    assert r.status_code == 504
    assert r.json()["error"]["type"] == "Timeout"
    assert 'speakerembed_serve_rejected_requests_total{reason="timeout"} 1.0' in metrics
