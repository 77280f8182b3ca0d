"""The package layout stays a flow: no import cycle between batchtts modules, type-only imports included.

The root ``batchtts/__init__.py`` is left out: it is a lazy facade over the
public names (PEP 562), importing nothing until a name is used.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "batchtts"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def load_time_imports(path: Path) -> set[str]:
    """Modules ``path`` depends on: its top-level imports, ``if TYPE_CHECKING:`` ones included
    (a cycle of types is still a cycle of design); imports inside functions are left out."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in tree.body:
        for sub in ast.walk(node) if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) else ():
            if isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            if isinstance(sub, ast.ImportFrom) and sub.module and sub.level == 0:
                found.add(sub.module)
                found.update(f"{sub.module}.{alias.name}" for alias in sub.names)
            elif isinstance(sub, ast.Import):
                found.update(alias.name for alias in sub.names)
    return {name for name in found if name.startswith("batchtts")}


def graph() -> dict[str, set[str]]:
    modules = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    del modules["batchtts"]
    edges: dict[str, set[str]] = {}
    for name, path in modules.items():
        edges[name] = {target for target in load_time_imports(path) if target in modules and target != name}
        # Importing a.b.c imports a.b's __init__ too.
        parents = {".".join(t.split(".")[:i]) for t in edges[name] for i in range(2, t.count(".") + 1)}
        edges[name] |= {p for p in parents if p in modules and p != name and not name.startswith(p + ".")}
    return edges


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(edges[node]):
            if state.get(target) == 1:
                return [*stack[stack.index(target) :], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_cycle_between_batchtts_modules():
    assert find_cycle(graph()) is None, " -> ".join(find_cycle(graph()) or [])


def test_the_cycle_finder_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_every_name_a_package_front_promises_resolves():
    import importlib

    fronts = ["batchtts", *sorted(module_name(p.parent / "__init__.py") for p in PACKAGE.rglob("__init__.py"))]
    for front in dict.fromkeys(fronts):
        module = importlib.import_module(front)
        for name in getattr(module, "__all__", ()):
            assert getattr(module, name) is not None, f"{front}.{name}"
