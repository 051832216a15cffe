from .pipeline_taming import TamingPipeline, TamingPipelineOutput
from .text_vocabulary import TextVocabulary, tokenize_captions, tokenizer_fingerprint
from .vocabulary import TokenLayout

__all__ = [
    "TamingPipeline",
    "TamingPipelineOutput",
    "TextVocabulary",
    "TokenLayout",
    "tokenize_captions",
    "tokenizer_fingerprint",
]
