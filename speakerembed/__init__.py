"""speakerembed: Chatterbox-compatible speaker embeddings, with a typed pipeline in front.

>>> from speakerembed import embed_speaker, embed_utterances, Pipeline, SpeakerEmbedder

Importing the package is cheap: NumPy, torch, soundfile and prometheus_client load on first use.
"""

from typing import TYPE_CHECKING as _TYPE_CHECKING
from typing import Any as _Any

from ._version import __version__
from .config import Pipeline
from .errors import (
    AudioError,
    BackendUnavailableError,
    ConfigError,
    InputTooLongError,
    LibraryError,
    SpeakerEmbedError,
    UnknownVoiceError,
    WeightsError,
)

if _TYPE_CHECKING:
    from .analysis.clean import CleanReport, clean_dataset, find_outliers
    from .analysis.clustering import SpeakerClusters, bcubed, cluster_corpus, cluster_speakers
    from .analysis.diarization import Diarization, DiarizationConfig, diarize
    from .analysis.per_window import WindowedEmbeddings, embed_windows
    from .analysis.scoring import det_curve, eer, min_dcf, threshold_at
    from .analysis.sim_eval import TTSSimilarityReport, tts_similarity
    from .analysis.verify import VerificationReport, verify_trials
    from .api import clear_cache, embed_conditioning, embed_speaker, embed_utterances
    from .corpus.api import CorpusReport, embed_corpus
    from .embedder import EmbeddingResult, Failure, SpeakerEmbedder
    from .export.onnx import OnnxExport, export_onnx
    from .stages.consolidate import cosine_similarity, utt_to_spk_embed
    from .voices import Match, VoiceLibrary, pick_reference
    from .weights import WeightsInfo

__all__ = [
    "AudioError",
    "BackendUnavailableError",
    "CleanReport",
    "ConfigError",
    "CorpusReport",
    "Diarization",
    "DiarizationConfig",
    "EmbeddingResult",
    "Failure",
    "InputTooLongError",
    "LibraryError",
    "Match",
    "OnnxExport",
    "Pipeline",
    "SpeakerClusters",
    "SpeakerEmbedError",
    "SpeakerEmbedder",
    "TTSSimilarityReport",
    "UnknownVoiceError",
    "VerificationReport",
    "VoiceLibrary",
    "WeightsError",
    "WeightsInfo",
    "WindowedEmbeddings",
    "__version__",
    "bcubed",
    "clean_dataset",
    "clear_cache",
    "cluster_corpus",
    "cluster_speakers",
    "cosine_similarity",
    "det_curve",
    "diarize",
    "eer",
    "embed_conditioning",
    "embed_corpus",
    "embed_speaker",
    "embed_utterances",
    "embed_windows",
    "export_onnx",
    "find_outliers",
    "min_dcf",
    "pick_reference",
    "threshold_at",
    "tts_similarity",
    "utt_to_spk_embed",
    "verify_trials",
]

# NumPy too loads on first use (``cosine_similarity``, ``utt_to_spk_embed``), so that
# ``speakerembed --help`` starts in the interpreter's own time.
_LAZY = {
    "cosine_similarity": "stages.consolidate",
    "utt_to_spk_embed": "stages.consolidate",
    "embed_conditioning": "api",
    "embed_speaker": "api",
    "embed_utterances": "api",
    "clear_cache": "api",
    "SpeakerEmbedder": "embedder",
    "EmbeddingResult": "embedder",
    "Failure": "embedder",
    "WeightsInfo": "weights",
    "embed_windows": "analysis.per_window",
    "WindowedEmbeddings": "analysis.per_window",
    "clean_dataset": "analysis.clean",
    "find_outliers": "analysis.clean",
    "CleanReport": "analysis.clean",
    "eer": "analysis.scoring",
    "min_dcf": "analysis.scoring",
    "det_curve": "analysis.scoring",
    "threshold_at": "analysis.scoring",
    "verify_trials": "analysis.verify",
    "VerificationReport": "analysis.verify",
    "tts_similarity": "analysis.sim_eval",
    "TTSSimilarityReport": "analysis.sim_eval",
    "embed_corpus": "corpus.api",
    "CorpusReport": "corpus.api",
    "VoiceLibrary": "voices",
    "Match": "voices",
    "pick_reference": "voices",
    "export_onnx": "export.onnx",
    "OnnxExport": "export.onnx",
    "diarize": "analysis.diarization",
    "Diarization": "analysis.diarization",
    "DiarizationConfig": "analysis.diarization",
    "cluster_speakers": "analysis.clustering",
    "cluster_corpus": "analysis.clustering",
    "bcubed": "analysis.clustering",
    "SpeakerClusters": "analysis.clustering",
}


def __getattr__(name: str) -> _Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'speakerembed' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
