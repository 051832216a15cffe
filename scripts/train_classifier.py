#!/usr/bin/env python
"""Train the small independent classifier that judges generated samples.

It learns on the real training split and reports its accuracy on the real test split; its
penultimate features are the feature space of `scripts/evaluate.py`'s FID.

    python scripts/train_classifier.py --dataset_name fashion_mnist --output_dir classifier-fashion-mnist
"""

import argparse
import json
import logging
import os
import time

import torch
import torch.nn.functional as F

from taming_hf.evaluation import SmallClassifierConfig, SmallImageClassifier
from taming_hf.training.data import load_labeled_images

logger = logging.getLogger(__name__)


def parse_args(input_args=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--dataset_name",
        type=str,
        default="fashion_mnist",
        help="Hub dataset id, local dataset folder, or `fashion_mnist` (local IDX files when present), with train "
        "and test splits.",
    )
    parser.add_argument("--image_column", type=str, default="image", help="Dataset column that holds the images.")
    parser.add_argument("--label_column", type=str, default="label", help="Dataset column that holds the class ids.")
    parser.add_argument("--resolution", type=int, default=28, help="Images are resized to this square size in pixels.")
    parser.add_argument("--num_channels", type=int, default=1, choices=[1, 3], help="1 = grayscale, 3 = RGB.")
    parser.add_argument("--train_batch_size", type=int, default=128, help="Images per optimizer step.")
    parser.add_argument("--num_train_epochs", type=int, default=3, help="Passes over the training split.")
    parser.add_argument(
        "--learning_rate", type=float, default=2e-3, help="Peak AdamW learning rate of the one-cycle schedule."
    )
    parser.add_argument(
        "--max_train_samples", type=int, default=None, help="Use only the first N training images (debugging)."
    )
    parser.add_argument("--max_eval_samples", type=int, default=None, help="Use only the first N test images.")
    parser.add_argument("--seed", type=int, default=0, help="Seeds the weights, the data order and the random shifts.")
    parser.add_argument(
        "--output_dir", type=str, required=True, help="Where the classifier and classifier_results.json are written."
    )
    return parser.parse_args(input_args)


def load_split(args, split: str, max_samples=None):
    """A split as (N, C, S, S) float images in [-1, 1], (N,) long labels and the class names."""
    return load_labeled_images(
        args.dataset_name, split, args.image_column, args.label_column, args.resolution, args.num_channels, max_samples
    )


@torch.no_grad()
def accuracy(model: SmallImageClassifier, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 1000) -> float:
    model.eval()
    correct = sum(
        (model(images[i : i + batch_size]).logits.argmax(-1) == labels[i : i + batch_size]).sum().item()
        for i in range(0, len(images), batch_size)
    )
    return correct / len(images)


def train(args) -> dict:
    torch.manual_seed(args.seed)
    train_images, train_labels, names = load_split(args, "train", args.max_train_samples)
    test_images, test_labels, _ = load_split(args, "test", args.max_eval_samples)
    config = SmallClassifierConfig(
        in_channels=args.num_channels,
        image_size=args.resolution,
        num_labels=int(train_labels.max()) + 1,
        id2label={i: name for i, name in enumerate(names)} if names else None,
    )
    model = SmallImageClassifier(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.learning_rate)
    steps = args.num_train_epochs * (len(train_images) // args.train_batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.learning_rate, total_steps=steps)
    generator = torch.Generator().manual_seed(args.seed)
    start = time.time()
    for epoch in range(args.num_train_epochs):
        model.train()
        order = torch.randperm(len(train_images), generator=generator)
        for i in range(0, len(order) - args.train_batch_size + 1, args.train_batch_size):
            batch = order[i : i + args.train_batch_size]
            images = train_images[batch]
            # Small random shifts keep the judge from keying on exact pixel positions.
            shift = torch.randint(-2, 3, (2,), generator=generator).tolist()
            images = torch.roll(images, shifts=shift, dims=(2, 3))
            loss = F.cross_entropy(model(images).logits, train_labels[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
        logger.info(
            f"epoch {epoch + 1}: loss {loss.item():.4f}, test accuracy {accuracy(model, test_images, test_labels):.4f}"
        )
    results = {
        "dataset": args.dataset_name,
        "train_samples": len(train_images),
        "test_samples": len(test_images),
        "test_accuracy": accuracy(model, test_images, test_labels),
        "train_seconds": round(time.time() - start, 1),
    }
    model.save_pretrained(args.output_dir)
    with open(os.path.join(args.output_dir, "classifier_results.json"), "w") as f:
        json.dump(results, f, indent=2)
    return results


def main(input_args=None) -> dict:
    logging.basicConfig(format="%(asctime)s %(levelname)s %(message)s", level=logging.INFO)
    results = train(parse_args(input_args))
    print(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
