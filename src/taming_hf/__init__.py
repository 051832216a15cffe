"""taming_hf: Taming Transformers (VQGAN + latent GPT prior) on the Hugging Face stack."""

import importlib

from transformers import AutoConfig, AutoImageProcessor, AutoModel

from .models.vqgan import (
    GumbelQuantizer,
    VectorQuantizer,
    VQGANConfig,
    VQGANEncoderOutput,
    VQGANImageProcessor,
    VQGANModel,
    VQGANModelOutput,
)
from .pipelines import (
    TamingPipeline,
    TamingPipelineOutput,
    TokenLayout,
    VQGANCLIPPipeline,
    VQGANCLIPPipelineOutput,
    export_frames,
)

__version__ = "0.1.0"

AutoConfig.register("vqgan", VQGANConfig, exist_ok=True)
AutoModel.register(VQGANConfig, VQGANModel, exist_ok=True)
AutoImageProcessor.register(VQGANConfig, slow_image_processor_class=VQGANImageProcessor, exist_ok=True)

# Names whose modules import `datasets` (seconds): loaded on first use, so `import taming_hf` stays quick.
_LAZY_NAMES = {"EmojiSourceError": ".data", "load_emoji_dataset": ".data"}


def __getattr__(name: str):
    if name in _LAZY_NAMES:
        return getattr(importlib.import_module(_LAZY_NAMES[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "EmojiSourceError",
    "GumbelQuantizer",
    "TamingPipeline",
    "TamingPipelineOutput",
    "TokenLayout",
    "VQGANCLIPPipeline",
    "VQGANCLIPPipelineOutput",
    "VQGANConfig",
    "VQGANEncoderOutput",
    "VQGANImageProcessor",
    "VQGANModel",
    "VQGANModelOutput",
    "VectorQuantizer",
    "export_frames",
    "load_emoji_dataset",
]
