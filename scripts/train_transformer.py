#!/usr/bin/env python
"""Train the latent GPT prior of a TamingPipeline on the codes of a frozen VQGAN.

    accelerate launch scripts/train_transformer.py \
        --vqgan_model_name_or_path path/to/vqgan --train_data_dir path/to/images \
        --conditioning class --output_dir taming-prior

1. Loads an image dataset (Hub id, local `datasets` folder, image folder with class
   subfolders, or `fashion_mnist` from its local IDX files) and encodes it once into index grids with the
   frozen VQGAN (`encode_dataset`: cached on disk, resumable); for `--conditioning text` it tokenizes the
   captions of `--caption_column` (and `--extra_caption_columns`) in the same pass.
2. Trains a `GPT2LMHeadModel` on [condition prefix | image codes] with transformers' `Trainer`
   (Accelerate underneath: DDP / FSDP / DeepSpeed, mixed precision, checkpoints and resume,
   trackers); the loss covers image codes only (text models: plus `--text_loss_weight` on the caption).
3. Evaluates validation loss and bits per token, samples a grid every `--validation_steps`, and
   writes a complete TamingPipeline (`model_index.json`, `vqgan/`, `transformer/`) to `--output_dir`.

See docs/training_transformer.md.
"""

import argparse
import json
import logging
import math
import os
from typing import Optional

import datasets
import numpy as np
import torch
from transformers import AutoTokenizer, GPT2LMHeadModel, TrainingArguments, set_seed
from transformers.trainer_utils import get_last_checkpoint

from taming_hf import VQGANImageProcessor, VQGANModel
from taming_hf.pipelines.taming.sampling import check_sampling_arguments
from taming_hf.pipelines.taming.sampling_settings import SamplingSettings
from taming_hf.pipelines.taming.text_vocabulary import TextVocabulary, tokenize_captions, tokenizer_fingerprint
from taming_hf.pipelines.taming.vocabulary import CONDITIONING_KINDS, TokenLayout
from taming_hf.training.data import check_image_column, decode_image, load_image_dataset, prepare_for_decoding
from taming_hf.training.prior_data import (
    TOKEN_ORDERS,
    PriorDataCollator,
    encode_dataset,
    example_captions,
    make_token_order,
    prefix_length,
    seen_text_token_ids,
)
from taming_hf.training.prior_trainer import PriorTrainer, SampleGridCallback, build_prior_config
from taming_hf.utils.loading import check_safetensors_files, component_folder, missing_local_path_message

logger = logging.getLogger(__name__)


def parse_args(input_args=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    data = parser.add_argument_group("data")
    data.add_argument(
        "--dataset_name",
        type=str,
        default=None,
        help="Hub dataset id, local dataset folder, or `fashion_mnist` (local IDX files when present).",
    )
    data.add_argument("--dataset_config_name", type=str, default=None, help="Configuration of the Hub dataset.")
    data.add_argument(
        "--train_data_dir", type=str, default=None, help="An image folder; class subfolders become labels."
    )
    data.add_argument("--cache_dir", type=str, default=None, help="Where downloaded datasets are stored.")
    data.add_argument("--image_column", type=str, default="image", help="Dataset column that holds the images.")
    data.add_argument(
        "--label_column",
        type=str,
        default=None,
        help="Class-id column for class conditioning (default: the dataset's ClassLabel column).",
    )
    data.add_argument("--condition_image_column", type=str, default=None, help="Condition images (spatial).")
    data.add_argument(
        "--caption_column", type=str, default=None, help="Captions for --conditioning text (strings or string lists)."
    )
    data.add_argument(
        "--extra_caption_columns",
        type=str,
        nargs="*",
        default=[],
        help="More caption columns (e.g. keywords): each training step reads one caption of an image, drawn "
        "uniformly from all of its captions in these columns and --caption_column.",
    )
    data.add_argument("--resolution", type=int, default=None, help="Image size (default: the VQGAN's).")
    data.add_argument(
        "--max_train_samples", type=int, default=None, help="Use only the first N training images (debugging)."
    )
    data.add_argument(
        "--max_eval_samples",
        type=int,
        default=1000,
        help="At most N validation images; a stream without a validation split holds out its first N.",
    )
    data.add_argument(
        "--validation_split", type=str, default=None, help='Validation split (default: "validation" or "test").'
    )
    data.add_argument(
        "--validation_fraction", type=float, default=0.02, help="Held out from train when there is no such split."
    )
    data.add_argument("--codes_cache_dir", type=str, default=None, help="Default: {output_dir}/codes_cache.")
    data.add_argument(
        "--streaming",
        action="store_true",
        help="Stream the training split (datasets' streaming mode): images are encoded as they arrive, not cached; "
        "needs --max_train_steps. The validation images (at most --max_eval_samples) are read into memory.",
    )
    data.add_argument(
        "--shuffle_buffer_size", type=int, default=1000, help="Shuffle buffer of a streamed training split."
    )
    data.add_argument(
        "--encode_batch_size",
        type=int,
        default=64,
        help="Images per VQGAN forward when the dataset is encoded into codes.",
    )

    model = parser.add_argument_group("model")
    model.add_argument(
        "--vqgan_model_name_or_path",
        type=str,
        required=True,
        help="The frozen VQGAN whose codes the prior learns (Hub id or folder; a folder with a `vqgan` sub-folder "
        "works).",
    )
    model.add_argument(
        "--condition_vqgan_model_name_or_path",
        type=str,
        default=None,
        help="The VQGAN that encodes --condition_image_column for spatial conditioning.",
    )
    trainable = tuple(kind for kind in CONDITIONING_KINDS if kind != "coordinates")  # no coordinate datasets
    model.add_argument(
        "--conditioning",
        type=str,
        default="auto",
        choices=("auto",) + trainable,
        help="The prior's condition; auto: spatial with --condition_vqgan_model_name_or_path, text with "
        "--caption_column, class with a label column, else unconditional.",
    )
    model.add_argument("--n_layer", type=int, default=12, help="GPT2 layers.")
    model.add_argument("--n_head", type=int, default=8, help="GPT2 attention heads (must divide --n_embd).")
    model.add_argument("--n_embd", type=int, default=512, help="GPT2 width.")
    model.add_argument("--dropout", type=float, default=0.0, help="GPT2 embedding/attention/residual dropout.")
    model.add_argument(
        "--class_dropout_prob",
        type=float,
        default=None,
        help="Probability of the null class (classifier-free guidance). Default 0.1 for class conditioning.",
    )
    model.add_argument("--pkeep", type=float, default=1.0, help="Keep probability of each input image code.")
    text = parser.add_argument_group("text conditioning")
    text.add_argument(
        "--tokenizer_name_or_path",
        type=str,
        default=None,
        help="A transformers tokenizer (e.g. a CLIPTokenizer folder); saved with the pipeline.",
    )
    text.add_argument("--max_text_length", type=int, default=32, help="Text prefix length (captions are truncated).")
    text.add_argument(
        "--text_vocab",
        type=str,
        default="seen",
        choices=("seen", "all"),
        help="'seen': the prior has tokens only for the tokenizer ids the training captions use (others read as "
        "one unknown token); 'all': one token per tokenizer id.",
    )
    text.add_argument(
        "--caption_dropout_prob",
        type=float,
        default=None,
        help="Probability of the empty caption (classifier-free guidance). Default 0.1 for text conditioning.",
    )
    text.add_argument(
        "--text_loss_weight",
        type=float,
        default=0.0,
        help="Weight of the caption tokens' loss in [0, 1); image codes get 1 minus it. 0: image codes only; "
        "DALL-E used 0.125.",
    )
    model.add_argument(
        "--token_order",
        type=str,
        default="raster",
        choices=TOKEN_ORDERS,
        help="Order in which the prior generates the code grid: raster (row-major, the original's), random (a "
        "fixed permutation, see --token_order_seed) or zcurve (Z-order curve).",
    )
    model.add_argument(
        "--token_order_seed", type=int, default=1, help="Seed of the permutation of --token_order random."
    )

    train = parser.add_argument_group("training")
    train.add_argument(
        "--output_dir",
        type=str,
        default="taming-prior",
        help="Where checkpoints, logs, the codes cache and the pipeline are written.",
    )
    train.add_argument(
        "--seed",
        type=int,
        default=42,
        help="Seeds weights, data order, the validation hold-out and sample grids (as train_vqgan.py).",
    )
    train.add_argument("--train_batch_size", type=int, default=16, help="Per device.")
    train.add_argument("--eval_batch_size", type=int, default=None, help="Per device (default: train batch).")
    train.add_argument(
        "--gradient_accumulation_steps", type=int, default=1, help="Batches accumulated per optimizer step."
    )
    train.add_argument(
        "--learning_rate",
        type=float,
        default=1e-4,
        help="AdamW learning rate (multiplied by the total batch size with --scale_lr).",
    )
    train.add_argument("--scale_lr", action="store_true", help="Multiply lr by batch * accumulation * processes.")
    train.add_argument(
        "--lr_scheduler",
        type=str,
        default="cosine",
        help="A transformers scheduler name (cosine, linear, constant, ...).",
    )
    train.add_argument("--lr_warmup_steps", type=int, default=0, help="Linear warm-up steps of the scheduler.")
    train.add_argument("--adam_beta1", type=float, default=0.9, help="Adam beta1.")
    train.add_argument("--adam_beta2", type=float, default=0.95, help="Adam beta2.")
    train.add_argument("--adam_weight_decay", type=float, default=0.01, help="On linear-layer weights only.")
    train.add_argument("--adam_epsilon", type=float, default=1e-8, help="Adam epsilon.")
    train.add_argument(
        "--max_grad_norm", type=float, default=1.0, help="Clip gradients to this norm (0: no clipping)."
    )
    train.add_argument(
        "--num_train_epochs", type=int, default=10, help="Passes over the data (when --max_train_steps is unset)."
    )
    train.add_argument("--max_train_steps", type=int, default=None, help="Overrides --num_train_epochs.")
    train.add_argument("--checkpointing_steps", type=int, default=500, help="Save a checkpoint every N steps.")
    train.add_argument(
        "--checkpoints_total_limit", type=int, default=None, help="Keep at most N checkpoints (oldest deleted)."
    )
    train.add_argument("--resume_from_checkpoint", type=str, default=None, help='A checkpoint directory, or "latest".')
    train.add_argument(
        "--mixed_precision",
        type=str,
        default=None,
        choices=("no", "fp16", "bf16"),
        help="fp16 or bf16 mixed precision; unset or no: the `accelerate launch` setting (float32 without one).",
    )
    train.add_argument(
        "--dataloader_num_workers", type=int, default=0, help="Data-loading subprocesses (0: the main process)."
    )
    train.add_argument(
        "--logging_steps", type=int, default=10, help="Log the training loss and learning rate every N steps."
    )
    train.add_argument("--report_to", type=str, default="none", help='"tensorboard", "wandb", "all" or "none".')
    train.add_argument("--validation_steps", type=int, default=500, help="Evaluate and sample every N steps.")
    train.add_argument(
        "--num_validation_images",
        type=int,
        default=16,
        help="Images in each sample grid; 0 turns grids off (e.g. with FSDP / ZeRO-3 sharded weights).",
    )
    sample = parser.add_argument_group(
        "recommended sampling settings",
        "Saved in the pipeline's transformer/generation_config.json: the defaults of its calls (the validation "
        "grids' too) when the call leaves them at None. Unset: no top-k, no top-p, temperature 1, no guidance.",
    )
    sample.add_argument("--sample_top_k", type=int, default=None, help="Keep the k most likely codes (0 = off).")
    sample.add_argument("--sample_top_p", type=float, default=None, help="Nucleus sampling threshold in (0, 1].")
    sample.add_argument("--sample_temperature", type=float, default=None, help="Logit temperature (> 0).")
    sample.add_argument(
        "--sample_guidance_scale",
        type=float,
        default=None,
        help="Classifier-free guidance (1 = off); needs --conditioning class with --class_dropout_prob > 0, or "
        "--conditioning text with --caption_dropout_prob > 0.",
    )
    train.add_argument("--push_to_hub", action="store_true", help="Upload the pipeline to the Hub at the end.")
    train.add_argument("--hub_model_id", type=str, default=None, help="Hub repository id (default: the folder name).")
    train.add_argument("--hub_token", type=str, default=None, help="Hub token (default: the logged-in one).")
    args = parser.parse_args(input_args)
    if (args.dataset_name is None) == (args.train_data_dir is None):
        parser.error("Give exactly one of --dataset_name and --train_data_dir.")
    if not 0.0 < args.pkeep <= 1.0:
        parser.error(f"--pkeep must be in (0, 1], got {args.pkeep}.")
    if not 0.0 <= args.text_loss_weight < 1.0:
        parser.error(
            f"--text_loss_weight must be in [0, 1) (1 would train no image code), got {args.text_loss_weight}."
        )
    if args.caption_dropout_prob is not None and not 0.0 <= args.caption_dropout_prob < 1.0:
        parser.error(f"--caption_dropout_prob must be in [0, 1), got {args.caption_dropout_prob}.")
    if args.max_text_length < 1:
        parser.error(f"--max_text_length must be a positive number of tokens, got {args.max_text_length}.")
    if args.streaming and args.max_train_steps is None:
        parser.error("--streaming needs --max_train_steps: a streamed dataset has no length to count epochs by.")
    if args.streaming and args.text_vocab == "seen":
        parser.error(
            "--streaming needs --text_vocab all: --text_vocab seen reads every training caption before training, "
            "which a stream cannot do."
        )
    try:  # the pipeline's own rules for sampling arguments
        check_sampling_arguments(
            args.sample_top_k, args.sample_top_p, args.sample_temperature, args.sample_guidance_scale
        )
    except ValueError as error:
        parser.error(f"--sample_{error}")
    for flag in ("vqgan_model_name_or_path", "condition_vqgan_model_name_or_path"):
        message = missing_local_path_message(getattr(args, flag), f"--{flag}")
        if message is not None:
            parser.error(message)
    return args


# ----------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------


def load_splits(args):
    """
    -> (train, validation) datasets of raw images (see `taming_hf.training.data`). With `--streaming` the
    train split is an `IterableDataset` (shuffled with a buffer) and the validation images are read into a
    `Dataset`; a stream without a validation split holds out its first `--max_eval_samples` examples.
    """

    def load(split, limit, streaming=False):
        return load_image_dataset(
            args.dataset_name, args.dataset_config_name, args.train_data_dir, split, streaming, args.cache_dir, limit
        )

    train = load("train", args.max_train_samples, args.streaming)
    for split in [args.validation_split] if args.validation_split else ["validation", "test"]:
        try:
            held_out = load(split, args.max_eval_samples, args.streaming)
        except (ValueError, KeyError):
            if args.validation_split:
                raise
            continue
        return (stream_for_training(train, args), materialize(held_out)) if args.streaming else (train, held_out)
    if args.streaming:
        size = args.max_eval_samples or 1000
        return stream_for_training(train.skip(size), args), materialize(train.take(size))
    parts = train.train_test_split(test_size=args.validation_fraction, seed=args.seed)
    held_out = parts["test"]
    if args.max_eval_samples is not None:
        held_out = held_out.select(range(min(args.max_eval_samples, len(held_out))))
    return parts["train"], held_out


def stream_for_training(stream: datasets.IterableDataset, args) -> datasets.IterableDataset:
    """A streamed training split, shuffled through a buffer (Trainer reshuffles it each epoch with set_epoch)."""
    return stream.shuffle(seed=args.seed, buffer_size=args.shuffle_buffer_size)


def materialize(stream: datasets.IterableDataset) -> datasets.Dataset:
    """The (small) streamed validation split as a map-style `Dataset`, with its features."""
    examples = list(stream)
    if not examples:
        raise ValueError("The streamed validation split is empty; pass --validation_split or --max_eval_samples.")
    return datasets.Dataset.from_list(examples, features=stream.features)


def prepare_images(dataset: datasets.Dataset, args) -> datasets.Dataset:
    """Leave image columns undecoded until `encode_dataset` decodes them with `decode_image`, which names a
    corrupt or truncated file (as in train_vqgan.py); datasets' own decoding does not."""
    check_image_column(dataset, args.image_column)
    columns = dataset.column_names  # None for a stream without declared features
    for column in [args.caption_column] + list(args.extra_caption_columns):
        if column is not None and columns is not None and column not in columns:
            raise ValueError(
                f"Caption column {column!r} is not in the dataset; its columns are {dataset.column_names}."
            )
    for column in (args.image_column, args.condition_image_column):
        if column is not None and column in dataset.column_names:
            dataset = prepare_for_decoding(dataset, column)
    return dataset


def find_label_column(dataset: datasets.Dataset, requested: str = None):
    """The class-id column: `requested`, else the first ClassLabel column, else `label`; None if none."""
    if requested is not None:
        if requested not in dataset.column_names:
            raise ValueError(f"--label_column {requested!r} is not in the dataset's columns {dataset.column_names}.")
        return requested
    for name, feature in (dataset.features or {}).items():
        if isinstance(feature, datasets.ClassLabel):
            return name
    return "label" if "label" in (dataset.column_names or []) else None


def class_names(dataset: datasets.Dataset, label_column: str):
    """-> (number of classes, id2label or None)."""
    feature = dataset.features[label_column] if dataset.features is not None else None
    if isinstance(feature, datasets.ClassLabel):
        return feature.num_classes, dict(enumerate(feature.names))
    if isinstance(dataset, datasets.IterableDataset):
        raise ValueError(
            f"--streaming with class conditioning needs a ClassLabel column to count the classes; {label_column!r} "
            f"is {feature}."
        )
    return int(max(dataset[label_column])) + 1, None


def load_vqgan(path: str, resolution: int, device, subfolders=("vqgan",)):
    """A frozen VQGAN and its image processor from `path`, or from the first of `path/{subfolder}`
    that exists (the output folder of `scripts/train_vqgan.py`, a TamingPipeline folder)."""
    path = component_folder(path, subfolders)
    vqgan = VQGANModel.from_pretrained(path).to(device).requires_grad_(False)
    return vqgan, load_image_processor(path, vqgan, resolution)


def load_image_processor(path: str, vqgan: VQGANModel, resolution: int = None) -> VQGANImageProcessor:
    """The VQGAN's saved processor if it has one, else one for its resolution and channel count."""
    overrides = {"num_channels": vqgan.config.in_channels}
    if resolution is not None:
        overrides["size"] = {"shortest_edge": resolution}
        overrides["crop_size"] = {"height": resolution, "width": resolution}
    try:
        return VQGANImageProcessor.from_pretrained(path, **overrides)
    except OSError:
        return VQGANImageProcessor(resolution=resolution or vqgan.config.resolution, **overrides)


# ----------------------------------------------------------------------------------------------
# Model, pipeline and trainer
# ----------------------------------------------------------------------------------------------


def resolve_conditioning(args, label_column: str) -> str:
    if args.conditioning != "auto":
        return args.conditioning
    if args.condition_vqgan_model_name_or_path is not None:
        return "spatial"
    if args.caption_column is not None:
        return "text"
    return "class" if label_column is not None else "unconditional"


def build_layout(conditioning: str, vqgan, condition_vqgan, num_classes: int, class_dropout_prob: float):
    if conditioning == "class":
        return TokenLayout.build("class", vqgan.config.num_embeddings, num_classes, class_dropout_prob > 0)
    if conditioning == "spatial":
        return TokenLayout.build("spatial", vqgan.config.num_embeddings, condition_vqgan.config.num_embeddings)
    return TokenLayout.build(conditioning, vqgan.config.num_embeddings)


def build_text_layout(vqgan, tokenizer, train_codes, args, null_caption: Optional[str]):
    """
    The text layout and vocabulary: one prior token per tokenizer id (`--text_vocab all`), or per id the
    training captions (and the null caption) use (`seen`), which keeps the prior small with a 49k-id CLIP BPE.
    """
    num_codes = vqgan.config.num_embeddings
    kept = None
    if args.text_vocab == "seen":
        null_ids = tokenize_captions(tokenizer, [null_caption or ""], args.max_text_length)[0][0]
        kept = tuple(seen_text_token_ids(train_codes["caption_ids"], extra=null_ids))
    num_text = len(tokenizer) if kept is None else len(kept)
    layout = TokenLayout.build("text", num_codes, num_text, with_text_unknown=kept is not None)
    vocabulary = TextVocabulary(
        offset=num_codes,
        tokenizer_vocab_size=len(tokenizer),
        max_text_length=args.max_text_length,
        pad_token_id=layout.text_pad_token_id,
        token_ids=kept,
        unknown_token_id=layout.text_unknown_token_id,
    )
    return layout, vocabulary


def make_pipeline(
    transformer,
    vqgan,
    condition_vqgan,
    layout: TokenLayout,
    id2label,
    token_order,
    tokenizer=None,
    text_vocabulary: Optional[TextVocabulary] = None,
    null_caption: Optional[str] = None,
):
    """A `TamingPipeline` around the prior being trained (lazy import: the pipeline module is heavy)."""
    from taming_hf.pipelines.taming import TamingPipeline

    raster = token_order is None or list(token_order) == sorted(token_order)
    text = {}
    if layout.conditioning == "text":
        text = dict(
            tokenizer=tokenizer,
            max_text_length=text_vocabulary.max_text_length,
            text_token_ids=None if text_vocabulary.token_ids is None else list(text_vocabulary.token_ids),
            text_pad_token_id=layout.text_pad_token_id,
            text_unknown_token_id=layout.text_unknown_token_id,
            null_caption=null_caption,
        )
    return TamingPipeline(
        vqgan=vqgan,
        transformer=transformer,
        condition_vqgan=condition_vqgan,
        conditioning=layout.conditioning,
        num_condition_tokens=layout.num_condition_tokens,
        sos_token_id=layout.sos_token_id,
        null_class_token_id=layout.null_class_token_id,
        id2label=id2label,
        token_order=None if raster else list(token_order),
        **text,
    )


def sampling_kwargs(layout: TokenLayout, num_images: int, height: int, width: int, conditions=None) -> dict:
    """Pipeline-call arguments for the validation grid: every class in turn (class), the given
    condition images (spatial) or images to complete (completion), or `num_images` unconditional
    samples, at the training size."""
    size = {"height": height, "width": width}
    if layout.conditioning == "text":  # the first validation captions
        return {"prompt": list(conditions), **size}
    if layout.conditioning == "class":
        return {"class_labels": [i % layout.num_condition_tokens for i in range(num_images)], **size}
    if layout.conditioning == "spatial":
        return {"condition_image": conditions}
    if layout.conditioning == "completion":  # complete the lower half of validation images
        return {"image": conditions, "batch_size": len(conditions)}
    return {"batch_size": num_images, **size}


def sampling_defaults(args, layout: TokenLayout, caption_dropout_prob: float = 0.0) -> Optional[SamplingSettings]:
    """The `--sample_*` settings to save as the prior's generation_config defaults; None when none is given."""
    given = (args.sample_top_k, args.sample_top_p, args.sample_temperature, args.sample_guidance_scale)
    if all(value is None for value in given):
        return None
    guidance_scale = args.sample_guidance_scale
    if guidance_scale not in (None, 1.0) and layout.conditioning == "text" and caption_dropout_prob == 0:
        raise ValueError(
            f"--sample_guidance_scale {guidance_scale} needs a null caption to guide with: --caption_dropout_prob > 0."
        )
    if guidance_scale not in (None, 1.0) and layout.conditioning != "text" and layout.null_class_token_id is None:
        raise ValueError(
            f"--sample_guidance_scale {guidance_scale} needs a null class to guide with: --conditioning class "
            f"with --class_dropout_prob > 0 (this run's conditioning is {layout.conditioning!r} without one)."
        )
    return SamplingSettings(
        top_k=args.sample_top_k,
        top_p=args.sample_top_p,
        temperature=1.0 if args.sample_temperature is None else args.sample_temperature,
        guidance_scale=1.0 if guidance_scale is None else guidance_scale,
    )


def check_text_arguments(args, conditioning: str):
    """
    The tokenizer, caption dropout, null caption and caption columns of a text run (`None, 0.0, None, []`
    otherwise); text-only flags on another kind raise.
    """
    if conditioning != "text":
        for flag in ("caption_dropout_prob", "tokenizer_name_or_path"):
            if getattr(args, flag) is not None:
                raise ValueError(f"--{flag} needs --conditioning text, got {conditioning!r}.")
        if args.text_loss_weight > 0:
            raise ValueError(f"--text_loss_weight needs --conditioning text, got {conditioning!r}.")
        return None, 0.0, None, []
    if args.caption_column is None or args.tokenizer_name_or_path is None:
        raise ValueError("--conditioning text needs --caption_column and --tokenizer_name_or_path.")
    message = missing_local_path_message(args.tokenizer_name_or_path, "--tokenizer_name_or_path")
    if message is not None:
        raise ValueError(message)
    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer_name_or_path)
    logger.info(
        "Tokenizer %s (%d ids, %s).", type(tokenizer).__name__, len(tokenizer), tokenizer_fingerprint(tokenizer)
    )
    caption_dropout_prob = 0.1 if args.caption_dropout_prob is None else args.caption_dropout_prob
    null_caption = "" if caption_dropout_prob > 0 else None  # the empty caption is the null condition
    return tokenizer, caption_dropout_prob, null_caption, [args.caption_column] + list(args.extra_caption_columns)


def training_arguments(args) -> TrainingArguments:
    return TrainingArguments(
        output_dir=args.output_dir,
        seed=args.seed,
        per_device_train_batch_size=args.train_batch_size,
        per_device_eval_batch_size=args.eval_batch_size or args.train_batch_size,
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        learning_rate=args.learning_rate,
        lr_scheduler_type=args.lr_scheduler,
        warmup_steps=args.lr_warmup_steps,
        adam_beta1=args.adam_beta1,
        adam_beta2=args.adam_beta2,
        adam_epsilon=args.adam_epsilon,
        weight_decay=args.adam_weight_decay,
        max_grad_norm=args.max_grad_norm,
        num_train_epochs=args.num_train_epochs,
        max_steps=args.max_train_steps if args.max_train_steps is not None else -1,
        save_strategy="steps",
        save_steps=args.checkpointing_steps,
        save_total_limit=args.checkpoints_total_limit,
        eval_strategy="steps",
        eval_steps=args.validation_steps,
        logging_steps=args.logging_steps,
        logging_first_step=True,
        report_to=args.report_to,
        bf16=args.mixed_precision == "bf16",
        fp16=args.mixed_precision == "fp16",
        dataloader_num_workers=args.dataloader_num_workers,
        remove_unused_columns=False,
        use_cpu=not torch.accelerator.is_available(),  # CPU-only hosts: bf16 autocast, gloo process groups
        ddp_find_unused_parameters=False,
    )


def resume_checkpoint(args):
    """The checkpoint folder to resume from (None: start fresh), its safetensors files checked: Trainer's
    loading would report a corrupt or truncated one without naming it."""
    checkpoint = args.resume_from_checkpoint
    if checkpoint == "latest":
        checkpoint = get_last_checkpoint(args.output_dir) if os.path.isdir(args.output_dir) else None
        if checkpoint is None:
            logger.warning("--resume_from_checkpoint latest: no checkpoint in %s, starting fresh.", args.output_dir)
    if checkpoint is not None and os.path.isdir(checkpoint):
        check_safetensors_files(checkpoint)
    return checkpoint


def save_pipeline(args, trainer, pipeline, metrics: dict) -> None:
    """Write the pipeline and its model card into output_dir (main process); optionally upload it."""
    pipeline.save_pretrained(args.output_dir)
    trainer.state.save_to_json(os.path.join(args.output_dir, "trainer_state.json"))
    card_metrics = {"validation loss (nats/token)": round(metrics["eval_loss"], 4)}
    card_metrics["validation bits per token"] = round(metrics["eval_bits_per_token"], 4)
    repo_id = args.hub_model_id or os.path.basename(os.path.abspath(args.output_dir))
    pipeline.create_model_card(repo_id, metrics=card_metrics).save(os.path.join(args.output_dir, "README.md"))
    if args.push_to_hub:
        url = pipeline.push_to_hub(repo_id, metrics=card_metrics, token=args.hub_token)
        logger.info("Pushed the pipeline to %s", url)


def final_eval_metrics(trainer) -> dict:
    """The evaluation of the last step if Trainer just ran it, else a fresh `trainer.evaluate()`."""
    last = trainer.state.log_history[-2:] if trainer.state.log_history else []
    for entry in last:
        if "eval_loss" in entry and entry.get("step") == trainer.state.global_step:
            return {key: value for key, value in entry.items() if key.startswith("eval_") or key == "epoch"}
    return trainer.evaluate()


def main(args):
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    training_args = training_arguments(args)
    set_seed(args.seed)
    device = training_args.device

    vqgan, processor = load_vqgan(args.vqgan_model_name_or_path, args.resolution, device)
    condition_vqgan = condition_processor = None
    if args.condition_vqgan_model_name_or_path is not None:
        condition_vqgan, condition_processor = load_vqgan(
            args.condition_vqgan_model_name_or_path, args.resolution, device, ("condition_vqgan", "vqgan")
        )

    train_raw, eval_raw = load_splits(args)
    train_raw, eval_raw = prepare_images(train_raw, args), prepare_images(eval_raw, args)
    label_column = find_label_column(train_raw, args.label_column)
    conditioning = resolve_conditioning(args, label_column)
    if conditioning == "spatial" and (condition_vqgan is None or args.condition_image_column is None):
        raise ValueError(
            "--conditioning spatial needs --condition_vqgan_model_name_or_path and --condition_image_column."
        )
    if conditioning == "class" and label_column is None:
        raise ValueError(f"--conditioning class needs a label column; the dataset has {train_raw.column_names}.")
    class_dropout_prob = args.class_dropout_prob
    if class_dropout_prob is None:
        class_dropout_prob = 0.1 if conditioning == "class" else 0.0
    if class_dropout_prob > 0 and conditioning != "class":
        raise ValueError(f"--class_dropout_prob needs --conditioning class, got {conditioning!r}.")
    num_classes, id2label = class_names(train_raw, label_column) if conditioning == "class" else (0, None)
    tokenizer, caption_dropout_prob, null_caption, caption_columns = check_text_arguments(args, conditioning)
    if conditioning == "text":  # the text vocabulary follows the encoded captions (below)
        layout = TokenLayout.build("text", vqgan.config.num_embeddings, len(tokenizer))
    else:
        layout = build_layout(conditioning, vqgan, condition_vqgan, num_classes, class_dropout_prob)
    recommended_sampling = sampling_defaults(args, layout, caption_dropout_prob)

    encode_kwargs = dict(
        vqgan=vqgan,
        image_processor=processor,
        image_column=args.image_column,
        label_column=label_column if conditioning == "class" else None,
        condition_column=args.condition_image_column if conditioning == "spatial" else None,
        condition_vqgan=condition_vqgan,
        condition_processor=condition_processor,
        batch_size=args.encode_batch_size,
        cache_dir=args.codes_cache_dir or os.path.join(args.output_dir, "codes_cache"),
        caption_columns=caption_columns,
        tokenizer=tokenizer,
        max_text_length=args.max_text_length,
    )
    with training_args.main_process_first(desc="encoding the dataset with the VQGAN"):
        train_codes = encode_dataset(train_raw, **encode_kwargs)
        eval_codes = encode_dataset(eval_raw, **encode_kwargs)

    text_vocabulary = null_text_prefix = None
    null_caption_ids = []
    if conditioning == "text":
        layout, text_vocabulary = build_text_layout(vqgan, tokenizer, train_codes, args, null_caption)
        null_caption_ids = tokenize_captions(tokenizer, [null_caption or ""], args.max_text_length)[0][0]
        null_text_prefix = text_vocabulary.prefix([null_caption_ids])[0]
        logger.info(
            "Text vocabulary: %d prior tokens for the tokenizer's %d ids.", text_vocabulary.num_tokens, len(tokenizer)
        )

    first = next(iter(train_codes)) if args.streaming else train_codes[0]
    height, width = np.asarray(first["indices"]).shape
    factor = vqgan.config.downsample_factor
    condition_cells = np.asarray(first["condition_indices"]).size if conditioning == "spatial" else 0
    sequence_length = prefix_length(layout, condition_cells, args.max_text_length) + height * width
    token_order = make_token_order(args.token_order, height, width, args.token_order_seed)
    logger.info("Layout %s; latent grid %dx%d; sequence length %d.", layout, height, width, sequence_length)

    if args.scale_lr:
        training_args.learning_rate *= (
            args.train_batch_size * args.gradient_accumulation_steps * training_args.world_size
        )
    config = build_prior_config(layout, sequence_length, args.n_layer, args.n_head, args.n_embd, args.dropout)
    transformer = GPT2LMHeadModel(config)
    if recommended_sampling is not None:  # saved with the pipeline; validation grids sample with them too
        recommended_sampling.write_to(transformer.generation_config)
    logger.info("Prior: %.2fM parameters.", transformer.num_parameters() / 1e6)

    conditions = None  # the first validation (condition) images, preprocessed as in training
    if conditioning == "spatial":
        images = [decode_image(image) for image in eval_raw[: args.num_validation_images][args.condition_image_column]]
        conditions = condition_processor(images, return_tensors="pt")["pixel_values"]
    elif conditioning == "completion":
        images = [decode_image(image) for image in eval_raw[: args.num_validation_images][args.image_column]]
        conditions = processor(images, return_tensors="pt")["pixel_values"]
    elif conditioning == "text":  # each validation image's first caption
        rows = eval_raw.select_columns(caption_columns)[: args.num_validation_images]
        conditions = [(example_captions(values) or [""])[0] for values in zip(*(rows[c] for c in caption_columns))]

    def pipeline_for(model):
        return make_pipeline(
            model, vqgan, condition_vqgan, layout, id2label, token_order, tokenizer, text_vocabulary, null_caption
        )

    callbacks = []
    if args.num_validation_images > 0:
        samples = SampleGridCallback(
            pipeline_for,
            args.output_dir,
            args.validation_steps,
            sampling_kwargs(layout, args.num_validation_images, height * factor, width * factor, conditions),
            columns=min(8, max(1, num_classes)) if conditioning == "class" else 8,
            seed=args.seed,
        )
        callbacks.append(samples)
    trainer = PriorTrainer(
        model=transformer,
        args=training_args,
        train_dataset=train_codes,
        eval_dataset=eval_codes,
        data_collator=PriorDataCollator(layout, token_order, text_vocabulary, null_caption_ids),
        callbacks=callbacks,
        layout=layout,
        class_dropout_prob=class_dropout_prob,
        pkeep=args.pkeep,
        text_vocabulary=text_vocabulary,
        null_text_prefix=null_text_prefix,
        caption_dropout_prob=caption_dropout_prob,
        text_loss_weight=args.text_loss_weight,
    )
    trainer.train(resume_from_checkpoint=resume_checkpoint(args) if args.resume_from_checkpoint else None)
    metrics = final_eval_metrics(trainer)
    metrics["eval_perplexity"] = math.exp(metrics["eval_loss"])
    trainer.log_metrics("eval", metrics)
    if trainer.is_world_process_zero():
        trainer.save_metrics("eval", metrics)
        save_pipeline(args, trainer, pipeline_for(trainer.model), metrics)
        logger.info("Saved the TamingPipeline to %s: %s", args.output_dir, json.dumps(metrics))
    trainer.accelerator.wait_for_everyone()


if __name__ == "__main__":
    main(parse_args())
