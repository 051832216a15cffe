"""The VQGAN autoencoder of Taming Transformers as a transformers `PreTrainedModel`.

Module names mirror the original checkpoints (`encoder.down.0.block.1.norm1`, ...), the
same layout transformers' Chameleon VQ model keeps, so official weights load by name.
"""

import math
from dataclasses import dataclass
from typing import Iterator, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.utils import ModelOutput

from ...utils.loading import check_config_file, check_local_path, name_unreadable_safetensors
from .configuration_vqgan import VQGANConfig
from .quantizers import GumbelQuantizer, VectorQuantizer

# `loss` was the quantizer loss until 0.2; transformers (and users) read an output's `loss` as the loss to
# train with, which this one never was. An AttributeError keeps `getattr(output, "loss", None)` working.
_LOSS_RENAMED = (
    "{name}.loss was renamed to {name}.embedding_loss: it is the quantizer loss only, not a training loss "
    "(see docs/differences.md)."
)


@dataclass
class VQGANEncoderOutput(ModelOutput):
    """
    Output of [`VQGANModel.encode`].

    Args:
        latents (`torch.FloatTensor` of shape `(batch_size, embed_dim, height, width)`):
            Continuous latents after `quant_conv`, before quantization.
        quantized (`torch.FloatTensor` of shape `(batch_size, embed_dim, height, width)`):
            Codebook vectors, with straight-through gradients to `latents`.
        indices (`torch.LongTensor` of shape `(batch_size, height, width)`):
            Codebook indices in raster order.
        embedding_loss (`torch.FloatTensor` of shape `()`):
            Quantizer loss (codebook + commitment terms, or the Gumbel KL term): one term of the training
            objective, not a training loss (it never reaches the decoder).
    """

    latents: Optional[torch.FloatTensor] = None
    quantized: Optional[torch.FloatTensor] = None
    indices: Optional[torch.LongTensor] = None
    embedding_loss: Optional[torch.FloatTensor] = None

    @property
    def loss(self):
        raise AttributeError(_LOSS_RENAMED.format(name=type(self).__name__))


@dataclass
class VQGANModelOutput(ModelOutput):
    """
    Output of [`VQGANModel.forward`].

    Args:
        reconstruction (`torch.FloatTensor` of shape `(batch_size, out_channels, height, width)`):
            Decoded image, nominally in [-1, 1] but unbounded (the decoder has no tanh).
        indices (`torch.LongTensor` of shape `(batch_size, latent_height, latent_width)`):
            Codebook indices of the input.
        embedding_loss (`torch.FloatTensor` of shape `()`):
            Quantizer loss (as Janus' VQ model names it). The model has no `loss`: its training loss needs the
            image, LPIPS and the discriminator (`taming_hf.training.VQGANLoss`).
        latents (`torch.FloatTensor` of shape `(batch_size, embed_dim, latent_height, latent_width)`):
            Continuous latents before quantization.
        quantized (`torch.FloatTensor` of shape `(batch_size, embed_dim, latent_height, latent_width)`):
            Quantized latents.
    """

    reconstruction: Optional[torch.FloatTensor] = None
    indices: Optional[torch.LongTensor] = None
    embedding_loss: Optional[torch.FloatTensor] = None
    latents: Optional[torch.FloatTensor] = None
    quantized: Optional[torch.FloatTensor] = None

    @property
    def loss(self):
        raise AttributeError(_LOSS_RENAMED.format(name=type(self).__name__))


def _check_finite(tensor: torch.Tensor, name: str, expected: str) -> None:
    """Raise a `ValueError` counting the NaN / inf entries of `tensor`.

    Reading the result back is a host sync, so callers run this only outside training steps.
    """
    if not torch.isfinite(tensor).all():
        count = int((~torch.isfinite(tensor)).sum())
        raise ValueError(f"{name} contains {count} non-finite values (NaN or inf); expected {expected}.")


def group_norm(channels: int, num_groups: int = 32) -> nn.GroupNorm:
    return nn.GroupNorm(num_groups=num_groups, num_channels=channels, eps=1e-6, affine=True)


def norm_groups(config: Optional[VQGANConfig]) -> int:
    return 32 if config is None else config.norm_num_groups


def norm_silu(norm: nn.GroupNorm, hidden_states: torch.Tensor) -> torch.Tensor:
    """silu(norm(x)). The norm's output is a fresh tensor only silu reads, so without autograd silu overwrites it
    instead of allocating another full-size activation; under autograd in-place silu would first copy it
    (its backward needs the input), so it runs out of place there."""
    normed = norm(hidden_states)
    return F.silu(normed, inplace=not normed.requires_grad)


class VQGANResnetBlock(GradientCheckpointingLayer):
    """norm -> swish -> conv3x3, twice, with a 1x1 `nin_shortcut` when the width changes."""

    def __init__(self, in_channels: int, out_channels: int, dropout: float, num_groups: int = 32):
        super().__init__()
        self.norm1 = group_norm(in_channels, num_groups)
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)
        self.norm2 = group_norm(out_channels, num_groups)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1)
        self.nin_shortcut = (
            nn.Conv2d(in_channels, out_channels, kernel_size=1) if in_channels != out_channels else None
        )

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        # One step per line: each intermediate is freed as soon as the next exists (in a nested call the
        # argument lives until the outer call returns), and the shortcut is computed last, when it is needed.
        residual = hidden_states
        hidden_states = norm_silu(self.norm1, hidden_states)
        hidden_states = self.conv1(hidden_states)
        hidden_states = norm_silu(self.norm2, hidden_states)
        hidden_states = self.conv2(self.dropout(hidden_states))
        if self.nin_shortcut is not None:
            residual = self.nin_shortcut(residual)
        # In place into conv2's fresh output (no backward reads it): one full-size allocation less per block.
        return hidden_states.add_(residual)


class VQGANAttnBlock(GradientCheckpointingLayer):
    """Single-head self-attention over all spatial positions, with a residual connection."""

    def __init__(self, channels: int, config: Optional[VQGANConfig] = None):
        super().__init__()
        self.config = config  # read at call time: `config._attn_implementation` is set after construction
        self.norm = group_norm(channels, norm_groups(config))
        self.q = nn.Conv2d(channels, channels, kernel_size=1)
        self.k = nn.Conv2d(channels, channels, kernel_size=1)
        self.v = nn.Conv2d(channels, channels, kernel_size=1)
        self.proj_out = nn.Conv2d(channels, channels, kernel_size=1)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = hidden_states.shape
        normed = self.norm(hidden_states)

        def as_sequence(x: torch.Tensor) -> torch.Tensor:  # (B, C, h, w) -> (B, 1, h*w, C)
            return x.reshape(batch, 1, channels, height * width).transpose(2, 3)

        query, key, value = as_sequence(self.q(normed)), as_sequence(self.k(normed)), as_sequence(self.v(normed))
        if self.config is not None and self.config._attn_implementation == "eager":
            weights = torch.softmax(query @ key.transpose(-1, -2) * channels**-0.5, dim=-1)
            attended = weights @ value
        else:
            attended = F.scaled_dot_product_attention(query, key, value)  # scale C**-0.5, as the original
        attended = attended.transpose(2, 3).reshape(batch, channels, height, width)
        return hidden_states + self.proj_out(attended)


class VQGANDownsample(nn.Module):
    """Stride-2 conv3x3 after zero-padding one pixel on the right and bottom only."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, kernel_size=3, stride=2, padding=0)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(hidden_states, (0, 1, 0, 1)))


class VQGANUpsample(nn.Module):
    """Nearest-neighbour x2 upsampling followed by a conv3x3."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, kernel_size=3, padding=1)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(hidden_states, scale_factor=2.0, mode="nearest"))


class VQGANLevel(nn.Module):
    """One resolution level: residual blocks, each optionally followed by attention, then a resample."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        num_blocks: int,
        use_attention: bool,
        dropout: float,
        resample: Optional[str],
        config: Optional[VQGANConfig] = None,
    ):
        super().__init__()
        self.block = nn.ModuleList(
            VQGANResnetBlock(in_channels if i == 0 else out_channels, out_channels, dropout, norm_groups(config))
            for i in range(num_blocks)
        )
        self.attn = nn.ModuleList(VQGANAttnBlock(out_channels, config) for _ in range(num_blocks) if use_attention)
        if resample == "down":
            self.downsample = VQGANDownsample(out_channels)
        elif resample == "up":
            self.upsample = VQGANUpsample(out_channels)
        self.resample = resample

    def layers(self) -> Iterator[nn.Module]:
        """The level's modules in the order they run: each block (and its attention), then the resample."""
        for i, block in enumerate(self.block):
            yield block
            if len(self.attn) > 0:
                yield self.attn[i]
        if self.resample == "down":
            yield self.downsample
        elif self.resample == "up":
            yield self.upsample

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        for layer in self.layers():
            hidden_states = layer(hidden_states)
        return hidden_states


def run_levels(levels, hidden_states: torch.Tensor) -> torch.Tensor:
    """Run `levels` in turn, layer by layer. Calling each level instead would keep its input alive until the level
    returns (the caller's reference), a full-resolution activation too many at the top level (32 MiB at 256 px
    and 128 channels); looping over the layers here leaves this loop the only reference to the activations."""
    for level in levels:
        for layer in level.layers():
            hidden_states = layer(hidden_states)
    return hidden_states


class VQGANMidBlock(nn.Module):
    """Residual block, attention, residual block at the lowest resolution."""

    def __init__(self, channels: int, dropout: float, config: Optional[VQGANConfig] = None):
        super().__init__()
        self.block_1 = VQGANResnetBlock(channels, channels, dropout, norm_groups(config))
        self.attn_1 = VQGANAttnBlock(channels, config)
        self.block_2 = VQGANResnetBlock(channels, channels, dropout, norm_groups(config))

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.block_2(self.attn_1(self.block_1(hidden_states)))


class VQGANEncoder(nn.Module):
    """(B, in_channels, H, W) images -> (B, latent_channels, H / f, W / f) latents."""

    def __init__(self, config: VQGANConfig):
        super().__init__()
        multipliers = config.channel_multiplier
        widths = [config.base_channels * m for m in multipliers]
        in_widths = [config.base_channels] + widths[:-1]
        self.conv_in = nn.Conv2d(config.in_channels, config.base_channels, kernel_size=3, padding=1)
        self.down = nn.ModuleList()
        for level, (width_in, width_out) in enumerate(zip(in_widths, widths)):
            self.down.append(
                VQGANLevel(
                    width_in,
                    width_out,
                    num_blocks=config.num_res_blocks,
                    use_attention=config.resolution // 2**level in config.attn_resolutions,
                    dropout=config.dropout,
                    resample="down" if level < len(multipliers) - 1 else None,
                    config=config,
                )
            )
        self.mid = VQGANMidBlock(widths[-1], config.dropout, config)
        self.norm_out = group_norm(widths[-1], norm_groups(config))
        self.conv_out = nn.Conv2d(widths[-1], config.latent_channels, kernel_size=3, padding=1)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        hidden_states = run_levels(self.down, self.conv_in(pixel_values))
        hidden_states = self.mid(hidden_states)
        hidden_states = norm_silu(self.norm_out, hidden_states)
        return self.conv_out(hidden_states)


class VQGANDecoder(nn.Module):
    """(B, latent_channels, h, w) latents -> (B, out_channels, h * f, w * f) images.

    `up[i]` is the level at resolution `resolution / 2**i`, as in the original checkpoints;
    levels run from the highest index (lowest resolution) down to 0.
    """

    def __init__(self, config: VQGANConfig):
        super().__init__()
        multipliers = config.channel_multiplier
        widths = [config.base_channels * m for m in multipliers]
        self.conv_in = nn.Conv2d(config.latent_channels, widths[-1], kernel_size=3, padding=1)
        self.mid = VQGANMidBlock(widths[-1], config.dropout, config)
        levels = []
        for level, width_out in enumerate(widths):
            width_in = widths[level + 1] if level + 1 < len(widths) else widths[-1]
            levels.append(
                VQGANLevel(
                    width_in,
                    width_out,
                    num_blocks=config.num_res_blocks + 1,
                    use_attention=config.resolution // 2**level in config.attn_resolutions,
                    dropout=config.dropout,
                    resample="up" if level > 0 else None,
                    config=config,
                )
            )
        self.up = nn.ModuleList(levels)
        self.norm_out = group_norm(widths[0], norm_groups(config))
        self.conv_out = nn.Conv2d(widths[0], config.out_channels, kernel_size=3, padding=1)

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        hidden_states = run_levels(reversed(self.up), self.mid(self.conv_in(latents)))
        hidden_states = norm_silu(self.norm_out, hidden_states)  # frees the last level's output before conv_out
        return self.conv_out(hidden_states)


class VQGANPreTrainedModel(PreTrainedModel):
    config_class = VQGANConfig
    base_model_prefix = "vqgan"
    main_input_name = "pixel_values"
    supports_gradient_checkpointing = True
    _no_split_modules = ["VQGANResnetBlock", "VQGANAttnBlock"]
    # Attention runs through scaled_dot_product_attention unless the config asks for "eager".
    _supports_sdpa = True

    @torch.no_grad()
    def _init_weights(self, module: nn.Module):
        # PyTorch's default initialisation, as the original; codebooks uniform in +-1/K. The
        # `init` functions skip tensors that were loaded from a checkpoint.
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            fan_in = module.weight[0].numel()  # in_channels / groups * kernel area, or in_features
            init.kaiming_uniform_(module.weight, a=math.sqrt(5))
            init.uniform_(module.bias, -1.0 / math.sqrt(fan_in), 1.0 / math.sqrt(fan_in))
        elif isinstance(module, nn.GroupNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            init.uniform_(module.weight, -1.0 / module.num_embeddings, 1.0 / module.num_embeddings)


class VQGANModel(VQGANPreTrainedModel):
    """
    VQGAN: a convolutional encoder, a quantizer onto a learned codebook, and a decoder.

    Encodes images of shape (B, in_channels, H, W) into codebook indices of shape
    (B, H / f, W / f) with f = `config.downsample_factor`, and decodes indices back to images.

    Inputs of `encode`, `forward`, `decode` and `decode_indices` are checked and a bad one raises a
    `ValueError` that names it. Types, shapes, an empty batch and sizes are always checked (they are
    host metadata). Whether tensors hold NaN / inf is checked only in eval mode (`not self.training`):
    reading that answer back is a host sync, which would stall every training step; during training
    the training scripts report non-finite losses instead.
    """

    def __init__(self, config: VQGANConfig):
        super().__init__(config)
        self.encoder = VQGANEncoder(config)
        self.decoder = VQGANDecoder(config)
        self.quant_conv = nn.Conv2d(config.latent_channels, config.embed_dim, kernel_size=1)
        self.post_quant_conv = nn.Conv2d(config.embed_dim, config.latent_channels, kernel_size=1)
        if config.quantizer_type == "gumbel":
            self.quantize = GumbelQuantizer(
                config.embed_dim,
                config.num_embeddings,
                config.embed_dim,
                temperature=config.gumbel_temperature,
                kl_weight=config.gumbel_kl_weight,
                straight_through=config.gumbel_straight_through,
            )
        else:
            self.quantize = VectorQuantizer(
                config.num_embeddings,
                config.embed_dim,
                beta=config.beta,
                legacy_beta=config.legacy_beta,
                # getattr: configs saved before these options existed load as the plain quantizer
                codebook_dim=getattr(config, "codebook_dim", None),
                normalize_codes=getattr(config, "normalize_codes", False),
                entropy_weight=getattr(config, "entropy_loss_weight", 0.0),
                entropy_temperature=getattr(config, "entropy_temperature", 0.01),
            )
        self.post_init()

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, **kwargs):
        """
        [`~transformers.PreTrainedModel.from_pretrained`], with clear errors for a local folder that does not
        exist, one without `config.json`, and a corrupt or truncated `model.safetensors` (all `OSError`s
        naming the path).
        """
        subfolder = kwargs.get("subfolder", "")
        check_local_path(pretrained_model_name_or_path)
        if kwargs.get("config") is None:
            check_config_file(pretrained_model_name_or_path, subfolder, cls.__name__)
        with name_unreadable_safetensors(
            pretrained_model_name_or_path, subfolder, kwargs.get("cache_dir"), kwargs.get("revision")
        ):
            return super().from_pretrained(pretrained_model_name_or_path, *model_args, **kwargs)

    def get_codebook(self) -> torch.Tensor:
        """The codebook, shape (num_embeddings, codebook_dim) (`codebook_dim` is `embed_dim` unless factorised)."""
        return self.quantize.codebook

    def get_code_vectors(self) -> torch.Tensor:
        """(num_embeddings, codebook_dim): what each code stands for before the quantizer's output projection (the
        codebook, l2-normalised when `normalize_codes`). Optimising in this space, as VQGAN+CLIP does, then
        decoding with [`~VQGANModel.decode_code_vectors`] works for plain, factorised and normalised codebooks."""
        return self.quantize.lookup_codebook()

    def decode_code_vectors(self, vectors: torch.FloatTensor) -> torch.FloatTensor:
        """(B, codebook_dim, h, w) vectors in the space of `get_code_vectors()` -> (B, out_channels, h * f, w * f)
        images (the quantizer's output projection, then the decoder)."""
        return self.decode(self.quantize.unproject(vectors))

    @property
    def codebook_parameter_name(self) -> str:
        """The codebook's name in `named_parameters()` / the state dict (e.g. `quantize.embedding.weight`)."""
        codebook = self.get_codebook()
        return next(name for name, parameter in self.named_parameters() if parameter is codebook)

    def get_last_layer(self) -> torch.Tensor:
        """Weight of the decoder's last convolution (the adaptive GAN weight is computed on it)."""
        return self.decoder.conv_out.weight

    def latent_shape(self, height: int, width: int) -> Tuple[int, int]:
        """Index-grid size for an image of `height` x `width` pixels."""
        factor = self.config.downsample_factor
        return height // factor, width // factor

    def encode(self, pixel_values: torch.FloatTensor, return_dict: bool = True):
        """
        Args:
            pixel_values (`torch.FloatTensor` of shape `(batch_size, in_channels, height, width)`):
                Images scaled to [-1, 1]; height and width divisible by `config.downsample_factor`.

        Returns:
            [`VQGANEncoderOutput`] (or a tuple `(latents, quantized, indices, embedding_loss)`).

        Raises:
            `ValueError`: for a bad `pixel_values` (see the class docstring for which checks run when).
        """
        self._check_pixel_values(pixel_values)
        latents = self.quant_conv(self.encoder(pixel_values))
        quantized, loss, indices = self.quantize(latents)
        if not return_dict:
            return latents, quantized, indices, loss
        return VQGANEncoderOutput(latents=latents, quantized=quantized, indices=indices, embedding_loss=loss)

    def decode(self, quantized: torch.FloatTensor) -> torch.FloatTensor:
        """(B, embed_dim, h, w) quantized latents -> (B, out_channels, h * f, w * f) images.

        Raises a `ValueError` for bad `quantized` latents (see the class docstring for which checks run when).
        """
        self._check_quantized(quantized)
        return self._decode(quantized)

    def _decode(self, quantized: torch.FloatTensor) -> torch.FloatTensor:
        # Unchecked: for latents this model produced itself (forward, decode_indices).
        return self.decoder(self.post_quant_conv(quantized))

    def indices_to_quantized(self, indices: torch.LongTensor) -> torch.FloatTensor:
        """(B, h, w) codebook indices -> (B, embed_dim, h, w) codebook vectors."""
        self._check_indices(indices)
        return self.quantize.embed_indices(indices).to(self.dtype)

    def decode_indices(self, indices: torch.LongTensor) -> torch.FloatTensor:
        """(B, h, w) codebook indices in raster order -> (B, out_channels, h * f, w * f) images.

        Raises a `ValueError` for indices that are not an integer tensor of shape (B, h, w) with
        B, h, w >= 1 and values in [0, num_embeddings). The range check reads the tensor's min and max
        back from the device.
        """
        return self._decode(self.indices_to_quantized(indices))

    def forward(self, pixel_values: torch.FloatTensor, return_dict: bool = True):
        """
        Encode, quantize and decode `pixel_values` of shape `(batch_size, in_channels, height, width)`.

        Returns:
            [`VQGANModelOutput`] (or a tuple `(reconstruction, indices, embedding_loss)`).

        Raises:
            `ValueError`: for a bad `pixel_values`, as [`~VQGANModel.encode`].
        """
        encoded = self.encode(pixel_values)
        reconstruction = self._decode(encoded.quantized)
        if not return_dict:
            return reconstruction, encoded.indices, encoded.embedding_loss
        return VQGANModelOutput(
            reconstruction=reconstruction,
            indices=encoded.indices,
            embedding_loss=encoded.embedding_loss,
            latents=encoded.latents,
            quantized=encoded.quantized,
        )

    def _check_pixel_values(self, pixel_values: torch.Tensor) -> None:
        if not isinstance(pixel_values, torch.Tensor):
            raise ValueError(f"pixel_values must be a torch.Tensor, got {type(pixel_values).__name__}.")
        if not pixel_values.is_floating_point():
            raise ValueError(
                f"pixel_values must be a floating point tensor scaled to [-1, 1], got dtype {pixel_values.dtype}; "
                "convert uint8 images with VQGANImageProcessor or `x / 127.5 - 1`."
            )
        if pixel_values.ndim != 4:
            raise ValueError(
                f"pixel_values must have 4 dimensions (batch, channels, height, width), "
                f"got shape {tuple(pixel_values.shape)}."
            )
        batch, channels, height, width = pixel_values.shape
        if channels != self.config.in_channels:
            raise ValueError(
                f"pixel_values has {channels} channels, but the model expects in_channels={self.config.in_channels}."
            )
        shape = tuple(pixel_values.shape)
        if batch == 0:
            raise ValueError(f"pixel_values has an empty batch (shape {shape}); expected at least one image.")
        factor = self.config.downsample_factor
        if height == 0 or width == 0:
            raise ValueError(
                f"pixel_values has zero height or width (shape {shape}); expected images of at least "
                f"{factor}x{factor} pixels, in multiples of the downsampling factor {factor}."
            )
        if height % factor or width % factor:
            raise ValueError(
                f"Image size {height}x{width} is not divisible by the downsampling factor {factor}; "
                f"resize or crop to a multiple of {factor}."
            )
        if not self.training:
            _check_finite(pixel_values, "pixel_values", "finite pixel values in [-1, 1]")

    def _check_quantized(self, quantized: torch.Tensor) -> None:
        if not isinstance(quantized, torch.Tensor):
            raise ValueError(f"quantized must be a torch.Tensor, got {type(quantized).__name__}.")
        if not quantized.is_floating_point():
            raise ValueError(
                f"quantized must be a floating point tensor of latents, got dtype {quantized.dtype}; "
                "decode codebook indices with decode_indices."
            )
        embed_dim = self.config.embed_dim
        if quantized.ndim != 4 or quantized.shape[1] != embed_dim:
            raise ValueError(
                f"decode expects quantized latents of shape (batch, {embed_dim}, height, width), "
                f"got {tuple(quantized.shape)}."
            )
        shape = tuple(quantized.shape)
        if shape[0] == 0:
            raise ValueError(f"quantized has an empty batch (shape {shape}); expected at least one latent grid.")
        if shape[2] == 0 or shape[3] == 0:
            raise ValueError(f"quantized has zero height or width (shape {shape}); expected a grid of at least 1x1.")
        if not self.training:
            _check_finite(quantized, "quantized", "finite latents")

    def _check_indices(self, indices: torch.Tensor) -> None:
        if not isinstance(indices, torch.Tensor) or indices.dtype not in (torch.int64, torch.int32):
            dtype = indices.dtype if isinstance(indices, torch.Tensor) else type(indices).__name__
            raise ValueError(f"indices must be an integer tensor (torch.long), got {dtype}.")
        if indices.ndim != 3:
            raise ValueError(
                f"indices must have 3 dimensions (batch, height, width), got shape {tuple(indices.shape)}."
            )
        shape = tuple(indices.shape)
        if shape[0] == 0:
            raise ValueError(f"indices has an empty batch (shape {shape}); expected at least one grid of indices.")
        if shape[1] == 0 or shape[2] == 0:
            raise ValueError(f"indices has zero height or width (shape {shape}); expected a grid of at least 1x1.")
        low, high = int(indices.min()), int(indices.max())
        if low < 0 or high >= self.config.num_embeddings:
            bad = low if low < 0 else high
            raise ValueError(f"indices must lie in [0, {self.config.num_embeddings}), got a value of {bad}.")
