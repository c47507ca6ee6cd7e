"""Image folders, paired folders, patches, the embedded samples, and their error messages."""
import logging
import os

import numpy as np
import pytest
import torch
from PIL import Image as PILImage

from irkernels.data import (DegradationConfig, PatchConfig, crop_patches, is_paired_folder, load_folder,
                            load_paired_folder, make_pairs, make_pairs_from_paired, quantize, read_image,
                            sample_images, to_float, to_tensor)
from irkernels.data.degrade import bicubic_downsample


def save(path, arr, mode=None):
    PILImage.fromarray(arr, mode=mode).save(path)


@pytest.fixture
def rgb(tmp_path):
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (40, 52, 3), dtype=np.uint8)


def test_formats_and_greyscale(tmp_path, rgb, caplog):
    for ext in ("png", "bmp", "tif"):
        save(tmp_path / f"a_{ext}.{ext}", rgb)
    save(tmp_path / "b.jpg", rgb)
    save(tmp_path / "grey.png", rgb[..., 0])
    (tmp_path / "notes.txt").write_text("not an image")
    with caplog.at_level(logging.INFO, logger="irkernels.data.images"):
        images = load_folder(str(tmp_path))
    assert [im.name for im in images] == ["a_bmp", "a_png", "a_tif", "b", "grey"]
    for im in images[:3]:
        assert np.array_equal(im.pixels, rgb)  # lossless formats read back exactly
    grey = images[-1].pixels
    assert grey.shape == (40, 52, 3) and np.array_equal(grey[..., 0], grey[..., 2])
    assert "grey.png is greyscale" in caplog.text


def test_unreadable_files_one_warning(tmp_path, rgb):
    save(tmp_path / "good.png", rgb)
    (tmp_path / "bad1.png").write_bytes(b"garbage")
    (tmp_path / "bad2.jpg").write_bytes(b"\xff\xd8 truncated")
    with pytest.warns(UserWarning, match=r"skipped 2 unreadable file\(s\).*bad1\.png.*bad2\.jpg") as rec:
        images = load_folder(str(tmp_path))
    assert len(rec) == 1 and [im.name for im in images] == ["good"]
    (tmp_path / "good.png").unlink()
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="no readable images"):
        load_folder(str(tmp_path))


def test_empty_or_missing_folder(tmp_path):
    with pytest.raises(ValueError, match="holds no images"):
        load_folder(str(tmp_path))
    with pytest.raises(ValueError, match="does not exist"):
        load_folder(str(tmp_path / "nope"))


def test_crop_patches_grid_and_errors(rgb):
    p = crop_patches(rgb, 16, 12, "x")
    # rows start at 0, 12, 24 (= 40 - 16); columns at 0, 12, 24, 36 (= 52 - 16)
    assert p.shape == (12, 16, 16, 3)
    assert np.array_equal(p[-1], rgb[24:40, 36:52])
    with pytest.raises(ValueError, match=r"x is 52x40, smaller than the patch size 48x48"):
        crop_patches(rgb, 48, 48, "x")
    with pytest.raises(ValueError, match="stride"):
        crop_patches(rgb, 8, 0)


def test_make_pairs_aligns_with_whole_image_bicubic(rgb):
    from irkernels.data import Image

    deg = DegradationConfig("bicubic", scale=4)
    pairs = make_pairs([Image("r", rgb)], deg, PatchConfig(16, 16))
    assert pairs.lq.shape == (len(pairs), 3, 4, 4) and pairs.hq.shape == (len(pairs), 3, 16, 16)
    lr_full = quantize(bicubic_downsample(to_float(to_tensor(rgb)), 4))  # 40x52 → 10x13
    assert torch.equal(pairs.lq[0], lr_full[:, :4, :4]) and torch.equal(pairs.hq[0], to_tensor(rgb)[:, :16, :16])
    with pytest.raises(ValueError, match="multiples of the scale"):
        make_pairs([Image("r", rgb)], deg, PatchConfig(18, 18))
    noisy = make_pairs([Image("r", rgb)], DegradationConfig("noise", noise_sigma=10), PatchConfig(16, 8))
    assert noisy.lq.shape == noisy.hq.shape


def make_paired(root, rgb, scale, lr_shape=None):
    os.makedirs(root / "HR")
    os.makedirs(root / "LR_bicubic" / f"X{scale}")
    save(root / "HR" / "0001.png", rgb)
    h, w = lr_shape or (rgb.shape[0] // scale, rgb.shape[1] // scale)
    save(root / "LR_bicubic" / f"X{scale}" / f"0001x{scale}.png", rgb[:h, :w])


def test_paired_folder(tmp_path, rgb):
    make_paired(tmp_path, rgb, 4)
    assert is_paired_folder(str(tmp_path))
    pairs = load_paired_folder(str(tmp_path), 4)
    assert [(lr.pixels.shape, hr.pixels.shape) for lr, hr in pairs] == [((10, 13, 3), (40, 52, 3))]
    ps = make_pairs_from_paired(pairs, 4, PatchConfig(16, 16))
    assert ps.lq.shape[-1] * 4 == ps.hq.shape[-1]
    with pytest.raises(ValueError, match="LR_bicubic/X2"):
        load_paired_folder(str(tmp_path), 2)


def test_paired_folder_size_mismatch(tmp_path, rgb):
    make_paired(tmp_path, rgb, 4, lr_shape=(8, 13))
    with pytest.raises(ValueError, match=r"pair '0001': HR 52x40 does not match LR 13x8 × 4"):
        load_paired_folder(str(tmp_path), 4)


def test_embedded_samples_are_offline_colour_photos():
    images = sample_images()
    names = [im.name for im in images]
    assert {"astronaut", "chelsea", "coffee", "rocket", "china", "flower"} <= set(names)
    for im in images:
        assert im.pixels.dtype == np.uint8 and im.pixels.ndim == 3 and im.pixels.shape[2] == 3
        assert min(im.pixels.shape[:2]) >= 256
    assert [im.name for im in sample_images(include_sklearn=False, names=["coffee"])] == ["coffee"]


def test_read_16bit_greyscale(tmp_path):
    arr = (np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) * 16)
    PILImage.fromarray(arr).save(tmp_path / "deep.png")
    out = read_image(str(tmp_path / "deep.png"))
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8 and out.max() > 200
