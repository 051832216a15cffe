import re

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoConfig, AutoModel

from taming_hf import VQGANConfig, VQGANModel
from taming_hf.models.vqgan.quantizers import GumbelQuantizer, VectorQuantizer


def tiny_config(**overrides) -> VQGANConfig:
    params = dict(
        base_channels=32,
        channel_multiplier=[1, 2],
        num_res_blocks=1,
        attn_resolutions=[8],
        resolution=16,
        in_channels=3,
        latent_channels=8,
        embed_dim=4,
        num_embeddings=16,
    )
    params.update(overrides)
    return VQGANConfig(**params)


@pytest.fixture
def model() -> VQGANModel:
    torch.manual_seed(0)
    return VQGANModel(tiny_config()).eval()


def test_encode_decode_shapes_and_dtypes(model):
    images = torch.rand(3, 3, 16, 24) * 2 - 1
    encoded = model.encode(images)
    assert encoded.latents.shape == (3, 4, 8, 12)
    assert encoded.quantized.shape == (3, 4, 8, 12)
    assert encoded.indices.shape == (3, 8, 12) and encoded.indices.dtype == torch.long
    assert encoded.embedding_loss.ndim == 0
    assert model.decode(encoded.quantized).shape == (3, 3, 16, 24)
    output = model(images)
    assert output.reconstruction.shape == images.shape
    assert torch.equal(output.indices, encoded.indices)
    reconstruction, indices, loss = model(images, return_dict=False)
    assert torch.equal(reconstruction, output.reconstruction) and torch.equal(indices, output.indices)


def test_quantized_vectors_are_codebook_rows(model):
    encoded = model.encode(torch.rand(1, 3, 16, 16) * 2 - 1)
    codebook = model.get_codebook()
    expected = codebook[encoded.indices].permute(0, 3, 1, 2)
    torch.testing.assert_close(encoded.quantized, expected)
    # Each index is the nearest code (brute force with cdist).
    flat = encoded.latents.permute(0, 2, 3, 1).reshape(-1, 4)
    assert torch.equal(torch.cdist(flat, codebook).argmin(1), encoded.indices.flatten())


def test_decode_indices_accepts_non_square_grids(model):
    indices = torch.randint(0, 16, (2, 3, 5))
    images = model.decode_indices(indices)
    assert images.shape == (2, 3, 6, 10)
    torch.testing.assert_close(images, model.decode(model.get_codebook()[indices].permute(0, 3, 1, 2)))


def test_straight_through_gradients_reach_the_encoder():
    model = VQGANModel(tiny_config()).train()
    output = model(torch.rand(2, 3, 16, 16) * 2 - 1)
    (output.reconstruction.pow(2).mean() + output.embedding_loss).backward()
    assert model.encoder.conv_in.weight.grad.abs().sum() > 0
    assert model.decoder.conv_out.weight.grad.abs().sum() > 0
    assert model.get_codebook().grad.abs().sum() > 0


def test_inference_reuses_activations_in_place_with_the_same_values(model):
    """Without autograd the blocks write silu and the residual sum into tensors they just made; with autograd
    (the same weights, inputs that need gradients) every op runs out of place. Both give identical bits."""
    from taming_hf.models.vqgan import modeling_vqgan

    images = torch.rand(2, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        inference = model(images).reconstruction
    tracked = model(images.clone().requires_grad_(True)).reconstruction
    assert torch.equal(inference, tracked.detach())

    norm = model.decoder.norm_out
    hidden = torch.randn(1, norm.num_channels, 4, 4)
    with torch.no_grad():
        normed = modeling_vqgan.norm_silu(norm, hidden)
    assert torch.equal(normed, F.silu(norm(hidden)))
    reference = hidden.clone().requires_grad_(True)
    F.silu(norm(reference)).sum().backward()
    modeling_vqgan.norm_silu(norm, hidden.requires_grad_(True)).sum().backward()
    assert torch.equal(hidden.grad, reference.grad)


def test_gradient_checkpointing_gives_the_same_gradients():
    torch.manual_seed(0)
    images = torch.rand(2, 3, 16, 16) * 2 - 1
    plain = VQGANModel(tiny_config()).train()
    checkpointed = VQGANModel(tiny_config()).train()
    checkpointed.load_state_dict(plain.state_dict())
    checkpointed.activation_checkpointing_enable()
    assert checkpointed.is_gradient_checkpointing
    calls = {}
    for model in (plain, checkpointed):
        block = model.decoder.up[0].block[0].conv1
        block.register_forward_hook(lambda *_, m=model: calls.__setitem__(id(m), calls.get(id(m), 0) + 1))
        output = model(images)
        (output.reconstruction.abs().mean() + output.embedding_loss).backward()
    # The checkpointed block runs again during backward.
    assert calls[id(plain)] == 1 and calls[id(checkpointed)] == 2
    for (name, a), (_, b) in zip(plain.named_parameters(), checkpointed.named_parameters()):
        torch.testing.assert_close(a.grad, b.grad, msg=name)


@pytest.mark.parametrize("legacy_beta", [False, True])
def test_vector_quantizer_loss_places_beta_as_documented(legacy_beta):
    torch.manual_seed(0)
    quantizer = VectorQuantizer(8, 4, beta=0.25, legacy_beta=legacy_beta)
    latents = torch.randn(2, 4, 3, 3, requires_grad=True)
    quantized, loss, indices = quantizer(latents)
    codes = quantizer.embedding.weight[indices].permute(0, 3, 1, 2)
    distance = F.mse_loss(latents, codes).item()
    # Forward values of both terms are the same distance; the gradients tell them apart.
    assert loss.item() == pytest.approx(1.25 * distance, rel=1e-6)
    loss.backward()
    encoder_grad = 2 * (latents - codes).detach() / latents.numel()
    commitment_weight = 1.0 if legacy_beta else 0.25
    codebook_weight = 0.25 if legacy_beta else 1.0
    torch.testing.assert_close(latents.grad, commitment_weight * encoder_grad)
    codebook_grad = torch.zeros_like(quantizer.embedding.weight)
    flat_grad = (-encoder_grad).permute(0, 2, 3, 1).reshape(-1, 4)
    codebook_grad.index_add_(0, indices.flatten(), flat_grad)
    torch.testing.assert_close(quantizer.embedding.weight.grad, codebook_weight * codebook_grad)
    torch.testing.assert_close(quantized, codes)


def test_distances_stay_fp32_under_autocast():
    torch.manual_seed(0)
    quantizer = VectorQuantizer(512, 64)
    latents = torch.randn(2, 64, 8, 8) * 0.002
    expected = quantizer.nearest_indices(latents)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(quantizer.nearest_indices(latents), expected)


def test_gumbel_quantizer_is_deterministic_in_eval_and_samples_in_training():
    torch.manual_seed(0)
    model = VQGANModel(tiny_config(quantizer_type="gumbel")).eval()
    assert isinstance(model.quantize, GumbelQuantizer)
    images = torch.rand(2, 3, 16, 16) * 2 - 1
    encoded = model.encode(images)
    assert torch.equal(encoded.indices, model.quantize.proj(encoded.latents).argmax(1))
    assert torch.equal(encoded.indices, model.encode(images).indices)
    model.train()
    sampled = [model.encode(images).indices for _ in range(3)]
    assert not all(torch.equal(sampled[0], s) for s in sampled[1:])
    output = model(images)
    (output.reconstruction.mean() + output.embedding_loss).backward()
    assert model.quantize.proj.weight.grad.abs().sum() > 0


def test_save_and_load_round_trip_is_bit_exact(tmp_path, model):
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    loaded = VQGANModel.from_pretrained(tmp_path)
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), name
    images = torch.rand(1, 3, 16, 16) * 2 - 1
    assert torch.equal(model(images).reconstruction, loaded.eval()(images).reconstruction)


def test_auto_classes_resolve_vqgan(tmp_path, model):
    model.save_pretrained(tmp_path)
    config = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(config, VQGANConfig) and config.channel_multiplier == [1, 2]
    auto = AutoModel.from_pretrained(tmp_path)
    assert isinstance(auto, VQGANModel)
    assert torch.equal(auto.get_codebook(), model.get_codebook())


def test_grayscale_and_custom_output_channels():
    model = VQGANModel(tiny_config(in_channels=1)).eval()
    assert model.config.out_channels == 1
    assert model(torch.rand(2, 1, 16, 16)).reconstruction.shape == (2, 1, 16, 16)
    mixed = VQGANModel(tiny_config(in_channels=1, out_channels=3)).eval()
    assert mixed(torch.rand(1, 1, 16, 16)).reconstruction.shape == (1, 3, 16, 16)


@pytest.mark.parametrize(
    "images, message",
    [
        (
            torch.rand(3, 16, 16),
            "pixel_values must have 4 dimensions (batch, channels, height, width), got shape (3, 16, 16).",
        ),
        (torch.rand(1, 1, 16, 16), "pixel_values has 1 channels, but the model expects in_channels=3."),
        (torch.rand(1, 3, 16, 15), "Image size 16x15 is not divisible by the downsampling factor 2"),
        (
            torch.zeros(1, 3, 16, 16, dtype=torch.uint8),
            "pixel_values must be a floating point tensor scaled to [-1, 1], got dtype torch.uint8",
        ),
    ],
    ids=["rank", "channels", "divisibility", "integer"],
)
def test_encode_rejects_bad_pixel_values(model, images, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        model.encode(images)


@pytest.mark.parametrize(
    "indices, message",
    [
        (torch.tensor([[[0, 16]]]), "indices must lie in [0, 16), got a value of 16."),
        (torch.tensor([[[-1, 0]]]), "indices must lie in [0, 16), got a value of -1."),
        (
            torch.zeros(2, 4, dtype=torch.long),
            "indices must have 3 dimensions (batch, height, width), got shape (2, 4).",
        ),
        (torch.zeros(1, 2, 2), "indices must be an integer tensor (torch.long), got torch.float32."),
    ],
    ids=["too_high", "negative", "rank", "dtype"],
)
def test_decode_indices_rejects_bad_indices(model, indices, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        model.decode_indices(indices)


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match=re.escape("quantizer_type must be one of ('vector', 'gumbel'), got 'ema'.")):
        VQGANConfig(quantizer_type="ema")
    with pytest.raises(
        ValueError,
        match=re.escape("base_channels must be a multiple of norm_num_groups=32 (the GroupNorm groups), got 48."),
    ):
        VQGANConfig(base_channels=48)
    with pytest.raises(ValueError, match=re.escape("norm_num_groups must be a positive integer, got 0.")):
        VQGANConfig(norm_num_groups=0)


def test_norm_num_groups_reaches_every_group_norm_and_old_configs_keep_32(tmp_path):
    config = tiny_config(norm_num_groups=8)
    model = VQGANModel(config)
    norms = [module for module in model.modules() if isinstance(module, torch.nn.GroupNorm)]
    assert len(norms) > 10 and {norm.num_groups for norm in norms} == {8}
    # a config saved before the option existed has no key: it builds the original's 32 groups
    config_dict = config.to_dict()
    del config_dict["norm_num_groups"]
    old = VQGANModel(VQGANConfig.from_dict(config_dict))
    assert {module.num_groups for module in old.modules() if isinstance(module, torch.nn.GroupNorm)} == {32}


def test_decode_rejects_wrong_latent_width(model):
    with pytest.raises(
        ValueError,
        match=re.escape("decode expects quantized latents of shape (batch, 4, height, width), got (1, 5, 2, 2)."),
    ):
        model.decode(torch.zeros(1, 5, 2, 2))


def test_output_names_the_quantizer_loss_embedding_loss_and_loss_is_gone(model):
    output = model(torch.rand(2, 3, 16, 16) * 2 - 1)
    assert output.embedding_loss.ndim == 0 and "loss" not in output.keys()
    assert getattr(output, "loss", None) is None  # what transformers' code does with outputs
    with pytest.raises(
        AttributeError, match=re.escape("VQGANModelOutput.loss was renamed to VQGANModelOutput.embedding_loss")
    ):
        _ = output.loss
    with pytest.raises(AttributeError, match=re.escape("VQGANEncoderOutput.loss was renamed")):
        _ = model.encode(torch.rand(1, 3, 16, 16)).loss
    reconstruction, indices, embedding_loss = model(torch.rand(1, 3, 16, 16), return_dict=False)
    assert embedding_loss.ndim == 0 and indices.shape == (1, 8, 8)


def test_sdpa_is_declared_and_eager_attention_matches_it(tmp_path):
    assert VQGANModel._supports_sdpa
    torch.manual_seed(0)
    sdpa = VQGANModel(tiny_config()).eval()
    assert sdpa.config._attn_implementation == "sdpa"
    sdpa.save_pretrained(tmp_path)
    eager = VQGANModel.from_pretrained(tmp_path, attn_implementation="eager").eval()
    assert eager.config._attn_implementation == "eager"
    images = torch.rand(2, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(eager(images).reconstruction, sdpa(images).reconstruction, rtol=1e-5, atol=1e-5)
