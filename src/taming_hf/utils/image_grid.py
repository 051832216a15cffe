"""One image grid for every sample and reconstruction sheet the scripts and trainers write."""

import math
from typing import Sequence

import PIL.Image


def image_grid(images: Sequence[PIL.Image.Image], columns: int, padding: int = 0, scale: int = 1) -> PIL.Image.Image:
    """
    Paste equally sized images row by row into one image of the first image's mode (a grayscale sheet stays "L").

    Unlike diffusers' `make_image_grid`, which needs exactly rows x columns images and converts to RGB, the last
    row may be short, and `padding` black pixels surround and separate the images.

    Args:
        images: the images, all of one size.
        columns: images per row.
        padding: black pixels around and between the images.
        scale: the finished grid is enlarged this many times (nearest neighbour, so pixels stay sharp).
    """
    if len(images) == 0:
        raise ValueError("image_grid needs at least one image.")
    if columns < 1 or padding < 0 or scale < 1:
        raise ValueError(
            f"image_grid needs columns >= 1, padding >= 0 and scale >= 1, got {columns}, {padding}, {scale}."
        )
    sizes = sorted({image.size for image in images})
    if len(sizes) > 1:
        raise ValueError(f"image_grid needs images of one size, got (width, height) sizes {sizes}.")
    (width, height), rows = sizes[0], math.ceil(len(images) / columns)
    grid = PIL.Image.new(
        images[0].mode, (columns * width + (columns + 1) * padding, rows * height + (rows + 1) * padding)
    )
    for position, image in enumerate(images):
        row, column = divmod(position, columns)
        grid.paste(image, (padding + column * (width + padding), padding + row * (height + padding)))
    if scale > 1:
        grid = grid.resize((grid.width * scale, grid.height * scale), PIL.Image.NEAREST)
    return grid
