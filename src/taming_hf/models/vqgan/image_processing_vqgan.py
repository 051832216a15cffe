"""Image processor for the VQGAN: PIL / numpy images to `pixel_values` in [-1, 1] and back."""

from typing import List, Union

import numpy as np
import PIL.Image
import torch
from transformers.image_processing_backends import PilBackend
from transformers.image_utils import PILImageResampling
from transformers.processing_utils import ImagesKwargs, Unpack
from transformers.utils import logging

logger = logging.get_logger(__name__)

# PIL modes holding 16-bit samples: "I;16*" and "I" (32-bit int, which Pillow uses for 16-bit PNGs).
SIXTEEN_BIT_PIL_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
# The VQGAN's pixel range: 8-bit values v become v / 127.5 - 1 in [-1, 1]. The processor applies the same map in
# transformers' rescale + normalize form (rescale_factor 1 / 127.5, then mean 1, std 1).
PIXEL_SCALE = 127.5


def to_pixel_values(values: torch.Tensor) -> torch.Tensor:
    """Pixel values on the 0-255 scale (uint8 or float, any shape) -> float32 `pixel_values` in [-1, 1]
    (`x / 127.5 - 1`, what [`VQGANImageProcessor`] computes): the one place images are scaled for the VQGAN."""
    return values.float() / PIXEL_SCALE - 1.0


def to_unit_range(pixel_values: torch.Tensor) -> torch.Tensor:
    """`pixel_values` in [-1, 1] (any shape; decoder outputs may overshoot) -> float32 in [0, 1], clamped."""
    return ((pixel_values.float() + 1.0) / 2.0).clamp(0.0, 1.0)


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

    Accepted images: PIL images of any mode, numpy arrays and torch tensors of shape (H, W),
    (H, W, C) or (C, H, W). Integer arrays are read on the 0-255 scale, `uint16` arrays and 16-bit
    PIL images (modes "I;16", "I") on the 0-65535 scale, and float arrays, as transformers does, on
    the 0-255 scale (multiply images in [0, 1] by 255). 16-bit images are rounded to 8 bits
    (`x / 257`), the precision the PIL resize works at anyway. One-channel images are repeated to 3
    channels when `num_channels=3`, as PIL's `convert("RGB")` does.
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
    rescale_factor = 1 / PIXEL_SCALE
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

    def _prepare_images_structure(self, images, expected_ndims: int = 3) -> list:
        # transformers' flattening rejects (H, W) arrays; each one is a single grayscale image, which
        # PilBackend.process_image reads as one channel.
        if _is_array(images) and images.ndim == 2:
            images = [images]
        if isinstance(images, (list, tuple)) and any(_is_array(image) and image.ndim == 2 for image in images):
            flat = list(self.fetch_images(images))
        else:
            flat = super()._prepare_images_structure(images, expected_ndims=expected_ndims)
        if len(flat) == 0:
            what = f"an empty batch (shape {tuple(images.shape)})" if _is_array(images) else "an empty list"
            raise ValueError(f"images is {what}; expected at least one image.")
        return flat

    def process_image(self, image, num_channels: int = None, **kwargs) -> np.ndarray:
        num_channels = self.num_channels if num_channels is None else num_channels
        if num_channels not in (1, 3):
            raise ValueError(f"num_channels must be 1 (grayscale) or 3 (RGB), got {num_channels}.")
        if isinstance(image, PIL.Image.Image):
            if image.width == 0 or image.height == 0:
                raise ValueError(
                    f"image has no pixels (PIL image of size {image.width}x{image.height}); expected an image of "
                    "at least 1x1 pixels."
                )
            if image.mode in SIXTEEN_BIT_PIL_MODES:
                image = PIL.Image.fromarray(_to_8_bit(np.asarray(image), f"PIL image of mode {image.mode!r}"))
            image = image.convert("L" if num_channels == 1 else "RGB")
        elif _is_array(image):
            image = _array_on_8_bit_scale(image, for_resize=bool(kwargs.get("do_resize")))
        array = super().process_image(image, **kwargs)
        if array.shape[0] == 1 and num_channels == 3:
            array = np.repeat(array, 3, axis=0)  # gray -> RGB, as PIL's convert("RGB")
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
        if not isinstance(pixel_values, torch.Tensor):
            raise ValueError(f"pixel_values must be a torch.Tensor, got {type(pixel_values).__name__}.")
        if not pixel_values.is_floating_point():
            raise ValueError(
                f"pixel_values must be a floating point tensor of decoder outputs, got dtype {pixel_values.dtype}."
            )
        shape = tuple(pixel_values.shape)
        if pixel_values.ndim != 4:
            raise ValueError(f"pixel_values must have shape (batch, channels, height, width), got {shape}.")
        if shape[0] == 0:
            raise ValueError(f"pixel_values has an empty batch (shape {shape}); expected at least one image.")
        if shape[2] == 0 or shape[3] == 0:
            raise ValueError(
                f"pixel_values has zero height or width (shape {shape}); expected images of at least 1x1 pixels."
            )
        if output_type == "pil" and shape[1] not in (1, 3):
            raise ValueError(f"pixel_values has {shape[1]} channels; PIL output needs 1 (grayscale) or 3 (RGB).")
        images = pixel_values.detach().float().cpu()  # the copy to the host syncs anyway
        non_finite = int((~torch.isfinite(images)).sum())
        if non_finite:
            raise ValueError(
                f"pixel_values contains {non_finite} non-finite values (NaN or inf); expected finite decoder "
                "outputs, nominally in [-1, 1]."
            )
        images = to_unit_range(images)
        if output_type == "pt":
            return images
        array = images.permute(0, 2, 3, 1).numpy()
        if output_type == "np":
            return array
        uint8 = (array * 255.0).round().astype(np.uint8)
        if uint8.shape[-1] == 1:
            return [PIL.Image.fromarray(image[..., 0], mode="L") for image in uint8]
        return [PIL.Image.fromarray(image) for image in uint8]


def _is_array(image) -> bool:
    return isinstance(image, (np.ndarray, torch.Tensor))


def _to_8_bit(samples: np.ndarray, description: str) -> np.ndarray:
    """16-bit samples in [0, 65535] -> uint8 on the 0-255 scale (65535 / 257 = 255)."""
    low, high = int(samples.min()), int(samples.max())
    if low < 0 or high > 65535:
        raise ValueError(f"{description} has values in [{low}, {high}]; expected 16-bit values in [0, 65535].")
    return np.round(samples / 257.0).astype(np.uint8)


def _array_on_8_bit_scale(image: Union[np.ndarray, torch.Tensor], for_resize: bool) -> np.ndarray:
    """Check an image array and bring it to the 0-255 scale the processor's rescale expects."""
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu()
        image = (image.float() if image.dtype == torch.bfloat16 else image).numpy()
    if image.size == 0:
        raise ValueError(
            f"image has no pixels (array of shape {image.shape}); expected an image of at least 1x1 pixels."
        )
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.uint16:
        return _to_8_bit(image, "uint16 image")
    if image.dtype.kind in "ui":
        low, high = int(image.min()), int(image.max())
        if low < 0 or high > 255:
            raise ValueError(
                f"image of dtype {image.dtype} has values in [{low}, {high}]; expected 8-bit values in [0, 255] "
                "(pass 16-bit images as uint16 arrays)."
            )
        return image
    if image.dtype.kind != "f":
        raise ValueError(
            f"image arrays of dtype {image.dtype} are not supported; expected uint8 (0-255), uint16 (0-65535) or "
            "float (0-255) values."
        )
    non_finite = int((~np.isfinite(image)).sum())
    if non_finite:
        raise ValueError(
            f"image contains {non_finite} non-finite values (NaN or inf); expected finite pixel values in [0, 255]."
        )
    low, high = float(image.min()), float(image.max())
    if low < 0 or high > 255:
        raise ValueError(
            f"float image has values in [{low:g}, {high:g}]; expected values in [0, 255] (float images are read on "
            "the 0-255 scale, as transformers does)."
        )
    if high <= 1:
        logger.warning_once(
            "A float image has all its values in [0, 1], but float images are read on the 0-255 scale, as "
            "transformers does; multiply images scaled to [0, 1] by 255."
        )
    # PIL resizes 8-bit images, and transformers' conversion to PIL rejects fractional values above 1.
    return np.round(image).astype(np.uint8) if for_resize else image
