"""Text -> image (and image -> text) retrieval with any transformers `CLIPModel` and its `CLIPProcessor`.

The measure of `scripts/train_clip.py` and its shipped emoji CLIP: draw `num_candidates` random images with distinct
captions (seeded), embed the images and their captions, and for each caption rank the candidate images by cosine
similarity; top-k is the fraction of captions whose own image is among the k best. Distinct captions make exactly one
candidate correct (an emoji dataset holds the same name in several styles). Chance top-1 is 1 / num_candidates.

Only the public CLIP API is used (`processor(text=..., images=...)`, `get_text_features`, `get_image_features`),
so `openai/clip-vit-base-patch32` works unchanged.

    python -m taming_hf.evaluation.clip_retrieval --model pretrained/emoji-clip --dataset_name emoji --split test
"""

import argparse
import json
from dataclasses import asdict, dataclass
from typing import Dict, List, Optional, Sequence

import numpy as np
import PIL.Image
import torch


@dataclass
class RetrievalResult:
    """
    Retrieval accuracies over one draw of candidates.

    Attributes:
        text_to_image_top1 / text_to_image_top5: fraction of captions whose image ranks first / in the first five.
        image_to_text_top1 / image_to_text_top5: the same, ranking captions for each image.
        num_candidates: images (and captions) in the draw; chance top-1 is 1 / num_candidates.
        indices: the dataset rows drawn, in order.
    """

    text_to_image_top1: float
    text_to_image_top5: float
    image_to_text_top1: float
    image_to_text_top5: float
    num_candidates: int
    indices: List[int]

    def metrics(self, prefix: str = "") -> Dict[str, float]:
        """The four accuracies (and the candidate count) as a flat dict, keys prefixed by `prefix`."""
        values = {k: v for k, v in asdict(self).items() if k != "indices"}
        return {f"{prefix}{key}": value for key, value in values.items()}


def _pooled(output) -> torch.Tensor:
    """`get_*_features` returns the projected features (transformers 4) or an output whose `pooler_output` holds
    them (transformers 5)."""
    return output if isinstance(output, torch.Tensor) else output.pooler_output


@torch.no_grad()
def clip_text_features(model, processor, texts: Sequence[str], batch_size: int = 256) -> torch.Tensor:
    """L2-normalised text embeddings, (len(texts), projection_dim) float32 on the CPU."""
    device = next(model.parameters()).device
    features = []
    for start in range(0, len(texts), batch_size):
        inputs = processor(
            text=list(texts[start : start + batch_size]), padding=True, truncation=True, return_tensors="pt"
        )
        inputs = {k: v.to(device) for k, v in inputs.items() if k in ("input_ids", "attention_mask")}
        features.append(_pooled(model.get_text_features(**inputs)).float().cpu())
    return torch.nn.functional.normalize(torch.cat(features), dim=-1)


@torch.no_grad()
def clip_image_features(model, processor, images: Sequence[PIL.Image.Image], batch_size: int = 256) -> torch.Tensor:
    """L2-normalised image embeddings, (len(images), projection_dim) float32 on the CPU."""
    parameter = next(model.parameters())
    features = []
    for start in range(0, len(images), batch_size):
        pixel_values = processor(images=list(images[start : start + batch_size]), return_tensors="pt")["pixel_values"]
        pixel_values = pixel_values.to(parameter.device, parameter.dtype)
        features.append(_pooled(model.get_image_features(pixel_values=pixel_values)).float().cpu())
    return torch.nn.functional.normalize(torch.cat(features), dim=-1)


def retrieval_accuracy(similarity: torch.Tensor, ks: Sequence[int] = (1, 5)) -> Dict[int, float]:
    """
    Top-k accuracies of a square similarity matrix whose correct pairs are on the diagonal.

    Args:
        similarity: (N, N), row i = query i scored against the N candidates.
    Returns:
        {k: fraction of rows whose diagonal entry is among the row's k largest}; ties count against the query
        (a candidate scored equal to the correct one ranks before it), so a constant model scores 0, not 1.
    """
    if similarity.ndim != 2 or similarity.shape[0] != similarity.shape[1]:
        raise ValueError(f"similarity should be a square (N, N) matrix, got shape {tuple(similarity.shape)}.")
    correct = similarity.diagonal().unsqueeze(1)
    rank = (similarity >= correct).sum(dim=1) - 1  # candidates scored at least as high, the correct one excluded
    return {k: (rank < k).sum().item() / len(rank) for k in ks}


def grouped_top1(image_features: torch.Tensor, text_features: torch.Tensor, group_size: int = 20) -> float:
    """
    Top-1 of each image against the prompts of its group: rows `[g * group_size, (g + 1) * group_size)` of the
    images are scored against the same rows of the prompts, and image i's own prompt is prompt i.

    The judge statistic of generated images (chance 1 / group_size): how often a CLIP ranks the prompt an image
    was made for first among `group_size` candidate prompts.

    Args:
        image_features: (N, D) L2-normalised image embeddings.
        text_features: (N, D) L2-normalised embeddings of each image's prompt.
        group_size: candidates per group; N must be a multiple of it.
    """
    if image_features.shape != text_features.shape:
        raise ValueError(
            f"image_features {tuple(image_features.shape)} and text_features {tuple(text_features.shape)} "
            "should have the same (N, D) shape: one prompt per image."
        )
    if group_size < 1 or len(image_features) % group_size:
        raise ValueError(f"N={len(image_features)} should be a positive multiple of group_size={group_size}.")
    hits = [
        retrieval_accuracy(
            image_features[start : start + group_size] @ text_features[start : start + group_size].T, ks=(1,)
        )[1]
        for start in range(0, len(image_features), group_size)
    ]
    return sum(hits) / len(hits)


def draw_distinct_captions(captions: Sequence[str], num_candidates: int, seed: int = 0) -> List[int]:
    """`num_candidates` row indices in a seeded random order, no two with the same caption."""
    order = np.random.default_rng(seed).permutation(len(captions))
    chosen, seen = [], set()
    for index in order.tolist():
        if captions[index] not in seen:
            seen.add(captions[index])
            chosen.append(index)
            if len(chosen) == num_candidates:
                return chosen
    raise ValueError(
        f"num_candidates={num_candidates} but the captions hold only {len(seen)} distinct ones "
        f"(of {len(captions)} rows); pass num_candidates <= {len(seen)}."
    )


def evaluate_clip_retrieval(
    model,
    processor,
    images: Sequence[PIL.Image.Image],
    captions: Sequence[str],
    num_candidates: Optional[int] = 100,
    seed: int = 0,
    batch_size: int = 256,
) -> RetrievalResult:
    """
    Text -> image and image -> text retrieval among `num_candidates` random images with distinct captions.

    Args:
        model: a `CLIPModel` (in eval mode: dropout would make the figure random).
        processor: its `CLIPProcessor` (image processor + tokenizer).
        images: PIL images, one per caption.
        captions: the text of each image.
        num_candidates: images drawn (seeded by `seed`); None uses every row (captions must then be distinct).
    """
    if len(images) != len(captions):
        raise ValueError(f"Got {len(images)} images but {len(captions)} captions; pass one caption per image.")
    if num_candidates is not None and num_candidates < 1:
        raise ValueError(f"num_candidates should be at least 1, got {num_candidates}.")
    indices = draw_distinct_captions(captions, num_candidates or len(captions), seed)
    text = clip_text_features(model, processor, [captions[i] for i in indices], batch_size)
    image = clip_image_features(model, processor, [images[i] for i in indices], batch_size)
    similarity = text @ image.T  # (captions, images)
    t2i, i2t = retrieval_accuracy(similarity), retrieval_accuracy(similarity.T)
    return RetrievalResult(t2i[1], t2i[5], i2t[1], i2t[5], len(indices), indices)


def parse_args(input_args=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Text -> image retrieval of a CLIPModel on an image/caption split.")
    parser.add_argument("--model", type=str, required=True, help="CLIPModel + CLIPProcessor folder or Hub id.")
    parser.add_argument("--dataset_name", type=str, required=True, help="As scripts/train_clip.py takes it.")
    parser.add_argument("--dataset_config_name", type=str, default=None)
    parser.add_argument("--split", type=str, default="test")
    parser.add_argument("--image_column", type=str, default="image")
    parser.add_argument("--caption_column", type=str, default="text")
    parser.add_argument("--num_candidates", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=str, default=None, help="Also write the figures to this JSON file.")
    return parser.parse_args(input_args)


def main(args) -> Dict[str, float]:
    from transformers import CLIPModel, CLIPProcessor

    from ..training.data import decode_image, load_image_dataset

    dataset = load_image_dataset(args.dataset_name, args.dataset_config_name, split=args.split)
    for flag, column in (("--image_column", args.image_column), ("--caption_column", args.caption_column)):
        if column not in dataset.column_names:
            raise ValueError(f"{flag} {column!r} is not in the dataset's columns {dataset.column_names}.")
    model = CLIPModel.from_pretrained(args.model).eval()
    processor = CLIPProcessor.from_pretrained(args.model)
    images = [decode_image(image).convert("RGB") for image in dataset[args.image_column]]
    result = evaluate_clip_retrieval(
        model, processor, images, dataset[args.caption_column], args.num_candidates, args.seed
    )
    metrics = result.metrics()
    print(json.dumps(metrics, indent=2))
    if args.output:
        with open(args.output, "w") as f:
            json.dump(metrics, f, indent=2)
    return metrics


if __name__ == "__main__":
    main(parse_args())
