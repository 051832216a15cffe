#!/usr/bin/env python
"""Measure VQGANs (reconstruction) and class-conditional TamingPipelines (generation) on a test split.

    python scripts/evaluate.py --vqgan vqgan-out vqvae-out --pipeline pretrained/taming-fashion-mnist \
        --classifier pretrained/fashion-mnist-classifier --output_dir eval

- `--vqgan DIR [DIR ...]` (a VQGAN folder, a `train_vqgan.py` output folder or a pipeline folder):
  PSNR, SSIM, LPIPS-VGG, codebook usage / perplexity on the test images, FID between test images and
  their reconstructions in the classifier's feature space, and the standard (Inception) rFID.
- `--pipeline DIR`: `--num_images_per_class` class-conditional samples per class; the accuracy of the
  independent classifier on them (does a sample of class c look like class c?), the FID between
  the samples and the real test images in the classifier's feature space, and the standard gFID.

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
from typing import Dict, Tuple

import torch

from taming_hf import TamingPipeline, VQGANModel
from taming_hf.evaluation import ClassifierFeatures, GenerationMetrics, ReconstructionMetrics, SmallImageClassifier
from taming_hf.training.data import load_labeled_images
from taming_hf.utils.loading import component_folder

logger = logging.getLogger(__name__)


def parse_args(input_args=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vqgan", type=str, nargs="+", default=[], help="VQGAN folders to evaluate.")
    parser.add_argument("--pipeline", type=str, default=None, help="Class-conditional TamingPipeline folder.")
    parser.add_argument(
        "--classifier",
        type=str,
        default="pretrained/fashion-mnist-classifier",
        help='"none": no classifier (VQGAN metrics only, for a dataset without labels such as emoji).',
    )
    parser.add_argument("--dataset_name", type=str, default="fashion_mnist")
    parser.add_argument("--split", type=str, default="test")
    parser.add_argument("--image_column", type=str, default="image")
    parser.add_argument("--label_column", type=str, default="label")
    parser.add_argument("--max_eval_samples", type=int, default=None, help="First N test images (default: all).")
    parser.add_argument("--batch_size", type=int, default=250)
    parser.add_argument("--num_images_per_class", type=int, default=100)
    # Unset sampling flags take the pipeline's recommended settings (its transformer's generation_config);
    # metrics.json records the settings actually used.
    parser.add_argument("--top_k", type=int, default=None, help="0 = no top-k (default: the pipeline's own).")
    parser.add_argument("--top_p", type=float, default=None, help="Default: the pipeline's own.")
    parser.add_argument("--guidance_scale", type=float, default=None, help="1 = off (default: the pipeline's own).")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no_lpips", action="store_true", help="Skip LPIPS (it needs torchvision's VGG16 weights).")
    parser.add_argument("--no_inception_fid", action="store_true", help="Skip the standard (Inception) rFID / gFID.")
    parser.add_argument("--device", type=str, default=None)
    parser.add_argument("--output_dir", type=str, required=True)
    args = parser.parse_args(input_args)
    if not args.vqgan and args.pipeline is None:
        parser.error("Pass --vqgan and/or --pipeline.")
    if args.classifier.lower() == "none" and args.pipeline is not None:
        parser.error("--pipeline is measured with a classifier; --classifier none evaluates --vqgan only.")
    return args


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
    if pipe.config.conditioning != "class":
        raise ValueError(f"--pipeline needs a class-conditional pipeline, {path} is {pipe.config.conditioning!r}.")
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
    classifier = results.get("classifier")
    if classifier and classifier.get("test_accuracy") is not None:
        lines.append(
            f"Classifier ({classifier['path']}) test accuracy on real images: {classifier['test_accuracy']:.2%}."
        )
    return "\n".join(lines) + "\n"


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.4f}" if value < 1 else f"{value:.2f}"


def main(args: argparse.Namespace) -> Dict:
    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", level=logging.INFO)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.manual_seed(args.seed)
    results = {"dataset": args.dataset_name, "split": args.split}
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
        for path in args.vqgan:
            name = os.path.basename(os.path.normpath(path))
            logger.info(f"Reconstruction metrics of {path} on {len(images)} images")
            results["reconstruction"][name] = evaluate_vqgan(path, images, classifier, args, device)
            logger.info(f"{name}: {results['reconstruction'][name]}")
    if args.pipeline:
        logger.info(f"Generation metrics of {args.pipeline}: {args.num_images_per_class} samples per class")
        results["generation"] = {"pipeline": os.path.basename(os.path.normpath(args.pipeline))}
        results["generation"].update(evaluate_pipeline(args.pipeline, images, classifier, args, device))
        logger.info(f"generation: {results['generation']}")
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
