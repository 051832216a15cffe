"""Conversion of the original CompVis taming-transformers checkpoints to taming_hf formats.

`convert_checkpoint` is what `scripts/convert_original_checkpoint.py` runs; `load_checkpoint_safely`
reads any `torch.save` zip file without executing pickled code. See docs/conversion.md.
"""

from .convert import convert_checkpoint
from .errors import ConversionError
from .safe_pickle import (
    LazyTensor,
    PickledObjectPlaceholder,
    SafeCheckpoint,
    UnsafeCheckpointError,
    load_checkpoint_safely,
)

__all__ = [
    "ConversionError",
    "LazyTensor",
    "PickledObjectPlaceholder",
    "SafeCheckpoint",
    "UnsafeCheckpointError",
    "convert_checkpoint",
    "load_checkpoint_safely",
]
