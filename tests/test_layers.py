"""The package's import graph: layers import downwards only, and no module imports itself back.

Every ``import``/``from ... import`` of a ``transduce`` module counts, also those inside functions
(lazy imports are still dependencies). docs/design.md draws the layers.
"""
from __future__ import annotations

import ast
from pathlib import Path

import transduce

ROOT = Path(transduce.__file__).parent
# lowest first; a module may import from its own layer and the layers below it
LAYERS = [
    ["errors", "yaml_io", "hints", "section", "overrides", "decoding_options", "search_space"],
    ["config"],
    ["data", "evaluate", "plot"],
    ["model"],
    ["checkpoint", "model_dir", "checkpoints"],
    ["decode"],
    ["training"],
    ["api", "cli", "demo", "init", "serve", "tuning", "__init__", "__main__"],
]
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}


def _modules() -> dict[str, Path]:
    return {".".join(p.relative_to(ROOT.parent).with_suffix("").parts).removesuffix(".__init__"): p
            for p in ROOT.rglob("*.py")}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The transduce modules that module ``name`` imports (anywhere in the file)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1]
                                + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base
                       for a in node.names]
        else:
            continue
        found |= {t for t in targets if t in known and t != name}
    return found


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    return {name: _imports(name, path, set(mods)) for name, path in mods.items()}


def test_every_module_has_a_layer():
    assert {_layer(m) for m in _graph()} <= set(RANK)


def test_imports_point_down_the_layers():
    upward = [f"{m} -> {t}" for m, targets in _graph().items() for t in targets
              if RANK[_layer(t)] > RANK[_layer(m)]]
    assert not upward, "imports from a higher layer: " + ", ".join(sorted(upward))


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A path that ends where it returns to itself, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path + [node, nxt]
            if nxt not in state:
                found = visit(nxt, path + [node])
                if found:
                    return found
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            found = visit(start, [])
            if found:
                return found
    return None


def test_no_import_cycle_between_modules_or_packages():
    graph = _graph()
    assert _cycle(graph) is None, "import cycle: " + " -> ".join(_cycle(graph))
    packages: dict[str, set[str]] = {}
    for m, targets in graph.items():
        packages.setdefault(_layer(m), set()).update(_layer(t) for t in targets
                                                     if _layer(t) != _layer(m))
    assert _cycle(packages) is None, "import cycle: " + " -> ".join(_cycle(packages))


def test_the_checker_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_the_checker_sees_function_level_and_relative_imports(tmp_path):
    src = tmp_path / "mod.py"
    src.write_text("def f():\n    from transduce.training import trainer\n"
                   "from . import b\nfrom .c import x\n")
    known = {"transduce.training.trainer", "transduce.training", "transduce.data.b",
             "transduce.data.c"}
    assert _imports("transduce.data.a", src, known) == {"transduce.training.trainer",
                                                        "transduce.data.b", "transduce.data.c"}
