"""irkernels: fast dataset condensation / distillation for image restoration (IDC, TripleD).

Public ops (autograd-aware; fused Triton kernels on CUDA, chunked plain torch elsewhere):
``ncfd_loss``, ``cf_stats``, ``ncfd_from_stats`` (characteristic-function discrepancy);
``rlff``, ``RLFF`` (Random Local Fourier Features); ``kmeans``, ``assign_with_quotas``,
``kmeans_assign``, ``nearest_in_group`` (IDC's grouping and pairing); drop-in adapters
``CFLoss`` (NCFM's loss) and ``KMeans`` (scikit-learn's estimator), in ``irkernels.nn``. Importable without
Triton (every op then runs its torch path); argument vocabulary in ``docs/ops.md``.

The names are imported on first use, so ``import irkernels`` (and the CLI's ``--help``) does not
pay for importing torch and Triton.
"""
from __future__ import annotations

from ._lazy import lazy_exports
from ._version import __version__

# public name -> module that defines it
_EXPORTS = {
    "backend_report": ".ops._backend", "value_checks": "._checks",
    "CFStats": ".ops.ncfd", "cf_stats": ".ops.ncfd", "ncfd_from_stats": ".ops.ncfd", "ncfd_loss": ".ops.ncfd",
    "sample_frequencies": ".ops.ncfd",
    "assign_with_quotas": ".ops.quotas", "nearest_in_group": ".ops.nearest",
    "proportional_quotas": ".ops.quotas",
    "KMeansResult": ".ops.kmeans", "kmeans": ".ops.kmeans", "kmeans_assign": ".ops.kmeans",
    "RLFF": ".ops.rlff", "dft_filter_bank": ".ops.rlff", "reference_stats": ".ops.rlff", "rlff": ".ops.rlff",
    "sample_rows": ".ops.rlff",
    "CFLoss": ".nn", "KMeans": ".nn",
}
__all__ = sorted(_EXPORTS) + ["__version__"]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
