"""The one scheduling rule (speakerembed._engine.schedule.plan), as tables."""

from __future__ import annotations

import os

import pytest

from speakerembed import ConfigError
from speakerembed._engine.schedule import (
    MAX_PREPARE_PROCESSES,
    MAX_PREPARE_THREADS,
    MIN_PROCESS_INPUTS,
    Overrides,
    Schedule,
    batch_layout,
    many_core_split,
    plan,
    prepare_processes,
    preparing_threads,
    process_workers,
    usable_cores,
)

# (cores, torch threads, concurrent calls) -> streams, on a CPU.
STREAMS = [
    (2, 2, True, 2),
    (2, 1, True, 1),
    (8, 8, True, 8),
    (8, 4, True, 4),
    (4, 8, True, 4),
    (16, 16, True, 16),
    (64, 32, True, 32),
    (1, 1, True, 1),  # one core: laid out for one, no streams
    # An encoder of the caller's own may not be safe to call from several threads.
    (2, 2, False, 1),
    (16, 16, False, 1),
]


@pytest.mark.parametrize(("cores", "threads", "concurrent", "streams"), STREAMS)
def test_streams_follow_torch_threads_on_a_cpu_only(
    cores: int, threads: int, concurrent: bool, streams: int
) -> None:
    assert plan(10, "cpu", cores, threads, concurrent).streams == streams
    assert plan(10, "cuda", cores, threads, concurrent).streams == 1


# cores -> threads preparing beside the streams.
BESIDE = [(1, 1), (2, 1), (7, 1), (8, 2), (15, 3), (16, 4), (24, 6), (64, 8), (256, 8)]


@pytest.mark.parametrize(("cores", "expected"), BESIDE)
def test_on_many_cores_a_quarter_prepares_beside_the_streams(cores: int, expected: int) -> None:
    assert preparing_threads(cores) == expected
    if cores >= 2:
        s = plan(100, "cpu", cores, cores, True)
        assert (s.streams, s.prepare_threads, s.encoder_threads) == (cores, expected, 1)
        assert s.prefetch_depth == (2 * expected if expected > 1 else 0)


# (cores, torch threads) -> (encoder threads, preparing threads), or None.
SPLIT = [
    (2, 2, None),  # bursts: measured better on 2 cores
    (8, 8, None),  # below MANY_CORES: not measured, bursts stay
    (16, 16, (12, 4)),
    (16, 8, None),  # the caller left cores free: a prefetch thread already overlaps
    (64, 64, (56, 8)),  # at most MAX_PREPARE_THREADS preparing
]


@pytest.mark.parametrize(("cores", "threads", "expected"), SPLIT)
def test_many_core_split_leaves_a_quarter_to_preparation(
    cores: int, threads: int, expected: tuple[int, int] | None
) -> None:
    assert many_core_split("cpu", cores, threads) == expected
    assert many_core_split("cuda", cores, threads) is None
    s = plan(100, "cpu", cores, threads, concurrent_calls=False)
    if expected is None:
        assert s.encoder_threads is None
    else:
        assert (s.encoder_threads, s.prepare_threads, s.prefetch_depth) == (
            expected[0],
            expected[1],
            2 * expected[1],
        )


# (n_items, device, cores, torch threads, concurrent, overrides) -> Schedule.
PLANS = [
    # One input: prepared in line; with streams, on one torch thread.
    (1, "cpu", 4, 4, True, Overrides(), Schedule(4, 0, 1, 1, 4)),
    (1, "cpu", 4, 4, False, Overrides(), Schedule(1, 0, 1, None, 4)),
    # 2 cores, streams: in line, no prefetch thread.
    (86, "cpu", 2, 2, True, Overrides(), Schedule(2, 0, 1, 1, 2)),
    # 16 cores, streams: bursts on 4 threads driven by a prefetch thread 2 bursts deep.
    (6, "cpu", 16, 16, True, Overrides(encoder_streams=2), Schedule(2, 8, 4, 1, 16)),
    # No streams, torch on every core: bursts between the batches, one thread per core.
    (86, "cpu", 2, 2, False, Overrides(), Schedule(1, 0, 2, None, 2)),
    # No streams, a core free: a prefetch thread overlaps, preparation stays in it.
    (86, "cpu", 4, 2, False, Overrides(), Schedule(1, 2, 1, None, 4)),
    # A GPU: every core (at most 8) prepares in bursts; a prefetch thread when torch leaves a core.
    (86, "cuda", 16, 16, True, Overrides(), Schedule(1, 0, MAX_PREPARE_THREADS, None, 1)),
    (3, "cuda", 16, 16, True, Overrides(), Schedule(1, 0, 3, None, 1)),
    (86, "cuda", 16, 4, True, Overrides(), Schedule(1, 2, MAX_PREPARE_THREADS, None, 1)),
    # Overrides: fixed choices win, and turn the many-core split off.
    (10, "cpu", 2, 2, False, Overrides(prefetch_depth=0, prepare_threads=3), Schedule(1, 0, 3, None, 2)),
    (10, "cpu", 16, 16, False, Overrides(prefetch_depth=2), Schedule(1, 2, 1, None, 16)),
    (10, "cpu", 2, 2, True, Overrides(encoder_streams=1), Schedule(1, 0, 2, None, 2)),
    (10, "cpu", 2, 2, False, Overrides(encoder_streams=4), Schedule(1, 0, 2, None, 2)),
    (10, "cpu", 2, 2, True, Overrides(cores=16, torch_threads=16), Schedule(16, 8, 4, 1, 16)),
]


@pytest.mark.parametrize(("n", "device", "cores", "threads", "concurrent", "overrides", "expected"), PLANS)
def test_plan(
    n: int, device: str, cores: int, threads: int, concurrent: bool, overrides: Overrides, expected: Schedule
) -> None:
    assert plan(n, device, cores, threads, concurrent, overrides) == expected


@pytest.mark.parametrize(
    ("device", "cores", "layout"), [("cpu", 1, 1), ("cpu", 2, 2), ("cpu", 16, 16), ("cuda", 16, 1)]
)
def test_batches_are_laid_out_for_the_machine_not_the_threads(device: str, cores: int, layout: int) -> None:
    assert batch_layout(device, cores) == layout
    for threads in (1, 2, cores):
        assert plan(10, device, cores, threads, True).layout == layout


@pytest.mark.parametrize(
    "bad",
    [
        {"prefetch_depth": -1},
        {"prepare_threads": 0},
        {"encoder_streams": 0},
        {"cores": 0},
        {"torch_threads": True},
        {"prepare_processes": -1},
    ],
)
def test_overrides_are_checked(bad: dict[str, int]) -> None:
    with pytest.raises(ConfigError, match=next(iter(bad))):
        Overrides(**bad)


def test_usable_cores_honours_affinity() -> None:
    cores = usable_cores()
    assert 1 <= cores <= (os.cpu_count() or 1)
    if hasattr(os, "sched_getaffinity"):
        assert cores == len(os.sched_getaffinity(0))


N = MIN_PROCESS_INPUTS
# (inputs, of them files, device, prepares on the device, cores, overrides) -> worker processes.
PROCESSES = [
    (N, N, "cuda", False, 16, Overrides(), 15),  # every core but one
    (N, N, "cuda", False, 64, Overrides(), MAX_PREPARE_PROCESSES),
    (N, N, "cuda", False, 4, Overrides(), 3),
    (N, N, "cuda", False, 1, Overrides(), 1),
    (N - 1, N - 1, "cuda", False, 16, Overrides(), 0),  # too few to pay for the start-up
    (N, N - 1, "cuda", False, 16, Overrides(), 0),  # an array among them: threads
    (N, N, "cuda", True, 16, Overrides(), 0),  # the pipeline prepares on the GPU
    (N, N, "cpu", False, 16, Overrides(), 0),  # the CPU keeps its threads (the encoder's speed)
    (N, N, "mps", False, 16, Overrides(), 0),
    (10, 10, "cpu", False, 2, Overrides(prepare_processes=2), 2),  # forced, as the tests do
    (3, 3, "cpu", False, 2, Overrides(prepare_processes=8), 3),  # never more than the inputs
    (1, 1, "cpu", False, 2, Overrides(prepare_processes=2), 0),  # one input: nothing to share
    (10, 9, "cpu", False, 2, Overrides(prepare_processes=2), 0),  # only files travel
    (N, N, "cuda", False, 16, Overrides(prepare_processes=0), 0),
]


@pytest.mark.parametrize(("n", "files", "device", "on_device", "cores", "o", "expected"), PROCESSES)
def test_many_files_on_a_gpu_prepare_in_worker_processes(
    n: int, files: int, device: str, on_device: bool, cores: int, o: Overrides, expected: int
) -> None:
    assert prepare_processes(n, files, device, on_device, cores, o) == expected


def test_process_workers_leave_the_encoder_a_core() -> None:
    got = [process_workers(c) for c in (1, 2, 3, 8, 16, 33, 64)]
    assert got == [1, 1, 2, 7, 15, 32, MAX_PREPARE_PROCESSES]
