"""Does condensation pay off? Several training sets at one ratio, one student each, one table.

``run(CompareConfig(...), out, data=folder, test=[...])`` is what ``python -m irkernels.pipeline
compare`` calls (see :mod:`.pipeline`, docs/compare.md). The names are imported on first use, so
``irkernels.compare.config`` imports without torch.
"""
from .._lazy import lazy_exports

_EXPORTS = {"CompareConfig": ".config", "PRESETS": ".config", "compare_sets": ".config", "CompareResult": ".pipeline",
            "run": ".pipeline", "steps_to": ".report", "summarise": ".report"}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
