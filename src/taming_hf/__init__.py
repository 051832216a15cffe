"""taming_hf: Taming Transformers (VQGAN + latent GPT prior) on the Hugging Face stack."""

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

__all__ = [
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
]
