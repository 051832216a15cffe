#!/usr/bin/env python
"""How much the resize to 299 x 299 moves the standard FID's Inception features, on real Fashion-MNIST images.

    python benchmarks/fid_resizing.py --num_images 8

The network is the same everywhere (TF-FID Inception weights); what differs is the resize before it:
- torchmetrics' default (`antialias=True`): `F.interpolate(bilinear, align_corners=False, antialias=True)`;
- pytorch-fid: `F.interpolate(bilinear, align_corners=False)` without antialiasing, on float pixels (for upsampling
  this is torchmetrics' default: antialiasing only widens the kernel when downsampling);
- torch-fidelity / the original TensorFlow FID (`antialias=False` here): TensorFlow 1's `resize_bilinear`
  (no half-pixel centres), reimplemented by torch-fidelity.
Prints the largest pixel difference between the two `F.interpolate` resizes, and the relative difference of the
2048-d features between torchmetrics' default and (a) the TF1 resize, (b) the same resize rounded to uint8 (what
resizing images and saving them as PNGs before computing FID does).
Needs the "fid-inception" file (`python -m taming_hf.utils.offline_weights`).
"""

import argparse

import torch
import torch.nn.functional as F

from taming_hf.evaluation import fid_uint8_images, standard_fid
from taming_hf.training.data import load_labeled_images


def parse_args(input_args=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num_images", type=int, default=8, help="First N Fashion-MNIST test images.")
    return parser.parse_args(input_args)


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean over images of |a - b| / |b| (feature vectors (N, 2048))."""
    return ((a - b).norm(dim=1) / b.norm(dim=1)).mean().item()


@torch.no_grad()
def main(args: argparse.Namespace) -> None:
    images, _, _ = load_labeled_images("fashion_mnist", "test", max_samples=args.num_images)
    pixels = fid_uint8_images(images)  # (N, 3, 28, 28) uint8
    antialiased = standard_fid().inception  # torchmetrics' default
    tensorflow = standard_fid(antialias=False).inception  # torch-fidelity's TF1 bilinear
    upsampled = {
        "antialias": F.interpolate(pixels.float(), size=(299, 299), mode="bilinear", antialias=True),
        "plain": F.interpolate(pixels.float(), size=(299, 299), mode="bilinear"),
    }
    print(f"{len(pixels)} images, 28 -> 299 px")
    print(
        f"max |antialiased - plain bilinear| pixel difference: {(upsampled['antialias'] - upsampled['plain']).abs().max():.3g}"
    )
    features_aa = antialiased(pixels)
    features_tf = tensorflow(pixels)
    print(
        f"features, torchmetrics default vs TF1 bilinear (torch-fidelity, original FID): {relative(features_aa, features_tf):.2%}"
    )
    # Resized first and stored as uint8 at 299 px (as when resized images are saved as PNGs): the extractor's own
    # resize is then the identity, and the rounding is the only difference.
    rounded = upsampled["antialias"].round().clamp(0, 255).to(torch.uint8)
    features_rounded = antialiased(rounded)
    print(
        f"features, torchmetrics default vs its resize rounded to uint8: {relative(features_aa, features_rounded):.2%}"
    )


if __name__ == "__main__":
    main(parse_args())
