"""A small image classifier used as an independent judge of generated samples.

Trained on the real training split of a dataset (Fashion-MNIST by default), it reports its own
test accuracy, scores class-conditional samples (does a sample of class c look like class c?)
and provides the feature space for a Fréchet distance between generated and real images.
"""

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import ImageClassifierOutput


class SmallClassifierConfig(PretrainedConfig):
    """
    Args:
        in_channels (`int`, *optional*, defaults to 1): image channels.
        image_size (`int`, *optional*, defaults to 28): square input size in pixels (divisible by 4).
        num_labels (`int`, *optional*, defaults to 10): number of classes.
        hidden_channels (`int`, *optional*, defaults to 32): width of the first convolution.
        feature_dim (`int`, *optional*, defaults to 128): size of the penultimate features used for FID.
    """

    model_type = "taming_small_classifier"

    def __init__(
        self,
        in_channels: int = 1,
        image_size: int = 28,
        hidden_channels: int = 32,
        feature_dim: int = 128,
        dropout: float = 0.25,
        **kwargs,
    ):
        kwargs.setdefault("num_labels", 10)
        if image_size % 4 != 0:
            raise ValueError(f"image_size must be divisible by 4, got {image_size}.")
        self.in_channels = in_channels
        self.image_size = image_size
        self.hidden_channels = hidden_channels
        self.feature_dim = feature_dim
        self.dropout = dropout
        super().__init__(**kwargs)


def conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class SmallImageClassifier(PreTrainedModel):
    """conv-conv-pool-conv-pool -> feature_dim features -> class logits, for (B, C, S, S) images in [-1, 1]."""

    config_class = SmallClassifierConfig
    main_input_name = "pixel_values"

    def __init__(self, config: SmallClassifierConfig):
        super().__init__(config)
        width = config.hidden_channels
        self.body = nn.Sequential(
            conv_block(config.in_channels, width),
            conv_block(width, width),
            nn.MaxPool2d(2),
            conv_block(width, 2 * width),
            nn.MaxPool2d(2),
        )
        flat = 2 * width * (config.image_size // 4) ** 2
        self.to_features = nn.Sequential(nn.Flatten(), nn.Dropout(config.dropout), nn.Linear(flat, config.feature_dim))
        self.head = nn.Linear(config.feature_dim, config.num_labels)
        self.post_init()

    def _init_weights(self, module: nn.Module):
        pass  # PyTorch's defaults train this small network well

    @property
    def num_features(self) -> int:
        """Feature size, read by torchmetrics' FID when this model is its feature extractor."""
        return self.config.feature_dim

    def features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(B, C, S, S) images in [-1, 1] -> (B, feature_dim) penultimate activations."""
        expected = (self.config.in_channels, self.config.image_size, self.config.image_size)
        if tuple(pixel_values.shape[1:]) != expected:
            raise ValueError(
                f"Classifier expects images of shape (batch, {expected}), got {tuple(pixel_values.shape)}."
            )
        return F.relu(self.to_features(self.body(pixel_values)))

    def forward(self, pixel_values: torch.Tensor, labels: Optional[torch.Tensor] = None) -> ImageClassifierOutput:
        logits = self.head(self.features(pixel_values))
        loss = F.cross_entropy(logits, labels) if labels is not None else None
        return ImageClassifierOutput(loss=loss, logits=logits)


class ClassifierFeatures(nn.Module):
    """Wraps the classifier as a torchmetrics FID feature extractor (eval mode, no gradients)."""

    def __init__(self, classifier: SmallImageClassifier):
        super().__init__()
        self.classifier = classifier.eval()
        self.num_features = classifier.config.feature_dim

    @torch.no_grad()
    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.classifier.features(pixel_values.float())
