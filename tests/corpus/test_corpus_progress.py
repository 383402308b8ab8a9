"""Progress of a corpus job, and a pyarrow that cannot be imported.

The corpus and its references are built in ``conftest.py``, from ``_corpus_data.py``.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")


from speakerembed import SpeakerEmbedder, embed_corpus  # noqa: E402

# -- progress ---------------------------------------------------------------------------------


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_on_a_terminal_and_log_lines_elsewhere(
    corpus: Path, embedder: SpeakerEmbedder, tmp_path: Path
) -> None:
    from speakerembed.corpus import progress as prog

    term = _Terminal()
    embed_corpus(corpus / "bad", tmp_path / "a", embedder=embedder, progress_stream=term)
    text = term.getvalue()
    assert "2/2" in text
    assert "file" in text
    assert "x real time" in text
    assert "2 failed" in text
    log = io.StringIO()
    show = prog.Progress(3, "auto", log, interval_s=0.0)
    assert show.mode == "log"
    table = pq.read_table(tmp_path / "a")
    show.update(table)
    show.close()
    lines = log.getvalue().splitlines()
    assert any(line.startswith("speakerembed: 2/3 files,") and "ETA" in line for line in lines)
    quiet = io.StringIO()
    embed_corpus(corpus / "bad", tmp_path / "b", embedder=embedder, progress="off", progress_stream=quiet)
    assert quiet.getvalue() == ""


def test_a_pyarrow_that_cannot_be_imported_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # E.g. pyarrow 26+ beside the NumPy 1.x that chatterbox-tts pins: installed, but not importable.
    import importlib.util

    from speakerembed import BackendUnavailableError
    from speakerembed.corpus.api import require_corpus_packages

    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: object())  # "installed"
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # `import pyarrow` now raises ImportError
    with pytest.raises(BackendUnavailableError) as info:
        require_corpus_packages("speakerembed corpus")
    message = str(info.value)
    assert message.startswith("speakerembed corpus needs pyarrow, which is installed but cannot be imported")
    assert "pip install 'pyarrow<26'" in message
