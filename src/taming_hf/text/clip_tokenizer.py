"""OpenAI CLIP's byte-level BPE as a transformers `CLIPTokenizer`, built from the merges file open_clip ships.

OpenAI's CLIP tokenizer is defined by one file, `bpe_simple_vocab_16e6.txt.gz` (in the `open-clip-torch` wheel as
`open_clip/bpe_simple_vocab_16e6.txt.gz`). It is gzipped UTF-8 text: a header line (`...#version: 0.2`), then one
merge a line, two space-separated symbols in rank order (262,144 lines; CLIP uses the first 48,894). The
vocabulary is not stored; it is implied:

    ids 0..255        the 256 byte symbols of GPT-2's byte-to-unicode table, in that table's order
    ids 256..511      the same symbols with the end-of-word suffix `</w>`
    ids 512..49405    one symbol per merge, the concatenation of its two parts, in merge order
    49406, 49407      `<|startoftext|>`, `<|endoftext|>`

which gives the 49,408 ids of every CLIP text tower. `convert_clip_bpe` writes that vocabulary as `vocab.json` and
the merges as `merges.txt` (the files `CLIPTokenizer.from_pretrained` reads, as in `openai/clip-vit-base-patch32`),
plus transformers' own `tokenizer.json` / `tokenizer_config.json`. `load_clip_tokenizer` loads the converted folder
that `python -m taming_hf.utils.offline_weights clip-bpe` places, or OpenAI's tokenizer from the Hub when online.
"""

import gzip
import json
import os
from pathlib import Path
from typing import List, Optional, Tuple, Union

from transformers import CLIPTokenizer
from transformers.convert_slow_tokenizer import bytes_to_unicode

NUM_MERGES = 49152 - 256 - 2  # CLIP's vocabulary is 49152 symbols + 256 end-of-word bytes; the rest are merges
VOCAB_SIZE = 2 * 256 + NUM_MERGES + 2
BOS_TOKEN, EOS_TOKEN = "<|startoftext|>", "<|endoftext|>"
CONTEXT_LENGTH = 77  # the text tower's position embeddings in every OpenAI CLIP
END_OF_WORD = "</w>"
HUB_TOKENIZER = "openai/clip-vit-base-patch32"


class ClipBpeFormatError(ValueError):
    """The merges file is not CLIP's BPE (bad header, too few merges, a malformed line)."""


def read_clip_merges(bpe_gz_path: Union[str, os.PathLike]) -> List[Tuple[str, str]]:
    """
    The first `NUM_MERGES` merges of a `bpe_simple_vocab_16e6.txt.gz` file, as `(left, right)` symbol pairs.

    Raises `ClipBpeFormatError` naming the file and the line when it is not gzip, has no `#version` header, has
    fewer merges than CLIP uses, or a merge line is not two symbols.
    """
    try:
        with gzip.open(bpe_gz_path, "rt", encoding="utf-8") as f:
            lines = f.read().split("\n")
    except (OSError, UnicodeDecodeError) as error:  # gzip.BadGzipFile is an OSError
        raise ClipBpeFormatError(f"{bpe_gz_path} is not a gzipped UTF-8 BPE merges file: {error}") from error
    if "#version" not in lines[0]:
        raise ClipBpeFormatError(
            f"{bpe_gz_path} does not start with a '#version' header line (got {lines[0][:60]!r}); expected CLIP's "
            "bpe_simple_vocab_16e6.txt.gz."
        )
    body = lines[1 : NUM_MERGES + 1]
    if len(body) < NUM_MERGES:
        raise ClipBpeFormatError(f"{bpe_gz_path} has {len(body)} merges, CLIP's BPE uses {NUM_MERGES}.")
    merges = []
    for number, line in enumerate(body, start=2):
        parts = line.split()
        if len(parts) != 2:
            raise ClipBpeFormatError(f"{bpe_gz_path} line {number}: a merge is two symbols, got {line!r}.")
        merges.append((parts[0], parts[1]))
    return merges


def clip_vocabulary(merges: List[Tuple[str, str]]) -> dict:
    """Symbol -> id for CLIP's BPE (see the module docstring for the layout); `len(...) == VOCAB_SIZE`."""
    byte_symbols = list(bytes_to_unicode().values())
    vocab = {symbol: index for index, symbol in enumerate(byte_symbols + [s + END_OF_WORD for s in byte_symbols])}
    for rank, (left, right) in enumerate(merges):
        # A merge joins two symbols that exist already; a repeated result would shift every later id.
        unknown = [part for part in (left, right) if part not in vocab]
        if unknown or left + right in vocab:
            problem = f"merges unknown symbols {unknown}" if unknown else f"repeats the symbol {left + right!r}"
            raise ClipBpeFormatError(f"Merge {rank} ({left!r} {right!r}, line {rank + 2}) {problem}.")
        vocab[left + right] = len(vocab)
    for special in (BOS_TOKEN, EOS_TOKEN):
        vocab[special] = len(vocab)
    return vocab


def convert_clip_bpe(bpe_gz_path: Union[str, os.PathLike], output_dir: Union[str, os.PathLike]) -> CLIPTokenizer:
    """
    Write a `CLIPTokenizer` folder (`vocab.json`, `merges.txt`, `tokenizer.json`, `tokenizer_config.json`) for
    OpenAI's CLIP BPE to `output_dir` and return the tokenizer.

    Args:
        bpe_gz_path: open_clip's `bpe_simple_vocab_16e6.txt.gz`.
        output_dir: created if needed; files there of the same names are overwritten.
    """
    merges = read_clip_merges(bpe_gz_path)
    vocab = clip_vocabulary(merges)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    with open(output_dir / "vocab.json", "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False)
    with open(output_dir / "merges.txt", "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "".join(f"{left} {right}\n" for left, right in merges))
    tokenizer = CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=CONTEXT_LENGTH)
    tokenizer.save_pretrained(output_dir)
    return tokenizer


def clip_tokenizer_dir() -> Path:
    """Where `python -m taming_hf.utils.offline_weights clip-bpe` places the converted tokenizer."""
    from ..utils.offline_weights import WEIGHT_FILES

    return WEIGHT_FILES["clip-bpe"].target()


def load_clip_tokenizer(path: Optional[Union[str, os.PathLike]] = None) -> CLIPTokenizer:
    """
    OpenAI CLIP's tokenizer.

    Args:
        path: a converted tokenizer folder. Default: the one the offline-weights tool places (`clip_tokenizer_dir()`)
            when it is there, else `openai/clip-vit-base-patch32`'s tokenizer from the Hub (the same vocabulary).
    Raises:
        MissingWeightsError: neither is available; the message gives the command that places it offline.
    """
    from ..utils.offline_weights import explain_missing_weights

    if path is not None:
        return CLIPTokenizer.from_pretrained(path)
    folder = clip_tokenizer_dir()
    if folder.is_dir():
        return CLIPTokenizer.from_pretrained(folder)
    with explain_missing_weights("clip-bpe"):
        return CLIPTokenizer.from_pretrained(HUB_TOKENIZER)
