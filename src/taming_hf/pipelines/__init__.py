from .taming import TamingPipeline, TamingPipelineOutput, TokenLayout
from .vqgan_clip import VQGANCLIPPipeline, VQGANCLIPPipelineOutput, export_frames

__all__ = [
    "TamingPipeline",
    "TamingPipelineOutput",
    "TokenLayout",
    "VQGANCLIPPipeline",
    "VQGANCLIPPipelineOutput",
    "export_frames",
]
