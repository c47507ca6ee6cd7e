"""Package ``__init__``s that import their names on first use (PEP 562), so that importing a
package (and the CLI's ``--help``) does not pay for torch."""
from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, exports: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package`` whose public names live in the modules
    ``exports[name]`` (relative to the package, e.g. ``".pipeline"``); a name is imported once,
    then cached in the package's namespace.

    A public name that is also a submodule's name (``data.degrade``, ``models.edsr``) keeps meaning
    the function once that submodule is imported: the import system sets the submodule as the
    package's attribute, and the package stores the function instead, as an eager
    ``from .degrade import degrade`` would."""
    module = sys.modules[package]
    namespace = module.__dict__
    shadowed = {name for name, where in exports.items() if where.lstrip(".") == name}

    class LazyPackage(types.ModuleType):
        def __setattr__(self, name: str, value: Any) -> None:
            if name in shadowed and isinstance(value, types.ModuleType):
                value = getattr(value, name)
            super().__setattr__(name, value)

    module.__class__ = LazyPackage

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(exports[name], package), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(exports))

    return __getattr__, __dir__
