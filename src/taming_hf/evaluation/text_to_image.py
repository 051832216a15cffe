"""Judging text-to-image samples with an independent CLIP (any transformers `CLIPModel`).

Inputs are L2-normalised CLIP embeddings (`clip_image_features`, `clip_text_features`) with row i of the images made
for (or showing) prompt i. Three figures, each computed the same way for generated and for real images:

- `judge_top1`: how often the judge ranks an image's own prompt first among the `group_size` prompts of its group
  (`grouped_top1`; chance 1 / group_size).
- `clip_score`: CLIPScore (Hessel et al. 2021, w = 100), the mean over images of 100 * max(cos(image_i, prompt_i), 0).
- `shuffled_clip_score`: the same images scored against a fixed derangement of the prompts (no image keeps its own):
  the baseline a CLIP score is only meaningful against, since a judge gives every emoji-like image some similarity to
  every emoji caption.

    from taming_hf.evaluation.text_to_image import derangement, judge_figures

    figures = judge_figures(image_features, text_features, shuffle=derangement(len(text_features)))
"""

from typing import Dict, List, Sequence

import numpy as np
import torch

from .clip_retrieval import grouped_top1


def derangement(n: int, seed: int = 0) -> List[int]:
    """
    A seeded random permutation of `range(n)` without a fixed point: the shuffled-prompt baseline pairs image i with
    prompt `derangement[i]`, never with its own. Drawn by rejection (a random permutation has no fixed point with
    probability about 1/e, so a few draws suffice).
    """
    if n < 2:
        raise ValueError(f"A derangement needs at least 2 items (one item can only map to itself), got n={n}.")
    rng = np.random.default_rng(seed)
    while True:
        order = rng.permutation(n)
        if not (order == np.arange(n)).any():
            return order.tolist()


def clip_score(image_features: torch.Tensor, text_features: torch.Tensor) -> float:
    """
    CLIPScore: the mean over rows of 100 * max(cos(image_i, text_i), 0).

    Written out rather than taken from torchmetrics' `CLIPScore` (1.9), which cannot score with our judge: its
    `model_name_or_path` takes only a few Hub names (a local folder raises "Invalid model_name_or_path"), and given a
    loader callable instead it normalises the return value of `get_image_features`, which transformers 5 makes a
    model output rather than a tensor. (It also clamps the mean at 0, not each pair.)

    Args:
        image_features, text_features: (N, D) L2-normalised embeddings, row i of one paired with row i of the other.
    """
    if image_features.shape != text_features.shape:
        raise ValueError(
            f"image_features {tuple(image_features.shape)} and text_features {tuple(text_features.shape)} "
            "should have the same (N, D) shape: one text per image."
        )
    cosine = (image_features * text_features).sum(dim=-1)
    return (100 * cosine.clamp(min=0)).mean().item()


def judge_figures(
    image_features: torch.Tensor, text_features: torch.Tensor, shuffle: Sequence[int], group_size: int = 20
) -> Dict[str, float]:
    """
    The judge's figures of N images for their N prompts.

    Args:
        image_features: (N, D) L2-normalised judge embeddings of the images.
        text_features: (N, D) L2-normalised judge embeddings of each image's own prompt.
        shuffle: a derangement of `range(N)`: image i is also scored against prompt `shuffle[i]`.
        group_size: candidate prompts per group for the top-1 (N must be a multiple of it).
    Returns:
        `judge_top1` (in [0, 1]), `clip_score` and `shuffled_clip_score` (in [0, 100]).
    """
    shuffle = torch.as_tensor(list(shuffle), dtype=torch.long)
    if sorted(shuffle.tolist()) != list(range(len(text_features))) or (shuffle == torch.arange(len(shuffle))).any():
        raise ValueError(f"shuffle should be a derangement of range({len(text_features)}), got {shuffle.tolist()}.")
    return {
        "judge_top1": grouped_top1(image_features, text_features, group_size),
        "clip_score": clip_score(image_features, text_features),
        "shuffled_clip_score": clip_score(image_features, text_features[shuffle]),
    }
