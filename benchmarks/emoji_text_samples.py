"""
Sample grid of a text-to-image pipeline for emoji captions: one row per caption (drawn seeded among the split's
distinct captions), the real emoji first, then `--num_images_per_prompt` samples, the caption written on the left.

    PYTHONPATH=src python benchmarks/emoji_text_samples.py --pipeline pretrained/taming-emoji-text \
        --split test --num_prompts 8 --output docs/images/emoji_text_test.png
"""

import argparse

import numpy as np
import torch
from PIL import Image, ImageDraw

from taming_hf import load_emoji_dataset
from taming_hf.evaluation.clip_retrieval import draw_distinct_captions
from taming_hf.pipelines import TamingPipeline

LABEL_WIDTH = 250


def parse_args(input_args=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pipeline", type=str, required=True, help="A text-conditional TamingPipeline folder.")
    parser.add_argument("--split", type=str, default="train", choices=("train", "test"))
    parser.add_argument("--num_prompts", type=int, default=8)
    parser.add_argument("--num_images_per_prompt", type=int, default=6)
    parser.add_argument("--guidance_scale", type=float, default=None, help="Default: the pipeline's.")
    parser.add_argument("--top_k", type=int, default=None, help="Default: the pipeline's.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--caption_seed", type=int, default=3, help="Seeds the choice of captions.")
    parser.add_argument("--output", type=str, default="emoji_text.png")
    return parser.parse_args(input_args)


def grid(rows, captions, side: int, padding: int = 2) -> Image.Image:
    """rows: per caption, a list of PIL images (side x side) -> one PIL image with the captions on the left."""
    columns = max(len(row) for row in rows)
    canvas = Image.new(
        "RGB", (LABEL_WIDTH + columns * (side + padding), len(rows) * (side + padding) + padding), "white"
    )
    draw = ImageDraw.Draw(canvas)
    for r, (row, caption) in enumerate(zip(rows, captions)):
        top = padding + r * (side + padding)
        draw.text((4, top + side // 2 - 6), caption[:40], fill="black")
        for c, image in enumerate(row):
            canvas.paste(image, (LABEL_WIDTH + c * (side + padding), top))
    return canvas


@torch.no_grad()
def main(args):
    pipe = TamingPipeline.from_pretrained(args.pipeline)
    data = load_emoji_dataset(args.split)
    indices = draw_distinct_captions(data["text"], args.num_prompts, seed=args.caption_seed)
    captions = [data[i]["text"] for i in indices]
    output = pipe(
        prompt=captions,
        num_images_per_prompt=args.num_images_per_prompt,
        guidance_scale=args.guidance_scale,
        top_k=args.top_k,
        generator=torch.Generator().manual_seed(args.seed),
    )
    n = args.num_images_per_prompt
    rows = [[data[i]["image"]] + output.images[r * n : (r + 1) * n] for r, i in enumerate(indices)]
    side = np.asarray(rows[0][0]).shape[0]
    grid(rows, captions, side).save(args.output)
    print(args.output, captions)


if __name__ == "__main__":
    main(parse_args())
