"""The house, measured from the code: no import cycles, a small root, a small SpeakerEmbedder,
no private knobs set from tests or benchmarks, and the cores counted in one place (issue 18).

Everything here reads the source with :mod:`ast`; nothing is imported, so the checks are cheap
and see imports inside functions as well as at module level.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "speakerembed"

#: Import cycles that are known and scheduled (none now: the corpus split of issue 18, phase 2,
#: broke the last one). Remove an entry when its cycle is gone (the test says so).
KNOWN_CYCLES: set[frozenset[str]] = set()

#: The embedder's scheduling knobs that Overrides replaced: never set from tests or benchmarks.
KNOBS = {"_" + name for name in ("prepare_threads", "prefetch_depth", "encoder_streams")}


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


MODULES = _modules()


def _import_target(package: list[str], node: ast.ImportFrom) -> str:
    """The absolute module a ``from ... import`` statement in ``package`` names."""
    if not node.level:
        return node.module or ""
    base = package[: len(package) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(name: str, path: Path) -> set[str]:
    """The package's modules that ``name`` imports, anywhere in it (functions included)."""
    is_package = path.name == "__init__.py"
    package = name.split(".") if is_package else name.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            target = _import_target(package, node)
            for alias in node.names:
                if f"{target}.{alias.name}" in MODULES:
                    found.add(f"{target}.{alias.name}")
                elif target in MODULES:
                    found.add(target)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name in MODULES)
    found.discard(name)
    return found


def _cycles() -> set[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    graph = {name: _imports(name, path) for name, path in MODULES.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: set[frozenset[str]] = set()

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.add(frozenset(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_the_import_graph_is_read() -> None:
    # The checks below mean something only if the graph has the edges we know are there.
    assert "speakerembed._engine.runner" in _imports(
        "speakerembed.embedder", MODULES["speakerembed.embedder"]
    )
    assert "speakerembed.stages.longform" in _imports(
        "speakerembed._engine.preparation", MODULES["speakerembed._engine.preparation"]
    )  # an import inside a method


def test_no_import_cycles() -> None:
    cycles = _cycles()
    new = cycles - KNOWN_CYCLES
    assert not new, f"import cycles: {[sorted(c) for c in new]}"
    gone = KNOWN_CYCLES - cycles
    assert not gone, f"these cycles are gone: remove them from KNOWN_CYCLES: {[sorted(c) for c in gone]}"


def test_at_most_12_modules_at_the_root() -> None:
    root = sorted(p.stem for p in PACKAGE.glob("*.py"))
    assert len(root) <= 12, root


def test_speaker_embedder_is_at_most_300_lines() -> None:
    tree = ast.parse((PACKAGE / "embedder.py").read_text(encoding="utf-8"))
    (cls,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "SpeakerEmbedder"]
    assert cls.end_lineno is not None
    assert cls.end_lineno - cls.lineno + 1 <= 300


def _py_files(*folders: str) -> list[Path]:
    return [p for folder in folders for p in (ROOT / folder).rglob("*.py") if p != Path(__file__).resolve()]


@pytest.mark.parametrize(
    "path", _py_files("tests", "benchmarks", "examples"), ids=lambda p: str(p.relative_to(ROOT))
)
def test_no_private_knob_is_set(path: Path) -> None:
    """Tests and benchmarks pass ``Overrides``; they never set the embedder's private knobs."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Attribute):
            assert node.attr not in KNOBS, f"{path.name}:{node.lineno} uses .{node.attr}"
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            assert node.value not in KNOBS, f"{path.name}:{node.lineno} names {node.value!r}"


def test_the_cores_are_counted_in_one_place() -> None:
    counted = set()
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr in ("cpu_count", "sched_getaffinity"):
                counted.add(name)
    assert counted == {"speakerembed._engine.schedule"}


def _private_imports(name: str, path: Path) -> list[str]:
    """``module._name`` for each private name ``name`` takes from another module of the package.

    ``from .x import _name`` and ``opt._name`` on a module imported as ``opt`` both count;
    private modules (``from . import _options``) and public names inside them do not.
    """
    is_package = path.name == "__init__.py"
    package = name.split(".") if is_package else name.split(".")[:-1]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    bound: dict[str, str] = {}  # local names of the package's modules
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            target = _import_target(package, node)
            for alias in node.names:
                if f"{target}.{alias.name}" in MODULES:
                    bound[alias.asname or alias.name] = f"{target}.{alias.name}"
                elif target in MODULES and target != name and _is_private(alias.name):
                    found.append(f"{target}.{alias.name}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in MODULES and alias.asname:
                    bound[alias.asname] = alias.name
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in bound
            and bound[node.value.id] != name
            and _is_private(node.attr)
        ):
            found.append(f"{bound[node.value.id]}.{node.attr}")
    return found


def _is_private(attr: str) -> bool:
    return attr.startswith("_") and not (attr.startswith("__") and attr.endswith("__"))


def test_the_private_import_check_sees_both_forms(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text(
        "from .stages.load import _hidden, load_audio\nfrom .cli import _options as opt\nopt._x\n"
    )
    assert _private_imports("speakerembed.probe", probe) == [
        "speakerembed.stages.load._hidden",
        "speakerembed.cli._options._x",
    ]


def test_no_module_imports_a_private_name_of_another() -> None:
    """A name with an underscore is its module's own; one another module needs is made public."""
    found = {name: _private_imports(name, path) for name, path in MODULES.items()}
    assert not {k: v for k, v in found.items() if v}
