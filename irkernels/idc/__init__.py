"""IDC end to end (Instance Data Condensation, IDC paper Algorithm 1) and the coreset baselines.

``run(IDCConfig(...), out, data=folder)`` condenses a folder into a BasicSR paired folder with a
manifest and a report (an :class:`IDCResult`); ``Condenser`` is the batched optimisation alone.
See docs/idc.md. The names are imported on first use (PEP 562), so ``irkernels.idc.config``
imports without torch.
"""
from __future__ import annotations

import importlib
from typing import Any

_WHERE = {"CondenseResult": "condense", "Condenser": "condense", "IDCConfig": "config", "METHODS": "config",
          "Instance": "instances", "make_instances": "instances", "IDCResult": "pipeline", "Networks": "pipeline",
          "demo": "pipeline", "run": "pipeline"}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))
