"""The VQGAN+CLIP objective: spherical distance between CLIP embeddings, and a clamp that keeps gradients."""

import torch
import torch.nn.functional as F


def spherical_distance(embeds: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """
    Squared great-circle distance `2 * arcsin(|u - v| / 2) ** 2` between the unit vectors of `embeds` and
    `targets` (broadcast against each other, last dimension the embedding): 0 for the same direction, `pi**2 / 2`
    for opposite ones. Unlike `1 - cos`, its gradient does not vanish as two embeddings get close.
    """
    chord = (F.normalize(embeds, dim=-1) - F.normalize(targets, dim=-1)).norm(dim=-1)
    return (chord / 2).clamp(max=1.0).arcsin().pow(2).mul(2)


class _ClampWithInwardGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, values: torch.Tensor, low: float, high: float) -> torch.Tensor:
        ctx.save_for_backward(values)
        ctx.low, ctx.high = low, high
        return values.clamp(low, high)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        (values,) = ctx.saved_tensors
        # A descent step moves values by -grad: keep the gradient inside the range and where it points inwards.
        outward = ((values < ctx.low) & (grad_output > 0)) | ((values > ctx.high) & (grad_output < 0))
        return grad_output.masked_fill(outward, 0.0), None, None


def clamp_with_grad(values: torch.Tensor, low: float = 0.0, high: float = 1.0) -> torch.Tensor:
    """
    `values.clamp(low, high)` whose gradient still reaches saturated entries when descent would bring them
    back into the range. A plain clamp gives them no gradient, so a white init image's background
    (decoded slightly above 1) could never change.
    """
    return _ClampWithInwardGradient.apply(values, low, high)
