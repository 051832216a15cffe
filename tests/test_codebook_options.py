"""Codebook options of VQGANConfig (factorised l2-normalised lookup, entropy penalty) and re-seeding by name."""

import re

import pytest
import torch
import torch.nn.functional as F
from diffusers.training_utils import EMAModel

from taming_hf import VQGANConfig, VQGANModel
from taming_hf.models.vqgan.quantizers import VectorQuantizer
from taming_hf.training import copy_rows_to_ema, reseed_dead_codes
from test_modeling_vqgan import tiny_config


def test_default_options_keep_the_plain_quantizer_and_its_state_dict():
    torch.manual_seed(0)
    model = VQGANModel(tiny_config())
    quantize = model.quantize
    assert (quantize.codebook_dim, quantize.factorized, quantize.normalize_codes) == (4, False, False)
    assert [name for name in model.state_dict() if name.startswith("quantize.")] == ["quantize.embedding.weight"]
    assert model.codebook_parameter_name == "quantize.embedding.weight"
    assert model.get_codebook() is quantize.embedding.weight


def test_default_quantizer_matches_the_plain_nearest_neighbour_formula_exactly():
    torch.manual_seed(0)
    quantizer = VectorQuantizer(16, 4, beta=0.25)
    latents = torch.randn(2, 4, 3, 5, requires_grad=True)
    quantized, loss, indices = quantizer(latents)
    flat = latents.detach().permute(0, 2, 3, 1).reshape(-1, 4)
    codebook = quantizer.embedding.weight.detach()
    expected = (flat.pow(2).sum(1, keepdim=True) + codebook.pow(2).sum(1) - 2 * flat @ codebook.t()).argmin(1)
    assert torch.equal(indices.flatten(), expected)
    codes = codebook[expected].reshape(2, 3, 5, 4).permute(0, 3, 1, 2)
    assert torch.equal(quantized, latents + (codes - latents).detach())
    expected_loss = 0.25 * F.mse_loss(latents, codes) + F.mse_loss(codes, latents.detach())
    assert loss.item() == pytest.approx(expected_loss.item(), rel=1e-6)


def test_factorised_normalised_lookup_shapes_and_unit_codes():
    torch.manual_seed(0)
    model = VQGANModel(tiny_config(codebook_dim=2, normalize_codes=True)).eval()
    quantize = model.quantize
    assert quantize.factorized and model.get_codebook().shape == (16, 2)
    assert quantize.in_proj.weight.shape == (2, 4) and quantize.out_proj.weight.shape == (4, 2)
    images = torch.rand(3, 3, 16, 16) * 2 - 1
    encoded = model.encode(images)
    assert encoded.latents.shape == (3, 4, 8, 8) and encoded.quantized.shape == (3, 4, 8, 8)
    projected = quantize.project(encoded.latents)
    assert projected.shape == (3, 2, 8, 8)
    torch.testing.assert_close(projected.norm(dim=1), torch.ones(3, 8, 8))
    # the code chosen is the nearest unit code to the projected latent (largest cosine similarity)
    codes = F.normalize(model.get_codebook(), dim=1)
    similarity = torch.einsum("bdhw,kd->bkhw", projected, codes)
    assert torch.equal(encoded.indices, similarity.argmax(dim=1))
    # decoding indices and decoding the quantized latents agree
    torch.testing.assert_close(model.decode_indices(encoded.indices), model.decode(encoded.quantized))
    assert model(images).reconstruction.shape == (3, 3, 16, 16)


def test_factorised_model_trains_its_projections_and_round_trips(tmp_path):
    torch.manual_seed(0)
    model = VQGANModel(tiny_config(codebook_dim=2, normalize_codes=True))
    output = model(torch.rand(2, 3, 16, 16) * 2 - 1)
    (output.reconstruction.abs().mean() + output.embedding_loss).backward()
    assert model.quantize.in_proj.weight.grad.abs().sum() > 0 and model.get_codebook().grad.abs().sum() > 0
    model.save_pretrained(tmp_path)
    reloaded = VQGANModel.from_pretrained(tmp_path)
    assert reloaded.config.codebook_dim == 2 and reloaded.config.normalize_codes
    images = torch.rand(1, 3, 16, 16) * 2 - 1
    assert torch.equal(reloaded.eval().encode(images).indices, model.eval().encode(images).indices)


def test_entropy_penalty_value_and_its_place_in_the_quantizer_loss():
    torch.manual_seed(0)
    plain = VectorQuantizer(8, 3)
    penalised = VectorQuantizer(8, 3, entropy_weight=0.1, entropy_temperature=0.5)
    penalised.load_state_dict(plain.state_dict())
    latents = torch.randn(2, 3, 4, 4)
    flat = latents.permute(0, 2, 3, 1).reshape(-1, 3)
    probs = torch.softmax(-torch.cdist(flat, penalised.embedding.weight).pow(2) / 0.5, dim=1)
    mean = probs.mean(0)
    expected = -(probs * probs.log()).sum(1).mean() + (mean * mean.log()).sum()
    assert penalised.entropy_penalty(latents).item() == pytest.approx(expected.item(), rel=1e-4, abs=1e-6)
    assert penalised(latents)[1].item() == pytest.approx(plain(latents)[1].item() + 0.1 * expected.item(), rel=1e-4)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"codebook_dim": 0}, "codebook_dim must be a positive integer, got 0."),
        ({"entropy_loss_weight": -1.0}, "entropy_loss_weight must be a finite number >= 0, got -1.0."),
        ({"entropy_temperature": 0.0}, "entropy_temperature must be a finite number > 0, got 0.0."),
        (
            {"quantizer_type": "gumbel", "normalize_codes": True},
            "codebook_dim, normalize_codes and entropy_loss_weight apply to quantizer_type='vector' only",
        ),
    ],
)
def test_bad_codebook_options_name_the_value(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        VQGANConfig(**kwargs)


def test_configs_saved_before_the_options_load_as_the_plain_quantizer(tmp_path):
    config = tiny_config()
    for name in ("codebook_dim", "normalize_codes", "entropy_loss_weight", "entropy_temperature"):
        delattr(config, name)
    model = VQGANModel(config)
    assert not model.quantize.factorized and model.quantize.entropy_weight == 0.0


def test_reseeding_copies_the_new_codes_into_the_ema_shadow_found_by_name():
    torch.manual_seed(0)
    model = VQGANModel(tiny_config(codebook_dim=2, normalize_codes=True))
    ema = EMAModel(model.parameters(), decay=0.9)
    before = [shadow.clone() for shadow in ema.shadow_params]
    dead = torch.tensor([1, 5])
    vectors = model.quantize.project(torch.randn(2, 4, 3, 3))
    assert reseed_dead_codes(model.get_codebook(), dead, vectors, torch.Generator().manual_seed(0)) == 2
    copy_rows_to_ema(model, ema, model.codebook_parameter_name, dead)
    names = [name for name, _ in model.named_parameters()]
    for name, shadow, old in zip(names, ema.shadow_params, before):
        if name == "quantize.embedding.weight":
            assert torch.equal(shadow[dead], model.get_codebook()[dead].detach())
            assert torch.equal(shadow[[0, 2, 3]], old[[0, 2, 3]])
        else:
            assert torch.equal(shadow, old), name
    with pytest.raises(KeyError, match=re.escape("'quantize.codebook' is not a parameter of VQGANModel.")):
        copy_rows_to_ema(model, ema, "quantize.codebook", dead)
