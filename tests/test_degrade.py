"""Degradations: MATLAB bicubic against independent references, and the stated statistics."""
import io
import math

import numpy as np
import pytest
import torch
from PIL import Image as PILImage

from irkernels.data import (DegradationConfig, add_gaussian_noise, bicubic_downsample, degrade, gaussian_blur,
                            gaussian_kernel, imresize, jpeg, modcrop, motion_blur, motion_kernel, rain_streaks,
                            sample_images, to_float, to_tensor)


def matlab_imresize_reference(img: np.ndarray, scale: float) -> np.ndarray:
    """MATLAB's imresize(img, scale, 'bicubic') for a float (H, W, C) array, transcribed loop by loop
    from imresize.m (contributions, cubic, resizeAlongDim; rows first when the scales are equal)."""
    def cubic(x):
        ax = abs(x)
        if ax <= 1:
            return 1.5 * ax**3 - 2.5 * ax**2 + 1
        if ax <= 2:
            return -0.5 * ax**3 + 2.5 * ax**2 - 4 * ax + 2
        return 0.0

    def resize_dim(a, axis):
        in_len = a.shape[axis]
        out_len = math.ceil(in_len * scale)
        width = 4.0 / scale if scale < 1 else 4.0
        aux = list(range(1, in_len + 1)) + list(range(in_len, 0, -1))
        out = np.zeros_like(np.take(a, range(out_len), axis=axis, mode="clip"))
        for i in range(1, out_len + 1):
            u = i / scale + 0.5 * (1 - 1 / scale)
            left = math.floor(u - width / 2)
            idx = [left + p for p in range(math.ceil(width) + 2)]
            if scale < 1:
                w = [scale * cubic(scale * (u - j)) for j in idx]
            else:
                w = [cubic(u - j) for j in idx]
            total = sum(w)
            acc = 0.0
            for j, wj in zip(idx, w):
                src = aux[(j - 1) % len(aux)] - 1
                acc = acc + (wj / total) * np.take(a, src, axis=axis)
            if axis == 0:
                out[i - 1] = acc
            else:
                out[:, i - 1] = acc
        return out

    return resize_dim(resize_dim(img, 0), 1)


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return sample_images(include_sklearn=False, names=["astronaut"])[0].pixels


@pytest.mark.parametrize("scale", [1 / 2, 1 / 3, 1 / 4, 2.0])
def test_imresize_matches_matlab_transcription(photo, scale):
    crop = photo[100:160, 200:252].astype(np.float64) / 255  # 60 x 52, real texture
    ref = matlab_imresize_reference(crop, scale)
    out = imresize(torch.from_numpy(crop).permute(2, 0, 1), scale).permute(1, 2, 0).numpy()
    assert out.shape == ref.shape
    assert np.abs(out - ref).max() < 1e-9  # far inside the 1/255 requirement


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_bicubic_downsample_matches_pil_away_from_borders(photo, scale):
    """PIL's BICUBIC is the same kernel (a = -0.5, widened for antialiasing) in independent C code;
    it only treats the borders differently (renormalised truncation vs MATLAB's mirroring)."""
    hr = modcrop(photo, scale)
    lr = bicubic_downsample(to_float(to_tensor(hr)).double(), scale).numpy()
    size = (hr.shape[1] // scale, hr.shape[0] // scale)
    ref = np.stack([np.asarray(PILImage.fromarray(hr[..., c].astype(np.float32)).resize(size, PILImage.BICUBIC))
                    for c in range(3)]) / 255
    m = 3
    assert np.abs(lr - ref)[:, m:-m, m:-m].max() < 1 / 255


def test_imresize_properties():
    const = torch.full((3, 31, 17), 0.3, dtype=torch.float64)
    assert torch.allclose(imresize(const, 0.25), torch.full((3, 8, 5), 0.3, dtype=torch.float64))
    # cubic convolution reproduces linear ramps away from the borders
    ramp = torch.arange(64, dtype=torch.float64).repeat(3, 64, 1) / 64
    down = imresize(ramp, 0.5)
    centres = (torch.arange(32, dtype=torch.float64) * 2 + 0.5) / 64  # output pixel i covers inputs 2i, 2i+1
    assert torch.allclose(down[0, 10, 4:-4], centres[4:-4], atol=1e-12)
    with pytest.raises(ValueError, match="multiple of scale"):
        bicubic_downsample(torch.rand(3, 10, 10), 4)
    with pytest.raises(ValueError, match="exactly one"):
        imresize(torch.rand(3, 8, 8))


def test_gaussian_noise_std_on_255_scale():
    x = torch.full((3, 256, 256), 0.5, dtype=torch.float64)
    g = torch.Generator().manual_seed(1)
    noisy = add_gaussian_noise(x, 25.0, g, clip=False)
    std = float((noisy - x).std() * 255)
    assert abs(std - 25.0) < 0.3  # 196k samples: std error ~0.04
    assert abs(float((noisy - x).mean() * 255)) < 0.3
    assert torch.equal(add_gaussian_noise(x, 25.0, torch.Generator().manual_seed(1), clip=False), noisy)
    clipped = add_gaussian_noise(x, 200.0, g)
    assert float(clipped.min()) == 0.0 and float(clipped.max()) == 1.0


@pytest.mark.parametrize("sigma", [0.8, 2.0, 3.3])
def test_gaussian_kernel_sums_to_one_and_has_sigma(sigma):
    k = gaussian_kernel(sigma)
    assert k.shape[0] == 2 * math.ceil(3 * sigma) + 1
    assert abs(float(k.sum()) - 1) < 1e-12
    r = torch.arange(k.shape[0], dtype=torch.float64) - k.shape[0] // 2
    var = float((k.sum(1) * r * r).sum())  # variance of the marginal (3-sigma truncation: ~1% low)
    assert abs(math.sqrt(var) - sigma) / sigma < 0.02


@pytest.mark.parametrize("length,angle", [(9, 0.0), (15, 45.0), (10, 120.0)])
def test_motion_kernel(length, angle):
    k = motion_kernel(length, angle)
    assert abs(float(k.sum()) - 1) < 1e-12 and k.shape[0] % 2 == 1
    if angle == 0.0:  # horizontal: only the middle row is non-zero
        assert float(k[k.shape[0] // 2].sum()) == pytest.approx(1.0)


def test_blurs_preserve_mean_and_smooth():
    g = torch.Generator().manual_seed(0)
    x = torch.rand((2, 3, 40, 48), generator=g, dtype=torch.float64)
    for out in (gaussian_blur(x, 1.5), motion_blur(x, 9, 30.0)):
        assert out.shape == x.shape
        assert abs(float(out.mean() - x.mean())) < 5e-3  # reflection padding: near-exact mean
        assert float(out.std()) < 0.6 * float(x.std())  # white noise loses most of its variance
    const = torch.full((3, 20, 20), 0.7, dtype=torch.float64)
    assert torch.allclose(gaussian_blur(const, 2.0), const)


def test_jpeg_quality_changes_output(photo):
    x = to_float(to_tensor(photo[:128, :128]))
    err = {q: float((jpeg(x, q) - x).abs().mean()) for q in (10, 50, 95)}
    assert err[10] > err[50] > err[95] > 0
    buf = io.BytesIO()
    PILImage.fromarray(photo[:128, :128]).save(buf, format="JPEG", quality=50)
    ref = torch.from_numpy(np.array(PILImage.open(buf).convert("RGB"))).permute(2, 0, 1).float() / 255
    assert torch.equal(jpeg(x, 50), ref)


def test_rain_streaks():
    x = torch.full((1, 3, 96, 96), 0.2)
    lone = rain_streaks(x, density=3e-4, length=11, angle=80, intensity=0.5, generator=torch.Generator().manual_seed(3))
    assert float((lone - x).max()) == pytest.approx(0.5, abs=1e-6)  # a lone streak peaks at intensity
    rainy = rain_streaks(x, density=0.01, length=11, angle=80, intensity=0.5, generator=torch.Generator().manual_seed(0))
    added = rainy - x
    assert float(added.min()) >= 0 and float(rainy.max()) <= 1
    assert 0.02 < float((added > 0.01).float().mean()) < 0.5  # streaks cover more than the drops
    assert torch.equal(added[:, 0], added[:, 1])  # grey streaks


def test_degrade_dispatch_and_sizes():
    x = torch.rand(3, 48, 48)
    for kind in ("bicubic", "noise", "blur", "motion", "jpeg", "rain"):
        cfg = DegradationConfig(kind=kind, scale=4)
        out = degrade(x, cfg)
        assert out.shape[-1] == 48 // cfg.factor and 0 <= float(out.min()) and float(out.max()) <= 1
    with pytest.raises(ValueError, match="kind"):
        DegradationConfig(kind="fog")
