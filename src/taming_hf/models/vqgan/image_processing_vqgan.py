"""Image processor for the VQGAN: PIL / numpy images to `pixel_values` in [-1, 1] and back."""

from typing import List, Union

import numpy as np
import PIL.Image
import torch
from transformers.image_processing_backends import PilBackend
from transformers.image_utils import PILImageResampling
from transformers.processing_utils import ImagesKwargs, Unpack


class VQGANImageProcessorKwargs(ImagesKwargs, total=False):
    """
    num_channels (`int`, *optional*, defaults to 3):
        1 converts every image to grayscale, 3 to RGB (the VQGAN's `in_channels`).
    """

    num_channels: int


class VQGANImageProcessor(PilBackend):
    r"""
    Prepares images for [`VQGANModel`] as the original data pipeline does: resize the shortest
    side to `size["shortest_edge"]`, center-crop to `crop_size`, then scale uint8 values to
    [-1, 1] with `x / 127.5 - 1`, channels first.

    `postprocess` maps decoder outputs back with `(x + 1) * 127.5`, clipped to [0, 255].
    """

    valid_kwargs = VQGANImageProcessorKwargs
    model_input_names = ["pixel_values"]
    resample = PILImageResampling.BICUBIC
    size = {"shortest_edge": 256}
    default_to_square = False
    crop_size = {"height": 256, "width": 256}
    do_resize = True
    do_center_crop = True
    do_rescale = True
    rescale_factor = 1 / 127.5
    do_normalize = True  # subtracting 1 after the rescale: mean 1, std 1
    image_mean = [1.0, 1.0, 1.0]
    image_std = [1.0, 1.0, 1.0]
    do_convert_rgb = False
    num_channels = 3

    def __init__(self, **kwargs: Unpack[VQGANImageProcessorKwargs]):
        num_channels = kwargs.get("num_channels", self.num_channels)
        if num_channels not in (1, 3):
            raise ValueError(f"num_channels must be 1 (grayscale) or 3 (RGB), got {num_channels}.")
        kwargs.setdefault("image_mean", [1.0] * num_channels)
        kwargs.setdefault("image_std", [1.0] * num_channels)
        resolution = kwargs.pop("resolution", None)
        if resolution is not None:
            kwargs.setdefault("size", {"shortest_edge": resolution})
            kwargs.setdefault("crop_size", {"height": resolution, "width": resolution})
        super().__init__(**kwargs)

    def process_image(self, image, num_channels: int = None, **kwargs) -> np.ndarray:
        num_channels = self.num_channels if num_channels is None else num_channels
        if isinstance(image, PIL.Image.Image):
            image = image.convert("L" if num_channels == 1 else "RGB")
        array = super().process_image(image, **kwargs)
        if array.shape[0] != num_channels:
            raise ValueError(
                f"Image has {array.shape[0]} channels after conversion, expected {num_channels}; pass PIL "
                "images (converted automatically) or arrays with the right channel count."
            )
        return array

    def postprocess(
        self, pixel_values: torch.Tensor, output_type: str = "pil"
    ) -> Union[List[PIL.Image.Image], np.ndarray, torch.Tensor]:
        """
        Args:
            pixel_values (`torch.Tensor` of shape `(batch_size, channels, height, width)`):
                Decoder output, nominally in [-1, 1].
            output_type (`str`, *optional*, defaults to `"pil"`):
                `"pil"` (list of images), `"np"` (float array in [0, 1], channels last) or
                `"pt"` (float tensor in [0, 1], channels first).
        """
        if output_type not in ("pil", "np", "pt"):
            raise ValueError(f"output_type must be one of 'pil', 'np', 'pt', got {output_type!r}.")
        if pixel_values.ndim != 4:
            raise ValueError(
                f"pixel_values must have shape (batch, channels, height, width), got {tuple(pixel_values.shape)}."
            )
        images = ((pixel_values.detach().float().cpu() + 1.0) / 2.0).clamp(0.0, 1.0)
        if output_type == "pt":
            return images
        array = images.permute(0, 2, 3, 1).numpy()
        if output_type == "np":
            return array
        uint8 = (array * 255.0).round().astype(np.uint8)
        if uint8.shape[-1] == 1:
            return [PIL.Image.fromarray(image[..., 0], mode="L") for image in uint8]
        return [PIL.Image.fromarray(image) for image in uint8]
