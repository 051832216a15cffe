from .taming import TamingPipeline, TamingPipelineOutput, TokenLayout

__all__ = ["TamingPipeline", "TamingPipelineOutput", "TokenLayout"]
