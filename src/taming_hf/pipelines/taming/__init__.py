from .pipeline_taming import TamingPipeline, TamingPipelineOutput
from .text_vocabulary import TextVocabulary
from .vocabulary import TokenLayout

__all__ = ["TamingPipeline", "TamingPipelineOutput", "TextVocabulary", "TokenLayout"]
