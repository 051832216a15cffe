"""Codebook health: usage over a recent window, perplexity, and re-seeding of dead codes."""

from collections import deque
from typing import Dict, Optional

import torch

from ..utils.codebook_stats import perplexity_from_counts, usage_from_counts


class CodebookUsageTracker:
    """
    Counts how often each code was chosen over the last `window` updates.

    `usage` is the fraction of codes chosen at least once in the window; `perplexity` is
    exp(entropy) of the code frequencies in the window (K for perfectly uniform use, 1 for
    a single code). Has `state_dict` / `load_state_dict`, so Accelerate checkpoints it.
    """

    def __init__(self, num_embeddings: int, window: int = 100):
        if window < 1:
            raise ValueError(f"window must be at least 1, got {window}.")
        self.num_embeddings = num_embeddings
        self.window = window
        self.history = deque(maxlen=window)

    def update(self, indices: torch.Tensor) -> None:
        """Record a batch of indices of any shape (e.g. (B, h, w), gathered from all ranks).

        The counts stay on the indices' device (`index_add_`, unlike `bincount`, needs no host sync),
        so a training step can record every batch and read the window back only when it logs.
        """
        flat = indices.detach().flatten().long()
        counts = torch.zeros(self.num_embeddings, dtype=torch.long, device=flat.device)
        self.history.append(counts.index_add_(0, flat, torch.ones_like(flat)))

    def counts(self) -> torch.Tensor:
        """(num_embeddings,) counts over the window, on the CPU."""
        if not self.history:
            return torch.zeros(self.num_embeddings, dtype=torch.long)
        device = self.history[-1].device
        return torch.stack([counts.to(device) for counts in self.history]).sum(dim=0).cpu()

    def dead_codes(self) -> torch.Tensor:
        """(num_dead,) indices of codes not chosen in the window."""
        return (self.counts() == 0).nonzero().flatten()

    def metrics(self) -> Dict[str, float]:
        counts = self.counts()
        return {"codebook_usage": usage_from_counts(counts), "codebook_perplexity": perplexity_from_counts(counts)}

    def reset(self) -> None:
        self.history.clear()

    def state_dict(self) -> Dict:
        history = [counts.cpu() for counts in self.history]
        return {"num_embeddings": self.num_embeddings, "window": self.window, "history": history}

    def load_state_dict(self, state: Dict) -> None:
        self.num_embeddings, self.window = state["num_embeddings"], state["window"]
        self.history = deque(state["history"], maxlen=self.window)


@torch.no_grad()
def reseed_dead_codes(
    codebook: torch.Tensor,
    dead: torch.Tensor,
    latents: torch.Tensor,
    generator: Optional[torch.Generator] = None,
    optimizer: Optional[torch.optim.Optimizer] = None,
) -> int:
    """
    Replace the codebook rows `dead` by encoder outputs drawn at random from `latents`.

    Args:
        codebook (`torch.nn.Parameter` of shape `(num_embeddings, embed_dim)`): updated in place (the
            parameter itself, not `.data`, so its optimizer state can be found).
        dead (`torch.LongTensor` of shape `(num_dead,)`): rows to re-seed.
        latents (`torch.Tensor` of shape `(batch_size, embed_dim, height, width)`): pre-quantization
            encoder outputs (gather them from all ranks so every rank re-seeds identically).
        generator: seeds the choice of latents; use the same seed on every rank.
        optimizer: if given, its Adam moments for the re-seeded rows are zeroed so stale
            statistics of the dead code do not push the new one around.

    Returns:
        The number of codes re-seeded.
    """
    if dead.numel() == 0:
        return 0
    flat = latents.detach().permute(0, 2, 3, 1).reshape(-1, latents.shape[1]).float().cpu()
    picks = torch.randint(0, flat.shape[0], (dead.numel(),), generator=generator)
    dead = dead.to(codebook.device)
    codebook[dead] = flat[picks].to(device=codebook.device, dtype=codebook.dtype)
    if optimizer is not None:
        state = optimizer.state.get(codebook, {})
        for key in ("exp_avg", "exp_avg_sq"):
            if key in state:
                state[key][dead] = 0
    return dead.numel()


@torch.no_grad()
def copy_rows_to_ema(model: torch.nn.Module, ema_model, parameter_name: str, rows: torch.Tensor) -> None:
    """
    Copy rows `rows` of the parameter `parameter_name` of `model` into its shadow in `ema_model` (a diffusers
    `EMAModel` built from `model.parameters()`), so re-seeded codes are not averaged back towards dead ones.

    The shadow is found by name: `EMAModel.shadow_params` follows `model.parameters()`, which is the order of
    `named_parameters()`; a name that is not a parameter of `model` raises a `KeyError` naming it.
    """
    shadows = dict(zip((name for name, _ in model.named_parameters()), ema_model.shadow_params))
    if parameter_name not in shadows:
        raise KeyError(f"{parameter_name!r} is not a parameter of {type(model).__name__}.")
    parameter, shadow = model.get_parameter(parameter_name), shadows[parameter_name]
    if shadow.shape != parameter.shape:
        raise ValueError(
            f"The EMA shadow of {parameter_name!r} has shape {tuple(shadow.shape)}, the parameter "
            f"{tuple(parameter.shape)}: the EMA was not built from this model's parameters."
        )
    shadow[rows.to(shadow.device)] = parameter[rows.to(parameter.device)].to(shadow.device, shadow.dtype)
