"""Random cutouts of the decoded image, augmented, at CLIP's input size: what CLIP scores each step.

Scoring many random crops instead of the whole image makes the text loss hold at every scale and place,
and the augmentations keep the optimisation from fitting CLIP with adversarial pixel patterns.
Augmentations are torchvision's `transforms.v2` on tensors (kornia is not a dependency); each kernel
used here is differentiable with respect to the image. Perspective and affine warps use `fill=None`:
their filled path edits autograd views in place, and grid sampling's zero padding gives the same black
border. Hue jitter is left out for the same reason (its RGB->HSV conversion is in place).
"""

from typing import Callable, Optional

import torch
import torch.nn.functional as F


def default_augmentations() -> Callable[[torch.Tensor], torch.Tensor]:
    """Random flips, affine and perspective warps and colour jitter, as the best-known VQGAN+CLIP scripts use."""
    from torchvision.transforms import v2  # imported here: torchvision is needed only for the default augmentations

    return v2.Compose(
        [
            v2.RandomHorizontalFlip(p=0.5),
            v2.RandomAffine(degrees=15, translate=(0.1, 0.1), scale=(0.9, 1.1), fill=None),
            v2.RandomPerspective(distortion_scale=0.2, p=0.5, fill=None),
            v2.ColorJitter(brightness=0.1, contrast=0.1, saturation=0.1),
        ]
    )


class MakeCutouts:
    """
    Cut `cutn` random square crops out of `(B, 3, H, W)` images in [0, 1] and resize them to `cut_size`.

    Crop sides are `min_side + (max_side - min_side) * u ** cut_pow` with `u ~ U(0, 1)`, `max_side =
    min(H, W)` and `min_side = min(H, W, cut_size)`: `cut_pow > 1` favours small crops (detail), `< 1`
    large ones (composition). Each crop is resized with antialiased bilinear interpolation (smooth
    gradients, unlike nearest or max pooling), then augmented with its own random draw.

    Args:
        cut_size (`int`): side of CLIP's input images.
        cutn (`int`): number of crops per image.
        cut_pow (`float`): exponent of the crop-size distribution.
        augmentations (`Callable`, *optional*): applied to each `(3, cut_size, cut_size)` crop; `None` means
            [`default_augmentations`]; `torch.nn.Identity()` turns them off.
    """

    def __init__(self, cut_size: int, cutn: int, cut_pow: float = 1.0, augmentations: Optional[Callable] = None):
        self.cut_size = cut_size
        self.cutn = cutn
        self.cut_pow = cut_pow
        self.augmentations = default_augmentations() if augmentations is None else augmentations

    def __call__(self, images: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """
        `(B, 3, H, W)` images in [0, 1] -> `(cutn * B, 3, cut_size, cut_size)` crops, cutout-major: row
        `i * B + b` is cutout `i` of image `b`. Sizes and offsets come from `generator` (on the CPU); the
        augmentations draw from the global RNG, which the pipeline seeds from `generator`.
        """
        height, width = images.shape[-2:]
        max_side = min(height, width)
        min_side = min(height, width, self.cut_size)
        draws = torch.rand(self.cutn, 3, generator=generator)
        crops = []
        for size_draw, top_draw, left_draw in draws.tolist():
            side = int(min_side + (max_side - min_side) * size_draw**self.cut_pow)
            top = int(top_draw * (height - side + 1))
            left = int(left_draw * (width - side + 1))
            crop = images[:, :, top : top + side, left : left + side]
            crop = F.interpolate(crop, size=(self.cut_size, self.cut_size), mode="bilinear", antialias=True)
            crops.append(torch.stack([self.augmentations(image) for image in crop]))
        return torch.cat(crops)
