#!/usr/bin/env python
"""Training throughput of the latent prior: tokens per second and model FLOPs utilisation (MFU).

Times full optimizer steps (forward, backward, AdamW) of the `GPT2LMHeadModel` prior exactly as
`scripts/train_transformer.py` builds it (`build_prior_config`, `PriorDataCollator` batches, class
dropout), on random codes, so no VQGAN or dataset is needed. The default shape is a 338M-parameter
class-conditional prior (GPT-2 medium: 24 layers, 1024 wide, 16 heads) over a 16384-code VQGAN and
1000 classes at 16x16 latents (257 tokens per sequence), in bf16 autocast.

    python benchmarks/benchmark_prior_training.py                       # GPU, defaults
    python benchmarks/benchmark_prior_training.py --n_layer 2 --n_embd 64 --n_head 2 \
        --num_codes 64 --batch_size 4 --steps 3 --warmup 1 --dtype fp32    # CPU smoke test

MFU = achieved model FLOPs / peak: model FLOPs per token are 6 * N (N = parameters without the
position embeddings) plus 12 * n_layer * n_embd * T for attention (T = sequence length); the peak is
`--peak_tflops` (default: 989 for an H100 SXM in dense bf16).
"""

import argparse
import json
import time

import torch
from transformers import GPT2LMHeadModel

from taming_hf.pipelines.taming.vocabulary import TokenLayout
from taming_hf.training.prior_data import PriorDataCollator, corrupt_inputs
from taming_hf.training.prior_trainer import build_prior_config, linear_weight_names

PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n_layer", type=int, default=24)
    parser.add_argument("--n_head", type=int, default=16)
    parser.add_argument("--n_embd", type=int, default=1024)
    parser.add_argument("--num_codes", type=int, default=16384)
    parser.add_argument("--num_classes", type=int, default=1000)
    parser.add_argument("--grid", type=int, default=16, help="Latent grid side (tokens = grid**2 + 1).")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--dtype", choices=("bf16", "fp16", "fp32"), default="bf16")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model.")
    parser.add_argument("--peak_tflops", type=float, default=None, help="Accelerator peak for MFU.")
    return parser.parse_args()


def model_flops_per_token(model: GPT2LMHeadModel, sequence_length: int) -> float:
    """6 * N for the dense weights plus the attention score / value matmuls (forward + backward)."""
    config = model.config
    dense = sum(p.numel() for n, p in model.named_parameters() if "wpe" not in n)
    return 6 * dense + 12 * config.n_layer * config.n_embd * sequence_length


def random_batch(layout: TokenLayout, collator, batch_size: int, grid: int, device) -> dict:
    features = [
        {"indices": torch.randint(0, layout.num_image_codes, (grid, grid)), "class_labels": i % 10}
        for i in range(batch_size)
    ]
    return {key: value.to(device) for key, value in collator(features).items()}


def peak_tflops(args, device) -> float:
    if args.peak_tflops is not None:
        return args.peak_tflops
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for key, value in PEAK_TFLOPS.items():
            if key in name:
                return value
    return float("nan")


def main():
    args = parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    layout = TokenLayout.build("class", args.num_codes, args.num_classes, with_null_class=True)
    sequence_length = 1 + args.grid * args.grid
    config = build_prior_config(layout, sequence_length, args.n_layer, args.n_head, args.n_embd)
    model = GPT2LMHeadModel(config).to(device)
    decay = set(linear_weight_names(model))
    groups = [
        {"params": [p for n, p in model.named_parameters() if n in decay], "weight_decay": 0.01},
        {"params": [p for n, p in model.named_parameters() if n not in decay], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=1e-4, betas=(0.9, 0.95), fused=device.type == "cuda")
    forward = torch.compile(model) if args.compile else model
    collator = PriorDataCollator(layout)
    autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": None}[args.dtype]

    def step():
        batch = random_batch(layout, collator, args.batch_size, args.grid, device)
        batch["input_ids"] = corrupt_inputs(batch["input_ids"], batch["labels"], layout, class_dropout_prob=0.1)
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            loss = forward(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(args.warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    tokens_per_second = args.steps * args.batch_size * sequence_length / seconds
    achieved = tokens_per_second * model_flops_per_token(model, sequence_length) / 1e12
    result = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "parameters_millions": round(model.num_parameters() / 1e6, 1),
        "dtype": args.dtype,
        "compile": args.compile,
        "batch_size": args.batch_size,
        "sequence_length": sequence_length,
        "step_seconds": round(seconds / args.steps, 4),
        "tokens_per_second": round(tokens_per_second),
        "model_tflops": round(achieved, 2),
        "mfu": round(achieved / peak_tflops(args, device), 4),
        "peak_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if device.type == "cuda" else None,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
