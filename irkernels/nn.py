"""Drop-in adapters: the fused ops behind the interfaces people already call.

- :class:`CFLoss` is NCFM's ``CFLossFunc`` (``alpha_for_loss``/``beta_for_loss``,
  ``forward(feat_tg, feat, t=None, args=None)``) on :func:`irkernels.ncfd_loss`: the same value
  and gradients, without the ``(T, N)`` matrices NCFM materialises (docs/ncfd.md, "From NCFM").
- :class:`KMeans` is scikit-learn's estimator (``fit``, ``predict``, ``fit_predict``, ``labels_``,
  ``cluster_centers_``, ``inertia_``, ``n_iter_``) on :func:`irkernels.kmeans`, tensors in and
  tensors out, on whatever device the points are.
"""
from __future__ import annotations

import torch
from torch import nn

from .ops.kmeans import kmeans, kmeans_assign
from .ops.ncfd import ncfd_loss


class CFLoss(nn.Module):
    """NCFM's characteristic-function loss: ``mean_t sqrt(α·(|Φ_tg(t)| − |Φ(t)|)² + β·2(|Φ_tg||Φ| −
    Re Φ_tg Re Φ − Im Φ_tg Im Φ))`` with amplitude weight ``alpha_for_loss`` (α) and phase weight
    ``beta_for_loss`` (β), each in [0, 1] and not summing to 1 in general, as NCFM's ``CFLossFunc``.

    ``forward(feat_tg, feat, t=None, args=None, *, num_freqs=None)``: real features ``(B1, D)``,
    synthetic features ``(B2, D)``, frequencies ``t (T, D)``; without ``t``, ``num_freqs`` (or
    ``args.num_freqs``, NCFM's way) frequencies are drawn from N(0, I) with torch's global
    generator, as NCFM does. ``precision``/``backend`` as :func:`irkernels.ncfd_loss`'s (``"fast"``
    is TF32 with approximate sin/cos on a GPU; ``"highest"`` for NCFM's float32 to ~1e-4).
    """

    def __init__(self, alpha_for_loss: float = 0.5, beta_for_loss: float = 0.5, *, precision: str = "fast",
                 backend: str = "auto") -> None:
        super().__init__()
        for name, value in (("alpha_for_loss", alpha_for_loss), ("beta_for_loss", beta_for_loss)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {value}")
        self.alpha, self.beta = alpha_for_loss, beta_for_loss
        self.precision, self.backend = precision, backend

    def forward(self, feat_tg: torch.Tensor, feat: torch.Tensor, t: torch.Tensor | None = None, args=None, *,
                num_freqs: int | None = None) -> torch.Tensor:
        if t is None:
            num_freqs = num_freqs if num_freqs is not None else getattr(args, "num_freqs", None)
            if num_freqs is None:
                raise ValueError("t is None: give num_freqs (or args.num_freqs, as NCFM does) to draw frequencies")
            t = torch.randn((num_freqs, feat.shape[1]), device=feat.device, dtype=feat.dtype)
        return ncfd_loss(feat_tg, feat, t, alpha=self.alpha, phase_weight=self.beta, precision=self.precision,
                         backend=self.backend)

    def extra_repr(self) -> str:
        return f"alpha_for_loss={self.alpha}, beta_for_loss={self.beta}, precision={self.precision!r}"


class KMeans:
    """scikit-learn's ``KMeans`` interface on :func:`irkernels.kmeans`: ``KMeans(n_clusters).fit(X)``
    then ``labels_``, ``cluster_centers_``, ``inertia_``, ``n_iter_``, ``predict(X)``,
    ``fit_predict(X)``. ``X`` is an ``(N, D)`` tensor (or array-like, made a float32 tensor) on any
    device; results are tensors on that device. ``n_init`` runs from seeds ``random_state``,
    ``random_state + 1``, … keep the lowest inertia; ``max_iter``/``tol`` mean what they mean in
    scikit-learn (``tol`` relative to the data's variance); ``init`` ``"k-means++"``, ``"random"``
    or a ``(K, D)`` tensor; ``precision``/``backend`` as :func:`irkernels.kmeans`'s."""

    def __init__(self, n_clusters: int = 8, *, init: str | torch.Tensor = "k-means++", n_init: int = 1,
                 max_iter: int = 300, tol: float = 1e-4, random_state: int | None = None, precision: str = "high",
                 backend: str = "auto") -> None:
        if isinstance(n_init, bool) or not isinstance(n_init, int) or n_init < 1:
            raise ValueError(f"n_init must be a positive int, got {n_init!r}")
        self.n_clusters, self.init, self.n_init, self.max_iter, self.tol = n_clusters, init, n_init, max_iter, tol
        self.random_state, self.precision, self.backend = random_state, precision, backend

    @staticmethod
    def _points(x) -> torch.Tensor:
        x = x if isinstance(x, torch.Tensor) else torch.as_tensor(x, dtype=torch.float32)
        if x.dim() != 2:
            raise ValueError(f"X must be (n_samples, n_features), got shape {tuple(x.shape)}")
        return x

    def fit(self, x, y=None) -> KMeans:
        """Cluster ``x``; ``y`` is ignored (scikit-learn's signature)."""
        result = kmeans(self._points(x), self.n_clusters, iters=self.max_iter, tol=self.tol, init=self.init,
                        n_init=self.n_init, seed=self.random_state, precision=self.precision, backend=self.backend)
        self.labels_, self.cluster_centers_ = result.labels, result.centroids
        self.inertia_, self.n_iter_ = result.inertia, result.n_iter
        return self

    def predict(self, x) -> torch.Tensor:
        """The nearest fitted centroid of each row of ``x`` (``fit`` first)."""
        if not hasattr(self, "cluster_centers_"):
            raise RuntimeError("this KMeans is not fitted yet: call fit(X) first")
        points = self._points(x)
        return kmeans_assign(points, self.cluster_centers_.to(points.dtype), precision=self.precision,
                             backend=self.backend)[0]

    def fit_predict(self, x, y=None) -> torch.Tensor:
        return self.fit(x).labels_


__all__ = ["CFLoss", "KMeans"]
