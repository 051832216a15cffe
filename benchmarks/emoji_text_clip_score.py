"""
CLIP top-1 of a text-to-image pipeline on emoji captions: each generated image is scored by a CLIP against its own
prompt and 19 other prompts (groups of 20 distinct captions of one split); the figure is the fraction of images whose
own prompt scores highest (chance 1/20 = 5%). The split's real images, scored the same way, give the judge's ceiling.

The judge here is pretrained/emoji-clip, the same CLIP that may rerank samples: with `--num_candidates` the figure
is biased upwards (the reranker optimises the judge). An independent judge is left to the issue.

    PYTHONPATH=src python benchmarks/emoji_text_clip_score.py --pipeline pretrained/taming-emoji-text \
        --clip pretrained/emoji-clip --num_prompts 100 --output results.json
"""

import argparse
import json

import torch
from transformers import CLIPModel, CLIPProcessor

from taming_hf import load_emoji_dataset
from taming_hf.evaluation.clip_retrieval import (
    clip_image_features,
    clip_text_features,
    draw_distinct_captions,
    grouped_top1,
)
from taming_hf.pipelines import TamingPipeline

GROUP = 20


def parse_args(input_args=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pipeline", type=str, required=True, help="A text-conditional TamingPipeline folder.")
    parser.add_argument("--clip", type=str, required=True, help="The judging CLIPModel + CLIPProcessor folder.")
    parser.add_argument("--splits", nargs="+", default=["train", "test"])
    parser.add_argument("--num_prompts", type=int, default=100, help="Distinct captions per split (multiple of 20).")
    parser.add_argument("--guidance_scale", type=float, default=None, help="Default: the pipeline's.")
    parser.add_argument("--top_k", type=int, default=None, help="Default: the pipeline's.")
    parser.add_argument("--num_candidates", type=int, default=None, help="Rerank this many samples with --clip.")
    parser.add_argument("--batch_size", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=str, default=None, help="Write the figures as JSON here.")
    args = parser.parse_args(input_args)
    if args.num_prompts < GROUP or args.num_prompts % GROUP:
        parser.error(f"--num_prompts must be a positive multiple of {GROUP}, got {args.num_prompts}.")
    return args


def generate(pipe, prompts, args, clip, processor):
    images = []
    generator = torch.Generator().manual_seed(args.seed)
    for start in range(0, len(prompts), args.batch_size):
        rerank = {"num_candidates": args.num_candidates, "clip": clip, "clip_processor": processor}
        output = pipe(
            prompt=prompts[start : start + args.batch_size],
            guidance_scale=args.guidance_scale,
            top_k=args.top_k,
            generator=generator,
            **(rerank if args.num_candidates else {}),
        )
        images.extend(output.images)
    return images


@torch.no_grad()
def main(args):
    pipe = TamingPipeline.from_pretrained(args.pipeline)
    clip, processor = CLIPModel.from_pretrained(args.clip).eval(), CLIPProcessor.from_pretrained(args.clip)
    results = {"num_prompts": args.num_prompts, "candidates_per_prompt": GROUP, "num_candidates": args.num_candidates}
    for split in args.splits:
        data = load_emoji_dataset(split)
        indices = draw_distinct_captions(data["text"], args.num_prompts, seed=args.seed)
        prompts = [data[i]["text"] for i in indices]
        text = clip_text_features(clip, processor, prompts)
        generated = clip_image_features(clip, processor, generate(pipe, prompts, args, clip, processor))
        real = clip_image_features(clip, processor, [data[i]["image"] for i in indices])
        results[split] = {
            "generated_top1": grouped_top1(generated, text, GROUP),
            "real_top1": grouped_top1(real, text, GROUP),
        }
        print(split, json.dumps(results[split]))
    if args.output:
        with open(args.output, "w") as f:
            json.dump(results, f, indent=2)
    return results


if __name__ == "__main__":
    main(parse_args())
