"""The method registry: every method that a command module registers (its ``METHOD``, the
``MethodSpec`` written next to the method in its ``config.py``), found by name, and run.

It lives in the CLI layer because it is the CLI's command modules that it reads; the methods
themselves only know the contract (``irkernels.methods``).
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..methods import MethodConfig, MethodSpec, RunResult
from . import command_modules


def registry(modules: Iterable | None = None) -> dict[str, MethodSpec]:
    """Every registered method by name: the ``METHOD`` of each command module (default: those of
    ``irkernels.pipeline``)."""
    specs = [m.METHOD for m in (command_modules() if modules is None else modules) if hasattr(m, "METHOD")]
    out = {s.name: s for s in specs}
    if len(out) != len(specs):
        raise ValueError(f"two command modules register the same method name: {sorted(s.name for s in specs)}")
    return out


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


__all__ = ["get_method", "registry", "run_method"]
