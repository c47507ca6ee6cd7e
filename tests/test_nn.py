"""The drop-in adapters against what they mirror: ``CFLoss`` against NCFM's ``CFLossFunc`` formula
(written out below from NCFM's published code), ``KMeans`` against scikit-learn's estimator."""
import pytest
import torch

from irkernels.nn import CFLoss, KMeans


def ncfm_cf_loss(feat_tg, feat, t, alpha, beta):
    """NCFM's CFLossFunc.forward (github.com/gszfwsb/NCFM, ``NCFM/NCFM.py``), line for line."""
    def real(x):
        return torch.mean(torch.cos(x), dim=1)

    def imag(x):
        return torch.mean(torch.sin(x), dim=1)

    def norm(r, i):
        return torch.sqrt(r * r + i * i)

    t_x_real, t_x_imag = real(t @ feat.t()), imag(t @ feat.t())
    t_x_norm = norm(t_x_real, t_x_imag)
    t_target_real, t_target_imag = real(t @ feat_tg.t()), imag(t @ feat_tg.t())
    t_target_norm = norm(t_target_real, t_target_imag)
    amp_diff = t_target_norm - t_x_norm
    loss_amp = amp_diff * amp_diff
    loss_pha = 2 * (t_target_norm * t_x_norm - t_x_real * t_target_real - t_x_imag * t_target_imag)
    loss_pha = loss_pha.clamp(min=1e-12)
    return torch.mean(torch.sqrt(alpha * loss_amp + beta * loss_pha))


@pytest.mark.parametrize("alpha, beta", [(0.5, 0.5), (0.8, 0.2), (1.0, 1.0), (0.3, 0.9), (0.0, 1.0), (1.0, 0.0)])
def test_cf_loss_is_ncfms_formula_forward_and_backward(alpha, beta):
    gen = torch.Generator().manual_seed(int(10 * alpha + 100 * beta))
    real = torch.randn(57, 9, dtype=torch.float64, generator=gen)
    syn = (0.7 * torch.randn(13, 9, dtype=torch.float64, generator=gen) + 0.2).requires_grad_()
    t = torch.randn(31, 9, dtype=torch.float64, generator=gen) / 3
    ours = CFLoss(alpha, beta, backend="torch")(real, syn, t)
    (grad_ours,) = torch.autograd.grad(ours, syn)
    theirs = ncfm_cf_loss(real, syn, t, alpha, beta)
    (grad_theirs,) = torch.autograd.grad(theirs, syn)
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(grad_ours, grad_theirs, rtol=1e-9, atol=1e-12)


def test_cf_loss_draws_frequencies_as_ncfm_does_and_checks_its_weights():
    class Args:
        num_freqs = 16

    real, syn = torch.randn(20, 4, dtype=torch.float64), torch.randn(5, 4, dtype=torch.float64)
    torch.manual_seed(3)
    ours = CFLoss(0.6, 0.7, backend="torch")(real, syn, None, Args())
    torch.manual_seed(3)
    t = torch.randn((16, 4), dtype=torch.float64)  # NCFM: torch.randn((args.num_freqs, D)) from the global RNG
    torch.testing.assert_close(ours, ncfm_cf_loss(real, syn, t, 0.6, 0.7), rtol=1e-12, atol=1e-14)
    with pytest.raises(ValueError, match="num_freqs"):
        CFLoss()(real, syn)
    with pytest.raises(ValueError, match="beta_for_loss must lie in"):
        CFLoss(0.5, 1.5)


def test_cf_loss_on_the_triton_kernels(kernel_device):
    """The fused path (the Triton interpreter on a CPU) at its most accurate precision, float32."""
    gen = torch.Generator().manual_seed(0)
    real = torch.randn(70, 8, generator=gen).to(kernel_device)
    syn = torch.randn(11, 8, generator=gen).to(kernel_device).requires_grad_()
    t = (torch.randn(33, 8, generator=gen) / 3).to(kernel_device)
    ours = CFLoss(0.7, 0.4, precision="highest", backend="triton")(real, syn, t)
    (grad,) = torch.autograd.grad(ours, syn)
    ref_syn = syn.detach().double().requires_grad_()
    theirs = ncfm_cf_loss(real.double(), ref_syn, t.double(), 0.7, 0.4)
    (ref_grad,) = torch.autograd.grad(theirs, ref_syn)
    torch.testing.assert_close(ours.double(), theirs, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(grad.double(), ref_grad, rtol=1e-3, atol=1e-5)


def blobs(seed):
    from sklearn.datasets import make_blobs

    x, y = make_blobs(n_samples=600, centers=5, n_features=6, cluster_std=1.0, random_state=seed)
    return torch.tensor(x, dtype=torch.float32), y


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kmeans_estimator_agrees_with_scikit_learn_on_blobs(seed):
    from sklearn.cluster import KMeans as SkKMeans
    from sklearn.metrics import adjusted_rand_score

    x, _ = blobs(seed)
    ours = KMeans(5, n_init=4, random_state=seed, backend="torch").fit(x)
    theirs = SkKMeans(5, n_init=4, random_state=seed).fit(x.numpy())
    assert ours.labels_.shape == (600,) and ours.cluster_centers_.shape == (5, 6)
    assert adjusted_rand_score(theirs.labels_, ours.labels_.numpy()) == pytest.approx(1.0)  # same clusters
    assert float(ours.inertia_) == pytest.approx(theirs.inertia_, rel=0.01)
    assert 1 <= int(ours.n_iter_) <= 300
    # predict: the nearest fitted centroid; on the fitted points, the fitted labels
    assert torch.equal(ours.predict(x), ours.labels_)
    new = x[:50] + 0.01
    assert adjusted_rand_score(theirs.predict(new.numpy()), ours.predict(new).numpy()) == pytest.approx(1.0)
    assert torch.equal(KMeans(5, n_init=4, random_state=seed, backend="torch").fit_predict(x), ours.labels_)


def test_kmeans_estimator_keeps_the_best_of_n_init_and_says_when_not_fitted():
    x, _ = blobs(3)
    runs = [KMeans(5, random_state=s, backend="torch").fit(x).inertia_ for s in range(6)]
    best = KMeans(5, n_init=6, random_state=0, backend="torch").fit(x).inertia_
    assert float(best) == pytest.approx(min(float(r) for r in runs))
    assert KMeans(5, backend="torch").fit(x.numpy().tolist()).labels_.shape == (600,)  # array-likes too
    with pytest.raises(RuntimeError, match="not fitted"):
        KMeans(3).predict(x)
    with pytest.raises(ValueError, match="n_init"):
        KMeans(3, n_init=0)
    with pytest.raises(ValueError, match=r"\(n_samples, n_features\)"):
        KMeans(3).fit(x[0])
