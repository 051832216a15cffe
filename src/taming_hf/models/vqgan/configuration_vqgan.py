"""Configuration of the VQGAN autoencoder (Esser, Rombach, Ommer, CVPR 2021)."""

import math
import numbers
from typing import Any, List, Optional

from transformers import PretrainedConfig

QUANTIZER_TYPES = ("vector", "gumbel")


def _is_int(value: Any) -> bool:
    # numbers.Integral also admits numpy integers (configs built from arrays); bool is an int to Python
    # but never a size.
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_finite_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _check_positive_int(name: str, value: Any) -> None:
    if not _is_int(value) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")


def _check_sizes(
    *,
    embed_dim,
    num_embeddings,
    latent_channels,
    resolution,
    in_channels,
    out_channels,
    base_channels,
    channel_multiplier,
    num_res_blocks,
    norm_num_groups=32,
) -> None:
    """Raise a `ValueError` naming the first size that cannot build a model."""
    for name, value in (
        ("embed_dim", embed_dim),
        ("num_embeddings", num_embeddings),
        ("latent_channels", latent_channels),
        ("resolution", resolution),
        ("in_channels", in_channels),
        ("base_channels", base_channels),
        ("norm_num_groups", norm_num_groups),
    ):
        _check_positive_int(name, value)
    if out_channels is not None:
        _check_positive_int("out_channels", out_channels)
    if base_channels % norm_num_groups != 0:
        raise ValueError(
            f"base_channels must be a multiple of norm_num_groups={norm_num_groups} (the GroupNorm groups), "
            f"got {base_channels}."
        )
    if not isinstance(channel_multiplier, (list, tuple)) or len(channel_multiplier) == 0:
        raise ValueError(
            f"channel_multiplier must be a non-empty list of positive integers, got {channel_multiplier!r}."
        )
    if not all(_is_int(m) and m >= 1 for m in channel_multiplier):
        raise ValueError(f"channel_multiplier entries must be positive integers, got {list(channel_multiplier)!r}.")
    if not _is_int(num_res_blocks) or num_res_blocks < 0:
        raise ValueError(f"num_res_blocks must be an integer >= 0, got {num_res_blocks!r}.")
    if num_res_blocks == 0 and any(m != 1 for m in channel_multiplier):
        # The encoder's residual blocks are what change the width between levels.
        raise ValueError(
            "num_res_blocks=0 needs every channel_multiplier entry to be 1 (the encoder's residual blocks change "
            f"the width between levels), got channel_multiplier={list(channel_multiplier)!r}."
        )


class VQGANConfig(PretrainedConfig):
    r"""
    Configuration for [`VQGANModel`]. Architecture field names follow transformers'
    `ChameleonVQVAEConfig`; the comments give the name the original taming code uses.

    Args:
        embed_dim (`int`, *optional*, defaults to 256):
            Dimension of each codebook vector (taming: `embed_dim`).
        num_embeddings (`int`, *optional*, defaults to 1024):
            Number of codebook vectors (taming: `n_embed`).
        latent_channels (`int`, *optional*, defaults to 256):
            Channels of the encoder output before `quant_conv` (taming: `z_channels`).
        resolution (`int`, *optional*, defaults to 256):
            Training resolution. Attention placement is decided against it, as in the original.
        in_channels (`int`, *optional*, defaults to 3):
            Image channels fed to the encoder (1 for grayscale).
        out_channels (`int`, *optional*):
            Image channels produced by the decoder; defaults to `in_channels`.
        base_channels (`int`, *optional*, defaults to 128):
            Width of the first level (taming: `ch`).
        channel_multiplier (`List[int]`, *optional*, defaults to `[1, 1, 2, 2, 4]`):
            Width multiplier per level (taming: `ch_mult`). The image is downsampled by
            `2 ** (len(channel_multiplier) - 1)`.
        num_res_blocks (`int`, *optional*, defaults to 2):
            Residual blocks per encoder level (the decoder has one more per level). 0 works only when
            every `channel_multiplier` entry is 1, since the blocks are what change the width.
        attn_resolutions (`List[int]`, *optional*, defaults to `[16]`):
            Feature-map sizes (relative to `resolution`) that get a self-attention block.
        dropout (`float`, *optional*, defaults to 0.0):
            Dropout inside the residual blocks.
        norm_num_groups (`int`, *optional*, defaults to 32):
            Groups of every GroupNorm (the original fixes 32). Keep several channels per group: at one channel per
            group (32 groups of a 32-channel level) GroupNorm is instance norm, which subtracts each feature map's
            spatial mean, so a narrow model loses the colour of flat regions (a pink heart decodes beige).
        quantizer_type (`str`, *optional*, defaults to `"vector"`):
            `"vector"` for the straight-through vector quantizer (VQModel) or `"gumbel"` for
            the Gumbel-softmax quantizer (GumbelVQ).
        beta (`float`, *optional*, defaults to 0.25):
            Weight of the commitment term of the vector quantizer loss.
        legacy_beta (`bool`, *optional*, defaults to `False`):
            Put `beta` on the codebook term instead of the commitment term, as the original
            code does (taming issues #46, #57). Converted official checkpoints set it.
        codebook_dim (`int`, *optional*):
            Dimension of the codebook lookup. When set (and different from `embed_dim`), latents are projected to
            it, quantized there and projected back (factorised codes, as ViT-VQGAN and LlamaGen's 8-d codes).
            `None` (the default, and every converted checkpoint) looks up `embed_dim`-sized codes directly.
        normalize_codes (`bool`, *optional*, defaults to `False`):
            l2-normalise latents and codes before the lookup (cosine-similarity codes, as ViT-VQGAN / LlamaGen).
        entropy_loss_weight (`float`, *optional*, defaults to 0.0):
            Weight of an entropy penalty added to the quantizer loss: the entropy of each vector's soft code
            assignment minus the entropy of the batch's mean assignment (confident codes, used evenly).
        entropy_temperature (`float`, *optional*, defaults to 0.01):
            Temperature of the soft assignment `softmax(-distance / temperature)` of the entropy penalty.
        gumbel_temperature (`float`, *optional*, defaults to 1.0):
            Gumbel-softmax temperature used while training.
        gumbel_kl_weight (`float`, *optional*, defaults to 5e-4):
            Weight of the KL term towards a uniform prior over codes.
        gumbel_straight_through (`bool`, *optional*, defaults to `True`):
            Use hard one-hot samples with straight-through gradients while training.
        initializer_range (`float`, *optional*, defaults to 0.02):
            Kept for compatibility with transformers utilities; convolutions use PyTorch's
            default initialisation, as the original does.

    Sizes, probabilities and loss weights are checked here, so a value that cannot build or train a
    model raises a `ValueError` naming it instead of failing later inside PyTorch.
    """

    model_type = "vqgan"

    def __init__(
        self,
        embed_dim: int = 256,
        num_embeddings: int = 1024,
        latent_channels: int = 256,
        resolution: int = 256,
        in_channels: int = 3,
        out_channels: Optional[int] = None,
        base_channels: int = 128,
        channel_multiplier: List[int] = (1, 1, 2, 2, 4),
        num_res_blocks: int = 2,
        attn_resolutions: List[int] = (16,),
        dropout: float = 0.0,
        norm_num_groups: int = 32,
        quantizer_type: str = "vector",
        beta: float = 0.25,
        legacy_beta: bool = False,
        codebook_dim: Optional[int] = None,
        normalize_codes: bool = False,
        entropy_loss_weight: float = 0.0,
        entropy_temperature: float = 0.01,
        gumbel_temperature: float = 1.0,
        gumbel_kl_weight: float = 5e-4,
        gumbel_straight_through: bool = True,
        initializer_range: float = 0.02,
        **kwargs,
    ):
        if quantizer_type not in QUANTIZER_TYPES:
            raise ValueError(f"quantizer_type must be one of {QUANTIZER_TYPES}, got {quantizer_type!r}.")
        _check_sizes(
            embed_dim=embed_dim,
            num_embeddings=num_embeddings,
            latent_channels=latent_channels,
            resolution=resolution,
            in_channels=in_channels,
            out_channels=out_channels,
            base_channels=base_channels,
            channel_multiplier=channel_multiplier,
            num_res_blocks=num_res_blocks,
            norm_num_groups=norm_num_groups,
        )
        if not _is_finite_real(dropout) or not 0 <= dropout < 1:
            raise ValueError(f"dropout must be a probability in [0, 1), got {dropout!r}.")
        for name, value in (("beta", beta), ("gumbel_kl_weight", gumbel_kl_weight)):
            if not _is_finite_real(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}.")
        if codebook_dim is not None:
            _check_positive_int("codebook_dim", codebook_dim)
        if not _is_finite_real(entropy_loss_weight) or entropy_loss_weight < 0:
            raise ValueError(f"entropy_loss_weight must be a finite number >= 0, got {entropy_loss_weight!r}.")
        if not _is_finite_real(entropy_temperature) or entropy_temperature <= 0:
            raise ValueError(f"entropy_temperature must be a finite number > 0, got {entropy_temperature!r}.")
        uses_vector_options = codebook_dim is not None or normalize_codes or entropy_loss_weight > 0
        if quantizer_type == "gumbel" and uses_vector_options:
            raise ValueError(
                "codebook_dim, normalize_codes and entropy_loss_weight apply to quantizer_type='vector' only, "
                f"got quantizer_type='gumbel' with codebook_dim={codebook_dim!r}, normalize_codes={normalize_codes!r}, "
                f"entropy_loss_weight={entropy_loss_weight!r}."
            )
        if not _is_finite_real(gumbel_temperature) or gumbel_temperature <= 0:
            raise ValueError(f"gumbel_temperature must be a finite number > 0, got {gumbel_temperature!r}.")
        # int() / float(): numpy scalars pass the checks but would not serialise to JSON.
        self.embed_dim = int(embed_dim)
        self.num_embeddings = int(num_embeddings)
        self.latent_channels = int(latent_channels)
        self.resolution = int(resolution)
        self.in_channels = int(in_channels)
        self.out_channels = self.in_channels if out_channels is None else int(out_channels)
        self.base_channels = int(base_channels)
        self.channel_multiplier = [int(m) for m in channel_multiplier]
        self.num_res_blocks = int(num_res_blocks)
        self.attn_resolutions = list(attn_resolutions)
        self.dropout = float(dropout)
        self.norm_num_groups = int(norm_num_groups)
        self.quantizer_type = quantizer_type
        self.beta = float(beta)
        self.legacy_beta = legacy_beta
        self.codebook_dim = None if codebook_dim is None else int(codebook_dim)
        self.normalize_codes = bool(normalize_codes)
        self.entropy_loss_weight = float(entropy_loss_weight)
        self.entropy_temperature = float(entropy_temperature)
        self.gumbel_temperature = float(gumbel_temperature)
        self.gumbel_kl_weight = float(gumbel_kl_weight)
        self.gumbel_straight_through = gumbel_straight_through
        self.initializer_range = initializer_range
        super().__init__(**kwargs)

    @property
    def downsample_factor(self) -> int:
        """How many pixels one latent cell covers along each side."""
        return 2 ** (len(self.channel_multiplier) - 1)
