"""The VQGAN training objective: L1 + LPIPS reconstruction, codebook loss, and a PatchGAN
adversarial term weighted adaptively on the decoder's last layer.

    total_G = |x - x_hat| + w_p * LPIPS(x, x_hat) + w_q * L_codebook
              + disc_factor(step) * lambda * w_d * L_G(D(x_hat))
    lambda  = clamp(||grad_last L_rec|| / (||grad_last L_G|| + 1e-4), 0, 1e4), detached
    total_D = disc_factor(step) * L_D(D(x), D(x_hat.detach()))

`disc_factor(step)` is 0 before `disc_start` for both the generator term and the
discriminator's own loss, so the discriminator does not learn before it is switched on.
"""

from dataclasses import dataclass
from typing import Dict, Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..utils.offline_weights import explain_missing_weights

ADAPTIVE_WEIGHT_EPS = 1e-4
ADAPTIVE_WEIGHT_MAX = 1e4
GAN_LOSSES = ("hinge", "vanilla")
PIXEL_LOSSES = ("l1", "l2")


def discriminator_factor(global_step: int, disc_start: int, factor: float = 1.0) -> float:
    """`factor` once `global_step >= disc_start`, else 0."""
    return factor if global_step >= disc_start else 0.0


def hinge_d_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    """0.5 * (mean(relu(1 - D(x))) + mean(relu(1 + D(x_hat)))); logits of any shape."""
    return 0.5 * (F.relu(1.0 - logits_real).mean() + F.relu(1.0 + logits_fake).mean())


def vanilla_d_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    """0.5 * (mean(softplus(-D(x))) + mean(softplus(D(x_hat)))): the non-saturating GAN loss."""
    return 0.5 * (F.softplus(-logits_real).mean() + F.softplus(logits_fake).mean())


def generator_adversarial_loss(logits_fake: torch.Tensor) -> torch.Tensor:
    """-mean(D(x_hat)), the generator term the original uses with both D losses."""
    return -logits_fake.mean()


def adaptive_weight(
    reconstruction_loss: torch.Tensor,
    generator_loss: torch.Tensor,
    last_layer: torch.Tensor,
    eps: float = ADAPTIVE_WEIGHT_EPS,
    max_weight: float = ADAPTIVE_WEIGHT_MAX,
) -> torch.Tensor:
    """
    ||d rec / d last|| / (||d gen / d last|| + eps), clamped to [0, max_weight] and detached.

    Args:
        reconstruction_loss, generator_loss (`torch.Tensor` of shape `()`): losses whose graphs
            reach `last_layer`; both graphs are retained for the later backward pass.
        last_layer (`torch.Tensor`): the decoder's last weight (`VQGANModel.get_last_layer()`).
    """
    rec_grad = torch.autograd.grad(reconstruction_loss, last_layer, retain_graph=True)[0]
    gen_grad = torch.autograd.grad(generator_loss, last_layer, retain_graph=True)[0]
    weight = rec_grad.float().norm() / (gen_grad.float().norm() + eps)
    return weight.clamp(0.0, max_weight).detach()


@dataclass
class LossOutput:
    loss: torch.Tensor
    logs: Dict[str, float]


class VQGANLoss(nn.Module):
    """
    Losses for the autoencoder (generator) and the discriminator of a VQGAN.

    Args:
        perceptual_weight: weight of LPIPS-VGG in the reconstruction loss (0 disables LPIPS).
        codebook_weight: weight of the quantizer loss.
        disc_weight: multiplies the adaptive weight of the generator's adversarial term.
        disc_factor: value of `discriminator_factor` once training passes `disc_start`.
        disc_start: step at which the discriminator (both losses) is switched on.
        disc_loss: "hinge" or "vanilla".
        reconstruction_loss: "l1" (the VQGAN's pixel loss) or "l2" (mean squared error, the
            VQ-VAE baseline's).
    """

    def __init__(
        self,
        perceptual_weight: float = 1.0,
        codebook_weight: float = 1.0,
        disc_weight: float = 1.0,
        disc_factor: float = 1.0,
        disc_start: int = 0,
        disc_loss: str = "hinge",
        reconstruction_loss: str = "l1",
    ):
        super().__init__()
        if disc_loss not in GAN_LOSSES:
            raise ValueError(f"disc_loss must be one of {GAN_LOSSES}, got {disc_loss!r}.")
        if reconstruction_loss not in PIXEL_LOSSES:
            raise ValueError(f"reconstruction_loss must be one of {PIXEL_LOSSES}, got {reconstruction_loss!r}.")
        self.pixel_loss = reconstruction_loss
        self.perceptual_weight = perceptual_weight
        self.codebook_weight = codebook_weight
        self.disc_weight = disc_weight
        self.disc_factor = disc_factor
        self.disc_start = disc_start
        self.disc_loss = disc_loss
        self.perceptual = None
        if perceptual_weight > 0:
            import lpips

            with explain_missing_weights("lpips-vgg16"):  # offline without the VGG16 file: say how to place it
                self.perceptual = lpips.LPIPS(net="vgg", verbose=False).eval().requires_grad_(False)

    def perceptual_loss(self, inputs: torch.Tensor, reconstructions: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) pair in [-1, 1] -> (B,) LPIPS distances; grayscale is repeated to RGB."""
        if inputs.shape[1] == 1:
            inputs, reconstructions = inputs.repeat(1, 3, 1, 1), reconstructions.repeat(1, 3, 1, 1)
        return self.perceptual(inputs.float(), reconstructions.float()).flatten()

    def reconstruction_loss(self, inputs: torch.Tensor, reconstructions: torch.Tensor) -> torch.Tensor:
        """mean(|x - x_hat|) (or mean((x - x_hat)^2) for "l2") + perceptual_weight * mean(LPIPS(x, x_hat))."""
        difference = inputs.float() - reconstructions.float()
        loss = difference.pow(2).mean() if self.pixel_loss == "l2" else difference.abs().mean()
        if self.perceptual is not None:
            loss = loss + self.perceptual_weight * self.perceptual_loss(inputs, reconstructions).mean()
        return loss

    def generator_loss(
        self,
        inputs: torch.Tensor,
        reconstructions: torch.Tensor,
        codebook_loss: torch.Tensor,
        global_step: int,
        logits_fake: Optional[torch.Tensor] = None,
        last_layer: Optional[torch.Tensor] = None,
    ) -> LossOutput:
        """
        The autoencoder's loss. `logits_fake` (D applied to `reconstructions`, with gradients)
        and `last_layer` are only needed once `global_step >= disc_start`; before that the
        adversarial term is 0 and the discriminator need not run.
        """
        rec_loss = self.reconstruction_loss(inputs, reconstructions)
        loss = rec_loss + self.codebook_weight * codebook_loss.float()
        factor = discriminator_factor(global_step, self.disc_start, self.disc_factor)
        logs = {"rec_loss": rec_loss.item(), "codebook_loss": codebook_loss.item(), "disc_factor": factor}
        if factor > 0:
            if logits_fake is None or last_layer is None:
                raise ValueError("generator_loss needs logits_fake and last_layer once the discriminator is on.")
            g_loss = generator_adversarial_loss(logits_fake.float())
            d_weight = self.disc_weight * adaptive_weight(rec_loss, g_loss, last_layer)
            loss = loss + factor * d_weight * g_loss
            logs.update(g_loss=g_loss.item(), d_weight=d_weight.item())
        else:
            logs.update(g_loss=0.0, d_weight=0.0)
        logs["ae_loss"] = loss.item()
        return LossOutput(loss=loss, logs=logs)

    def discriminator_loss(self, logits_real: torch.Tensor, logits_fake: torch.Tensor, global_step: int) -> LossOutput:
        """disc_factor(step) * L_D; `logits_fake` must come from detached reconstructions."""
        factor = discriminator_factor(global_step, self.disc_start, self.disc_factor)
        loss_fn = hinge_d_loss if self.disc_loss == "hinge" else vanilla_d_loss
        loss = factor * loss_fn(logits_real.float(), logits_fake.float())
        logs = {
            "d_loss": loss.item(),
            "logits_real": logits_real.detach().float().mean().item(),
            "logits_fake": logits_fake.detach().float().mean().item(),
        }
        return LossOutput(loss=loss, logs=logs)
