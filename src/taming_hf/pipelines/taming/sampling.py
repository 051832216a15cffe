"""Sampling helpers of the TamingPipeline: the sampling step and loop, token orders and sliding windows.

Both sampling paths (the KV-cached one for grids that fit the prior's window, and the sliding window
for larger grids) draw each token with one [`ImageTokenSampler`] step: a forward of the model's own
`forward` on the new tokens with a `DynamicCache`, the last position's logits, classifier-free
guidance with the conditional and null-class rows in one batch, then the image-code restriction,
temperature, top-k, top-p and Gumbel noise from the user's `torch.Generator`, whose argmax is an exact
categorical sample (Gumbel-max trick). The noise is drawn exactly as [`GumbelSamplingLogitsProcessor`]
draws it, so `generate()` with [`build_logits_processors`] gives the same tokens for the same seed.
"""

import math
import numbers
from typing import Callable, List, Optional, Sequence, Union

import torch
from transformers import DynamicCache, LogitsProcessor, LogitsProcessorList, PreTrainedModel
from transformers.generation.logits_process import (
    SuppressTokensLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

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
    `generate()` logits processors equivalent to an unguided [`ImageTokenSampler`] step, in order: forbid
    every non-image token, then temperature, top-k and top-p (transformers' own warpers), then the Gumbel
    noise that makes greedy decoding a sample. The pipeline samples with [`ImageTokenSampler`]; these
    serve `generate()` users and as the reference the sampler's tokens are tested against.
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


# A callback run after each sampled token: `(step, token_position, tokens) -> (tokens or None, stop)`, where
# `tokens` is the (B, t) tokens so far in generation order; see `sample_tokens`.
TokenCallback = Callable[[int, int, torch.LongTensor], "tuple[Optional[torch.LongTensor], bool]"]


class ImageTokenSampler:
    """
    One sampling step, shared by the KV-cached loop ([`sample_tokens`]) and the pipeline's sliding window:
    a forward of the model on the new tokens, the last position's logits, classifier-free guidance on the
    conditional and null-class rows of the same batch, then the image-code restriction, temperature,
    top-k, top-p and Gumbel noise; the argmax is the sampled token.

    The result equals [`build_logits_processors`] on the same logits: slicing the logits to the image
    codes replaces the suppression of every other id (their probability is 0 either way), and the noise
    is drawn for the full vocabulary, as [`GumbelSamplingLogitsProcessor`] draws it, so a seeded
    generator gives the same tokens.

    Args:
        model (`~transformers.GPT2LMHeadModel`):
            Any causal LM taking `(input_ids, cache=..., use_cache=True, logits_to_keep=1)`.
        num_image_codes (`int`):
            K: image codes are the ids `[0, K)`; only they are sampled.
        batch_size (`int`):
            B, the number of sampled rows; with guidance the model runs on 2B rows (conditional rows first).
        top_k, top_p, temperature:
            As in [`build_logits_processors`] (checked by [`check_sampling_arguments`]).
        guidance_scale (`float`, defaults to 1.0):
            1 disables guidance; otherwise the forward inputs hold B conditional then B null-class rows.
        generator (`torch.Generator` or a list of B, *optional*):
            Source of the Gumbel noise.
        device (`torch.device`, *optional*):
            Where the model's logits are (the pipeline's execution device); defaults to the model's device.
    """

    def __init__(
        self,
        model: PreTrainedModel,
        num_image_codes: int,
        batch_size: int,
        top_k: Optional[int] = None,
        top_p: Optional[float] = None,
        temperature: float = 1.0,
        guidance_scale: float = 1.0,
        generator: GeneratorType = None,
        device: Optional[Union[str, torch.device]] = None,
    ):
        self.model = model
        self.num_image_codes = num_image_codes
        self.batch_size = batch_size
        self.vocab_size = model.config.vocab_size
        self.top_k = min(top_k, num_image_codes) if top_k else None
        self.top_p = TopPLogitsWarper(top_p) if top_p is not None and top_p < 1.0 else None
        self.temperature = temperature
        self.guidance_scale = guidance_scale
        # Fixed for the whole call: whether the null-class rows run. The scale itself may change between steps
        # (a callback setting `pipe._guidance_scale`), the batch layout may not.
        self.guided = guidance_scale != 1.0
        self.generator = generator
        self.device = torch.device(device) if device is not None else model.device
        # One Exp(1) buffer of the full vocabulary, refilled in place every step: the draws equal
        # GumbelSamplingLogitsProcessor's fresh (B, V) tensor, without an allocation per token.
        noise_device = (
            generator[0].device if isinstance(generator, list) else getattr(generator, "device", self.device)
        )
        self._exponential = torch.empty(batch_size, self.vocab_size, device=noise_device)

    def new_cache(self) -> DynamicCache:
        return DynamicCache(config=self.model.config)

    def model_inputs(
        self, input_ids: torch.LongTensor, unconditional_ids: Optional[torch.LongTensor] = None
    ) -> torch.LongTensor:
        """The forward's rows: `input_ids` (B, L), followed when guided by the null-class rows (B, L)."""
        if not self.guided:
            return input_ids
        if unconditional_ids is None or unconditional_ids.shape != input_ids.shape:
            shape = None if unconditional_ids is None else tuple(unconditional_ids.shape)
            raise ValueError(
                f"Guided sampling needs null-class inputs of the conditional inputs' shape {tuple(input_ids.shape)}, "
                f"got {shape}."
            )
        return torch.cat([input_ids, unconditional_ids])

    def scores(self, logits: torch.Tensor) -> torch.Tensor:
        """
        (B or 2B, V) last-position logits -> (B, K) filtered scores over the image codes (before the noise):
        guided log-probabilities when guided, then temperature, top-k and top-p.
        """
        scores = logits.float()
        if self.guided:
            # guidance on the full vocabulary, as transformers' CFG processor computes it
            scores = guided_log_probs(*scores.chunk(2), self.guidance_scale)
        scores = scores[:, : self.num_image_codes]
        if self.temperature != 1.0:
            scores = scores / self.temperature
        if self.top_k is not None:
            kth = torch.topk(scores, self.top_k, dim=-1).values[:, -1:]
            scores = scores.masked_fill(scores < kth, -math.inf)
        if self.top_p is not None:
            scores = self.top_p(None, scores)
        return scores

    def gumbel_noise(self) -> torch.Tensor:
        """(B, K) Gumbel(0, 1) noise, drawn for the full vocabulary as `GumbelSamplingLogitsProcessor` does."""
        if isinstance(self.generator, list):
            for row, generator in zip(self._exponential, self.generator):
                row.exponential_(generator=generator)
        else:
            self._exponential.exponential_(generator=self.generator)
        # a blocking copy: the buffer is refilled in place at the next step
        exponential = self._exponential[:, : self.num_image_codes].to(self.device)
        # the clamp keeps the noise finite, so masked (-inf) entries stay -inf instead of becoming NaN
        return exponential.clamp(min=1e-30).log_().neg_()

    def sample(self, logits: torch.Tensor) -> torch.LongTensor:
        """(B or 2B, V) last-position logits -> (B,) sampled image codes."""
        return (self.scores(logits) + self.gumbel_noise()).argmax(dim=-1)

    def __call__(self, model_ids: torch.LongTensor, cache: DynamicCache) -> torch.LongTensor:
        """
        One step: run the model on `model_ids` (B or 2B rows of new tokens, see `model_inputs`) after what
        `cache` holds (the cache is extended in place) and sample the next (B,) image codes.
        """
        logits = self.model(model_ids, cache=cache, use_cache=True, logits_to_keep=1).logits
        return self.sample(logits[:, -1])


def sample_tokens(
    sampler: ImageTokenSampler,
    prefix: torch.LongTensor,
    kept: torch.LongTensor,
    num_tokens: int,
    unconditional_prefix: Optional[torch.LongTensor] = None,
    callback: Optional[TokenCallback] = None,
    progress_bar=None,
) -> torch.LongTensor:
    """
    Sample image codes after `prefix + kept` until there are `num_tokens` of them (`kept` included), with
    the model's KV cache: the first step feeds the whole prompt, every later step only the token just
    sampled (twice when guided: once per branch, as rows of one batch).

    Args:
        prefix (`torch.LongTensor` of shape `(B, P)`): condition or start tokens.
        kept (`torch.LongTensor` of shape `(B, k)`): given image codes (completion), in generation order.
        unconditional_prefix (`torch.LongTensor` of shape `(B, P)`, *optional*): the null-class prefix,
            for guidance.
        callback (*optional*):
            Called after each token as `callback(step, index, tokens)`, `index` being the token's index in
            generation order and `tokens` the (B, index + 1) codes so far (a view, `kept` included). It
            returns `(replacement or None, stop)`: a replacement of that shape becomes the tokens so far
            (the cache is rebuilt from the prompt when it differs); `stop` ends sampling early.

    Returns:
        `torch.LongTensor` of shape `(B, t)`: `kept` and the sampled codes; `t = num_tokens` unless stopped.
    """
    batch_size, num_kept = kept.shape
    tokens = torch.empty(batch_size, num_tokens, dtype=torch.long, device=kept.device)
    tokens[:, :num_kept] = kept

    def prompt(length: int) -> torch.LongTensor:
        so_far = tokens[:, :length]
        null = None if unconditional_prefix is None else torch.cat([unconditional_prefix, so_far], dim=1)
        return sampler.model_inputs(torch.cat([prefix, so_far], dim=1), null)

    cache, model_ids = sampler.new_cache(), prompt(num_kept)
    for index in range(num_kept, num_tokens):
        tokens[:, index] = sampler(model_ids, cache)
        if progress_bar is not None:
            progress_bar.update(1)
        if callback is not None:
            so_far = tokens[:, : index + 1]
            replacement, stop = callback(index - num_kept, index, so_far)
            if stop:
                if replacement is not None:
                    so_far.copy_(replacement)
                return so_far
            if replacement is not None and replacement is not so_far and not torch.equal(replacement, so_far):
                so_far.copy_(replacement)
                cache, model_ids = sampler.new_cache(), prompt(index + 1)  # the cached keys and values are stale
                continue
        next_ids = tokens[:, index : index + 1]
        model_ids = torch.cat([next_ids, next_ids]) if sampler.guided else next_ids
    return tokens
