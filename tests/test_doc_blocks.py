"""Every Python block in the README and the docs runs as written.

Each ```` ```python ```` fence in README.md (and any Markdown page under docs/) and each
``.. code-block:: python`` in docs/**/*.rst is run on its own, in a fresh interpreter, from the
repository root, offline (``HF_HUB_OFFLINE=1``), as a reader would paste it. New pages are picked
up by the glob. A block that cannot run here (it needs a GPU, a cluster, chatterbox-tts or the
Hugging Face hub) is marked by the line before it: ``.. skip: next`` in RST, ``<!-- skip: next -->``
in Markdown.

Also checked, without running anything: no page has hidden setup (``.. testsetup::``) that a reader
never sees, no page has ``.. contents::`` (Furo draws an error box over it), a skip marker is
followed by a Python block, and no literal block shows double backticks, which render there as
they are typed.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib.metadata
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYTHON = {"python", "py", "python3"}
SKIP_RST = ".. skip: next"
SKIP_MD = "<!-- skip: next -->"


def pages() -> list[Path]:
    docs = ROOT / "docs"
    found = [p for p in docs.rglob("*") if p.suffix in (".rst", ".md") and "_build" not in p.parts]
    return [ROOT / "README.md", *sorted(found)]


@dataclasses.dataclass(frozen=True)
class Block:
    page: Path
    line: int  # 1-based line of the directive or fence
    language: str
    code: str
    skipped: bool

    @property
    def name(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def _previous_text(lines: list[str], index: int) -> str:
    for j in range(index - 1, -1, -1):
        if lines[j].strip():
            return lines[j].strip()
    return ""


def markdown_blocks(page: Path) -> list[Block]:
    lines = page.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        m = re.match(r"^(\s*)(`{3,}|~{3,})\s*([\w+-]*)", lines[i])
        if not m:
            i += 1
            continue
        indent, fence, language = m.group(1), m.group(2), m.group(3).lower()
        body: list[str] = []
        j = i + 1
        while j < len(lines) and not lines[j].strip().startswith(fence):
            body.append(lines[j][len(indent) :] if lines[j].startswith(indent) else lines[j].lstrip())
            j += 1
        skipped = _previous_text(lines, i) == SKIP_MD
        blocks.append(Block(page, i + 1, language, "\n".join(body) + "\n", skipped))
        i = j + 1
    return blocks


_DIRECTIVE = re.compile(r"^(\s*)\.\. (?:code-block|code|sourcecode)::\s*([\w+-]*)\s*$")


def _rst_body(lines: list[str], start: int, indent: int) -> tuple[list[str], int]:
    """The indented body after line ``start`` (options skipped), and the index after it."""
    j = start + 1
    while j < len(lines) and re.match(r"^\s+:[\w-]+:", lines[j]) and _indent(lines[j]) > indent:
        j += 1
    body: list[str] = []
    while j < len(lines) and (not lines[j].strip() or _indent(lines[j]) > indent):
        body.append(lines[j])
        j += 1
    return body, j


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def rst_blocks(page: Path) -> list[Block]:
    lines = page.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    for i, line in enumerate(lines):
        m = _DIRECTIVE.match(line)
        if not m:
            continue
        body, _ = _rst_body(lines, i, len(m.group(1)))
        code = textwrap.dedent("\n".join(body)).strip("\n") + "\n"
        skipped = _previous_text(lines, i) == SKIP_RST
        blocks.append(Block(page, i + 1, (m.group(2) or "").lower(), code, skipped))
    return blocks


def blocks_of(page: Path) -> list[Block]:
    return markdown_blocks(page) if page.suffix == ".md" else rst_blocks(page)


def python_blocks() -> list[Block]:
    return [b for page in pages() for b in blocks_of(page) if b.language in PYTHON]


BLOCKS = python_blocks()


def test_the_pages_have_python_blocks() -> None:
    names = {b.page.name for b in BLOCKS}
    assert {"README.md", "quickstart.rst", "chatterbox.rst"} <= names
    assert sum(not b.skipped for b in BLOCKS) >= 10


@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: b.name)
def test_python_block_runs_as_written(block: Block, tmp_path: Path) -> None:
    if block.skipped:
        pytest.skip(f"{block.name} is marked '{SKIP_RST if block.page.suffix == '.rst' else SKIP_MD}'")
    script = tmp_path / (re.sub(r"\W", "_", block.name) + ".py")
    script.write_text(block.code, encoding="utf-8")
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "MPLBACKEND": "Agg",
        # The working tree's package, whatever is installed.
        "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]),
        # The environment's scripts (the speakerembed command), as in an activated environment.
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
    }
    before = _tracked_state()
    proc = subprocess.run(
        [sys.executable, str(script)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, f"{block.name} failed:\n{block.code}\n--- stderr ---\n{proc.stderr[-4000:]}"
    assert _tracked_state() == before, f"{block.name} left files in the repository"


def _tracked_state() -> set[str]:
    """Files in the repository root and examples/audio: a block must not leave any behind."""
    return {p.name for p in ROOT.iterdir()} | {p.name for p in (ROOT / "examples" / "audio").iterdir()}


# -- static checks --------------------------------------------------------------------------------


@pytest.mark.parametrize("page", pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_hidden_setup_or_contents(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    assert ".. testsetup::" not in text, f"{page.name}: put the setup in the blocks, where readers see it"
    assert ".. contents::" not in text, f"{page.name}: Furo draws an error box over '.. contents::'"


@pytest.mark.parametrize("page", pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_skip_markers_precede_python_blocks(page: Path) -> None:
    lines = page.read_text(encoding="utf-8").splitlines()
    marker = SKIP_MD if page.suffix == ".md" else SKIP_RST
    starts = {b.line for b in blocks_of(page) if b.language in PYTHON}
    for i, line in enumerate(lines):
        if line.strip() == marker:
            nxt = next((j for j in range(i + 1, len(lines)) if lines[j].strip()), None)
            assert nxt is not None, f"{page.name}:{i + 1}: a skip marker ends the page"
            assert nxt + 1 in starts, f"{page.name}:{i + 1}: a skip marker not followed by a Python block"


def _literal_bodies(page: Path) -> list[tuple[int, list[str]]]:
    """Every literal block of an RST page: code-block directives, and ``::`` paragraphs."""
    lines = page.read_text(encoding="utf-8").splitlines()
    out = []
    for i, line in enumerate(lines):
        m = _DIRECTIVE.match(line)
        if m:
            out.append((i + 1, _rst_body(lines, i, len(m.group(1)))[0]))
        elif line.rstrip().endswith("::") and not line.lstrip().startswith(".."):
            out.append((i + 1, _rst_body(lines, i, _indent(line))[0]))
    return out


@pytest.mark.parametrize(
    "page", [p for p in pages() if p.suffix == ".rst"], ids=lambda p: str(p.relative_to(ROOT))
)
def test_no_double_backticks_in_literal_blocks(page: Path) -> None:
    for line_no, body in _literal_bodies(page):
        for offset, line in enumerate(body):
            assert "``" not in line, (
                f"{page.name}:{line_no + offset + 1}: double backticks inside a literal block show as typed"
            )


@pytest.mark.parametrize(
    "page", [p for p in pages() if p.suffix == ".rst"], ids=lambda p: str(p.relative_to(ROOT))
)
def test_no_literals_nested_in_bold_or_italics(page: Path) -> None:
    # RST does not nest inline markup: **a ``b``** renders the backticks as typed.
    text = page.read_text(encoding="utf-8")
    pattern = r"(?<![^\s'\"(\[{<\-/:])(\*\*?)(?=[^\s*])(?:(?!\1).)*?``(?:(?!\1).)*?\S\1"
    found = [
        f"{page.name}:{text.count(chr(10), 0, m.start()) + 1}: {m.group(0)!r}"
        for m in re.finditer(pattern, text, flags=re.S)
    ]
    assert not found, f"double backticks inside *emphasis* or **strong** show as typed: {found}"


# -- README command 1 installs what the README's examples use -----------------------------------------


def _requirement_name(req: str) -> str:
    return re.split(r"[<>=!~\[; ]", req, maxsplit=1)[0].lower().replace("_", "-")


def test_readme_command_1_installs_what_the_readme_examples_use() -> None:
    tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from Python 3.11")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    command = next(line for line in readme.splitlines() if "pip install" in line and '".[' in line)
    extras = re.search(r'"\.\[([\w,-]+)\]"', command)
    assert extras is not None, command
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    installed = {_requirement_name(r) for r in project["dependencies"]}
    for extra in extras.group(1).split(","):
        installed |= {_requirement_name(r) for r in project["optional-dependencies"][extra]}
    # Packages the command installs on their own, e.g. `pip install --no-deps "resemblyzer==0.1.4"`.
    installed |= {_requirement_name(m) for m in re.findall(r'--no-deps "?([\w.=<>-]+)"?', command)}

    distributions = importlib.metadata.packages_distributions()
    for block in (b for b in BLOCKS if b.page.name == "README.md" and not b.skipped):
        needed = set()
        for node in ast.walk(ast.parse(block.code)):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            for name in names:
                top = name.split(".")[0]
                if top and top != "speakerembed" and top not in sys.stdlib_module_names:
                    needed |= {d.lower().replace("_", "-") for d in distributions.get(top, [top])}
        if 'weights="resemblyzer"' in block.code:
            needed.add("resemblyzer")
        if "Pipeline.chatterbox()" in block.code or 'resampler="kaiser_fast"' in block.code:
            needed.add("resampy")
        assert needed <= installed, (
            f"{block.name} needs {sorted(needed - installed)}, which command 1 does not install"
        )
