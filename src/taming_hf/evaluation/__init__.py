from .classifier import ClassifierFeatures, SmallClassifierConfig, SmallImageClassifier
from .clip_retrieval import RetrievalResult, evaluate_clip_retrieval, retrieval_accuracy
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
    "RetrievalResult",
    "ReconstructionMetrics",
    "SmallClassifierConfig",
    "SmallImageClassifier",
    "codebook_perplexity",
    "evaluate_clip_retrieval",
    "codebook_usage",
    "inception_fid_or_none",
    "retrieval_accuracy",
]
