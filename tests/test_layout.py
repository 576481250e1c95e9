"""The package's layout holds: imports go one way, and no module imports itself back.

Read from the source (``ast``), so imports under ``TYPE_CHECKING`` and inside functions count
too: a cycle hidden behind a function-local import is still a cycle for whoever reads the code.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "kpexporter"

LAYERS: dict[str, int] = {
    # leaves: what kube-proxy and Prometheus say, and the math (pure)
    "vocabulary": 0, "memo": 0,
    "promtext": 1, "stats": 1, "config": 1, "logs": 1, "kubeproxy": 2,
    "net": 3, "core": 4, "security": 5, "rules": 5, "dashboards": 5,
    "service": 6, "cli": 7, "__main__": 8,
}
"""A module may import only from its own layer or lower ones (``simulator`` is apart)."""


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def _imports(path: Path, name: str) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("kpexporter"))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            if not base.startswith("kpexporter"):
                continue
            for alias in node.names:  # `from pkg import module` imports the module
                out.add(f"{base}.{alias.name}")
            out.add(base)
    return out


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for imported in _imports(path, name):
            while imported and imported not in modules:
                imported = imported.rpartition(".")[0]  # `from m import function` → m
            if imported and imported != name:
                targets.add(imported)
        graph[name] = targets
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

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
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _layer(module: str) -> tuple[str, int] | None:
    parts = module.split(".")
    if len(parts) < 2:
        return None
    return parts[1], LAYERS.get(parts[1], -1)


def test_no_import_cycle() -> None:
    graph = _graph()
    assert len(graph) > 40  # the scan found the package
    assert _cycles(graph) == []


def test_every_top_level_part_has_a_layer() -> None:
    parts = {p.name if p.is_dir() else p.stem for p in PACKAGE.iterdir()
             if not p.name.startswith("__init") and (p.is_dir() or p.suffix == ".py")}
    parts.discard("__pycache__")
    assert parts - {"simulator"} <= set(LAYERS), "give the new part a layer in LAYERS"


def test_imports_go_one_way() -> None:
    wrong = []
    for module, targets in _graph().items():
        here = _layer(module)
        if here is None or here[0] == "simulator":
            continue
        for target in targets:
            there = _layer(target)
            if there is None:
                continue
            if there[0] == "simulator":
                if here[0] != "cli":  # only the commands start the simulator
                    wrong.append(f"{module} -> {target}")
            elif there[1] > here[1]:
                wrong.append(f"{module} -> {target}")
    assert wrong == []


def test_the_simulator_stands_apart() -> None:
    """The fake kube-proxy must not share the exporter's parsing: it would hide their bugs."""
    for module, targets in _graph().items():
        if module.startswith("kpexporter.simulator"):
            outside = {t for t in targets if not t.startswith("kpexporter.simulator")}
            assert outside <= {"kpexporter.logs", "kpexporter"}, (module, outside)
