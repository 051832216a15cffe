"""Conversion of the original CompVis taming-transformers checkpoints to taming_hf formats."""

from .safe_pickle import LazyTensor, PickledObjectPlaceholder, SafeCheckpoint, load_checkpoint_safely

__all__ = ["LazyTensor", "PickledObjectPlaceholder", "SafeCheckpoint", "load_checkpoint_safely"]
