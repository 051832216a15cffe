#!/usr/bin/env python
"""Measure VQGANs (reconstruction) and TamingPipelines (generation): class-conditional ones on a test split,
text-conditional ones on the captions of the emoji splits.

    python scripts/evaluate.py --vqgan vqgan-out vqvae-out --pipeline pretrained/taming-fashion-mnist \
        --classifier pretrained/fashion-mnist-classifier --output_dir eval
    python scripts/evaluate.py --pipeline pretrained/taming-emoji-text --judge_clip pretrained/emoji-clip-judge \
        --num_candidates 8 --rerank_clip pretrained/emoji-clip --output_dir eval-text

- `--vqgan DIR [DIR ...]` (a VQGAN folder, a `train_vqgan.py` output folder or a pipeline folder):
  PSNR, SSIM, LPIPS-VGG, codebook usage / perplexity on the test images, FID between test images and
  their reconstructions in the classifier's feature space, and the standard (Inception) rFID.
- `--pipeline DIR`: `--num_images_per_class` class-conditional samples per class; the accuracy of the
  independent classifier on them (does a sample of class c look like class c?), the FID between
  the samples and the real test images in the classifier's feature space, and the standard gFID.
- `--pipeline DIR` of a text-conditional pipeline (config `conditioning: text`): per split of `--splits`,
  `--num_prompts` distinct captions of the split (seeded), one sample each at the pipeline's sampling settings, and
  with `--num_candidates K` once more reranked (the best of K by the pipeline's `clip` component or `--rerank_clip`).
  The independent `--judge_clip` gives, for the samples and for the real images of the same captions (its ceiling):
  the top-1 of each image's prompt among the 20 prompts of its group (chance 5%), the CLIP score (mean of
  100 * max(cos, 0)) with its own prompt and with a fixed derangement of the prompts (the baseline); and the
  standard gFID of the samples against the split's real images. A grid per split, `samples_<split>.png`, shows per
  group of 20 prompts (in prompt order) a row of real images, a row of samples and a row of reranked samples.

Standard FID is torchmetrics' `FrechetInceptionDistance(feature=2048)` (TF-FID Inception, images rounded to
uint8, grayscale repeated to RGB, resized to 299 by torchmetrics). It needs torch-fidelity and its Inception
weights (offline: `python -m taming_hf.utils.offline_weights`); without them it is skipped with a message
that says how to get them, and `--no_inception_fid` skips it on purpose (it costs an Inception forward per image).

Writes `metrics.json` and `metrics.md` (a markdown table) to `--output_dir`.
"""

import argparse
import json
import logging
import os
import time
from typing import Dict, List, Optional, Sequence, Tuple

import PIL.Image
import torch
from diffusers.utils import make_image_grid
from torchvision.transforms.functional import pil_to_tensor
from transformers import CLIPModel, CLIPProcessor

from taming_hf import TamingPipeline, VQGANModel
from taming_hf.evaluation import (
    ClassifierFeatures,
    GenerationMetrics,
    ReconstructionMetrics,
    SmallImageClassifier,
    derangement,
    judge_figures,
    metrics,
)
from taming_hf.evaluation.clip_retrieval import clip_image_features, clip_text_features, draw_distinct_captions
from taming_hf.training.data import decode_image, load_image_dataset, load_labeled_images
from taming_hf.utils.loading import component_folder

logger = logging.getLogger(__name__)

GROUP_SIZE = 20  # candidate prompts per judged image: chance top-1 is 5%
TEXT_FLAGS = ("judge_clip", "rerank_clip", "num_prompts", "splits", "num_candidates")


def parse_args(input_args=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vqgan", type=str, nargs="+", default=[], help="VQGAN folders to evaluate.")
    parser.add_argument(
        "--pipeline",
        type=str,
        default=None,
        help="A class-conditional (classifier metrics) or text-conditional (CLIP judge metrics) TamingPipeline folder.",
    )
    parser.add_argument(
        "--classifier",
        type=str,
        default="pretrained/fashion-mnist-classifier",
        help='"none": no classifier (VQGAN metrics only, for a dataset without labels such as emoji).',
    )
    parser.add_argument(
        "--dataset_name", type=str, default=None, help='Default: "emoji" for a text pipeline, else "fashion_mnist".'
    )
    parser.add_argument("--split", type=str, default="test", help="VQGANs and class pipelines: the split measured on.")
    parser.add_argument("--image_column", type=str, default="image", help="Dataset column that holds the images.")
    parser.add_argument(
        "--label_column",
        type=str,
        default="label",
        help="Dataset column that holds the class ids (unused with --classifier none).",
    )
    parser.add_argument("--caption_column", type=str, default="text", help="Text pipelines: the prompts' column.")
    parser.add_argument(
        "--max_eval_samples",
        type=int,
        default=None,
        help="First N images of the split (default: all); for text pipelines, the real images of the gFID.",
    )
    parser.add_argument(
        "--batch_size",
        type=int,
        default=250,
        help="Images per forward pass (VQGAN, classifier, CLIP) and per pipeline call.",
    )
    parser.add_argument("--num_images_per_class", type=int, default=100, help="Class pipelines: samples per class.")
    # Text pipelines only.
    parser.add_argument(
        "--judge_clip",
        type=str,
        default=None,
        help="Text pipelines (required): the CLIPModel + CLIPProcessor folder judging the samples, independent of "
        "the reranker.",
    )
    parser.add_argument(
        "--num_prompts",
        type=int,
        default=None,
        help=f"Text pipelines: distinct captions per split, a multiple of {GROUP_SIZE} (default 100).",
    )
    parser.add_argument(
        "--splits",
        type=str,
        nargs="+",
        default=None,
        help="Text pipelines: the splits whose captions prompt (default: train test; test captions are emoji the "
        "prior never saw).",
    )
    parser.add_argument(
        "--num_candidates",
        type=int,
        default=None,
        help="Text pipelines: also measure samples reranked as the best of K per prompt (default: no reranking).",
    )
    parser.add_argument(
        "--rerank_clip",
        type=str,
        default=None,
        help="A CLIPModel + CLIPProcessor folder that reranks (default: the pipeline's own clip component).",
    )
    # Unset sampling flags take the pipeline's recommended settings (its transformer's generation_config);
    # metrics.json records the settings actually used.
    parser.add_argument("--top_k", type=int, default=None, help="0 = no top-k (default: the pipeline's own).")
    parser.add_argument("--top_p", type=float, default=None, help="Default: the pipeline's own.")
    parser.add_argument("--guidance_scale", type=float, default=None, help="1 = off (default: the pipeline's own).")
    parser.add_argument(
        "--seed", type=int, default=0, help="Seeds the samples and, for text pipelines, the drawn prompts."
    )
    parser.add_argument("--no_lpips", action="store_true", help="Skip LPIPS (it needs torchvision's VGG16 weights).")
    parser.add_argument("--no_inception_fid", action="store_true", help="Skip the standard (Inception) rFID / gFID.")
    parser.add_argument("--device", type=str, default=None, help="Default: cuda when available, else cpu.")
    parser.add_argument(
        "--output_dir",
        type=str,
        required=True,
        help="Where metrics.json, metrics.md and the sample grids are written.",
    )
    args = parser.parse_args(input_args)
    if not args.vqgan and args.pipeline is None:
        parser.error("Pass --vqgan and/or --pipeline.")
    text_flags = [f"--{name}" for name in TEXT_FLAGS if getattr(args, name) is not None]
    if args.pipeline is None and text_flags:
        parser.error(f"{', '.join(text_flags)} measure a text-conditional --pipeline; pass one.")
    if args.num_prompts is not None and (args.num_prompts < GROUP_SIZE or args.num_prompts % GROUP_SIZE):
        parser.error(
            f"--num_prompts must be a positive multiple of {GROUP_SIZE} (prompts are judged in groups of "
            f"{GROUP_SIZE}), got {args.num_prompts}."
        )
    if args.num_candidates is not None and args.num_candidates < 2:
        parser.error(
            f"--num_candidates must be at least 2 (one candidate is no reranking), got {args.num_candidates}."
        )
    if args.rerank_clip is not None and args.num_candidates is None:
        parser.error("--rerank_clip reranks candidates: pass --num_candidates (samples per prompt) as well.")
    return args


def check_pipeline_arguments(args: argparse.Namespace, pipeline_config: Optional[Dict]) -> None:
    """The flags the pipeline's kind (its model_index.json, read before any weights load) needs or refuses; resolves
    the defaults of `--dataset_name` (emoji for text pipelines), `--num_prompts` and `--splits` in `args`."""
    conditioning = None if pipeline_config is None else pipeline_config["conditioning"]
    if conditioning == "text":
        if args.judge_clip is None:
            raise ValueError(
                f"--pipeline {args.pipeline} is text-conditional: pass --judge_clip DIR, the CLIPModel + "
                "CLIPProcessor folder that judges its samples (an independent CLIP, not the reranker)."
            )
        has_clip = pipeline_config.get("clip", [None])[0] is not None
        if args.num_candidates is not None and args.rerank_clip is None and not has_clip:
            raise ValueError(
                f"--num_candidates {args.num_candidates} reranks with the pipeline's clip component, but "
                f"{args.pipeline} has none; pass --rerank_clip DIR (a CLIPModel + CLIPProcessor folder)."
            )
        if args.rerank_clip is not None and os.path.realpath(args.rerank_clip) == os.path.realpath(args.judge_clip):
            logger.warning(
                f"--rerank_clip and --judge_clip are the same CLIP ({args.judge_clip}): the reranked figures are "
                "biased upward, since the reranker picks the samples the judge scores highest."
            )
        args.num_prompts = 100 if args.num_prompts is None else args.num_prompts
        args.splits = ["train", "test"] if args.splits is None else args.splits
    elif conditioning is not None:
        text_flags = [f"--{name}" for name in TEXT_FLAGS if getattr(args, name) is not None]
        if text_flags:
            raise ValueError(
                f"{', '.join(text_flags)} measure text-conditional pipelines; {args.pipeline} is {conditioning!r}."
            )
        if conditioning != "class":
            raise ValueError(
                f"--pipeline needs a class- or text-conditional pipeline, {args.pipeline} is {conditioning!r}."
            )
        if args.classifier.lower() == "none":
            raise ValueError("--pipeline is measured with a classifier; --classifier none evaluates --vqgan only.")
    if args.dataset_name is None:
        args.dataset_name = "emoji" if conditioning == "text" else "fashion_mnist"


def load_vqgan(path: str) -> VQGANModel:
    """A VQGAN folder, or a folder with a `vqgan/` sub-folder (train_vqgan.py output, pipeline)."""
    return VQGANModel.from_pretrained(component_folder(path)).eval()


def load_test_images(args, resolution: int, num_channels: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """(N, C, S, S) images in [-1, 1] and (N,) labels of the evaluation split."""
    images, labels, _ = load_labeled_images(
        args.dataset_name,
        args.split,
        args.image_column,
        args.label_column,
        resolution,
        num_channels,
        args.max_eval_samples,
    )
    return images, labels


def load_classifier(path: str) -> SmallImageClassifier:
    """The independent classifier; it is small and stays on the CPU, where torchmetrics keeps its states."""
    if not os.path.isdir(path):
        raise ValueError(
            f"Classifier folder {path!r} not found; train one with scripts/train_classifier.py or pass --classifier."
        )
    return SmallImageClassifier.from_pretrained(path).eval()


@torch.no_grad()
def evaluate_vqgan(path: str, images: torch.Tensor, classifier, args, device) -> Dict[str, float]:
    model = load_vqgan(path).to(device)
    metrics = ReconstructionMetrics(
        num_embeddings=model.config.num_embeddings,
        use_lpips=not args.no_lpips,
        feature_extractor=None if classifier is None else ClassifierFeatures(classifier),
        inception_fid=not args.no_inception_fid,
    )
    if not args.no_inception_fid and metrics.inception_fid is None:
        print("Inception rFID skipped: torch-fidelity or its Inception weights are not available (see the warning).")
    if metrics.lpips is not None:
        metrics.lpips.to(device)
    start = time.time()
    for batch in images.split(args.batch_size):
        batch = batch.to(device)
        output = model(batch)
        metrics.update(batch, output.reconstruction, output.indices)
    results = metrics.compute()
    results["seconds"] = time.time() - start
    return results


@torch.no_grad()
def evaluate_pipeline(path: str, images: torch.Tensor, classifier, args, device) -> Dict[str, float]:
    pipe = TamingPipeline.from_pretrained(path).to(device)
    pipe.set_progress_bar_config(disable=True)
    settings = pipe.sampling_settings(top_k=args.top_k, top_p=args.top_p, guidance_scale=args.guidance_scale)
    metrics = GenerationMetrics(classifier, inception_fid=not args.no_inception_fid)
    if not args.no_inception_fid and metrics.inception_fid is None:
        print("Inception gFID skipped: torch-fidelity or its Inception weights are not available (see the warning).")
    for batch in images.split(args.batch_size):
        metrics.update_real(batch)
    generator = torch.Generator().manual_seed(args.seed)
    num_classes = pipe.config.num_condition_tokens
    per_call = max(1, args.batch_size // args.num_images_per_class) if args.num_images_per_class else 1
    start = time.time()
    for first in range(0, num_classes, per_call):
        class_ids = list(range(first, min(first + per_call, num_classes)))
        remaining = args.num_images_per_class
        while remaining > 0:
            count = min(remaining, args.batch_size)
            samples = pipe(
                class_labels=class_ids,
                num_images_per_prompt=count,
                top_k=args.top_k,
                top_p=args.top_p,
                guidance_scale=args.guidance_scale,
                generator=generator,
                output_type="pt",
            ).images
            labels = torch.tensor(class_ids).repeat_interleave(count)
            metrics.update_generated(samples * 2 - 1, labels)
            remaining -= count
    results = metrics.compute()
    results.update(
        seconds=time.time() - start,
        top_k=settings.top_k,
        top_p=settings.top_p,
        temperature=settings.temperature,
        guidance_scale=settings.guidance_scale,
        num_images_per_class=args.num_images_per_class,
    )
    return results


def load_clip(path: str, device) -> Tuple[CLIPModel, CLIPProcessor]:
    """A CLIPModel and its CLIPProcessor from one folder (as scripts/train_clip.py saves them), in eval mode."""
    return CLIPModel.from_pretrained(path).eval().to(device), CLIPProcessor.from_pretrained(path)


def load_captioned_split(args, split: str):
    """One split of the captioned dataset, with its image and caption columns checked."""
    data = load_image_dataset(dataset_name=args.dataset_name, split=split)
    for flag, column in (("--image_column", args.image_column), ("--caption_column", args.caption_column)):
        if column not in data.column_names:
            raise ValueError(f"{flag} {column!r} is not in the {split} split's columns {data.column_names}.")
    return data


def rgb_images(values: Sequence) -> List[PIL.Image.Image]:
    return [decode_image(value).convert("RGB") for value in values]


def uint8_batch(images: Sequence[PIL.Image.Image]) -> torch.Tensor:
    """(B, 3, H, W) uint8 pixels of RGB images: what the standard FID reads (a saved PNG's own values)."""
    return torch.stack([pil_to_tensor(image) for image in images])


def real_split_fid(data, args, device) -> Tuple[Optional[torch.nn.Module], int]:
    """The standard FID holding the split's real images (the first --max_eval_samples), and their number; (None, 0)
    with --no_inception_fid or without the Inception weights. Its real features survive `reset()`. It runs on
    `device`: a split holds thousands of real images, one Inception forward each."""
    if args.no_inception_fid:
        return None, 0
    fid = metrics.standard_fid_or_none(reset_real_features=False)
    if fid is None:
        print("Inception gFID skipped: torch-fidelity or its Inception weights are not available (see the warning).")
        return None, 0
    fid = fid.to(device)
    count = len(data) if args.max_eval_samples is None else min(args.max_eval_samples, len(data))
    for start in range(0, count, args.batch_size):
        images = rgb_images(data[start : min(start + args.batch_size, count)][args.image_column])
        fid.update(uint8_batch(images).to(device), real=True)
    return fid, count


def generate_for_prompts(
    pipe: TamingPipeline,
    prompts: List[str],
    args,
    num_candidates: Optional[int] = None,
    clip=None,
    clip_processor=None,
) -> List[PIL.Image.Image]:
    """
    One image per prompt at the sampling flags (None: the pipeline's defaults), reranked as the best of
    `num_candidates` when given (by `clip`, else the pipeline's clip component). `--batch_size` rows per call (a
    reranked prompt takes `num_candidates` rows); one generator seeded with `--seed` for the whole list.
    """
    generator = torch.Generator().manual_seed(args.seed)
    rerank = {}
    if num_candidates is not None:
        rerank = dict(num_candidates=num_candidates, clip=clip, clip_processor=clip_processor)
    per_call = max(1, args.batch_size // (num_candidates or 1))
    images = []
    for start in range(0, len(prompts), per_call):
        output = pipe(
            prompt=prompts[start : start + per_call],
            top_k=args.top_k,
            top_p=args.top_p,
            guidance_scale=args.guidance_scale,
            generator=generator,
            **rerank,
        )
        images.extend(output.images)
    return images


def sample_grid(real: List[PIL.Image.Image], samples: List[List[PIL.Image.Image]]) -> PIL.Image.Image:
    """Per group of GROUP_SIZE prompts (prompt order, one column each): a row of the real images, then one row per
    list of `samples` (unreranked, reranked); the real images resized to the samples' size."""
    size = samples[0][0].size
    tiles = []
    for start in range(0, len(real), GROUP_SIZE):
        for images in [real, *samples]:
            tiles += [image.resize(size, PIL.Image.LANCZOS) for image in images[start : start + GROUP_SIZE]]
    return make_image_grid(tiles, rows=len(tiles) // GROUP_SIZE, cols=GROUP_SIZE)


def evaluate_text_split(pipe: TamingPipeline, split: str, judge, reranker, shuffle: List[int], args, device):
    """The rows (unreranked, and reranked with --num_candidates) of one split, its prompts and its sample grid."""
    judge_model, judge_processor = judge
    data = load_captioned_split(args, split)
    drawn = data.select(draw_distinct_captions(data[args.caption_column], args.num_prompts, seed=args.seed))
    prompts, real = list(drawn[args.caption_column]), rgb_images(drawn[args.image_column])
    text = clip_text_features(judge_model, judge_processor, prompts)
    real_figures = judge_figures(clip_image_features(judge_model, judge_processor, real), text, shuffle, GROUP_SIZE)
    samples = {None: generate_for_prompts(pipe, prompts, args)}
    if args.num_candidates is not None:
        samples[args.num_candidates] = generate_for_prompts(pipe, prompts, args, args.num_candidates, *reranker)
    fid, num_real = real_split_fid(data, args, device)
    rows = []
    for num_candidates, images in samples.items():
        features = clip_image_features(judge_model, judge_processor, images)
        row = {"split": split, "num_candidates": num_candidates, "num_images": len(images)}
        row.update(judge_figures(features, text, shuffle, GROUP_SIZE))
        row.update({f"real_{name}": value for name, value in real_figures.items()})
        if fid is not None:
            fid.reset()  # the fake features only: the real ones were built with reset_real_features=False
            fid.update(uint8_batch(images).to(device), real=False)
            row.update(gfid=fid.compute().item(), num_real_images=num_real)
        rows.append(row)
    return rows, prompts, sample_grid(real, list(samples.values()))


@torch.no_grad()
def evaluate_text_pipeline(path: str, args, device) -> Dict:
    """The judge's figures of a text-conditional pipeline per split (and reranking); writes the sample grids."""
    pipe = TamingPipeline.from_pretrained(path).to(device)
    pipe.set_progress_bar_config(disable=True)
    settings = pipe.sampling_settings(top_k=args.top_k, top_p=args.top_p, guidance_scale=args.guidance_scale)
    judge = load_clip(args.judge_clip, device)
    reranker = load_clip(args.rerank_clip, device) if args.rerank_clip is not None else (None, None)
    shuffle = derangement(args.num_prompts, seed=args.seed)
    results = {
        "pipeline": os.path.basename(os.path.normpath(path)),
        "judge_clip": args.judge_clip,
        "num_prompts": args.num_prompts,
        "group_size": GROUP_SIZE,
        "num_candidates": args.num_candidates,
        "rerank_clip": None if args.num_candidates is None else args.rerank_clip or "the pipeline's clip",
        "top_k": settings.top_k,
        "top_p": settings.top_p,
        "temperature": settings.temperature,
        "guidance_scale": settings.guidance_scale,
        "seed": args.seed,
        "rows": [],
        "prompts": {},
        "grids": {},
    }
    start = time.time()
    os.makedirs(args.output_dir, exist_ok=True)
    for split in args.splits:
        logger.info(f"Text-to-image figures of {path} on {args.num_prompts} {split} captions")
        rows, prompts, grid = evaluate_text_split(pipe, split, judge, reranker, shuffle, args, device)
        results["rows"] += rows
        results["prompts"][split] = prompts
        results["grids"][split] = f"samples_{split}.png"
        grid.save(os.path.join(args.output_dir, results["grids"][split]))
    results["seconds"] = time.time() - start
    return results


def text_markdown_table(text: Dict) -> List[str]:
    lines = [
        f"Judge {text['judge_clip']}: top-1 of each image's prompt among {text['group_size']} (chance "
        f"{1 / text['group_size']:.0%}); CLIP score = mean 100 * max(cos, 0) with its own prompt, shuffled = with a "
        "derangement of the prompts; real = the split's images of the same captions.",
        "",
        "| pipeline | split | prompts | top_k | guidance | reranking | judge top-1 | real top-1 | CLIP score "
        "| shuffled | real CLIP score | real shuffled | gFID (Inception) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in text["rows"]:
        reranking = "none" if row["num_candidates"] is None else f"best of {row['num_candidates']}"
        lines.append(
            f"| {text['pipeline']} | {row['split']} | {row['num_images']} | {text['top_k']} "
            f"| {text['guidance_scale']} | {reranking} | {row['judge_top1']:.1%} "
            f"| {row['real_judge_top1']:.1%} | {row['clip_score']:.2f} | {row['shuffled_clip_score']:.2f} "
            f"| {row['real_clip_score']:.2f} | {row['real_shuffled_clip_score']:.2f} | {_fmt(row.get('gfid'))} |"
        )
    return lines + [""]


def markdown_table(results: Dict) -> str:
    lines = []
    reconstruction = results.get("reconstruction", {})
    if reconstruction:
        lines += [
            "| autoencoder | PSNR (dB) | SSIM | LPIPS | feature FID | rFID (Inception) | codebook usage | perplexity |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for name, m in reconstruction.items():
            lines.append(
                f"| {name} | {m['psnr']:.2f} | {m['ssim']:.4f} | {_fmt(m.get('lpips'))} | {_fmt(m.get('feature_fid'))} "
                f"| {_fmt(m.get('rfid'))} | {m['codebook_usage']:.1%} | {m['codebook_perplexity']:.1f} |"
            )
        lines.append("")
    generation = results.get("generation")
    if generation:
        lines += [
            "| pipeline | samples | top_k | guidance | classifier accuracy | feature FID | gFID (Inception) |",
            "|---|---|---|---|---|---|---|",
            f"| {generation['pipeline']} | {generation['num_generated']} | {generation['top_k']} "
            f"| {generation['guidance_scale']} | {generation['classifier_accuracy']:.1%} "
            f"| {generation['feature_fid']:.2f} | {_fmt(generation.get('gfid'))} |",
            "",
        ]
    if results.get("text_to_image"):
        lines += text_markdown_table(results["text_to_image"])
    classifier = results.get("classifier")
    if classifier and classifier.get("test_accuracy") is not None:
        lines.append(
            f"Classifier ({classifier['path']}) test accuracy on real images: {classifier['test_accuracy']:.2%}."
        )
    return "\n".join(lines) + "\n"


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.4f}" if value < 1 else f"{value:.2f}"


def evaluate_labeled_split(args: argparse.Namespace, device, class_pipeline: bool) -> Dict:
    """VQGAN reconstructions (and the samples of a class-conditional --pipeline), measured on `--split` of
    `--dataset_name`."""
    results = {}
    if args.classifier.lower() == "none":  # VQGAN metrics only: no labels, images at the first VQGAN's size
        classifier, config = None, load_vqgan(args.vqgan[0]).config
        images, _, _ = load_labeled_images(
            args.dataset_name,
            args.split,
            args.image_column,
            None,
            config.resolution,
            config.in_channels,
            args.max_eval_samples,
        )
    else:
        classifier = load_classifier(args.classifier)
        size, channels = classifier.config.image_size, classifier.config.in_channels
        images, labels = load_test_images(args, size, channels)
        classifier_info = {"path": args.classifier}
        with torch.no_grad():
            predictions = torch.cat([classifier(batch).logits.argmax(-1) for batch in images.split(args.batch_size)])
        classifier_info["test_accuracy"] = (predictions == labels).float().mean().item()
        results["classifier"] = classifier_info
    results["num_images"] = len(images)
    if args.vqgan:
        results["reconstruction"] = {}
        for path, name in zip(args.vqgan, vqgan_names(args.vqgan)):
            logger.info(f"Reconstruction metrics of {path} on {len(images)} images")
            results["reconstruction"][name] = evaluate_vqgan(path, images, classifier, args, device)
            logger.info(f"{name}: {results['reconstruction'][name]}")
    if class_pipeline:
        logger.info(f"Generation metrics of {args.pipeline}: {args.num_images_per_class} samples per class")
        results["generation"] = {"pipeline": os.path.basename(os.path.normpath(args.pipeline))}
        results["generation"].update(evaluate_pipeline(args.pipeline, images, classifier, args, device))
        logger.info(f"generation: {results['generation']}")
    return results


def vqgan_names(paths: List[str]) -> List[str]:
    """A row name per VQGAN: its folder's name, or the path as given where two folders share a name
    (`run_a/vqgan` and `run_b/vqgan` would otherwise overwrite each other's row)."""
    names = [os.path.basename(os.path.normpath(path)) for path in paths]
    return [name if names.count(name) == 1 else os.path.normpath(path) for name, path in zip(names, paths)]


def main(args: argparse.Namespace) -> Dict:
    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", level=logging.INFO)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.manual_seed(args.seed)
    pipeline_config = TamingPipeline.load_config(args.pipeline) if args.pipeline is not None else None
    check_pipeline_arguments(args, pipeline_config)
    conditioning = None if pipeline_config is None else pipeline_config["conditioning"]
    results = {"dataset": args.dataset_name}
    if args.vqgan or conditioning == "class":
        results.update(split=args.split)
        results.update(evaluate_labeled_split(args, device, class_pipeline=conditioning == "class"))
    if conditioning == "text":
        logger.info(f"Text-to-image metrics of {args.pipeline}: {args.num_prompts} prompts per split {args.splits}")
        results["text_to_image"] = evaluate_text_pipeline(args.pipeline, args, device)
    os.makedirs(args.output_dir, exist_ok=True)
    with open(os.path.join(args.output_dir, "metrics.json"), "w") as f:
        json.dump(results, f, indent=2)
    table = markdown_table(results)
    with open(os.path.join(args.output_dir, "metrics.md"), "w") as f:
        f.write(table)
    print(table)
    return results


if __name__ == "__main__":
    main(parse_args())
