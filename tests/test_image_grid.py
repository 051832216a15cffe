"""`taming_hf.utils.image_grid`: the one grid of the sample and reconstruction sheets."""

import re

import PIL.Image
import pytest

from taming_hf.utils.image_grid import image_grid


def gray(count: int, size=(4, 3)):
    return [PIL.Image.new("L", size, color=40 * (i + 1)) for i in range(count)]


def test_rows_fill_left_to_right_and_the_last_row_may_be_short():
    grid = image_grid(gray(5), columns=2)
    assert grid.size == (8, 9) and grid.mode == "L"
    assert grid.getpixel((0, 0)) == 40 and grid.getpixel((5, 1)) == 80 and grid.getpixel((0, 7)) == 200
    assert grid.getpixel((5, 7)) == 0  # the empty cell stays black


def test_padding_surrounds_and_separates_and_scale_enlarges():
    grid = image_grid(gray(2), columns=2, padding=2)
    assert grid.size == (2 * 4 + 3 * 2, 3 + 2 * 2)
    assert [grid.getpixel((x, 3)) for x in (0, 1, 2, 5, 6, 7, 8, 11, 12)] == [0, 0, 40, 40, 0, 0, 80, 80, 0]
    scaled = image_grid(gray(2), columns=2, padding=2, scale=3)
    assert scaled.size == (3 * 14, 3 * 7) and scaled.getpixel((3 * 2, 3 * 3)) == 40


def test_rgb_images_stay_rgb():
    grid = image_grid([PIL.Image.new("RGB", (2, 2), (200, 10, 10))] * 3, columns=3, padding=1)
    assert grid.mode == "RGB" and grid.getpixel((1, 1)) == (200, 10, 10) and grid.getpixel((0, 0)) == (0, 0, 0)


@pytest.mark.parametrize(
    "images, kwargs, message",
    [
        ([], {"columns": 2}, "image_grid needs at least one image."),
        (gray(2), {"columns": 0}, "image_grid needs columns >= 1, padding >= 0 and scale >= 1, got 0, 0, 1."),
        (
            gray(2),
            {"columns": 2, "scale": 0},
            "image_grid needs columns >= 1, padding >= 0 and scale >= 1, got 2, 0, 0.",
        ),
        (
            gray(1) + gray(1, size=(5, 3)),
            {"columns": 2},
            "image_grid needs images of one size, got (width, height) sizes [(4, 3), (5, 3)].",
        ),
    ],
)
def test_bad_arguments_name_the_value(images, kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        image_grid(images, **kwargs)
