"""Quantizers that map continuous latents to codebook entries.

Both return `(quantized, loss, indices)` with `quantized` of shape (B, D, h, w), a scalar
`loss` and `indices` of shape (B, h, w) in raster order.
"""

from typing import Tuple

import torch
import torch.nn.functional as F
from torch import nn


class VectorQuantizer(nn.Module):
    """Nearest-neighbour vector quantizer with straight-through gradients (VQ-VAE, VQGAN).

    The codebook lives in `embedding` (the name the original checkpoints use). Distances are
    computed as `|z|^2 + |e|^2 - 2 z.e` in fp32, the formula the original uses, so indices
    agree with it bit for bit, also under autocast.
    """

    def __init__(self, num_embeddings: int, embed_dim: int, beta: float = 0.25, legacy_beta: bool = False):
        super().__init__()
        self.num_embeddings = num_embeddings
        self.embed_dim = embed_dim
        self.beta = beta
        self.legacy_beta = legacy_beta
        self.embedding = nn.Embedding(num_embeddings, embed_dim)
        nn.init.uniform_(self.embedding.weight, -1.0 / num_embeddings, 1.0 / num_embeddings)

    def nearest_indices(self, latents: torch.Tensor) -> torch.Tensor:
        """(B, D, h, w) latents -> (B, h, w) indices of the closest codebook vectors."""
        batch, _, height, width = latents.shape
        with torch.autocast(device_type=latents.device.type, enabled=False):
            flat = latents.detach().permute(0, 2, 3, 1).reshape(-1, self.embed_dim).float()
            codebook = self.embedding.weight.detach().float()
            distances = (
                flat.pow(2).sum(dim=1, keepdim=True)
                + codebook.pow(2).sum(dim=1)
                - 2 * torch.einsum("nd,dk->nk", flat, codebook.t())
            )
        return distances.argmin(dim=1).view(batch, height, width)

    def embed_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """(B, h, w) indices -> (B, D, h, w) codebook vectors."""
        return self.embedding(indices).permute(0, 3, 1, 2).contiguous()

    def forward(self, latents: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        indices = self.nearest_indices(latents)
        codes = self.embed_indices(indices).to(latents.dtype)

        codebook_term = F.mse_loss(codes, latents.detach())  # moves the codes towards the encoder
        commitment_term = F.mse_loss(latents, codes.detach())  # keeps the encoder near its codes
        if self.legacy_beta:
            loss = commitment_term + self.beta * codebook_term
        else:
            loss = self.beta * commitment_term + codebook_term

        quantized = latents + (codes - latents).detach()  # straight-through estimator
        return quantized, loss, indices


class GumbelQuantizer(nn.Module):
    """Gumbel-softmax quantizer (the original's `GumbelQuantize`, used by vqgan_gumbel_f8).

    A 1x1 convolution `proj` turns latents into logits over the codebook `embed`. While
    training, codes are sampled with the Gumbel-softmax trick; in eval mode encoding is
    deterministic (the argmax of the logits), unlike the original, which keeps sampling.
    """

    def __init__(
        self,
        in_channels: int,
        num_embeddings: int,
        embed_dim: int,
        temperature: float = 1.0,
        kl_weight: float = 5e-4,
        straight_through: bool = True,
    ):
        super().__init__()
        self.num_embeddings = num_embeddings
        self.embed_dim = embed_dim
        self.temperature = temperature
        self.kl_weight = kl_weight
        self.straight_through = straight_through
        self.proj = nn.Conv2d(in_channels, num_embeddings, kernel_size=1)
        self.embed = nn.Embedding(num_embeddings, embed_dim)

    def embed_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """(B, h, w) indices -> (B, D, h, w) codebook vectors."""
        return self.embed(indices).permute(0, 3, 1, 2).contiguous()

    def forward(self, latents: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        logits = self.proj(latents)
        if self.training:
            one_hot = F.gumbel_softmax(logits, tau=self.temperature, dim=1, hard=self.straight_through)
            quantized = torch.einsum("bkhw,kd->bdhw", one_hot, self.embed.weight.to(one_hot.dtype))
            indices = one_hot.argmax(dim=1)
        else:
            indices = logits.argmax(dim=1)
            quantized = self.embed_indices(indices).to(latents.dtype)

        # KL divergence of the code distribution to the uniform prior.
        probs = F.softmax(logits.float(), dim=1)
        loss = self.kl_weight * (probs * torch.log(probs * self.num_embeddings + 1e-10)).sum(dim=1).mean()
        return quantized, loss, indices
