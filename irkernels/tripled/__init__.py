"""TripleD (distribution-aware dataset distillation for image restoration), one module per step:
``scoring`` (ViT complexity scorer, entropy labels), ``selection`` (top-p%, per-type balance,
dynamic sampler), ``features`` (real-set feature statistics), ``latent`` (VAE latent distillation),
``finetune`` (the 8-layer CNN, eq. 4); ``config`` holds the settings, ``pipeline`` runs them end to
end into a paired run folder, ``report`` writes its report.html, ``training`` trains a network
on it. Names are imported on first use."""
from .._lazy import lazy_exports

_EXPORTS = {
    **dict.fromkeys(("TASKS", "FinetuneConfig", "LatentConfig", "ScorerConfig", "TrainSpec", "TripleDConfig"),
                    ".config"),
    "run": ".pipeline",
    "TripleDResult": ".result",
    **dict.fromkeys(("train_dynamic", "train_on_output"), ".training"),
    **dict.fromkeys(("distribution_terms", "finetune_images", "gaussian_kl"), ".finetune"),
    **dict.fromkeys(("distill_latents", "load_vae", "tiny_autoencoder", "train_vae"), ".latent"),
    **dict.fromkeys(("ComplexityScorer", "image_entropy", "load_scorer", "save_scorer", "score_images",
                     "train_scorer"), ".scoring"),
    **dict.fromkeys(("DynamicSampler", "balanced_counts", "select_balanced", "select_top", "selection_count"),
                    ".selection"),
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
