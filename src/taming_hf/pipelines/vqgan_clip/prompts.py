"""Weighted prompts of the VQGANCLIPPipeline: `"a red apple:1 | blurry:-0.5"` or lists of prompts and weights."""

import math
import numbers
import re
from dataclasses import dataclass
from typing import List, Optional, Sequence, Union

# A trailing ":<number>" is a weight; anything else after a colon stays part of the text ("photo: a cat").
_WEIGHT = re.compile(r"^(?P<text>.*):\s*(?P<weight>[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?)\s*$", re.DOTALL)


@dataclass(frozen=True)
class WeightedPrompt:
    """One text prompt and its weight: positive pulls the image towards it, negative pushes it away."""

    text: str
    weight: float = 1.0


def parse_prompt(prompt: str) -> List[WeightedPrompt]:
    """
    Split `"a red apple:1 | blurry:-0.5"` into prompts at `|`, each with an optional trailing `:weight`
    (default 1). A colon not followed by a number belongs to the text.

    Raises:
        `ValueError`: for a prompt part that is empty (`"a cat | "`, `":0.5"`).
    """
    if not isinstance(prompt, str):
        raise ValueError(f"A prompt must be a string, got {type(prompt).__name__}: {prompt!r}.")
    parsed = []
    for part in prompt.split("|"):
        match = _WEIGHT.match(part)
        text, weight = (match["text"], float(match["weight"])) if match else (part, 1.0)
        text = text.strip()
        if not text:
            raise ValueError(f"Prompt {prompt!r} has an empty part {part!r}; every '|'-separated part needs text.")
        parsed.append(WeightedPrompt(text, _check_weight(weight, text)))  # "1e999" parses as inf
    return parsed


def _check_weight(weight, text: str) -> float:
    if isinstance(weight, bool) or not isinstance(weight, numbers.Real) or not math.isfinite(weight):
        raise ValueError(f"The weight of prompt {text!r} must be a finite number, got {weight!r}.")
    return float(weight)


def parse_prompts(
    prompt: Optional[Union[str, Sequence[str]]], prompt_weights: Optional[Sequence[float]] = None
) -> List[WeightedPrompt]:
    """
    The weighted text prompts of a call.

    Args:
        prompt (`str` or `List[str]`, *optional*):
            One string in the `"text:weight | text:weight"` syntax, or a list of them. With `prompt_weights`
            the strings are taken literally, one prompt each (no `|` or `:` parsing).
        prompt_weights (`List[float]`, *optional*):
            One finite weight per prompt string.

    Returns:
        `List[WeightedPrompt]`, empty when `prompt` is `None`.

    Raises:
        `ValueError`: for empty prompts, a number of weights that differs from the number of prompts, and
        weights that are not finite numbers.
    """
    if prompt is None:
        if prompt_weights is not None:
            raise ValueError(f"prompt_weights={list(prompt_weights)!r} were given without a prompt.")
        return []
    prompts = [prompt] if isinstance(prompt, str) else prompt
    if not isinstance(prompts, (list, tuple)) or not all(isinstance(text, str) for text in prompts):
        raise ValueError(f"prompt must be a string or a list of strings, got {prompt!r}.")
    if len(prompts) == 0:
        raise ValueError("prompt is an empty list; pass at least one text prompt (or None for image prompts only).")
    if prompt_weights is None:
        return [weighted for text in prompts for weighted in parse_prompt(text)]
    weights = list(prompt_weights)
    if len(weights) != len(prompts):
        raise ValueError(f"Got {len(prompts)} prompts but {len(weights)} prompt_weights; pass one weight per prompt.")
    parsed = []
    for text, weight in zip(prompts, weights):
        if not text.strip():
            raise ValueError(f"Prompt {text!r} is empty; every prompt needs text.")
        parsed.append(WeightedPrompt(text.strip(), _check_weight(weight, text)))
    return parsed


def check_weights_sum(weights: Sequence[float]) -> float:
    """
    The sum the prompt weights are normalised by. It must be positive: zero cannot be divided by, and a
    negative sum would turn every pushing weight into a pulling one.
    """
    total = float(sum(weights))
    if not total > 0:
        raise ValueError(
            f"The prompt weights {list(weights)} sum to {total:g}; they must sum to a positive number (the loss is "
            "divided by their sum). Give the prompts to move towards positive weights larger than the negative ones."
        )
    return total
