"""Image data: folders, paired folders, patches, degradations and the embedded sample set.
Names are imported on first use; ``config`` (the settings) imports without torch."""
from .._lazy import lazy_exports

_EXPORTS = {
    **dict.fromkeys(("DegradationConfig", "KINDS", "PatchConfig"), ".config"),
    **dict.fromkeys(("add_gaussian_noise", "bicubic_downsample", "degrade", "gaussian_blur", "gaussian_kernel",
                     "imresize", "jpeg", "motion_blur", "motion_kernel", "rain_streaks"), ".degrade"),
    **dict.fromkeys(("Image", "PairSet", "crop_patches", "hold_out_last", "is_paired_folder", "list_images", "load_folder",
                     "load_paired_folder", "make_pairs", "make_pairs_from_paired", "modcrop", "quantize",
                     "read_image", "read_size", "to_float", "to_tensor"), ".images"),
    "sample_images": ".samples",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
