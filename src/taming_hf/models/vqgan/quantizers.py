"""Quantizers that map continuous latents to codebook entries.

Both return `(quantized, loss, indices)` with `quantized` of shape (B, D, h, w), a scalar
`loss` and `indices` of shape (B, h, w) in raster order.
"""

from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn


class VectorQuantizer(nn.Module):
    """Nearest-neighbour vector quantizer with straight-through gradients (VQ-VAE, VQGAN).

    The codebook lives in `embedding` (the name the original checkpoints use); `codebook` is the same weight
    under the name both quantizers share. Distances are computed as `|z|^2 + |e|^2 - 2 z.e` in fp32, the formula
    the original uses, so indices agree with it bit for bit, also under autocast.

    Options of the strongest recent tokenizers (all off by default, which is the original's quantizer exactly):
    - `codebook_dim`: a factorised, low-dimensional lookup (ViT-VQGAN, LlamaGen): latents of size `embed_dim`
      are projected to `codebook_dim` (`in_proj`), looked up there, and the code projected back (`out_proj`).
    - `normalize_codes`: latents and codes are l2-normalised before the lookup (cosine-similarity codes).
    - `entropy_weight`: adds `entropy_weight * (H(p(code | z)) - H(mean_z p(code | z)))` with
      `p = softmax(-distance / entropy_temperature)`: each vector confidently assigned, the codebook used evenly.
    """

    def __init__(
        self,
        num_embeddings: int,
        embed_dim: int,
        beta: float = 0.25,
        legacy_beta: bool = False,
        codebook_dim: Optional[int] = None,
        normalize_codes: bool = False,
        entropy_weight: float = 0.0,
        entropy_temperature: float = 0.01,
    ):
        super().__init__()
        self.num_embeddings = num_embeddings
        self.embed_dim = embed_dim
        self.codebook_dim = codebook_dim or embed_dim
        self.beta = beta
        self.legacy_beta = legacy_beta
        self.normalize_codes = normalize_codes
        self.entropy_weight = entropy_weight
        self.entropy_temperature = entropy_temperature
        self.factorized = codebook_dim is not None and codebook_dim != embed_dim
        if self.factorized:
            self.in_proj = nn.Linear(embed_dim, self.codebook_dim)
            self.out_proj = nn.Linear(self.codebook_dim, embed_dim)
        self.embedding = nn.Embedding(num_embeddings, self.codebook_dim)
        nn.init.uniform_(self.embedding.weight, -1.0 / num_embeddings, 1.0 / num_embeddings)

    @property
    def codebook(self) -> torch.Tensor:
        """(num_embeddings, codebook_dim) codebook weight."""
        return self.embedding.weight

    def project(self, latents: torch.Tensor) -> torch.Tensor:
        """(B, embed_dim, h, w) latents -> (B, codebook_dim, h, w) vectors in lookup space (identity by default)."""
        if self.factorized:
            latents = self.in_proj(latents.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return F.normalize(latents, dim=1) if self.normalize_codes else latents

    def _codes(self, indices: torch.Tensor) -> torch.Tensor:
        """(B, h, w) indices -> (B, codebook_dim, h, w) codes in lookup space."""
        codes = self.embedding(indices).permute(0, 3, 1, 2)
        return F.normalize(codes, dim=1) if self.normalize_codes else codes

    def unproject(self, codes: torch.Tensor) -> torch.Tensor:
        """(B, codebook_dim, h, w) vectors in lookup space -> (B, embed_dim, h, w) quantized latents (identity
        unless factorised)."""
        if not self.factorized:
            return codes
        return self.out_proj(codes.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)

    def _distances(self, flat: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
        return flat.pow(2).sum(dim=1, keepdim=True) + codebook.pow(2).sum(dim=1) - 2 * flat @ codebook.t()

    def lookup_codebook(self) -> torch.Tensor:
        """(num_embeddings, codebook_dim): the vectors latents are matched against and codes stand for before
        `unproject` (the codebook, l2-normalised when `normalize_codes`)."""
        codebook = self.embedding.weight.float()
        return F.normalize(codebook, dim=1) if self.normalize_codes else codebook

    def nearest_indices(self, latents: torch.Tensor) -> torch.Tensor:
        """(B, embed_dim, h, w) latents -> (B, h, w) indices of the closest codebook vectors."""
        return self._nearest(self.project(latents))

    def _nearest(self, projected: torch.Tensor) -> torch.Tensor:
        batch, _, height, width = projected.shape
        with torch.autocast(device_type=projected.device.type, enabled=False):
            flat = projected.detach().permute(0, 2, 3, 1).reshape(-1, self.codebook_dim).float()
            codebook = self.lookup_codebook().detach()
            if self.normalize_codes:
                flat = F.normalize(flat, dim=1)  # re-normalised in fp32: bf16 unit vectors are not quite unit
            distances = (
                flat.pow(2).sum(dim=1, keepdim=True)
                + codebook.pow(2).sum(dim=1)
                - 2 * torch.einsum("nd,dk->nk", flat, codebook.t())
            )
        return distances.argmin(dim=1).view(batch, height, width)

    def embed_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """(B, h, w) indices -> (B, embed_dim, h, w) codebook vectors (projected back when factorised)."""
        return self.unproject(self._codes(indices)).contiguous()

    def entropy_penalty(self, projected: torch.Tensor) -> torch.Tensor:
        """H(p(code | z)) averaged over vectors minus H of the batch's mean assignment, in fp32."""
        flat = projected.permute(0, 2, 3, 1).reshape(-1, self.codebook_dim).float()
        logits = -self._distances(flat, self.lookup_codebook()) / self.entropy_temperature
        log_probs = F.log_softmax(logits, dim=1)
        per_vector = -(log_probs.exp() * log_probs).sum(dim=1).mean()
        mean_probs = log_probs.exp().mean(dim=0)
        codebook_entropy = -(mean_probs * torch.log(mean_probs + 1e-10)).sum()
        return per_vector - codebook_entropy

    def forward(self, latents: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        projected = self.project(latents)
        indices = self._nearest(projected)
        codes = self._codes(indices).to(projected.dtype)

        codebook_term = F.mse_loss(codes, projected.detach())  # moves the codes towards the encoder
        commitment_term = F.mse_loss(projected, codes.detach())  # keeps the encoder near its codes
        if self.legacy_beta:
            loss = commitment_term + self.beta * codebook_term
        else:
            loss = self.beta * commitment_term + codebook_term
        if self.entropy_weight > 0:
            loss = loss + self.entropy_weight * self.entropy_penalty(projected)

        quantized = projected + (codes - projected).detach()  # straight-through estimator
        return self.unproject(quantized), loss, indices


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

    @property
    def codebook(self) -> torch.Tensor:
        """(num_embeddings, embed_dim) codebook weight (`embed`, the original checkpoints' name)."""
        return self.embed.weight

    def embed_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """(B, h, w) indices -> (B, D, h, w) codebook vectors."""
        return self.embed(indices).permute(0, 3, 1, 2).contiguous()

    def project(self, latents: torch.Tensor) -> torch.Tensor:
        """Codes live in latent space: the identity."""
        return latents

    def lookup_codebook(self) -> torch.Tensor:
        """(num_embeddings, embed_dim): the codebook itself (codes live in latent space)."""
        return self.embed.weight

    def unproject(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes live in latent space: the identity."""
        return codes

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
