"""Configuration of the VQGAN autoencoder (Esser, Rombach, Ommer, CVPR 2021)."""

from typing import List, Optional

from transformers import PretrainedConfig

QUANTIZER_TYPES = ("vector", "gumbel")


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
            Residual blocks per encoder level (the decoder has one more per level).
        attn_resolutions (`List[int]`, *optional*, defaults to `[16]`):
            Feature-map sizes (relative to `resolution`) that get a self-attention block.
        dropout (`float`, *optional*, defaults to 0.0):
            Dropout inside the residual blocks.
        quantizer_type (`str`, *optional*, defaults to `"vector"`):
            `"vector"` for the straight-through vector quantizer (VQModel) or `"gumbel"` for
            the Gumbel-softmax quantizer (GumbelVQ).
        beta (`float`, *optional*, defaults to 0.25):
            Weight of the commitment term of the vector quantizer loss.
        legacy_beta (`bool`, *optional*, defaults to `False`):
            Put `beta` on the codebook term instead of the commitment term, as the original
            code does (taming issues #46, #57). Converted official checkpoints set it.
        gumbel_temperature (`float`, *optional*, defaults to 1.0):
            Gumbel-softmax temperature used while training.
        gumbel_kl_weight (`float`, *optional*, defaults to 5e-4):
            Weight of the KL term towards a uniform prior over codes.
        gumbel_straight_through (`bool`, *optional*, defaults to `True`):
            Use hard one-hot samples with straight-through gradients while training.
        initializer_range (`float`, *optional*, defaults to 0.02):
            Kept for compatibility with transformers utilities; convolutions use PyTorch's
            default initialisation, as the original does.
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
        quantizer_type: str = "vector",
        beta: float = 0.25,
        legacy_beta: bool = False,
        gumbel_temperature: float = 1.0,
        gumbel_kl_weight: float = 5e-4,
        gumbel_straight_through: bool = True,
        initializer_range: float = 0.02,
        **kwargs,
    ):
        if quantizer_type not in QUANTIZER_TYPES:
            raise ValueError(f"quantizer_type must be one of {QUANTIZER_TYPES}, got {quantizer_type!r}.")
        if len(channel_multiplier) == 0:
            raise ValueError("channel_multiplier must have at least one level, got an empty list.")
        if base_channels % 32 != 0:
            raise ValueError(
                f"base_channels must be a multiple of 32 (GroupNorm uses 32 groups), got {base_channels}."
            )
        self.embed_dim = embed_dim
        self.num_embeddings = num_embeddings
        self.latent_channels = latent_channels
        self.resolution = resolution
        self.in_channels = in_channels
        self.out_channels = in_channels if out_channels is None else out_channels
        self.base_channels = base_channels
        self.channel_multiplier = list(channel_multiplier)
        self.num_res_blocks = num_res_blocks
        self.attn_resolutions = list(attn_resolutions)
        self.dropout = dropout
        self.quantizer_type = quantizer_type
        self.beta = beta
        self.legacy_beta = legacy_beta
        self.gumbel_temperature = gumbel_temperature
        self.gumbel_kl_weight = gumbel_kl_weight
        self.gumbel_straight_through = gumbel_straight_through
        self.initializer_range = initializer_range
        super().__init__(**kwargs)

    @property
    def downsample_factor(self) -> int:
        """How many pixels one latent cell covers along each side."""
        return 2 ** (len(self.channel_multiplier) - 1)
