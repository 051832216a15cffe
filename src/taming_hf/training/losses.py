"""The VQGAN training objective: L1 + LPIPS reconstruction, codebook loss, and a PatchGAN
adversarial term weighted adaptively on the decoder's last layer.

    total_G = |x - x_hat| + w_p * LPIPS(x, x_hat) + w_q * L_codebook
              + disc_factor(step) * lambda * w_d * L_G(D(x_hat))
    lambda  = clamp(||grad_last L_rec|| / (||grad_last L_G|| + 1e-4), 0, 1e4), detached
    total_D = disc_factor(step) * L_D(D(x), D(x_hat.detach()))

`VQGANLoss.gan_phase(step)` is the one place that decides whether the discriminator is on at a
step and with what weight: before `disc_start` neither the generator term nor the
discriminator's own loss is computed, so the discriminator does not learn before it is switched on.

Every loss returns its terms as detached 0-d tensors (`LossOutput.terms`); nothing is read back to
the host here, so a training loop decides when to pay for `.item()` (on logging steps).
"""

import math
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..utils.offline_weights import explain_missing_weights

ADAPTIVE_WEIGHT_EPS = 1e-4
ADAPTIVE_WEIGHT_MAX = 1e4
GAN_LOSSES = ("hinge", "vanilla", "non_saturating")
PIXEL_LOSSES = ("l1", "l2")


def discriminator_factor(global_step: int, disc_start: int, factor: float = 1.0, warmup_steps: int = 0) -> float:
    """
    The weight of the generator's adversarial term at `global_step`: 0 before `disc_start`, then a linear ramp
    reaching `factor` after `warmup_steps` steps (`factor` at once when `warmup_steps` is 0, the original's switch).

        step < disc_start:                 0
        disc_start <= step < start + W:    factor * (step - disc_start + 1) / W
        step >= disc_start + W:            factor
    """
    if global_step < disc_start:
        return 0.0
    if warmup_steps <= 0:
        return factor
    return factor * min(1.0, (global_step - disc_start + 1) / warmup_steps)


def hinge_d_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    """0.5 * (mean(relu(1 - D(x))) + mean(relu(1 + D(x_hat)))); logits of any shape."""
    return 0.5 * (F.relu(1.0 - logits_real).mean() + F.relu(1.0 + logits_fake).mean())


def vanilla_d_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    """0.5 * (mean(softplus(-D(x))) + mean(softplus(D(x_hat)))): the logistic (cross-entropy) GAN loss."""
    return 0.5 * (F.softplus(-logits_real).mean() + F.softplus(logits_fake).mean())


def generator_adversarial_loss(logits_fake: torch.Tensor, disc_loss: str = "hinge") -> torch.Tensor:
    """
    The generator's term on D(x_hat): -mean(D(x_hat)), the original's with both its D losses ("hinge",
    "vanilla"), or mean(softplus(-D(x_hat))) for "non_saturating" (Goodfellow et al.'s non-saturating loss,
    with the logistic D loss).
    """
    if disc_loss == "non_saturating":
        return F.softplus(-logits_fake).mean()
    return -logits_fake.mean()


def last_layer_grad_norms(
    reconstruction_loss: torch.Tensor, generator_loss: torch.Tensor, last_layer: torch.Tensor
) -> Tuple[torch.Tensor, torch.Tensor]:
    """fp32 norms of the gradients of both losses with respect to `last_layer` (graphs are retained)."""
    rec_grad = torch.autograd.grad(reconstruction_loss.float(), last_layer, retain_graph=True)[0]
    gen_grad = torch.autograd.grad(generator_loss.float(), last_layer, retain_graph=True)[0]
    return rec_grad.float().norm(), gen_grad.float().norm()


def adaptive_weight(
    reconstruction_loss: torch.Tensor,
    generator_loss: torch.Tensor,
    last_layer: torch.Tensor,
    eps: float = ADAPTIVE_WEIGHT_EPS,
    max_weight: float = ADAPTIVE_WEIGHT_MAX,
) -> torch.Tensor:
    """
    ||d rec / d last|| / (||d gen / d last|| + eps), in fp32, clamped to [0, max_weight] (the original's 0..1e4)
    and detached.

    Args:
        reconstruction_loss, generator_loss (`torch.Tensor` of shape `()`): losses whose graphs
            reach `last_layer`; both graphs are retained for the later backward pass.
        last_layer (`torch.Tensor`): the decoder's last weight (`VQGANModel.get_last_layer()`).

    Returns:
        `torch.Tensor` of shape `()` and dtype float32, whatever the dtype of the losses and the layer.
    """
    rec_norm, gen_norm = last_layer_grad_norms(reconstruction_loss, generator_loss, last_layer)
    return (rec_norm / (gen_norm + eps)).clamp(0.0, max_weight).detach()


class LeCamRegularizer:
    """
    LeCam regularisation of the discriminator (Tseng et al., "Regularizing Generative Adversarial Networks under
    Limited Data", CVPR 2021), as MaskGIT / MAGVIT tokenizers use it:

        R = mean((D(x) - ema_fake)^2) + mean((D(x_hat) - ema_real)^2)

    with `ema_real` / `ema_fake` exponential moving averages (decay `decay`) of the mean real / fake logits. It
    keeps D's logits from drifting apart, which bounds how confident the discriminator gets on a small dataset.
    The averages are 0-d tensors on the logits' device (no host sync); `state_dict` / `load_state_dict` hold
    CPU tensors, so a checkpoint restores them with `torch.load(weights_only=True)`.
    """

    def __init__(self, decay: float = 0.99):
        if not 0 <= decay < 1:
            raise ValueError(f"LeCam decay must be in [0, 1), got {decay!r}.")
        self.decay = decay
        self.ema_real: Optional[torch.Tensor] = None
        self.ema_fake: Optional[torch.Tensor] = None

    def update(self, mean_real: torch.Tensor, mean_fake: torch.Tensor) -> None:
        """Move the averages towards this step's mean logits (0-d tensors; the first call sets them)."""
        mean_real, mean_fake = mean_real.detach().float(), mean_fake.detach().float()
        if self.ema_real is None:
            self.ema_real, self.ema_fake = mean_real, mean_fake
        else:
            self.ema_real = torch.lerp(mean_real, self.ema_real.to(mean_real.device), self.decay)
            self.ema_fake = torch.lerp(mean_fake, self.ema_fake.to(mean_fake.device), self.decay)

    def penalty(self, logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
        """R for logits of any shape, against the current averages (0 before the first `update`)."""
        if self.ema_real is None:
            return torch.zeros((), device=logits_real.device)
        ema_real, ema_fake = self.ema_real.to(logits_real.device), self.ema_fake.to(logits_real.device)
        return (logits_real.float() - ema_fake).pow(2).mean() + (logits_fake.float() - ema_real).pow(2).mean()

    def state_dict(self) -> Dict:
        averages = {"ema_real": self.ema_real, "ema_fake": self.ema_fake}
        return {"decay": self.decay, **{k: None if v is None else v.cpu() for k, v in averages.items()}}

    def load_state_dict(self, state: Dict) -> None:
        self.decay, self.ema_real, self.ema_fake = state["decay"], state["ema_real"], state["ema_fake"]


def code_colour_loss(code_vectors: torch.Tensor, pixel_values: torch.Tensor, ridge: float = 1e-3) -> torch.Tensor:
    """
    How badly the codes carry colour: the mean absolute error of the best linear map (ridge least squares, fitted on
    this batch) from each code vector to the mean colour of the image patch it encodes.

    An autoencoder learns colour directions roughly in order of their share of the variance. On images dominated by
    a few hues (emoji: warm skin, yellow faces, white backgrounds) the encoder never puts the weakest direction,
    magenta - green, into its codes within a training budget, and the decoder cannot produce what the codes do not
    carry. This term asks for it directly. It has no parameters (the map is refitted on every batch), so it adds no
    state to checkpoints and needs no gradient synchronisation of its own.

    Args:
        code_vectors (`torch.Tensor` of shape `(batch_size, codebook_dim, h, w)`): the encoder's outputs in the
            codebook's lookup space (`quantize.project(latents)`), with gradients.
        pixel_values (`torch.Tensor` of shape `(batch_size, channels, H, W)`): the images, H and W multiples of h, w.
        ridge: the ridge term added to the normal equations' diagonal (keeps the solve well-posed).
    """
    batch, dim, height, width = code_vectors.shape
    targets = F.adaptive_avg_pool2d(pixel_values.float(), (height, width))  # (B, C, h, w) patch means
    features = code_vectors.float().permute(0, 2, 3, 1).reshape(-1, dim)
    features = torch.cat([features, torch.ones_like(features[:, :1])], dim=1)  # with a bias column
    targets = targets.permute(0, 2, 3, 1).reshape(batch * height * width, -1)
    gram = features.t() @ features + ridge * torch.eye(dim + 1, device=features.device)
    weights = torch.linalg.solve(gram, features.t() @ targets)
    return (features @ weights - targets).abs().mean()


@dataclass
class LossOutput:
    """
    Args:
        loss (`torch.Tensor` of shape `()`): the value to back-propagate.
        terms (`Dict[str, torch.Tensor]`): its parts and diagnostics, detached 0-d tensors on the loss's device.
    """

    loss: torch.Tensor
    terms: Dict[str, torch.Tensor]


@dataclass(frozen=True)
class GANPhase:
    """
    What the adversarial part does at one step.

    Args:
        generator_factor (`float`): multiplies the generator's adversarial term (0: D is not run for it).
        train_discriminator (`bool`): whether the discriminator is run on real / reconstructed images and updated.
    """

    generator_factor: float
    train_discriminator: bool


class VQGANLoss(nn.Module):
    """
    Losses for the autoencoder (generator) and the discriminator of a VQGAN, and the adversarial schedule.

    Args:
        perceptual_weight: weight of LPIPS-VGG in the reconstruction loss (0 disables LPIPS).
        codebook_weight: weight of the quantizer loss.
        disc_weight: multiplies the adaptive weight of the generator's adversarial term.
        disc_factor: weight of both GAN terms once the discriminator is on.
        disc_start: step at which the discriminator is switched on (it trains from this step).
        disc_loss: "hinge" (the original's default), "vanilla" (logistic D loss, the original's generator term
            -mean D) or "non_saturating" (logistic D loss, generator term mean softplus(-D)).
        reconstruction_loss: "l1" (the VQGAN's pixel loss) or "l2" (mean squared error, the
            VQ-VAE baseline's).
        disc_warmup_steps: the generator's adversarial term ramps linearly from 0 to `disc_factor` over this
            many steps after `disc_start` (0: the original's hard switch), while the discriminator trains at
            full strength from `disc_start`, so the generator follows a discriminator that has started learning.
        lecam_weight: weight of the LeCam regulariser in the discriminator loss (0: off, the original).
        lecam_decay: decay of LeCam's moving averages of the logits.
        code_colour_weight: weight of `code_colour_loss` (0: off, the original); `generator_loss` then needs the
            encoder's code vectors.
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
        disc_warmup_steps: int = 0,
        lecam_weight: float = 0.0,
        lecam_decay: float = 0.99,
        code_colour_weight: float = 0.0,
    ):
        super().__init__()
        if disc_loss not in GAN_LOSSES:
            raise ValueError(f"disc_loss must be one of {GAN_LOSSES}, got {disc_loss!r}.")
        if reconstruction_loss not in PIXEL_LOSSES:
            raise ValueError(f"reconstruction_loss must be one of {PIXEL_LOSSES}, got {reconstruction_loss!r}.")
        for name, value in (("disc_start", disc_start), ("disc_warmup_steps", disc_warmup_steps)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an integer >= 0, got {value!r}.")
        for name, value in (
            ("disc_weight", disc_weight),
            ("disc_factor", disc_factor),
            ("lecam_weight", lecam_weight),
            ("code_colour_weight", code_colour_weight),
        ):
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}.")
        self.pixel_loss = reconstruction_loss
        self.code_colour_weight = code_colour_weight
        self.perceptual_weight = perceptual_weight
        self.codebook_weight = codebook_weight
        self.disc_weight = disc_weight
        self.disc_factor = disc_factor
        self.disc_start = disc_start
        self.disc_warmup_steps = disc_warmup_steps
        self.disc_loss = disc_loss
        self.lecam_weight = lecam_weight
        self.lecam = LeCamRegularizer(lecam_decay) if lecam_weight > 0 else None
        self.perceptual = None
        if perceptual_weight > 0:
            import lpips

            with explain_missing_weights("lpips-vgg16"):  # offline without the VGG16 file: say how to place it
                self.perceptual = lpips.LPIPS(net="vgg", verbose=False).eval().requires_grad_(False)

    def gan_phase(self, global_step: int) -> GANPhase:
        """The adversarial schedule: the only place that decides whether the discriminator is on at `global_step`,
        and with what weight the generator sees it."""
        return GANPhase(
            generator_factor=discriminator_factor(
                global_step, self.disc_start, self.disc_factor, self.disc_warmup_steps
            ),
            train_discriminator=global_step >= self.disc_start and self.disc_factor > 0,
        )

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
        code_vectors: Optional[torch.Tensor] = None,
    ) -> LossOutput:
        """
        The autoencoder's loss. `logits_fake` (D applied to `reconstructions`, with gradients)
        and `last_layer` are only needed when `gan_phase(global_step).generator_factor > 0`; before
        that the adversarial term is 0 and the discriminator need not run. `code_vectors` (the encoder's outputs in
        lookup space, `(B, codebook_dim, h, w)`) are needed when `code_colour_weight > 0`. The terms include the fp32
        norms of both gradients at the last layer (`grad_norm_rec`, `grad_norm_gan`), whose ratio is the adaptive
        weight.
        """
        rec_loss = self.reconstruction_loss(inputs, reconstructions)
        loss = rec_loss + self.codebook_weight * codebook_loss.float()
        factor = self.gan_phase(global_step).generator_factor
        zero = torch.zeros((), device=loss.device)
        terms = {"rec_loss": rec_loss, "codebook_loss": codebook_loss, "g_loss": zero, "d_weight": zero}
        if self.code_colour_weight > 0:
            if code_vectors is None:
                raise ValueError("generator_loss needs code_vectors when code_colour_weight > 0.")
            colour_loss = code_colour_loss(code_vectors, inputs)
            loss = loss + self.code_colour_weight * colour_loss
            terms["code_colour_loss"] = colour_loss
        if factor > 0:
            if logits_fake is None or last_layer is None:
                raise ValueError("generator_loss needs logits_fake and last_layer once the discriminator is on.")
            g_loss = generator_adversarial_loss(logits_fake.float(), self.disc_loss)
            rec_norm, gen_norm = last_layer_grad_norms(rec_loss, g_loss, last_layer)
            weight = (rec_norm / (gen_norm + ADAPTIVE_WEIGHT_EPS)).clamp(0.0, ADAPTIVE_WEIGHT_MAX).detach()
            d_weight = self.disc_weight * weight
            loss = loss + factor * d_weight * g_loss
            terms.update(g_loss=g_loss, d_weight=d_weight, grad_norm_rec=rec_norm, grad_norm_gan=gen_norm)
        terms.update(ae_loss=loss, disc_factor=torch.tensor(float(factor), device=loss.device))
        return LossOutput(loss=loss, terms={name: value.detach().float() for name, value in terms.items()})

    def discriminator_loss(self, logits_real: torch.Tensor, logits_fake: torch.Tensor, global_step: int) -> LossOutput:
        """
        disc_factor * (L_D + lecam_weight * R_LeCam) once the discriminator is on (0 before); `logits_fake` must
        come from detached reconstructions. Under DDP, pass logits whose means are averaged over processes to
        `update_lecam` so every process keeps the same LeCam averages.
        """
        factor = self.disc_factor if self.gan_phase(global_step).train_discriminator else 0.0
        loss_fn = hinge_d_loss if self.disc_loss == "hinge" else vanilla_d_loss
        d_loss = loss_fn(logits_real.float(), logits_fake.float())
        terms = {"logits_real": logits_real.float().mean(), "logits_fake": logits_fake.float().mean()}
        if self.lecam is not None:
            lecam = self.lecam.penalty(logits_real, logits_fake)
            d_loss = d_loss + self.lecam_weight * lecam
            terms["lecam"] = lecam
        loss = factor * d_loss
        terms["d_loss"] = loss
        return LossOutput(loss=loss, terms={name: value.detach() for name, value in terms.items()})

    def update_lecam(self, mean_real: torch.Tensor, mean_fake: torch.Tensor) -> None:
        """After a discriminator step: move LeCam's averages (no-op when LeCam is off)."""
        if self.lecam is not None:
            self.lecam.update(mean_real, mean_fake)
