"""irkernels: fast dataset condensation / distillation for image restoration (IDC, TripleD).

Public ops (autograd-aware; fused Triton kernels on CUDA, chunked plain torch elsewhere):
``ncfd_loss``, ``cf_stats``, ``ncfd_from_stats`` (characteristic-function discrepancy);
``rlff``, ``RLFF`` (Random Local Fourier Features); ``kmeans``, ``assign_with_quotas``,
``kmeans_assign``, ``nearest_in_group`` (IDC's grouping and pairing). Importable without
Triton (every op then runs its torch path); argument vocabulary in ``docs/ops.md``.
"""
from ._backend import backend_report
from ._checks import value_checks
from .ops.ncfd import CFStats, cf_stats, ncfd_from_stats, ncfd_loss, sample_frequencies
from .ops.grouping import assign_with_quotas, nearest_in_group, proportional_quotas
from .ops.kmeans import KMeansResult, kmeans, kmeans_assign
from .ops.rlff import RLFF, dft_filter_bank, reference_stats, rlff, sample_rows

__version__ = "0.1.0"
__all__ = [
    "CFStats", "KMeansResult", "RLFF", "assign_with_quotas", "backend_report", "cf_stats", "dft_filter_bank",
    "kmeans", "kmeans_assign", "ncfd_from_stats", "ncfd_loss", "nearest_in_group", "proportional_quotas", "reference_stats", "rlff",
    "sample_frequencies", "sample_rows", "value_checks", "__version__",
]
