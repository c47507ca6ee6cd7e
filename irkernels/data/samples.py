"""The embedded default dataset: colour photos that ship inside scikit-image (and scikit-learn) wheels.

Nothing is downloaded: only images stored in the installed packages are used (scikit-image's
``data`` directory; scikit-learn's ``load_sample_images``), so the pipeline runs on a fresh machine.
"""
from __future__ import annotations

import os

import numpy as np

from .images import Image, read_image

# Colour photos stored in scikit-image's wheel (skimage/data/*), by the name the loader gives them.
SKIMAGE_PHOTOS = {
    "astronaut": "astronaut.png",
    "chelsea": "chelsea.png",
    "coffee": "coffee.png",
    "rocket": "rocket.jpg",
    "hubble_deep_field": "hubble_deep_field.jpg",
    "immunohistochemistry": "ihc.png",
    "motorcycle_left": "motorcycle_left.png",
    "motorcycle_right": "motorcycle_right.png",
}


def sample_images(include_sklearn: bool = True, names: list[str] | None = None, limit: int | None = None) -> list[Image]:
    """The embedded photos as ``uint8 (H, W, 3)`` images (8 from scikit-image, 2 from scikit-learn).

    ``names`` restricts to a subset (scikit-learn's are ``china`` and ``flower``); ``limit`` keeps
    the first ``limit`` (in the order of ``SKIMAGE_PHOTOS``, then scikit-learn's).
    """
    import skimage

    if limit is not None and limit < 1:  # 0 would end as "no image matched", a negative one slice from the end
        raise ValueError(f"limit must be >= 1, got {limit}")
    data_dir = os.path.join(os.path.dirname(skimage.__file__), "data")
    images = []
    for name, filename in SKIMAGE_PHOTOS.items():
        path = os.path.join(data_dir, filename)
        if (names is None or name in names) and os.path.exists(path) and (limit is None or len(images) < limit):
            images.append(Image(name, read_image(path)))
    if include_sklearn and (limit is None or len(images) < limit):
        from sklearn.datasets import load_sample_images

        bunch = load_sample_images()
        for path, pixels in zip(bunch.filenames, bunch.images):
            name = os.path.splitext(os.path.basename(path))[0]
            if names is None or name in names:
                images.append(Image(name, np.ascontiguousarray(pixels, dtype=np.uint8)))
    images = images[:limit]
    if not images:
        raise ValueError(f"no embedded sample image matched names={names}")
    return images
