"""TripleD steps on the CPU at tiny sizes: entropy labels, the scorer, selection, the dynamic sampler
and the trainer's per-step index hook, feature statistics and their frequency scale, latent and
pixel-space distillation, the VAE loader and trust bar, and the CNN fine-tuning (eq. 4)."""
import numpy as np
import pytest
import torch

from irkernels.data.images import Image
from irkernels.models import TripleDCNN
from irkernels.ops.ncfd import cf_stats
from irkernels.tripled.features import feature_samples, feature_target
from irkernels.tripled.finetune import FinetuneConfig, distribution_terms, finetune_images, gaussian_kl
from irkernels.tripled.latent import (LatentConfig, distill_latents, load_vae, matching_loss, random_crops,
                                      reconstruction_psnr, tiny_autoencoder, train_vae)
from irkernels.tripled.scoring import (ComplexityScorer, ScorerConfig, grey_levels, image_entropy, load_scorer,
                                       minmax_normalise, save_scorer, score_images, spearman, train_scorer)
from irkernels.tripled.selection import (DynamicSampler, balanced_counts, deal_to_types, select_balanced, select_top,
                                         selection_count)

pytestmark = pytest.mark.usefixtures("one_thread")


TINY_VIT = {"depth": 2, "embed_dim": 48, "num_heads": 3, "patch_size": 8}


def noise_image(amplitude: int, rng: np.random.Generator, size: int = 48) -> np.ndarray:
    """Uniform noise of half-width ``amplitude`` around mid-grey: entropy grows with ``amplitude``."""
    grey = 128 + rng.integers(-amplitude, amplitude + 1, (size, size))
    return np.repeat(np.clip(grey, 0, 255).astype(np.uint8)[..., None], 3, axis=2)


# --------------------------------------------------------------------------------------------- entropy
def test_entropy_equals_direct_computation():
    from skimage.measure import shannon_entropy

    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (37, 29, 3), dtype=np.uint8)
    grey = np.clip(np.round(img.astype(np.float64) @ [0.299, 0.587, 0.114]), 0, 255).astype(np.uint8)
    assert np.array_equal(grey_levels(img), grey)
    _, counts = np.unique(grey, return_counts=True)
    p = counts / counts.sum()
    direct = -(p * np.log2(p)).sum()
    assert image_entropy(img) == pytest.approx(direct, abs=1e-12)
    assert image_entropy(img) == pytest.approx(shannon_entropy(grey), abs=1e-12)
    assert image_entropy(np.full((8, 8, 3), 77, np.uint8)) == 0.0
    two = np.zeros((8, 8, 3), np.uint8)
    two[:4] = 255
    assert image_entropy(two) == pytest.approx(1.0)


def test_entropy_rejects_non_uint8():
    with pytest.raises(ValueError, match="uint8"):
        image_entropy(np.zeros((4, 4, 3), np.float32))


def test_minmax_normalise():
    out = minmax_normalise([2.0, 4.0, 6.0])
    assert np.allclose(out, [0, 0.5, 1])
    assert np.allclose(minmax_normalise([1.0, 9.0], lo=0, hi=8), [0.125, 1.0])  # clipped


# --------------------------------------------------------------------------------------------- scorer
def test_scorer_learns_entropy_ranking_on_held_out_images():
    rng = np.random.default_rng(0)
    train = [Image(f"t{a}", noise_image(a, rng)) for a in np.linspace(0, 120, 16).astype(int)]
    held = [Image(f"h{i}", noise_image(int(a), rng)) for i, a in enumerate(rng.integers(0, 121, 12))]
    truth = [image_entropy(im.pixels) for im in held]
    cfg = ScorerConfig(img_size=32, model_kwargs=TINY_VIT, steps=0, batch_size=16, lr=2e-3, crop_min=24, crop_max=48,
                       device="cpu", progress=False)
    untrained, _ = train_scorer(train, cfg)
    labels = minmax_normalise(truth, *untrained.entropy_range)
    before = score_images(untrained, held)
    cfg.steps = 80
    scorer, losses = train_scorer(train, cfg)
    after = score_images(scorer, held)
    assert np.mean(losses[-10:]) < np.mean(losses[:10])
    # an untrained network's ranking is chance (seeds 0-2 give 0.17, -0.77, 0.84); trained ones give > 0.95
    assert spearman(after, truth) > 0.9 and spearman(after, truth) > spearman(before, truth)
    assert np.mean((after - labels) ** 2) < 0.5 * np.mean((before - labels) ** 2)


def test_scorer_checkpoint_round_trip_and_streaming_paths(tmp_path):
    from PIL import Image as PILImage

    torch.manual_seed(0)
    scorer = ComplexityScorer("vit_tiny_patch16_224", 32, TINY_VIT).eval()
    scorer.entropy_range = (1.5, 7.0)
    path = save_scorer(scorer, str(tmp_path / "s.safetensors"))
    again = load_scorer(path)
    rng = np.random.default_rng(1)
    images = [Image(f"i{k}", noise_image(10 * k, rng, 40 + k)) for k in range(5)]
    for im in images:
        PILImage.fromarray(im.pixels).save(tmp_path / f"{im.name}.png")
    paths = [str(tmp_path / f"{im.name}.png") for im in images]
    a = score_images(scorer, images, batch_size=2)
    assert again.entropy_range == (1.5, 7.0)
    assert np.allclose(score_images(again, paths, batch_size=3), a, atol=1e-6)
    assert ((a > 0) & (a < 1)).all()
    with pytest.raises(ValueError, match="empty"):
        score_images(scorer, [])


def test_other_backbones_build_by_name():
    out = ComplexityScorer("resnet18", 32)(torch.rand(2, 3, 50, 40))  # no img_size argument in ResNets
    assert out.shape == (2,) and ((out > 0) & (out < 1)).all()


# --------------------------------------------------------------------------------------------- selection
def test_selection_counts_and_order():
    assert [selection_count(100, 0.02), selection_count(10, 0.02), selection_count(25, 0.1),
            selection_count(432, 0.02), selection_count(5, 1.0)] == [2, 1, 3, 9, 5]
    scores = np.array([0.1, 0.9, 0.5, 0.9, 0.3])
    assert select_top(scores, 0.4).tolist() == [1, 3]  # tie: lower index first
    for bad in (0, -0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="p must be a fraction"):
            select_top(scores, bad)


def test_balanced_selection_exact_per_type():
    assert balanced_counts(10, ["a", "b", "c", "d"]) == {"a": 3, "b": 3, "c": 2, "d": 2}
    rng = np.random.default_rng(0)
    scores = rng.random(40)
    types = [["noise", "blur", "rain"][i % 3] for i in range(40)]
    idx = select_balanced(scores, types, 0.25)  # k = 10 over 3 types: 4, 3, 3
    picked = [types[i] for i in idx]
    assert [picked.count(t) for t in ("noise", "blur", "rain")] == [4, 3, 3]
    for t, n in (("noise", 4), ("blur", 3), ("rain", 3)):
        own = sorted((i for i in range(40) if types[i] == t), key=lambda i: -scores[i])[:n]
        assert sorted(i for i in idx if types[i] == t) == sorted(own)
    with pytest.raises(ValueError, match="fewer than its share"):
        select_balanced([0.1, 0.2, 0.3, 0.4], ["a", "a", "a", "b"], 1.0)
    dealt = deal_to_types([7, 3, 9, 1, 4], ["x", "y"])
    assert dealt == [(7, "x"), (3, "y"), (9, "x"), (1, "y"), (4, "x")]


def test_dynamic_sampler_schedule():
    scores = np.arange(100, dtype=float)
    s = DynamicSampler(scores, p=0.05, q_start=0.45, epochs=5, seed=3)
    assert [round(s.q(e), 10) for e in range(6)] == [0.45, 0.35, 0.25, 0.15, 0.05, 0.05]
    c = DynamicSampler(scores, p=0.05, q_start=0.45, epochs=5, schedule="cosine")
    assert c.q(0) == pytest.approx(0.45) and c.q(2) == pytest.approx(0.25) and c.q(4) == pytest.approx(0.05)
    assert c.q(1) > s.q(1)  # cosine lowers the bar slowly at first
    for e in range(5):
        idx = s.indices(e)
        assert len(idx) == 5 and len(set(idx.tolist())) == 5
        assert set(idx.tolist()) <= set(s.pool(e).tolist())
        assert len(s.pool(e)) == selection_count(100, s.q(e))
    assert np.array_equal(s.indices(1), DynamicSampler(scores, 0.05, 0.45, 5, seed=3).indices(1))
    assert not np.array_equal(s.indices(0), s.indices(1))
    assert s.indices(4).tolist() == [95, 96, 97, 98, 99]  # last epoch: exactly the top p
    with pytest.raises(ValueError, match="q_start must be >= p"):
        DynamicSampler(scores, p=0.5, q_start=0.1)


# --------------------------------------------------------------------------------------------- features
def test_feature_target_equals_direct_statistics():
    torch.manual_seed(0)
    net = TripleDCNN(channels=6, layers=3).eval()
    images = [torch.rand(3, 9, 11), torch.rand(3, 13, 7)]
    target = feature_target(net, images, num_freqs=16, seed=1)
    with torch.no_grad():
        feats = [net.features(im[None]).double() for im in images]
    flat = torch.cat([f.permute(0, 2, 3, 1).reshape(-1, 6) for f in feats])
    assert target.count == 9 * 11 + 13 * 7
    assert torch.allclose(target.mean, flat.mean(0), atol=1e-6)
    assert torch.allclose(target.var, flat.var(0, correction=0), atol=1e-6)
    live = flat.std(0) > 1e-6
    assert torch.equal(target.live, live) and target.freqs.shape == (16, int(live.sum()))
    standard = (flat - flat.mean(0)) / flat.std(0, correction=0).clamp(min=1e-12)
    st = cf_stats(standard[:, live].float(), target.freqs)
    assert torch.allclose(target.cf.re, st.re, atol=1e-5) and torch.allclose(target.cf.im, st.im, atol=1e-5)
    s = target.samples(feats[0].float(), max_samples=10, generator=torch.Generator())
    assert s.shape == (10, int(live.sum()))
    assert feature_samples(feats[0].float(), target.mean, target.std).shape == (99, 6)


def test_default_frequencies_see_the_distribution_above_the_noise_floor():
    """At the default 1/√C frequency scale the real set's CF modulus stands far above what the same
    statistic gives on structureless samples of the same count (measured, not assumed)."""
    from irkernels.data.images import to_float, to_tensor
    from irkernels.data.samples import sample_images
    from irkernels.models import build_model
    from irkernels.tripled.pipeline import cf_modulus_median

    torch.manual_seed(0)
    net = build_model("edsr-baseline", 4).eval()
    photos = [to_float(to_tensor(im.pixels[:48, :48])) for im in sample_images(limit=4)]
    target = feature_target(net, photos)
    n, c = target.count, target.freqs.shape[1]
    assert target.freqs.std().item() == pytest.approx(c ** -0.5, rel=0.05)
    # phases of std ~1e3 rad wrap uniformly: the true CF is 0, what remains is the 1/√N floor
    noise = torch.randn(n, c, generator=torch.Generator().manual_seed(1)) * 1e3
    st = cf_stats(noise, target.freqs)
    floor = float(torch.sqrt(st.re.double() ** 2 + st.im.double() ** 2).median())
    assert floor < 3 / n ** 0.5
    real = cf_modulus_median(target)
    assert real > 20 * floor, (real, floor)
    unit = feature_target(net, photos, freq_std=1.0)  # t ~ N(0, I): the old scale sees far less
    assert cf_modulus_median(unit) < 0.5 * real
    with pytest.raises(ValueError, match="freq_std"):
        feature_target(net, photos, freq_std=0.0)


# --------------------------------------------------------------------------------------------- latent
def test_latent_optimisation_lowers_matching_loss():
    torch.manual_seed(0)
    extractor = TripleDCNN(channels=8, layers=3).eval()
    real = [torch.rand(3, 16, 16) ** 0.5 for _ in range(4)]  # brighter than the synthetic start
    target = feature_target(extractor, real, num_freqs=64, seed=0)
    vae = tiny_autoencoder().eval()
    start = torch.rand(4, 3, 16, 16) * 0.5
    cfg = LatentConfig(steps=25, lr=0.1, batch_size=4, seed=0, device="cpu", progress=False)
    from irkernels.tripled.latent import decode, encode

    with torch.no_grad():
        before = float(matching_loss(decode(vae, encode(vae, start)), extractor, target))
    out, losses = distill_latents(start, vae, extractor, target, cfg)
    with torch.no_grad():
        after = float(matching_loss(out, extractor, target))
    assert out.shape == start.shape and 0 <= out.min() and out.max() <= 1
    assert after < 0.8 * before, (before, after)
    with pytest.raises(ValueError, match="multiples of the VAE's factor"):
        distill_latents(torch.rand(1, 3, 10, 16), vae, extractor, target, cfg)


def test_pixel_space_distillation_lowers_matching_loss():
    torch.manual_seed(0)
    extractor = TripleDCNN(channels=8, layers=3).eval()
    target = feature_target(extractor, [torch.rand(3, 16, 16) ** 0.5 for _ in range(4)], num_freqs=64, seed=0)
    start = torch.rand(4, 3, 15, 13) * 0.5  # any size: no VAE factor
    cfg = LatentConfig(steps=25, pixel_lr=0.02, batch_size=4, seed=0, device="cpu", progress=False)
    with torch.no_grad():
        before = float(matching_loss(start, extractor, target))
    out, losses = distill_latents(start, None, extractor, target, cfg)
    with torch.no_grad():
        after = float(matching_loss(out, extractor, target))
    assert out.shape == start.shape and 0 <= out.min() and out.max() <= 1
    assert after < 0.8 * before, (before, after)


def test_vae_training_stops_at_the_bar_and_reports_its_psnr():
    torch.manual_seed(0)
    images = [torch.rand(3, 20, 24) for _ in range(3)]
    held = random_crops(images[2:], 4, 16, np.random.default_rng(0))
    cfg = LatentConfig(vae_steps=4, vae_check_every=2, vae_batch=2, vae_crop=16, vae_min_psnr=99.0, device="cpu",
                       progress=False)
    vae = tiny_autoencoder()
    fit = train_vae(vae, images[:2], cfg, held)
    assert fit["steps"] == 4 and [s for s, _ in fit["psnr_history"]] == [2, 4] and not fit["reached"]
    assert fit["psnr"] == pytest.approx(reconstruction_psnr(vae, held), abs=1e-9)
    with torch.no_grad():  # the PSNR is of decode(encode(x)) against x, in [0, 1] units
        from irkernels.tripled.latent import decode, encode

        mse = ((decode(vae, encode(vae, held)) - held) ** 2).mean(dim=(1, 2, 3))
    assert fit["psnr"] == pytest.approx(float((-10 * torch.log10(mse)).mean()), abs=1e-4)
    cfg.vae_min_psnr = 0.0  # any VAE passes: training stops at the first check
    assert train_vae(tiny_autoencoder(), images[:2], cfg, held)["steps"] == 2
    with pytest.raises(ValueError, match="at least vae_crop"):
        random_crops([torch.rand(3, 8, 40)], 1, 16, np.random.default_rng(0))


def test_vae_loads_from_local_folder(tmp_path):
    torch.manual_seed(0)
    vae = tiny_autoencoder()
    vae.save_pretrained(str(tmp_path / "model" / "vae"))  # a pipeline folder holding vae/
    for path, sub in ((tmp_path / "model", None), (tmp_path / "model" / "vae", None), (tmp_path / "model", "vae")):
        loaded = load_vae(str(path), sub)
        for (k, a), (_, b) in zip(vae.state_dict().items(), loaded.state_dict().items()):
            assert torch.equal(a, b), k
    with pytest.raises(ValueError, match="not a directory"):
        load_vae(str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="config.json"):
        load_vae(str(tmp_path))


# --------------------------------------------------------------------------------------------- CNN
def test_gaussian_kl_matches_torch():
    mu_a, mu_b = torch.randn(5), torch.randn(5)
    var_a, var_b = torch.rand(5) + 0.1, torch.rand(5) + 0.1
    ref = torch.distributions.kl_divergence(torch.distributions.Normal(mu_a, var_a.sqrt()),
                                            torch.distributions.Normal(mu_b, var_b.sqrt()))
    assert torch.allclose(gaussian_kl(mu_a, var_a, mu_b, var_b), ref, atol=1e-5)


def test_cnn_finetuning_lowers_kl():
    torch.manual_seed(0)
    extractor = TripleDCNN(channels=8, layers=3).eval()
    real = [torch.rand(3, 16, 16) for _ in range(4)]
    target = feature_target(extractor, real, num_freqs=8)
    synthetic = torch.rand(6, 3, 16, 16) * 0.4 + 0.1  # darker, lower contrast
    with torch.no_grad():
        l2_0, kl_0 = distribution_terms(extractor.features(synthetic), target)
    cfg = FinetuneConfig(steps=40, lr=1e-3, batch_size=6, channels=16, pixel_weight=0.0, device="cpu", progress=False)
    out, cnn, hist = finetune_images(synthetic, extractor, target, cfg)
    with torch.no_grad():
        l2_1, kl_1 = distribution_terms(extractor.features(out), target)
    assert out.shape == synthetic.shape
    assert kl_1 < 0.5 * kl_0 and l2_1 < l2_0, (kl_0, kl_1, l2_0, l2_1)
    assert hist["loss"][-1] < hist["loss"][0]
    with pytest.raises(ValueError, match="restoration"):
        finetune_images(synthetic, extractor, target, FinetuneConfig(steps=1, restoration_weight=1.0, device="cpu"))


def test_cnn_restoration_loss_is_added():
    from irkernels.data.degrade import add_gaussian_noise

    torch.manual_seed(0)
    extractor = TripleDCNN(channels=8, layers=3).eval()
    target = feature_target(extractor, [torch.rand(3, 16, 16)], num_freqs=8)
    synthetic = torch.rand(2, 3, 16, 16)
    restorer = TripleDCNN(channels=8, layers=3)
    torch.nn.init.normal_(restorer.last.weight, std=0.1)  # not the identity: a non-zero restoration error
    noisy = lambda x: add_gaussian_noise(x, 25, torch.Generator().manual_seed(0), clip=False)  # noqa: E731
    cfg = FinetuneConfig(steps=2, batch_size=2, channels=8, restoration_weight=1.0, device="cpu", progress=False)
    _, _, hist = finetune_images(synthetic, extractor, target, cfg, (restorer, noisy))
    assert hist["loss"][0] > hist["l2"][0] + hist["kl"][0] + 1e-3
    with pytest.raises(ValueError, match="scale must match"):
        finetune_images(synthetic, extractor, target, cfg, (restorer, lambda x: x[..., ::2, ::2]))


def test_pixel_term_keeps_finetuned_images_close_to_their_inputs():
    """Seeded run: without the pixel term the CNN drifts far from its inputs; the default weight
    keeps them above 30 dB while still lowering the KL."""
    from irkernels.metrics import psnr

    torch.manual_seed(0)
    extractor = TripleDCNN(channels=8, layers=3).eval()
    target = feature_target(extractor, [torch.rand(3, 16, 16) for _ in range(4)], num_freqs=8)
    synthetic = torch.rand(6, 3, 16, 16) * 0.8 + 0.1  # lower contrast than the real set
    with torch.no_grad():
        _, kl_0 = distribution_terms(extractor.features(synthetic), target)
    out = {}
    for w in (0.0, FinetuneConfig().pixel_weight):
        cfg = FinetuneConfig(steps=40, lr=1e-3, batch_size=6, channels=16, pixel_weight=w, device="cpu",
                             progress=False)
        img, _, hist = finetune_images(synthetic, extractor, target, cfg)
        with torch.no_grad():
            kl = distribution_terms(extractor.features(img), target)[1]
        out[w] = (float(psnr(img, synthetic, data_range=1.0).mean()), float(kl), hist)
    (free, _, _), (kept, kl_kept, hist) = out[0.0], out[FinetuneConfig().pixel_weight]
    assert free < 30 < kept, (free, kept)
    assert kl_kept < kl_0
    assert hist["pixel"][0] == 0 and max(hist["pixel"]) > 0  # the CNN starts as the identity


def test_trainer_draws_only_the_allowed_patches(monkeypatch, tmp_path):
    """``train(..., allowed=)``: each step samples from the indices it returns for that step."""
    import irkernels.train as train_mod
    from irkernels.data.images import PairSet
    from irkernels.models import build_model

    n = 12
    lq = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 3, 4, 4).contiguous()
    data = PairSet(lq, lq.clone())
    seen: list[set[int]] = []
    real = train_mod.accumulate_gradients

    def spy(net, lq, hq, *a, **k):
        seen.append(set(lq[:, 0, 0, 0].tolist()))
        return real(net, lq, hq, *a, **k)

    monkeypatch.setattr(train_mod, "accumulate_gradients", spy)
    pools = [torch.tensor([1, 5]), torch.tensor([7, 8, 9])]
    cfg = train_mod.TrainConfig(out_dir=str(tmp_path), steps=6, batch_size=8, augment=False, channels_last=False,
                                device="cpu", progress=False, ckpt_every=100)
    train_mod.train(build_model("tripled-cnn", 1), data, cfg, allowed=lambda step: pools[step // 3])
    assert all(s <= {1, 5} for s in seen[:3]) and all(s <= {7, 8, 9} for s in seen[3:])
    assert set().union(*seen[:3]) == {1, 5} and len(set().union(*seen[3:])) == 3


def test_long_tripled_stages_say_up_front_what_they_cost(monkeypatch, caplog):
    """VAE training, latent/pixel distillation and CNN fine-tuning each log one estimate, with the
    flag that shortens them, when their steps left would exceed ``LONG_STAGE_S`` (lowered to 0 here
    instead of timing anything long); quiet below it."""
    import irkernels.costs as costs

    torch.manual_seed(0)
    extractor = TripleDCNN(channels=8, layers=3).eval()
    images = [torch.rand(3, 16, 16) for _ in range(4)]
    target = feature_target(extractor, images, num_freqs=8, seed=0)
    start = torch.rand(4, 3, 16, 16)
    latent = LatentConfig(steps=12, vae_steps=12, vae_check_every=100, vae_batch=2, vae_crop=16, batch_size=4,
                          device="cpu", progress=False)
    finetune = FinetuneConfig(steps=12, batch_size=4, channels=8, device="cpu", progress=False)

    def stages() -> list[str]:
        caplog.clear()
        train_vae(tiny_autoencoder(), images, latent, random_crops(images, 2, 16, np.random.default_rng(0)))
        distill_latents(start, None, extractor, target, latent)
        finetune_images(start, extractor, target, finetune)
        return [r.getMessage() for r in caplog.records if "steps left" in r.getMessage()]

    assert stages() == []
    monkeypatch.setattr(costs, "LONG_STAGE_S", 0.0)
    said = stages()
    assert len(said) == 3, said
    for message, flag in zip(said, ("--vae-steps 0", "--latent-steps", "--cnn-steps")):
        assert "the 4 steps left" in message and "measured over 5 steps" in message and flag in message, message


def test_vae_steps_zero_chooses_pixel_space_without_training_or_alarm(monkeypatch, caplog):
    import irkernels.tripled.latent as latent
    from irkernels.tripled.config import TripleDConfig

    def fail(*a, **k):
        raise AssertionError("no VAE is trained or scored with vae_steps=0")

    monkeypatch.setattr(latent, "train_vae", fail)
    monkeypatch.setattr(latent, "reconstruction_psnr", fail)
    cfg = TripleDConfig(latent=LatentConfig(vae_steps=0), device="cpu", progress=False)
    with caplog.at_level("INFO", logger="irkernels"):
        vae, record = latent.trusted_vae([torch.rand(3, 64, 64) for _ in range(2)], cfg)
    assert vae is None and record["chosen"] and not record["trusted"] and "warning" not in record
    said = [r for r in caplog.records if "distilling in pixel space" in r.getMessage()]
    assert [r.levelname for r in said] == ["INFO"]  # what was asked for: progress, no warning
    assert not any("NOT TRUSTED" in r.getMessage() for r in caplog.records)
