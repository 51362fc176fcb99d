"""The layout's rules, read from the source: no import cycles between modules, models/ never imports tools/, the
framework (tools/core) and the capabilities never import the adapters, tests never import benchmarks/, and every tool
lives in a capability package."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from tools.core.registry import load_tools, tool_modules

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("agent", "tools", "models", "memory")
CAPABILITIES = ("structures", "potentials", "md", "discovery", "crystallization", "free_energy")


def _modules() -> dict[str, Path]:
    """Every module of the product by dotted name (packages by their __init__)."""
    out = {"server": ROOT / "server.py"}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _statements(tree: ast.AST, module_level: bool) -> Iterator[ast.stmt]:
    """Import statements; at module level only those that run on import (not in functions, not TYPE_CHECKING)."""
    stack = list(ast.iter_child_nodes(tree))
    while stack:
        node = stack.pop()
        if module_level and isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            continue
        if module_level and isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def _imported(path: Path, modules: dict[str, Path], module_level: bool) -> set[str]:
    """The product modules a file imports (resolving `from package import module` to the module)."""
    out = set()
    for node in _statements(ast.parse(path.read_text()), module_level):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{a.name}" for a in node.names] + [node.module]
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name:
                out.add(name)
    return out


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles_between_modules():
    """Not even through imports inside functions: a lazy import hides a cycle, it does not remove it."""
    modules = _modules()
    graph = {name: _imported(path, modules, module_level=False) - {name} for name, path in modules.items()}
    # a package's __init__ importing its own modules is not a cycle of the layout
    for name in graph:
        graph[name] = {m for m in graph[name] if not name.startswith(m + ".")}
    assert _cycles(graph) == []


def test_models_know_nothing_of_tools_agent_or_memory():
    modules = _modules()
    for name, path in modules.items():
        if name.startswith("models"):
            bad = {m for m in _imported(path, modules, module_level=False) if m.split(".")[0] != "models"}
            assert not bad, f"{name} imports {sorted(bad)}"


def test_data_flows_one_way_inside_tools():
    """The framework does not reach into capabilities on import; nothing but the entry points uses the adapters."""
    modules = _modules()
    for name, path in modules.items():
        imported = _imported(path, modules, module_level=False)
        if name.startswith(("tools.core", *(f"tools.{c}" for c in CAPABILITIES))):
            assert not {m for m in imported if m.startswith("tools.adapters")}, name
        if name.startswith("memory"):
            assert not {m for m in imported if m.split(".")[0] in ("tools", "agent")}, name
        if name.startswith("tools.core"):
            eager = _imported(path, modules, module_level=True)
            assert not {m for m in eager if m.split(".")[1:2] and m.split(".")[1] in CAPABILITIES}, name


def test_tests_never_import_benchmarks():
    for path in (ROOT / "tests").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in _statements(tree, module_level=False):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            assert not any(n.split(".")[0] == "benchmarks" for n in names), path.name


def test_every_tool_lives_in_a_capability_package_or_the_job_framework():
    assert len(load_tools()) >= 27
    for module in tool_modules():
        package = module.split(".")[1]
        assert package in CAPABILITIES or module == "tools.core.job_tools", module


def test_the_readme_says_where_every_tool_lives():
    """The newcomer's question, "where does X live?", answered by the README's table and true for every tool."""
    import re

    table = {}
    for row in re.findall(r"^\| (`.+?) \| `(tools/\w+/)` \|$", (ROOT / "README.md").read_text(), re.MULTILINE):
        for name in re.findall(r"`(\w+)`", row[0]):
            table[name] = row[1]
    for name, spec in load_tools().items():
        folder = "tools/" + spec.fn.__module__.split(".")[1] + "/"
        assert table.get(name) == folder, f"README places {name} in {table.get(name)}, it lives in {folder}"
