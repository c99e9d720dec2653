"""No import circle anywhere in hudlib: every import statement of every module (top level or inside a function,
absolute or relative) is an edge, importing ``a.b.c`` also imports its packages ``a.b`` and ``a``, and the graph
must have no cycle. A deliberately circular package written by the test is caught, so the walk can fail."""
from __future__ import annotations

import ast
from pathlib import Path

import hudlib


def _modules(root: Path, package: str) -> dict[str, Path]:
    out = {}
    for p in root.rglob("*.py"):
        parts = [package, *p.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


def import_graph(root: Path, package: str) -> dict[str, set[str]]:
    """``{module: {modules it imports}}`` within ``package`` (its folder ``root``)."""
    mods = _modules(root, package)
    graph: dict[str, set[str]] = {m: set() for m in mods}

    def add(src: str, target: str):
        if target in mods and target != src:
            graph[src].add(target)
        parts = target.split(".")
        for i in range(1, len(parts)):  # importing a.b.c runs a/__init__ and a/b/__init__ first
            parent = ".".join(parts[:i])
            if parent in mods and not src.startswith(parent + ".") and parent != src:
                graph[src].add(parent)

    for m, path in mods.items():
        is_pkg = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.name.split(".")[0] == package:
                        add(m, a.name)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = m.split(".") if is_pkg else m.split(".")[:-1]
                    base = base[:len(base) - (node.level - 1)]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                if target.split(".")[0] != package:
                    continue
                for a in node.names:
                    sub = f"{target}.{a.name}"
                    add(m, sub if sub in mods else target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
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
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_hudlib_has_no_import_circle():
    root = Path(hudlib.__file__).parent
    graph = import_graph(root, "hudlib")
    assert len(graph) > 60 and "hudlib.config" in graph["hudlib.models.base"]
    assert cycles(graph) == []


def test_the_walk_finds_a_circle_hidden_in_a_function(tmp_path):
    pkg = tmp_path / "circ"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .sub import b\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "b.py").write_text("def f():\n    from ..c import g\n    return g\n")
    (pkg / "c.py").write_text("import circ.a\n")
    (pkg / "d.py").write_text("from . import a\n")
    assert cycles(import_graph(pkg, "circ")) == [["circ.a", "circ.c", "circ.sub.b"]]
