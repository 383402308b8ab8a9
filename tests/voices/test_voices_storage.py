"""The voice library's database guarantees: several processes at once, SIGKILL, PostgreSQL for real."""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from speakerembed import ConfigError, UnknownVoiceError, VoiceLibrary

ROOT = Path(__file__).resolve().parents[2]

# A child that adds voices named PREFIX-i whose embeddings follow from i, so the parent can check
# every stored row.
CHILD = """
import sys, numpy as np
from speakerembed import VoiceLibrary

def row(prefix, i):
    rng = np.random.default_rng([ord(c) for c in prefix] + [i])
    v = np.abs(rng.normal(size=256))
    return v / np.linalg.norm(v)

location, prefix, count, batch = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
lib = VoiceLibrary(location, weights="resemblyzer")
print("ready", flush=True)
i = 0
while count < 0 or i < count:
    names = [f"{prefix}-{j}" for j in range(i, i + batch)]
    lib.add_embeddings(names, np.stack([row(prefix, j) for j in range(i, i + batch)]))
    i += batch
    print(i, flush=True)
"""


def row(prefix: str, i: int) -> npt.NDArray[np.float64]:
    rng = np.random.default_rng([ord(c) for c in prefix] + [i])
    v = np.abs(rng.normal(size=256))
    out: npt.NDArray[np.float64] = v / np.linalg.norm(v)
    return out


def child(location: str, prefix: str, count: int, batch: int) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, location, prefix, str(count), str(batch)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def check_rows(lib: VoiceLibrary, prefix: str, names: list[str]) -> None:
    for name in names:
        np.testing.assert_allclose(lib.get(name).embedding, row(prefix, int(name.split("-")[1])), atol=1e-6)


def test_several_processes_enrolling_at_once_lose_nothing(tmp_path: Path) -> None:
    location = str(tmp_path / "voices.db")
    VoiceLibrary(location, weights="resemblyzer")
    prefixes = ["p0", "p1", "p2", "p3"]
    procs = [child(location, p, 60, 1) for p in prefixes]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    lib = VoiceLibrary(location)
    names = lib.names()
    assert len(names) == 240
    assert len(set(names)) == 240
    for p in prefixes:
        mine = [n for n in names if n.startswith(p + "-")]
        assert sorted(mine, key=lambda n: int(n.split("-")[1])) == [f"{p}-{i}" for i in range(60)]
        check_rows(lib, p, mine[::7])


def test_sigkill_mid_enrolment_leaves_a_library_that_opens_and_answers(tmp_path: Path) -> None:
    location = str(tmp_path / "voices.db")
    VoiceLibrary(location, weights="resemblyzer")
    batch = 50
    for round_ in range(4):
        proc = child(location, f"k{round_}", -1, batch)
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        # Let it commit a few batches, then kill it at an arbitrary moment in the next.
        for _ in range(2 + round_):
            assert proc.stdout.readline().strip()
        time.sleep(0.003 * round_)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)  # closes the pipes
        assert proc.returncode == -signal.SIGKILL
        lib = VoiceLibrary(location)
        mine = [n for n in lib.names() if n.startswith(f"k{round_}-")]
        # Whole transactions only: every batch is all there or not at all.
        assert len(mine) >= (2 + round_) * batch
        assert len(mine) % batch == 0
        check_rows(lib, f"k{round_}", mine[:: max(len(mine) // 10, 1)])
        probe = row(f"k{round_}", 0)
        assert lib.identify_embeddings(probe)[0][0].voice == f"k{round_}-0"
        with VoiceLibrary(location) as again:
            again.add_embeddings([f"after{round_}"], probe[None, :])
        lib.close()
    import sqlite3

    with sqlite3.connect(location) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


# -- PostgreSQL, for real --------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL server: $SPEAKEREMBED_TEST_POSTGRES, or one started here with initdb + pg_ctl."""
    pytest.importorskip("psycopg", reason="the postgres extra (psycopg) is not installed")
    given = os.environ.get("SPEAKEREMBED_TEST_POSTGRES")
    if given:
        yield given
        return
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    initdb = bins[-1] if bins else shutil.which("initdb")
    if initdb is None:
        pytest.skip(
            "no PostgreSQL server binaries (Debian's postgresql package) and no SPEAKEREMBED_TEST_POSTGRES"
        )
    bindir = os.path.dirname(initdb)
    run_as: list[str] = []
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            pytest.skip("running as root without runuser, so PostgreSQL cannot be started")
        run_as = ["runuser", "-u", "postgres", "--"]
    base = tempfile.mkdtemp(prefix="speakerembed-pg-")
    if run_as:
        shutil.chown(base, "postgres")
    data = os.path.join(base, "data")
    port = _free_port()
    subprocess.run(
        [*run_as, initdb, "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8"],
        check=True,
        capture_output=True,
    )
    pg_ctl = os.path.join(bindir, "pg_ctl")
    options = f"-k {base} -p {port} -c listen_addresses='' -c fsync=off"
    subprocess.run(
        [*run_as, pg_ctl, "-D", data, "-o", options, "-l", os.path.join(base, "log"), "-w", "start"],
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql://postgres@/postgres?host={base}&port={port}"
    finally:
        subprocess.run([*run_as, pg_ctl, "-D", data, "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def pg_url(postgres_url: str) -> Iterator[str]:
    """A fresh schema per test, through search_path."""
    import psycopg

    schema = f"t{os.getpid()}_{time.monotonic_ns()}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in postgres_url else "?"
    yield f"{postgres_url}{sep}options=-csearch_path%3D{schema}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


def test_postgres_library_behaves_as_sqlite(pg_url: str) -> None:
    lib = VoiceLibrary(pg_url, weights="resemblyzer")
    v = np.stack([row("pg", i) for i in range(500)])
    names = [f"pg-{i}" for i in range(500)]
    assert lib.add_embeddings(names, v) == 500
    other = VoiceLibrary(pg_url)
    assert other.names() == names
    assert other.weights.sha256 == lib.weights.sha256
    answers = other.identify_embeddings(v[[3, 499]], top_k=3)
    assert [a[0].voice for a in answers] == ["pg-3", "pg-499"]
    brute = v[3] @ v.T
    np.testing.assert_allclose([m.score for m in answers[0]], np.sort(brute)[::-1][:3], atol=1e-5)
    with pytest.raises(ConfigError, match=r"'pg-1'.*replace=True"):
        lib.add_embeddings(["new", "pg-1"], v[:2])
    assert "new" not in other
    lib.add_embeddings(["pg-1"], v[2:3], replace=True)
    assert other.identify_embeddings(v[2], top_k=2)[0][0].voice in {"pg-1", "pg-2"}
    other.remove("pg-0")
    assert "pg-0" not in lib
    with pytest.raises(UnknownVoiceError, match="'pg-0'"):
        lib.get("pg-0")
    lib.set_conditioning("pg-5", v[5].astype(np.float32))
    np.testing.assert_allclose(other.conditioning("pg-5"), v[5], atol=1e-6)
    assert [m.voice for m in lib.nearest("pg-7", 2)] == [
        names[i] for i in np.argsort(-(v @ v[7])) if i not in (7, 0)
    ][:2]
    lib.close()
    other.close()


def test_postgres_refuses_other_weights(pg_url: str, weights_file: Path) -> None:
    from speakerembed import LibraryError

    lib = VoiceLibrary(pg_url, weights="resemblyzer")
    with pytest.raises(LibraryError, match=str(lib.weights.sha256)):
        VoiceLibrary(pg_url, weights=weights_file)


def test_postgres_several_processes_at_once(pg_url: str) -> None:
    VoiceLibrary(pg_url, weights="resemblyzer")
    procs = [child(pg_url, p, 40, 1) for p in ("q0", "q1", "q2")]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    lib = VoiceLibrary(pg_url)
    assert sorted(lib.names()) == sorted(f"{p}-{i}" for p in ("q0", "q1", "q2") for i in range(40))
    check_rows(lib, "q1", [f"q1-{i}" for i in range(0, 40, 5)])


def test_an_unreachable_server_is_one_clear_error(tmp_path: Path) -> None:
    pytest.importorskip("psycopg", reason="the postgres extra (psycopg) is not installed")
    from speakerembed import LibraryError

    url = f"postgresql://nobody:secret@/nothing?host={tmp_path}&port={_free_port()}"
    with pytest.raises(LibraryError, match="cannot be reached") as info:
        VoiceLibrary(url, weights="resemblyzer")
    assert "secret" not in str(info.value)
