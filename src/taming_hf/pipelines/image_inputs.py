"""Image arguments of both pipelines: a PIL image, a list of them, or a `(batch, channels, height, width)` tensor.

`check_image` runs before any work (type, channels, size, finite values) with one set of error messages for
`TamingPipeline` and `VQGANCLIPPipeline`; `pil_to_tensor` stacks PIL images into one batch on the 0-255 scale,
which `to_pixel_values` (the VQGAN's image processor) then maps to [-1, 1].
"""

from typing import List, Sequence, Tuple, Union

import numpy as np
import PIL.Image
import torch

ImageInput = Union[torch.Tensor, PIL.Image.Image, List[PIL.Image.Image]]


def pil_to_tensor(images: Sequence[PIL.Image.Image], mode: str) -> torch.Tensor:
    """Equally sized PIL images, converted to `mode` ("L" or "RGB") -> a `(B, C, H, W)` float32 tensor of their
    0-255 values."""
    arrays = [np.asarray(image.convert(mode), dtype=np.float32) for image in images]
    arrays = [array[..., None] if array.ndim == 2 else array for array in arrays]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)


def check_image(image: ImageInput, channels: int, name: str, coordinates: bool = False) -> Tuple[int, int, int]:
    """
    Check an image argument and return its `(batch, height, width)`; raise a `ValueError` naming `name` otherwise.

    PIL images (any mode: they are converted) must all have one size; a tensor must be 4-D with `channels`
    channels, floating point and finite (pixel values in [-1, 1], or with `coordinates` values in [0, 1], which is
    checked too). Every check reads only shapes, except the finite / range checks: one host sync per call.
    """
    expected = f"{name} must be a PIL image or a (batch, channels, height, width) tensor"
    if isinstance(image, PIL.Image.Image):
        image = [image]
    if isinstance(image, (list, tuple)):
        bad = [type(item).__name__ for item in image if not isinstance(item, PIL.Image.Image)]
        if bad:
            raise ValueError(f"{expected}, got a list holding {bad[0]}.")
        sizes = sorted({item.size for item in image})
        if len(sizes) > 1:
            raise ValueError(f"{name}'s PIL images must all have the same size, got (width, height) sizes {sizes}.")
        batch, (width, height) = len(image), sizes[0] if sizes else (0, 0)
        shape = f"{batch} PIL images of {width}x{height} pixels"
    elif isinstance(image, torch.Tensor) and image.ndim == 4:
        if image.shape[1] != channels:
            expects = "coordinate conditioning expects" if coordinates else "its VQGAN expects"
            raise ValueError(f"{name} has {image.shape[1]} channels, but {expects} {channels}.")
        batch, _, height, width = image.shape
        shape = f"shape {tuple(image.shape)}"
    else:
        shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise ValueError(f"{expected}, got {shape}.")
    if batch == 0 or height == 0 or width == 0:
        raise ValueError(f"{name} must hold at least one image of positive height and width, got {shape}.")
    if isinstance(image, torch.Tensor):
        _check_tensor_values(image, name, coordinates)
    return batch, height, width


def _check_tensor_values(image: torch.Tensor, name: str, coordinates: bool) -> None:
    expected_values = "coordinates in [0, 1]" if coordinates else "pixel values in [-1, 1]"
    if not image.is_floating_point():  # uint8 pixels would pass as values up to 255
        raise ValueError(
            f"{name} must be a floating point tensor of {expected_values}, got dtype {image.dtype}; pass PIL "
            "images, or scale uint8 pixels with x / 127.5 - 1 (x / 255 for coordinates)."
        )
    non_finite = (~torch.isfinite(image)).sum().item()  # one host sync, at the call's boundary only
    if non_finite:
        raise ValueError(
            f"{name} holds {non_finite} NaN or infinite value(s) of {image.numel()}; expected finite {expected_values}."
        )
    if coordinates:
        low, high = image.min().item(), image.max().item()
        if not (low >= 0.0 and high <= 1.0):
            raise ValueError(
                f"condition_image must hold coordinates in [0, 1], got values in [{low:.4g}, {high:.4g}]."
            )
