"""The method registry: every method's :class:`irkernels.methods.MethodSpec`, found by name, and run.

Found in two places, so that adding a method edits nothing outside it:

- in the tree: every sub-package ``irkernels/<name>/`` whose ``config.py`` defines ``METHOD`` at
  its top level (read as text first, so that no other package's config is imported);
- in other installed packages: the entry points of the group ``irkernels.methods``, each a
  ``MethodSpec`` (``toy = "toymethod.config:METHOD"`` in the package's ``[project.entry-points]``).

Its own layer, between the methods and ``compare``: the CLI builds a sub-command from each spec,
``compare`` its rows, ``tests/test_layers.py`` the method layer. Only the config modules are
imported (torch-free), so ``--help`` stays fast; a spec's other parts are imported when asked for.
"""
from __future__ import annotations

import functools
import importlib
import os
import pkgutil
import re
import sys
from importlib.metadata import entry_points
from typing import Any

from .methods import MethodConfig, MethodSpec, RunResult

GROUP = "irkernels.methods"  # the entry-point group of methods in other packages
_DEFINES_METHOD = re.compile(r"^METHOD\s*[:=]", re.M)


def _in_tree(paths: tuple[str, ...]) -> list[str]:
    """The config modules of the sub-packages (under ``paths``, the package's ``__path__``) that
    define ``METHOD``."""
    found = []
    for module in pkgutil.iter_modules(list(paths)):
        config = os.path.join(module.module_finder.path, module.name, "config.py")
        if module.ispkg and os.path.isfile(config):
            with open(config, encoding="utf-8") as fh:
                if _DEFINES_METHOD.search(fh.read()):
                    found.append(f"{__package__}.{module.name}.config")
    return sorted(found)


@functools.lru_cache(maxsize=8)
def _discover(paths: tuple[str, ...], search_path: tuple[str, ...]) -> dict[str, MethodSpec]:
    specs = [(m, importlib.import_module(m).METHOD) for m in _in_tree(paths)]
    specs += [(f"entry point {ep.name} = {ep.value}", ep.load()) for ep in entry_points(group=GROUP)]
    out: dict[str, MethodSpec] = {}
    for where, spec in specs:
        if not isinstance(spec, MethodSpec):
            raise TypeError(f"{where}: METHOD must be an irkernels.methods.MethodSpec, got {type(spec).__name__}")
        if spec.name in out:
            raise ValueError(f"two methods are named {spec.name!r} (the second in {where})")
        out[spec.name] = spec
    return dict(sorted(out.items()))


def registry() -> dict[str, MethodSpec]:
    """Every registered method by name, sorted (discovered once per package path and ``sys.path``)."""
    return dict(_discover(tuple(sys.modules[__package__].__path__), tuple(sys.path)))


def get_method(name: str) -> MethodSpec:
    methods = registry()
    if name not in methods:
        raise ValueError(f"method must be one of {sorted(methods)}, got {name!r}")
    return methods[name]


def run_method(name: str, cfg: MethodConfig, out: str, **kwargs: Any) -> RunResult:
    """Run the registered method ``name`` with ``cfg`` (its config class) into ``out``; ``kwargs``
    go to its ``run`` (``data=``, ``overwrite=``, ...)."""
    spec = get_method(name)
    if not isinstance(cfg, spec.config_class()):
        raise TypeError(f"cfg must be a {spec.config_class().__name__} for method {name!r}, got {type(cfg).__name__}")
    return spec.runner()(cfg, out, **kwargs)


__all__ = ["GROUP", "get_method", "registry", "run_method"]
