"""
VQGAN+CLIP judged by an independent CLIP: for emoji names of one split (held-out by default), run
`VQGANCLIPPipeline` at its default settings with one prompt each, then let a second CLIP, trained with another seed
and architecture and never used for guidance, rank the prompt among the 20 prompts of its group. The figure is the
fraction ranked first (chance 1/20 = 5%); the same statistic for the unguided start (the same seed, zero steps) and
for the split's real images (the judge's ceiling) are printed beside it, and the guiding CLIP's own top-1 (biased:
it is what the images were optimised for).

Prompts are the names of base emoji (default skin tone, no skin-tone suffix), so no two candidates differ only by a
skin tone.

    PYTHONPATH=src python benchmarks/vqgan_clip_judge.py --vqgan pretrained/emoji-vqgan --clip pretrained/emoji-clip \
        --judge pretrained/emoji-clip-judge --split test --num_prompts 40 --output results.json --grid grid.png
"""

import argparse
import json
import time

import PIL.Image
import torch
from transformers import CLIPModel, CLIPProcessor

from taming_hf import VQGANCLIPPipeline, VQGANModel, export_frames, load_emoji_dataset
from taming_hf.evaluation.clip_retrieval import (
    clip_image_features,
    clip_text_features,
    draw_distinct_captions,
    grouped_top1,
)

GROUP = 20


def parse_args(input_args=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vqgan", type=str, required=True, help="A VQGANModel folder.")
    parser.add_argument("--clip", type=str, required=True, help="The guiding CLIPModel + CLIPProcessor folder.")
    parser.add_argument("--judge", type=str, required=True, help="The judging CLIPModel + CLIPProcessor folder.")
    parser.add_argument("--split", type=str, default="test")
    parser.add_argument("--num_prompts", type=int, default=20, help="Distinct base-emoji names (multiple of 20).")
    parser.add_argument("--num_inference_steps", type=int, default=None, help="Default: the pipeline's.")
    parser.add_argument("--seed", type=int, default=0, help="Prompt draw; prompt i is generated with seed + i.")
    parser.add_argument("--frame_interval", type=int, default=25, help="Judge the images every N steps too.")
    parser.add_argument("--gif", type=str, default=None, help="Write the first prompt's frames as a GIF here.")
    parser.add_argument("--output", type=str, default=None, help="Write the figures and prompts as JSON here.")
    parser.add_argument("--grid", type=str, default=None, help="Save real | start | generated rows as a PNG.")
    args = parser.parse_args(input_args)
    if args.num_prompts < GROUP or args.num_prompts % GROUP:
        parser.error(f"--num_prompts must be a positive multiple of {GROUP}, got {args.num_prompts}.")
    return args


def base_emoji_prompts(split: str, count: int, seed: int):
    """Names and real images of `count` distinct base emoji (default skin tone) of `split`, in a seeded order."""
    data = load_emoji_dataset(split)
    base = data.filter(lambda row: row["unified"] == row["emoji_id"])
    indices = draw_distinct_captions(base["text"], count, seed=seed)
    return [base[i]["text"] for i in indices], [base[i]["image"] for i in indices]


def run(pipe, prompts, args):
    """Each prompt's frames (step 0 = the unguided start, every --frame_interval steps, the end), seed + i."""
    frames = []
    steps = {} if args.num_inference_steps is None else {"num_inference_steps": args.num_inference_steps}
    for i, prompt in enumerate(prompts):
        generator = torch.Generator().manual_seed(args.seed + i)
        output = pipe(
            prompt, generator=generator, return_intermediates=True, intermediate_interval=args.frame_interval, **steps
        )
        frames.append(output.frames[0])
        print(f"{i + 1}/{len(prompts)} {prompt!r}", flush=True)
    return frames


def top1(clip, processor, prompts, images) -> float:
    text = clip_text_features(clip, processor, prompts)
    return grouped_top1(clip_image_features(clip, processor, images), text, GROUP)


def save_grid(path, rows):
    """One column per prompt; rows: real, start, generated."""
    side = rows[0][0].size[0]
    grid = PIL.Image.new("RGB", (side * len(rows[0]), side * len(rows)), "white")
    for r, row in enumerate(rows):
        for c, image in enumerate(row):
            grid.paste(image.convert("RGB").resize((side, side)), (c * side, r * side))
    grid.save(path)


def main(args):
    clip, processor = CLIPModel.from_pretrained(args.clip).eval(), CLIPProcessor.from_pretrained(args.clip)
    judge, judge_processor = CLIPModel.from_pretrained(args.judge).eval(), CLIPProcessor.from_pretrained(args.judge)
    pipe = VQGANCLIPPipeline(VQGANModel.from_pretrained(args.vqgan), clip, processor)
    pipe.set_progress_bar_config(disable=True)
    prompts, real = base_emoji_prompts(args.split, args.num_prompts, args.seed)
    began = time.perf_counter()
    frames = run(pipe, prompts, args)
    seconds = time.perf_counter() - began
    final_step = pipe.num_timesteps
    steps = [min(k * args.frame_interval, final_step) for k in range(len(frames[0]))]
    by_step = {
        str(step): top1(judge, judge_processor, prompts, [f[k] for f in frames]) for k, step in enumerate(steps)
    }
    generated, starts = [f[-1] for f in frames], [f[0] for f in frames]
    results = {
        "split": args.split,
        "num_prompts": len(prompts),
        "candidates_per_prompt": GROUP,
        "num_inference_steps": final_step,
        "judge_generated_top1": by_step[str(final_step)],
        "judge_start_top1": by_step["0"],
        "judge_real_top1": top1(judge, judge_processor, prompts, real),
        "judge_top1_by_step": by_step,
        "guide_generated_top1": top1(clip, processor, prompts, generated),
        "guide_start_top1": top1(clip, processor, prompts, starts),
        "seconds_per_prompt": seconds / len(prompts),
        "prompts": prompts,
    }
    print(json.dumps({k: v for k, v in results.items() if k != "prompts"}, indent=2))
    if args.output:
        with open(args.output, "w") as f:
            json.dump(results, f, indent=2)
    if args.grid:
        save_grid(args.grid, [real, starts, generated])
    if args.gif:
        export_frames(frames[0], args.gif)
    return results


if __name__ == "__main__":
    main(parse_args())
