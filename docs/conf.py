"""Sphinx configuration for the speakerembed documentation.

Build it as CI does (``nox -s docs``)::

    sphinx-build -n -W --keep-going -b html    docs docs/_build/html
    sphinx-build -n -W --keep-going -b doctest docs docs/_build/doctest

``-n`` (nitpicky) turns every unresolved cross-reference into a warning and ``-W`` turns every
warning into an error, so a renamed function or a typo in a ``:func:`` role fails the build.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path
from typing import Any, ClassVar

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# Build from the working tree even when the package is not installed (it is, editable, in nox).
sys.path.insert(0, str(ROOT))

from speakerembed import __version__  # noqa: E402

# -- project ---------------------------------------------------------------------------------------

project = "speakerembed"
author = "speakerembed developers"
copyright = "speakerembed developers"
version = release = __version__

# -- extensions ------------------------------------------------------------------------------------

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.intersphinx",
    "sphinx.ext.doctest",
    "sphinx.ext.viewcode",
]

exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
templates_path: list[str] = []
nitpicky = True
default_role = "py:obj"

# -- HTML ------------------------------------------------------------------------------------------

html_theme = "furo"
html_title = f"speakerembed {release}"
html_static_path: list[str] = []
html_theme_options = {"navigation_with_keys": True}

# -- autodoc and napoleon --------------------------------------------------------------------------

autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "show-inheritance": True}
# The docstrings document every type numpydoc-style (with shapes and dtypes), and the annotations
# in the code name types that exist only under TYPE_CHECKING (numpy.typing, torch,
# prometheus_client), which autodoc cannot resolve. So signatures show names and defaults, and
# the docstrings carry the types.
autodoc_typehints = "none"
autodoc_preserve_defaults = True

napoleon_google_docstring = False
napoleon_numpy_docstring = True
# numpydoc types here say more than a class name: "numpy.ndarray, shape (n_samples,), float32".
# Sphinx would turn every word of such a type into a cross-reference ("shape", "float32", ...),
# so types are rendered as text, not as links.
napoleon_use_param = False
napoleon_use_rtype = False
napoleon_use_ivar = True
napoleon_preprocess_types = False

# -- intersphinx, offline --------------------------------------------------------------------------
#
# The docs must build with no network (the CI machines reach only the package index), and
# ``-W`` makes an unreachable inventory fatal: Sphinx reports "failed to reach any of the
# inventories" as an untyped warning that ``suppress_warnings`` cannot silence. So:
#
# * an inventory is used when its file lies in ``docs/_inventories/<name>.inv`` (drop Python's,
#   NumPy's or PyTorch's ``objects.inv`` there to get links without a network);
# * the online inventories are used only when ``SPEAKEREMBED_DOCS_ONLINE=1`` is set (for a
#   published build);
# * references into those projects are listed in ``nitpick_ignore_regex`` below, so that when no
#   inventory is at hand they render as plain text instead of failing the nitpicky build. When an
#   inventory is there they resolve into links as usual; the ignore list only applies to
#   references that nothing resolves.
#
# References inside speakerembed are never ignored: those must resolve.

_INVENTORIES = {
    "python": "https://docs.python.org/3",
    "numpy": "https://numpy.org/doc/stable",
    "torch": "https://docs.pytorch.org/docs/stable",
}
_ONLINE = os.environ.get("SPEAKEREMBED_DOCS_ONLINE", "") not in ("", "0", "false")
intersphinx_mapping: dict[str, tuple[str, tuple[str | None, ...]]] = {}
for _name, _url in _INVENTORIES.items():
    _local = HERE / "_inventories" / f"{_name}.inv"
    _locations = ((str(_local),) if _local.is_file() else ()) + ((None,) if _ONLINE else ())
    if _locations:
        intersphinx_mapping[_name] = (_url, _locations)
intersphinx_timeout = 10

_EXTERNAL = (
    r"(numpy|np|npt|torch|torchaudio|nn|os|pathlib|typing|collections|argparse|logging|threading"
    r"|importlib|pickle|prometheus_client|librosa|scipy|soxr|resampy|huggingface_hub|safetensors"
    r"|soundfile|chatterbox|matplotlib|umap|pyarrow)"
)
nitpick_ignore_regex = [
    # Other projects' objects: links when an inventory is available, plain text otherwise.
    (r"py:.*", _EXTERNAL + r"(\..*)?"),
    # numpydoc types such as "numpy.ndarray, shape (n_ok, 256), float32" or {"counter", "gauge"}
    # in Attributes sections: Sphinx makes a reference of every word. Lowercase words, numbers
    # and quoted choices ("shape", "n_ok", "256", "float32", '"gauge"') are descriptions, never
    # speakerembed classes (which are CamelCase and still checked).
    (r"py:class", r"[a-z_][a-z0-9_]*|[0-9]+|.*[\s\"'{}].*"),
    # Private base classes shown by show-inheritance (speakerembed._engine.recorder.Recorder).
    (r"py:class", r"speakerembed\._[a-z_]+\..*"),
]

# -- doctest ---------------------------------------------------------------------------------------
#
# Doctests run offline with the Resemblyzer weights that ship in the resemblyzer wheel. The
# embedders they load are cached per process, so the pages share one model.

doctest_global_setup = """
import numpy as np
import speakerembed
"""
doctest_test_doctest_blocks = "default"
trim_doctest_flags = True

# -- the CLI's help, generated from the parser -----------------------------------------------------


def _subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices[name]  # type: ignore[no-any-return]
    raise KeyError(name)


class CliHelp(SphinxDirective):
    """``.. speakerembed-help:: [COMMAND]``: the ``--help`` text of the CLI, from ``build_parser()``.

    The text is made at build time from :func:`speakerembed.cli.build_parser`, so the page
    cannot drift from the code.
    """

    optional_arguments = 1
    option_spec: ClassVar[dict[str, Any]] = {"width": directives.positive_int}

    def run(self) -> list[nodes.Node]:
        """Format the parser's help as a literal block."""
        from speakerembed.cli import build_parser

        width = self.options.get("width", 100)
        old = os.environ.get("COLUMNS")
        os.environ["COLUMNS"] = str(width)
        try:
            parser = build_parser()
            if self.arguments:
                parser = _subparser(parser, self.arguments[0])
            text = parser.format_help()
        finally:
            if old is None:
                del os.environ["COLUMNS"]
            else:
                os.environ["COLUMNS"] = old
        text = re.sub(r"[ \t]+\n", "\n", text).rstrip() + "\n"
        block = nodes.literal_block(text, text)
        block["language"] = "text"
        return [block]


def setup(app: Sphinx) -> dict[str, Any]:
    """Register the ``speakerembed-help`` directive."""
    app.add_directive("speakerembed-help", CliHelp)
    return {"parallel_read_safe": True}
