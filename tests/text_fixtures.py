"""Tiny text models built offline for the text-conditioning tests: a CLIP BPE tokenizer from a small
vocab.json / merges.txt, and a tiny random CLIPModel with its processor."""

import json
from pathlib import Path
from typing import Optional

import torch
from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer
from transformers.convert_slow_tokenizer import bytes_to_unicode

WORDS = ("a", "red", "green", "apple", "cat", "dog", "smiling", "face")


def _bpe(symbols: list, merges: list) -> list:
    """Apply `merges` to `symbols` as BPE does: repeatedly merge the adjacent pair of lowest rank."""
    ranks = {pair: rank for rank, pair in enumerate(merges)}
    while len(symbols) > 1:
        pairs = [(ranks.get(pair, len(ranks)), i) for i, pair in enumerate(zip(symbols, symbols[1:]))]
        rank, i = min(pairs)
        if rank == len(ranks):
            return symbols
        symbols = symbols[:i] + [symbols[i] + symbols[i + 1]] + symbols[i + 2 :]
    return symbols


def _add_merges_for(word: str, merges: list) -> None:
    """Append the merges that make `word</w>` one token, after those already in `merges`."""
    symbols = _bpe(list(word[:-1]) + [word[-1] + "</w>"], merges)
    while len(symbols) > 1:
        merges.append((symbols[0], symbols[1]))
        symbols = _bpe(symbols, merges)


def write_clip_bpe(folder: Path) -> Path:
    """vocab.json and merges.txt of a CLIP-style byte-level BPE that knows `WORDS` as whole tokens."""
    folder.mkdir(parents=True, exist_ok=True)
    symbols = list(bytes_to_unicode().values())
    vocab = {symbol: index for index, symbol in enumerate(symbols)}
    vocab.update({symbol + "</w>": len(symbols) + index for index, symbol in enumerate(symbols)})
    merges = []
    for word in WORDS:
        _add_merges_for(word, merges)
    for left, right in merges:
        vocab.setdefault(left + right, len(vocab))
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    return folder


def tiny_clip_tokenizer(tmp_path: Path) -> CLIPTokenizer:
    return CLIPTokenizer.from_pretrained(write_clip_bpe(tmp_path / "clip-bpe"))


def tiny_clip_processor(tokenizer: CLIPTokenizer, image_size: int = 16) -> CLIPProcessor:
    """A CLIPProcessor over `tokenizer` that resizes and crops images to `image_size`."""
    image_processor = CLIPImageProcessor(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}
    )
    return CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer)


def tiny_clip(
    tokenizer: CLIPTokenizer,
    seed: int = 3,
    image_size: int = 16,
    hidden_size: int = 16,
    projection_dim: int = 8,
    vocab_size: Optional[int] = None,
):
    """A tiny random CLIPModel over `tokenizer`'s ids (or `vocab_size` ids) and its `tiny_clip_processor`."""
    torch.manual_seed(seed)
    config = CLIPConfig(
        text_config=dict(
            vocab_size=vocab_size or len(tokenizer),
            hidden_size=hidden_size,
            intermediate_size=2 * hidden_size,
            num_hidden_layers=1,
            num_attention_heads=2,
            max_position_embeddings=16,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
        ),
        vision_config=dict(
            hidden_size=hidden_size,
            intermediate_size=2 * hidden_size,
            num_hidden_layers=1,
            num_attention_heads=2,
            image_size=image_size,
            patch_size=8,
        ),
        projection_dim=projection_dim,
    )
    return CLIPModel(config).eval(), tiny_clip_processor(tokenizer, image_size)
