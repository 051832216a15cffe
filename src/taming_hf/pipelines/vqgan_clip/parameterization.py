"""What the VQGANCLIPPipeline optimises, and how it becomes codebook vectors the VQGAN decodes.

Two parameterisations of a `(B, h, w)` grid of codes:
- `"latents"`: continuous `(B, D, h, w)` latents, quantised to their nearest codebook vectors with a
  straight-through gradient and clamped, after each step, to the codebook's per-channel range, so they
  never drift where no code lies.
- `"logits"`: `(B, K, h, w)` logits over the codebook; the decoder sees the one-hot argmax code, the
  gradient flows through the softmax (a straight-through categorical).
"""

import math
from typing import Tuple

import torch
import torch.nn.functional as F


def nearest_codes(latents: torch.Tensor, codebook: torch.Tensor) -> torch.LongTensor:
    """`(B, D, h, w)` latents, `(K, D)` codebook -> `(B, h, w)` indices of the nearest codebook vectors."""
    batch, dim, height, width = latents.shape
    flat = latents.detach().permute(0, 2, 3, 1).reshape(-1, dim).float()
    return torch.cdist(flat, codebook.detach().float()).argmin(dim=1).view(batch, height, width)


def embed_codes(indices: torch.LongTensor, codebook: torch.Tensor) -> torch.Tensor:
    """`(B, h, w)` indices -> `(B, D, h, w)` codebook vectors."""
    return codebook[indices].permute(0, 3, 1, 2).contiguous()


class LatentParameterization:
    """Latents quantised to the nearest code with straight-through gradients, clamped to the codebook's range."""

    name = "latents"

    def __init__(self, codebook: torch.Tensor, start_indices: torch.LongTensor):
        self.codebook = codebook.detach().float()
        self.low = self.codebook.min(dim=0).values.view(1, -1, 1, 1)
        self.high = self.codebook.max(dim=0).values.view(1, -1, 1, 1)
        self.parameter = embed_codes(start_indices, self.codebook).clone().requires_grad_(True)

    def quantized(self) -> Tuple[torch.Tensor, torch.LongTensor]:
        """The `(B, D, h, w)` codebook vectors the decoder sees (gradients pass straight to the latents) and
        their `(B, h, w)` indices."""
        latents = self.parameter
        indices = nearest_codes(latents, self.codebook)
        codes = embed_codes(indices, self.codebook)
        return latents + (codes - latents).detach(), indices

    def anchor(self) -> torch.Tensor:
        """What `init_weight` keeps close to the start: the latents themselves."""
        return self.parameter

    @torch.no_grad()
    def after_step(self) -> None:
        self.parameter.copy_(torch.maximum(torch.minimum(self.parameter, self.high), self.low))


class LogitParameterization:
    """
    Logits over the codebook at each cell; the decoder sees the argmax code, gradients flow through the
    softmax. The start code's logit is `log K` above the others', so it holds about half the probability
    whatever the codebook size.
    """

    name = "logits"

    def __init__(self, codebook: torch.Tensor, start_indices: torch.LongTensor):
        self.codebook = codebook.detach().float()
        num_codes = self.codebook.shape[0]
        one_hot = F.one_hot(start_indices, num_codes).permute(0, 3, 1, 2).float()
        self.parameter = (one_hot * math.log(num_codes)).requires_grad_(True)

    def probabilities(self) -> torch.Tensor:
        return self.parameter.softmax(dim=1)

    def quantized(self) -> Tuple[torch.Tensor, torch.LongTensor]:
        probabilities = self.probabilities()
        indices = probabilities.argmax(dim=1)
        hard = F.one_hot(indices, probabilities.shape[1]).permute(0, 3, 1, 2).to(probabilities.dtype)
        one_hot = hard + probabilities - probabilities.detach()  # straight-through categorical
        return torch.einsum("bkhw,kd->bdhw", one_hot, self.codebook), indices

    def anchor(self) -> torch.Tensor:
        """What `init_weight` keeps close to the start: the expected codebook vector of each cell."""
        return torch.einsum("bkhw,kd->bdhw", self.probabilities(), self.codebook)

    def after_step(self) -> None:
        pass


PARAMETERIZATIONS = {"latents": LatentParameterization, "logits": LogitParameterization}
