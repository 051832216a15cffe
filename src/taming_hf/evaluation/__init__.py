from .classifier import ClassifierFeatures, SmallClassifierConfig, SmallImageClassifier
from .clip_retrieval import RetrievalResult, evaluate_clip_retrieval, retrieval_accuracy
from .metrics import (
    GenerationMetrics,
    ReconstructionMetrics,
    codebook_perplexity,
    codebook_usage,
    fid_uint8_images,
    standard_fid,
    standard_fid_or_none,
)
from .text_to_image import clip_score, derangement, judge_figures

__all__ = [
    "ClassifierFeatures",
    "GenerationMetrics",
    "RetrievalResult",
    "ReconstructionMetrics",
    "SmallClassifierConfig",
    "SmallImageClassifier",
    "clip_score",
    "codebook_perplexity",
    "derangement",
    "evaluate_clip_retrieval",
    "codebook_usage",
    "fid_uint8_images",
    "judge_figures",
    "standard_fid",
    "standard_fid_or_none",
    "retrieval_accuracy",
]
