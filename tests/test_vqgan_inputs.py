"""Bad inputs to the public VQGAN API (config, model, image processor) get a ValueError naming them."""

import logging
import re

import numpy as np
import PIL.Image
import pytest
import torch
from transformers import AutoConfig

from taming_hf import VQGANConfig, VQGANImageProcessor, VQGANModel
from taming_hf.models.vqgan import image_processing_vqgan
from test_modeling_vqgan import tiny_config


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


# Non-finite values, checked in eval mode only.

NON_FINITE_PIXELS = "pixel_values contains 3 non-finite values (NaN or inf); expected finite pixel values in [-1, 1]."


def test_encode_rejects_nan_pixel_values(model):
    with raises(NON_FINITE_PIXELS):
        model.encode(with_non_finite((2, 3, 16, 16)))


def test_forward_rejects_nan_pixel_values(model):
    with raises(NON_FINITE_PIXELS):
        model(with_non_finite((1, 3, 16, 16)))


def test_decode_rejects_nan_latents(model):
    with raises("quantized contains 3 non-finite values (NaN or inf); expected finite latents."):
        model.decode(with_non_finite((1, 4, 2, 2)))


def test_training_forward_skips_the_finiteness_check(model, monkeypatch):
    # The check needs a host sync; a training step must not pay for it.
    calls = []
    real_isfinite = torch.isfinite
    monkeypatch.setattr(torch, "isfinite", lambda x: calls.append(x) or real_isfinite(x))
    output = model.train()(with_non_finite((1, 3, 16, 16)))
    assert calls == [] and torch.isnan(output.embedding_loss)
    model.eval()
    with raises(NON_FINITE_PIXELS):
        model(with_non_finite((1, 3, 16, 16)))
    assert len(calls) > 0


# Empty batches and zero-sized images (checked in training too: shapes need no sync).


@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
def test_forward_rejects_an_empty_batch(model, training):
    model.train(training)
    with raises("pixel_values has an empty batch (shape (0, 3, 32, 32)); expected at least one image."):
        model(torch.zeros(0, 3, 32, 32))


def test_encode_rejects_zero_sized_images(model):
    with raises(
        "pixel_values has zero height or width (shape (1, 3, 0, 0)); expected images of at least 2x2 pixels, "
        "in multiples of the downsampling factor 2."
    ):
        model.encode(torch.zeros(1, 3, 0, 0))


def test_encode_rejects_sizes_not_divisible_by_the_downsampling_factor(model):
    with raises("Image size 15x16 is not divisible by the downsampling factor 2; resize or crop to a multiple of 2."):
        model.encode(torch.zeros(1, 3, 15, 16))


def test_decode_rejects_an_empty_batch(model):
    with raises("quantized has an empty batch (shape (0, 4, 2, 2)); expected at least one latent grid."):
        model.decode(torch.zeros(0, 4, 2, 2))


def test_decode_rejects_a_zero_sized_grid(model):
    with raises("quantized has zero height or width (shape (1, 4, 0, 3)); expected a grid of at least 1x1."):
        model.decode(torch.zeros(1, 4, 0, 3))


def test_decode_rejects_integer_latents(model):
    with raises(
        "quantized must be a floating point tensor of latents, got dtype torch.int64; "
        "decode codebook indices with decode_indices."
    ):
        model.decode(torch.zeros(1, 4, 2, 2, dtype=torch.long))


def test_decode_indices_rejects_an_empty_batch(model):
    with raises("indices has an empty batch (shape (0, 2, 2)); expected at least one grid of indices."):
        model.decode_indices(torch.zeros(0, 2, 2, dtype=torch.long))


def test_decode_indices_rejects_a_zero_sized_grid(model):
    with raises("indices has zero height or width (shape (1, 0, 0)); expected a grid of at least 1x1."):
        model.decode_indices(torch.zeros(1, 0, 0, dtype=torch.long))


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


# Image processor inputs.


@pytest.fixture
def plain_processor() -> VQGANImageProcessor:
    return VQGANImageProcessor(do_resize=False, do_center_crop=False)


def ramp(height: int = 12, width: int = 20) -> np.ndarray:
    """(H, W) uint8 ramp covering 0..255."""
    return np.tile(np.linspace(0, 255, width).round().astype(np.uint8), (height, 1))


def pixel_values(processor, images) -> torch.Tensor:
    return processor(images, return_tensors="pt").pixel_values


@pytest.mark.parametrize(
    "make_16_bit",
    [
        lambda gray: np.stack([gray] * 3, -1).astype(np.uint16) * 257,
        lambda gray: torch.from_numpy(np.stack([gray] * 3).astype(np.int32) * 257).to(torch.uint16),
        lambda gray: PIL.Image.fromarray(gray.astype(np.uint16) * 257),  # mode "I;16"
        lambda gray: PIL.Image.fromarray(gray.astype(np.int32) * 257),  # mode "I", as Pillow opens 16-bit PNGs
    ],
    ids=["numpy_uint16", "torch_uint16", "pil_I;16", "pil_I"],
)
@pytest.mark.parametrize("resize", [False, True], ids=["plain", "resized"])
def test_16_bit_images_scale_like_their_8_bit_equivalent(make_16_bit, resize):
    processor = (
        VQGANImageProcessor(resolution=8) if resize else VQGANImageProcessor(do_resize=False, do_center_crop=False)
    )
    gray = ramp()
    expected = pixel_values(processor, np.stack([gray] * 3, -1))
    actual = pixel_values(processor, make_16_bit(gray))
    assert actual.shape == expected.shape
    torch.testing.assert_close(actual, expected, atol=1 / 127.5, rtol=0)


def test_16_bit_pil_images_outside_the_16_bit_range_are_rejected(plain_processor):
    image = PIL.Image.fromarray(ramp().astype(np.int32) * 1000)
    with raises("PIL image of mode 'I' has values in [0, 255000]; expected 16-bit values in [0, 65535]."):
        plain_processor(image)


def test_integer_arrays_above_8_bit_are_rejected(plain_processor):
    with raises(
        "image of dtype int64 has values in [0, 65535]; expected 8-bit values in [0, 255] "
        "(pass 16-bit images as uint16 arrays)."
    ):
        plain_processor(ramp().astype(np.int64) * 257)


@pytest.mark.parametrize("num_channels", [1, 3])
def test_2d_arrays_are_grayscale_images(num_channels):
    processor = VQGANImageProcessor(do_resize=False, do_center_crop=False, num_channels=num_channels)
    gray = ramp()
    single = pixel_values(processor, gray)
    assert single.shape == (1, num_channels, 12, 20)
    torch.testing.assert_close(single, pixel_values(processor, PIL.Image.fromarray(gray)))  # as PIL "L"
    assert pixel_values(processor, [gray, gray[::-1]]).shape == (2, num_channels, 12, 20)


def test_float_arrays_are_read_on_the_0_255_scale():
    values = np.random.default_rng(0).uniform(0, 255, (12, 20, 3))
    plain = pixel_values(VQGANImageProcessor(do_resize=False, do_center_crop=False), values)
    torch.testing.assert_close(plain[0], torch.from_numpy(values).permute(2, 0, 1).float() / 127.5 - 1)
    # Resizing goes through 8-bit PIL images, so fractional values are rounded first.
    resized = VQGANImageProcessor(resolution=8)
    torch.testing.assert_close(pixel_values(resized, values), pixel_values(resized, values.round().astype(np.uint8)))


def test_float_arrays_outside_0_255_are_rejected(plain_processor):
    with raises(
        "float image has values in [-1, 1]; expected values in [0, 255] (float images are read on the 0-255 scale, "
        "as transformers does)."
    ):
        plain_processor(np.linspace(-1, 1, 48).reshape(4, 4, 3))


def test_float_arrays_in_the_unit_range_get_a_warning(plain_processor, caplog):
    image_processing_vqgan.logger.warning_once.cache_clear()
    with caplog.at_level(logging.WARNING, logger=image_processing_vqgan.logger.name):
        plain_processor(np.full((5, 6, 3), 0.5))
    assert "multiply images scaled to [0, 1] by 255" in caplog.text


def test_non_finite_image_arrays_are_rejected(plain_processor):
    image = np.full((4, 4, 3), 100.0)
    image[0, 0] = [np.nan, np.inf, 1.0]
    with raises("image contains 2 non-finite values (NaN or inf); expected finite pixel values in [0, 255]."):
        plain_processor(image)


def test_boolean_arrays_are_rejected(plain_processor):
    with raises(
        "image arrays of dtype bool are not supported; expected uint8 (0-255), uint16 (0-65535) or float (0-255) "
        "values."
    ):
        plain_processor(np.ones((4, 4, 3), dtype=bool))


def test_processor_rejects_an_empty_list(plain_processor):
    with raises("images is an empty list; expected at least one image."):
        plain_processor([])


def test_processor_rejects_an_empty_batch_array(plain_processor):
    with raises("images is an empty batch (shape (0, 8, 8, 3)); expected at least one image."):
        plain_processor(np.zeros((0, 8, 8, 3), dtype=np.uint8))


@pytest.mark.parametrize(
    "image, message",
    [
        (
            np.zeros((0, 0, 3), dtype=np.uint8),
            "image has no pixels (array of shape (0, 0, 3)); expected an image of at least 1x1 pixels.",
        ),
        (
            PIL.Image.new("RGB", (0, 0)),
            "image has no pixels (PIL image of size 0x0); expected an image of at least 1x1 pixels.",
        ),
    ],
    ids=["array", "pil"],
)
def test_processor_rejects_zero_sized_images(image, message):
    with raises(message):
        VQGANImageProcessor(resolution=16)(image)


def test_postprocess_rejects_non_finite_values():
    with raises(
        "pixel_values contains 3 non-finite values (NaN or inf); expected finite decoder outputs, nominally in [-1, 1]."
    ):
        VQGANImageProcessor().postprocess(with_non_finite((1, 3, 4, 4)))


@pytest.mark.parametrize(
    "images, message",
    [
        (
            torch.zeros(0, 3, 4, 4),
            "pixel_values has an empty batch (shape (0, 3, 4, 4)); expected at least one image.",
        ),
        (
            torch.zeros(1, 3, 0, 0),
            "pixel_values has zero height or width (shape (1, 3, 0, 0)); expected images of at least 1x1 pixels.",
        ),
        (np.zeros((1, 3, 4, 4)), "pixel_values must be a torch.Tensor, got ndarray."),
        (
            torch.zeros(1, 3, 4, 4, dtype=torch.uint8),
            "pixel_values must be a floating point tensor of decoder outputs, got dtype torch.uint8.",
        ),
        (torch.zeros(1, 2, 4, 4), "pixel_values has 2 channels; PIL output needs 1 (grayscale) or 3 (RGB)."),
    ],
    ids=["empty_batch", "zero_size", "numpy", "integer", "channels"],
)
def test_postprocess_rejects_bad_shapes_and_types(images, message):
    with raises(message):
        VQGANImageProcessor().postprocess(images)
