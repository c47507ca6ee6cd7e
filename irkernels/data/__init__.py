"""Image data: folders, paired folders, patches, degradations and the embedded sample set."""
from .degrade import (DegradationConfig, add_gaussian_noise, bicubic_downsample, degrade, gaussian_blur,
                      gaussian_kernel, imresize, jpeg, motion_blur, motion_kernel, rain_streaks)
from .images import (Image, PairSet, PatchConfig, crop_patches, is_paired_folder, load_folder, load_paired_folder,
                     make_pairs, make_pairs_from_paired, modcrop, quantize, read_image, to_float, to_tensor)
from .samples import sample_images

__all__ = [
    "DegradationConfig", "add_gaussian_noise", "bicubic_downsample", "degrade", "gaussian_blur", "gaussian_kernel",
    "imresize", "jpeg", "motion_blur", "motion_kernel", "rain_streaks", "Image", "PairSet", "PatchConfig",
    "crop_patches", "is_paired_folder", "load_folder", "load_paired_folder", "make_pairs", "make_pairs_from_paired",
    "modcrop", "quantize", "read_image", "to_float", "to_tensor", "sample_images",
]
