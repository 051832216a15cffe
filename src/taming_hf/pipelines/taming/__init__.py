from .pipeline_taming import TamingPipeline, TamingPipelineOutput
from .vocabulary import TokenLayout

__all__ = ["TamingPipeline", "TamingPipelineOutput", "TokenLayout"]
