"""Sampling speed: TamingPipeline against the original implementation and the previous generate() path.

Builds one random minGPT prior inside the original `Net2NetTransformer`, converts the same weights to a
`GPT2LMHeadModel` for `TamingPipeline`, and times, on the same batch and number of tokens:

- the original's `Net2NetTransformer.sample` (a full forward over the whole sequence per token),
- the original's `sample_with_past` (minGPT with a key/value cache),
- `generate()` with the pipeline's former logits processors (the previous cached path),
- a bare loop of cached forwards with greedy argmax (the model's cost alone: a floor for any sampler),
- `TamingPipeline(...)` with `output_type="latent"` (token sampling only, no decoding).

The samplers run in turn for `--rounds` rounds (interleaved, so a change of machine load hits them all);
the table gives the median seconds and the median of the per-round ratios to the pipeline.

`--shipped PATH` instead times a saved class-conditional pipeline (e.g. pretrained/taming-fashion-mnist)
with and without classifier-free guidance, against the previous generate() path (whose guidance ran a
second, unbatched forward per token).

Usage (CPU, one thread):

    python benchmarks/sampling.py --layers 8 --heads 8 --embd 512 --batch_size 4 --tokens 256 --rounds 2
    python benchmarks/sampling.py --shipped pretrained/taming-fashion-mnist --batch_size 20 --top_k 32 --rounds 5

Needs the original implementation (not for `--shipped`):
`pip install --no-deps "taming-transformers-rom1504==0.0.6" einops`.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from transformers import DynamicCache, GenerationConfig, GPT2LMHeadModel
from transformers.generation.logits_process import UnbatchedClassifierFreeGuidanceLogitsProcessor

from taming_hf import TamingPipeline, VQGANConfig, VQGANModel
from taming_hf.conversion.transformer import convert_mingpt, plan_vocabulary
from taming_hf.pipelines.taming.sampling import build_logits_processors

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the original's import shims live there
from original_taming import import_original_taming  # noqa: E402


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch_size", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=256, help="image tokens per sample (a square grid)")
    parser.add_argument("--codes", type=int, default=1024, help="codebook size K")
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--embd", type=int, default=512)
    parser.add_argument("--top_k", type=int, default=100)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads for all three samplers; one thread is fastest for small-batch decoding",
    )
    parser.add_argument("--skip_full_forward", action="store_true", help="skip the slow uncached loop")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of every sampler")
    parser.add_argument("--shipped", help="a saved class-conditional TamingPipeline: time guided against unguided")
    parser.add_argument("--guidance_scale", type=float, default=2.0, help="for --shipped")
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


def timed(fn) -> float:
    start = time.perf_counter()
    with torch.no_grad():
        fn()
    return time.perf_counter() - start


def previous_generate(gpt, prefix, num_tokens, num_image_codes, top_k, null_prefix=None, guidance_scale=1.0):
    """The pipeline's previous cached path: greedy generate() with its logits processors (and, when guided,
    transformers' UnbatchedClassifierFreeGuidanceLogitsProcessor, a second forward per token)."""
    processors = build_logits_processors(
        num_image_codes, gpt.config.vocab_size, top_k=top_k, generator=torch.Generator().manual_seed(0)
    )
    if guidance_scale != 1.0:
        processors.insert(0, UnbatchedClassifierFreeGuidanceLogitsProcessor(guidance_scale, gpt, null_prefix))
    stop = gpt.config.vocab_size - 1
    config = GenerationConfig(
        max_new_tokens=num_tokens, do_sample=False, use_cache=True, eos_token_id=stop, pad_token_id=stop
    )
    return gpt.generate(
        input_ids=prefix, attention_mask=torch.ones_like(prefix), generation_config=config, logits_processor=processors
    )


def forward_floor(gpt, prefix, num_tokens, num_image_codes, rows=1):
    """Only the model: cached forwards on `rows` copies of the batch with a greedy argmax, nothing else."""
    ids, cache = prefix.repeat(rows, 1), DynamicCache(config=gpt.config)
    for _ in range(num_tokens):
        logits = gpt(ids, cache=cache, use_cache=True, logits_to_keep=1).logits
        ids = logits[:, -1, :num_image_codes].argmax(-1, keepdim=True)
    return ids


def interleaved(samplers, rounds, reference):
    """Run each sampler once per round, in turn; print median seconds and median per-round ratios."""
    times = {name: [] for name in samplers}
    for _ in range(rounds):
        for name, fn in samplers.items():
            times[name].append(timed(fn))
    print("| sampler | median seconds | all rounds (s) | median ratio to the pipeline |")
    print("|---|---:|---|---:|")
    for name, seconds in times.items():
        ratio = statistics.median(t / r for t, r in zip(seconds, times[reference]))
        rounds_text = ", ".join(f"{t:.2f}" for t in seconds)
        print(f"| {name} | {statistics.median(seconds):.2f} | {rounds_text} | {ratio:.2f}x |")


def shipped(args):
    """Guided against unguided sampling of a saved class-conditional pipeline, and the previous path."""
    pipe = TamingPipeline.from_pretrained(args.shipped).to("cpu")
    pipe.set_progress_bar_config(disable=True)
    gpt, layout = pipe.transformer.eval(), pipe.layout
    labels = [i % layout.num_condition_tokens for i in range(args.batch_size)]
    num_tokens = pipe.latent_window**2
    prefix = torch.tensor(labels)[:, None] + layout.condition_offset
    null = torch.full_like(prefix, layout.null_class_token_id)
    codes, scale, k = layout.num_image_codes, args.guidance_scale, args.top_k
    print(
        f"{args.shipped}: GPT {gpt.config.n_layer} layers, {gpt.config.n_embd} dim, "
        f"{sum(p.numel() for p in gpt.parameters()) / 1e6:.2f}M params; batch {args.batch_size}, {num_tokens} "
        f"tokens, top_k {k}, guidance_scale {scale}, {torch.get_num_threads()} CPU thread(s)\n"
    )

    def run(guidance_scale):
        generator = torch.Generator().manual_seed(0)
        kwargs = dict(class_labels=labels, top_k=k, guidance_scale=guidance_scale, generator=generator)
        return lambda: pipe(output_type="latent", **kwargs)

    samplers = {
        "TamingPipeline, unguided": run(1.0),
        f"TamingPipeline, guidance {scale} (one batch of 2B rows)": run(scale),
        "previous path: generate(), unguided": lambda: previous_generate(gpt, prefix, num_tokens, codes, k),
        f"previous path: generate(), guidance {scale} (unbatched CFG processor)": lambda: previous_generate(
            gpt, prefix, num_tokens, codes, k, null, scale
        ),
        "model forwards only, B rows (floor)": lambda: forward_floor(gpt, prefix, num_tokens, codes),
        "model forwards only, 2B rows (floor)": lambda: forward_floor(gpt, prefix, num_tokens, codes, rows=2),
    }
    interleaved(samplers, args.rounds, "TamingPipeline, unguided")


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.shipped:
        return shipped(args)
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
        f"{torch.get_num_threads()} CPU threads; max |logit difference| after conversion {difference:.1e}\n"
    )

    sos = torch.full((args.batch_size, 1), args.codes, dtype=torch.long)
    empty = torch.zeros(args.batch_size, 0, dtype=torch.long)
    samplers = {}
    if not args.skip_full_forward:
        samplers["original Net2NetTransformer.sample (full forward per token)"] = lambda: original.sample(
            empty, sos, args.tokens, sample=True, top_k=args.top_k
        )
    samplers["original sample_with_past (minGPT KV cache)"] = lambda: mingpt.sample_with_past(
        sos, original.transformer, args.tokens, top_k=args.top_k, top_p=1.0
    )
    samplers["previous pipeline path: generate() + logits processors"] = lambda: previous_generate(
        gpt2, sos, args.tokens, args.codes, args.top_k
    )
    samplers["model forwards only (cached, greedy argmax: the floor)"] = lambda: forward_floor(
        gpt2, sos, args.tokens, args.codes
    )

    def pipeline():
        generator = torch.Generator().manual_seed(0)
        out = pipe(batch_size=args.batch_size, top_k=args.top_k, generator=generator, output_type="latent")
        assert out.indices.shape == (args.batch_size, side, side)

    samplers["TamingPipeline (ImageTokenSampler + KV cache)"] = pipeline
    interleaved(samplers, args.rounds, "TamingPipeline (ImageTokenSampler + KV cache)")


if __name__ == "__main__":
    main()
