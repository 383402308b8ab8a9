"""The embedder spec (speakerembed.corpus.spec): what another process builds the job's embedder from."""

from __future__ import annotations

import dataclasses
import pickle
import socket
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from speakerembed import ConfigError, Pipeline, SpeakerEmbedder, WeightsError
from speakerembed.corpus.spec import (
    ACTORS_NEED_WEIGHTS,
    MISMATCH_IN_A_WORKER,
    WORKERS_NEED_WEIGHTS,
    EmbedderSpec,
    weights_to_ship,
)


@pytest.fixture
def threads() -> Iterator[int]:
    # load() sets torch's threads, as a worker would: give them back after the test.
    saved = torch.get_num_threads()
    yield saved
    torch.set_num_threads(saved)


def test_a_spec_survives_pickle_and_loads_the_same_embedder(embedder: SpeakerEmbedder, threads: int) -> None:
    pipe = Pipeline(top_db=30.0)
    spec = EmbedderSpec.of(embedder, pipeline=pipe, device="cpu", threads=threads)
    assert spec.weights == "resemblyzer"
    assert spec.precision == embedder.precision
    assert spec.weights_sha256 == embedder.weights_info.sha256
    back = pickle.loads(pickle.dumps(spec))
    assert back == spec
    loaded = back.load()
    assert loaded.weights_info == embedder.weights_info
    assert loaded.pipeline == pipe
    assert torch.get_num_threads() == threads
    wave = np.random.default_rng(0).standard_normal(32000).astype(np.float32) * 0.1
    np.testing.assert_allclose(
        loaded.embed_utterances(wave, sample_rate=16000), embedder.embed_utterances(wave, sample_rate=16000)
    )


def test_a_spec_of_a_weights_file_ships_its_path(weights_file: Path, threads: int) -> None:
    own = SpeakerEmbedder(weights_file, device="cpu")
    spec = EmbedderSpec.of(own)
    assert spec.weights == str(weights_file) == weights_to_ship(own)
    assert spec.pipeline == own.pipeline


def test_other_weights_raise_a_weights_error_naming_the_host(embedder: SpeakerEmbedder, threads: int) -> None:
    good = EmbedderSpec.of(embedder, device="cpu", threads=threads)
    spec = dataclasses.replace(good, weights_sha256="0" * 64)
    with pytest.raises(WeightsError, match=r"sha256.*same weights on every node") as info:
        spec.load()
    assert socket.gethostname() in str(info.value)
    assert "0" * 64 in str(info.value)
    assert str(embedder.weights_info.sha256) in str(info.value)
    with pytest.raises(WeightsError, match=r"did the file change.*workers=0 \(--workers 0\)"):
        spec.verify(embedder, mismatch=MISMATCH_IN_A_WORKER)


def test_an_encoder_module_passed_in_cannot_travel(embedder: SpeakerEmbedder) -> None:
    own = SpeakerEmbedder(encoder=embedder.encoder.module)  # weights from a module: "instance"
    assert weights_to_ship(own) is None
    with pytest.raises(ConfigError, match=r"weights= \(--weights\), or workers=0 \(--workers 0\)"):
        EmbedderSpec.of(own)
    with pytest.raises(ConfigError, match=r"Ray engine.*weights= \(--weights\)"):
        EmbedderSpec.of(own, refusal=ACTORS_NEED_WEIGHTS)
    assert WORKERS_NEED_WEIGHTS != ACTORS_NEED_WEIGHTS
