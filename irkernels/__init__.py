"""irkernels: fast dataset condensation / distillation for image restoration (IDC, TripleD)."""
from ._backend import backend_report

__version__ = "0.1.0"
__all__ = ["backend_report", "__version__"]
