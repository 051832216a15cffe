"""The VQGAN objective: adaptive weight, disc_start gating, GAN losses, LPIPS, PatchGAN."""

import re

import pytest
import torch

from taming_hf.training import (
    GANPhase,
    LeCamRegularizer,
    PatchGANDiscriminator,
    PatchGANDiscriminatorConfig,
    VQGANLoss,
    adaptive_weight,
    code_colour_loss,
    discriminator_factor,
    generator_adversarial_loss,
    hinge_d_loss,
    vanilla_d_loss,
)


def test_adaptive_weight_is_gradient_norm_ratio_with_epsilon():
    last = torch.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    rec = (3.0 * last).sum()  # grad 3 everywhere: norm 6
    gen = (0.5 * last).sum()  # grad 0.5 everywhere: norm 1
    weight = adaptive_weight(rec, gen, last)
    assert weight.item() == pytest.approx(6.0 / (1.0 + 1e-4), rel=1e-6)
    assert not weight.requires_grad
    assert last.grad is None  # computed with autograd.grad, nothing accumulated


def test_adaptive_weight_is_clamped_to_1e4():
    last = torch.ones(2, 2, requires_grad=True)
    rec = (5.0 * last).sum()  # norm 10
    gen = (0.0 * last).sum()  # norm 0: 10 / 1e-4 = 1e5 -> clamped
    assert adaptive_weight(rec, gen, last).item() == 1e4


def test_discriminator_factor_switches_on_at_disc_start():
    assert [discriminator_factor(step, 3) for step in range(5)] == [0.0, 0.0, 0.0, 1.0, 1.0]
    assert discriminator_factor(7, 3, factor=0.5) == 0.5


def test_gan_losses_values():
    real, fake = torch.tensor([2.0, 0.0]), torch.tensor([-2.0, 0.5])
    # hinge: 0.5 * (mean(relu(1 - [2, 0])) + mean(relu(1 + [-2, 0.5]))) = 0.5 * (0.5 + 0.75)
    assert hinge_d_loss(real, fake).item() == pytest.approx(0.625)
    expected = 0.5 * (torch.nn.functional.softplus(-real).mean() + torch.nn.functional.softplus(fake).mean())
    assert vanilla_d_loss(real, fake).item() == pytest.approx(expected.item())


def _toy_autoencoder_step(loss_fn, step):
    torch.manual_seed(0)
    last = torch.randn(1, 4, 3, 3, requires_grad=True)
    features = torch.randn(2, 4, 8, 8)
    inputs = torch.rand(2, 1, 8, 8) * 2 - 1
    reconstructions = torch.nn.functional.conv2d(features, last, padding=1)
    disc = torch.nn.Conv2d(1, 1, 3)
    logits_fake = disc(reconstructions)
    codebook_loss = torch.tensor(0.3)
    out = loss_fn.generator_loss(inputs, reconstructions, codebook_loss, step, logits_fake, last)
    return out, inputs, reconstructions, logits_fake, last


def test_generator_loss_before_and_after_disc_start():
    loss_fn = VQGANLoss(perceptual_weight=0.0, codebook_weight=2.0, disc_weight=0.8, disc_start=5)
    before, inputs, reconstructions, _, _ = _toy_autoencoder_step(loss_fn, step=4)
    l1 = (inputs - reconstructions).abs().mean()
    assert before.loss.item() == pytest.approx(l1.item() + 2.0 * 0.3, rel=1e-6)
    assert before.terms["disc_factor"] == 0.0 and before.terms["d_weight"] == 0.0

    after, inputs, reconstructions, logits_fake, last = _toy_autoencoder_step(loss_fn, step=5)
    rec = (inputs - reconstructions).abs().mean()
    g = -logits_fake.mean()
    rec_grad = torch.autograd.grad(rec, last, retain_graph=True)[0].norm()
    g_grad = torch.autograd.grad(g, last, retain_graph=True)[0].norm()
    d_weight = 0.8 * (rec_grad / (g_grad + 1e-4)).clamp(0, 1e4)
    assert after.terms["d_weight"] == pytest.approx(d_weight.item(), rel=1e-5)
    assert after.loss.item() == pytest.approx((rec + 2.0 * 0.3 + d_weight * g).item(), rel=1e-5)


def test_discriminator_loss_is_zero_and_trains_nothing_before_disc_start():
    loss_fn = VQGANLoss(perceptual_weight=0.0, disc_start=3)
    disc = PatchGANDiscriminator(PatchGANDiscriminatorConfig(in_channels=1, base_channels=8, num_layers=1))
    images = torch.rand(2, 1, 16, 16) * 2 - 1
    before = loss_fn.discriminator_loss(disc(images).logits, disc(-images).logits, global_step=2)
    before.loss.backward()
    assert before.loss.item() == 0.0
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in disc.parameters())
    after = loss_fn.discriminator_loss(disc(images).logits, disc(-images).logits, global_step=3)
    expected = hinge_d_loss(disc(images).logits, disc(-images).logits)
    assert after.loss.item() == pytest.approx(expected.item(), rel=1e-5) and after.loss.item() > 0


def test_reconstruction_loss_adds_lpips_and_handles_grayscale():
    loss_fn = VQGANLoss(perceptual_weight=1.0)
    torch.manual_seed(0)
    x = torch.rand(2, 1, 32, 32) * 2 - 1
    y = (x + 0.3 * torch.randn_like(x)).clamp(-1, 1)
    assert loss_fn.reconstruction_loss(x, x).item() == pytest.approx(0.0, abs=1e-6)
    lpips = loss_fn.perceptual_loss(x, y)
    assert lpips.shape == (2,) and (lpips > 0).all()
    expected = (x - y).abs().mean() + lpips.mean()
    assert loss_fn.reconstruction_loss(x, y).item() == pytest.approx(expected.item(), rel=1e-5)


def test_l2_reconstruction_loss_is_mean_squared_error():
    torch.manual_seed(0)
    x = torch.rand(2, 1, 8, 8) * 2 - 1
    y = x + 0.5 * torch.randn_like(x)
    l1 = VQGANLoss(perceptual_weight=0.0).reconstruction_loss(x, y)
    l2 = VQGANLoss(perceptual_weight=0.0, reconstruction_loss="l2").reconstruction_loss(x, y)
    assert l1.item() == pytest.approx((x - y).abs().mean().item(), rel=1e-6)
    assert l2.item() == pytest.approx((x - y).pow(2).mean().item(), rel=1e-6)
    with pytest.raises(ValueError, match="reconstruction_loss must be one of"):
        VQGANLoss(perceptual_weight=0.0, reconstruction_loss="huber")


def _patch_colours(images: torch.Tensor, factor: int) -> torch.Tensor:
    return torch.nn.functional.avg_pool2d(images, factor)


def test_code_colour_loss_is_zero_when_codes_carry_colour_linearly():
    torch.manual_seed(0)
    images = torch.rand(4, 3, 16, 16) * 2 - 1
    colours = _patch_colours(images, 4)  # (4, 3, 4, 4)
    mixing = torch.randn(6, 3)
    vectors = torch.einsum("dc,bchw->bdhw", mixing, colours) + 0.5  # an affine image of the patch colours
    assert code_colour_loss(vectors, images).item() == pytest.approx(0.0, abs=1e-3)


def test_code_colour_loss_is_the_least_squares_residual_and_has_gradients():
    torch.manual_seed(0)
    images = torch.rand(4, 3, 16, 16) * 2 - 1
    vectors = torch.randn(4, 6, 4, 4, requires_grad=True)  # unrelated to colour
    loss = code_colour_loss(vectors, images)
    features = torch.cat([vectors.detach().permute(0, 2, 3, 1).reshape(-1, 6), torch.ones(64, 1)], dim=1)
    targets = _patch_colours(images, 4).permute(0, 2, 3, 1).reshape(-1, 3)
    fit = torch.linalg.lstsq(features, targets).solution
    assert loss.item() == pytest.approx((features @ fit - targets).abs().mean().item(), rel=1e-3)
    assert loss.item() > 0.05
    loss.backward()
    assert vectors.grad is not None and vectors.grad.abs().sum() > 0


def test_generator_loss_adds_the_weighted_code_colour_term():
    torch.manual_seed(0)
    images = torch.rand(2, 3, 16, 16) * 2 - 1
    reconstructions = images + 0.1
    vectors = torch.randn(2, 8, 4, 4)
    codebook_loss = torch.tensor(0.25)
    plain = VQGANLoss(perceptual_weight=0.0, disc_start=10).generator_loss(images, reconstructions, codebook_loss, 0)
    loss_fn = VQGANLoss(perceptual_weight=0.0, disc_start=10, code_colour_weight=2.0)
    with_colour = loss_fn.generator_loss(images, reconstructions, codebook_loss, 0, code_vectors=vectors)
    colour = code_colour_loss(vectors, images)
    assert with_colour.terms["code_colour_loss"].item() == pytest.approx(colour.item(), rel=1e-6)
    assert with_colour.loss.item() == pytest.approx(plain.loss.item() + 2.0 * colour.item(), rel=1e-6)
    assert "code_colour_loss" not in plain.terms
    with pytest.raises(ValueError, match="generator_loss needs code_vectors when code_colour_weight > 0."):
        loss_fn.generator_loss(images, reconstructions, codebook_loss, 0)
    with pytest.raises(ValueError, match="code_colour_weight must be a finite number >= 0, got -1.0"):
        VQGANLoss(perceptual_weight=0.0, code_colour_weight=-1.0)


def test_unknown_gan_loss_is_rejected():
    with pytest.raises(ValueError, match="disc_loss must be one of"):
        VQGANLoss(perceptual_weight=0.0, disc_loss="wasserstein")


def test_patchgan_shapes_init_and_round_trip(tmp_path):
    from transformers import AutoModel

    config = PatchGANDiscriminatorConfig(in_channels=3, base_channels=16, num_layers=3)
    disc = PatchGANDiscriminator(config)
    # 256 px, 3 layers -> the classic 30x30 patch grid; 32 px -> 2x2
    assert disc(torch.zeros(1, 3, 256, 256)).logits.shape == (1, 1, 30, 30)
    assert disc(torch.zeros(2, 3, 32, 32)).logits.shape == (2, 1, 2, 2)
    convs = [m for m in disc.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [16, 32, 64, 128, 1]
    assert [c.stride[0] for c in convs] == [2, 2, 2, 1, 1]
    assert abs(convs[2].weight.std().item() - 0.02) < 0.005
    disc.save_pretrained(tmp_path)
    reloaded = AutoModel.from_pretrained(tmp_path)
    assert isinstance(reloaded, PatchGANDiscriminator)
    disc.eval(), reloaded.eval()
    x = torch.randn(1, 3, 32, 32)
    torch.testing.assert_close(disc(x).logits, reloaded(x).logits)
    with pytest.raises(ValueError, match="expects images of shape"):
        disc(torch.zeros(1, 1, 32, 32))


# ----------------------------------------------------------------------------- the GAN schedule and stability


def test_discriminator_factor_ramps_linearly_after_disc_start():
    ramp = [discriminator_factor(step, 3, 0.8, warmup_steps=4) for step in range(9)]
    assert ramp == pytest.approx([0.0, 0.0, 0.0, 0.2, 0.4, 0.6, 0.8, 0.8, 0.8])
    assert [discriminator_factor(step, 3, 1.0, warmup_steps=0) for step in (2, 3)] == [0.0, 1.0]  # the original


def test_gan_phase_trains_the_discriminator_at_full_strength_while_the_generator_term_ramps():
    loss_fn = VQGANLoss(perceptual_weight=0.0, disc_start=3, disc_warmup_steps=4)
    assert loss_fn.gan_phase(2) == GANPhase(generator_factor=0.0, train_discriminator=False)
    assert loss_fn.gan_phase(4) == GANPhase(generator_factor=0.5, train_discriminator=True)
    assert loss_fn.gan_phase(9) == GANPhase(generator_factor=1.0, train_discriminator=True)
    real, fake = torch.tensor([2.0, 0.0]), torch.tensor([-2.0, 0.5])
    assert loss_fn.discriminator_loss(real, fake, global_step=3).loss.item() == pytest.approx(0.625)
    ramping = _toy_autoencoder_step(loss_fn, step=4)[0]
    assert ramping.terms["disc_factor"].item() == 0.5
    assert VQGANLoss(perceptual_weight=0.0, disc_factor=0.0).gan_phase(10).train_discriminator is False


def test_adaptive_weight_is_fp32_for_bf16_graphs():
    last = torch.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=torch.bfloat16, requires_grad=True)
    rec = (3.0 * last).sum()
    gen = (0.5 * last).sum()
    weight = adaptive_weight(rec, gen, last)
    assert weight.dtype == torch.float32
    assert weight.item() == pytest.approx(6.0 / (1.0 + 1e-4), rel=1e-6)


def test_adaptive_weight_is_clamped_at_zero_and_max_weight():
    last = torch.ones(2, 2, requires_grad=True)
    assert adaptive_weight((0.0 * last).sum(), last.sum(), last).item() == 0.0
    assert adaptive_weight((5.0 * last).sum(), (1e-9 * last).sum(), last, max_weight=50.0).item() == 50.0


def test_generator_loss_logs_the_gradient_norms_behind_the_adaptive_weight():
    loss_fn = VQGANLoss(perceptual_weight=0.0, disc_weight=1.0, disc_start=0)
    out, inputs, reconstructions, logits_fake, last = _toy_autoencoder_step(loss_fn, step=0)
    rec = (inputs - reconstructions).abs().mean()
    rec_norm = torch.autograd.grad(rec, last, retain_graph=True)[0].norm()
    gan_norm = torch.autograd.grad(-logits_fake.mean(), last, retain_graph=True)[0].norm()
    assert out.terms["grad_norm_rec"].item() == pytest.approx(rec_norm.item(), rel=1e-5)
    assert out.terms["grad_norm_gan"].item() == pytest.approx(gan_norm.item(), rel=1e-5)
    assert out.terms["d_weight"].item() == pytest.approx((rec_norm / (gan_norm + 1e-4)).item(), rel=1e-5)
    assert all(not value.requires_grad and value.ndim == 0 for value in out.terms.values())


def test_non_saturating_generator_term_is_softplus_of_minus_logits():
    logits = torch.tensor([-1.0, 0.0, 2.0])
    expected = torch.nn.functional.softplus(-logits).mean()
    assert generator_adversarial_loss(logits, "non_saturating").item() == pytest.approx(expected.item())
    assert generator_adversarial_loss(logits, "hinge").item() == pytest.approx(-1.0 / 3)
    loss_fn = VQGANLoss(perceptual_weight=0.0, disc_loss="non_saturating")
    real, fake = torch.tensor([2.0, 0.0]), torch.tensor([-2.0, 0.5])
    assert loss_fn.discriminator_loss(real, fake, 0).loss.item() == pytest.approx(vanilla_d_loss(real, fake).item())


def test_lecam_penalty_on_known_logits_and_its_moving_averages(tmp_path):
    lecam = LeCamRegularizer(decay=0.9)
    assert lecam.penalty(torch.tensor([1.0]), torch.tensor([0.0])).item() == 0.0  # no averages yet
    lecam.update(torch.tensor(1.0), torch.tensor(-1.0))  # the first update sets them
    lecam.update(torch.tensor(2.0), torch.tensor(0.0))  # 0.9 * 1 + 0.1 * 2 = 1.1; 0.9 * -1 + 0.1 * 0 = -0.9
    assert lecam.ema_real.item() == pytest.approx(1.1) and lecam.ema_fake.item() == pytest.approx(-0.9)
    # mean((D(x) - ema_fake)^2) + mean((D(x_hat) - ema_real)^2) = (1.9^2 + 3.9^2) / 2 + 1.1^2
    penalty = lecam.penalty(torch.tensor([1.0, 3.0]), torch.tensor([0.0]))
    assert penalty.item() == pytest.approx((1.9**2 + 3.9**2) / 2 + 1.1**2, rel=1e-6)
    torch.save(lecam.state_dict(), tmp_path / "lecam.pt")
    restored = LeCamRegularizer()
    restored.load_state_dict(torch.load(tmp_path / "lecam.pt", weights_only=True))
    assert restored.decay == 0.9 and restored.ema_real.item() == pytest.approx(1.1)
    with pytest.raises(ValueError, match=re.escape("LeCam decay must be in [0, 1), got 1.0.")):
        LeCamRegularizer(decay=1.0)


def test_discriminator_loss_adds_weighted_lecam():
    loss_fn = VQGANLoss(perceptual_weight=0.0, lecam_weight=0.5, lecam_decay=0.0)
    real, fake = torch.tensor([2.0, 0.0]), torch.tensor([-2.0, 0.5])
    loss_fn.update_lecam(torch.tensor(1.0), torch.tensor(-1.0))
    out = loss_fn.discriminator_loss(real, fake, 0)
    lecam = ((real + 1.0) ** 2).mean() + ((fake - 1.0) ** 2).mean()
    assert out.terms["lecam"].item() == pytest.approx(lecam.item())
    assert out.loss.item() == pytest.approx(0.625 + 0.5 * lecam.item())
    assert VQGANLoss(perceptual_weight=0.0).lecam is None  # off by default: the original objective


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            {"disc_loss": "wasserstein"},
            "disc_loss must be one of ('hinge', 'vanilla', 'non_saturating'), got 'wasserstein'.",
        ),
        ({"disc_warmup_steps": -1}, "disc_warmup_steps must be an integer >= 0, got -1."),
        ({"disc_start": 1.5}, "disc_start must be an integer >= 0, got 1.5."),
        ({"lecam_weight": -0.1}, "lecam_weight must be a finite number >= 0, got -0.1."),
        ({"disc_weight": float("nan")}, "disc_weight must be a finite number >= 0, got nan."),
    ],
)
def test_bad_loss_options_name_the_value(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        VQGANLoss(perceptual_weight=0.0, **kwargs)
