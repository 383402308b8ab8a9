"""``POST /v1/diarize`` under an ASGI client: the same turns as :func:`speakerembed.diarize` on
the same bytes, checked query parameters, JSON errors, the service's limits, auth, and a clear
answer when silero-vad is missing."""

from __future__ import annotations

import asyncio
import io
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip(
    "starlette", reason="the serve extra is not installed (pip install 'speakerembed[serve]')"
)
pytest.importorskip("prometheus_client", reason="the serve extra is not installed")

import soundfile as sf
from _conversations import build_conversation, speaker_pools
from starlette.testclient import TestClient

from speakerembed import SpeakerEmbedder, diarize
from speakerembed.serve import ServiceLimits, create_app

ROOT = Path(__file__).resolve().parents[2]
AUDIO = ROOT / "examples" / "audio"
WAV = {"content-type": "audio/wav"}


def _has_vad() -> bool:
    try:
        import silero_vad  # noqa: F401
    except ImportError:
        return False
    return True


needs_vad = pytest.mark.skipif(not _has_vad(), reason="the vad extra (silero-vad) is not installed")


def wav_bytes(samples: np.ndarray, rate: int) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, samples, rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


@pytest.fixture(scope="module")
def app(embedder: SpeakerEmbedder) -> Iterator[Any]:
    application = create_app(embedder, limits=ServiceLimits(max_body_mb=8, max_duration_s=120))
    with TestClient(application):
        yield application


@pytest.fixture(scope="module")
def conversation(speech: Path) -> bytes:
    """A simulated 40 s two-speaker conversation at 22.05 kHz, as WAV bytes."""
    pytest.importorskip("silero_vad", reason="the vad extra (silero-vad) is not installed")
    pools = speaker_pools(speech)
    names = sorted(pools)
    conv = build_conversation(pools, [names[0], names[-1]], duration_s=40, seed=5, sample_rate=22050)
    assert len(conv.speakers) == 2
    return wav_bytes(conv.wave, conv.sample_rate)


@needs_vad
def test_a_conversation_gets_the_turns_diarize_gives(
    app: Any, embedder: SpeakerEmbedder, conversation: bytes
) -> None:
    want = diarize(conversation, embedder=embedder)
    assert len(want.speakers) == 2  # the conversation really has two voices to find
    r = TestClient(app).post("/v1/diarize", content=conversation, headers=WAV)
    assert r.status_code == 200, r.text
    body = r.json()
    # pyannote's DiarizeOutput.serialize() shape, as Diarization.to_json() gives it
    rows = [
        {"start": round(t.start_s, 3), "end": round(t.end_s, 3), "speaker": t.speaker} for t in want.turns
    ]
    assert body["diarization"] == rows
    assert body["exclusive_diarization"] == rows
    assert body["file"] == "upload"
    assert body["weights"] == embedder.weights_info.short
    assert body["duration_s"] == pytest.approx(want.duration_s)
    assert body["speech_s"] == pytest.approx(want.speech_s)
    seconds = want.speaker_seconds()
    assert [s["speaker"] for s in body["speakers"]] == want.speakers
    for s in body["speakers"]:
        assert s["duration_s"] == pytest.approx(seconds[s["speaker"]], abs=1e-3)
        got = np.asarray(s["embedding"], dtype=np.float32)
        assert got.shape == (256,)
        assert float(got @ want.speaker_embeddings[s["speaker"]]) >= 0.99999


@needs_vad
def test_counts_pass_through_and_multipart_names_the_file(
    app: Any, embedder: SpeakerEmbedder, conversation: bytes
) -> None:
    client = TestClient(app)
    r = client.post("/v1/diarize?num_speakers=3", files=[("f", ("meeting.wav", conversation))])
    assert r.status_code == 200, r.text
    assert len(r.json()["speakers"]) == 3
    assert r.json()["file"] == "meeting.wav"
    assert r.json()["uri"] == "meeting"
    r = client.post("/v1/diarize?max_speakers=1", content=conversation, headers=WAV)
    assert r.status_code == 200, r.text
    assert [s["speaker"] for s in r.json()["speakers"]] == ["SPEAKER_00"]


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("num_speakers=0", "?num_speakers='0'"),
        ("num_speakers=two", "?num_speakers='two'"),
        ("min_speakers=-1", "?min_speakers='-1'"),
        ("max_speakers=1.5", "?max_speakers='1.5'"),
        ("max_speakers=101", "?max_speakers='101'"),
        ("num_speakers=2&min_speakers=3", "?min_speakers=3 contradicts ?num_speakers=2"),
        ("num_speakers=3&max_speakers=2", "?max_speakers=2 contradicts ?num_speakers=3"),
        ("min_speakers=4&max_speakers=2", "?min_speakers=4 is above ?max_speakers=2"),
    ],
)
@needs_vad
def test_bad_parameters_get_400_naming_them(app: Any, query: str, words: str) -> None:
    r = TestClient(app).post(
        f"/v1/diarize?{query}", content=(AUDIO / "alice_1.wav").read_bytes(), headers=WAV
    )
    assert r.status_code == 400, r.text
    assert r.json()["error"]["type"] == "BadRequest"
    assert words in r.json()["error"]["message"]


@needs_vad
def test_bad_audio_no_speech_and_two_files(app: Any) -> None:
    client = TestClient(app)
    a = (AUDIO / "alice_1.wav").read_bytes()
    cases = [
        (wav_bytes(np.zeros(16000 * 3, np.float32), 16000), 422, "AudioError", "no speech found"),
        (b"this is not audio at all\n" * 40, 422, "AudioError", "it is a text file"),
        (b"", 422, "AudioError", "is empty (0 bytes)"),
    ]
    for body, status, kind, words in cases:
        r = client.post("/v1/diarize", content=body, headers=WAV)
        assert r.status_code == status, r.text
        assert r.json()["error"]["type"] == kind
        assert words in r.json()["error"]["message"]
        assert "file 'upload'" in r.json()["error"]["message"]
        assert "Traceback" not in r.text
    r = client.post("/v1/diarize", files=[("a", ("a.wav", a)), ("b", ("b.wav", a))])
    assert r.status_code == 400
    assert "takes one" in r.json()["error"]["message"]
    r = client.post("/v1/diarize", content=a, headers={"content-type": "text/plain"})
    assert r.status_code == 415
    metrics = client.get("/metrics").text
    assert 'speakerembed_serve_rejected_requests_total{reason="no_speech"}' in metrics
    assert 'speakerembed_serve_request_duration_seconds_count{endpoint="/v1/diarize",status="422"}' in metrics


@needs_vad
def test_the_services_limits_apply(embedder: SpeakerEmbedder) -> None:
    a = (AUDIO / "alice_1.wav").read_bytes()  # about 3.9 s
    application = create_app(
        embedder, limits=ServiceLimits(max_duration_s=1.0, max_body_mb=0.05, max_queue=1)
    )
    batcher = application.state.batcher
    try:
        client = TestClient(application)
        r = client.post("/v1/diarize", content=a[: 40 * 1024], headers=WAV)  # under the body limit
        assert r.status_code == 422, r.text
        assert r.json()["error"]["type"] == "InputTooLongError"
        r = client.post("/v1/diarize", content=a, headers=WAV)
        assert r.status_code == 413
        assert "--max-body-mb" in r.json()["error"]["message"]
        batcher.reserve()  # the queue's one place is taken
        try:
            r = client.post("/v1/diarize", content=a[: 40 * 1024], headers=WAV)
        finally:
            batcher.release()
        assert r.status_code == 503
        assert r.headers["retry-after"] == "1"
        assert r.json()["error"]["type"] == "QueueFullError"
        assert batcher.queue_depth == 0
    finally:
        batcher.close()


@needs_vad
def test_a_diarization_over_the_timeout_gets_504_and_frees_its_place(embedder: SpeakerEmbedder) -> None:
    application = create_app(embedder, limits=ServiceLimits(request_timeout_s=1e-4))
    batcher = application.state.batcher
    try:
        r = TestClient(application).post(
            "/v1/diarize", content=(AUDIO / "alice_1.wav").read_bytes(), headers=WAV
        )
        assert r.status_code == 504
        assert r.json()["error"]["type"] == "Timeout"
        assert "--timeout" in r.json()["error"]["message"]

        async def drained() -> None:
            for _ in range(600):
                if batcher.queue_depth == 0:
                    return
                await asyncio.sleep(0.05)

        asyncio.run(drained())
        assert batcher.queue_depth == 0  # the abandoned job gave its place back
    finally:
        batcher.close()


@needs_vad
def test_auth_applies(embedder: SpeakerEmbedder) -> None:
    a = (AUDIO / "alice_1.wav").read_bytes()
    locked = create_app(embedder, api_key="k-123")
    try:
        with TestClient(locked) as c:
            for auth in (None, "Bearer wrong", "k-123"):
                headers = {**WAV, **({"authorization": auth} if auth else {})}
                r = c.post("/v1/diarize", content=a, headers=headers)
                assert r.status_code == 401, auth
                assert "Authorization: Bearer" in r.json()["error"]["message"]
            r = c.post("/v1/diarize", content=a, headers={**WAV, "authorization": "Bearer k-123"})
            assert r.status_code == 200, r.text
            assert r.json()["diarization"][0]["speaker"] == "SPEAKER_00"
    finally:
        locked.state.batcher.close()


def test_without_silero_vad_the_answer_is_501_with_the_reason(
    app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "silero_vad", None)  # import silero_vad now fails
    r = TestClient(app).post("/v1/diarize", content=(AUDIO / "alice_1.wav").read_bytes(), headers=WAV)
    assert r.status_code == 501
    error = r.json()["error"]
    assert error["type"] == "BackendUnavailableError"
    assert "silero-vad" in error["message"]
    assert "speakerembed[vad]" in error["message"]
    # the other endpoints still work
    r = TestClient(app).post("/v1/embeddings", content=(AUDIO / "alice_1.wav").read_bytes(), headers=WAV)
    assert r.status_code == 200


@needs_vad
def test_a_diarization_never_stalls_the_event_loop(app: Any, conversation: bytes) -> None:
    import httpx

    done: list[str] = []

    async def run() -> tuple[httpx.Response, httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test", timeout=120) as client:

            async def slow() -> httpx.Response:
                r = await client.post("/v1/diarize", content=conversation, headers=WAV)
                done.append("diarize")
                return r

            async def alive() -> httpx.Response:
                await asyncio.sleep(0.05)  # the diarization has started
                r = await client.get("/healthz")
                done.append("healthz")
                return r

            first, second = await asyncio.gather(slow(), alive())
            return first, second

    diarized, health = asyncio.run(run())
    assert diarized.status_code == 200, diarized.text
    assert health.status_code == 200
    assert done == ["healthz", "diarize"]  # answered while the diarization ran
