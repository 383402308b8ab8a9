"""``speakerembed serve``: the HTTP service (:func:`speakerembed.serve.create_app`) under uvicorn."""

from __future__ import annotations

import argparse
import json
import os
import signal
from typing import Any

from . import _options as opt

__all__ = ["add_parser", "app_from_environment", "run"]

NAME = "serve"
#: The environment variable that hands the command line to each ``--workers`` process.
ARGS_VARIABLE = "SPEAKEREMBED_SERVE_ARGS"


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Add ``serve`` to the subcommands."""
    from ..serve import DEFAULT_MAX_BATCH_WINDOWS, DEFAULT_MAX_WAIT_MS

    p: argparse.ArgumentParser = sub.add_parser(
        NAME,
        help="run the HTTP service: embeddings, similarity, conditioning, windows, diarize, voices, /metrics",
        description="Serve speaker embeddings over HTTP (needs pip install 'speakerembed[serve]'). "
        "Concurrent requests' windows share encoder batches. Binds to 127.0.0.1 unless told "
        "otherwise; SIGTERM finishes the requests in flight, then exits 0.",
    )
    g = p.add_argument_group("service")
    g.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)"
    )
    g.add_argument("--port", type=opt.positive_int, default=8000, help="port (default: 8000)")
    g.add_argument(
        "--library",
        metavar="LIB",
        default=None,
        help="serve /v1/voices from this voice library (path or URL)",
    )
    g.add_argument(
        "--api-key-file",
        metavar="F",
        default=None,
        help="require 'Authorization: Bearer <key>' on every endpoint but /healthz; the key is the "
        "file's first line",
    )
    g.add_argument(
        "--max-batch-windows",
        type=opt.positive_int,
        default=DEFAULT_MAX_BATCH_WINDOWS,
        metavar="N",
        help=f"most windows in one encoder batch, across requests (default: {DEFAULT_MAX_BATCH_WINDOWS})",
    )
    g.add_argument(
        "--max-wait-ms",
        type=opt.non_negative_float,
        default=DEFAULT_MAX_WAIT_MS,
        metavar="MS",
        help=f"how long a window waits for others to fill its batch (default: {DEFAULT_MAX_WAIT_MS:g})",
    )
    g.add_argument(
        "--max-body-mb",
        type=opt.positive_float,
        default=50.0,
        metavar="MB",
        help="largest body (default: 50)",
    )
    g.add_argument(
        "--max-queue",
        type=opt.positive_int,
        default=256,
        metavar="N",
        help="most inputs held at once; more get 503 with Retry-After (default: 256)",
    )
    g.add_argument(
        "--timeout",
        type=opt.positive_float,
        default=60.0,
        metavar="S",
        help="per-request timeout (default: 60)",
    )
    g.add_argument("--no-batching", action="store_true", help="encode each input alone (for measurements)")
    g.add_argument("--workers", type=opt.positive_int, default=1, metavar="N", help="processes (default: 1)")
    opt.add_model_options(p)
    opt.add_pipeline_options(p)
    opt.add_verbose(p)
    return p


def _read_key(path: str | None) -> str | None:
    if path is None:
        return None
    from ..errors import ConfigError

    try:
        with open(path, encoding="utf-8") as f:
            key = f.readline().strip()
    except OSError as exc:
        raise ConfigError(f"--api-key-file {path}: cannot be read ({exc.strerror}); check the path") from exc
    if not key:
        raise ConfigError(f"--api-key-file {path}: the first line is empty; write the key there")
    return key


def _open_library(location: str | None, embedder: Any) -> Any:
    """The voice library at ``location``, bound to the service's embedder (its weights checked)."""
    if location is None:
        return None
    from ..voices import VoiceLibrary

    return VoiceLibrary(location, embedder=embedder)


def build_app(args: argparse.Namespace) -> Any:
    """The app the flags describe: weights loaded and the library opened, or an error."""
    from ..serve import ServiceLimits, create_app

    try:
        from prometheus_client import CollectorRegistry
    except ImportError as exc:
        from ..errors import missing_backend

        raise missing_backend("prometheus_client", "serve", "speakerembed serve") from exc
    key = _read_key(args.api_key_file)
    registry = CollectorRegistry()
    from ..weights import resolve_weights

    resolve_weights(args.weights)  # missing weights are reported before torch is imported
    from ..embedder import SpeakerEmbedder

    opt.apply_threads(args)
    # The embedder records into the registry /metrics serves.
    embedder = SpeakerEmbedder(
        args.weights,
        device=args.device,
        precision=args.precision,
        pipeline=opt.pipeline_from_args(args),
        registry=registry,
    )
    library = _open_library(args.library, embedder)
    limits = ServiceLimits(
        max_body_mb=args.max_body_mb,
        max_duration_s=args.max_duration if args.max_duration is not None else 600.0,
        request_timeout_s=args.timeout,
        max_queue=args.max_queue,
    )
    return create_app(
        embedder,
        library=library,
        registry=registry,
        api_key=key,
        max_batch_windows=args.max_batch_windows,
        max_wait_ms=args.max_wait_ms,
        limits=limits,
        batching=not args.no_batching,
    )


def app_from_environment() -> Any:
    """The app for one ``--workers`` process, from the command line in :data:`ARGS_VARIABLE`."""
    return build_app(argparse.Namespace(**json.loads(os.environ[ARGS_VARIABLE])))


def run(args: argparse.Namespace) -> int:
    """Run ``serve`` until SIGTERM or Ctrl-C."""
    try:
        import uvicorn
    except ImportError as exc:
        from ..errors import missing_backend

        raise missing_backend("uvicorn", "serve", "speakerembed serve") from exc
    # Fail fast: weights, the key file and the library are checked before anything listens.
    app = build_app(args)
    if args.host not in ("127.0.0.1", "localhost", "::1") and args.api_key_file is None:
        opt.say(f"speakerembed serve: warning: listening on {args.host} without --api-key-file")
    # uvicorn re-raises the signal that stopped it once it has shut down; SIGTERM then means
    # "done" (exit 0), after the requests in flight are answered.
    signal.signal(signal.SIGTERM, lambda *_: None)
    grace = args.timeout + 5.0
    if args.workers > 1:
        app.state.batcher.close()
        os.environ[ARGS_VARIABLE] = json.dumps({k: v for k, v in vars(args).items() if not k.startswith("_")})
        uvicorn.run(
            "speakerembed.cli.serve:app_from_environment",
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            timeout_graceful_shutdown=grace,
        )
    else:
        uvicorn.run(app, host=args.host, port=args.port, timeout_graceful_shutdown=grace)
    return opt.ExitCode.OK
