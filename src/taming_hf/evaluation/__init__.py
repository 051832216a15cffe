from .classifier import ClassifierFeatures, SmallClassifierConfig, SmallImageClassifier
from .metrics import (
    GenerationMetrics,
    ReconstructionMetrics,
    codebook_perplexity,
    codebook_usage,
    fid_uint8_images,
    standard_fid,
    standard_fid_or_none,
)

__all__ = [
    "ClassifierFeatures",
    "GenerationMetrics",
    "ReconstructionMetrics",
    "SmallClassifierConfig",
    "SmallImageClassifier",
    "codebook_perplexity",
    "codebook_usage",
    "fid_uint8_images",
    "standard_fid",
    "standard_fid_or_none",
]
