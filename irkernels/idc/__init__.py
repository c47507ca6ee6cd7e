"""IDC end to end (Instance Data Condensation, IDC paper Algorithm 1) and the coreset baselines.

``run_pipeline(IDCConfig(...), out, data=folder)`` condenses a folder into a BasicSR paired folder
with a manifest and a report; ``Condenser`` is the batched optimisation alone. See docs/idc.md.
"""
from .condense import CondenseResult, Condenser
from .config import METHODS, IDCConfig
from .instances import Instance, make_instances
from .pipeline import Networks, demo, run_pipeline

__all__ = ["CondenseResult", "Condenser", "IDCConfig", "Instance", "METHODS", "Networks", "demo", "make_instances",
           "run_pipeline"]
