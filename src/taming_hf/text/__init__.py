"""Text: OpenAI CLIP's tokenizer, converted from the BPE file open_clip ships."""

from .clip_tokenizer import (
    CONTEXT_LENGTH,
    VOCAB_SIZE,
    ClipBpeFormatError,
    clip_tokenizer_dir,
    clip_vocabulary,
    convert_clip_bpe,
    load_clip_tokenizer,
    read_clip_merges,
)

__all__ = [
    "CONTEXT_LENGTH",
    "VOCAB_SIZE",
    "ClipBpeFormatError",
    "clip_tokenizer_dir",
    "clip_vocabulary",
    "convert_clip_bpe",
    "load_clip_tokenizer",
    "read_clip_merges",
]
