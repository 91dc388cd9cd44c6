"""The package's import graph has no cycle, between modules or between packages, counting the imports inside
function bodies (which Python resolves late, but which still tie two modules together); imports under
`if TYPE_CHECKING:` are left out (they never run). No module grows past ~400 lines. And a function imports a ptst
module late only for a reason: the module is heavy (loading it loads torch, transformers, ...), or the line says
why (`# heavy:`, `# lazy:`, `# cycle:`); every other ptst import sits at the top of its module."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "ptst"
MAX_LINES = 400
# Third-party packages too slow to load at import time (STYLE.md: `ptst --help` answers in well under a second).
HEAVY = frozenset({"torch", "transformers", "peft", "accelerate", "safetensors", "vllm", "openai", "ray", "fastapi",
                   "starlette", "uvicorn", "matplotlib", "numpy", "scipy", "datasets", "huggingface_hub",
                   "tokenizers", "pyarrow", "httpx"})
REASON = re.compile(r"#\s*(heavy|lazy|cycle):")

Import = ast.Import | ast.ImportFrom


def _modules() -> dict[str, Path]:
    out = {}
    for p in PKG.rglob("*.py"):
        parts = p.relative_to(PKG.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    return out


def _walk(node: ast.AST, late: bool = False) -> Iterator[tuple[Import, bool]]:
    """Every import statement under `node` but those under `if TYPE_CHECKING:`, and whether it runs late (in a
    function body) rather than when the module is imported."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, Import):
            yield child, late
        elif not (isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test)):
            yield from _walk(child, late or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda))


def _imported(node: Import, mod: str, path: Path, mods: dict[str, Path]) -> list[str]:
    """The dotted names an import statement in `mod` loads (ptst's and third-party)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    base = node.module or ""
    if node.level:
        pkg = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        for _ in range(node.level - 1):
            pkg = pkg.rpartition(".")[0]
        base = f"{pkg}.{base}" if base else pkg
    # `from pkg import submodule` imports the submodule; `from pkg import name` the package
    return [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]


def _owner(name: str, mods: dict[str, Path]) -> str | None:
    while name and name not in mods:
        name = name.rpartition(".")[0]
    return name or None


def _imports() -> Iterator[tuple[str, Import, bool, set[str], list[str]]]:
    """(module, import statement, late, the ptst modules it loads, its source lines) for every import in ptst."""
    mods = _modules()
    for mod, path in mods.items():
        text = path.read_text(encoding="utf-8")
        lines = text.splitlines()
        for node, late in _walk(ast.parse(text)):
            names = _imported(node, mod, path, mods)
            ours = {o for n in names if n.split(".")[0] == "ptst" and (o := _owner(n, mods)) and o != mod}
            yield mod, node, late, ours, lines[node.lineno - 1:node.end_lineno]


def import_graph() -> dict[str, set[str]]:
    """module -> the ptst modules it imports (at top level or in a function)."""
    graph: dict[str, set[str]] = {m: set() for m in _modules()}
    for mod, _, _, ours, _ in _imports():
        graph[mod] |= ours
    return graph


def _packages(mod: str) -> list[str]:
    """ptst.grid.runner -> [ptst, ptst.grid]: importing a module runs its packages' __init__ first."""
    parts = mod.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def heavy_modules() -> dict[str, str]:
    """ptst module -> a heavy package that importing it loads, through the top-level imports of ptst modules
    (and their packages' __init__); light modules are left out."""
    loads: dict[str, set[str]] = {m: set(_packages(m)) for m in _modules()}
    heavy: dict[str, str] = {}
    for mod, node, late, ours, _ in _imports():
        if late:
            continue
        loads[mod] |= {p for o in ours for p in (o, *_packages(o)) if p != mod}
        if isinstance(node, ast.Import) or not node.level:
            for n in sorted(_imported(node, mod, Path(), {})):
                if n.split(".")[0] in HEAVY:
                    heavy.setdefault(mod, n.split(".")[0])
    changed = True
    while changed:  # a fixed point: the load graph has cycles (a package's __init__ and its submodules)
        changed = False
        for mod, deps in sorted(loads.items()):
            if mod not in heavy and (why := next((heavy[d] for d in sorted(deps) if d in heavy), None)):
                heavy[mod] = why
                changed = True
    return heavy


def late_imports() -> list[tuple[str, int, set[str], str]]:
    """Every import of a ptst module in a function body: (module, line, the ptst modules it loads, its source)."""
    return [(mod, node.lineno, ours, "\n".join(src)) for mod, node, late, ours, src in _imports() if late and ours]


def unexplained(late: list[tuple[str, int, set[str], str]], heavy: dict[str, str] | set[str]) -> list[str]:
    """The late imports of light ptst modules whose line gives no reason (`# heavy:`, `# lazy:`, `# cycle:`)."""
    return [f"{mod}:{line}: {' '.join(src.split())}" for mod, line, ours, src in late
            if not ours & set(heavy) and not REASON.search(src)]


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _package(mod: str) -> str:
    """ptst.grid.runner -> ptst.grid; a top-level module (ptst.align) is its own package."""
    parts = mod.split(".")
    return ".".join(parts[:2])


def test_no_import_cycle_between_modules() -> None:
    assert cycles(import_graph()) == []


def test_no_import_cycle_between_packages() -> None:
    graph: dict[str, set[str]] = {}
    for mod, deps in import_graph().items():
        graph.setdefault(_package(mod), set()).update(_package(d) for d in deps if _package(d) != _package(mod))
    assert cycles(graph) == []


def test_the_checker_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_stages_sit_above_the_run_layer_and_the_specs() -> None:
    """ptst.runs and ptst.specs import no stage: every stage, the grid and the report can read them."""
    stages = ("ptst.train", "ptst.generate", "ptst.judge", "ptst.score", "ptst.evaluate", "ptst.align",
              "ptst.grid", "ptst.report", "ptst.serve", "ptst.runtime")
    for mod, deps in import_graph().items():
        if mod.startswith(("ptst.runs", "ptst.specs", "ptst.runtime")):
            up = sorted(d for d in deps if d.startswith(stages) and not d.startswith(mod.rsplit(".", 1)[0]))
            assert up == [], f"{mod} imports {up}"


def test_no_module_is_longer_than_about_400_lines() -> None:
    long = {str(p.relative_to(PKG.parent)): n for p in PKG.rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert long == {}


def test_ptst_imports_sit_at_the_top_unless_heavy_or_explained() -> None:
    """Move a light ptst import to the top of its module (ruff sorts it); keep it in the function only when the
    module is heavy, or say why on its line: `# lazy: a plugin, loaded when chosen`, `# cycle: ptst.x imports us`."""
    assert unexplained(late_imports(), heavy_modules()) == []


def test_the_late_import_checker_flags_a_light_import() -> None:
    late = [("ptst.a", 3, {"ptst.b"}, "    from ptst.b import f"),
            ("ptst.a", 5, {"ptst.c"}, "    from ptst.c import g"),
            ("ptst.a", 7, {"ptst.b"}, "    from ptst.b import (\n        h,\n    )  # lazy: a registry's builtins")]
    assert unexplained(late, {"ptst.c"}) == ["ptst.a:3: from ptst.b import f"]


def test_the_heavy_modules_are_found_and_ptst_help_loads_none() -> None:
    from ptst.cli import COMMANDS

    heavy = heavy_modules()
    assert heavy["ptst.train.model"] == "torch" and heavy["ptst.serve.app"] == "fastapi"
    assert "ptst.templates" not in heavy and "ptst.train" not in heavy
    assert sorted(m for m in ["ptst.cli", *(module for module, _ in COMMANDS.values())] if m in heavy) == []
