from .classifier import ClassifierFeatures, SmallClassifierConfig, SmallImageClassifier
from .metrics import (
    GenerationMetrics,
    ReconstructionMetrics,
    codebook_perplexity,
    codebook_usage,
    inception_fid_or_none,
)

__all__ = [
    "ClassifierFeatures",
    "GenerationMetrics",
    "ReconstructionMetrics",
    "SmallClassifierConfig",
    "SmallImageClassifier",
    "codebook_perplexity",
    "codebook_usage",
    "inception_fid_or_none",
]
