"""The public surface: ``speakerembed.__all__``, every module's ``__all__``, and a cheap import."""

from __future__ import annotations

import importlib
import json
import pkgutil
import subprocess
import sys
import types

import pytest

import speakerembed

MODULES = sorted(
    name
    for _, name, _ in pkgutil.walk_packages(speakerembed.__path__, "speakerembed.")
    if name != "speakerembed.__main__"
)
# Modules whose import needs an optional package; checked only where it is installed.
OPTIONAL = {"speakerembed.metrics": "prometheus_client", "speakerembed.corpus.ray_engine": "ray"}


def test_all_lists_exactly_the_public_names() -> None:
    # httpx's test_exported_members: every public attribute of the package is in __all__, and
    # everything in __all__ is importable from the package.
    public = {name for name in dir(speakerembed) if not name.startswith("_")}
    assert set(speakerembed.__all__) - {"__version__"} == public - {"__version__"}
    for name in speakerembed.__all__:
        assert getattr(speakerembed, name) is not None, name


def _public_vars(module: types.ModuleType) -> set[str]:
    """The module's public names, as ``vars()`` holds them, submodules aside."""
    return {
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }


def test_vars_hold_no_public_name_outside_all() -> None:
    # ``dir()`` returns ``__all__`` (the package's ``__dir__``), so it cannot catch a leak; the
    # module's own namespace can: ``Any``, ``TYPE_CHECKING`` or ``annotations`` left there are
    # public names that ``from speakerembed import *`` users and IDEs see.
    assert _public_vars(speakerembed) <= set(speakerembed.__all__)
    code = (
        "import json, types, speakerembed\n"
        "print(json.dumps(sorted(n for n, v in vars(speakerembed).items() if not n.startswith('_')"
        " and not isinstance(v, types.ModuleType))))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    fresh = set(json.loads(out.stdout.strip().splitlines()[-1]))
    assert fresh <= set(speakerembed.__all__), fresh - set(speakerembed.__all__)
    assert {"Any", "TYPE_CHECKING", "annotations"}.isdisjoint(fresh)


def test_all_is_sorted_and_unique() -> None:
    assert list(speakerembed.__all__) == sorted(set(speakerembed.__all__))


def test_public_objects_belong_to_speakerembed() -> None:
    for name in speakerembed.__all__:
        obj = getattr(speakerembed, name)
        if callable(obj):
            assert obj.__module__.startswith("speakerembed"), (name, obj.__module__)


def test_expected_api_names_are_exported() -> None:
    for name in (
        "embed_speaker",
        "embed_utterances",
        "utt_to_spk_embed",
        "Pipeline",
        "SpeakerEmbedder",
        "SpeakerEmbedError",
        "AudioError",
        "WeightsError",
        "ConfigError",
        "BackendUnavailableError",
        "embed_windows",
        "WindowedEmbeddings",
        "clean_dataset",
        "find_outliers",
        "CleanReport",
        "eer",
        "min_dcf",
        "det_curve",
        "threshold_at",
        "verify_trials",
        "VerificationReport",
        "tts_similarity",
        "TTSSimilarityReport",
    ):
        assert name in speakerembed.__all__


def test_unknown_attribute_raises_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'embed_speakers'"):
        _ = speakerembed.embed_speakers  # type: ignore[attr-defined]


@pytest.mark.parametrize("module_name", MODULES)
def test_every_module_has_all(module_name: str) -> None:
    if module_name in OPTIONAL:
        pytest.importorskip(OPTIONAL[module_name])
    module = importlib.import_module(module_name)
    names = getattr(module, "__all__", None)
    assert isinstance(names, list), f"{module_name} has no __all__ list"
    for name in names:
        assert hasattr(module, name), f"{module_name}.__all__ names missing {name!r}"


def test_error_tree() -> None:
    from speakerembed import (
        AudioError,
        BackendUnavailableError,
        ConfigError,
        InputTooLongError,
        SpeakerEmbedError,
        WeightsError,
    )

    assert issubclass(AudioError, SpeakerEmbedError)
    assert issubclass(AudioError, ValueError)
    assert issubclass(InputTooLongError, AudioError)
    assert issubclass(ConfigError, SpeakerEmbedError)
    assert issubclass(ConfigError, ValueError)
    assert issubclass(WeightsError, SpeakerEmbedError)
    assert issubclass(WeightsError, RuntimeError)
    assert issubclass(BackendUnavailableError, SpeakerEmbedError)
    assert issubclass(BackendUnavailableError, ImportError)


def test_import_is_cheap() -> None:
    code = (
        "import json, sys\n"
        "import speakerembed\n"
        "from speakerembed import Pipeline, utt_to_spk_embed, SpeakerEmbedError\n"
        "Pipeline(order='trim_resample')\n"
        "heavy = ['torch', 'soundfile', 'prometheus_client', 'torchaudio', 'chatterbox', 'librosa',"
        " 'soxr', 'scipy', 'resampy', 'huggingface_hub', 'matplotlib']\n"
        "print(json.dumps(sorted(m for m in heavy if m in sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_lazy_names_resolve_in_fresh_interpreter() -> None:
    code = (
        "import speakerembed\n"
        "print(speakerembed.SpeakerEmbedder.__name__, speakerembed.embed_speaker.__name__,"
        " speakerembed.WeightsInfo.__name__)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.split() == ["SpeakerEmbedder", "embed_speaker", "WeightsInfo"]


def test_corpus_names_are_lazy_and_their_modules_have_all() -> None:
    # embed_corpus needs pyarrow and tqdm, loaded only when it is first used.
    code = (
        "import json, sys\n"
        "import speakerembed\n"
        "before = sorted(m for m in ('pyarrow', 'tqdm', 'ray', 'torch') if m in sys.modules)\n"
        "names = [speakerembed.embed_corpus.__name__, speakerembed.CorpusReport.__name__]\n"
        "print(json.dumps([before, *names]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [[], "embed_corpus", "CorpusReport"]
    import speakerembed.corpus

    for _, name, _ in pkgutil.iter_modules(speakerembed.corpus.__path__, "speakerembed.corpus."):
        if name == "speakerembed.corpus.ray_engine":
            pytest.importorskip("ray")
        module = importlib.import_module(name)
        assert isinstance(getattr(module, "__all__", None), list), name
        for attr in module.__all__:
            assert hasattr(module, attr), (name, attr)


def test_version_is_a_string() -> None:
    assert isinstance(speakerembed.__version__, str)
    assert speakerembed.__version__[0].isdigit()
