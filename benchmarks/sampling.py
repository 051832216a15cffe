"""Sampling speed: TamingPipeline (generate() + KV cache) against the original implementation.

Builds one random minGPT prior inside the original `Net2NetTransformer`, converts the same weights to a
`GPT2LMHeadModel` for `TamingPipeline`, and times, on the same batch and number of tokens:

- the original's `Net2NetTransformer.sample` (a full forward over the whole sequence per token),
- the original's `sample_with_past` (minGPT with a key/value cache),
- `TamingPipeline(...)` with `output_type="latent"` (token sampling only, no decoding).

Usage (CPU, one run each):

    python benchmarks/sampling.py --layers 8 --heads 8 --embd 512 --batch-size 4 --tokens 256 --threads 1

Needs the original implementation: `pip install --no-deps "taming-transformers-rom1504==0.0.6" einops`.
"""

import argparse
import sys
import time
from pathlib import Path

import torch
from transformers import GPT2LMHeadModel

from taming_hf import TamingPipeline, VQGANConfig, VQGANModel
from taming_hf.conversion.transformer import convert_mingpt, plan_vocabulary

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the original's import shims live there
from original_taming import import_original_taming  # noqa: E402


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=256, help="image tokens per sample (a square grid)")
    parser.add_argument("--codes", type=int, default=1024, help="codebook size K")
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--embd", type=int, default=512)
    parser.add_argument("--top-k", type=int, default=100)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads for all three samplers; one thread is fastest for small-batch decoding",
    )
    parser.add_argument("--skip-full-forward", action="store_true", help="skip the slow uncached loop")
    return parser.parse_args()


def original_model(args):
    """The original Net2NetTransformer (unconditional, SOS = K) with a tiny first stage."""
    cond_transformer = import_original_taming("taming.models.cond_transformer")
    side = int(args.tokens**0.5)
    first_stage = {
        "target": "taming.models.vqgan.VQModel",
        "params": {
            "ddconfig": {
                "double_z": False,
                "z_channels": 8,
                "resolution": 2 * side,
                "in_channels": 3,
                "out_ch": 3,
                "ch": 32,
                "ch_mult": [1, 2],
                "num_res_blocks": 1,
                "attn_resolutions": [],
                "dropout": 0.0,
            },
            "lossconfig": {"target": "taming.modules.losses.vqperceptual.DummyLoss"},
            "n_embed": args.codes,
            "embed_dim": 4,
        },
    }
    transformer = {
        "target": "taming.modules.transformer.mingpt.GPT",
        "params": {
            "vocab_size": args.codes + 1,
            "block_size": args.tokens,
            "n_layer": args.layers,
            "n_head": args.heads,
            "n_embd": args.embd,
        },
    }
    model = cond_transformer.Net2NetTransformer(
        transformer, first_stage, "__is_unconditional__", sos_token=args.codes, unconditional=True
    )
    return model.eval()


def minigpt_to_gpt2(gpt, num_image_codes: int) -> GPT2LMHeadModel:
    """The same weights as a GPT2LMHeadModel, through the checkpoint converter's own mapping."""
    plan = plan_vocabulary("sos", num_image_codes, gpt.config.vocab_size, sos_token=num_image_codes)
    state = {name: tensor.detach().clone() for name, tensor in gpt.state_dict().items()}
    return convert_mingpt(state, gpt.config.n_head, plan)


def make_pipeline(args, gpt2) -> TamingPipeline:
    side = int(args.tokens**0.5)
    vqgan = VQGANModel(
        VQGANConfig(
            embed_dim=4,
            num_embeddings=args.codes,
            latent_channels=8,
            resolution=2 * side,
            base_channels=32,
            channel_multiplier=[1, 2],
            num_res_blocks=1,
            attn_resolutions=[],
        )
    ).eval()
    pipe = TamingPipeline(vqgan, gpt2, sos_token_id=args.codes)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def timed(fn):
    start = time.perf_counter()
    with torch.no_grad():
        result = fn()
    return result, time.perf_counter() - start


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    side = int(args.tokens**0.5)
    if side * side != args.tokens:
        raise ValueError(f"--tokens must be a square number (a latent grid), got {args.tokens}.")
    mingpt = import_original_taming("taming.modules.transformer.mingpt")
    original = original_model(args)
    gpt2 = minigpt_to_gpt2(original.transformer, args.codes)
    pipe = make_pipeline(args, gpt2)

    # The converted model must compute the same function, or the comparison is meaningless.
    probe = torch.randint(0, args.codes + 1, (2, args.tokens))
    with torch.no_grad():
        difference = (original.transformer(probe)[0] - gpt2(probe).logits).abs().max().item()
    params = sum(p.numel() for p in gpt2.parameters()) / 1e6
    print(
        f"GPT: {args.layers} layers, {args.heads} heads, {args.embd} dim, vocab {args.codes + 1}, {params:.1f}M "
        f"params; batch {args.batch_size}, {args.tokens} tokens, top_k {args.top_k}, "
        f"{torch.get_num_threads()} CPU threads; max |logit difference| after conversion {difference:.1e}"
    )

    sos = torch.full((args.batch_size, 1), args.codes, dtype=torch.long)
    empty = torch.zeros(args.batch_size, 0, dtype=torch.long)
    rows = []
    if not args.skip_full_forward:
        _, seconds = timed(lambda: original.sample(empty, sos, args.tokens, sample=True, top_k=args.top_k))
        rows.append(("original Net2NetTransformer.sample (full forward per token)", seconds))
    _, seconds = timed(
        lambda: mingpt.sample_with_past(sos, original.transformer, args.tokens, top_k=args.top_k, top_p=1.0)
    )
    rows.append(("original sample_with_past (minGPT KV cache)", seconds))
    generator = torch.Generator().manual_seed(0)
    out, seconds = timed(
        lambda: pipe(batch_size=args.batch_size, top_k=args.top_k, generator=generator, output_type="latent")
    )
    assert out.indices.shape == (args.batch_size, side, side)
    rows.append(("TamingPipeline (generate + KV cache)", seconds))

    ours = rows[-1][1]
    print()
    print("| sampler | seconds | tokens/s | pipeline speed-up |")
    print("|---|---:|---:|---:|")
    for name, seconds in rows:
        tokens_per_second = args.batch_size * args.tokens / seconds
        print(f"| {name} | {seconds:.2f} | {tokens_per_second:.0f} | {seconds / ours:.1f}x |")


if __name__ == "__main__":
    main()
