"""VQGAN speed and memory: `VQGANModel` against the original `taming.models.vqgan.VQModel`, same weights, CPU.

Builds the original `VQModel` at the official f16 layout (256 px, ch 128, ch_mult 1,1,2,2,4, attention at 16 px,
2 residual blocks, z 256; `--codes` codebook entries) with random weights, loads the same weights into
`VQGANModel` (the state-dict names are the original's, so the load is strict), checks that both give the same
codes, and measures:

- encode (images -> codes) and decode (quantized latents -> images) throughput, in inference mode;
- the peak memory of each: the resident-set high-water mark above the resident set before the call (Linux
  `/proc/self/status` VmHWM, reset through `/proc/self/clear_refs`), second call in a fresh process per model and
  operation, with `MALLOC_MMAP_THRESHOLD_` set so that freed tensors go back to the system at once (the
  high-water mark then follows the live tensors, not what the allocator keeps cached);
- one full training step, autoencoder and discriminator, LPIPS on, discriminator on from step 0: our
  `train_step` (scripts/train_vqgan.py, its default objective) against the original's objective run the way
  PyTorch Lightning 1.x runs its `training_step` with two optimizers (once per `optimizer_idx`, each time with
  the other optimizer's parameters frozen: the autoencoder forward and LPIPS run twice), the same weights for
  the autoencoder, the discriminator and LPIPS; then a torch.profiler summary of one step of each.

The cases run in turn for `--rounds` rounds (interleaved, so a change of machine load hits all of them). Times
are process CPU seconds (`time.process_time`: on a shared machine the wall clock mostly measures the other
jobs; with one thread they are the compute time) and wall seconds beside them; ratios are the median of the
per-round ratios original / ours (above 1: ours is faster).

Usage (CPU, one thread):

    python benchmarks/vqgan.py
    python benchmarks/vqgan.py --rounds 5 --train_rounds 3 --batch_size 2

Needs the original implementation: `pip install --no-deps "taming-transformers-rom1504==0.0.6" einops`, and the
LPIPS weights (`python -m taming_hf.utils.offline_weights` offline); the original's LPIPS gets the `lpips`
package's `vgg.pth`, the same file (same md5) it downloads.
"""

import argparse
import concurrent.futures
import contextlib
import multiprocessing
import os
import statistics
import sys
import time
from pathlib import Path

import torch

from taming_hf import VQGANConfig, VQGANModel
from taming_hf.training import PatchGANDiscriminator, PatchGANDiscriminatorConfig, VQGANLoss

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the original's import shims live there
sys.path.insert(0, str(ROOT / "scripts"))  # our training step
from original_taming import import_original_taming  # noqa: E402

# The official f16 layout (vqgan_imagenet_f16_1024 / 16384), in the original's ddconfig names.
F16 = dict(
    double_z=False,
    z_channels=256,
    resolution=256,
    in_channels=3,
    out_ch=3,
    ch=128,
    ch_mult=[1, 1, 2, 2, 4],
    num_res_blocks=2,
    attn_resolutions=[16],
    dropout=0.0,
)
MEMORY_ENV = {"MALLOC_MMAP_THRESHOLD_": "65536"}
# torch.profiler op names -> the rows of the "where the time goes" table.
OP_GROUPS = {
    "convolution forward": ("aten::mkldnn_convolution", "aten::_slow_conv2d_forward", "aten::thnn_conv2d"),
    "convolution backward": ("aten::convolution_backward", "aten::_slow_conv2d_backward"),
    "GroupNorm / BatchNorm": (
        "aten::native_group_norm",
        "aten::native_group_norm_backward",
        "aten::native_batch_norm",
        "aten::native_batch_norm_backward",
    ),
}


def parse_args(input_args=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch_size", type=int, default=1, help="images per call and per training step")
    parser.add_argument("--codes", type=int, default=1024, help="codebook size")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of encode and decode")
    parser.add_argument("--train_rounds", type=int, default=2, help="interleaved rounds of the training step")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip_memory", action="store_true", help="skip the peak-memory subprocesses")
    parser.add_argument("--skip_train", action="store_true", help="skip the training step")
    parser.add_argument("--profile_rows", type=int, default=6, help="top ops by self CPU time in the profile")
    args = parser.parse_args(input_args)
    for name in ("batch_size", "codes", "rounds", "train_rounds", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}.")
    return args


# ------------------------------------------------------------------------------------------------ models


@contextlib.contextmanager
def original_lpips_weights():
    """The original's LPIPS downloads `vgg.pth` on construction; hand it the `lpips` package's copy (same md5)."""
    import lpips

    module = import_original_taming("taming.modules.losses.lpips")
    path = os.path.join(os.path.dirname(lpips.__file__), "weights", "v0.1", "vgg.pth")
    download = module.get_ckpt_path
    module.get_ckpt_path = lambda name, root, check=False: path
    try:
        yield
    finally:
        module.get_ckpt_path = download


def original_vqmodel(codes: int, seed: int, with_loss: bool):
    """The original VQModel at the f16 layout; `with_loss`: with its VQLPIPSWithDiscriminator (D on from step 0,
    the official f16 config's weights otherwise), else with the DummyLoss the inference configs use."""
    vqgan = import_original_taming("taming.models.vqgan")
    loss = {"target": "taming.modules.losses.vqperceptual.DummyLoss"}
    if with_loss:
        params = dict(disc_start=0, disc_weight=0.8, codebook_weight=1.0, disc_in_channels=3, disc_conditional=False)
        loss = {"target": "taming.modules.losses.vqperceptual.VQLPIPSWithDiscriminator", "params": params}
    torch.manual_seed(seed)
    with original_lpips_weights(), contextlib.redirect_stdout(sys.stderr):  # it prints as it builds
        model = vqgan.VQModel(F16, loss, n_embed=codes, embed_dim=F16["z_channels"])
    # Codes spread over the latents' range, so encoding picks many of them (as trained codebooks do).
    with torch.no_grad():
        model.quantize.embedding.weight.normal_(std=0.05)
    return model


def our_vqgan(original) -> VQGANModel:
    """A VQGANModel of the same layout with the original's weights (strict: every name matches)."""
    config = VQGANConfig(
        embed_dim=original.quantize.e_dim,
        num_embeddings=original.quantize.n_e,
        latent_channels=F16["z_channels"],
        resolution=F16["resolution"],
        in_channels=F16["in_channels"],
        out_channels=F16["out_ch"],
        base_channels=F16["ch"],
        channel_multiplier=F16["ch_mult"],
        num_res_blocks=F16["num_res_blocks"],
        attn_resolutions=F16["attn_resolutions"],
        legacy_beta=True,  # the original's beta placement: the same loss value
    )
    model = VQGANModel(config)
    model.load_state_dict({k: v for k, v in original.state_dict().items() if not k.startswith("loss.")}, strict=True)
    return model


def build_pair(args, with_loss: bool = False):
    original = original_vqmodel(args.codes, args.seed, with_loss)
    return original, our_vqgan(original)


def sample_images(args) -> torch.Tensor:
    generator = torch.Generator().manual_seed(args.seed + 1)
    return torch.rand(args.batch_size, 3, F16["resolution"], F16["resolution"], generator=generator) * 2 - 1


def operations(original, ours, images: torch.Tensor):
    """{(operation, model): callable} for inference; decode takes the quantized latents of `images`."""
    with torch.no_grad():
        quantized = ours.encode(images).quantized
    return {
        ("encode", "original VQModel"): lambda: original.encode(images),
        ("encode", "VQGANModel"): lambda: ours.encode(images),
        ("decode", "original VQModel"): lambda: original.decode(quantized),
        ("decode", "VQGANModel"): lambda: ours.decode(quantized),
    }


def check_same_function(original, ours, images: torch.Tensor) -> str:
    """Both models must compute the same function, or the comparison is meaningless."""
    with torch.no_grad():
        quantized, _, (_, _, indices) = original.encode(images)
        reconstruction = original.decode(quantized)
        output = ours(images)
    if not torch.equal(output.indices.flatten(), indices.flatten()):
        raise AssertionError("VQGANModel and the original VQModel chose different codes for the same weights.")
    difference = (output.reconstruction - reconstruction).abs().max().item()
    used = output.indices.unique().numel()
    return f"same codes ({used} distinct of {ours.config.num_embeddings}); max |reconstruction difference| {difference:.1e}"


# ----------------------------------------------------------------------------------------------- timing


def timed(fn):
    """(CPU seconds, wall seconds) of one call."""
    cpu, wall = time.process_time(), time.perf_counter()
    fn()
    return time.process_time() - cpu, time.perf_counter() - wall


def interleaved(cases, rounds: int, no_grad: bool):
    """{key: [(cpu, wall), ...]}: every case once per round, in turn."""
    times = {key: [] for key in cases}
    for _ in range(rounds):
        for key, fn in cases.items():
            with torch.no_grad() if no_grad else contextlib.nullcontext():
                times[key].append(timed(fn))
    return times


def median_ratio(slow, fast, index: int) -> float:
    return statistics.median(s[index] / f[index] for s, f in zip(slow, fast))


def print_times(times, batch_size: int, unit: str) -> None:
    print(f"| operation | model | median CPU s | median wall s | {unit} per CPU s | original / ours (CPU) | (wall) |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for (operation, model), rounds in times.items():
        ours = times[(operation, "VQGANModel")]
        cpu, wall = statistics.median(t[0] for t in rounds), statistics.median(t[1] for t in rounds)
        ratios = f"{median_ratio(rounds, ours, 0):.2f}x | {median_ratio(rounds, ours, 1):.2f}x"
        print(f"| {operation} | {model} | {cpu:.2f} | {wall:.2f} | {batch_size / cpu:.3f} | {ratios} |")


# ----------------------------------------------------------------------------------------------- memory


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field + ":"))


def peak_memory_mib(args, model: str, operation: str) -> float:
    """Runs in a fresh process: the RSS high-water mark of the second `operation` call above the RSS before it."""
    torch.set_num_threads(args.threads)
    original, ours = build_pair(args)
    images = sample_images(args)
    fn = operations(original.eval(), ours.eval(), images)[(operation, model)]
    with torch.no_grad():
        fn()  # the second call is measured: one-time set-up (oneDNN primitives, thread pools) is not
    before = _rss_kib("VmRSS")
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")  # reset VmHWM to the current RSS
    with torch.no_grad():
        fn()
    return (_rss_kib("VmHWM") - before) / 1024


def measure_memory(args):
    """{(operation, model): MiB}, each in its own fresh process."""
    results, environ = {}, dict(os.environ)
    os.environ.update(MEMORY_ENV)  # read by the children's allocator at start-up
    try:
        for key in [(op, model) for op in ("encode", "decode") for model in ("original VQModel", "VQGANModel")]:
            context = multiprocessing.get_context("spawn")
            with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
                results[key] = pool.submit(peak_memory_mib, args, key[1], key[0]).result()
    finally:
        os.environ.clear()
        os.environ.update(environ)
    return results


# ------------------------------------------------------------------------------------------ training step


def our_step(ours, original):
    """scripts/train_vqgan.py's `train_step` at that script's default objective, discriminator on from step 0;
    the discriminator and LPIPS carry the original's weights."""
    from accelerate import Accelerator

    import train_vqgan

    defaults = train_vqgan.parse_args(["--dataset_name", "benchmark"])
    loss_fn = VQGANLoss(
        perceptual_weight=defaults.perceptual_weight,
        codebook_weight=defaults.codebook_weight,
        disc_weight=defaults.disc_weight,
        disc_factor=defaults.disc_factor,
        disc_start=0,
        disc_loss=defaults.disc_loss,
        reconstruction_loss=defaults.reconstruction_loss,
        disc_warmup_steps=0,
        lecam_weight=defaults.lecam_weight,
    )
    # The same LPIPS: the lpips package's module has every name of the original's (and `lins.*` aliases).
    unexpected = loss_fn.perceptual.load_state_dict(original.loss.perceptual_loss.state_dict(), strict=False)[1]
    if unexpected:
        raise AssertionError(f"The original's LPIPS weights {unexpected} have no place in lpips.LPIPS.")
    config = PatchGANDiscriminatorConfig(
        in_channels=3, base_channels=defaults.disc_base_channels, num_layers=defaults.disc_num_layers
    )
    discriminator = PatchGANDiscriminator(config)
    discriminator.load_state_dict(original.loss.discriminator.state_dict(), strict=True)
    adam = dict(lr=defaults.learning_rate, betas=(defaults.adam_beta1, defaults.adam_beta2))
    optimizer = torch.optim.Adam(ours.parameters(), **adam)
    disc_optimizer = torch.optim.Adam(discriminator.parameters(), **adam)
    components = train_vqgan.TrainingComponents(
        accelerator=Accelerator(cpu=True),
        model=ours.train(),
        discriminator=discriminator.train(),
        loss_fn=loss_fn,
        optimizer=optimizer,
        disc_optimizer=disc_optimizer,
        lr_scheduler=torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0),
        disc_lr_scheduler=torch.optim.lr_scheduler.ConstantLR(disc_optimizer, factor=1.0),
    )
    return lambda images: train_vqgan.train_step(components, images, global_step=0)


def original_step(original):
    """The original objective as Lightning 1.x runs it with two optimizers: `training_step` once per
    `optimizer_idx`, the other optimizer's parameters frozen meanwhile (`toggle_optimizer`), then backward and
    step. `configure_optimizers` reads `learning_rate`, which the original's main.py sets."""
    original.learning_rate, original.global_step = 4.5e-6, 0
    optimizers, _ = original.configure_optimizers()
    groups = [[p for group in optimizer.param_groups for p in group["params"]] for optimizer in optimizers]

    def step(images):
        batch = {original.image_key: images.permute(0, 2, 3, 1)}  # its get_input takes (B, H, W, C)
        for index, optimizer in enumerate(optimizers):
            frozen = [p for i, group in enumerate(groups) if i != index for p in group if p.requires_grad]
            for parameter in frozen:
                parameter.requires_grad_(False)
            loss = original.training_step(batch, 0, index)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            for parameter in frozen:
                parameter.requires_grad_(True)

    original.train()
    original.loss.perceptual_loss.eval()  # as in its own __init__; train() above would switch LPIPS' dropout on
    return step


def profile_summary(steps, images: torch.Tensor, rows: int) -> None:
    """One profiled step of each: the share of the profiled self time per op group (the profiler clocks ops on
    the wall, so under load the absolute times are inflated, the shares much less), call counts, the top ops,
    and the step's CPU seconds."""
    from torch.profiler import ProfilerActivity, profile

    tables, cpu_seconds = {}, {}
    for name, step in steps.items():
        start = time.process_time()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            step(images)
        cpu_seconds[name] = time.process_time() - start
        tables[name] = {event.key: (event.self_cpu_time_total, event.count) for event in prof.key_averages()}
    grouped = {key for keys in OP_GROUPS.values() for key in keys}
    print(f"| share of the step's self time (calls) | {' | '.join(steps)} |")
    print("|---|" + "---:|" * len(steps))
    for group, keys in {**OP_GROUPS, "everything else": None}.items():
        cells = []
        for table in tables.values():
            total = sum(time_us for time_us, _ in table.values())
            picked = [v for k, v in table.items() if (k in keys if keys else k not in grouped)]
            calls = f" ({sum(n for _, n in picked)})" if keys else ""
            cells.append(f"{100 * sum(t for t, _ in picked) / total:.0f} %{calls}")
        print(f"| {group} | {' | '.join(cells)} |")
    print(f"| CPU seconds of the profiled step | {' | '.join(f'{cpu_seconds[name]:.1f}' for name in steps)} |\n")
    for name, table in tables.items():
        total = sum(time_us for time_us, _ in table.values())
        top = sorted(table.items(), key=lambda item: -item[1][0])[:rows]
        print(f"{name}, top ops: " + ", ".join(f"{k} {100 * t / total:.0f} % ({n})" for k, (t, n) in top))


def train_benchmark(args) -> None:
    original, ours = build_pair(args, with_loss=True)
    images = sample_images(args)
    steps = {
        "VQGANModel: train_step": our_step(ours, original),
        "original VQModel: training_step x 2": original_step(original),
    }
    print("### Where the time goes (one profiled step each, the first)\n")
    profile_summary(steps, images, args.profile_rows)
    times = interleaved(
        {("train step", name): (lambda s=s: s(images)) for name, s in steps.items()}, args.train_rounds, False
    )
    ours_times = times[("train step", "VQGANModel: train_step")]
    print(f"\n### Training step ({args.train_rounds} rounds after the profiled one)\n")
    print("| step | median CPU s | median wall s | all rounds, CPU s | original / ours (CPU) | (wall) |")
    print("|---|---:|---:|---|---:|---:|")
    for (_, name), rounds in times.items():
        cpu, wall = statistics.median(t[0] for t in rounds), statistics.median(t[1] for t in rounds)
        every = ", ".join(f"{t[0]:.1f}" for t in rounds)
        ratios = f"{median_ratio(rounds, ours_times, 0):.2f}x | {median_ratio(rounds, ours_times, 1):.2f}x"
        print(f"| {name} | {cpu:.1f} | {wall:.1f} | {every} | {ratios} |")


def main(args) -> None:
    torch.set_num_threads(args.threads)
    original, ours = build_pair(args)
    original.eval(), ours.eval()
    images = sample_images(args)
    load = os.getloadavg()
    print(
        f"f16 layout, {F16['resolution']} px, batch {args.batch_size}, {args.codes} codes, "
        f"{sum(p.numel() for p in ours.parameters()) / 1e6:.1f}M parameters; {torch.get_num_threads()} thread(s); "
        f"torch {torch.__version__}; load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}; "
        f"{check_same_function(original, ours, images)}\n"
    )
    times = interleaved(operations(original, ours, images), args.rounds, no_grad=True)
    print(f"### Encode and decode ({args.rounds} rounds)\n")
    print_times(times, args.batch_size, "images")
    if not args.skip_memory:
        memory = measure_memory(args)
        print(
            "\n### Peak memory (RSS high-water mark above the RSS before the call: second call, fresh process each)\n"
        )
        print("| operation | original VQModel (MiB) | VQGANModel (MiB) | ours / original |")
        print("|---|---:|---:|---:|")
        for operation in ("encode", "decode"):
            theirs, mine = memory[(operation, "original VQModel")], memory[(operation, "VQGANModel")]
            print(f"| {operation} | {theirs:.0f} | {mine:.0f} | {mine / theirs:.2f} |")
    del original, ours
    if not args.skip_train:
        print()
        train_benchmark(args)
    load = os.getloadavg()
    print(f"\nload average at the end {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}")


if __name__ == "__main__":
    main(parse_args())
