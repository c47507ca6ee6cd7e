"""TripleD (distribution-aware dataset distillation for image restoration), one module per step:
``scoring`` (ViT complexity scorer, entropy labels), ``selection`` (top-p%, per-type balance,
dynamic sampler), ``features`` (real-set feature statistics), ``latent`` (VAE latent distillation),
``finetune`` (the 8-layer CNN, eq. 4) and ``pipeline`` (end to end into a paired run folder)."""
from .finetune import FinetuneConfig, distribution_terms, finetune_images, gaussian_kl
from .latent import LatentConfig, distill_latents, load_vae, tiny_autoencoder, train_vae
from .pipeline import TASKS, TripleDConfig, run_tripled
from .scoring import ComplexityScorer, ScorerConfig, image_entropy, load_scorer, save_scorer, score_images, train_scorer
from .selection import DynamicSampler, balanced_counts, select_balanced, select_top, selection_count

__all__ = ["TASKS", "ComplexityScorer", "DynamicSampler", "FinetuneConfig", "LatentConfig", "ScorerConfig",
           "TripleDConfig", "balanced_counts", "distill_latents", "distribution_terms", "finetune_images",
           "gaussian_kl", "image_entropy", "load_scorer", "load_vae", "run_tripled", "save_scorer", "score_images",
           "select_balanced", "select_top", "selection_count", "tiny_autoencoder", "train_scorer", "train_vae"]
