"""Sampling helpers of the TamingPipeline: logits processors, token orders and sliding windows.

Sampling goes through transformers' `generate()` in greedy mode, with a final
[`GumbelSamplingLogitsProcessor`] that turns the argmax into an exact categorical sample
(Gumbel-max trick). That keeps `generate()`'s KV cache and logits-processor machinery while
letting the noise come from a user's `torch.Generator`, which `generate()` itself cannot take.
"""

import math
import numbers
from typing import List, Optional, Sequence, Union

import torch
from transformers import LogitsProcessor, LogitsProcessorList
from transformers.generation.logits_process import (
    SuppressTokensLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)
from transformers.generation.streamers import BaseStreamer

GeneratorType = Optional[Union[torch.Generator, List[torch.Generator]]]


class GumbelSamplingLogitsProcessor(LogitsProcessor):
    """
    Adds Gumbel(0, 1) noise to the (already filtered) scores, so that greedy decoding draws an exact
    sample from `softmax(scores)`: `argmax(scores + G)` is distributed as that categorical.
    Masked entries (`-inf`) stay masked, so top-k / top-p / vocabulary restrictions are honoured.

    Args:
        generator (`torch.Generator` or list of them, *optional*):
            Source of the noise; a list gives one generator per batch row.
    """

    def __init__(self, generator: GeneratorType = None):
        self.generator = generator

    def _exponential(self, shape: torch.Size, device: torch.device) -> torch.Tensor:
        """Exp(1) draws; `-log(E)` is Gumbel(0, 1) noise (one log instead of `-log(-log(U))`)."""
        if isinstance(self.generator, list):
            rows = [torch.empty(shape[1:], device=g.device).exponential_(generator=g) for g in self.generator]
            return torch.stack(rows).to(device)
        if self.generator is None:
            return torch.empty(shape, device=device).exponential_()
        return torch.empty(shape, device=self.generator.device).exponential_(generator=self.generator).to(device)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        # the clamp keeps the noise finite, so masked (-inf) entries stay -inf instead of becoming NaN
        exponential = self._exponential(scores.shape, scores.device).clamp_(min=1e-30)
        return scores - exponential.log().to(scores.dtype)


class ProgressStreamer(BaseStreamer):
    """Advances a progress bar by one step per generated token (the prompt is skipped)."""

    def __init__(self, progress_bar):
        self.progress_bar = progress_bar
        self.seen_prompt = False

    def put(self, value):
        if not self.seen_prompt:
            self.seen_prompt = True
            return
        self.progress_bar.update(1)

    def end(self):
        pass


def build_logits_processors(
    num_image_codes: int,
    vocab_size: int,
    top_k: Optional[int] = None,
    top_p: Optional[float] = None,
    temperature: float = 1.0,
    generator: GeneratorType = None,
    device: Union[str, torch.device] = "cpu",
) -> LogitsProcessorList:
    """
    The processors applied to each step's logits, in order: forbid every non-image token, then
    temperature, top-k and top-p (transformers' own warpers), then the Gumbel noise that makes greedy
    decoding a sample.
    """
    processors = LogitsProcessorList()
    if vocab_size > num_image_codes:
        processors.append(SuppressTokensLogitsProcessor(list(range(num_image_codes, vocab_size)), device=device))
    if temperature != 1.0:
        processors.append(TemperatureLogitsWarper(temperature))
    if top_k is not None and top_k > 0:
        processors.append(TopKLogitsWarper(min(top_k, num_image_codes)))
    if top_p is not None and top_p < 1.0:
        processors.append(TopPLogitsWarper(top_p))
    processors.append(GumbelSamplingLogitsProcessor(generator))
    return processors


def _is_number(value) -> bool:
    """A real number, not a bool (`True` is an `int` to Python but never a sensible sampling argument)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_sampling_arguments(
    top_k: Optional[int] = None,
    top_p: Optional[float] = None,
    temperature: Optional[float] = None,
    guidance_scale: Optional[float] = None,
) -> None:
    """
    Raise a `ValueError` naming the first sampling argument outside its domain. `None` means "the
    model's default" for each of them.

    `guidance_scale` must be finite and non-negative: 1 disables guidance, 0 samples the null class
    alone and values in (0, 1) interpolate towards it, but a negative scale pushes samples away from
    their class, which is never what class-conditional sampling asks for.
    """
    if top_k is not None and (not _is_number(top_k) or not isinstance(top_k, numbers.Integral) or top_k < 0):
        raise ValueError(f"top_k must be a non-negative integer (0 or None disables it), got {top_k!r}.")
    if top_p is not None and (not _is_number(top_p) or not 0 < top_p <= 1):
        raise ValueError(f"top_p must be in (0, 1], got {top_p!r}.")
    if temperature is not None and (not _is_number(temperature) or not (0 < temperature < math.inf)):
        raise ValueError(f"temperature must be a positive finite number, got {temperature!r}.")
    if guidance_scale is not None and (not _is_number(guidance_scale) or not (0 <= guidance_scale < math.inf)):
        raise ValueError(f"guidance_scale must be a finite number >= 0 (1 disables guidance), got {guidance_scale!r}.")


def check_generator(generator: GeneratorType, batch_size: int) -> None:
    """Raise a `ValueError` unless `generator` is `None`, a `torch.Generator` or a list of one per batch row."""
    if generator is None or isinstance(generator, torch.Generator):
        return
    expected = "generator must be a torch.Generator or a list of them (one per image)"
    if not isinstance(generator, list):
        raise ValueError(f"{expected}, got {type(generator).__name__}.")
    for item in generator:
        if not isinstance(item, torch.Generator):
            raise ValueError(f"{expected}, got a list holding {type(item).__name__}.")
    if len(generator) != batch_size:
        raise ValueError(f"Got {len(generator)} generators for a batch of {batch_size} images.")


def guided_log_probs(
    conditional_logits: torch.Tensor, unconditional_logits: torch.Tensor, guidance_scale: float
) -> torch.Tensor:
    """Classifier-free guidance on log-probabilities, as transformers' CFG processor computes it."""
    conditional = torch.log_softmax(conditional_logits, dim=-1)
    unconditional = torch.log_softmax(unconditional_logits, dim=-1)
    return unconditional + guidance_scale * (conditional - unconditional)


def check_token_order(token_order: Optional[Sequence[int]], num_tokens: int) -> Optional[torch.LongTensor]:
    """
    Validates `token_order` (`token_order[i]` is the raster position of the i-th generated token) and
    returns it as a tensor, or `None` for raster order.
    """
    if token_order is None:
        return None
    order = torch.as_tensor(list(token_order), dtype=torch.long)
    if order.numel() != num_tokens or not torch.equal(order.sort().values, torch.arange(num_tokens)):
        raise ValueError(
            f"token_order must be a permutation of range({num_tokens}) (one entry per latent cell), "
            f"got {order.numel()} entries."
        )
    return order


def to_generation_order(raster: torch.LongTensor, order: Optional[torch.LongTensor]) -> torch.LongTensor:
    """(B, h * w) raster tokens -> the order the transformer generates them in."""
    return raster if order is None else raster[:, order.to(raster.device)]


def to_raster_order(generated: torch.LongTensor, order: Optional[torch.LongTensor]) -> torch.LongTensor:
    """(B, h * w) tokens in generation order -> raster order (inverse of `to_generation_order`)."""
    if order is None:
        return generated
    raster = torch.empty_like(generated)
    raster[:, order.to(generated.device)] = generated
    return raster


def window_start(position: int, size: int, window: int) -> int:
    """
    First row (or column) of the sliding window used to sample `position` on an axis of `size` cells
    with a `window`-cell context: the cell sits in the window's middle, except near the borders where
    the window stops at the grid's edge (the original's high-resolution sampling scheme).
    """
    half = window // 2
    if size <= window or position <= half:
        return 0
    if size - position < half:
        return size - window
    return position - half
