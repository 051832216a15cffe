"""Everything that exists only for training: losses, the discriminator, data, checkpoints."""

from .checkpointing import latest_checkpoint, list_checkpoints, load_checkpoint, prune_checkpoints, save_checkpoint
from .codebook import CodebookUsageTracker, codebook_perplexity, codebook_usage, reseed_dead_codes
from .data import ImageTransform, collate_fn, decode_image, load_fashion_mnist, load_image_dataset, read_idx
from .discriminator import PatchGANDiscriminator, PatchGANDiscriminatorConfig, PatchGANDiscriminatorOutput
from .losses import VQGANLoss, adaptive_weight, discriminator_factor, hinge_d_loss, vanilla_d_loss

__all__ = [
    "CodebookUsageTracker",
    "ImageTransform",
    "PatchGANDiscriminator",
    "PatchGANDiscriminatorConfig",
    "PatchGANDiscriminatorOutput",
    "VQGANLoss",
    "adaptive_weight",
    "codebook_perplexity",
    "codebook_usage",
    "collate_fn",
    "decode_image",
    "discriminator_factor",
    "hinge_d_loss",
    "latest_checkpoint",
    "list_checkpoints",
    "load_checkpoint",
    "load_fashion_mnist",
    "load_image_dataset",
    "prune_checkpoints",
    "read_idx",
    "reseed_dead_codes",
    "save_checkpoint",
    "vanilla_d_loss",
]
