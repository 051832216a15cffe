"""Bad inputs to the public VQGAN API (config, model, image processor) get a ValueError naming them."""

import re

import numpy as np
import pytest
import torch
from transformers import AutoConfig

from taming_hf import VQGANConfig, VQGANModel


def tiny_config(**overrides) -> VQGANConfig:
    params = dict(
        base_channels=32,
        channel_multiplier=[1, 2],
        num_res_blocks=1,
        attn_resolutions=[8],
        resolution=16,
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


def with_non_finite(shape) -> torch.Tensor:
    values = torch.rand(shape) * 2 - 1
    values.view(-1)[:3] = torch.tensor([float("nan"), float("inf"), -float("inf")])
    return values


def raises(message: str):
    return pytest.raises(ValueError, match=re.escape(message))


# Config values that cannot build a model.


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"num_embeddings": 0}, "num_embeddings must be a positive integer, got 0."),
        ({"embed_dim": -4}, "embed_dim must be a positive integer, got -4."),
        ({"in_channels": 0}, "in_channels must be a positive integer, got 0."),
        ({"out_channels": 0}, "out_channels must be a positive integer, got 0."),
        ({"latent_channels": -1}, "latent_channels must be a positive integer, got -1."),
        ({"resolution": 0}, "resolution must be a positive integer, got 0."),
        ({"base_channels": 0}, "base_channels must be a positive integer, got 0."),
        ({"embed_dim": 4.0}, "embed_dim must be a positive integer, got 4.0."),
        ({"num_embeddings": True}, "num_embeddings must be a positive integer, got True."),
        ({"channel_multiplier": [1, 0]}, "channel_multiplier entries must be positive integers, got [1, 0]."),
        ({"channel_multiplier": [1, -2]}, "channel_multiplier entries must be positive integers, got [1, -2]."),
        ({"channel_multiplier": [1, 2.0]}, "channel_multiplier entries must be positive integers, got [1, 2.0]."),
        ({"channel_multiplier": []}, "channel_multiplier must be a non-empty list of positive integers, got []."),
        ({"channel_multiplier": 2}, "channel_multiplier must be a non-empty list of positive integers, got 2."),
        ({"num_res_blocks": -1}, "num_res_blocks must be an integer >= 0, got -1."),
        ({"num_res_blocks": 1.5}, "num_res_blocks must be an integer >= 0, got 1.5."),
        (
            {"num_res_blocks": 0},
            "num_res_blocks=0 needs every channel_multiplier entry to be 1 (the encoder's residual blocks change "
            "the width between levels), got channel_multiplier=[1, 2].",
        ),
        ({"dropout": 1.0}, "dropout must be a probability in [0, 1), got 1.0."),
        ({"dropout": -0.1}, "dropout must be a probability in [0, 1), got -0.1."),
        ({"beta": -0.25}, "beta must be a finite number >= 0, got -0.25."),
        ({"beta": float("nan")}, "beta must be a finite number >= 0, got nan."),
        ({"gumbel_kl_weight": -1.0}, "gumbel_kl_weight must be a finite number >= 0, got -1.0."),
        ({"gumbel_temperature": 0.0}, "gumbel_temperature must be a finite number > 0, got 0.0."),
    ],
    ids=lambda value: next(iter(value)) if isinstance(value, dict) else None,
)
def test_config_rejects_values_that_cannot_build_a_model(overrides, message):
    with raises(message):
        tiny_config(**overrides)


def test_config_without_residual_blocks_builds_when_the_width_is_constant():
    model = VQGANModel(tiny_config(num_res_blocks=0, channel_multiplier=[1, 1])).eval()
    assert model(torch.zeros(1, 3, 16, 16)).reconstruction.shape == (1, 3, 16, 16)


def test_validated_config_still_round_trips_through_transformers(tmp_path):
    assert VQGANConfig().to_dict()["channel_multiplier"] == [1, 1, 2, 2, 4]
    config = tiny_config(embed_dim=np.int64(4), channel_multiplier=[1, np.int64(2)], dropout=0.1)
    assert type(config.embed_dim) is int and config.channel_multiplier == [1, 2]
    assert VQGANConfig.from_dict(config.to_dict()).to_dict() == config.to_dict()
    config.save_pretrained(tmp_path)  # JSON serialisation, then transformers' loaders
    for loaded in (VQGANConfig.from_pretrained(tmp_path), AutoConfig.from_pretrained(tmp_path)):
        assert loaded.to_diff_dict() == config.to_diff_dict()
    assert isinstance(AutoConfig.for_model("vqgan", num_embeddings=32), VQGANConfig)
    with raises("num_embeddings must be a positive integer, got 0."):
        AutoConfig.for_model("vqgan", num_embeddings=0)
