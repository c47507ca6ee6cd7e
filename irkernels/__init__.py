"""irkernels: fast dataset condensation / distillation for image restoration (IDC, TripleD).

Public ops (autograd-aware; fused Triton kernels on CUDA, chunked plain torch elsewhere):
``ncfd_loss``, ``cf_stats``, ``ncfd_from_stats``.
"""
from ._backend import backend_report
from .ops.ncfd import CFStats, cf_stats, ncfd_from_stats, ncfd_loss, sample_frequencies

__version__ = "0.1.0"
__all__ = ["CFStats", "backend_report", "cf_stats", "ncfd_from_stats", "ncfd_loss", "sample_frequencies", "__version__"]
