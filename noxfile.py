"""Development sessions: ``nox -l`` lists them; ``nox -t ci`` runs what CI runs.

torch is pinned by ``SPEAKEREMBED_TORCH`` (default ``torch==2.13.0``, a CPU wheel on the CI
machines); set it to another requirement to test against another torch.

The CI sessions' environments add up to about 15 GB (chatterbox-tts's alone is 6.4 GB), more than
some CI disks have free. With ``SPEAKEREMBED_NOX_PRUNE=1`` (``.ci/run`` sets it) each session
removes its environment when it ends, so the disk holds one at a time.
"""

from __future__ import annotations

import functools
import os
import shutil
from collections.abc import Callable
from typing import Any

import nox

nox.options.default_venv_backend = "virtualenv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["tests", "lint", "typecheck", "docs", "examples"]

PYTHON = "3.11"
TORCH = os.environ.get("SPEAKEREMBED_TORCH", "torch==2.13.0")
CHATTERBOX = "chatterbox-tts==0.1.7"
PRUNE = os.environ.get("SPEAKEREMBED_NOX_PRUNE", "") not in ("", "0")


def _pruned(func: Callable[[nox.Session], None]) -> Callable[[nox.Session], None]:
    """Run the session, then remove its environment when ``SPEAKEREMBED_NOX_PRUNE`` is set."""

    @functools.wraps(func)
    def run(session: nox.Session) -> None:
        try:
            func(session)
        finally:
            location: Any = getattr(session.virtualenv, "location", None)
            if PRUNE and location and os.path.isdir(location):
                session.log(f"SPEAKEREMBED_NOX_PRUNE: removing {location}")
                shutil.rmtree(location, ignore_errors=True)

    return run


EXTRAS = "metrics,kaiser,plot,corpus,vad,analysis,postgres,serve,onnx"


def _install(session: nox.Session, *groups: str, extras: str = EXTRAS) -> None:
    session.install(TORCH)
    session.install("-e", f".[{extras}]", TORCH)
    # The offline weights="resemblyzer" file, the light way the README recommends: the wheel
    # alone, without librosa, numba or webrtcvad (which needs a C compiler).
    session.install("--no-deps", "resemblyzer>=0.1.4")
    for group in groups:
        session.install("--group", group)


@nox.session(python=PYTHON, tags=["ci"])
@_pruned
def tests(session: nox.Session) -> None:
    """Unit and integration tests on the CPU, with the Resemblyzer weights (no network)."""
    _install(session, "test")
    session.run("pytest", "-m", "not chatterbox and not ray", *session.posargs)


@nox.session(python=PYTHON, tags=["ci"], default=False)
@_pruned
def tests_chatterbox(session: nox.Session) -> None:
    """Parity with chatterbox-tts's own VoiceEncoder (installs chatterbox-tts, torch 2.6, ~6 GB).

    chatterbox-tts pins torch 2.6, the oldest torch speakerembed supports, so this session also
    runs a core subset of the tests (stages, precision rule, embeddings) under it.
    """
    # chatterbox-tts pins NumPy 1.x; pyarrow 26+ needs NumPy 2 (the [chatterbox] extra says so too).
    session.install(CHATTERBOX, "resampy>=0.4", "resemblyzer>=0.1.4", "pyarrow>=14,<26")
    session.install("-e", ".", "--group", "test")
    session.run("pytest", "-m", "chatterbox", "-p", "no:cacheprovider", *session.posargs)
    session.run("python", "-c", "import torch; print('core tests under torch', torch.__version__)")
    session.run(
        "pytest",
        "-m",
        "not chatterbox",
        "-p",
        "no:cacheprovider",
        "tests/stages/test_stages.py",
        "tests/stages/test_precision.py",
        "tests/engine/test_schedule.py",
        "tests/test_determinism.py",
    )


@nox.session(python=PYTHON, tags=["ci"], default=False)
@_pruned
def tests_ray(session: nox.Session) -> None:
    """The Ray Data engine (``corpus --engine ray``) on a local Ray: installs ray[data]."""
    _install(session, "test", extras="ray,corpus,resemblyzer")
    session.run("pytest", "-m", "ray", "-p", "no:cacheprovider", *session.posargs)


@nox.session(python=PYTHON, tags=["ci"])
@_pruned
def lint(session: nox.Session) -> None:
    """ruff: lint and format check."""
    session.install("--group", "lint")
    session.run("ruff", "check", ".")


@nox.session(python=PYTHON, tags=["ci"])
@_pruned
def typecheck(session: nox.Session) -> None:
    """Run mypy --strict on the package and on tests/typing (the public API as users call it)."""
    _install(session, "typing")
    session.run("mypy")


@nox.session(python=PYTHON, tags=["ci"])
@_pruned
def docs(session: nox.Session) -> None:
    """Build the Sphinx docs with -n -W (nitpicky, warnings are errors) and run their doctests."""
    _install(session, "docs")
    session.run("sphinx-build", "-n", "-W", "--keep-going", "-b", "html", "docs", "docs/_build/html")
    session.run("sphinx-build", "-n", "-W", "--keep-going", "-b", "doctest", "docs", "docs/_build/doctest")


@nox.session(python=PYTHON, tags=["ci"])
@_pruned
def examples(session: nox.Session) -> None:
    """Run every example program (the tests run them too, this shows their output)."""
    _install(session)
    for script in sorted(os.listdir("examples")):
        if script.endswith(".py") and not script.startswith("_"):
            session.run("python", f"examples/{script}")


@nox.session(python=PYTHON, default=False)
def bench(session: nox.Session) -> None:
    """Every benchmark family (benchmarks/families/ via benchmarks/run.py; ``-- --only throughput``)."""
    _install(session, "test", "bench")
    session.install("-e", ".[ray]", TORCH)  # benchmarks/bench_ray.py
    session.run("python", "benchmarks/run.py", *session.posargs)


@nox.session(python=PYTHON, default=False)
def fuzz(session: nox.Session) -> None:
    """Property-based fuzzing with 10,000 hypothesis examples per property."""
    _install(session, "test")
    session.run("pytest", "tests/test_fuzz.py", "--hypothesis-profile=long", *session.posargs)
