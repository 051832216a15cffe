"""PatchGAN discriminator (pix2pix, as used by VQGAN) as a transformers `PreTrainedModel`.

A model of its own, with its own config, so GAN training can be saved, resumed and
fine-tuned with `save_pretrained` / `from_pretrained`.
"""

from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel
from transformers import initialization as init
from transformers.utils import ModelOutput


class PatchGANDiscriminatorConfig(PretrainedConfig):
    r"""
    Configuration for [`PatchGANDiscriminator`].

    Args:
        in_channels (`int`, *optional*, defaults to 3):
            Image channels (1 for grayscale).
        base_channels (`int`, *optional*, defaults to 64):
            Width of the first convolution (taming: `ndf`).
        num_layers (`int`, *optional*, defaults to 3):
            Number of stride-2 convolutions (taming: `n_layers`); the receptive field grows with it.
        max_channel_multiplier (`int`, *optional*, defaults to 8):
            Widths are `base_channels * min(2**n, max_channel_multiplier)`.
        initializer_range (`float`, *optional*, defaults to 0.02):
            Standard deviation of the normal initialisation of convolutions (and of BatchNorm
            weights around 1).
    """

    model_type = "patchgan_discriminator"

    def __init__(
        self,
        in_channels: int = 3,
        base_channels: int = 64,
        num_layers: int = 3,
        max_channel_multiplier: int = 8,
        initializer_range: float = 0.02,
        **kwargs,
    ):
        if num_layers < 1:
            raise ValueError(f"num_layers must be at least 1, got {num_layers}.")
        self.in_channels = in_channels
        self.base_channels = base_channels
        self.num_layers = num_layers
        self.max_channel_multiplier = max_channel_multiplier
        self.initializer_range = initializer_range
        super().__init__(**kwargs)


@dataclass
class PatchGANDiscriminatorOutput(ModelOutput):
    """
    Args:
        logits (`torch.FloatTensor` of shape `(batch_size, 1, patch_height, patch_width)`):
            One real/fake logit per image patch.
    """

    logits: Optional[torch.FloatTensor] = None


def _conv_bn_lrelu(in_channels: int, out_channels: int, stride: int) -> list:
    return [
        nn.Conv2d(in_channels, out_channels, kernel_size=4, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.LeakyReLU(0.2, inplace=True),
    ]


class PatchGANDiscriminator(PreTrainedModel):
    """
    (B, in_channels, H, W) images -> (B, 1, H', W') patch logits.

    Layout: conv k4 s2 (with bias) + LeakyReLU(0.2); `num_layers - 1` blocks of conv k4 s2
    (no bias) + BatchNorm + LeakyReLU; one such block with stride 1; a final conv k4 s1 to
    one channel. For 256 px inputs and 3 layers the output is a 30x30 grid of logits.
    """

    config_class = PatchGANDiscriminatorConfig
    base_model_prefix = "discriminator"
    main_input_name = "pixel_values"

    def __init__(self, config: PatchGANDiscriminatorConfig):
        super().__init__(config)
        width = config.base_channels
        layers = [nn.Conv2d(config.in_channels, width, kernel_size=4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        multiplier = 1
        for n in range(1, config.num_layers + 1):
            previous, multiplier = multiplier, min(2**n, config.max_channel_multiplier)
            stride = 2 if n < config.num_layers else 1
            layers += _conv_bn_lrelu(width * previous, width * multiplier, stride)
        layers.append(nn.Conv2d(width * multiplier, 1, kernel_size=4, stride=1, padding=1))
        self.main = nn.Sequential(*layers)
        self.post_init()

    @torch.no_grad()
    def _init_weights(self, module: nn.Module):
        std = self.config.initializer_range
        if isinstance(module, nn.Conv2d):
            init.normal_(module.weight, 0.0, std)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            init.normal_(module.weight, 1.0, std)
            init.zeros_(module.bias)

    def forward(self, pixel_values: torch.FloatTensor, return_dict: bool = True):
        """
        Args:
            pixel_values (`torch.FloatTensor` of shape `(batch_size, in_channels, height, width)`):
                Real or reconstructed images in [-1, 1].
        """
        if pixel_values.ndim != 4 or pixel_values.shape[1] != self.config.in_channels:
            raise ValueError(
                f"The discriminator expects images of shape (batch, {self.config.in_channels}, height, width), "
                f"got {tuple(pixel_values.shape)}."
            )
        logits = self.main(pixel_values)
        if not return_dict:
            return (logits,)
        return PatchGANDiscriminatorOutput(logits=logits)


def register_auto_classes() -> None:
    """Make `AutoConfig` / `AutoModel.from_pretrained` recognise saved discriminators."""
    from transformers import AutoConfig, AutoModel

    AutoConfig.register(PatchGANDiscriminatorConfig.model_type, PatchGANDiscriminatorConfig, exist_ok=True)
    AutoModel.register(PatchGANDiscriminatorConfig, PatchGANDiscriminator, exist_ok=True)


register_auto_classes()
