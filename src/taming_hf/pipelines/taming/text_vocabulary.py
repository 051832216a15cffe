"""Text conditioning: how a caption's tokenizer ids become the prior's text prefix.

A text-conditional prior reads `max_text_length` prefix tokens, then the image codes:

    [ t_1 ... t_n  pad ... pad | image codes ]      n <= max_text_length

`t_i` are the caption's tokenizer ids (with the tokenizer's own special tokens, e.g. CLIP's
`<|startoftext|>` / `<|endoftext|>`) mapped into the prior's vocabulary, and `pad` is the layout's
`text_pad_token_id`. The prefix always has the same length, so conditional and null-caption rows of
classifier-free guidance stack into one batch without an attention mask, as DALL-E's did.

The mapping is one of two kinds, stored in the pipeline's config:

- all ids (`token_ids=None`): tokenizer id `i` is prior token `offset + i`;
- a kept subset (`token_ids=[i_0, i_1, ...]`, e.g. the ids the training captions use): tokenizer id
  `i_j` is prior token `offset + j`, and any other id becomes `text_unknown_token_id`.

CLIP's BPE has 49,408 ids; emoji captions use a few thousand. Keeping only those shrinks the prior's
embedding and output layers (2 x 49,408 x n_embd weights with all ids) and the per-token noise draw of
the sampler, which spans the whole vocabulary.
"""

import hashlib
import json
from dataclasses import dataclass
from typing import Iterable, List, Optional, Sequence, Tuple

import torch


def tokenizer_fingerprint(tokenizer) -> str:
    """A short sha256 of a tokenizer's vocabulary (tokens and ids, added tokens included)."""
    vocabulary = sorted(tokenizer.get_vocab().items(), key=lambda item: item[1])
    return hashlib.sha256(json.dumps(vocabulary, ensure_ascii=False).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class TextVocabulary:
    """
    The map from tokenizer ids to the prior's text tokens, and the prefix it builds.

    Args:
        offset (`int`): prior id of the first text token (the number of image codes K).
        tokenizer_vocab_size (`int`): `len(tokenizer)` of the tokenizer the prior was trained with.
        max_text_length (`int`): L, the length of every text prefix.
        pad_token_id (`int`): the prior token that fills a prefix after the caption.
        token_ids (`Tuple[int, ...]`, *optional*): the kept tokenizer ids, in prior order; `None` keeps all.
        unknown_token_id (`int`, *optional*): the prior token of tokenizer ids not kept (with `token_ids`).
    """

    offset: int
    tokenizer_vocab_size: int
    max_text_length: int
    pad_token_id: int
    token_ids: Optional[Tuple[int, ...]] = None
    unknown_token_id: Optional[int] = None

    def __post_init__(self):
        if self.max_text_length < 1:
            raise ValueError(f"max_text_length must be a positive number of tokens, got {self.max_text_length}.")
        if self.token_ids is None:
            return
        if self.unknown_token_id is None:
            raise ValueError("A text vocabulary that keeps a subset of the tokenizer's ids needs an unknown_token_id.")
        bad = [i for i in self.token_ids if not 0 <= i < self.tokenizer_vocab_size]
        if bad:
            raise ValueError(
                f"text_token_ids hold tokenizer ids {bad[:5]} outside the tokenizer's [0, {self.tokenizer_vocab_size}) "
                "range: the tokenizer is not the one the prior was trained with."
            )
        if len(set(self.token_ids)) != len(self.token_ids):
            raise ValueError("text_token_ids must not repeat a tokenizer id.")

    @property
    def num_tokens(self) -> int:
        """T, the number of the prior's text tokens (its `num_condition_tokens`)."""
        return self.tokenizer_vocab_size if self.token_ids is None else len(self.token_ids)

    def lookup(self) -> torch.LongTensor:
        """`(tokenizer_vocab_size,)`: the prior token of every tokenizer id."""
        if self.token_ids is None:
            return torch.arange(self.tokenizer_vocab_size) + self.offset
        table = torch.full((self.tokenizer_vocab_size,), self.unknown_token_id, dtype=torch.long)
        table[torch.tensor(self.token_ids, dtype=torch.long)] = torch.arange(len(self.token_ids)) + self.offset
        return table

    def unknown_ids(self, tokenizer_ids: Iterable[int]) -> List[int]:
        """The ids among `tokenizer_ids` that map to the unknown-text token (sorted, each once)."""
        if self.token_ids is None:
            return []
        return sorted(set(tokenizer_ids) - set(self.token_ids))

    def prefix(self, tokenizer_ids: Sequence[Sequence[int]]) -> torch.LongTensor:
        """
        Tokenizer ids of B captions (each at most `max_text_length` long) -> the `(B, L)` prior prefix: mapped
        tokens, then pad tokens.
        """
        rows = torch.full((len(tokenizer_ids), self.max_text_length), self.pad_token_id, dtype=torch.long)
        table = self.lookup()
        for row, ids in enumerate(tokenizer_ids):
            if len(ids) > self.max_text_length:
                raise ValueError(
                    f"A caption of {len(ids)} tokens does not fit max_text_length={self.max_text_length}."
                )
            if len(ids):
                ids = torch.as_tensor(list(ids), dtype=torch.long)
                if int(ids.min()) < 0 or int(ids.max()) >= self.tokenizer_vocab_size:
                    raise ValueError(
                        f"Tokenizer id {int(ids.max())} is outside the [0, {self.tokenizer_vocab_size}) range the prior "
                        "was trained with."
                    )
                rows[row, : len(ids)] = table[ids]
        return rows


def tokenize_captions(tokenizer, captions: Sequence[str], max_text_length: int) -> Tuple[List[List[int]], List[int]]:
    """
    Tokenize captions with the tokenizer's own special tokens, truncated to `max_text_length` tokens by the
    tokenizer (which keeps its end token, e.g. CLIP's `<|endoftext|>`).

    Returns:
        The truncated id lists, and each caption's length before truncation.
    """
    full = tokenizer(list(captions), add_special_tokens=True, truncation=False, verbose=False)["input_ids"]
    lengths = [len(ids) for ids in full]
    if max(lengths, default=0) <= max_text_length:
        return [list(ids) for ids in full], lengths
    truncated = tokenizer(list(captions), add_special_tokens=True, truncation=True, max_length=max_text_length)
    return [list(ids) for ids in truncated["input_ids"]], lengths
