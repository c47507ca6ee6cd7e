"""Every import runs down the package's layers, function-level imports included, and no module
imports itself through others (no circle):

    ground (data, metrics, devices, seeds, configs, flags, the method contract) → ops → models/train
    (with evaluation, pre-training, run folders, step checkpoints and patches) → methods (every
    method the registry finds in the tree) → the registry → compare → pipeline (CLI)

Read from the source with ``ast`` (every ``import``/``from … import`` anywhere in a module, not
only the ones executed at import time), so a lazy import that climbs fails here as much as a
top-level one. The method layer is the registry's: a method added as a sub-package is in it
without an edit here."""
from __future__ import annotations

import ast
import pathlib
import sys

import pytest

from irkernels.registry import registry

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "irkernels"

# the in-tree methods (irkernels/<name>/, found by the registry): siblings, none imports another
METHODS = tuple(sorted({spec.config.split(".")[1] for spec in registry().values()
                        if spec.config.startswith("irkernels.")}))
# top-level module or sub-package → layer; a module may import its own layer or lower ones
LAYERS = {
    **dict.fromkeys(("_checks", "_lazy", "_version", "_C", "configs", "data", "devices", "flags", "metrics",
                     "methods", "seeds", "stopping", "costs"), 0),
    "ops": 1,
    "nn": 1,  # drop-in adapters over the ops
    **dict.fromkeys(("models", "outputs", "resume", "train", "evaluate", "pretrained", "patches"), 2),
    **dict.fromkeys(METHODS, 3),
    "registry": 4,
    "compare": 5,
    "pipeline": 6,
}


def module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: pathlib.Path) -> list[tuple[str, int]]:
    """(absolute module imported, line) for every import of the package in ``path``."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            # `from . import x` names sub-modules of the package: each is an import of its own
            targets = [f"{target}.{a.name}" for a in node.names] if not node.module else [target]
            found += [(t, node.lineno) for t in targets]
        elif isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names]
    return [(t, line) for t, line in found if t == "irkernels" or t.startswith("irkernels.")]


def part(module: str) -> str:
    """The top-level part (``ops``, ``idc``, …) a module belongs to; ``""`` for the package root."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def sources() -> list[pathlib.Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_every_part_of_the_package_has_a_layer():
    parts = {part(module_name(p)) for p in sources()} - {""}
    assert parts <= set(LAYERS), f"give {sorted(parts - set(LAYERS))} a layer in LAYERS"


@pytest.mark.parametrize("path", sources(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_run_down(path):
    own = part(module_name(path))
    climbs = []
    for target, line in imports(path):
        to = part(target)
        if own == "":  # the root package is the public facade over the ops: it only re-exports
            assert to in ("_lazy", "_version"), f"{path.name}:{line} imports {target} at import time"
            continue
        if to == "":
            climbs.append(f"line {line}: {target} (the public facade; import the module that defines the name)")
        elif to != own and (LAYERS[to] > LAYERS[own] or (own in METHODS and to in METHODS)):
            climbs.append(f"line {line}: {target} (layer {LAYERS[to]} from layer {LAYERS[own]})")
    assert not climbs, f"{path.relative_to(PACKAGE)} imports upwards:\n" + "\n".join(climbs)


def test_the_methods_are_the_registrys():
    assert {"idc", "tripled"} <= set(METHODS)


def test_no_module_imports_itself_through_others():
    """No circle in the graph of modules (an import of a package is one of its ``__init__``)."""
    modules = {module_name(p): p for p in sources()}

    def owner(target: str) -> str:
        while target not in modules:
            target = target.rpartition(".")[0]
        return target

    graph = {m: {owner(t) for t, _ in imports(p)} - {m} for m, p in modules.items()}
    done: set[str] = set()

    def visit(m: str, path: list[str]) -> None:
        if m in path:
            raise AssertionError("import circle: " + " → ".join(path[path.index(m):] + [m]))
        if m not in done:
            for n in sorted(graph[m]):
                visit(n, path + [m])
            done.add(m)

    for m in sorted(graph):
        visit(m, [])


def test_the_check_sees_function_level_imports(tmp_path, monkeypatch):
    """A climb inside a function body is found (the check cannot pass by only reading the top)."""
    fake = tmp_path / "irkernels" / "data" / "climb.py"
    fake.parent.mkdir(parents=True)
    fake.write_text("def f():\n    from ..pipeline import registry\n    return registry\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", tmp_path / "irkernels")
    with pytest.raises(AssertionError, match=r"line 2: irkernels\.pipeline \(layer 6 from layer 0\)"):
        test_imports_run_down(fake)
