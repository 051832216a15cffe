"""Data for the latent prior: index grids from a frozen VQGAN, token sequences, and their corruption.

The prior never sees pixels. A dataset of images is encoded once into codebook index grids
(`encode_dataset`, a cached and resumable `datasets.map`), and every training batch is then built
from those grids in the pipeline's vocabulary layout (`TokenLayout`):

    input_ids  [prefix (P tokens) | image codes (N = h * w tokens, in `token_order`)]
    labels     [-100 ... -100     | image codes                                      ]

`GPT2LMHeadModel` shifts the labels by one internally, so position `P - 1 + i` predicts image code
`i`; the prefix is never a target. The prefix is one SOS token (unconditional), one class token at
`condition_offset + class_id` (class-conditional), the condition VQGAN's raster-order codes at
`condition_offset + code` (spatial), or a caption's `max_text_length` text tokens (text; see
`TextVocabulary`).

Two training-only corruptions act on `input_ids` alone (labels stay clean): class dropout to the
null class (for classifier-free guidance) and the original's `pkeep` (each input image code is
replaced by a random code with probability `1 - pkeep`). Text models have two more, in
`choose_captions`: a random caption among an image's captions, and caption dropout to the null caption.
"""

import hashlib
import math
import os
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence

import datasets
import numpy as np
import torch

# The vocabulary contract the pipeline reads back (public names of `taming_hf.pipelines.taming`).
from ..pipelines.taming import TextVocabulary, TokenLayout, tokenize_captions, tokenizer_fingerprint
from .data import decode_image

TOKEN_ORDERS = ("raster", "random", "zcurve")
IGNORE_INDEX = -100


# ----------------------------------------------------------------------------------------------
# Token orders
# ----------------------------------------------------------------------------------------------


def _morton_key(row: int, col: int) -> int:
    """Interleave the bits of (row, col): the cell's position along a Z-order curve."""
    key = 0
    for bit in range(16):
        key |= ((col >> bit) & 1) << (2 * bit) | ((row >> bit) & 1) << (2 * bit + 1)
    return key


def make_token_order(name: str, height: int, width: int, seed: int = 1) -> List[int]:
    """
    The order in which the prior generates the cells of an `height` x `width` index grid.

    Returns a permutation `order` of `range(height * width)`: sequence position `i` holds the code
    of raster cell `order[i]` (so `codes_flat[order]` reorders, and `seq[argsort(order)]` restores).

    Args:
        name (`str`): `"raster"` (row-major, the original's default), `"random"` (a fixed random
            permutation drawn with `seed`) or `"zcurve"` (Z-order / Morton curve).
    """
    cells = height * width
    if name == "raster":
        return list(range(cells))
    if name == "random":
        return torch.randperm(cells, generator=torch.Generator().manual_seed(seed)).tolist()
    if name == "zcurve":
        return sorted(range(cells), key=lambda cell: _morton_key(cell // width, cell % width))
    raise ValueError(f"token order must be one of {TOKEN_ORDERS}, got {name!r}.")


# ----------------------------------------------------------------------------------------------
# Encoding a dataset into index grids
# ----------------------------------------------------------------------------------------------


def model_fingerprint(model: torch.nn.Module) -> str:
    """A short sha256 over a model's parameters and buffers (names, shapes, values)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.detach().float().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


def _encode_batch(
    batch: Dict[str, list],
    vqgan,
    image_processor,
    image_column: str,
    label_column: Optional[str],
    condition_column: Optional[str],
    condition_vqgan,
    condition_processor,
    caption_columns: Sequence[str] = (),
    tokenizer=None,
    max_text_length: Optional[int] = None,
) -> Dict[str, Any]:
    """`datasets.map` function: a batch of images -> `indices` (B, h, w) int32 (+ labels / condition / captions)."""
    out = {"indices": _encode_images(batch[image_column], vqgan, image_processor)}
    if label_column is not None:
        out["class_labels"] = batch[label_column]
    if condition_column is not None:
        out["condition_indices"] = _encode_images(batch[condition_column], condition_vqgan, condition_processor)
    if caption_columns:
        out["caption_ids"] = _tokenize_caption_columns(batch, caption_columns, tokenizer, max_text_length)
    return out


def example_captions(values: Sequence[Any]) -> List[str]:
    """An example's captions from its caption columns' values: strings, or lists of strings (e.g. keywords);
    empty ones are left out."""
    captions = []
    for value in values:
        items = value if isinstance(value, (list, tuple)) else [value]
        for item in items:
            if item is not None and not isinstance(item, str):
                raise ValueError(
                    f"Captions must be strings or lists of strings, got {item!r} ({type(item).__name__})."
                )
            if item and item.strip():
                captions.append(item)
    return captions


def _tokenize_caption_columns(batch, caption_columns, tokenizer, max_text_length) -> List[List[List[int]]]:
    """Per example, the token ids (truncated to `max_text_length`) of each of its captions."""
    per_example = [example_captions(values) for values in zip(*(batch[column] for column in caption_columns))]
    flat = [caption for captions in per_example for caption in captions]
    ids, _ = tokenize_captions(tokenizer, flat, max_text_length) if flat else ([], [])
    out, start = [], 0
    for captions in per_example:
        out.append(ids[start : start + len(captions)])
        start += len(captions)
    return out


@torch.no_grad()
def _encode_images(images: list, vqgan, image_processor) -> np.ndarray:
    """List of PIL images (or `datasets` image records with decoding off) -> (B, h, w) int32 codebook indices."""
    images = [decode_image(image) for image in images]  # names the file a corrupt image came from
    pixel_values = image_processor(images, return_tensors="pt")["pixel_values"]
    pixel_values = pixel_values.to(device=vqgan.device, dtype=vqgan.dtype)
    return vqgan.encode(pixel_values).indices.cpu().numpy().astype(np.int32)


def encode_dataset(
    dataset: datasets.Dataset,
    vqgan,
    image_processor,
    image_column: str = "image",
    label_column: Optional[str] = None,
    condition_column: Optional[str] = None,
    condition_vqgan=None,
    condition_processor=None,
    batch_size: int = 64,
    cache_dir: Optional[str] = None,
    shard_size: int = 10_000,
    caption_columns: Sequence[str] = (),
    tokenizer=None,
    max_text_length: Optional[int] = None,
) -> datasets.Dataset:
    """
    Encode every image of `dataset` with a frozen VQGAN into its codebook index grid.

    The work is split into contiguous shards of `shard_size` examples, each a batched `datasets.map`
    with its own cache file in `cache_dir`, named after a fingerprint of the dataset, the VQGAN's
    weights and the preprocessing. Running again loads finished shards from disk, so an interrupted
    encode resumes at the first missing shard and a finished one costs nothing.

    A streamed `datasets.IterableDataset` is encoded lazily instead (as training reads it; no cache).

    Args:
        dataset (`datasets.Dataset`): images in `image_column` (PIL), optional class ids in
            `label_column`, optional condition images in `condition_column` (spatial conditioning,
            encoded with `condition_vqgan` / `condition_processor`).
        vqgan (`VQGANModel`): the image model; put it on the device to encode on.
        caption_columns (`Sequence[str]`): text conditioning: columns of captions (strings or lists of
            strings); every caption of an example is tokenized with `tokenizer`, truncated to
            `max_text_length` tokens, into its `caption_ids`.
        image_processor (`VQGANImageProcessor`): turns the images into `pixel_values` in [-1, 1].
        cache_dir (`str`, *optional*): where the encoded shards live; `None` keeps them in memory.

    Returns:
        `datasets.Dataset` with `indices` (int32, shape (h, w) per example), plus `class_labels`,
        `condition_indices` and `caption_ids` (a list of token id lists) when asked for. All other columns
        are dropped.
    """
    caption_columns = list(caption_columns)
    _check_columns(dataset, [image_column, label_column, condition_column, *caption_columns])
    if condition_column is not None and (condition_vqgan is None or condition_processor is None):
        raise ValueError("condition_column needs a condition_vqgan and a condition_processor to encode it.")
    if caption_columns and (tokenizer is None or max_text_length is None):
        raise ValueError("caption_columns need a tokenizer and a max_text_length to tokenize them.")
    vqgan.eval()
    if condition_vqgan is not None:
        condition_vqgan.eval()
    fn_kwargs = dict(
        vqgan=vqgan,
        image_processor=image_processor,
        image_column=image_column,
        label_column=label_column,
        condition_column=condition_column,
        condition_vqgan=condition_vqgan,
        condition_processor=condition_processor,
        caption_columns=caption_columns,
        tokenizer=tokenizer,
        max_text_length=max_text_length,
    )
    if isinstance(dataset, datasets.IterableDataset):
        return _encode_stream(dataset, batch_size, fn_kwargs)
    fingerprint = _encoding_fingerprint(dataset, vqgan, image_processor, image_column, label_column, condition_vqgan)
    if caption_columns:  # the captions' tokens depend on the tokenizer and the length too
        text = f"{fingerprint}|{caption_columns}|{tokenizer_fingerprint(tokenizer)}|{max_text_length}"
        fingerprint = hashlib.sha256(text.encode()).hexdigest()[:16]
    num_shards = max(1, math.ceil(len(dataset) / shard_size))
    shards = []
    for index in range(num_shards):
        shard = dataset.shard(num_shards, index, contiguous=True)
        cache_file = None
        if cache_dir is not None:
            os.makedirs(cache_dir, exist_ok=True)
            cache_file = os.path.join(cache_dir, f"codes-{fingerprint}-{index:05d}-of-{num_shards:05d}.arrow")
        shards.append(
            shard.map(
                _encode_batch,
                batched=True,
                batch_size=batch_size,
                fn_kwargs=fn_kwargs,
                remove_columns=dataset.column_names,
                cache_file_name=cache_file,
                load_from_cache_file=cache_file is not None,
                keep_in_memory=cache_file is None,
                new_fingerprint=f"{fingerprint}-{index}-{num_shards}",
                desc=f"Encoding shard {index + 1}/{num_shards} with the VQGAN",
            )
        )
    return datasets.concatenate_datasets(shards) if len(shards) > 1 else shards[0]


def _encode_stream(dataset: datasets.IterableDataset, batch_size: int, fn_kwargs: dict) -> datasets.IterableDataset:
    """A streamed dataset's codes: encoded lazily batch by batch as training reads them (nothing is cached)."""
    outputs = ["indices"]
    outputs += ["class_labels"] if fn_kwargs["label_column"] else []
    outputs += ["condition_indices"] if fn_kwargs["condition_column"] else []
    outputs += ["caption_ids"] if fn_kwargs["caption_columns"] else []
    encoded = dataset.map(_encode_batch, batched=True, batch_size=batch_size, fn_kwargs=fn_kwargs)
    return encoded.select_columns(outputs)


def _check_columns(dataset: datasets.Dataset, columns: Sequence[Optional[str]]) -> None:
    if dataset.column_names is None:  # a stream without declared features: its first batch will tell
        return
    for column in columns:
        if column is not None and column not in dataset.column_names:
            raise ValueError(f"Column {column!r} is not in the dataset; its columns are {dataset.column_names}.")


def _encoding_fingerprint(dataset, vqgan, image_processor, image_column, label_column, condition_vqgan) -> str:
    parts = [
        getattr(dataset, "_fingerprint", None) or str(len(dataset)),
        model_fingerprint(vqgan),
        model_fingerprint(condition_vqgan) if condition_vqgan is not None else "",
        str(sorted(image_processor.to_dict().items(), key=lambda item: item[0])),
        image_column,
        str(label_column),
    ]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------------------------
# Sequences and batches
# ----------------------------------------------------------------------------------------------


def prefix_length(layout: TokenLayout, condition_grid_size: int = 0, max_text_length: int = 0) -> int:
    """Number of prefix tokens P before the image codes: 1, the condition grid's h * w (spatial), or
    `max_text_length` (text)."""
    if layout.conditioning == "text":
        return max_text_length
    return condition_grid_size if layout.conditioning == "spatial" else 1


def seen_text_token_ids(caption_ids: Sequence[Sequence[Sequence[int]]], extra: Sequence[int] = ()) -> List[int]:
    """The sorted tokenizer ids the captions use (plus `extra`, e.g. the null caption's): a kept text vocabulary."""
    seen = set(extra)
    for captions in caption_ids:
        for ids in captions:
            seen.update(ids)
    return sorted(int(i) for i in seen)


def build_prefix(
    layout: TokenLayout,
    batch_size: int,
    class_labels: Optional[torch.Tensor] = None,
    condition_indices: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """
    The condition prefix of a batch in the vocabulary layout, shape (B, P), dtype long.

    Args:
        class_labels (`torch.LongTensor` of shape `(B,)`): class ids, for `"class"` layouts.
        condition_indices (`torch.LongTensor` of shape `(B, h_c, w_c)`): condition VQGAN codes, for
            `"spatial"` layouts (raster order).
    """
    if layout.conditioning == "class":
        if class_labels is None:
            raise ValueError("A class-conditional layout needs class labels (the dataset's label column).")
        _check_range(class_labels, layout.num_condition_tokens, "class label")
        return (layout.condition_offset + class_labels.long()).view(batch_size, 1)
    if layout.conditioning == "spatial":
        if condition_indices is None:
            raise ValueError("A spatial layout needs condition_indices (the encoded condition images).")
        _check_range(condition_indices, layout.num_condition_tokens, "condition code")
        return layout.condition_offset + condition_indices.long().reshape(batch_size, -1)
    return torch.full((batch_size, 1), layout.sos_token_id, dtype=torch.long)


def _check_range(values: torch.Tensor, upper: int, what: str) -> None:
    if values.numel() and (int(values.min()) < 0 or int(values.max()) >= upper):
        bad = int(values.min()) if int(values.min()) < 0 else int(values.max())
        raise ValueError(f"A {what} of {bad} is outside the model's [0, {upper}) range.")


@dataclass
class PriorDataCollator:
    """
    Builds clean prior batches from encoded examples (see the module docstring for the layout).

    Each feature holds `indices` (h, w) and, depending on the layout, `class_labels` (int) or
    `condition_indices` (h_c, w_c). Returns `input_ids` and `labels`, both (B, P + h * w) long;
    `labels` is -100 on the P prefix positions, so the loss covers image codes only.

    Args:
        layout (`TokenLayout`): the vocabulary layout of the pipeline being trained.
        token_order (`List[int]`, *optional*): a permutation from `make_token_order`; raster if unset.
    """

    layout: TokenLayout
    token_order: Optional[Sequence[int]] = None
    text_vocabulary: Optional[TextVocabulary] = None
    null_caption_ids: Sequence[int] = ()

    def __call__(self, features: List[Dict[str, Any]]) -> Dict[str, torch.Tensor]:
        codes = torch.stack([torch.as_tensor(f["indices"]) for f in features]).long()
        batch_size = codes.shape[0]
        codes = codes.reshape(batch_size, -1)
        _check_range(codes, self.layout.num_image_codes, "image code")
        if self.token_order is not None:
            if len(self.token_order) != codes.shape[1]:
                raise ValueError(
                    f"token_order has {len(self.token_order)} entries but the index grids have {codes.shape[1]} cells."
                )
            codes = codes[:, torch.as_tensor(self.token_order, dtype=torch.long)]
        if self.layout.conditioning == "text":
            return self._text_batch(features, codes)
        prefix = build_prefix(self.layout, batch_size, **self._conditions(features))
        input_ids = torch.cat([prefix, codes], dim=1)
        labels = torch.cat([torch.full_like(prefix, IGNORE_INDEX), codes], dim=1)
        return {"input_ids": input_ids, "labels": labels}

    def _text_batch(self, features: List[Dict[str, Any]], codes: torch.LongTensor) -> Dict[str, torch.Tensor]:
        """
        Text batches: `input_ids` start with each example's first caption (the null caption when it has none);
        `caption_choices` (B, C, L) holds the prefixes of all its captions (C = the most any example has, the
        rest repeat the first) and `caption_counts` (B,) how many are real, for `choose_captions`.
        """
        if self.text_vocabulary is None:
            raise ValueError("A text layout needs the text_vocabulary that maps caption tokens into the prior.")
        captions = [list(f["caption_ids"]) or [list(self.null_caption_ids)] for f in features]
        most = max(len(options) for options in captions)
        padded = [options + [options[0]] * (most - len(options)) for options in captions]
        choices = self.text_vocabulary.prefix([ids for options in padded for ids in options])
        choices = choices.view(len(features), most, -1)
        input_ids = torch.cat([choices[:, 0], codes], dim=1)
        labels = torch.cat([torch.full_like(choices[:, 0], IGNORE_INDEX), codes], dim=1)
        counts = torch.tensor([len(options) for options in captions])
        return {"input_ids": input_ids, "labels": labels, "caption_choices": choices, "caption_counts": counts}

    def _conditions(self, features: List[Dict[str, Any]]) -> Dict[str, torch.Tensor]:
        if self.layout.conditioning == "class":
            return {"class_labels": torch.as_tensor([int(f["class_labels"]) for f in features])}
        if self.layout.conditioning == "spatial":
            return {"condition_indices": torch.stack([torch.as_tensor(f["condition_indices"]) for f in features])}
        return {}


def corrupt_inputs(
    input_ids: torch.LongTensor,
    labels: torch.LongTensor,
    layout: TokenLayout,
    class_dropout_prob: float = 0.0,
    pkeep: float = 1.0,
    generator: Optional[torch.Generator] = None,
) -> torch.LongTensor:
    """
    Training-time corruption of a batch's inputs; `labels` (the targets) are left untouched.

    - class dropout: with probability `class_dropout_prob`, a sequence's class token becomes
      `layout.null_class_token_id`, so one model learns p(x | c) and p(x) for classifier-free guidance.
    - pkeep: every input image code (positions where `labels != -100`) is kept with probability
      `pkeep` and otherwise replaced by a uniformly random image code in [0, K).

    Args:
        input_ids, labels (`torch.LongTensor` of shape `(B, P + N)`): a batch from `PriorDataCollator`.

    Returns:
        `torch.LongTensor` of shape `(B, P + N)`: the corrupted copy of `input_ids`.
    """
    input_ids = input_ids.clone()
    if class_dropout_prob > 0:
        if layout.conditioning != "class" or layout.null_class_token_id is None:
            raise ValueError("class_dropout_prob > 0 needs a class-conditional layout with a null_class_token_id.")
        drop = _uniform(input_ids.shape[0], input_ids.device, generator) < class_dropout_prob
        input_ids[drop, 0] = layout.null_class_token_id
    if pkeep < 1.0:
        is_code = labels != IGNORE_INDEX
        replace = is_code & (_uniform(input_ids.shape, input_ids.device, generator) >= pkeep)
        random_codes = torch.randint(
            0, layout.num_image_codes, input_ids.shape, generator=generator, device=_generator_device(generator)
        )
        input_ids = torch.where(replace, random_codes.to(input_ids.device), input_ids)
    return input_ids


def choose_captions(
    input_ids: torch.LongTensor,
    caption_choices: torch.LongTensor,
    caption_counts: torch.LongTensor,
    null_prefix: torch.LongTensor,
    caption_dropout_prob: float = 0.0,
    generator: Optional[torch.Generator] = None,
) -> torch.LongTensor:
    """
    Training-time text augmentation of a batch's inputs: each row's text prefix becomes one of its captions,
    drawn uniformly (e.g. an emoji's name or one of its keywords), and with probability
    `caption_dropout_prob` the null caption instead, so one model learns p(x | caption) and p(x) for
    classifier-free guidance.

    Args:
        input_ids (`torch.LongTensor` of shape `(B, L + N)`): a text batch from `PriorDataCollator`.
        caption_choices (`torch.LongTensor` of shape `(B, C, L)`), caption_counts (`(B,)`): its captions.
        null_prefix (`torch.LongTensor` of shape `(L,)`): the null caption's prefix.

    Returns:
        `torch.LongTensor` of shape `(B, L + N)`: the copy of `input_ids` with the chosen prefixes.
    """
    batch_size, _, length = caption_choices.shape
    device = input_ids.device
    draw = _uniform(batch_size, device, generator)
    choice = (draw * caption_counts.to(device)).long().clamp(max=caption_choices.shape[1] - 1)
    prefix = caption_choices.to(device)[torch.arange(batch_size, device=device), choice]
    if caption_dropout_prob > 0:
        drop = _uniform(batch_size, device, generator) < caption_dropout_prob
        prefix = torch.where(drop[:, None], null_prefix.to(device)[None], prefix)
    input_ids = input_ids.clone()
    input_ids[:, :length] = prefix
    return input_ids


def _generator_device(generator: Optional[torch.Generator]) -> Optional[torch.device]:
    return None if generator is None else generator.device


def _uniform(shape, device, generator: Optional[torch.Generator]) -> torch.Tensor:
    return torch.rand(shape, generator=generator, device=_generator_device(generator)).to(device)
