#!/usr/bin/env python
"""Sample a PNG grid of class-conditional images from a TamingPipeline folder (or Hub id), offline.

One row per class, `--num_images_per_class` columns. With no argument it samples the shipped
Fashion-MNIST pipeline (pretrained/taming-fashion-mnist) at its recommended settings (top_k 32, guidance 2.0,
from its transformer's generation_config; sampling flags override them) and writes samples.png:

    python scripts/sample.py
    python scripts/sample.py --pipeline pretrained/taming-fashion-mnist \
        --class_labels Sneaker Bag 0 --num_images_per_class 8 --seed 0 --output samples.png

Class labels are ids or names from the pipeline's `id2label`; by default every class is sampled.
Unconditional pipelines take `--num_images_per_class` images in a single row.
"""

import argparse
import logging
import os
from pathlib import Path
from typing import List, Optional

import PIL.Image
import torch

from taming_hf import TamingPipeline
from taming_hf.pipelines.taming.sampling import check_sampling_arguments
from taming_hf.utils.image_grid import image_grid
from taming_hf.utils.loading import missing_local_path_message

logger = logging.getLogger(__name__)

# The pipeline shipped with the repository, found from the script's location so any working directory works.
DEFAULT_PIPELINE = str(Path(__file__).resolve().parents[1] / "pretrained" / "taming-fashion-mnist")


def parse_args(input_args=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pipeline", type=str, default=DEFAULT_PIPELINE, help="TamingPipeline folder or Hub id.")
    parser.add_argument(
        "--class_labels", type=str, nargs="+", default=None, help="Class ids or names (default: all classes)."
    )
    parser.add_argument(
        "--num_images_per_class",
        type=int,
        default=10,
        help="Images per class, one grid column each (unconditional pipelines: images in the one row).",
    )
    parser.add_argument("--seed", type=int, default=0, help="Seeds the sampling generator.")
    # Unset sampling flags take the pipeline's own recommended settings (its transformer's generation_config).
    model_default = "default: the pipeline's own"
    parser.add_argument(
        "--top_k", type=int, default=None, help=f"Keep the k most likely codes (0 = no top-k; {model_default})."
    )
    parser.add_argument("--top_p", type=float, default=None, help=f"Nucleus sampling threshold ({model_default}).")
    parser.add_argument("--temperature", type=float, default=None, help=f"Logit temperature ({model_default}).")
    parser.add_argument(
        "--guidance_scale", type=float, default=None, help=f"Classifier-free guidance (1 = off; {model_default})."
    )
    parser.add_argument("--scale", type=int, default=2, help="Upscale the grid by this integer factor (nearest).")
    parser.add_argument("--padding", type=int, default=2, help="Pixels between images.")
    parser.add_argument("--device", type=str, default=None, help="Default: cuda when available, else cpu.")
    parser.add_argument(
        "--output",
        type=str,
        default="samples.png",
        help="The grid image file (its folder must exist; the extension gives the format).",
    )
    args = parser.parse_args(input_args)
    check_args(parser, args)
    return args


def check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Reject values that would only fail deep inside sampling or grid making (`parser.error` exits)."""
    if args.num_images_per_class < 1:
        parser.error(f"--num_images_per_class must be a positive integer, got {args.num_images_per_class}.")
    if args.scale < 1:
        parser.error(f"--scale must be an integer >= 1, got {args.scale}.")
    if args.padding < 0:
        parser.error(f"--padding must be an integer >= 0, got {args.padding}.")
    try:  # the pipeline's own rules, checked before the pipeline loads
        check_sampling_arguments(args.top_k, args.top_p, args.temperature, args.guidance_scale)
    except ValueError as error:
        parser.error(f"--{error}")
    message = missing_local_path_message(args.pipeline, "--pipeline")
    if message is not None:
        parser.error(message)
    folder = os.path.dirname(os.path.abspath(args.output))
    if not os.path.isdir(folder):
        parser.error(f"--output {args.output}: the folder {folder} does not exist; create it first.")


def resolve_class_labels(pipe: TamingPipeline, labels: Optional[List[str]]) -> List[int]:
    """Ids or names -> ids; None -> every class of the pipeline."""
    if labels is None:
        return list(range(pipe.config.num_condition_tokens))
    ids = []
    for label in labels:
        ids.append(int(label) if label.lstrip("-").isdigit() else pipe.get_label_ids(label)[0])
    return ids


def sample_grid(pipe: TamingPipeline, args: argparse.Namespace) -> PIL.Image.Image:
    generator = torch.Generator().manual_seed(args.seed)
    kwargs = dict(
        top_k=args.top_k,
        top_p=args.top_p,
        temperature=args.temperature,
        guidance_scale=args.guidance_scale,
        generator=generator,
        output_type="pil",
    )
    if pipe.config.conditioning == "class":
        class_ids = resolve_class_labels(pipe, args.class_labels)
        images = pipe(class_labels=class_ids, num_images_per_prompt=args.num_images_per_class, **kwargs).images
    else:
        images = pipe(batch_size=args.num_images_per_class, **kwargs).images
    return image_grid(images, args.num_images_per_class, args.padding, args.scale)


def main(args: argparse.Namespace) -> None:
    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", level=logging.INFO)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    pipe = TamingPipeline.from_pretrained(args.pipeline).to(device)
    pipe.set_progress_bar_config(disable=True)
    grid = sample_grid(pipe, args)
    grid.save(args.output)
    logger.info(f"Wrote {os.path.abspath(args.output)} ({grid.width}x{grid.height})")


if __name__ == "__main__":
    main(parse_args())
