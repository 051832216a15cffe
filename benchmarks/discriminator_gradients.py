"""Why the VQGAN's adaptive weight grows at small scale: the size of the generator's gradient through a
PatchGAN whose BatchNorm sees a fake-only batch (docs/training.md, "Why the adaptive weight grows").

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/discriminator_gradients.py

1. Gradient norms at the decoder's last layer for the Fashion-MNIST recipe's VQGAN at initialisation,
   discriminator in train / eval mode, at 28, 64 and 256 px.
2. The norm of d(-mean D(fake)) / d fake for fake batches of growing diversity (the mean test image plus
   alpha times each image's deviation from it): fake-only batch, real + fake in one batch, eval mode.
"""

import numpy as np
import torch
import torch.nn.functional as F

from taming_hf import VQGANConfig, VQGANModel
from taming_hf.training import PatchGANDiscriminator, PatchGANDiscriminatorConfig, load_fashion_mnist

RECIPE = dict(
    resolution=28, in_channels=1, out_channels=1, base_channels=32, channel_multiplier=[1, 2, 2],
    num_res_blocks=1, attn_resolutions=[], latent_channels=32, embed_dim=32, num_embeddings=256,
)  # fmt: skip


def test_images(count: int) -> torch.Tensor:
    dataset = load_fashion_mnist("test", max_samples=count)
    pixels = np.stack([np.array(image) for image in dataset["image"]])
    return torch.tensor(pixels, dtype=torch.float32)[:, None] / 127.5 - 1


def last_layer_norms() -> None:
    torch.manual_seed(0)
    model = VQGANModel(VQGANConfig(**RECIPE))
    images = torch.rand(16, 1, 28, 28) * 2 - 1
    for resolution in (28, 64, 256):
        for train in (True, False):
            torch.manual_seed(0)
            disc = PatchGANDiscriminator(PatchGANDiscriminatorConfig(in_channels=1)).train(train)
            target = F.interpolate(images, size=resolution)
            reconstruction = F.interpolate(model(images).reconstruction, size=resolution)
            last = model.get_last_layer()
            gan = torch.autograd.grad(-disc(reconstruction).logits.mean(), last, retain_graph=True)[0].norm()
            rec = torch.autograd.grad((target - reconstruction).abs().mean(), last)[0].norm()
            print(
                f"{resolution} px, D train={train}: |grad_rec| {rec:.3g} |grad_gan| {gan:.3g} ratio {rec / (gan + 1e-4):.3g}"
            )


def fake_batch_diversity() -> None:
    images = test_images(32)
    real, base = images[:16], images[16:]
    torch.manual_seed(0)
    disc = PatchGANDiscriminator(PatchGANDiscriminatorConfig(in_channels=1))
    mean_image = base.mean(0, keepdim=True)
    for alpha in (0.0, 0.1, 0.5, 1.0):
        fake = (mean_image + alpha * (base - mean_image)).requires_grad_(True)
        disc.train()
        alone = torch.autograd.grad(-disc(fake).logits.mean(), fake)[0].norm()
        joint = torch.autograd.grad(-disc(torch.cat([real, fake])).logits[16:].mean(), fake)[0].norm()
        disc.eval()
        running = torch.autograd.grad(-disc(fake).logits.mean(), fake)[0].norm()
        print(f"diversity {alpha:.1f}: fake-only batch {alone:.3g}, joint batch {joint:.3g}, eval mode {running:.3g}")


def discriminator_learns_blur(steps: int = 100) -> None:
    """D alone, separate real / fake batches (the original), real vs 3x3-blurred images, lr 7.2e-5."""
    from taming_hf.training import hinge_d_loss

    dataset = load_fashion_mnist("train", max_samples=2048)
    pixels = torch.tensor(np.stack([np.array(image) for image in dataset["image"]]), dtype=torch.float32)
    pixels = pixels[:, None] / 127.5 - 1
    torch.manual_seed(0)
    disc = PatchGANDiscriminator(PatchGANDiscriminatorConfig(in_channels=1))
    optimizer = torch.optim.Adam(disc.parameters(), lr=7.2e-5, betas=(0.5, 0.9))
    for step in range(steps + 1):
        real = pixels[torch.randint(0, len(pixels), (16,))]
        fake = F.avg_pool2d(pixels[torch.randint(0, len(pixels), (16,))], 3, 1, 1)
        loss = hinge_d_loss(disc(real).logits, disc(fake).logits)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 50 == 0:
            print(f"step {step}: hinge D loss {loss.item():.3f}")


if __name__ == "__main__":
    import sys

    if "--blur" in sys.argv:
        discriminator_learns_blur()
    else:
        last_layer_norms()
        fake_batch_diversity()
