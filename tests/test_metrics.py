"""PSNR/SSIM against scikit-image on the same arrays, and hand-computed values."""
import numpy as np
import pytest
import torch
from skimage.color import rgb2ycbcr
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from irkernels.data import modcrop, quantize, sample_images, to_tensor
from irkernels.data.degrade import bicubic_downsample, imresize
from irkernels.metrics import psnr, rgb_to_y, ssim


def sk_ssim(a: np.ndarray, b: np.ndarray, **kw) -> float:
    return structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                 data_range=255, **kw)


@pytest.fixture(scope="module")
def sr_pair():
    """A real photo and its ×4 bicubic round trip, both uint8 (3, H, W)."""
    hr = to_tensor(modcrop(sample_images(include_sklearn=False, names=["chelsea"])[0].pixels, 4))
    lr = quantize(bicubic_downsample(hr.double() / 255, 4))
    return quantize(imresize(lr.double() / 255, 4.0)), hr


@pytest.mark.parametrize("crop", [0, 4])
def test_rgb_metrics_equal_skimage(sr_pair, crop):
    sr, hr = sr_pair
    h, w = hr.shape[-2:]
    a = sr.permute(1, 2, 0).numpy()[crop:h - crop, crop:w - crop]
    b = hr.permute(1, 2, 0).numpy()[crop:h - crop, crop:w - crop]
    assert float(psnr(sr, hr, crop)) == pytest.approx(peak_signal_noise_ratio(b, a, data_range=255), abs=1e-10)
    assert float(ssim(sr, hr, crop)) == pytest.approx(sk_ssim(a, b, channel_axis=2), abs=1e-10)


def test_y_metrics_equal_skimage(sr_pair):
    sr, hr = sr_pair
    ya = rgb2ycbcr(sr.permute(1, 2, 0).numpy())[..., 0][4:-4, 4:-4]  # MATLAB's convention, float Y
    yb = rgb2ycbcr(hr.permute(1, 2, 0).numpy())[..., 0][4:-4, 4:-4]
    assert float(psnr(sr, hr, 4, y_channel=True)) == pytest.approx(peak_signal_noise_ratio(yb, ya, data_range=255), abs=1e-9)
    assert float(ssim(sr, hr, 4, y_channel=True)) == pytest.approx(sk_ssim(ya, yb), abs=1e-9)
    # a ×4 bicubic round trip of a natural photo sits in the usual 24-32 dB band
    assert 24 < float(psnr(sr, hr, 4, y_channel=True)) < 32


def test_random_arrays_and_batches_equal_skimage():
    g = torch.Generator().manual_seed(0)
    a = torch.randint(0, 256, (2, 3, 37, 45), generator=g, dtype=torch.uint8)
    b = (a.int() + torch.randint(-30, 31, a.shape, generator=g)).clamp(0, 255).to(torch.uint8)
    p, s = psnr(a, b), ssim(a, b)
    assert p.shape == (2,) and s.shape == (2,)
    for i in range(2):
        an, bn = a[i].permute(1, 2, 0).numpy(), b[i].permute(1, 2, 0).numpy()
        assert float(p[i]) == pytest.approx(peak_signal_noise_ratio(an, bn, data_range=255), abs=1e-10)
        assert float(s[i]) == pytest.approx(sk_ssim(an, bn, channel_axis=2), abs=1e-10)


def test_hand_made_values():
    a = torch.full((3, 16, 16), 100, dtype=torch.uint8)
    assert float(psnr(a, a + 1)) == pytest.approx(10 * np.log10(255**2), abs=1e-12)  # MSE 1: 48.1308 dB
    assert float(psnr(a, a + 10)) == pytest.approx(10 * np.log10(255**2 / 100), abs=1e-12)
    assert float(psnr(a, a)) == float("inf")
    c1 = (0.01 * 255) ** 2  # constant images: SSIM = luminance term only
    assert float(ssim(a, a + 10)) == pytest.approx((2 * 100 * 110 + c1) / (100**2 + 110**2 + c1), abs=1e-12)
    assert float(ssim(a, a)) == pytest.approx(1.0, abs=1e-12)
    white, black = torch.full((3, 2, 2), 255.0), torch.zeros(3, 2, 2)
    assert torch.allclose(rgb_to_y(white), torch.full((2, 2), 235.0, dtype=torch.float64))
    assert torch.allclose(rgb_to_y(black), torch.full((2, 2), 16.0, dtype=torch.float64))


def test_bad_inputs():
    with pytest.raises(ValueError, match="one shape"):
        psnr(torch.zeros(3, 8, 8), torch.zeros(3, 8, 9))
    with pytest.raises(ValueError, match="crop_border"):
        psnr(torch.zeros(3, 8, 8), torch.ones(3, 8, 8), crop_border=4)
    with pytest.raises(ValueError, match="11x11"):
        ssim(torch.zeros(3, 10, 10), torch.zeros(3, 10, 10))
    with pytest.raises(ValueError, match="3, H, W"):
        psnr(torch.zeros(2, 8, 8), torch.zeros(2, 8, 8), y_channel=True)
    with pytest.raises(TypeError, match="pred"):
        psnr(np.zeros((8, 8)), torch.zeros(8, 8))
