from .configuration_vqgan import VQGANConfig
from .image_processing_vqgan import VQGANImageProcessor
from .modeling_vqgan import (
    VQGANDecoder,
    VQGANEncoder,
    VQGANEncoderOutput,
    VQGANModel,
    VQGANModelOutput,
    VQGANPreTrainedModel,
)
from .quantizers import GumbelQuantizer, VectorQuantizer

__all__ = [
    "GumbelQuantizer",
    "VQGANConfig",
    "VQGANDecoder",
    "VQGANEncoder",
    "VQGANEncoderOutput",
    "VQGANImageProcessor",
    "VQGANModel",
    "VQGANModelOutput",
    "VQGANPreTrainedModel",
    "VectorQuantizer",
]
