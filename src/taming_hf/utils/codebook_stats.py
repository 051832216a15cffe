"""Codebook statistics from a code histogram, shared by training (the usage tracker) and evaluation (the metrics).

Both take `counts` of shape `(num_embeddings,)`: how often each code was chosen. `code_counts` builds that
histogram from indices of any shape.
"""

import torch


def code_counts(indices: torch.Tensor, num_embeddings: int) -> torch.Tensor:
    """(num_embeddings,) long histogram, on the CPU, of `indices` of any shape with values in [0, num_embeddings)."""
    flat = indices.detach().flatten().long().cpu()
    if flat.numel() and (int(flat.min()) < 0 or int(flat.max()) >= num_embeddings):
        bad = int(flat.min()) if int(flat.min()) < 0 else int(flat.max())
        raise ValueError(f"Code indices must lie in [0, {num_embeddings}), got a value of {bad}.")
    return torch.bincount(flat, minlength=num_embeddings)


def usage_from_counts(counts: torch.Tensor) -> float:
    """Fraction of codes with a non-zero count."""
    return int((counts > 0).sum()) / counts.numel()


def perplexity_from_counts(counts: torch.Tensor) -> float:
    """exp(entropy) of the code histogram: the effective number of codes in use (0 for an empty histogram)."""
    total = counts.sum()
    if total == 0:
        return 0.0
    probs = counts.double() / total
    nonzero = probs[probs > 0]
    return torch.exp(-(nonzero * nonzero.log()).sum()).item()
