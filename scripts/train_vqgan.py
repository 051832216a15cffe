#!/usr/bin/env python
"""Train (or fine-tune) a VQGAN with Accelerate, in the style of diffusers' `examples/` scripts.

    accelerate launch scripts/train_vqgan.py \
        --dataset_name fashion_mnist --resolution 32 --num_channels 1 \
        --model_config_name_or_path vqgan_fashion.json \
        --train_batch_size 16 --learning_rate 4.5e-6 --scale_lr --max_train_steps 20000 \
        --disc_start 10000 --checkpointing_steps 1000 --validation_steps 500 \
        --mixed_precision bf16 --report_to tensorboard --output_dir vqgan-fashion

Objective (see `taming_hf.training.losses`): L1 + LPIPS + codebook loss, and a PatchGAN
hinge loss with the adaptive weight from `--disc_start` on. One autoencoder forward per
step feeds both the autoencoder and the discriminator update. Output: `output_dir/vqgan`
(a `VQGANModel` with its image processor) and `output_dir/discriminator`.
"""

import argparse
import functools
import json
import logging
import math
import os
import sys
from dataclasses import dataclass
from typing import Dict, Optional

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.logging import get_logger
from accelerate.utils import DataLoaderConfiguration, ProjectConfiguration, set_seed
from datasets import IterableDataset
from datasets.distributed import split_dataset_by_node
from diffusers.optimization import get_scheduler
from diffusers.training_utils import EMAModel
from tqdm.auto import tqdm

from taming_hf import VQGANConfig, VQGANImageProcessor, VQGANModel
from taming_hf.evaluation import ReconstructionMetrics
from taming_hf.training import (
    CodebookUsageTracker,
    ImageTransform,
    PatchGANDiscriminator,
    PatchGANDiscriminatorConfig,
    VQGANLoss,
    collate_fn,
    copy_rows_to_ema,
    load_image_dataset,
    reseed_dead_codes,
    save_checkpoint,
)
from taming_hf.training.checkpointing import load_checkpoint, push_output_dir, resolve_resume_path
from taming_hf.training.data import add_row_index, check_image_column, make_preprocess_fn, prepare_for_decoding
from taming_hf.utils.image_grid import image_grid
from taming_hf.utils.loading import component_folder

logger = get_logger(__name__)

GRID_FORMATS = {2: "HW", 3: "HWC"}  # TensorBoard's names for a grayscale / RGB grid as a numpy array


def parse_args(input_args=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Train a VQGAN (Taming Transformers) with Accelerate.")
    # Model
    parser.add_argument(
        "--pretrained_model_name_or_path",
        type=str,
        default=None,
        help="A VQGANModel (Hub id or folder; a folder with a `vqgan` sub-folder works) to fine-tune.",
    )
    parser.add_argument(
        "--pretrained_discriminator_name_or_path",
        type=str,
        default=None,
        help="A PatchGANDiscriminator to continue GAN training from.",
    )
    parser.add_argument(
        "--model_config_name_or_path",
        type=str,
        default=None,
        help="A VQGANConfig json file or folder for a model trained from scratch.",
    )
    parser.add_argument(
        "--revision", type=str, default=None, help="Hub revision (branch, tag or commit) of the pretrained VQGAN."
    )
    parser.add_argument(
        "--disc_num_layers", type=int, default=3, help="Stride-2 convolutions of a new PatchGAN discriminator."
    )
    parser.add_argument(
        "--disc_base_channels", type=int, default=64, help="Width of the first convolution of a new discriminator."
    )
    # Data
    parser.add_argument(
        "--dataset_name",
        type=str,
        default=None,
        help="Hub dataset id, local dataset folder, or `fashion_mnist` (local IDX files when present).",
    )
    parser.add_argument("--dataset_config_name", type=str, default=None, help="Configuration of the Hub dataset.")
    parser.add_argument("--train_data_dir", type=str, default=None, help="A folder of images (`imagefolder`).")
    parser.add_argument("--image_column", type=str, default="image", help="Dataset column that holds the images.")
    parser.add_argument(
        "--validation_split",
        type=str,
        default=None,
        help="Split for validation images; default: the first training images.",
    )
    parser.add_argument("--cache_dir", type=str, default=None, help="Where `datasets` caches downloaded data.")
    parser.add_argument("--streaming", action="store_true", help="Stream the dataset (needs --max_train_steps).")
    parser.add_argument(
        "--max_train_samples", type=int, default=None, help="Use only the first N training images (debugging)."
    )
    parser.add_argument(
        "--resolution", type=int, default=256, help="Images are resized (shorter side) and cropped to this size."
    )
    parser.add_argument(
        "--num_channels",
        type=int,
        default=None,
        choices=[1, 3],
        help="1 = grayscale, 3 = RGB; default: the model's in_channels.",
    )
    parser.add_argument("--center_crop", action="store_true", help="Center crop (default: random crop).")
    parser.add_argument("--random_flip", action="store_true", help="Flip images horizontally at random.")
    parser.add_argument(
        "--random_hue_prob",
        type=float,
        default=0.0,
        help="Rotate the hue of this fraction of training images by a uniformly random angle, so that hues the data "
        "rarely shows get codes too (RGB only; 0: off).",
    )
    parser.add_argument(
        "--dataloader_num_workers", type=int, default=0, help="Data-loading subprocesses (0: the main process)."
    )
    # Objective
    parser.add_argument(
        "--perceptual_weight", type=float, default=1.0, help="Weight of the LPIPS-VGG loss (0 turns LPIPS off)."
    )
    parser.add_argument("--codebook_weight", type=float, default=1.0, help="Weight of the quantizer loss.")
    parser.add_argument(
        "--disc_weight", type=float, default=0.8, help="Multiplies the adaptive weight of the adversarial term."
    )
    parser.add_argument(
        "--disc_factor", type=float, default=1.0, help="Weight of the GAN terms once the discriminator is on."
    )
    parser.add_argument(
        "--disc_start",
        type=int,
        default=None,
        help="Step at which the discriminator starts training; default: a third of the training steps "
        "(the original: 10000 or more, fixed).",
    )
    parser.add_argument(
        "--disc_warmup_steps",
        type=int,
        default=None,
        help="The generator's adversarial term ramps from 0 to full over this many steps after --disc_start, "
        "while the discriminator trains at full strength; default: a tenth of the training steps (0: the "
        "original's hard switch).",
    )
    parser.add_argument(
        "--disc_loss",
        type=str,
        default="hinge",
        choices=["hinge", "vanilla", "non_saturating"],
        help="hinge (the original's default), vanilla (logistic D loss, generator -mean D, the original's "
        "other choice) or non_saturating (logistic D loss, generator mean softplus(-D)).",
    )
    parser.add_argument(
        "--disc_batch",
        type=str,
        default="separate",
        choices=["separate", "joint"],
        help="separate: real and reconstructed images go through the discriminator in batches of their own (the "
        "original); joint: in one batch, so its BatchNorm statistics include real images (see docs/training.md).",
    )
    parser.add_argument(
        "--lecam_weight",
        type=float,
        default=0.0,
        help="Weight of LeCam regularisation of the discriminator (Tseng et al. 2021; 0: off, as the original).",
    )
    parser.add_argument("--lecam_decay", type=float, default=0.99, help="Decay of LeCam's logit averages.")
    parser.add_argument(
        "--reconstruction_loss",
        type=str,
        default="l1",
        choices=["l1", "l2"],
        help="Pixel loss: l1 (the VQGAN's) or l2 (a VQ-VAE baseline's, with --perceptual_weight 0).",
    )
    parser.add_argument(
        "--code_colour_loss_weight",
        type=float,
        default=0.0,
        help="Weight of an auxiliary loss: the error of the best linear map (least squares on each batch) from every "
        "code vector to the mean colour of its patch, so the encoder puts hue into the codes; without it an emoji "
        "VQGAN loses green and purple (docs/training.md). Trains the encoder. 0: off (the original).",
    )
    # Codebook health
    parser.add_argument(
        "--codebook_usage_window",
        type=int,
        default=100,
        help="Usage / perplexity are measured over this many recent batches.",
    )
    parser.add_argument(
        "--codebook_reseed_steps",
        type=int,
        default=None,
        help=(
            "Every N steps, re-seed codes unused in those N steps from encoder outputs (0: off, the original). "
            "Default 100, and 0 with --train_decoder_only."
        ),
    )
    parser.add_argument(
        "--train_decoder_only",
        action="store_true",
        help=(
            "Fine-tune only post_quant_conv and the decoder of --pretrained_model_name_or_path: the encoder and "
            "codebook stay frozen, so every image keeps its codes and a prior trained on them stays valid."
        ),
    )
    # Optimisation
    parser.add_argument("--train_batch_size", type=int, default=4, help="Per device.")
    parser.add_argument(
        "--num_train_epochs", type=int, default=100, help="Passes over the data (when --max_train_steps is unset)."
    )
    parser.add_argument(
        "--max_train_steps", type=int, default=None, help="Optimizer steps in total; overrides --num_train_epochs."
    )
    parser.add_argument(
        "--gradient_accumulation_steps", type=int, default=1, help="Batches accumulated per optimizer step."
    )
    parser.add_argument(
        "--gradient_checkpointing", action="store_true", help="Recompute activations in backward to save memory."
    )
    parser.add_argument(
        "--learning_rate",
        type=float,
        default=4.5e-6,
        help="Per-sample base rate of the autoencoder (the original's); multiplied by the total batch size "
        "unless --no-scale_lr.",
    )
    parser.add_argument(
        "--disc_learning_rate",
        type=float,
        default=None,
        help="Base rate of the discriminator; default: --learning_rate.",
    )
    parser.add_argument(
        "--scale_lr",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="Multiply the rates by accumulation steps x batch size x processes, as the original does (default); "
        "--no-scale_lr uses them as given.",
    )
    parser.add_argument(
        "--lr_scheduler", type=str, default="constant", help="A diffusers scheduler name (constant, cosine, ...)."
    )
    parser.add_argument("--lr_warmup_steps", type=int, default=0, help="Linear warm-up steps of the scheduler.")
    parser.add_argument("--adam_beta1", type=float, default=0.5, help="Adam beta1 (0.5, as taming).")
    parser.add_argument("--adam_beta2", type=float, default=0.9, help="Adam beta2 (0.9, as taming).")
    parser.add_argument("--adam_weight_decay", type=float, default=0.0, help="Adam weight decay.")
    parser.add_argument("--adam_epsilon", type=float, default=1e-8, help="Adam epsilon.")
    parser.add_argument(
        "--max_grad_norm", type=float, default=None, help="Clip gradients (off by default, as taming)."
    )
    parser.add_argument("--use_ema", action="store_true", help="Keep an EMA of the autoencoder (diffusers' EMAModel).")
    parser.add_argument("--ema_decay", type=float, default=0.999, help="Decay of the EMA (with --use_ema).")
    parser.add_argument(
        "--seed", type=int, default=42, help="Seeds weights, data order and augmentations (as train_transformer.py)."
    )
    parser.add_argument(
        "--mixed_precision",
        type=str,
        default=None,
        choices=["no", "fp16", "bf16"],
        help="Autocast precision; default: the `accelerate config` setting.",
    )
    parser.add_argument("--allow_tf32", action="store_true", help="Allow TF32 matmuls on Ampere and newer GPUs.")
    # Checkpoints, logging, validation, output
    parser.add_argument(
        "--output_dir", type=str, default="vqgan-model", help="Where checkpoints, logs and the model are written."
    )
    parser.add_argument("--logging_dir", type=str, default="logs", help="Logs folder, relative to --output_dir.")
    parser.add_argument(
        "--logging_steps",
        type=int,
        default=10,
        help="Read losses and codebook usage to the host and log them every N steps (and at checkpoints).",
    )
    parser.add_argument(
        "--report_to",
        type=str,
        default="none",
        help='"tensorboard", "wandb", "all" or "none" (as train_transformer.py); train_log.jsonl is always written.',
    )
    parser.add_argument("--tracker_project_name", type=str, default="train_vqgan", help="Tracker project name.")
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
    parser.add_argument("--validation_steps", type=int, default=500, help="Validate every N steps.")
    parser.add_argument(
        "--validation_inception_fid",
        action="store_true",
        help=(
            "Also compute the standard (Inception) rFID at each validation. Off by default: on the few validation "
            "images it is mostly small-sample bias and costs an Inception forward per image; use scripts/evaluate.py."
        ),
    )
    parser.add_argument("--num_validation_images", type=int, default=8, help="Images in the validation grid.")
    parser.add_argument("--push_to_hub", action="store_true", help="Upload --output_dir to the Hub at the end.")
    parser.add_argument("--hub_model_id", type=str, default=None, help="Hub repository id (default: the folder name).")
    parser.add_argument("--hub_token", type=str, default=None, help="Hub token (default: the logged-in one).")
    args = parser.parse_args(input_args)

    if args.dataset_name is None and args.train_data_dir is None:
        parser.error("Pass --dataset_name or --train_data_dir.")
    if args.pretrained_model_name_or_path and args.model_config_name_or_path:
        parser.error("Pass --pretrained_model_name_or_path or --model_config_name_or_path, not both.")
    for flag in ("disc_start", "disc_warmup_steps", "codebook_reseed_steps"):
        if getattr(args, flag) is not None and getattr(args, flag) < 0:
            parser.error(f"--{flag} must be >= 0, got {getattr(args, flag)}.")
    for flag in ("logging_steps", "checkpointing_steps", "validation_steps"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag} must be at least 1, got {getattr(args, flag)}.")
    if args.streaming and args.max_train_steps is None:
        parser.error("--streaming needs --max_train_steps (a stream has no length).")
    if args.train_decoder_only:
        if not args.pretrained_model_name_or_path:
            parser.error("--train_decoder_only fine-tunes a trained model: pass --pretrained_model_name_or_path.")
        if args.codebook_reseed_steps:
            parser.error(
                f"--train_decoder_only freezes the codebook, so --codebook_reseed_steps must be 0, "
                f"got {args.codebook_reseed_steps}."
            )
        if args.code_colour_loss_weight:
            parser.error(
                f"--code_colour_loss_weight trains the encoder, which --train_decoder_only freezes: it must be 0, "
                f"got {args.code_colour_loss_weight}."
            )
        args.codebook_reseed_steps = 0
    elif args.codebook_reseed_steps is None:
        args.codebook_reseed_steps = 100
    return args


def freeze_all_but_decoder(model: VQGANModel) -> None:
    """--train_decoder_only: the encoder, quant_conv and the quantizer stop learning (codes never change)."""
    for module in (model.encoder, model.quant_conv, model.quantize):
        module.requires_grad_(False)


def build_model(args) -> VQGANModel:
    """The autoencoder: pretrained weights, a config, or the default (f16 ImageNet) config."""
    if args.pretrained_model_name_or_path:
        return VQGANModel.from_pretrained(component_folder(args.pretrained_model_name_or_path), revision=args.revision)
    config = VQGANConfig.from_pretrained(args.model_config_name_or_path) if args.model_config_name_or_path else None
    config = config or VQGANConfig(resolution=args.resolution, in_channels=args.num_channels or 3)
    return VQGANModel(config)


def build_discriminator(args, in_channels: int) -> PatchGANDiscriminator:
    if args.pretrained_discriminator_name_or_path:
        return PatchGANDiscriminator.from_pretrained(args.pretrained_discriminator_name_or_path)
    config = PatchGANDiscriminatorConfig(
        in_channels=in_channels, base_channels=args.disc_base_channels, num_layers=args.disc_num_layers
    )
    return PatchGANDiscriminator(config)


def build_datasets(args, accelerator, num_channels: int):
    """Training dataset (transformed, sharded when streaming) and a fixed batch of validation images."""
    with accelerator.main_process_first():
        dataset = load_image_dataset(
            args.dataset_name,
            args.dataset_config_name,
            args.train_data_dir,
            "train",
            args.streaming,
            args.cache_dir,
            args.max_train_samples,
        )
    check_image_column(dataset, args.image_column)
    train_transform = ImageTransform(
        args.resolution, args.center_crop, args.random_flip, num_channels, args.seed, args.random_hue_prob
    )
    eval_transform = ImageTransform(args.resolution, center_crop=True, random_flip=False, num_channels=num_channels)
    dataset = prepare_for_decoding(dataset, args.image_column)

    if args.validation_split:
        validation = load_image_dataset(
            args.dataset_name,
            args.dataset_config_name,
            args.train_data_dir,
            args.validation_split,
            args.streaming,
            args.cache_dir,
        )
        validation = prepare_for_decoding(validation, args.image_column)
    else:
        validation = dataset
    images = [eval_transform(example[args.image_column]) for example in validation.take(args.num_validation_images)]
    validation_images = torch.stack(images)

    if isinstance(dataset, IterableDataset):
        dataset = split_dataset_by_node(dataset, accelerator.process_index, accelerator.num_processes)
        dataset = dataset.map(
            make_preprocess_fn(train_transform, args.image_column), batched=True, remove_columns=dataset.column_names
        )
    else:
        dataset = add_row_index(dataset).with_transform(make_preprocess_fn(train_transform, args.image_column))
    return dataset, validation_images, train_transform


def gan_schedule(args, max_train_steps: int):
    """(disc_start, disc_warmup_steps): the flags, or a third and a tenth of the training steps by default, so a
    run of any length gets an adversarial phase for its last two thirds."""
    disc_start = max_train_steps // 3 if args.disc_start is None else args.disc_start
    disc_warmup_steps = max_train_steps // 10 if args.disc_warmup_steps is None else args.disc_warmup_steps
    return disc_start, disc_warmup_steps


def no_batch_message(args) -> str:
    return (
        f"The training data yields no full batch of --train_batch_size {args.train_batch_size} per process; "
        "use more images or a smaller batch."
    )


def validation_metrics(
    metrics: ReconstructionMetrics, images: torch.Tensor, reconstructions: torch.Tensor, indices: torch.Tensor
) -> Dict[str, float]:
    """PSNR, SSIM, LPIPS, codebook usage (and rFID when available) of one validation batch."""
    metrics.reset()
    metrics.update(images, reconstructions.clamp(-1, 1), indices)
    results = metrics.compute()
    keys = ("psnr", "ssim", "lpips", "codebook_usage", "rfid")
    return {f"val/{key}": results[key] for key in keys if key in results}


@torch.no_grad()
def log_validation(args, accelerator, model, ema_model, validation_images, metrics_fn, global_step) -> Dict:
    """Reconstruct the validation images, save a grid PNG (inputs above, reconstructions below), log metrics."""
    model = accelerator.unwrap_model(model)
    if ema_model is not None:
        ema_model.store(model.parameters())
        ema_model.copy_to(model.parameters())
    model.eval()
    images = validation_images.to(accelerator.device)
    with accelerator.autocast():
        output = model(images)
    reconstructions = output.reconstruction.float()
    metrics = metrics_fn(images, reconstructions, output.indices)
    model.train()
    if ema_model is not None:
        ema_model.restore(model.parameters())

    sheet = VQGANImageProcessor().postprocess(torch.cat([images, reconstructions.clamp(-1, 1)]), output_type="pil")
    grid = image_grid(sheet, columns=len(images), padding=2)
    os.makedirs(os.path.join(args.output_dir, "validation"), exist_ok=True)
    grid_path = os.path.join(args.output_dir, "validation", f"step-{global_step:07d}.png")
    grid.save(grid_path)
    for tracker in accelerator.trackers:
        if tracker.name == "tensorboard":
            pixels = np.asarray(grid)
            tracker.writer.add_image(
                "validation/reconstructions", pixels, global_step, dataformats=GRID_FORMATS[pixels.ndim]
            )
    accelerator.log(metrics, step=global_step)
    logger.info(f"step {global_step} validation: {metrics} (grid: {grid_path})")
    return metrics


def check_finite(accelerator, logs: Dict[str, float], global_step: int) -> None:
    """Stop every process with a clear error when any process produced a NaN / inf loss (`logs` on the host)."""
    values = torch.tensor([logs["ae_loss"], logs.get("d_loss", 0.0)], device=accelerator.device)
    finite = accelerator.gather(torch.isfinite(values).all().float().reshape(1))
    if not bool(finite.all()):
        raise FloatingPointError(
            f"Non-finite loss at step {global_step} on at least one process (this one: {logs}). "
            "Lower --learning_rate, use --mixed_precision bf16 instead of fp16, or resume from an earlier "
            "checkpoint with --resume_from_checkpoint."
        )


class TrainLog:
    """Appends one JSON line per optimizer step to `output_dir/logs/train_log.jsonl` (main process)."""

    def __init__(self, path: str, enabled: bool):
        self.path, self.enabled = path, enabled
        if enabled:
            os.makedirs(os.path.dirname(path), exist_ok=True)

    def write(self, record: Dict) -> None:
        if self.enabled:
            with open(self.path, "a") as f:
                f.write(json.dumps(record) + "\n")


def main(args) -> None:
    logging_dir = os.path.join(args.output_dir, args.logging_dir)
    # Several processes on a machine without GPUs (e.g. `accelerate launch --multi_gpu
    # --num_processes 2` on CPU): run them as a gloo process group instead of 2 copies.
    multi_process_cpu = int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.cuda.is_available()
    accelerator = Accelerator(
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        mixed_precision=args.mixed_precision,
        log_with=None if args.report_to == "none" else args.report_to,
        project_config=ProjectConfiguration(project_dir=args.output_dir, logging_dir=logging_dir),
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True),
        cpu=multi_process_cpu,
    )
    if int(os.environ.get("WORLD_SIZE", "1")) != accelerator.num_processes:
        raise RuntimeError(
            f"Launched {os.environ['WORLD_SIZE']} processes but Accelerate sees {accelerator.num_processes}."
        )
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    logger.info(accelerator.state, main_process_only=False)
    if args.allow_tf32:
        torch.backends.cuda.matmul.allow_tf32 = True
    set_seed(args.seed)
    if accelerator.is_main_process:
        os.makedirs(args.output_dir, exist_ok=True)

    # Models and objective
    model = build_model(args)
    num_channels = args.num_channels or model.config.in_channels
    if num_channels != model.config.in_channels:
        raise ValueError(f"--num_channels {num_channels} but the model has in_channels={model.config.in_channels}.")
    if args.train_decoder_only:
        freeze_all_but_decoder(model)
    discriminator = build_discriminator(args, num_channels)
    if discriminator.config.in_channels != num_channels:
        raise ValueError(
            f"The discriminator takes {discriminator.config.in_channels} channels, the data has {num_channels}."
        )
    if args.gradient_checkpointing:
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    ema_model = None
    if args.use_ema:
        ema_model = EMAModel(model.parameters(), decay=args.ema_decay, model_cls=VQGANModel, model_config=model.config)

    # Data
    train_dataset, validation_images, train_transform = build_datasets(args, accelerator, num_channels)
    streaming = isinstance(train_dataset, IterableDataset)
    train_dataloader = torch.utils.data.DataLoader(
        train_dataset,
        batch_size=args.train_batch_size,
        shuffle=not streaming,
        collate_fn=collate_fn,
        num_workers=args.dataloader_num_workers,
        drop_last=True,
        # Its own generator: starting an iteration (also after a resume) leaves the global RNG alone.
        generator=torch.Generator().manual_seed(args.seed),
    )

    # Optimisers (taming: Adam, betas (0.5, 0.9), lr = accumulate * processes * batch * base_lr)
    scale = args.gradient_accumulation_steps * args.train_batch_size * accelerator.num_processes
    lr = args.learning_rate * (scale if args.scale_lr else 1)
    disc_lr = (args.disc_learning_rate or args.learning_rate) * (scale if args.scale_lr else 1)
    adam = {
        "betas": (args.adam_beta1, args.adam_beta2),
        "weight_decay": args.adam_weight_decay,
        "eps": args.adam_epsilon,
    }
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr, **adam)
    disc_optimizer = torch.optim.Adam(discriminator.parameters(), lr=disc_lr, **adam)

    if not streaming and len(train_dataloader) < accelerator.num_processes:
        raise ValueError(no_batch_message(args))
    if streaming:
        num_update_steps_per_epoch = args.max_train_steps
    else:
        num_update_steps_per_epoch = math.ceil(
            len(train_dataloader) / accelerator.num_processes / args.gradient_accumulation_steps
        )
    max_train_steps = args.max_train_steps or args.num_train_epochs * num_update_steps_per_epoch
    disc_start, disc_warmup_steps = gan_schedule(args, max_train_steps)
    loss_fn = VQGANLoss(
        perceptual_weight=args.perceptual_weight,
        codebook_weight=args.codebook_weight,
        disc_weight=args.disc_weight,
        disc_factor=args.disc_factor,
        disc_start=disc_start,
        disc_loss=args.disc_loss,
        reconstruction_loss=args.reconstruction_loss,
        disc_warmup_steps=disc_warmup_steps,
        lecam_weight=args.lecam_weight,
        lecam_decay=args.lecam_decay,
        code_colour_weight=args.code_colour_loss_weight,
    ).to(accelerator.device)
    # A stream is passed over as often as it takes; ranks with uneven shards just start their next pass.
    num_train_epochs = sys.maxsize if streaming else math.ceil(max_train_steps / num_update_steps_per_epoch)
    lr_scheduler, disc_lr_scheduler = (
        get_scheduler(
            args.lr_scheduler,
            opt,
            num_warmup_steps=args.lr_warmup_steps * accelerator.num_processes,
            num_training_steps=max_train_steps * accelerator.num_processes,
        )
        for opt in (optimizer, disc_optimizer)
    )

    prepared = [model, discriminator, optimizer, disc_optimizer, lr_scheduler, disc_lr_scheduler]
    if streaming:  # already sharded per rank with split_dataset_by_node
        model, discriminator, optimizer, disc_optimizer, lr_scheduler, disc_lr_scheduler = accelerator.prepare(
            *prepared
        )
    else:
        model, discriminator, optimizer, disc_optimizer, lr_scheduler, disc_lr_scheduler, train_dataloader = (
            accelerator.prepare(*prepared, train_dataloader)
        )
    unwrapped = accelerator.unwrap_model(model)
    disc_module = accelerator.unwrap_model(discriminator)
    num_embeddings = unwrapped.config.num_embeddings
    usage = CodebookUsageTracker(num_embeddings, args.codebook_usage_window)
    reseed_window = CodebookUsageTracker(
        num_embeddings, max(args.codebook_reseed_steps, 1) * args.gradient_accumulation_steps
    )
    extra_state = {"codebook_usage": usage, "codebook_reseed_window": reseed_window}
    if loss_fn.lecam is not None:
        extra_state["lecam"] = loss_fn.lecam
    if ema_model is not None:
        ema_model.to(accelerator.device)
        extra_state["ema"] = ema_model

    if accelerator.is_main_process:
        config = {k: v for k, v in vars(args).items() if isinstance(v, (int, float, str, bool))}
        accelerator.init_trackers(args.tracker_project_name, config=config)

    total_batch_size = args.train_batch_size * accelerator.num_processes * args.gradient_accumulation_steps
    logger.info("***** Running training *****")
    logger.info(
        f"  Processes = {accelerator.num_processes} ({accelerator.distributed_type}), device = {accelerator.device}"
    )
    logger.info(f"  Batch size per device = {args.train_batch_size}, total = {total_batch_size}")
    logger.info(f"  Total optimization steps = {max_train_steps}, lr = {lr:g}, disc lr = {disc_lr:g}")
    logger.info(f"  Discriminator from step {disc_start}, generator term ramped in over {disc_warmup_steps} steps")

    # Built before a resume restores the RNG states: building metric networks draws random initial weights.
    metrics_fn = functools.partial(
        validation_metrics,
        ReconstructionMetrics(
            num_embeddings,
            use_lpips=loss_fn.perceptual is not None,
            lpips_model=loss_fn.perceptual,
            inception_fid=args.validation_inception_fid,
        ),
    )
    global_step, first_epoch, resume_batches, resume_dataloader = 0, 0, 0, None
    if args.resume_from_checkpoint:
        path = resolve_resume_path(args.output_dir, args.resume_from_checkpoint)
        if path is None:
            logger.info(f"No complete checkpoint in {args.output_dir}; starting a new run.")
        else:
            logger.info(f"Resuming from {path}")
            global_step = load_checkpoint(accelerator, path, extra_state)
            if ema_model is not None:
                ema_model.to(accelerator.device)
            first_epoch = global_step // num_update_steps_per_epoch
            resume_batches = (global_step % num_update_steps_per_epoch) * args.gradient_accumulation_steps
            if streaming:  # skip what this rank's stream already delivered (in its first pass)
                skip = global_step * args.gradient_accumulation_steps * args.train_batch_size
                resume_dataloader = torch.utils.data.DataLoader(
                    train_dataset.skip(skip),
                    batch_size=args.train_batch_size,
                    collate_fn=collate_fn,
                    num_workers=args.dataloader_num_workers,
                    drop_last=True,
                )
                resume_batches = 0

    train_log = TrainLog(os.path.join(logging_dir, "train_log.jsonl"), accelerator.is_main_process)
    progress_bar = tqdm(
        range(max_train_steps), initial=global_step, desc="Steps", disable=not accelerator.is_local_main_process
    )
    components = TrainingComponents(
        accelerator=accelerator,
        model=model,
        discriminator=discriminator,
        loss_fn=loss_fn,
        optimizer=optimizer,
        disc_optimizer=disc_optimizer,
        lr_scheduler=lr_scheduler,
        disc_lr_scheduler=disc_lr_scheduler,
        max_grad_norm=args.max_grad_norm,
        joint_disc_batch=args.disc_batch == "joint",
    )

    for epoch in range(first_epoch, num_train_epochs):
        train_transform.set_epoch(epoch)
        if hasattr(train_dataloader, "set_epoch"):
            train_dataloader.set_epoch(epoch)
        elif streaming:
            train_dataset.set_epoch(epoch)
        batches = train_dataloader
        if epoch == first_epoch and resume_batches > 0:
            batches = accelerator.skip_first_batches(train_dataloader, resume_batches)
        elif epoch == first_epoch and resume_dataloader is not None:
            batches = resume_dataloader
        seen = 0
        for batch in batches:
            seen += 1
            with accelerator.accumulate(model, discriminator):
                result = train_step(components, batch["pixel_values"].to(accelerator.device), global_step)
            indices = accelerator.gather(result.indices.contiguous())
            usage.update(indices)
            reseed_window.update(indices)
            if not accelerator.sync_gradients:
                continue

            global_step += 1
            progress_bar.update(1)
            if ema_model is not None:
                ema_model.step(unwrapped.parameters())
            codes_reseeded = None
            if args.codebook_reseed_steps > 0 and global_step % args.codebook_reseed_steps == 0:
                codes_reseeded = reseed(
                    args, accelerator, unwrapped, optimizer, ema_model, reseed_window, result.latents, global_step
                )
            checkpointing = global_step % args.checkpointing_steps == 0
            if global_step % args.logging_steps == 0 or checkpointing or global_step >= max_train_steps:
                # The only host reads of a step: the losses, the codebook window, the learning rate.
                logs = {name: value.item() for name, value in result.terms.items()}
                logs.update(usage.metrics(), lr=lr_scheduler.get_last_lr()[0])
                if codes_reseeded is not None:
                    logs["codes_reseeded"] = codes_reseeded
                check_finite(accelerator, logs, global_step)  # never checkpoint a NaN model
                accelerator.log(logs, step=global_step)
                train_log.write({"step": global_step, **logs})
                progress_bar.set_postfix(ae=f"{logs['ae_loss']:.4f}", d=f"{logs['d_loss']:.4f}")

            if checkpointing:
                path = save_checkpoint(
                    accelerator, args.output_dir, global_step, args.checkpoints_total_limit, extra_state
                )
                logger.info(f"Saved state to {path}")
            if accelerator.is_main_process and global_step % args.validation_steps == 0:
                metrics = log_validation(
                    args, accelerator, model, ema_model, validation_images, metrics_fn, global_step
                )
                train_log.write({"step": global_step, **metrics})
            if global_step >= max_train_steps:
                break
        if global_step >= max_train_steps:
            break
        if seen == 0 and not (epoch == first_epoch and (resume_batches or resume_dataloader is not None)):
            raise ValueError(no_batch_message(args))

    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        save_final(args, accelerator, unwrapped, disc_module, ema_model, num_channels)
    accelerator.end_training()


@dataclass
class TrainingComponents:
    """What one training step works on: both models (as prepared by Accelerate), the objective, both optimizers
    and their learning-rate schedulers."""

    accelerator: Accelerator
    model: torch.nn.Module
    discriminator: torch.nn.Module
    loss_fn: VQGANLoss
    optimizer: torch.optim.Optimizer
    disc_optimizer: torch.optim.Optimizer
    lr_scheduler: object
    disc_lr_scheduler: object
    max_grad_norm: Optional[float] = None
    joint_disc_batch: bool = False


@dataclass
class StepResult:
    """
    Args:
        terms (`Dict[str, torch.Tensor]`): loss terms and diagnostics of the step, detached 0-d device tensors
            (read them with `.item()` on logging steps only).
        indices (`torch.LongTensor` of shape `(batch_size, latent_height, latent_width)`): this process's codes.
        latents (`torch.FloatTensor` of shape `(batch_size, embed_dim, latent_height, latent_width)`): detached
            pre-quantization latents (what dead codes are re-seeded from).
    """

    terms: Dict[str, torch.Tensor]
    indices: torch.Tensor
    latents: torch.Tensor


def train_step(components: TrainingComponents, pixel_values: torch.Tensor, global_step: int) -> StepResult:
    """One autoencoder forward, then an autoencoder update and, when the GAN phase says so, a discriminator update.

    Args:
        pixel_values (`torch.FloatTensor` of shape `(batch_size, channels, height, width)`): images in [-1, 1].
        global_step (`int`): optimizer steps done so far (the GAN schedule is read at this step).
    """
    c = components
    phase = c.loss_fn.gan_phase(global_step)
    output = c.model(pixel_values)
    reconstructions = output.reconstruction

    logits_fake = None
    disc_module = c.accelerator.unwrap_model(c.discriminator)
    if phase.generator_factor > 0:  # D's weights get no gradient from the generator loss
        disc_module.requires_grad_(False)
        if c.joint_disc_batch:
            _, logits_fake = discriminator_logits(disc_module, pixel_values, reconstructions, joint=True)
        else:
            logits_fake = disc_module(reconstructions).logits
        disc_module.requires_grad_(True)
    unwrapped = c.accelerator.unwrap_model(c.model)
    code_vectors = unwrapped.quantize.project(output.latents) if c.loss_fn.code_colour_weight > 0 else None
    generator = c.loss_fn.generator_loss(
        pixel_values,
        reconstructions,
        output.embedding_loss,
        global_step,
        logits_fake,
        unwrapped.get_last_layer(),
        code_vectors=code_vectors,
    )
    optimize(c.accelerator, generator.loss, c.model, c.optimizer, c.lr_scheduler, c.max_grad_norm)
    terms = dict(generator.terms, d_loss=torch.zeros_like(generator.terms["ae_loss"]))

    if phase.train_discriminator:
        logits_real, logits_fake = discriminator_logits(
            c.discriminator, pixel_values, reconstructions.detach(), c.joint_disc_batch
        )
        disc = c.loss_fn.discriminator_loss(logits_real, logits_fake, global_step)
        optimize(c.accelerator, disc.loss, c.discriminator, c.disc_optimizer, None, c.max_grad_norm)
        terms.update(disc.terms)
        if c.loss_fn.lecam is not None:  # averaged over processes, so every process keeps the same averages
            means = c.accelerator.reduce(torch.stack([disc.terms["logits_real"], disc.terms["logits_fake"]]), "mean")
            c.loss_fn.update_lecam(means[0], means[1])
    c.disc_lr_scheduler.step()  # every step, so both schedules stay aligned with global_step
    return StepResult(terms=terms, indices=output.indices.detach(), latents=output.latents.detach())


def discriminator_logits(discriminator, real: torch.Tensor, fake: torch.Tensor, joint: bool):
    """
    (logits_real, logits_fake) of the discriminator, each `(batch_size, 1, h', w')`; `real` is detached here.

    `joint`: one forward over real and fake images together, so the discriminator's BatchNorm normalises the fakes
    with statistics that include real images. With a fake-only batch (the original; the default), BatchNorm
    divides by the spread of the fakes themselves, so the gradient the generator gets scales with how alike the
    reconstructions are, not with how useful D is: it shrinks as they diversify, and the adaptive weight grows
    with it (docs/training.md, "Why the adaptive weight grows").
    """
    if not joint:
        return discriminator(real.detach()).logits, discriminator(fake).logits
    return discriminator(torch.cat([real.detach(), fake])).logits.chunk(2)


def optimize(accelerator, loss, model, optimizer, lr_scheduler, max_grad_norm: Optional[float]) -> None:
    """Backward, optional clipping, optimizer (and scheduler) step; Accelerate skips the update while accumulating."""
    accelerator.backward(loss)
    if max_grad_norm and accelerator.sync_gradients:
        accelerator.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    if lr_scheduler is not None:
        lr_scheduler.step()
    optimizer.zero_grad(set_to_none=True)


def reseed(args, accelerator, model, optimizer, ema_model, reseed_window, latents, global_step) -> int:
    """Re-seed codes unused since the last re-seed from encoder outputs gathered from all ranks.

    `latents` (B, embed_dim, h, w) are mapped to the lookup space first (`quantize.project`: the low-dimensional,
    normalised space of factorised codes), so a re-seeded code is one the encoder can actually reach.
    """
    with torch.no_grad():
        vectors = model.quantize.project(accelerator.gather(latents.float().contiguous()))
    dead = reseed_window.dead_codes()
    generator = torch.Generator().manual_seed(args.seed + global_step)  # identical on every rank
    codebook = model.get_codebook()
    count = reseed_dead_codes(codebook, dead, vectors, generator, getattr(optimizer, "optimizer", optimizer))
    if ema_model is not None and count:
        copy_rows_to_ema(model, ema_model, model.codebook_parameter_name, dead)
    reseed_window.reset()
    return count


def save_final(args, accelerator, model, discriminator, ema_model: Optional[EMAModel], num_channels: int) -> None:
    """`output_dir/vqgan` (EMA weights when --use_ema) with its image processor, and `output_dir/discriminator`."""
    if ema_model is not None:
        ema_model.copy_to(model.parameters())
    vqgan_dir = os.path.join(args.output_dir, "vqgan")
    model.save_pretrained(vqgan_dir)
    VQGANImageProcessor(resolution=args.resolution, num_channels=num_channels).save_pretrained(vqgan_dir)
    discriminator.save_pretrained(os.path.join(args.output_dir, "discriminator"))
    logger.info(f"Saved the VQGAN to {vqgan_dir} and the discriminator to {args.output_dir}/discriminator")
    if args.push_to_hub:
        push_output_dir(args.output_dir, args.hub_model_id, args.hub_token, commit_message="VQGAN training run")


if __name__ == "__main__":
    main(parse_args())
