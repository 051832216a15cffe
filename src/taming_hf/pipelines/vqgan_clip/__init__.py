from .cutouts import MakeCutouts, default_augmentations
from .frames import export_frames
from .pipeline_vqgan_clip import VQGANCLIPPipeline, VQGANCLIPPipelineOutput
from .prompts import WeightedPrompt, parse_prompt, parse_prompts

__all__ = [
    "MakeCutouts",
    "VQGANCLIPPipeline",
    "VQGANCLIPPipelineOutput",
    "WeightedPrompt",
    "default_augmentations",
    "export_frames",
    "parse_prompt",
    "parse_prompts",
]
