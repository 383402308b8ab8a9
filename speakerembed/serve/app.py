"""The ASGI app: :func:`create_app` returns a Starlette application over one embedder.

Each route reads the upload, runs it through the batcher (``speakerembed.serve._batcher``)
(or the voice library, or :func:`speakerembed.diarize` on a thread of its own), and encodes the
answer as JSON. Every error is JSON,
``{"error": {"type": ..., "message": ...}}``, with the library's message and never a traceback.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as _dt
import hmac
import json
import logging
import math
import os
import re
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import AudioError, BackendUnavailableError, ConfigError, InputTooLongError, SpeakerEmbedError
from ._batcher import DEFAULT_MAX_BATCH_WINDOWS, DEFAULT_MAX_WAIT_MS, Batcher, Embedded, QueueFullError

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response

    from ..analysis.diarization import Diarization, DiarizationConfig
    from ..config import Pipeline
    from ..embedder import SpeakerEmbedder

__all__ = ["SERVICE_METRICS", "ServiceLimits", "create_app"]

logger = logging.getLogger("speakerembed.serve")


_AUDIO_TYPES = ("application/octet-stream",)

#: The service's own metrics, ``(name, type)``, beside :data:`speakerembed.metrics.CATALOGUE`.
SERVICE_METRICS: tuple[tuple[str, str], ...] = (
    ("speakerembed_serve_request_duration_seconds", "histogram"),
    ("speakerembed_serve_requests_in_flight", "gauge"),
    ("speakerembed_serve_queue_inputs", "gauge"),
    ("speakerembed_serve_batch_windows", "histogram"),
    ("speakerembed_serve_rejected_requests_total", "counter"),
)


@dataclasses.dataclass(frozen=True)
class ServiceLimits:
    """The limits a service enforces on each request.

    Attributes
    ----------
    max_body_mb : float
        Largest request body, in MiB (413 above it).
    max_duration_s : float
        Longest audio per file, in seconds (422 above it).
    max_files : int
        Most files in one request (400 above it).
    request_timeout_s : float
        Longest a request may take, in seconds (504 after it).
    max_queue : int
        Most inputs held at once across requests (503 with ``Retry-After`` above it).
    """

    max_body_mb: float = 50.0
    max_duration_s: float = 600.0
    max_files: int = 64
    request_timeout_s: float = 60.0
    max_queue: int = 256

    def __post_init__(self) -> None:
        for name in ("max_body_mb", "max_duration_s", "request_timeout_s"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ConfigError(f"{name}={value!r} must be a positive number")
        for name in ("max_files", "max_queue"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name}={value!r} must be a positive int")


class _ApiError(Exception):
    def __init__(self, status: int, kind: str, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.status, self.kind, self.message, self.reason = status, kind, message, reason


class _Metrics:
    """The service's own metrics, named as Prometheus's guides say."""

    def __init__(self, registry: CollectorRegistry, batcher: Batcher) -> None:
        from prometheus_client import Counter, Gauge, Histogram

        try:
            self.duration = Histogram(
                "speakerembed_serve_request_duration_seconds",
                "Time to answer an HTTP request, by endpoint and status code.",
                ("endpoint", "status"),
                registry=registry,
                buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
            )
            self.in_flight = Gauge(
                "speakerembed_serve_requests_in_flight", "HTTP requests being answered.", registry=registry
            )
            self.queue = Gauge(
                "speakerembed_serve_queue_inputs",
                "Inputs admitted and not yet answered (preparing, waiting or encoding).",
                registry=registry,
            )
            self.queue.set_function(lambda: float(batcher.queue_depth))
            self.batch = Histogram(
                "speakerembed_serve_batch_windows",
                "Windows in each encoder batch the service ran, across requests.",
                registry=registry,
                buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
            )
            self.rejected = Counter(
                "speakerembed_serve_rejected_requests",  # prometheus_client adds _total
                "Requests refused, by reason.",
                ("reason",),
                registry=registry,
            )
        except ValueError as exc:
            raise ConfigError(
                f"the registry already holds the service's metrics ({exc}); pass each app its own "
                "registry, or one registry to one app"
            ) from exc


def create_app(
    embedder: SpeakerEmbedder,
    *,
    library: Any = None,
    registry: CollectorRegistry | None = None,
    api_key: str | None = None,
    max_batch_windows: int = DEFAULT_MAX_BATCH_WINDOWS,
    max_wait_ms: float = DEFAULT_MAX_WAIT_MS,
    limits: ServiceLimits | None = None,
    prepare_threads: int | None = None,
    batching: bool = True,
    diarization: DiarizationConfig | None = None,
) -> Starlette:
    """Build the HTTP service over ``embedder``: a Starlette ASGI application.

    Parameters
    ----------
    embedder : SpeakerEmbedder
        The weights and the pipeline every request uses.
    library : speakerembed.VoiceLibrary or None
        Serve ``/v1/voices`` from this library; without it those routes answer 404.
    registry : prometheus_client.CollectorRegistry or None
        ``/metrics`` serves this registry, with the service's metrics registered in it. Pass the
        registry the embedder records into to serve both; ``None`` makes a new one.
    api_key : str or None
        When set, every endpoint but ``/healthz`` needs ``Authorization: Bearer <api_key>``,
        compared in constant time.
    max_batch_windows : int
        Most windows in one encoder batch, across requests.
    max_wait_ms : float
        How long the oldest waiting window waits for others to fill its batch.
    limits : ServiceLimits or None
        Body size, duration, files, timeout and queue limits.
    prepare_threads : int or None
        Threads that decode and prepare uploads (default: one per core, at least 2).
    batching : bool
        False encodes each input alone (for measurements).
    diarization : DiarizationConfig or None
        The settings ``POST /v1/diarize`` runs :func:`speakerembed.diarize` with;
        ``DiarizationConfig()`` by default.

    Returns
    -------
    starlette.applications.Starlette
        Run it with uvicorn (``speakerembed serve``), or mount it in another ASGI app.

    Raises
    ------
    ConfigError
        For invalid settings, or a registry that already holds the service's metrics.
    BackendUnavailableError
        When starlette or prometheus_client is missing (``pip install 'speakerembed[serve]'``).
    """
    try:
        from prometheus_client import CollectorRegistry
        from starlette.applications import Starlette
        from starlette.routing import Route
    except ImportError as exc:
        from ..errors import missing_backend

        raise missing_backend(exc.name or "starlette", "serve", "speakerembed serve") from exc
    from ..embedder import SpeakerEmbedder

    if not isinstance(embedder, SpeakerEmbedder):
        raise ConfigError(f"embedder={embedder!r} is not a SpeakerEmbedder; pass one")
    limits = limits if limits is not None else ServiceLimits()
    if isinstance(max_batch_windows, bool) or not isinstance(max_batch_windows, int) or max_batch_windows < 1:
        raise ConfigError(f"max_batch_windows={max_batch_windows!r} must be a positive int")
    if not (isinstance(max_wait_ms, (int, float)) and math.isfinite(max_wait_ms) and max_wait_ms >= 0):
        raise ConfigError(f"max_wait_ms={max_wait_ms!r} must be a number of milliseconds, 0 or more")
    if api_key is not None and not api_key.strip():
        raise ConfigError("api_key is empty; pass the key, or None for no authentication")
    if diarization is not None:
        from ..analysis.diarization import DiarizationConfig

        if not isinstance(diarization, DiarizationConfig):
            raise ConfigError(
                f"diarization={diarization!r} is not a DiarizationConfig; pass DiarizationConfig(...) or None"
            )
    from .._engine.schedule import usable_cores

    threads = prepare_threads if prepare_threads is not None else max(2, usable_cores())
    pipe = _capped(embedder.pipeline, limits)
    registry = registry if registry is not None else CollectorRegistry()
    metrics: _Metrics | None = None
    batcher = Batcher(
        embedder,
        max_batch_windows=max_batch_windows,
        max_wait_ms=float(max_wait_ms),
        max_queue=limits.max_queue,
        prepare_threads=threads,
        batching=batching,
        observe_batch=lambda n: metrics.batch.observe(n) if metrics is not None else None,
    )
    try:
        metrics = _Metrics(registry, batcher)
    except ConfigError:
        batcher.close()
        raise
    # Diarizations run one at a time on a thread of their own, beside the batcher; each holds one
    # place in the batcher's queue from admission until its thread is done with it.
    diarize_pool = ThreadPoolExecutor(1, thread_name_prefix="speakerembed-diarize")
    key = api_key.strip().encode() if api_key is not None else None
    state: dict[str, bool] = {"ready": False}
    weights = embedder.weights_info.short

    def endpoint(
        name: str, handler: Callable[[Request], Awaitable[dict[str, Any]]], *, auth: bool = True
    ) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            from starlette.responses import JSONResponse

            assert metrics is not None
            start = time.perf_counter()
            metrics.in_flight.inc()
            status = 200
            try:
                if auth and key is not None:
                    _check_key(request, key)
                body = await handler(request)
                response: Response = JSONResponse(body)
            except _ApiError as err:
                status = err.status
                if err.reason is not None:
                    metrics.rejected.labels(err.reason).inc()
                response = _error_response(err)
            except Exception as exc:
                logger.exception("unexpected error in %s", name)
                status = 500
                response = _error_response(
                    _ApiError(500, "InternalError", f"unexpected {type(exc).__name__}; see the service's log")
                )
            finally:
                metrics.in_flight.dec()
            status = response.status_code
            metrics.duration.labels(name, str(status)).observe(time.perf_counter() - start)
            return response

        return run

    async def embed_uploads(
        request: Request, *, conditioning: bool = False, pipeline: Pipeline | None = None
    ) -> tuple[list[str], list[Embedded]]:
        files = await _uploads(request, limits)
        names = [n for n, _ in files]
        try:
            result = await asyncio.wait_for(
                batcher.embed([d for _, d in files], pipeline=pipeline or pipe, conditioning=conditioning),
                timeout=limits.request_timeout_s,
            )
        except asyncio.TimeoutError:
            raise _ApiError(
                504,
                "Timeout",
                f"the request took more than {limits.request_timeout_s:g} s; send shorter audio, fewer "
                "files, or retry when the service is less loaded",
                "timeout",
            ) from None
        except SpeakerEmbedError as err:
            raise _library_error(err, names) from None
        return names, result

    async def healthz(request: Request) -> dict[str, Any]:
        return {"status": "ok"}

    async def readyz(request: Request) -> dict[str, Any]:
        if not state["ready"]:
            raise _ApiError(
                503, "NotReady", "the service is loading its weights or warming up; retry shortly"
            )
        return {"status": "ready", "weights": weights, "device": str(embedder.device)}

    async def embeddings(request: Request) -> dict[str, Any]:
        speaker = _flag(request, "speaker")
        names, result = await embed_uploads(request)
        body: dict[str, Any] = {
            "weights": weights,
            "embeddings": [
                {
                    "file": n,
                    "embedding": r.embedding.tolist(),
                    "duration_s": r.duration_s,
                    "speech_s": r.speech_s,
                }
                for n, r in zip(names, result, strict=True)
            ],
        }
        if speaker:
            from ..stages.consolidate import utt_to_spk_embed

            body["speaker_embedding"] = utt_to_spk_embed(np.stack([r.embedding for r in result])).tolist()
        return body

    async def similarity(request: Request) -> dict[str, Any]:
        names, result = await embed_uploads(request)
        if len(result) != 2:
            raise _ApiError(400, "BadRequest", f"sent {len(result)} files; /v1/similarity takes exactly two")
        return {
            "weights": weights,
            "files": names,
            "similarity": float(np.dot(result[0].embedding, result[1].embedding)),
        }

    async def conditioning(request: Request) -> dict[str, Any]:
        names, result = await embed_uploads(request, conditioning=True)
        cond = np.mean(np.stack([r.embedding for r in result]), axis=0, dtype=np.float32)
        return {"weights": weights, "files": names, "conditioning": cond.tolist()}

    async def windows(request: Request) -> dict[str, Any]:
        names, result = await embed_uploads(request)
        if len(result) != 1:
            raise _ApiError(400, "BadRequest", f"sent {len(result)} files; /v1/windows takes one")
        r = result[0]
        return {
            "weights": weights,
            "file": names[0],
            "duration_s": r.duration_s,
            "speech_s": r.speech_s,
            "start_s": r.start_s.tolist(),
            "end_s": r.end_s.tolist(),
            "embeddings": r.windows.tolist(),
            "similarity_to_file": (r.windows @ r.embedding).tolist(),
        }

    async def diarize(request: Request) -> dict[str, Any]:
        missing = _vad_missing()
        if missing is not None:
            raise _ApiError(501, "BackendUnavailableError", missing, "unavailable")
        counts = _speaker_counts(request)
        files = await _uploads(request, limits)
        if len(files) != 1:
            raise _ApiError(400, "BadRequest", f"sent {len(files)} files; /v1/diarize takes one", "too_many")
        name, data = files[0]
        try:
            batcher.reserve()
        except QueueFullError as err:
            raise _library_error(err, []) from None

        def work() -> Diarization:
            try:
                return _diarize_upload(embedder, data, name, pipe.max_duration_s, diarization, counts)
            finally:
                batcher.release()

        job = diarize_pool.submit(work)
        try:
            d = await asyncio.wait_for(asyncio.wrap_future(job), timeout=limits.request_timeout_s)
        except asyncio.TimeoutError:
            if job.cancel():  # it never started: its place was not freed by work()
                batcher.release()
            raise _ApiError(
                504,
                "Timeout",
                f"the diarization took more than {limits.request_timeout_s:g} s; send shorter audio, "
                "or start the service with a longer --timeout",
                "timeout",
            ) from None
        except BackendUnavailableError as err:
            raise _ApiError(501, type(err).__name__, str(err), "unavailable") from None
        except ImportError as err:
            raise _ApiError(501, "BackendUnavailableError", _vad_message(err), "unavailable") from None
        except SpeakerEmbedError as err:
            if isinstance(err, AudioError):
                err.source = f"file {name!r}"
            api = _library_error(err, [name])
            if isinstance(err, AudioError) and err.stage == "vad":
                # The library's fix is a Python keyword; say it in the client's terms.
                found = str(err).split(";", 1)[0]
                api.message = f"{found}; send a recording with speech in it"
                api.reason = "no_speech"
            raise api from None
        seconds = d.speaker_seconds()
        body: dict[str, Any] = {"weights": weights, "file": name, "uri": d.uri}
        body.update(json.loads(d.to_json()))
        body.update(
            duration_s=d.duration_s,
            speech_s=d.speech_s,
            speakers=[
                {
                    "speaker": label,
                    "duration_s": round(seconds[label], 3),
                    "embedding": np.asarray(emb, dtype=np.float32).tolist(),
                }
                for label, emb in d.speaker_embeddings.items()
            ],
        )
        return body

    def voices() -> Any:
        if library is None:
            raise _ApiError(
                404, "NoLibrary", "this service has no voice library; start it with --library LIB"
            )
        return library

    async def in_thread(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        from starlette.concurrency import run_in_threadpool

        try:
            return await run_in_threadpool(fn, *args, **kwargs)
        except SpeakerEmbedError as err:
            raise _library_error(err, []) from None
        except LookupError as err:
            raise _ApiError(404, "NotFound", str(err).strip("'\"")) from None

    async def voice_list(request: Request) -> dict[str, Any]:
        return {"voices": list(await in_thread(voices().names))}

    async def voice_show(request: Request) -> dict[str, Any]:
        name = _voice_name(request)
        voice = await in_thread(voices().get, name)
        body = _jsonable(voice)
        if isinstance(body, dict) and getattr(voice, "embedding", None) is not None:
            body["embedding"] = np.asarray(voice.embedding, dtype=np.float32).tolist()
        return {"voice": body}

    async def voice_enroll(request: Request) -> dict[str, Any]:
        lib = voices()
        name = _voice_name(request)
        files = await _uploads(request, limits)
        try:
            done = await asyncio.wait_for(
                in_thread(lib.enroll, name, [d for _, d in files], replace=_flag(request, "replace")),
                timeout=limits.request_timeout_s,
            )
        except asyncio.TimeoutError:
            raise _ApiError(
                504, "Timeout", "enrolment took too long; send fewer or shorter clips", "timeout"
            ) from None
        return {"voice": _jsonable(done) if done is not None else name, "files": [n for n, _ in files]}

    async def voice_remove(request: Request) -> dict[str, Any]:
        name = _voice_name(request)
        await in_thread(voices().remove, name)
        return {"removed": name}

    async def voice_nearest(request: Request) -> dict[str, Any]:
        name = _voice_name(request)
        k = _int_param(request, "k", 5)
        return {"voice": name, "nearest": _jsonable(await in_thread(voices().nearest, name, k))}

    async def voice_identify(request: Request) -> dict[str, Any]:
        lib = voices()
        top_k = _int_param(request, "top_k", 5)
        # Queries are embedded as the library's own voices were: with its pipeline.
        own = getattr(lib, "pipeline", None)
        names, result = await embed_uploads(
            request, pipeline=_capped(own, limits) if own is not None else None
        )
        answers = await in_thread(
            lib.identify_embeddings, np.stack([r.embedding for r in result]), top_k=top_k
        )
        return {"files": names, "results": _jsonable(answers)}

    async def metrics_text(request: Request) -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
        from starlette.responses import Response as Plain

        if key is not None:
            try:
                _check_key(request, key)
            except _ApiError as err:
                assert metrics is not None
                metrics.rejected.labels("unauthorized").inc()
                return _error_response(err)
        return Plain(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    import contextlib
    from collections.abc import AsyncIterator

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        from starlette.concurrency import run_in_threadpool

        await run_in_threadpool(batcher.warm_up)
        state["ready"] = True
        try:
            yield
        finally:
            state["ready"] = False
            await run_in_threadpool(batcher.close)
            await run_in_threadpool(diarize_pool.shutdown, True)

    routes = [
        Route("/healthz", endpoint("/healthz", healthz, auth=False), methods=["GET"]),
        Route("/readyz", endpoint("/readyz", readyz), methods=["GET"]),
        Route("/metrics", metrics_text, methods=["GET"]),
        Route("/v1/embeddings", endpoint("/v1/embeddings", embeddings), methods=["POST"]),
        Route("/v1/similarity", endpoint("/v1/similarity", similarity), methods=["POST"]),
        Route("/v1/conditioning", endpoint("/v1/conditioning", conditioning), methods=["POST"]),
        Route("/v1/windows", endpoint("/v1/windows", windows), methods=["POST"]),
        Route("/v1/diarize", endpoint("/v1/diarize", diarize), methods=["POST"]),
        Route("/v1/voices", endpoint("/v1/voices", voice_list), methods=["GET"]),
        Route("/v1/voices/identify", endpoint("/v1/voices/identify", voice_identify), methods=["POST"]),
        Route("/v1/voices/{name}", endpoint("/v1/voices/{name}", voice_show), methods=["GET"]),
        Route("/v1/voices/{name}", endpoint("/v1/voices/{name}", voice_enroll), methods=["PUT"]),
        Route("/v1/voices/{name}", endpoint("/v1/voices/{name}", voice_remove), methods=["DELETE"]),
        Route(
            "/v1/voices/{name}/nearest", endpoint("/v1/voices/{name}/nearest", voice_nearest), methods=["GET"]
        ),
    ]
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={404: _not_found, 405: _not_allowed})
    app.state.batcher = batcher
    app.state.registry = registry
    return app


def _capped(pipeline: Pipeline, limits: ServiceLimits) -> Pipeline:
    """``pipeline`` with ``max_duration_s`` at most the service's limit."""
    cap = pipeline.max_duration_s
    return pipeline.replace(
        max_duration_s=limits.max_duration_s if cap is None else min(cap, limits.max_duration_s)
    )


# -- requests ------------------------------------------------------------------------------------


def _check_key(request: Request, key: bytes) -> None:
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), key):
        raise _ApiError(
            401,
            "Unauthorized",
            "missing or wrong API key; send the header 'Authorization: Bearer <key>' with the key "
            "in the service's --api-key-file",
            "unauthorized",
        )


def _flag(request: Request, name: str) -> bool:
    value = request.query_params.get(name, "false").lower()
    if value in ("1", "true", "yes"):
        return True
    if value in ("0", "false", "no", ""):
        return False
    raise _ApiError(400, "BadRequest", f"?{name}={value!r} is not true or false")


def _int_param(request: Request, name: str, default: int) -> int:
    text = request.query_params.get(name)
    if text is None:
        return default
    if not text.isdigit() or not 1 <= int(text) <= 1000:
        raise _ApiError(400, "BadRequest", f"?{name}={text!r} is not a whole number from 1 to 1000")
    return int(text)


def _count(request: Request, name: str) -> int | None:
    text = request.query_params.get(name)
    if text is None:
        return None
    if not text.isdigit() or not 1 <= int(text) <= 100:
        raise _ApiError(
            400,
            "BadRequest",
            f"?{name}={text!r} is not a whole number of speakers from 1 to 100",
            "bad_request",
        )
    return int(text)


def _speaker_counts(request: Request) -> dict[str, int | None]:
    """``num_speakers``, ``min_speakers`` and ``max_speakers`` from the query, checked together."""
    n, lo, hi = (_count(request, k) for k in ("num_speakers", "min_speakers", "max_speakers"))
    clash = None
    if n is not None and lo is not None and lo > n:
        clash = f"?min_speakers={lo} contradicts ?num_speakers={n}; send one or the other"
    elif n is not None and hi is not None and hi < n:
        clash = f"?max_speakers={hi} contradicts ?num_speakers={n}; send one or the other"
    elif lo is not None and hi is not None and lo > hi:
        clash = f"?min_speakers={lo} is above ?max_speakers={hi}; swap them"
    if clash is not None:
        raise _ApiError(400, "BadRequest", clash, "bad_request")
    return {"num_speakers": n, "min_speakers": lo, "max_speakers": hi}


def _vad_message(exc: BaseException | None = None) -> str:
    why = f" ({exc})" if exc is not None else ""
    return (
        f"POST /v1/diarize needs silero-vad, which is not installed where the service runs{why}; "
        "install it there (pip install 'speakerembed[vad]') and restart the service"
    )


def _vad_missing() -> str | None:
    """Why ``/v1/diarize`` cannot run here (silero-vad missing), or None."""
    import importlib.util

    try:
        found = importlib.util.find_spec("silero_vad") is not None
    except (ImportError, ValueError):
        found = False
    return None if found else _vad_message()


def _diarize_upload(
    embedder: SpeakerEmbedder,
    data: bytes,
    name: str,
    max_duration_s: float | None,
    config: DiarizationConfig | None,
    counts: dict[str, int | None],
) -> Diarization:
    """Decode one upload in memory (refusing it above ``max_duration_s``) and diarize it."""
    from ..analysis.diarization import diarize, input_uri
    from ..stages.load import load_audio

    wave, rate = load_audio(data, max_duration_s=max_duration_s, source=f"file {name!r}")
    return diarize(
        wave,
        sample_rate=rate,
        embedder=embedder,
        config=config,
        uri=input_uri(name),
        num_speakers=counts["num_speakers"],
        min_speakers=counts["min_speakers"],
        max_speakers=counts["max_speakers"],
    )


def _voice_name(request: Request) -> str:
    """The ``{name}`` of the path, checked by the library's rule (:func:`speakerembed.voices.check_name`)."""
    from ..voices import check_name

    name = str(request.path_params["name"])
    try:
        return check_name(name[:200])
    except ConfigError as err:
        raise _ApiError(400, "ConfigError", str(err), "bad_request") from None


async def _read_body(request: Request, limit: int) -> bytes:
    too_big = _ApiError(
        413,
        "PayloadTooLarge",
        f"the body is larger than the service's limit of {limit / 2**20:g} MiB; send less audio per "
        "request, or start the service with a larger --max-body-mb",
        "body_too_large",
    )
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_big
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_big
        chunks.append(chunk)
    return b"".join(chunks)


async def _uploads(request: Request, limits: ServiceLimits) -> list[tuple[str, bytes]]:
    """The uploaded files as ``(name, bytes)``: a raw audio body, or multipart parts."""
    ctype = request.headers.get("content-type", "")
    kind = ctype.split(";", 1)[0].strip().lower()
    multipart = kind == "multipart/form-data"
    if not (multipart or kind.startswith("audio/") or kind in _AUDIO_TYPES):
        raise _ApiError(
            415,
            "UnsupportedMediaType",
            f"Content-Type {kind or '(none)'!r} is not audio; send the file's bytes as audio/* or "
            "application/octet-stream (curl --data-binary @a.wav -H 'Content-Type: audio/wav'), or "
            "files as multipart/form-data (curl -F file=@a.wav)",
            "unsupported_type",
        )
    body = await _read_body(request, int(limits.max_body_mb * 2**20))
    files = _multipart(ctype, body) if multipart else [("upload", body)]
    if not files:
        raise _ApiError(
            400, "BadRequest", "the request holds no file; send one (curl -F file=@a.wav)", "no_file"
        )
    if len(files) > limits.max_files:
        raise _ApiError(
            400,
            "BadRequest",
            f"sent {len(files)} files; one request takes at most {limits.max_files}",
            "too_many",
        )
    return files


def _multipart(content_type: str, body: bytes) -> list[tuple[str, bytes]]:
    """Parse a multipart/form-data body in memory: ``(filename, bytes)`` per file part."""
    from python_multipart.multipart import MultipartParser, parse_options_header

    _, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if not boundary:
        raise _ApiError(400, "BadRequest", "the multipart body has no boundary in its Content-Type")
    parts: list[tuple[dict[bytes, bytes], bytes]] = []
    cur: dict[str, Any] = {}

    def begin() -> None:
        cur.update(headers={}, data=bytearray(), field=b"", value=b"")

    def field(data: bytes, start: int, end: int) -> None:
        cur["field"] += data[start:end]

    def value(data: bytes, start: int, end: int) -> None:
        cur["value"] += data[start:end]

    def header_end() -> None:
        cur["headers"][cur["field"].lower()] = cur["value"]
        cur["field"], cur["value"] = b"", b""

    def data(chunk: bytes, start: int, end: int) -> None:
        cur["data"] += chunk[start:end]

    def end() -> None:
        parts.append((cur["headers"], bytes(cur["data"])))

    callbacks: Any = {
        "on_part_begin": begin,
        "on_header_field": field,
        "on_header_value": value,
        "on_header_end": header_end,
        "on_part_data": data,
        "on_part_end": end,
    }
    try:
        parser = MultipartParser(boundary, callbacks)
        parser.write(body)
        parser.finalize()
    except Exception as exc:  # noqa: BLE001 - python-multipart raises several types
        raise _ApiError(
            400, "BadRequest", f"the multipart body cannot be parsed ({exc})", "bad_multipart"
        ) from None
    files: list[tuple[str, bytes]] = []
    for headers, content in parts:
        _, disp = parse_options_header(headers.get(b"content-disposition", b""))
        filename = disp.get(b"filename")
        if filename is None:
            continue  # a form field, not a file
        name = filename.decode("utf-8", "replace")
        files.append((os.path.basename(name.replace("\\", "/")) or f"file {len(files)}", content))
    return files


# -- answers -------------------------------------------------------------------------------------


def _library_error(err: SpeakerEmbedError, names: list[str]) -> _ApiError:
    source = err.source or ""
    match = re.match(r"input (\d+)", source)
    if match and int(match.group(1)) < len(names):
        err.source = f"file {names[int(match.group(1))]!r}"
    message = str(err)
    if isinstance(err, QueueFullError):
        return _ApiError(503, "QueueFullError", message, "queue_full")
    if isinstance(err, InputTooLongError):
        return _ApiError(422, type(err).__name__, message, "too_long")
    if isinstance(err, AudioError):
        return _ApiError(422, type(err).__name__, message, "bad_audio")
    if isinstance(err, ConfigError):
        return _ApiError(400, type(err).__name__, message, "bad_request")
    if isinstance(err, LookupError):
        return _ApiError(404, type(err).__name__, message)
    return _ApiError(500, type(err).__name__, message)


def _error_response(err: _ApiError) -> Response:
    from starlette.responses import JSONResponse

    headers = {}
    if err.status == 503:
        headers["Retry-After"] = "1"
    if err.status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse({"error": {"type": err.kind, "message": err.message}}, err.status, headers=headers)


async def _not_found(request: Request, exc: Exception) -> Response:
    return _error_response(
        _ApiError(404, "NotFound", f"no endpoint {request.url.path}; see /v1/... in the docs")
    )


async def _not_allowed(request: Request, exc: Exception) -> Response:
    return _error_response(
        _ApiError(405, "MethodNotAllowed", f"{request.method} is not allowed on {request.url.path}")
    )


def _jsonable(obj: Any) -> Any:
    """A JSON-able copy: ``to_dict()``, dataclasses and named tuples as dicts, arrays as lists."""
    if callable(getattr(obj, "to_dict", None)):
        return _jsonable(obj.to_dict())
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if hasattr(obj, "_asdict"):
        return {k: _jsonable(v) for k, v in obj._asdict().items()}
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, (_dt.datetime, _dt.date)):
        return obj.isoformat()
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    return str(obj)
