#!/usr/bin/env python
"""Colour fidelity of emoji VQGANs by hue: does green come back green?

    python benchmarks/emoji_colours.py --vqgan pretrained/emoji-vqgan OTHER_VQGAN [--split test]

Every image of the split is binned by the dominant hue of its saturated pixels (HSV saturation > 80 and value > 60
on the 0-255 scale), in six 60-degree bins from red. Per bin and model it prints the image count, PSNR and the colour
error: the RGB distance (0-255 scale) between the mean colour of those saturated pixels in the image and the mean
of the same pixels in the reconstruction. A model that keeps shapes but shifts a hue (lime coming back brown) shows
a large colour error in that bin whatever its PSNR. The first model is the baseline the others are compared to. A
second table decodes flat colour squares on white, the simplest case of the same question.
"""

import argparse
from typing import Dict, List

import numpy as np
import PIL.Image
import torch
from torchmetrics.functional.image import peak_signal_noise_ratio

from taming_hf import VQGANModel, load_emoji_dataset
from taming_hf.models.vqgan.image_processing_vqgan import to_pixel_values, to_unit_range

HUE_BINS = ("red-orange", "yellow-green", "green", "cyan-blue", "blue-purple", "magenta-pink")
SATURATED, BRIGHT = 80, 60
# Rows: orthonormal opponent-colour axes of RGB (brightness, blue - red, magenta - green).
OPPONENT_AXES = torch.tensor([[1.0, 1.0, 1.0], [-1.0, 0.0, 1.0], [1.0, -2.0, 1.0]]) / torch.tensor(
    [[3.0**0.5], [2.0**0.5], [6.0**0.5]]
)
OPPONENT_NAMES = ("brightness", "blue - red", "magenta - green")
FLAT_COLOURS = {
    "green": (90, 180, 60),
    "lime": (160, 220, 60),
    "purple": (150, 60, 200),
    "pink": (250, 170, 200),
    "blue": (40, 110, 220),
    "yellow": (250, 200, 50),
    "red": (220, 40, 50),
}


def parse_args(input_args=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vqgan", nargs="+", required=True, help="VQGAN folders; the first is the baseline.")
    parser.add_argument("--split", default="test", choices=["train", "test"], help="Emoji split to measure.")
    parser.add_argument("--max_images", type=int, default=None, help="Only the first N images of the split.")
    parser.add_argument("--batch_size", type=int, default=64, help="Images per forward pass.")
    parser.add_argument(
        "--picture",
        default=None,
        help="Also save a PNG here: four images from each of the yellow-green, green, blue-purple and magenta-pink "
        "bins, originals in the first row, then one row per model.",
    )
    return parser.parse_args(input_args)


def saturated_masks_and_bins(images: List[PIL.Image.Image]):
    """(N, 64, 64) bool masks of saturated pixels and (N,) dominant hue bin (-1: no saturated pixel)."""
    masks, bins = [], []
    for image in images:
        hsv = np.asarray(image.convert("HSV")).astype(np.int32)
        mask = (hsv[..., 1] > SATURATED) & (hsv[..., 2] > BRIGHT)
        counts = np.bincount(hsv[..., 0][mask] * len(HUE_BINS) // 256, minlength=len(HUE_BINS))
        masks.append(mask)
        bins.append(int(counts.argmax()) if mask.any() else -1)
    return torch.from_numpy(np.stack(masks)), torch.tensor(bins)


@torch.no_grad()
def reconstruct(model: VQGANModel, pixel_values: torch.Tensor, batch_size: int) -> torch.Tensor:
    chunks = [model(batch).reconstruction for batch in pixel_values.split(batch_size)]
    return torch.cat(chunks).clamp(-1, 1)


def per_image_figures(images: torch.Tensor, reconstructions: torch.Tensor, masks: torch.Tensor) -> Dict:
    """PSNR and colour error (mean colour of the saturated pixels, RGB distance on the 0-255 scale) per image."""
    original, output = to_unit_range(images) * 255, to_unit_range(reconstructions) * 255
    psnr = peak_signal_noise_ratio(output, original, data_range=255.0, reduction="none", dim=(1, 2, 3))
    weights = masks[:, None].float()
    pixels = weights.sum(dim=(2, 3)).clamp_min(1)
    mean_in = (original * weights).sum(dim=(2, 3)) / pixels
    mean_out = (output * weights).sum(dim=(2, 3)) / pixels
    return {"psnr": psnr, "colour_error": (mean_in - mean_out).norm(dim=1)}


def flat_squares() -> torch.Tensor:
    """One 64 x 64 white image per colour of FLAT_COLOURS, with a 32 x 32 square of that colour in the middle."""
    images = torch.ones(len(FLAT_COLOURS), 3, 64, 64)
    for image, colour in zip(images, FLAT_COLOURS.values()):
        image[:, 16:48, 16:48] = to_pixel_values(torch.tensor(colour))[:, None, None]
    return images


@torch.no_grad()
def code_colour_r2(model: VQGANModel, pixel_values: torch.Tensor, batch_size: int) -> List[float]:
    """R^2 on the second half of the images of a linear probe (fitted on the first half) from each code vector to
    its patch's mean colour along OPPONENT_AXES."""
    indices = torch.cat([model.encode(batch).indices for batch in pixel_values.split(batch_size)])
    features = model.get_code_vectors()[indices].flatten(1, 2).double()  # (N, h * w, codebook_dim)
    features = torch.cat([features, torch.ones_like(features[..., :1])], dim=-1)
    factor = model.config.downsample_factor
    opponent = torch.einsum("kc,bchw->bkhw", OPPONENT_AXES, pixel_values.float())
    targets = torch.nn.functional.avg_pool2d(opponent, factor).flatten(2).transpose(1, 2).double()  # (N, h * w, 3)
    half = len(pixel_values) // 2
    fit = torch.linalg.lstsq(features[:half].flatten(0, 1), targets[:half].flatten(0, 1)).solution
    predicted, actual = features[half:].flatten(0, 1) @ fit, targets[half:].flatten(0, 1)
    residual = (predicted - actual).pow(2).sum(dim=0)
    return (1 - residual / (actual - actual.mean(dim=0)).pow(2).sum(dim=0)).tolist()


def reachable_colours(model: VQGANModel, squares: torch.Tensor, steps: int = 200) -> List[List[int]]:
    """Decoded centre colour (0-255) of each flat square after optimising its code-space vectors for L1."""
    model.requires_grad_(False)
    with torch.no_grad():
        vectors = model.get_code_vectors()[model.encode(squares).indices].permute(0, 3, 1, 2).clone()
    vectors.requires_grad_(True)
    optimizer = torch.optim.Adam([vectors], lr=0.05)
    normalize = getattr(model.config, "normalize_codes", False)
    for _ in range(steps):
        decoded = model.decode_code_vectors(torch.nn.functional.normalize(vectors, dim=1) if normalize else vectors)
        loss = (decoded - squares).abs().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    centre = to_unit_range(decoded.detach().clamp(-1, 1))[:, :, 24:40, 24:40].mean(dim=(2, 3))
    return (centre * 255).round().int().tolist()


def save_picture(path: str, images: torch.Tensor, rows: List[torch.Tensor]) -> None:
    """One row of `images`, then one row per tensor of `rows` (all (N, 3, H, W) in [-1, 1]), as a PNG."""
    grid = torch.cat([torch.cat(list(row), dim=2) for row in [images, *rows]], dim=1)
    pixels = (to_unit_range(grid) * 255).round().byte().permute(1, 2, 0).numpy()
    PIL.Image.fromarray(pixels).save(path)


def picture_indices(bins: torch.Tensor, per_bin: int = 4) -> List[int]:
    """Up to `per_bin` images spread over each of the hue bins a warm-dominated tokenizer gets wrong."""
    chosen = []
    for name in ("yellow-green", "green", "blue-purple", "magenta-pink"):
        members = torch.nonzero(bins == HUE_BINS.index(name)).flatten().tolist()
        chosen += members[:: max(1, len(members) // per_bin)][:per_bin]
    return chosen


def main(args: argparse.Namespace) -> None:
    dataset = load_emoji_dataset(args.split)
    if args.max_images is not None:
        dataset = dataset.select(range(min(args.max_images, len(dataset))))
    pil_images = [image.convert("RGB") for image in dataset["image"]]
    masks, bins = saturated_masks_and_bins(pil_images)
    images = to_pixel_values(torch.from_numpy(np.stack([np.asarray(image) for image in pil_images]))).permute(
        0, 3, 1, 2
    )
    squares = flat_squares()
    figures, flat, probes, reached, picture_rows = {}, {}, {}, {}, []
    shown = picture_indices(bins)
    for path in args.vqgan:
        model = VQGANModel.from_pretrained(path).eval()
        reconstructions = reconstruct(model, images, args.batch_size)
        figures[path] = per_image_figures(images, reconstructions, masks)
        picture_rows.append(reconstructions[shown])
        square_out = to_unit_range(reconstruct(model, squares, args.batch_size))[:, :, 24:40, 24:40].mean(dim=(2, 3))
        flat[path] = (square_out * 255).round().int().tolist()
        probes[path] = code_colour_r2(model, images, args.batch_size)
        reached[path] = reachable_colours(model, squares)

    if args.picture:
        save_picture(args.picture, images[shown], picture_rows)
        print(f"saved {args.picture}: " + "; ".join(dataset[i]["text"] for i in shown))
    baseline = args.vqgan[0]
    print(f"emoji {args.split} split, {len(images)} images, binned by dominant hue; colour error: RGB distance of the")
    print("mean saturated colour (0-255), lower is better; in brackets: change vs the first model")
    print("| hue | images | " + " | ".join(f"{path} PSNR / colour error" for path in args.vqgan) + " |")
    print("|---|---|" + "---|" * len(args.vqgan))
    for index, name in [*enumerate(HUE_BINS), (-1, "all")]:
        selected = torch.ones_like(bins, dtype=torch.bool) if index == -1 else bins == index
        if not selected.any():
            continue
        cells = []
        for path in args.vqgan:
            psnr = figures[path]["psnr"][selected].mean().item()
            error = figures[path]["colour_error"][selected & (bins >= 0)].mean().item()
            cell = f"{psnr:.2f} dB / {error:.1f}"
            if path != baseline:
                base_psnr = figures[baseline]["psnr"][selected].mean().item()
                base_error = figures[baseline]["colour_error"][selected & (bins >= 0)].mean().item()
                cell += f" ({psnr - base_psnr:+.2f} dB / {error - base_error:+.1f})"
            cells.append(cell)
        print(f"| {name} | {int(selected.sum())} | " + " | ".join(cells) + " |")

    print("\nflat 32 x 32 squares on white: input colour -> decoded colour at the centre")
    print("| colour | input | " + " | ".join(args.vqgan) + " |")
    print("|---|---|" + "---|" * len(args.vqgan))
    for index, (name, colour) in enumerate(FLAT_COLOURS.items()):
        print(f"| {name} | {colour} | " + " | ".join(str(tuple(flat[path][index])) for path in args.vqgan) + " |")

    print("\nwhat the codes carry: R^2 of a linear probe from code vectors to patch-mean colour (held-out half)")
    print("| colour axis | " + " | ".join(args.vqgan) + " |")
    print("|---|" + "---|" * len(args.vqgan))
    for index, name in enumerate(OPPONENT_NAMES):
        print(f"| {name} | " + " | ".join(f"{probes[path][index]:.2f}" for path in args.vqgan) + " |")

    print("\nwhat the decoder can reach: flat squares decoded from code-space vectors optimised for them")
    print("| colour | input | " + " | ".join(args.vqgan) + " |")
    print("|---|---|" + "---|" * len(args.vqgan))
    for index, (name, colour) in enumerate(FLAT_COLOURS.items()):
        print(f"| {name} | {colour} | " + " | ".join(str(tuple(reached[path][index])) for path in args.vqgan) + " |")


if __name__ == "__main__":
    main(parse_args())
