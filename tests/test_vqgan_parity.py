"""Numerical parity of VQGANModel with the original implementation (taming-transformers-rom1504).

The original modules are built with random weights, the same weights are loaded into our
model by name, and encoding / decoding must agree: identical indices, latents and
reconstructions within 1e-5 relative error.
"""

import pytest
import torch

from original_taming import require_original_taming
from taming_hf import VQGANConfig, VQGANModel

original_model = require_original_taming("taming.modules.diffusionmodules.model")
original_quantize = require_original_taming("taming.modules.vqvae.quantize")

LAYOUTS = {
    # f16 like the ImageNet models, narrow: 5 levels, attention at 16 px of a 64 px model.
    "f16_rgb": dict(
        base_channels=32,
        channel_multiplier=[1, 1, 2, 2, 4],
        num_res_blocks=1,
        attn_resolutions=[16],
        resolution=64,
        in_channels=3,
        latent_channels=32,
        embed_dim=16,
        num_embeddings=64,
    ),
    # f4 grayscale, two residual blocks per level, attention at the lowest level.
    "f4_gray": dict(
        base_channels=32,
        channel_multiplier=[1, 2, 2],
        num_res_blocks=2,
        attn_resolutions=[8],
        resolution=32,
        in_channels=1,
        latent_channels=8,
        embed_dim=8,
        num_embeddings=32,
    ),
}


def relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return ((actual - expected).norm() / expected.norm()).item()


def original_ddconfig(config: VQGANConfig) -> dict:
    return dict(
        ch=config.base_channels,
        out_ch=config.out_channels,
        ch_mult=tuple(config.channel_multiplier),
        num_res_blocks=config.num_res_blocks,
        attn_resolutions=config.attn_resolutions,
        dropout=0.0,
        in_channels=config.in_channels,
        resolution=config.resolution,
        z_channels=config.latent_channels,
        double_z=False,
    )


class OriginalVQ(torch.nn.Module):
    """The original VQModel's modules, without its Lightning and loss machinery."""

    def __init__(self, config: VQGANConfig, gumbel: bool = False):
        super().__init__()
        ddconfig = original_ddconfig(config)
        self.encoder = original_model.Encoder(**ddconfig)
        self.decoder = original_model.Decoder(**ddconfig)
        self.quant_conv = torch.nn.Conv2d(config.latent_channels, config.embed_dim, 1)
        self.post_quant_conv = torch.nn.Conv2d(config.embed_dim, config.latent_channels, 1)
        if gumbel:
            self.quantize = original_quantize.GumbelQuantize(
                config.embed_dim, config.embed_dim, config.num_embeddings, kl_weight=config.gumbel_kl_weight
            )
        else:
            self.quantize = original_quantize.VectorQuantizer2(
                config.num_embeddings, config.embed_dim, beta=0.25, legacy=config.legacy_beta
            )

    def latents(self, x):
        return self.quant_conv(self.encoder(x))


def build_pair(layout: str, gumbel: bool = False, legacy_beta: bool = True, seed: int = 0):
    torch.manual_seed(seed)
    config = VQGANConfig(**LAYOUTS[layout], quantizer_type="gumbel" if gumbel else "vector", legacy_beta=legacy_beta)
    original = OriginalVQ(config, gumbel=gumbel).eval()
    # Randomise norms too, so a swapped affine parameter cannot hide.
    for module in original.modules():
        if isinstance(module, torch.nn.GroupNorm):
            torch.nn.init.normal_(module.weight, 1.0, 0.1)
            torch.nn.init.normal_(module.bias, 0.0, 0.1)
    ours = VQGANModel(config).eval()
    return config, original, ours


def spread_codebook(original: OriginalVQ, config: VQGANConfig, size) -> None:
    """Set the codebook to encoder outputs of random images, so encodings use many codes."""
    with torch.no_grad():
        images = torch.rand(4, config.in_channels, *size) * 2 - 1
        latents = original.latents(images).permute(0, 2, 3, 1).reshape(-1, config.embed_dim)
        picks = torch.randperm(latents.shape[0])[: config.num_embeddings]
        original.quantize.embedding.weight.copy_(latents[picks] + 0.01 * torch.randn_like(latents[picks]))


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("size", [(64, 64), (64, 96)], ids=["square", "non_square"])
def test_vector_quantized_model_matches_original(layout, size):
    config, original, ours = build_pair(layout)
    spread_codebook(original, config, size)
    ours.load_state_dict(original.state_dict(), strict=True)

    torch.manual_seed(1)
    images = torch.rand(2, config.in_channels, *size) * 2 - 1
    with torch.no_grad():
        latents = original.latents(images)
        quantized, loss, (_, _, flat_indices) = original.quantize(latents)
        reconstruction = original.decoder(original.post_quant_conv(quantized))

        encoded = ours.encode(images)
        output = ours(images)

    grid = (size[0] // config.downsample_factor, size[1] // config.downsample_factor)
    assert encoded.indices.shape == (2, *grid) and encoded.indices.dtype == torch.long
    assert torch.equal(encoded.indices.flatten(), flat_indices)
    assert encoded.indices.unique().numel() > config.num_embeddings // 4  # the codebook is really exercised
    assert relative_error(encoded.latents, latents) < 1e-5
    assert relative_error(encoded.quantized, quantized) < 1e-5
    assert relative_error(output.reconstruction, reconstruction) < 1e-5
    torch.testing.assert_close(encoded.embedding_loss, loss, rtol=1e-5, atol=1e-7)
    # decode_indices is what the original's broken decode_code meant to be.
    with torch.no_grad():
        assert relative_error(ours.decode_indices(encoded.indices), reconstruction) < 1e-5


@pytest.mark.parametrize("legacy_beta", [True, False], ids=["legacy", "corrected"])
def test_beta_placement_matches_original_loss(legacy_beta):
    config, original, ours = build_pair("f4_gray", legacy_beta=legacy_beta)
    spread_codebook(original, config, (32, 32))
    ours.load_state_dict(original.state_dict())
    images = torch.rand(2, 1, 32, 32) * 2 - 1
    latents = original.latents(images).detach().requires_grad_(True)
    _, original_loss, _ = original.quantize(latents)
    _, our_loss, _ = ours.quantize(latents)
    torch.testing.assert_close(our_loss, original_loss, rtol=1e-6, atol=1e-8)


def test_gumbel_quantizer_matches_original_hard_codes():
    config, original, ours = build_pair("f4_gray", gumbel=True)
    with torch.no_grad():
        # Logit gaps far beyond the Gumbel noise: the original's sampled hard codes become the
        # argmax, which is exactly what our deterministic eval encoding returns.
        original.quantize.proj.weight.mul_(1e4)
        original.quantize.proj.bias.mul_(1e4)
    ours.load_state_dict(original.state_dict(), strict=True)

    images = torch.rand(2, 1, 32, 48) * 2 - 1
    with torch.no_grad():
        latents = original.latents(images)
        quantized, _, (_, _, indices) = original.quantize(latents)
        reconstruction = original.decoder(original.post_quant_conv(quantized))
        output = ours(images)
        again = ours(images)

    assert torch.equal(output.indices, indices)
    assert torch.equal(output.indices, again.indices)  # deterministic, unlike the original
    assert output.indices.unique().numel() > 4
    assert relative_error(output.quantized, quantized) < 1e-5
    assert relative_error(output.reconstruction, reconstruction) < 1e-5


def test_state_dict_keys_are_the_original_keys():
    for gumbel in (False, True):
        config, original, ours = build_pair("f16_rgb", gumbel=gumbel)
        assert set(ours.state_dict()) == set(original.state_dict())
