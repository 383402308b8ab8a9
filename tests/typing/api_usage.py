"""The public API as users call it, checked by ``mypy --strict`` (``nox -s typecheck``).

This file is type-checked, not run. ``assert_type`` pins what each call returns, and each
``# type: ignore[...]`` marks a misuse that mypy must reject: ``warn_unused_ignores`` (part of
strict mode) fails the check if one of them stops being an error.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch
from typing_extensions import assert_type

import speakerembed
from speakerembed import (
    AudioError,
    BackendUnavailableError,
    ConfigError,
    EmbeddingResult,
    Failure,
    Pipeline,
    SpeakerEmbedder,
    SpeakerEmbedError,
    WeightsError,
    WeightsInfo,
    cosine_similarity,
    embed_speaker,
    embed_utterances,
    utt_to_spk_embed,
)

Embeddings = npt.NDArray[np.float32]


def module_functions(files: list[Path], wav: npt.NDArray[np.float32], tensor: torch.Tensor) -> None:
    spk = embed_speaker(files, weights="resemblyzer")
    assert_type(spk, Embeddings)
    assert_type(embed_speaker("a.wav"), Embeddings)
    assert_type(embed_speaker(Path("a.wav"), device="cpu", precision="bf16"), Embeddings)
    assert_type(embed_speaker(wav, sample_rate=16000, pipeline=Pipeline(top_db=None)), Embeddings)
    assert_type(embed_speaker(tensor, sample_rate=44100, device=torch.device("cpu")), Embeddings)

    rows = embed_utterances([wav, wav], sample_rate=[16000, 22050], weights="resemblyzer")
    assert_type(rows, Embeddings)
    assert_type(utt_to_spk_embed(rows), Embeddings)
    assert_type(cosine_similarity(rows, spk), float)

    result = embed_utterances(files, errors="skip")
    assert_type(result, EmbeddingResult)
    assert_type(result.embeddings, Embeddings)
    assert_type(result.indices, npt.NDArray[np.int64])
    assert_type(result.ok, bool)
    for failure in result.failures:
        assert_type(failure, Failure)
        assert_type(failure.index, int)
        assert_type(failure.error, SpeakerEmbedError)
    assert_type(result.speaker_embedding(), Embeddings)

    speakerembed.clear_cache()


def embedder_object(files: list[str], wav: npt.NDArray[np.int16], module: torch.nn.Module) -> None:
    embedder = SpeakerEmbedder("resemblyzer", device="cpu", pipeline=Pipeline.chatterbox())
    assert_type(embedder.embed_speaker(files), Embeddings)
    assert_type(embedder.embed_utterances(wav, sample_rate=16000), Embeddings)
    assert_type(embedder.embed_utterances(files, errors="skip"), EmbeddingResult)
    assert_type(embedder.embeds_from_wavs([wav], 16000, as_spk=True), Embeddings)
    assert_type(
        embedder.embeds_from_wavs([wav], 44100, batch_size=None, trim_top_db=None, rate=2.0), Embeddings
    )
    assert_type(embedder.embeds_from_mels([np.ones((200, 40), np.float32)], rate=1.3), Embeddings)
    assert_type(embedder.utt_to_spk_embed(embedder.embed_utterances(files)), Embeddings)
    assert_type(
        embedder.voice_similarity(embedder.embed_utterances(files), embedder.embed_speaker(files)), float
    )
    assert_type(embedder.embed_conditioning(files[0]), Embeddings)
    assert_type(speakerembed.embed_conditioning(files, weights="resemblyzer"), Embeddings)
    info = embedder.weights_info
    assert_type(info, WeightsInfo)
    assert_type(info.name, str)
    assert_type(info.sha256, str | None)
    assert_type(info.short, str)
    assert_type(embedder.device, torch.device)

    shared = SpeakerEmbedder(encoder=module)  # e.g. a running ChatterboxTTS's .ve
    assert_type(shared.embed_speaker(files), Embeddings)
    SpeakerEmbedder(Path("ve.safetensors"), encoder="chatterbox", precision="fp32")


def pipeline_config() -> None:
    p = Pipeline(order="trim_resample", resampler="kaiser_fast", top_db=30, max_windows_per_batch=16)
    q = p.replace(top_db=None)
    assert_type(q, Pipeline)
    assert_type(p.frame_step, int)
    assert_type(p.top_db, float | None)
    assert_type(p.trim_frames_at(48000), tuple[int, int])


def misuse(files: list[str]) -> None:
    Pipeline(resampler="kaiser-fast")  # type: ignore[arg-type]
    Pipeline(order="resample-trim")  # type: ignore[arg-type]
    Pipeline(top_db="20")  # type: ignore[arg-type]
    SpeakerEmbedder("resemblyzer", precision="fp16")  # type: ignore[arg-type]
    embed_utterances(files, errors="ignore")  # type: ignore[call-overload]
    embed_speaker(files, errors="skip")  # type: ignore[call-arg]
    embed_speaker(files, sample_rate="16k")  # type: ignore[arg-type]
    p = Pipeline()
    p.top_db = 10  # type: ignore[misc]


def error_handling(files: list[str]) -> None:
    try:
        embed_speaker(files)
    except AudioError as exc:
        assert_type(exc.source, str | None)
        assert_type(exc.stage, str | None)
    except (WeightsError, BackendUnavailableError, ConfigError) as exc:
        assert_type(str(exc), str)
    except ValueError:  # AudioError and ConfigError are ValueErrors too
        pass
