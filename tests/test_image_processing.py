import re

import numpy as np
import PIL.Image
import pytest
import torch
from transformers import AutoImageProcessor

from taming_hf import VQGANImageProcessor


def gradient_image(width: int, height: int, mode: str = "RGB") -> PIL.Image.Image:
    x = np.linspace(0, 255, width, dtype=np.float64)[None, :].repeat(height, 0)
    array = np.stack([x, x[::-1, ::-1], np.full_like(x, 128)], -1).astype(np.uint8)
    return PIL.Image.fromarray(array).convert(mode)


def test_resizes_shortest_side_center_crops_and_scales_to_unit_range():
    processor = VQGANImageProcessor(resolution=32)
    pixel_values = processor(gradient_image(64, 40), return_tensors="pt").pixel_values
    assert pixel_values.shape == (1, 3, 32, 32)
    assert pixel_values.dtype == torch.float32
    assert -1.0 <= pixel_values.min() and pixel_values.max() <= 1.0
    # The constant channel (128) maps to 128 / 127.5 - 1.
    torch.testing.assert_close(pixel_values[0, 2], torch.full((32, 32), 128 / 127.5 - 1))


def test_scaling_matches_the_original_formula_without_resizing():
    array = np.random.default_rng(0).integers(0, 256, (8, 12, 3), dtype=np.uint8)
    processor = VQGANImageProcessor(do_resize=False, do_center_crop=False)
    pixel_values = processor(array, return_tensors="pt").pixel_values
    expected = torch.from_numpy(array).permute(2, 0, 1).float() / 127.5 - 1
    torch.testing.assert_close(pixel_values[0], expected)


def test_every_scaling_to_the_pixel_range_is_to_pixel_values_bit_for_bit():
    """The processor, the training transform, the labelled-split loader and the pipelines all scale with
    `to_pixel_values`, or (the processor) compute exactly what it computes, for all 256 levels."""
    from taming_hf.models.vqgan.image_processing_vqgan import to_pixel_values, to_unit_range
    from taming_hf.pipelines.image_inputs import pil_to_tensor
    from taming_hf.training import ImageTransform

    levels = np.arange(256, dtype=np.uint8).reshape(16, 16)
    image = PIL.Image.fromarray(levels, mode="L")
    expected = to_pixel_values(torch.from_numpy(levels))
    assert expected.dtype == torch.float32 and expected.min() == -1 and expected.max() == 1
    assert torch.equal(expected, torch.from_numpy(levels).float() / 127.5 - 1)
    processor = VQGANImageProcessor(do_resize=False, do_center_crop=False, num_channels=1)
    assert torch.equal(processor(image, return_tensors="pt").pixel_values[0, 0], expected)
    assert torch.equal(ImageTransform(resolution=16, num_channels=1)(image)[0], expected)
    assert torch.equal(to_pixel_values(pil_to_tensor([image], "L"))[0, 0], expected)
    torch.testing.assert_close(to_unit_range(expected), torch.from_numpy(levels).float() / 255, rtol=0, atol=1e-7)
    assert to_unit_range(torch.tensor([-3.0, 3.0])).tolist() == [0.0, 1.0]


def test_grayscale_conversion():
    processor = VQGANImageProcessor(resolution=16, num_channels=1)
    pixel_values = processor([gradient_image(20, 16), gradient_image(16, 16, "L")], return_tensors="pt").pixel_values
    assert pixel_values.shape == (2, 1, 16, 16)


def test_postprocess_inverts_preprocessing():
    array = np.random.default_rng(1).integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)
    processor = VQGANImageProcessor(do_resize=False, do_center_crop=False)
    pixel_values = processor(list(array), return_tensors="pt").pixel_values
    images = processor.postprocess(pixel_values, output_type="pil")
    assert [image.size for image in images] == [(16, 16), (16, 16)]
    assert np.array_equal(np.stack([np.asarray(i) for i in images]), array)
    as_numpy = processor.postprocess(pixel_values, output_type="np")
    assert as_numpy.shape == (2, 16, 16, 3) and 0 <= as_numpy.min() and as_numpy.max() <= 1
    as_tensor = processor.postprocess(pixel_values * 3, output_type="pt")  # unbounded decoder output is clipped
    assert as_tensor.shape == (2, 3, 16, 16) and as_tensor.min() == 0 and as_tensor.max() == 1


def test_postprocess_grayscale_gives_mode_l_images():
    images = VQGANImageProcessor(num_channels=1).postprocess(torch.zeros(1, 1, 4, 4))
    assert images[0].mode == "L" and np.asarray(images[0])[0, 0] == 128


def test_save_and_auto_load(tmp_path):
    processor = VQGANImageProcessor(resolution=64, num_channels=1)
    processor.save_pretrained(tmp_path)
    loaded = AutoImageProcessor.from_pretrained(tmp_path)
    assert isinstance(loaded, VQGANImageProcessor)
    assert loaded.crop_size == {"height": 64, "width": 64} and loaded.num_channels == 1


def test_errors_name_the_bad_value():
    with pytest.raises(ValueError, match=re.escape("num_channels must be 1 (grayscale) or 3 (RGB), got 2.")):
        VQGANImageProcessor(num_channels=2)
    with pytest.raises(ValueError, match=re.escape("output_type must be one of 'pil', 'np', 'pt', got 'jpg'.")):
        VQGANImageProcessor().postprocess(torch.zeros(1, 3, 4, 4), output_type="jpg")
    with pytest.raises(ValueError, match=re.escape("Image has 3 channels after conversion, expected 1")):
        VQGANImageProcessor(num_channels=1, do_resize=False, do_center_crop=False)(
            np.zeros((3, 8, 8), dtype=np.uint8), return_tensors="pt"
        )
