"""IDC end to end (Instance Data Condensation, IDC paper Algorithm 1) and the coreset baselines.

``run(IDCConfig(...), out, data=folder)`` condenses a folder into a BasicSR paired folder with a
manifest and a report (an :class:`IDCResult`); ``Condenser`` is the batched optimisation alone.
See docs/idc.md. The names are imported on first use (PEP 562), so ``irkernels.idc.config``
imports without torch.
"""
from .._lazy import lazy_exports

_EXPORTS = {"CondenseResult": ".condense", "Condenser": ".condense", "IDCConfig": ".config", "METHODS": ".config",
            "Instance": "..patches", "make_instances": "..patches", "IDCResult": ".pipeline",
            "Networks": ".pipeline", "demo": ".demo_run", "run": ".pipeline"}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
