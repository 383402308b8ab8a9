"""The workers x threads rule for corpus jobs (speakerembed._engine.workers)."""

from __future__ import annotations

import os

import pytest

from speakerembed._engine.workers import WORKER_BYTES, available_cores, plan_workers

PLENTY = 1 << 40


@pytest.mark.parametrize("cores", [1, 2, 16, 64])
def test_one_single_thread_worker_per_core(cores: int) -> None:
    plan = plan_workers(cores, memory_bytes=PLENTY)
    assert (plan.workers, plan.threads) == (cores, 1)
    assert plan.workers * plan.threads == cores


def test_more_threads_per_worker_divide_the_cores() -> None:
    plan = plan_workers(16, memory_bytes=PLENTY, threads_per_worker=2)
    assert (plan.workers, plan.threads) == (8, 2)
    odd = plan_workers(3, memory_bytes=PLENTY, threads_per_worker=2)
    assert (odd.workers, odd.threads) == (1, 2)
    assert plan_workers(1, memory_bytes=PLENTY, threads_per_worker=4).threads == 1


def test_memory_caps_the_workers() -> None:
    plan = plan_workers(64, memory_bytes=5 * WORKER_BYTES + 1)
    assert plan.workers == 5
    assert "memory" in plan.reason
    assert plan_workers(8, memory_bytes=1).workers == 1


def test_gpu_gets_one_encoder_process() -> None:
    assert plan_workers(16, device="cuda").workers == 1


def test_defaults_follow_this_machine() -> None:
    plan = plan_workers(memory_bytes=PLENTY)
    assert plan.workers == available_cores()
    assert 1 <= available_cores() <= (os.cpu_count() or 1)
