import math
import re

import pytest
import torch

from taming_hf.evaluation import (
    ClassifierFeatures,
    GenerationMetrics,
    ReconstructionMetrics,
    SmallClassifierConfig,
    SmallImageClassifier,
    codebook_perplexity,
    codebook_usage,
)
from taming_hf.utils.codebook_stats import code_counts, perplexity_from_counts, usage_from_counts


def test_codebook_usage_and_perplexity():
    indices = torch.tensor([[0, 1], [1, 3]])
    assert codebook_usage(indices, 8) == 3 / 8
    probs = torch.tensor([0.25, 0.5, 0.25])
    expected = math.exp(-(probs * probs.log()).sum().item())
    assert codebook_perplexity(indices, 8) == pytest.approx(expected)
    assert codebook_perplexity(torch.arange(16), 16) == pytest.approx(16.0)


def test_statistics_from_counts_are_those_of_the_indices():
    indices = torch.tensor([[0, 1], [1, 3]])
    counts = code_counts(indices, 8)
    assert counts.tolist() == [1, 2, 0, 1, 0, 0, 0, 0]
    assert usage_from_counts(counts) == codebook_usage(indices, 8) == 3 / 8
    assert perplexity_from_counts(counts) == codebook_perplexity(indices, 8)
    assert perplexity_from_counts(torch.tensor([5, 5, 5, 5])) == pytest.approx(4.0)
    assert perplexity_from_counts(torch.zeros(4, dtype=torch.long)) == 0.0


@pytest.mark.parametrize("bad", [8, -1])
def test_codebook_usage_rejects_indices_outside_the_codebook(bad):
    with pytest.raises(ValueError, match=re.escape(f"Code indices must lie in [0, 8), got a value of {bad}.")):
        codebook_usage(torch.tensor([0, bad]), 8)


def test_reconstruction_metrics_values():
    torch.manual_seed(0)
    images = torch.rand(4, 1, 28, 28) * 2 - 1
    metrics = ReconstructionMetrics(num_embeddings=4)
    metrics.update(images, images, torch.tensor([0, 1, 2, 3]))
    perfect = metrics.compute()
    assert perfect["ssim"] == pytest.approx(1.0, abs=1e-5)
    assert perfect["lpips"] == pytest.approx(0.0, abs=1e-6)
    assert perfect["codebook_usage"] == 1.0 and perfect["num_images"] == 4

    noisy = ReconstructionMetrics(num_embeddings=8, use_lpips=False)
    reconstruction = (images + 0.1).clamp(-1, 1)
    noisy.update(images, reconstruction, torch.tensor([0, 0, 1]))
    mse = (((reconstruction + 1) / 2 - (images + 1) / 2) ** 2).mean()
    assert noisy.compute()["psnr"] == pytest.approx((10 * torch.log10(1 / mse)).item(), rel=1e-4)
    assert noisy.compute()["codebook_usage"] == 2 / 8


def test_classifier_shapes_features_and_errors(tmp_path):
    classifier = SmallImageClassifier(SmallClassifierConfig(image_size=28)).eval()
    images = torch.rand(3, 1, 28, 28) * 2 - 1
    output = classifier(images, labels=torch.tensor([0, 1, 2]))
    assert output.logits.shape == (3, 10) and output.loss.ndim == 0
    assert ClassifierFeatures(classifier)(images).shape == (3, 128)
    classifier.save_pretrained(tmp_path)
    loaded = SmallImageClassifier.from_pretrained(tmp_path).eval()
    assert torch.equal(loaded(images).logits, classifier(images).logits)
    with pytest.raises(
        ValueError, match=re.escape("Classifier expects images of shape (batch, (1, 28, 28)), got (1, 1, 32, 32).")
    ):
        classifier(torch.zeros(1, 1, 32, 32))


def test_generation_metrics_accuracy_and_fid():
    torch.manual_seed(0)
    classifier = SmallImageClassifier(SmallClassifierConfig(image_size=8, hidden_channels=8, feature_dim=16)).eval()
    images = torch.rand(64, 1, 8, 8) * 2 - 1
    labels = classifier(images).logits.argmax(-1)
    metrics = GenerationMetrics(classifier)
    metrics.update_real(images)
    metrics.update_generated(images, labels)
    results = metrics.compute()
    assert results["classifier_accuracy"] == 1.0
    assert results["feature_fid"] == pytest.approx(0.0, abs=1e-3)  # identical sets
    shifted = GenerationMetrics(classifier)
    shifted.update_real(images)
    shifted.update_generated(torch.ones_like(images), (classifier(torch.ones_like(images)).logits.argmax(-1) + 1) % 10)
    assert shifted.compute()["classifier_accuracy"] == 0.0
    assert shifted.compute()["feature_fid"] > 100 * max(results["feature_fid"], 1e-6)
