"""Restoration networks (EDSR, SwinIR, TripleD's CNN), each with ``features(x)``, and checkpoints.

``MODEL_NAMES`` (the names ``build_model`` takes) is known without importing torch, for the CLI's
choices; everything else is imported on first use."""
from .._lazy import lazy_exports

MODEL_NAMES = ("edsr-baseline", "edsr", "edsr-tiny", "edsr-small", "swinir-light", "swinir-classical", "swinir-restoration",
               "tripled-cnn")  # the keys of registry.MODELS, in its order (tested)

_EXPORTS = {
    **dict.fromkeys(("checkpoint_metadata", "load_checkpoint", "read_metadata", "read_state_dict", "save_checkpoint"),
                    ".checkpoint"),
    **dict.fromkeys(("EDSR", "edsr", "edsr_baseline"), ".edsr"),
    **dict.fromkeys(("SwinIR", "swinir_classical", "swinir_lightweight"), ".swinir"),
    "TripleDCNN": ".tripled_cnn",
    **dict.fromkeys(("MODELS", "build_model", "model_scale"), ".registry"),
}
__all__ = sorted(_EXPORTS) + ["MODEL_NAMES"]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
