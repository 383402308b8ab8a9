"""Preparing in worker processes (speakerembed/_engine/processes.py), forced on the CPU.

On a CUDA device ``embed_utterances`` on many files prepares them in worker processes whose mels
come back through shared memory; here ``Overrides(prepare_processes=2)`` forces the same path on
the CPU, and each test compares it with the preparation in this process on the real speech in
``../shared/data/speech``. The figures on a GPU are ``benchmarks/families/gpu.py``'s.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speakerembed import AudioError, Pipeline, SpeakerEmbedder
from speakerembed._engine import processes
from speakerembed._engine.processes import SEGMENT_PREFIX, SHM_FOLDER

ROOT = Path(__file__).resolve().parents[2]

needs_shm = pytest.mark.skipif(
    not Path(SHM_FOLDER).is_dir(), reason=f"counts shared-memory segments in {SHM_FOLDER} (Linux)"
)


def _segments(pid: int | None = None) -> list[str]:
    """This process's (or ``pid``'s) prepared-mel segments still in /dev/shm."""
    pid = os.getpid() if pid is None else pid
    return sorted(p.name for p in Path(SHM_FOLDER).glob(f"{SEGMENT_PREFIX}{pid}-*"))


@pytest.fixture
def files(librispeech_files: list[Path], tmp_path: Path) -> list[Path]:
    """Ten real utterances, a file that is not audio and a missing one, in the middle."""
    bad = tmp_path / "not_audio.wav"
    bad.write_bytes(b"this is not audio at all\n" * 20)
    good = librispeech_files[::6][:10]
    return [*good[:4], bad, *good[4:7], tmp_path / "missing.flac", *good[7:]]


# -- shared memory ------------------------------------------------------------------------------


@needs_shm
def test_a_mel_travels_through_a_segment_that_taking_unlinks() -> None:
    mel = np.random.default_rng(0).standard_normal((321, 40)).astype(np.float32)
    name = f"{SEGMENT_PREFIX}{os.getpid()}-test-0"
    shipped = processes.put(mel, name)
    assert (shipped.shape, shipped.dtype) == ((321, 40), "<f4")
    assert _segments() == [name]
    got = processes.take(shipped)
    assert _segments() == []
    assert tuple(got.shape) == (321, 40)
    np.testing.assert_array_equal(got.numpy(), mel)


def test_room_for_leaves_headroom_in_the_folder(tmp_path: Path) -> None:
    assert processes.room_for(1024, str(tmp_path))
    st = os.statvfs(tmp_path)
    assert not processes.room_for(st.f_bavail * st.f_frsize, str(tmp_path))  # twice it: no
    assert processes.room_for(10**18, str(tmp_path / "no such folder"))  # nothing to check


# -- embed_utterances, forced into worker processes ---------------------------------------------


@needs_shm
def test_worker_processes_give_the_embeddings_and_errors_of_this_process(
    embedder: SpeakerEmbedder,
    tuned: Callable[..., SpeakerEmbedder],
    files: list[Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shipped = []
    take = processes.take

    def counting(s: processes.Shipped) -> object:
        shipped.append(s)
        return take(s)

    monkeypatch.setattr(processes, "take", counting)
    pooled = tuned(prepare_processes=2)
    assert pooled.engine.prepare_processes(files, pooled.pipeline) == 2
    assert embedder.engine.prepare_processes(files, embedder.pipeline) == 0  # the CPU default
    here = embedder.embed_utterances(files, errors="skip")
    there = pooled.embed_utterances(files, errors="skip")
    assert len(shipped) == 10  # every good file's mel came through shared memory
    assert _segments() == []
    np.testing.assert_array_equal(there.indices, here.indices)
    assert len(there.indices) == 10
    np.testing.assert_allclose(there.embeddings, here.embeddings, atol=1e-6)
    assert np.sum(there.embeddings * here.embeddings, axis=1).min() >= 0.999999
    np.testing.assert_allclose(there.speech_s, here.speech_s)
    assert [(f.index, f.source, type(f.error)) for f in there.failures] == [
        (f.index, f.source, type(f.error)) for f in here.failures
    ]
    assert [f.index for f in there.failures] == [4, 8]
    assert [str(f.error) for f in there.failures] == [str(f.error) for f in here.failures]


@needs_shm
def test_the_first_bad_file_raises_and_the_workers_leave_nothing(
    tuned: Callable[..., SpeakerEmbedder], files: list[Path]
) -> None:
    with pytest.raises(AudioError, match=r"input 4 \(.*not_audio\.wav\)"):
        tuned(prepare_processes=2).embed_utterances(files)
    assert _segments() == []  # the workers had written ahead of the error: all unlinked


@needs_shm
def test_long_files_stream_in_this_process(
    embedder: SpeakerEmbedder,
    tuned: Callable[..., SpeakerEmbedder],
    librispeech_files: list[Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from speakerembed.stages import longform

    inputs = librispeech_files[::6][:8]
    pipe = Pipeline(stream_min_duration_s=6.0)
    long = [p for p in inputs if sf.info(str(p)).duration >= 6.0]
    assert 0 < len(long) < len(inputs)
    planned: list[str] = []
    plan = longform.plan_stream

    def spy(path: object, *args: object, **kwargs: object) -> object:
        planned.append(str(path))
        return plan(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(longform, "plan_stream", spy)
    there = tuned(prepare_processes=2).embed_utterances(inputs, pipeline=pipe)
    assert sorted(planned) == sorted(map(str, long))  # streamed here, each planned once
    planned.clear()
    here = embedder.embed_utterances(inputs, pipeline=pipe)
    assert sorted(planned) == sorted(map(str, long))
    assert np.sum(there * here, axis=1).min() >= 0.999999
    assert _segments() == []


def test_the_rule_keeps_the_cpu_arrays_and_unguarded_scripts_in_this_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import torch

    from speakerembed._engine.recorder import NULL_RECORDER
    from speakerembed._engine.runner import Engine
    from speakerembed._engine.schedule import MIN_PROCESS_INPUTS, Overrides, process_workers, usable_cores

    gpu = Engine(None, torch.device("cuda"), NULL_RECORDER)  # no CUDA call: only the rule is asked
    paths = [f"utt{i}.flac" for i in range(MIN_PROCESS_INPUTS)]
    monkeypatch.setattr(processes, "main_is_guarded", lambda: True)
    assert gpu.prepare_processes(paths, Pipeline()) == process_workers(usable_cores()) >= 1
    assert gpu.prepare_processes(paths[:-1], Pipeline()) == 0
    assert gpu.prepare_processes([*paths[:-1], np.zeros(16000, np.float32)], Pipeline()) == 0
    on_device = Pipeline(resampler="torchaudio", resample_device="auto")
    assert gpu.prepare_processes(paths, on_device) == 0
    cpu = Engine(None, torch.device("cpu"), NULL_RECORDER)
    assert cpu.prepare_processes(paths, Pipeline()) == 0
    monkeypatch.setattr(processes, "main_is_guarded", lambda: False)
    assert gpu.prepare_processes(paths, Pipeline()) == 0
    forced = Engine(None, torch.device("cpu"), NULL_RECORDER, Overrides(prepare_processes=3))
    assert forced.prepare_processes(paths[:5], Pipeline()) == 3  # the override needs no guard
    assert forced.prepare_processes([np.zeros(16000, np.float32)] * 5, Pipeline()) == 0


# -- the pool itself: a consumer that raises, a worker that dies --------------------------------


@needs_shm
def test_a_consumer_that_raises_leaves_no_segment(
    embedder: SpeakerEmbedder, librispeech_files: list[Path]
) -> None:
    import torch

    inputs = librispeech_files[:12]
    pipe = embedder.pipeline

    def here(index: int) -> processes.Outcome:
        return index, embedder.engine.prepare(index, inputs[index], None, pipe)

    seen = []

    def consume() -> None:
        for index, item in processes.pooled(inputs, [None] * len(inputs), pipe, 2, here):
            assert not isinstance(item, Exception)
            assert isinstance(item.mel, torch.Tensor)
            seen.append(index)
            deadline = time.monotonic() + 60
            while not _segments() and time.monotonic() < deadline:
                time.sleep(0.05)  # the workers write ahead of the consumer
            assert _segments(), "no segment written ahead: this test would not see one left behind"
            raise RuntimeError("the consumer failed")

    with pytest.raises(RuntimeError, match="the consumer failed"):
        consume()
    assert seen == [0]
    assert _segments() == []


_DIE_AFTER_WRITING = """
import os, signal
_POISON = os.environ.get("SPEAKEREMBED_TEST_DIE_AFTER_WRITING")
if _POISON:
    import multiprocessing
    from multiprocessing import shared_memory

    import soundfile

    _last = [""]
    _init = soundfile.SoundFile.__init__

    def _remember(self, file, *args, **kwargs):
        _last[0] = str(file)
        _init(self, file, *args, **kwargs)

    soundfile.SoundFile.__init__ = _remember
    _close = shared_memory.SharedMemory.close

    def _close_then_die(self):
        _close(self)
        if multiprocessing.parent_process() is not None and _POISON in _last[0]:
            os.kill(os.getpid(), signal.SIGKILL)  # a worker killed with its mel written

    shared_memory.SharedMemory.close = _close_then_die
"""

_CHILD = """
import os, sys
import numpy as np
from speakerembed import SpeakerEmbedder
from speakerembed._engine.schedule import Overrides
from speakerembed._engine.processes import SEGMENT_PREFIX

files = sys.argv[1:]
here = SpeakerEmbedder("resemblyzer", device="cpu").embed_utterances(files, errors="skip")
pooled = SpeakerEmbedder("resemblyzer", device="cpu", _overrides=Overrides(prepare_processes=2))
r = pooled.embed_utterances(files, errors="skip")
print("FAILED", [(f.index, f.error.stage, f.error.message[:24]) for f in r.failures])
print("WORST", float(np.sum(r.embeddings * here.embeddings[r.indices], axis=1).min()))


class Boom:
    # The encoder fails on its second batch: the consumer of the prepared files raises.
    def __init__(self, inner):
        self.inner, self.calls = inner, 0

    def __call__(self, windows):
        self.calls += 1
        if self.calls == 2:
            raise RuntimeError("the encoder failed")
        return self.inner(windows)


pooled.engine.encoder = Boom(pooled.engine.encoder)
os.environ.pop("SPEAKEREMBED_TEST_DIE_AFTER_WRITING")  # not inherited by the next workers
try:
    pooled.embed_utterances([f for f in files if "poison" not in f] * 3)
except Exception as exc:
    print("RAISED", type(exc).__name__, "(the encoder failed)" in str(exc))
print("LEFT", sorted(n for n in os.listdir("/dev/shm") if n.startswith(f"{SEGMENT_PREFIX}{os.getpid()}-")))
"""


@pytest.mark.slow
@needs_shm
def test_a_worker_killed_after_writing_and_a_failing_encoder_leave_nothing_behind(
    librispeech_files: list[Path], tmp_path: Path
) -> None:
    good = [str(p) for p in librispeech_files[::10][:6]]
    poison = tmp_path / "poison_take.flac"
    poison.write_bytes(Path(good[0]).read_bytes())
    inputs = [*good[:3], str(poison), *good[3:]]
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(_DIE_AFTER_WRITING)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(hook), str(ROOT)]),
        "SPEAKEREMBED_TEST_DIE_AFTER_WRITING": "poison_take",
    }
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, *inputs], env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = dict(line.split(" ", 1) for line in proc.stdout.splitlines() if " " in line)
    # The poison kills its worker twice (in the pool, then alone): an error row, the rest embedded.
    assert out["FAILED"] == "[(3, 'load', 'made the decoder crash (')]"
    assert float(out["WORST"]) >= 0.999999
    assert out["RAISED"] == "SpeakerEmbedError True"
    assert out["LEFT"] == "[]"
    assert "died with" in proc.stderr  # the broken pool was noticed and logged
    # Every segment was unlinked by the job itself, none left to the resource tracker.
    assert "resource_tracker" not in proc.stderr, proc.stderr[-3000:]
    assert "leaked" not in proc.stderr


# -- on a GPU -----------------------------------------------------------------------------------

try:
    import torch as _torch

    _CUDA = _torch.cuda.is_available()
except ImportError:  # pragma: no cover - torch is a dependency
    _CUDA = False
needs_cuda = pytest.mark.skipif(not _CUDA, reason="needs a CUDA device, and torch sees none on this machine")


@pytest.mark.gpu
@needs_cuda
@needs_shm
def test_on_a_gpu_worker_processes_feed_the_encoder_the_same_mels(
    embedder: SpeakerEmbedder, files: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from speakerembed._engine.schedule import MIN_PROCESS_INPUTS, Overrides, process_workers, usable_cores

    gpu = SpeakerEmbedder("resemblyzer", device="cuda")
    monkeypatch.setattr(processes, "main_is_guarded", lambda: True)
    many = [str(files[0])] * MIN_PROCESS_INPUTS
    assert gpu.engine.prepare_processes(many, gpu.pipeline) == process_workers(usable_cores())
    fed = SpeakerEmbedder("resemblyzer", device="cuda", _overrides=Overrides(prepare_processes=2))
    there = fed.embed_utterances(files, errors="skip")
    here = embedder.embed_utterances(files, errors="skip")
    np.testing.assert_array_equal(there.indices, here.indices)
    assert np.sum(there.embeddings * here.embeddings, axis=1).min() >= 0.9999
    assert _segments() == []
