"""Everything that exists only for training: VQGAN losses, the discriminator, data, checkpoints, and the
latent prior's data (index grids, token sequences, corruption) and Trainer."""

from .checkpointing import latest_checkpoint, list_checkpoints, load_checkpoint, prune_checkpoints, save_checkpoint
from .codebook import CodebookUsageTracker, copy_rows_to_ema, reseed_dead_codes
from .data import ImageTransform, collate_fn, decode_image, load_fashion_mnist, load_image_dataset, read_idx
from .discriminator import PatchGANDiscriminator, PatchGANDiscriminatorConfig, PatchGANDiscriminatorOutput
from .losses import (
    GANPhase,
    LeCamRegularizer,
    VQGANLoss,
    adaptive_weight,
    code_colour_loss,
    discriminator_factor,
    generator_adversarial_loss,
    hinge_d_loss,
    vanilla_d_loss,
)
from .prior_data import PriorDataCollator, corrupt_inputs, encode_dataset, make_token_order
from .prior_trainer import PriorTrainer, SampleGridCallback, build_prior_config

__all__ = [
    "CodebookUsageTracker",
    "GANPhase",
    "LeCamRegularizer",
    "ImageTransform",
    "PatchGANDiscriminator",
    "PatchGANDiscriminatorConfig",
    "PatchGANDiscriminatorOutput",
    "PriorDataCollator",
    "PriorTrainer",
    "SampleGridCallback",
    "VQGANLoss",
    "adaptive_weight",
    "build_prior_config",
    "code_colour_loss",
    "collate_fn",
    "copy_rows_to_ema",
    "corrupt_inputs",
    "decode_image",
    "discriminator_factor",
    "encode_dataset",
    "generator_adversarial_loss",
    "hinge_d_loss",
    "latest_checkpoint",
    "list_checkpoints",
    "load_checkpoint",
    "load_fashion_mnist",
    "load_image_dataset",
    "make_token_order",
    "prune_checkpoints",
    "read_idx",
    "reseed_dead_codes",
    "save_checkpoint",
    "vanilla_d_loss",
]
