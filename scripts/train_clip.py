#!/usr/bin/env python
"""Train a small transformers `CLIPModel` contrastively on image / caption pairs, with Accelerate.

    accelerate launch scripts/train_clip.py --dataset_name emoji --caption_column text --keywords_column keywords \
        --resolution 64 --train_batch_size 128 --learning_rate 1e-3 --max_train_steps 3000 \
        --validation_split test --output_dir emoji-clip

The objective is CLIPModel's own (`return_loss=True`: symmetric cross-entropy over the batch's image-caption
similarities). Captions are the `--caption_column` text, or with `--keywords_column` sometimes one of the image's
keywords (`--keyword_caption_prob`); images can be random-resized-cropped (`--random_crop_min_scale`). Both
augmentations are drawn from a generator seeded by (seed, epoch, row), so a resumed run sees what an uninterrupted
one sees. Output: `output_dir` holds a `CLIPModel` and a `CLIPProcessor` (a `CLIPImageProcessor` at
`--resolution` with CLIP's mean / std, and OpenAI's CLIP tokenizer), saved the standard way, `retrieval.json` and a
model card with text -> image retrieval top-1 / top-5 among `--num_retrieval_candidates` random images.
"""

import argparse
import json
import logging
import math
import os
from dataclasses import dataclass
from typing import Dict, List, Optional

import torch
from accelerate import Accelerator
from accelerate.logging import get_logger
from accelerate.utils import DataLoaderConfiguration, ProjectConfiguration, set_seed
from diffusers.optimization import get_scheduler
from tqdm.auto import tqdm
from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

from taming_hf.evaluation.clip_retrieval import RetrievalResult, evaluate_clip_retrieval
from taming_hf.text import load_clip_tokenizer
from taming_hf.training import load_checkpoint, load_image_dataset, save_checkpoint
from taming_hf.training.checkpointing import push_output_dir, resolve_resume_path
from taming_hf.training.data import ROW_COLUMN, add_row_index, check_image_column, decode_image, prepare_for_decoding

logger = get_logger(__name__)

MAX_LOGIT_SCALE = math.log(100.0)  # CLIP clips its learned temperature at 100


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Train a CLIPModel contrastively on image/caption pairs.")
    # Model
    parser.add_argument(
        "--config_name", type=str, default=None, help="A CLIPConfig json file or folder (overrides the size flags)."
    )
    parser.add_argument(
        "--tokenizer_name_or_path",
        type=str,
        default=None,
        help="A CLIPTokenizer folder or Hub id (default: OpenAI's CLIP BPE, `taming_hf.text.load_clip_tokenizer`).",
    )
    parser.add_argument("--projection_dim", type=int, default=64, help="Shared embedding size.")
    parser.add_argument("--text_hidden_size", type=int, default=64, help="Text width; 49408 x width embeddings.")
    parser.add_argument("--text_num_layers", type=int, default=4, help="Text transformer layers.")
    parser.add_argument(
        "--text_num_heads", type=int, default=4, help="Text attention heads (must divide --text_hidden_size)."
    )
    parser.add_argument("--vision_hidden_size", type=int, default=128, help="Image (ViT) width.")
    parser.add_argument("--vision_num_layers", type=int, default=4, help="Image transformer layers.")
    parser.add_argument(
        "--vision_num_heads", type=int, default=4, help="Image attention heads (must divide --vision_hidden_size)."
    )
    parser.add_argument("--patch_size", type=int, default=8, help="ViT patch side in pixels.")
    parser.add_argument("--dropout", type=float, default=0.0, help="Attention dropout of both towers.")
    # Data
    parser.add_argument(
        "--dataset_name",
        type=str,
        default=None,
        help="Hub dataset id, local dataset folder, or a name taming_hf.training.data knows (`emoji`).",
    )
    parser.add_argument("--dataset_config_name", type=str, default=None, help="Configuration of the Hub dataset.")
    parser.add_argument("--train_data_dir", type=str, default=None, help="An image folder with a metadata file.")
    parser.add_argument("--cache_dir", type=str, default=None, help="Where `datasets` caches downloaded data.")
    parser.add_argument("--image_column", type=str, default="image", help="Dataset column that holds the images.")
    parser.add_argument("--caption_column", type=str, default="text", help="The plain caption of each image.")
    parser.add_argument(
        "--keywords_column",
        type=str,
        default=None,
        help="Optional keywords (a list of strings, or one string separated by '|' or ',') to caption with.",
    )
    parser.add_argument(
        "--keyword_caption_prob",
        type=float,
        default=0.25,
        help="With --keywords_column: probability that a training caption is one random keyword instead.",
    )
    parser.add_argument(
        "--max_train_samples", type=int, default=None, help="Use only the first N training pairs (debugging)."
    )
    parser.add_argument("--validation_split", type=str, default=None, help="Split for held-out retrieval (`test`).")
    parser.add_argument(
        "--resolution",
        type=int,
        default=64,
        help="Images are resized (shorter side) and center-cropped to this size; a multiple of --patch_size.",
    )
    parser.add_argument(
        "--random_crop_min_scale",
        type=float,
        default=1.0,
        help="Random square crops covering at least this fraction of the image (1 = no cropping).",
    )
    parser.add_argument(
        "--dataloader_num_workers", type=int, default=0, help="Data-loading subprocesses (0: the main process)."
    )
    # Optimisation
    parser.add_argument("--train_batch_size", type=int, default=128, help="Per device; the contrastive batch.")
    parser.add_argument(
        "--num_train_epochs", type=int, default=100, help="Passes over the data (when --max_train_steps is unset)."
    )
    parser.add_argument("--max_train_steps", type=int, default=None, help="Overrides --num_train_epochs.")
    parser.add_argument(
        "--gradient_accumulation_steps", type=int, default=1, help="Batches accumulated per optimizer step."
    )
    parser.add_argument(
        "--learning_rate", type=float, default=1e-3, help="Peak AdamW learning rate (not scaled by the batch size)."
    )
    parser.add_argument(
        "--lr_scheduler", type=str, default="cosine", help="A diffusers scheduler name (constant, cosine, ...)."
    )
    parser.add_argument("--lr_warmup_steps", type=int, default=100, help="Linear warm-up steps of the scheduler.")
    parser.add_argument("--adam_beta1", type=float, default=0.9, help="Adam beta1.")
    parser.add_argument("--adam_beta2", type=float, default=0.98, help="CLIP's (more stable than 0.999).")
    parser.add_argument("--adam_weight_decay", type=float, default=0.1, help="On matrices only (not biases, norms).")
    parser.add_argument("--adam_epsilon", type=float, default=1e-6, help="Adam epsilon.")
    parser.add_argument(
        "--max_grad_norm", type=float, default=1.0, help="Clip gradients to this norm (0: no clipping)."
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=42,
        help="Seeds weights, data order, augmentations and retrieval candidates (as train_vqgan.py).",
    )
    parser.add_argument(
        "--mixed_precision",
        type=str,
        default=None,
        choices=["no", "fp16", "bf16"],
        help="Autocast precision; default: the `accelerate config` setting.",
    )
    # Checkpoints, logging, evaluation, output
    parser.add_argument(
        "--output_dir", type=str, default="clip-model", help="Where checkpoints, logs and the model are written."
    )
    parser.add_argument("--logging_dir", type=str, default="logs", help="Logs folder, relative to --output_dir.")
    parser.add_argument(
        "--logging_steps",
        type=int,
        default=50,
        help="Log the loss, learning rate and CLIP temperature every N steps (and at step 1).",
    )
    parser.add_argument(
        "--report_to",
        type=str,
        default="none",
        help='"tensorboard", "wandb", "all" or "none" (as train_vqgan.py and train_transformer.py).',
    )
    parser.add_argument("--tracker_project_name", type=str, default="train_clip", help="Tracker project name.")
    parser.add_argument("--checkpointing_steps", type=int, default=500, help="Save a checkpoint every N steps.")
    parser.add_argument(
        "--checkpoints_total_limit", type=int, default=None, help="Keep at most N checkpoints (oldest deleted)."
    )
    parser.add_argument(
        "--resume_from_checkpoint",
        type=str,
        default=None,
        help='A checkpoint folder, or "latest" (the newest complete one in --output_dir).',
    )
    parser.add_argument("--validation_steps", type=int, default=500, help="Retrieval on the splits every N steps.")
    parser.add_argument(
        "--num_retrieval_candidates",
        type=int,
        default=100,
        help="Images with distinct captions drawn per split for retrieval (at most the split's distinct captions).",
    )
    parser.add_argument(
        "--save_dtype",
        type=str,
        default="float32",
        choices=["float32", "float16"],
        help="Dtype of the saved weights; float16 halves the file, the config still loads float32.",
    )
    parser.add_argument("--push_to_hub", action="store_true", help="Upload --output_dir to the Hub at the end.")
    parser.add_argument("--hub_model_id", type=str, default=None, help="Hub repository id (default: the folder name).")
    parser.add_argument("--hub_token", type=str, default=None, help="Hub token (default: the logged-in one).")
    return parser


def parse_args(input_args=None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(input_args)

    if (args.dataset_name is None) == (args.train_data_dir is None):
        parser.error("Pass exactly one of --dataset_name and --train_data_dir.")
    if not 0.0 < args.random_crop_min_scale <= 1.0:
        parser.error(f"--random_crop_min_scale must be in (0, 1], got {args.random_crop_min_scale}.")
    if not 0.0 <= args.keyword_caption_prob <= 1.0:
        parser.error(f"--keyword_caption_prob must be in [0, 1], got {args.keyword_caption_prob}.")
    if args.resolution % args.patch_size:
        parser.error(f"--resolution {args.resolution} is not a multiple of --patch_size {args.patch_size}.")
    return args


# ----------------------------------------------------------------------------------------------
# Model and processor
# ----------------------------------------------------------------------------------------------


def build_config(args, tokenizer: CLIPTokenizer) -> CLIPConfig:
    """The CLIPConfig of `--config_name`, or one from the size flags (text length = the tokenizer's)."""
    if args.config_name:
        return CLIPConfig.from_pretrained(args.config_name)
    text = dict(
        vocab_size=len(tokenizer),
        hidden_size=args.text_hidden_size,
        intermediate_size=4 * args.text_hidden_size,
        num_hidden_layers=args.text_num_layers,
        num_attention_heads=args.text_num_heads,
        max_position_embeddings=tokenizer.model_max_length,
        attention_dropout=args.dropout,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,  # the text tower pools at the first end-of-text token
        pad_token_id=tokenizer.pad_token_id,
    )
    vision = dict(
        hidden_size=args.vision_hidden_size,
        intermediate_size=4 * args.vision_hidden_size,
        num_hidden_layers=args.vision_num_layers,
        num_attention_heads=args.vision_num_heads,
        image_size=args.resolution,
        patch_size=args.patch_size,
        attention_dropout=args.dropout,
    )
    return CLIPConfig(text_config=text, vision_config=vision, projection_dim=args.projection_dim)


def build_processor(args) -> CLIPProcessor:
    """OpenAI's CLIP tokenizer (or `--tokenizer_name_or_path`) and a CLIP image processor at `--resolution`."""
    if args.tokenizer_name_or_path:
        tokenizer = CLIPTokenizer.from_pretrained(args.tokenizer_name_or_path)
    else:
        tokenizer = load_clip_tokenizer()
    image_processor = CLIPImageProcessor(
        size={"shortest_edge": args.resolution}, crop_size={"height": args.resolution, "width": args.resolution}
    )
    return CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer)


def check_model_fits(config: CLIPConfig, processor: CLIPProcessor, resolution: int) -> None:
    """The model must read the tokenizer's ids and the processor's image size."""
    vocab, size = len(processor.tokenizer), config.vision_config.image_size
    if config.text_config.vocab_size < vocab:
        raise ValueError(f"The text tower has vocab_size {config.text_config.vocab_size}; the tokenizer has {vocab}.")
    if size != resolution:
        raise ValueError(f"The vision tower takes {size}x{size} images; --resolution is {resolution}.")


def parameter_groups(model: torch.nn.Module, weight_decay: float) -> List[Dict]:
    """AdamW groups: decay on weight matrices, none on biases, norms, the class / position embeddings' rows,
    and the temperature (CLIP's recipe)."""
    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        exempt = parameter.ndim < 2 or "norm" in name or "class_embedding" in name or name == "logit_scale"
        (no_decay if exempt else decay).append(parameter)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


# ----------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------


def split_keywords(value) -> List[str]:
    """A keywords cell -> list of non-empty keywords (a list, or a string separated by '|' or ',')."""
    if value is None:
        return []
    if isinstance(value, str):
        value = value.split("|") if "|" in value else value.split(",")
    return [keyword.strip() for keyword in value if keyword and keyword.strip()]


class CaptionedImageTransform:
    """
    A batch of rows -> `pixel_values` (CLIP-normalised, (3, resolution, resolution) each) and `caption` strings.

    Crops and keyword captions come from a generator seeded by (seed, epoch, row), so they do not depend on the
    global RNG, the number of workers or a resume.
    """

    def __init__(self, args, image_processor: CLIPImageProcessor, train: bool = True):
        self.image_processor = image_processor
        self.image_column, self.caption_column = args.image_column, args.caption_column
        self.keywords_column = args.keywords_column if train else None
        self.keyword_prob = args.keyword_caption_prob
        self.min_scale = args.random_crop_min_scale if train else 1.0
        self.seed, self.epoch = args.seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _generator(self, row: int) -> torch.Generator:
        return torch.Generator().manual_seed(((self.seed * 1_000_003 + self.epoch) * 1_000_000_007 + row) % 2**63)

    def _crop(self, image, generator: torch.Generator):
        """A random square covering a fraction in [min_scale, 1] of the shorter side squared, anywhere."""
        width, height = image.size
        scale = self.min_scale + (1 - self.min_scale) * float(torch.rand((), generator=generator))
        side = max(1, round(min(width, height) * math.sqrt(scale)))
        left = int(torch.randint(0, width - side + 1, (1,), generator=generator))
        top = int(torch.randint(0, height - side + 1, (1,), generator=generator))
        return image.crop((left, top, left + side, top + side))

    def _caption(self, text: str, keywords, generator: torch.Generator) -> str:
        choices = split_keywords(keywords) if self.keywords_column else []
        if choices and float(torch.rand((), generator=generator)) < self.keyword_prob:
            return choices[int(torch.randint(0, len(choices), (1,), generator=generator))]
        return text

    def __call__(self, examples: Dict[str, List]) -> Dict[str, List]:
        images, captions = [], []
        for i, value in enumerate(examples[self.image_column]):
            generator = self._generator(examples[ROW_COLUMN][i] if ROW_COLUMN in examples else i)
            image = decode_image(value).convert("RGB")
            images.append(self._crop(image, generator) if self.min_scale < 1 else image)
            keywords = examples[self.keywords_column][i] if self.keywords_column else None
            captions.append(self._caption(examples[self.caption_column][i], keywords, generator))
        pixel_values = self.image_processor(images=images, return_tensors="pt")["pixel_values"]
        return {"pixel_values": list(pixel_values), "caption": captions}


def make_collate_fn(tokenizer: CLIPTokenizer):
    """Rows -> {"pixel_values": (B, 3, S, S), "input_ids": (B, L), "attention_mask": (B, L)}, padded per batch."""

    def collate(examples: List[Dict]) -> Dict[str, torch.Tensor]:
        text = tokenizer([e["caption"] for e in examples], padding=True, truncation=True, return_tensors="pt")
        pixel_values = torch.stack([e["pixel_values"] for e in examples]).float()
        return {"pixel_values": pixel_values, "input_ids": text.input_ids, "attention_mask": text.attention_mask}

    return collate


def check_caption_columns(dataset, args) -> None:
    """Clear errors for a missing image, caption or keywords column, and for captions that are not strings."""
    check_image_column(dataset, args.image_column)
    for flag, column in (("--caption_column", args.caption_column), ("--keywords_column", args.keywords_column)):
        if column is not None and column not in dataset.column_names:
            raise ValueError(f"{flag} {column!r} not found in the dataset; its columns are {dataset.column_names}.")
    first = dataset[0][args.caption_column] if len(dataset) else ""
    if not isinstance(first, str):
        raise ValueError(
            f"--caption_column {args.caption_column!r} should hold strings, its first value is {first!r} "
            f"({type(first).__name__})."
        )


def load_split(args, split: str, max_samples: Optional[int] = None):
    dataset = load_image_dataset(
        args.dataset_name, args.dataset_config_name, args.train_data_dir, split, False, args.cache_dir, max_samples
    )
    check_caption_columns(dataset, args)
    return prepare_for_decoding(dataset, args.image_column)


class ImageColumn:
    """Lazy decoded RGB images of one column (retrieval decodes only the rows it draws)."""

    def __init__(self, dataset, column: str):
        self.dataset, self.column = dataset, column

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        return decode_image(self.dataset[index][self.column]).convert("RGB")


# ----------------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------------


@dataclass
class TrainState:
    """What one optimisation step touches."""

    accelerator: Accelerator
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: object
    max_grad_norm: Optional[float]


def train_step(state: TrainState, batch: Dict[str, torch.Tensor]) -> torch.Tensor:
    """One forward / backward with CLIPModel's contrastive loss; returns the loss (detached, on device)."""
    accelerator = state.accelerator
    with accelerator.autocast():
        loss = state.model(**batch, return_loss=True).loss
    accelerator.backward(loss)
    if state.max_grad_norm and accelerator.sync_gradients:
        accelerator.clip_grad_norm_(state.model.parameters(), state.max_grad_norm)
    state.optimizer.step()
    state.scheduler.step()
    state.optimizer.zero_grad(set_to_none=True)
    if accelerator.sync_gradients:
        with torch.no_grad():
            accelerator.unwrap_model(state.model).logit_scale.clamp_(0, MAX_LOGIT_SCALE)
    return loss.detach()


def evaluate_retrieval(args, model, processor, splits: Dict[str, object]) -> Dict[str, RetrievalResult]:
    """Text -> image retrieval among `--num_retrieval_candidates` random images of each split (plain captions)."""
    results = {}
    was_training = model.training
    model.eval()
    for name, dataset in splits.items():
        candidates = min(args.num_retrieval_candidates, len(set(dataset[args.caption_column])))
        results[name] = evaluate_clip_retrieval(
            model,
            processor,
            ImageColumn(dataset, args.image_column),
            dataset[args.caption_column],
            candidates,
            seed=args.seed,
        )
    model.train(was_training)
    return results


def check_finite(accelerator, loss: torch.Tensor, global_step: int) -> None:
    finite = accelerator.gather(torch.isfinite(loss).float().reshape(1))
    if not bool(finite.all()):
        raise FloatingPointError(
            f"Non-finite loss at step {global_step + 1} on at least one process. Lower --learning_rate, use "
            "--mixed_precision bf16 instead of fp16, or resume from an earlier checkpoint."
        )


def main(args) -> Dict[str, RetrievalResult]:
    logging_dir = os.path.join(args.output_dir, args.logging_dir)
    # Several processes on a machine without GPUs: a gloo process group instead of copies of one process.
    multi_process_cpu = int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.cuda.is_available()
    accelerator = Accelerator(
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        mixed_precision=args.mixed_precision,
        log_with=None if args.report_to == "none" else args.report_to,
        project_config=ProjectConfiguration(project_dir=args.output_dir, logging_dir=logging_dir),
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True),
        cpu=multi_process_cpu,
    )
    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", level=logging.INFO)
    logger.info(accelerator.state, main_process_only=False)
    set_seed(args.seed)
    if accelerator.is_main_process:
        os.makedirs(args.output_dir, exist_ok=True)

    # Model and processor
    processor = build_processor(args)
    config = build_config(args, processor.tokenizer)
    check_model_fits(config, processor, args.resolution)
    model = CLIPModel(config)
    logger.info(f"CLIPModel: {model.num_parameters() / 1e6:.2f}M parameters")

    # Data
    with accelerator.main_process_first():
        train_dataset = load_split(args, "train", args.max_train_samples)
        validation = load_split(args, args.validation_split) if args.validation_split else None
    transform = CaptionedImageTransform(args, processor.image_processor)
    train_dataloader = torch.utils.data.DataLoader(
        add_row_index(train_dataset).with_transform(transform),
        batch_size=args.train_batch_size,
        shuffle=True,
        collate_fn=make_collate_fn(processor.tokenizer),
        num_workers=args.dataloader_num_workers,
        drop_last=True,  # the contrastive task needs full batches: a batch of 3 is an easy one
        generator=torch.Generator().manual_seed(args.seed),
    )
    if len(train_dataloader) < accelerator.num_processes:
        raise ValueError(
            f"The training split has {len(train_dataset)} rows: no full batch of --train_batch_size "
            f"{args.train_batch_size} per process; use a smaller batch."
        )

    # Optimiser and schedule
    optimizer = torch.optim.AdamW(
        parameter_groups(model, args.adam_weight_decay),
        lr=args.learning_rate,
        betas=(args.adam_beta1, args.adam_beta2),
        eps=args.adam_epsilon,
    )
    steps_per_epoch = math.ceil(len(train_dataloader) / accelerator.num_processes / args.gradient_accumulation_steps)
    max_train_steps = args.max_train_steps or args.num_train_epochs * steps_per_epoch
    num_train_epochs = math.ceil(max_train_steps / steps_per_epoch)
    scheduler = get_scheduler(
        args.lr_scheduler,
        optimizer,
        num_warmup_steps=args.lr_warmup_steps * accelerator.num_processes,
        num_training_steps=max_train_steps * accelerator.num_processes,
    )
    model, optimizer, train_dataloader, scheduler = accelerator.prepare(model, optimizer, train_dataloader, scheduler)
    state = TrainState(accelerator, model, optimizer, scheduler, args.max_grad_norm)
    unwrapped = accelerator.unwrap_model(model)

    if accelerator.is_main_process:
        tracked = {k: v for k, v in vars(args).items() if isinstance(v, (int, float, str, bool))}
        accelerator.init_trackers(args.tracker_project_name, config=tracked)
    total_batch = args.train_batch_size * accelerator.num_processes * args.gradient_accumulation_steps
    logger.info(f"***** Training: {len(train_dataset)} pairs, batch {total_batch}, {max_train_steps} steps *****")

    global_step, first_epoch, resume_batches = 0, 0, 0
    if args.resume_from_checkpoint:
        path = resolve_resume_path(args.output_dir, args.resume_from_checkpoint)
        if path is None:
            logger.info(f"No complete checkpoint in {args.output_dir}; starting a new run.")
        else:
            logger.info(f"Resuming from {path}")
            global_step = load_checkpoint(accelerator, path)
            first_epoch = global_step // steps_per_epoch
            resume_batches = (global_step % steps_per_epoch) * args.gradient_accumulation_steps

    splits = {"train": train_dataset, **({args.validation_split: validation} if validation is not None else {})}
    progress_bar = tqdm(
        range(max_train_steps), initial=global_step, desc="Steps", disable=not accelerator.is_local_main_process
    )
    for epoch in range(first_epoch, num_train_epochs):
        transform.set_epoch(epoch)
        train_dataloader.set_epoch(epoch)
        batches = train_dataloader
        if epoch == first_epoch and resume_batches > 0:
            batches = accelerator.skip_first_batches(train_dataloader, resume_batches)
        for batch in batches:
            with accelerator.accumulate(model):
                loss = train_step(state, batch)
            if not accelerator.sync_gradients:
                continue
            global_step += 1
            progress_bar.update(1)
            if global_step % args.logging_steps == 0 or global_step == 1:
                check_finite(accelerator, loss, global_step - 1)
                logs = {
                    "loss": accelerator.gather(loss.reshape(1)).mean().item(),
                    "lr": scheduler.get_last_lr()[0],
                    "logit_scale": unwrapped.logit_scale.exp().item(),
                }
                accelerator.log(logs, step=global_step)
                progress_bar.set_postfix(loss=f"{logs['loss']:.4f}")
            if global_step % args.checkpointing_steps == 0:
                path = save_checkpoint(accelerator, args.output_dir, global_step, args.checkpoints_total_limit)
                logger.info(f"Saved state to {path}")
            if accelerator.is_main_process and global_step % args.validation_steps == 0:
                results = evaluate_retrieval(args, unwrapped, processor, splits)
                metrics = {f"{name}/{k}": v for name, r in results.items() for k, v in r.metrics().items()}
                accelerator.log(metrics, step=global_step)
                logger.info(f"step {global_step} retrieval: {metrics}")
            if global_step >= max_train_steps:
                break
        if global_step >= max_train_steps:
            break

    accelerator.wait_for_everyone()
    results = {}
    if accelerator.is_main_process:
        results = evaluate_retrieval(args, unwrapped, processor, splits)
        save_final(args, unwrapped, processor, results, len(train_dataset), global_step)
    accelerator.end_training()
    return results


# ----------------------------------------------------------------------------------------------
# Output
# ----------------------------------------------------------------------------------------------


def model_card(args, model: CLIPModel, results: Dict[str, RetrievalResult], num_pairs: int, steps: int) -> str:
    """A README.md: what the model is, how to load it, its retrieval figures and the arguments that trained it."""
    text, vision = model.config.text_config, model.config.vision_config
    rows = "\n".join(
        f"| {name} | {r.num_candidates} | {r.text_to_image_top1:.1%} | {r.text_to_image_top5:.1%} | "
        f"{r.image_to_text_top1:.1%} | {r.image_to_text_top5:.1%} |"
        for name, r in results.items()
    )
    defaults = vars(build_parser().parse_args([]))
    flags = " ".join(  # the flags this run changed from their defaults
        f"--{k}" if v is True else f"--{k} {v}"
        for k, v in vars(args).items()
        if v != defaults.get(k) and k not in ("hub_token", "output_dir")
    )
    dataset = args.dataset_name or args.train_data_dir
    return f"""---
library_name: transformers
pipeline_tag: zero-shot-image-classification
tags: [clip, taming_hf]
---

# CLIP trained on {dataset}

A `CLIPModel` ({model.num_parameters() / 1e6:.2f}M parameters) trained contrastively by taming_hf's
`scripts/train_clip.py` on {num_pairs} image / caption pairs of `{dataset}` (`{args.caption_column}` captions) for
{steps} steps at {args.resolution}x{args.resolution}. Text tower: width {text.hidden_size}, {text.num_hidden_layers}
layers, OpenAI's CLIP BPE tokenizer ({text.vocab_size} ids). Image tower: ViT, width {vision.hidden_size},
{vision.num_hidden_layers} layers, patch {vision.patch_size}. Projection {model.config.projection_dim}.

```python
from transformers import CLIPModel, CLIPProcessor

model = CLIPModel.from_pretrained("{args.hub_model_id or args.output_dir}")
processor = CLIPProcessor.from_pretrained("{args.hub_model_id or args.output_dir}")
inputs = processor(text=["grinning face"], images=[image], return_tensors="pt", padding=True)
```

## Retrieval

Among N random images with distinct captions of each split (seed {args.seed}): text -> image top-k is the fraction
of captions whose own image is among the k most similar; image -> text the other way round. Chance top-1 is 1 / N.

| split | N | text->image top-1 | top-5 | image->text top-1 | top-5 |
|---|---|---|---|---|---|
{rows}

## Training

```
accelerate launch scripts/train_clip.py {flags} --output_dir {args.output_dir}
```
"""


def save_final(args, model: CLIPModel, processor: CLIPProcessor, results, num_pairs: int, steps: int) -> None:
    """The model (in `--save_dtype`; its config says float32, so `from_pretrained` loads float32), the processor,
    retrieval.json and README.md; optionally uploaded."""
    dtype = model.dtype
    model.to(getattr(torch, args.save_dtype)).save_pretrained(args.output_dir)
    model.to(dtype)
    if args.save_dtype != "float32":
        config_path = os.path.join(args.output_dir, "config.json")
        with open(config_path) as f:
            saved = json.load(f)
        saved["dtype"] = "float32"
        with open(config_path, "w") as f:
            json.dump(saved, f, indent=2, sort_keys=True)
            f.write("\n")
    processor.save_pretrained(args.output_dir)
    with open(os.path.join(args.output_dir, "retrieval.json"), "w") as f:
        json.dump({name: r.metrics() for name, r in results.items()}, f, indent=2)
    with open(os.path.join(args.output_dir, "README.md"), "w") as f:
        f.write(model_card(args, model, results, num_pairs, steps))
    logger.info(f"Saved the CLIPModel and CLIPProcessor to {args.output_dir}")
    if args.push_to_hub:
        ignore = [f"{args.logging_dir}/*"]
        push_output_dir(args.output_dir, args.hub_model_id, args.hub_token, "CLIP training run", ignore)


if __name__ == "__main__":
    main(parse_args())
