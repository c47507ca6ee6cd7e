"""pytest-benchmark: TripleD's per-step costs — scoring a batch with the ViT, full-resolution entropy,
one latent-distillation step and one CNN fine-tuning step (eq. 4 with its pixel term).

``pytest benchmarks/test_bench_tripled.py --benchmark-enable``; CUDA: vit_tiny at 128², batch 64,
EDSR-baseline features on 16 crops of 128²; CPU: a 2-layer ViT at 32², 4 crops of 32².
"""
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from irkernels.models import build_model  # noqa: E402
from irkernels.tripled.features import feature_target  # noqa: E402
from irkernels.tripled.finetune import FinetuneConfig, distribution_terms  # noqa: E402
from irkernels.tripled.latent import decode, matching_loss, tiny_autoencoder  # noqa: E402
from irkernels.tripled.scoring import ComplexityScorer, image_entropy  # noqa: E402

CUDA = torch.cuda.is_available()
DEVICE = torch.device("cuda" if CUDA else "cpu")
SIZE, CROPS = (128, 16) if CUDA else (32, 4)


def _sync(x):
    if CUDA:
        torch.cuda.synchronize()
    return x


def test_bench_vit_scoring_batch(benchmark):
    kwargs = {} if CUDA else {"depth": 2, "embed_dim": 48, "num_heads": 3}
    scorer = ComplexityScorer("vit_tiny_patch16_224", 128 if CUDA else 32, kwargs).to(DEVICE).eval()
    x = torch.rand(64 if CUDA else 8, 3, scorer.img_size, scorer.img_size, device=DEVICE)
    with torch.no_grad():
        out = benchmark(lambda: _sync(scorer(x)))
    assert out.shape == (x.shape[0],)


def test_bench_entropy_full_resolution(benchmark):
    img = np.random.default_rng(0).integers(0, 256, (321, 481, 3), dtype=np.uint8)  # a CBSD432-sized photo
    assert 6 < benchmark(image_entropy, img) <= 8  # luma of uniform RGB is not uniform


@pytest.fixture(scope="module")
def matching_setup():
    torch.manual_seed(0)
    extractor = build_model("edsr-baseline", 1).to(DEVICE).eval().requires_grad_(False)
    target = feature_target(extractor, [torch.rand(3, SIZE, SIZE) for _ in range(4)], num_freqs=256, device=DEVICE)
    return extractor, target


def test_bench_latent_step(benchmark, matching_setup):
    extractor, target = matching_setup
    vae = tiny_autoencoder().to(DEVICE).eval().requires_grad_(False)
    latents = torch.randn(CROPS, 4, SIZE // 4, SIZE // 4, device=DEVICE, requires_grad=True)
    opt = torch.optim.Adam([latents], lr=0.05)

    def step():
        loss = matching_loss(decode(vae, latents), extractor, target, 16384)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return _sync(loss)

    assert torch.isfinite(benchmark(step))


def test_bench_cnn_step(benchmark, matching_setup):
    from irkernels.models import TripleDCNN

    extractor, target = matching_setup
    cfg = FinetuneConfig()
    cnn = TripleDCNN(cfg.channels, cfg.layers).to(DEVICE)
    opt = torch.optim.Adam(cnn.parameters(), lr=cfg.lr)
    images = torch.rand(CROPS, 3, SIZE, SIZE, device=DEVICE)

    def step():
        adjusted = cnn(images)
        l2, kl = distribution_terms(extractor.features(adjusted), target)
        loss = l2 + kl + cfg.pixel_weight * torch.nn.functional.l1_loss(adjusted, images)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return _sync(loss)

    assert torch.isfinite(benchmark(step))
