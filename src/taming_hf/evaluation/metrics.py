"""Reconstruction and generation metrics, accumulated over batches.

Images are (B, C, H, W) float tensors in [-1, 1], the VQGAN's pixel range. PSNR, SSIM and FID
come from torchmetrics, LPIPS from the `lpips` package (VGG, the network of the training loss).
Two FIDs: the standard one (`standard_fid`, TF-FID Inception features, comparable with papers) and
`feature_fid`, the same maths in the feature space of a small model of ours (e.g. the Fashion-MNIST
classifier), which is cheap and sensitive on small grayscale images but comparable only within the project.
"""

import logging
import pickle
from typing import Dict, Optional

import torch
from torch import nn

from ..models.vqgan.image_processing_vqgan import to_unit_range
from ..utils.codebook_stats import code_counts, perplexity_from_counts, usage_from_counts
from ..utils.offline_weights import PLACE_COMMAND, WEIGHT_FILES, MissingWeightsError, explain_missing_weights

logger = logging.getLogger(__name__)


def codebook_usage(indices: torch.Tensor, num_embeddings: int) -> float:
    """Fraction of the codebook that occurs at least once in `indices` (any shape, values in [0, num_embeddings))."""
    return usage_from_counts(code_counts(indices, num_embeddings))


def codebook_perplexity(indices: torch.Tensor, num_embeddings: int) -> float:
    """exp(entropy) of the histogram of `indices`: the effective number of codes in use."""
    return perplexity_from_counts(code_counts(indices, num_embeddings))


def fid_uint8_images(images: torch.Tensor) -> torch.Tensor:
    """
    Images as the standard FID takes them: (B, C, H, W) floats in [-1, 1] with C = 1 or 3 -> (B, 3, H, W) uint8 on
    the CPU, rounded as when saving a PNG (grayscale repeated to RGB, as an RGB reader of a gray PNG sees it).

    Rounding here, instead of torchmetrics' `normalize=True` (`(x * 255).byte()`, which truncates), keeps a real
    image that went uint8 -> float -> uint8 at its own pixel values: truncation moves some of them down one level.
    """
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(
            f"Standard FID takes (batch, 1 or 3, height, width) images in [-1, 1], got shape {tuple(images.shape)}."
        )
    pixels = (to_unit_range(images) * 255).round().to(torch.uint8).cpu()
    return pixels.expand(-1, 3, -1, -1) if pixels.shape[1] == 1 else pixels


def standard_fid(**kwargs) -> nn.Module:
    """
    The standard FID: torchmetrics' `FrechetInceptionDistance(feature=2048)`, whose Inception is torch-fidelity's
    port of the TF-FID InceptionV3 (the network of Heusel et al.'s FID and of pytorch-fid). Update it with
    `fid_uint8_images(images)`: (B, 3, H, W) uint8, any size (torchmetrics resizes to 299 x 299, bilinear with
    antialiasing unless `antialias=False`).

    Online, torch-fidelity downloads its weights on first use. Offline, `python -m taming_hf.utils.offline_weights`
    places them (entry "fid-inception"); without them this raises `MissingWeightsError` naming that command.
    A file already in place is first read with `torch.load(weights_only=True)`, since torch-fidelity unpickles it
    without that safeguard.

    Args:
        kwargs: passed to `FrechetInceptionDistance` (`reset_real_features`, `antialias`, `normalize`, ...).
    """
    import importlib.util

    if importlib.util.find_spec("torch_fidelity") is None:
        raise ModuleNotFoundError(
            "Standard FID needs torch-fidelity (torchmetrics' FID builds its Inception with it): "
            "pip install torch-fidelity, or pip install 'taming_hf[train]'."
        )
    from torchmetrics.image.fid import FrechetInceptionDistance

    target = WEIGHT_FILES["fid-inception"].target()
    if target.exists():
        try:
            torch.load(target, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as error:
            raise ValueError(
                f"{target} is not a plain tensor file (torch.load(weights_only=True) refused it: {error}); torch-fidelity "
                f"would unpickle it unchecked. Replace it with: {PLACE_COMMAND} --force fid-inception"
            ) from error
    # Building the Inception initialises layers that the file then overwrites: keep the global RNG untouched, so
    # a training run that builds the metric after restoring its RNG states continues exactly as before.
    with explain_missing_weights("fid-inception"), torch.random.fork_rng(devices=[]):
        return FrechetInceptionDistance(**{"feature": 2048, **kwargs})


def standard_fid_or_none(**kwargs) -> Optional[nn.Module]:
    """`standard_fid(**kwargs)`, or None (with a warning that says why and how to fix it) when torch-fidelity or the
    Inception weights are missing."""
    try:
        return standard_fid(**kwargs)
    except (MissingWeightsError, ModuleNotFoundError) as error:
        logger.warning(f"Standard (Inception) FID skipped: {error}")
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
        inception_fid: also compute the standard (Inception) rFID, reconstructions vs the input images, when
            torch-fidelity and its weights are there (else it is skipped with a warning: `standard_fid_or_none`).
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
        self.inception_fid = standard_fid_or_none() if inception_fid else None
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
            self.inception_fid.update(fid_uint8_images(images), real=True)
            self.inception_fid.update(fid_uint8_images(reconstructions), real=False)
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
    """Classifier accuracy on class-conditional samples, FID in the classifier's feature space, and optionally the
    standard (Inception) gFID, samples vs real images.

    Args:
        classifier: the independent classifier (`SmallImageClassifier`).
        inception_fid: also compute the standard gFID when torch-fidelity and its weights are there (else it is
            skipped with a warning).
    """

    def __init__(self, classifier: nn.Module, inception_fid: bool = False):
        from .classifier import ClassifierFeatures

        self.classifier = classifier.eval()
        self.fid = feature_fid(ClassifierFeatures(classifier))
        self.inception_fid = standard_fid_or_none() if inception_fid else None
        self.correct, self.count = 0, 0

    @torch.no_grad()
    def update_real(self, images: torch.Tensor) -> None:
        self.fid.update(images.float(), real=True)
        if self.inception_fid is not None:
            self.inception_fid.update(fid_uint8_images(images), real=True)

    @torch.no_grad()
    def update_generated(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        images = images.float().clamp(-1, 1)
        predictions = self.classifier(images).logits.argmax(-1)
        self.correct += (predictions.cpu() == labels.cpu()).sum().item()
        self.count += images.shape[0]
        self.fid.update(images, real=False)
        if self.inception_fid is not None:
            self.inception_fid.update(fid_uint8_images(images), real=False)

    def compute(self) -> Dict[str, float]:
        results = {
            "classifier_accuracy": self.correct / self.count,
            "feature_fid": self.fid.compute().item(),
            "num_generated": self.count,
        }
        if self.inception_fid is not None:
            results["gfid"] = self.inception_fid.compute().item()
        return results
