"""Reconstruction and generation metrics, accumulated over batches.

Images are (B, C, H, W) float tensors in [-1, 1], the VQGAN's pixel range. PSNR, SSIM and FID
come from torchmetrics, LPIPS from the `lpips` package (VGG, the network of the training loss).
"""

import logging
from typing import Dict, Optional

import torch
from torch import nn

from ..utils.offline_weights import explain_missing_weights

logger = logging.getLogger(__name__)


def codebook_usage(indices: torch.Tensor, num_embeddings: int) -> float:
    """Fraction of the codebook that occurs at least once in `indices`."""
    return torch.unique(indices).numel() / num_embeddings


def perplexity_from_counts(counts: torch.Tensor) -> float:
    """exp(entropy) of a code histogram `counts` (num_embeddings,): the effective number of codes in use."""
    total = counts.sum()
    if total == 0:
        return 0.0
    probs = counts.double() / total
    nonzero = probs[probs > 0]
    return torch.exp(-(nonzero * nonzero.log()).sum()).item()


def codebook_perplexity(indices: torch.Tensor, num_embeddings: int) -> float:
    """exp(entropy) of the histogram of `indices`: the effective number of codes in use."""
    return perplexity_from_counts(torch.bincount(indices.flatten().cpu(), minlength=num_embeddings))


def to_unit_range(images: torch.Tensor) -> torch.Tensor:
    return ((images.float() + 1) / 2).clamp(0, 1)


def inception_fid_or_none() -> Optional[nn.Module]:
    """torchmetrics' Inception FID when torch-fidelity and its weights are available, else None."""
    try:
        from torchmetrics.image.fid import FrechetInceptionDistance

        return FrechetInceptionDistance(feature=2048, normalize=True)
    except Exception as error:  # missing package or weights that cannot be downloaded offline
        logger.warning(f"Inception FID skipped: no Inception feature extractor ({type(error).__name__}: {error})")
        return None


def feature_fid(feature_extractor: nn.Module) -> nn.Module:
    """A torchmetrics FID in the feature space of `feature_extractor` (it needs a `num_features`)."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    return FrechetInceptionDistance(feature=feature_extractor, reset_real_features=False)


class ReconstructionMetrics:
    """PSNR, SSIM, LPIPS, codebook usage / perplexity, and optional FIDs of reconstructions.

    Args:
        num_embeddings: codebook size, for usage and perplexity.
        use_lpips: compute LPIPS-VGG; `lpips_model` reuses an already loaded `lpips.LPIPS`
            (the training loss's) instead of loading VGG again.
        feature_extractor: a module with `num_features` for FID in its feature space.
        inception_fid: also compute Inception rFID when torch-fidelity and its weights are there.
    """

    def __init__(
        self,
        num_embeddings: int,
        use_lpips: bool = True,
        lpips_model: Optional[nn.Module] = None,
        feature_extractor: Optional[nn.Module] = None,
        inception_fid: bool = False,
    ):
        from torchmetrics.image import PeakSignalNoiseRatio, StructuralSimilarityIndexMeasure

        self.num_embeddings = num_embeddings
        self.psnr = PeakSignalNoiseRatio(data_range=1.0)
        self.ssim = StructuralSimilarityIndexMeasure(data_range=1.0)
        self.lpips = lpips_model
        if use_lpips and lpips_model is None:
            import lpips

            with explain_missing_weights("lpips-vgg16"):  # offline without the VGG16 file: say how to place it
                self.lpips = lpips.LPIPS(net="vgg", verbose=False).eval()
        self.fid = feature_fid(feature_extractor) if feature_extractor is not None else None
        self.inception_fid = inception_fid_or_none() if inception_fid else None
        self.reset()

    def reset(self) -> None:
        self.psnr.reset()
        self.ssim.reset()
        for fid in (self.fid, self.inception_fid):
            if fid is not None:
                fid.reset()
        self.lpips_sum, self.count, self.indices = 0.0, 0, []

    @torch.no_grad()
    def update(self, images: torch.Tensor, reconstructions: torch.Tensor, indices: torch.Tensor) -> None:
        real, fake = to_unit_range(images), to_unit_range(reconstructions)
        # torchmetrics states live on the CPU; LPIPS runs wherever its network is.
        self.psnr.update(fake.cpu(), real.cpu())
        self.ssim.update(fake.cpu(), real.cpu())
        if self.lpips is not None:
            rgb = (lambda x: x.expand(-1, 3, -1, -1)) if images.shape[1] == 1 else (lambda x: x)
            distances = self.lpips(rgb(real * 2 - 1), rgb(fake * 2 - 1))
            self.lpips_sum += distances.sum().item()
        self.count += images.shape[0]
        if self.fid is not None:
            self.fid.update(images.float().cpu(), real=True)
            self.fid.update(reconstructions.float().clamp(-1, 1).cpu(), real=False)
        if self.inception_fid is not None:
            rgb = (lambda x: x.expand(-1, 3, -1, -1)) if images.shape[1] == 1 else (lambda x: x)
            self.inception_fid.update(rgb(real).cpu(), real=True)
            self.inception_fid.update(rgb(fake).cpu(), real=False)
        self.indices.append(indices.flatten().cpu())

    def compute(self) -> Dict[str, float]:
        indices = torch.cat(self.indices)
        results = {
            "psnr": self.psnr.compute().item(),
            "ssim": self.ssim.compute().item(),
            "codebook_usage": codebook_usage(indices, self.num_embeddings),
            "codebook_perplexity": codebook_perplexity(indices, self.num_embeddings),
            "num_images": self.count,
        }
        if self.lpips is not None:
            results["lpips"] = self.lpips_sum / self.count
        if self.fid is not None:
            results["feature_fid"] = self.fid.compute().item()
        if self.inception_fid is not None:
            results["rfid"] = self.inception_fid.compute().item()
        return results


class GenerationMetrics:
    """Classifier accuracy on class-conditional samples and FID in the classifier's feature space."""

    def __init__(self, classifier: nn.Module):
        from .classifier import ClassifierFeatures

        self.classifier = classifier.eval()
        self.fid = feature_fid(ClassifierFeatures(classifier))
        self.correct, self.count = 0, 0

    @torch.no_grad()
    def update_real(self, images: torch.Tensor) -> None:
        self.fid.update(images.float(), real=True)

    @torch.no_grad()
    def update_generated(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        images = images.float().clamp(-1, 1)
        predictions = self.classifier(images).logits.argmax(-1)
        self.correct += (predictions.cpu() == labels.cpu()).sum().item()
        self.count += images.shape[0]
        self.fid.update(images, real=False)

    def compute(self) -> Dict[str, float]:
        return {
            "classifier_accuracy": self.correct / self.count,
            "feature_fid": self.fid.compute().item(),
            "num_generated": self.count,
        }
