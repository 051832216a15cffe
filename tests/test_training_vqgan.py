"""VQGAN training: data, checkpoints, codebook health, and `scripts/train_vqgan.py` end to end.

The end-to-end tests run the script on real Fashion-MNIST images at 16-32 px with a tiny
model, on CPU (two gloo processes for the multi-process test).
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from taming_hf import VQGANModel
from taming_hf.training import (
    CodebookUsageTracker,
    ImageTransform,
    PatchGANDiscriminator,
    PatchGANDiscriminatorConfig,
    latest_checkpoint,
    list_checkpoints,
    load_fashion_mnist,
    load_image_dataset,
    prune_checkpoints,
    reseed_dead_codes,
)
from taming_hf.training.checkpointing import COMPLETE_MARKER, push_output_dir, resolve_resume_path
from taming_hf.training.data import FASHION_MNIST_DIR, check_image_column, make_preprocess_fn, prepare_for_decoding

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "train_vqgan.py"
needs_fashion_mnist = pytest.mark.skipif(
    not os.path.exists(os.path.join(FASHION_MNIST_DIR, "train-images-idx3-ubyte.gz")),
    reason="Fashion-MNIST IDX files not installed (Debian package dataset-fashion-mnist)",
)
TINY_CONFIG = {
    "model_type": "vqgan",
    "resolution": 16,
    "in_channels": 1,
    "base_channels": 32,
    "channel_multiplier": [1, 2],
    "num_res_blocks": 1,
    "attn_resolutions": [],
    "latent_channels": 16,
    "embed_dim": 16,
    "num_embeddings": 64,
}


# ----------------------------------------------------------------------------- data


@needs_fashion_mnist
def test_fashion_mnist_from_idx_files_has_hub_features():
    dataset = load_fashion_mnist("test", max_samples=5)
    assert len(dataset) == 5
    assert type(dataset.features["image"]).__name__ == "Image"
    assert dataset.features["label"].names[9] == "Ankle boot"
    image = dataset[0]["image"]
    assert image.size == (28, 28) and image.mode == "L"
    assert dataset[0]["label"] == 9  # the first test image is an ankle boot
    by_name = load_image_dataset("fashion_mnist", split="test", max_samples=5)
    assert by_name[0]["label"] == 9 and len(by_name) == 5


def _write_idx(path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def test_fashion_mnist_cache_with_other_class_names_is_rebuilt(tmp_path, monkeypatch):
    from datasets import ClassLabel, Dataset, Features, Image

    from taming_hf.training import data

    monkeypatch.setattr(data.datasets_config, "HF_DATASETS_CACHE", str(tmp_path / "cache"))
    _write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((2, 28, 28)))
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.array([0, 9]))
    old_names = ["T - shirt / top"] + data.FASHION_MNIST_CLASSES[1:]  # the Hub dataset's spelling
    stale = Dataset.from_dict(
        {"image": [None], "label": [0]}, features=Features({"image": Image(), "label": ClassLabel(names=old_names)})
    )
    stale.save_to_disk(str(tmp_path / "cache" / "taming_hf" / "fashion_mnist-test"))

    dataset = load_fashion_mnist("test", data_dir=str(tmp_path))
    assert dataset.features["label"].names[0] == "T-shirt/top"
    assert dataset["label"] == [0, 9]


def test_image_transform_range_shape_and_seeded_augmentation():
    import PIL.Image

    image = PIL.Image.fromarray((torch.arange(40 * 30) % 256).reshape(30, 40).to(torch.uint8).numpy())
    center = ImageTransform(16, center_crop=True, num_channels=3)(image)
    assert center.shape == (3, 16, 16) and center.min() >= -1 and center.max() <= 1
    augment = ImageTransform(16, center_crop=False, random_flip=True, num_channels=1, seed=3)
    first = augment(image, row=7)
    assert torch.equal(first, augment(image, row=7))  # a pure function of (seed, epoch, row)
    variants = {augment(image, row=row).sum().item() for row in range(8)}
    assert len(variants) > 1
    with pytest.raises(ValueError, match="num_channels must be 1"):
        ImageTransform(16, num_channels=2)


def test_random_hue_rotates_a_seeded_fraction_of_images_and_keeps_brightness():
    import colorsys

    import PIL.Image

    image = PIL.Image.new("RGB", (16, 16), (60, 180, 40))  # one saturated green
    plain = ImageTransform(16, num_channels=3, seed=0)(image)
    assert torch.equal(plain, ImageTransform(16, num_channels=3, seed=0, random_hue_prob=0.0)(image, row=0))
    always = ImageTransform(16, num_channels=3, seed=0, random_hue_prob=1.0)
    hues, values = [], []
    for row in range(200):
        rotated = always(image, row=row)
        assert torch.equal(rotated, always(image, row=row))  # seeded by (seed, epoch, row), like crops and flips
        red, green, blue = ((rotated[:, 0, 0] + 1) / 2).tolist()
        hue, _, value = colorsys.rgb_to_hsv(red, green, blue)
        hues.append(hue)
        values.append(value)
    # Uniform over the circle: every sixth of it is hit; HSV value (the brightest channel) is kept up to rounding.
    assert {int(hue * 6) % 6 for hue in hues} == set(range(6))
    assert max(abs(value - 180 / 255) for value in values) < 2 / 255
    half = ImageTransform(16, num_channels=3, seed=0, random_hue_prob=0.5)
    rotated_rows = sum(not torch.equal(half(image, row=row), plain) for row in range(200))
    assert 70 <= rotated_rows <= 130

    with pytest.raises(ValueError, match=re.escape("random_hue_prob must be between 0 and 1, got 1.5.")):
        ImageTransform(16, random_hue_prob=1.5)
    message = "random_hue_prob needs RGB images (num_channels 3), got num_channels 1."
    with pytest.raises(ValueError, match=re.escape(message)):
        ImageTransform(16, num_channels=1, random_hue_prob=0.5)


def test_corrupt_image_error_names_the_file(tmp_path):
    import PIL.Image

    folder = tmp_path / "images"
    folder.mkdir()
    PIL.Image.new("RGB", (20, 20), (200, 10, 10)).save(folder / "good.png")
    (folder / "broken_scan.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    dataset = prepare_for_decoding(load_image_dataset(train_data_dir=str(folder)), "image")
    dataset = dataset.with_transform(make_preprocess_fn(ImageTransform(16), "image"))
    with pytest.raises(ValueError, match=r"Cannot decode image .*broken_scan\.png"):
        [dataset[i] for i in range(len(dataset))]


def test_missing_image_column_lists_columns(tmp_path):
    from datasets import Dataset

    with pytest.raises(ValueError, match=r"--image_column 'image' not found.*\['img', 'label'\]"):
        check_image_column(Dataset.from_dict({"img": [1], "label": [0]}), "image")


# ----------------------------------------------------------------------------- checkpoints


def _fake_checkpoint(output_dir, name, complete=True):
    path = output_dir / name
    path.mkdir()
    if complete:
        (path / COMPLETE_MARKER).write_text("{}")
    return path


def test_latest_checkpoint_skips_incomplete_and_prune_keeps_limit(tmp_path):
    for step in (2, 10, 4):
        _fake_checkpoint(tmp_path, f"checkpoint-{step}")
    _fake_checkpoint(tmp_path, "checkpoint-12", complete=False)  # crashed before the marker
    _fake_checkpoint(tmp_path, ".tmp-checkpoint-14", complete=True)  # crashed before the rename
    assert list_checkpoints(tmp_path) == ["checkpoint-2", "checkpoint-4", "checkpoint-10"]
    assert latest_checkpoint(tmp_path) == os.path.join(tmp_path, "checkpoint-10")
    with pytest.raises(ValueError, match="not a complete checkpoint"):
        resolve_resume_path(str(tmp_path), "checkpoint-12")
    removed = prune_checkpoints(tmp_path, total_limit=2)  # room for the next one: keep 1
    assert sorted(removed) == [".tmp-checkpoint-14", "checkpoint-2", "checkpoint-4"]
    assert list_checkpoints(tmp_path) == ["checkpoint-10"]
    assert resolve_resume_path(str(tmp_path / "empty"), "latest") is None


def test_push_output_dir_uploads_the_run_without_checkpoints(tmp_path, monkeypatch):
    import huggingface_hub

    calls = {}
    repo = type("Repo", (), {"repo_id": "someone/run-42"})()
    monkeypatch.setattr(
        huggingface_hub, "create_repo", lambda name, **kwargs: calls.update(name=name, **kwargs) or repo
    )
    monkeypatch.setattr(huggingface_hub, "upload_folder", lambda **kwargs: calls.update(upload=kwargs))
    output_dir = tmp_path / "run-42"
    output_dir.mkdir()
    assert push_output_dir(str(output_dir), None, "token", "VQGAN training run", ["logs/*"]) == "someone/run-42"
    assert calls["name"] == "run-42" and calls["exist_ok"] and calls["token"] == "token"
    assert calls["upload"] == {
        "repo_id": "someone/run-42",
        "folder_path": str(output_dir),
        "token": "token",
        "ignore_patterns": ["checkpoint-*", ".tmp-checkpoint-*", "logs/*"],
        "commit_message": "VQGAN training run",
    }
    push_output_dir(str(output_dir), "someone/other")
    assert calls["name"] == "someone/other"


# ----------------------------------------------------------------------------- codebook health


def test_codebook_usage_window_and_perplexity():
    tracker = CodebookUsageTracker(num_embeddings=4, window=2)
    tracker.update(torch.tensor([[0, 0], [1, 1]]))
    tracker.update(torch.tensor([0, 1, 0, 1]))
    assert tracker.metrics() == {"codebook_usage": 0.5, "codebook_perplexity": pytest.approx(2.0)}
    tracker.update(torch.tensor([2, 3, 2, 3]))
    tracker.update(torch.tensor([0, 1, 2, 3]))  # the window has dropped the first two batches
    assert tracker.metrics()["codebook_usage"] == 1.0
    assert tracker.dead_codes().tolist() == []
    restored = CodebookUsageTracker(4, 1)
    restored.load_state_dict(tracker.state_dict())
    assert torch.equal(restored.counts(), tracker.counts())


def test_reseed_dead_codes_copies_encoder_outputs_and_resets_adam_moments():
    codebook = torch.nn.Parameter(torch.zeros(6, 3))
    optimizer = torch.optim.Adam([codebook])
    codebook.grad = torch.ones_like(codebook)
    optimizer.step()
    latents = torch.arange(2 * 3 * 2 * 2, dtype=torch.float).reshape(2, 3, 2, 2)  # 8 vectors of size 3
    vectors = latents.permute(0, 2, 3, 1).reshape(-1, 3)
    dead = torch.tensor([1, 4])
    before = codebook.detach().clone()
    count = reseed_dead_codes(codebook, dead, latents, torch.Generator().manual_seed(0), optimizer)
    assert count == 2
    for row in dead.tolist():
        assert any(torch.equal(codebook.data[row], v) for v in vectors)
        assert optimizer.state[codebook]["exp_avg"][row].abs().sum() == 0
    alive = [0, 2, 3, 5]
    assert torch.equal(codebook.data[alive], before[alive])
    assert optimizer.state[codebook]["exp_avg"][alive].abs().sum() > 0


# ----------------------------------------------------------------------------- the script's defaults and its step


def _script():
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import train_vqgan
    finally:
        sys.path.remove(str(SCRIPT.parent))
    return train_vqgan


def test_defaults_train_out_of_the_box():
    script = _script()
    args = script.parse_args(["--dataset_name", "fashion_mnist"])
    assert args.scale_lr and args.learning_rate == 4.5e-6  # 7.2e-5 at batch 16, as the original scales it
    assert args.codebook_reseed_steps == 100 and args.disc_loss == "hinge"
    assert (args.seed, args.report_to) == (42, "none")  # as train_transformer.py
    assert script.gan_schedule(args, 900) == (300, 90)  # a third, a tenth of the run
    original = script.parse_args(["--dataset_name", "x", "--disc_start", "10000", "--disc_warmup_steps", "0"])
    assert (
        script.gan_schedule(original, 900) == (10000, 0)
        and not script.parse_args(["--dataset_name", "x", "--no-scale_lr"]).scale_lr
    )


def test_train_decoder_only_needs_a_trained_model_and_no_reseeding(capsys):
    script = _script()
    with pytest.raises(SystemExit):
        script.parse_args(["--dataset_name", "x", "--train_decoder_only"])
    assert "--train_decoder_only fine-tunes a trained model: pass --pretrained_model_name_or_path." in (
        capsys.readouterr().err
    )
    with pytest.raises(SystemExit):
        script.parse_args(
            ["--dataset_name", "x", "--pretrained_model_name_or_path", "m", "--train_decoder_only",
             "--codebook_reseed_steps", "25"]
        )  # fmt: skip
    assert "--codebook_reseed_steps must be 0, got 25." in capsys.readouterr().err
    with pytest.raises(SystemExit):
        script.parse_args(
            ["--dataset_name", "x", "--pretrained_model_name_or_path", "m", "--train_decoder_only",
             "--code_colour_loss_weight", "0.5"]
        )  # fmt: skip
    assert (
        "--code_colour_loss_weight trains the encoder, which --train_decoder_only freezes: it must be 0, got 0.5."
        in capsys.readouterr().err
    )
    args = script.parse_args(["--dataset_name", "x", "--pretrained_model_name_or_path", "m", "--train_decoder_only"])
    assert args.codebook_reseed_steps == 0


@needs_fashion_mnist
@pytest.mark.slow
def test_train_decoder_only_keeps_every_code_and_trains_the_decoder(tmp_path):
    first = tmp_path / "first"
    _run(_tiny_args(tmp_path, 2, disc_start=1000), first)
    tuned = tmp_path / "tuned"
    args = _tiny_args(tmp_path, 3, disc_start=1, disc_warmup_steps=0)
    config_at = args.index("--model_config_name_or_path")
    del args[config_at : config_at + 2]
    _run(args + ["--pretrained_model_name_or_path", str(first), "--train_decoder_only"], tuned)
    before, after = VQGANModel.from_pretrained(first / "vqgan"), VQGANModel.from_pretrained(tuned / "vqgan")
    after_state = after.state_dict()
    frozen = ("encoder.", "quant_conv.", "quantize.")
    frozen_names = [name for name in after_state if name.startswith(frozen)]
    assert frozen_names and all(torch.equal(before.state_dict()[name], after_state[name]) for name in frozen_names)
    decoder = [name for name in after_state if name.startswith(("decoder.", "post_quant_conv."))]
    assert any(not torch.equal(before.state_dict()[name], after_state[name]) for name in decoder)
    images = torch.rand(4, 1, 16, 16) * 2 - 1
    with torch.no_grad():
        assert torch.equal(before.encode(images).indices, after.encode(images).indices)
    assert all(r.get("codes_reseeded") is None for r in _train_log(tuned))


@pytest.mark.parametrize(
    "flag, value, message",
    [
        ("--disc_warmup_steps", "-1", "--disc_warmup_steps must be >= 0, got -1."),
        ("--codebook_reseed_steps", "-5", "--codebook_reseed_steps must be >= 0, got -5."),
        ("--logging_steps", "0", "--logging_steps must be at least 1, got 0."),
    ],
)
def test_bad_schedule_flags_are_rejected_with_the_value(flag, value, message, capsys):
    with pytest.raises(SystemExit):
        _script().parse_args(["--dataset_name", "fashion_mnist", flag, value])
    assert message in capsys.readouterr().err


def test_joint_discriminator_batch_is_one_forward_over_real_and_fake():
    script = _script()
    torch.manual_seed(0)
    disc = PatchGANDiscriminator(PatchGANDiscriminatorConfig(in_channels=1, base_channels=8, num_layers=2)).train()
    real, fake = torch.rand(4, 1, 16, 16) * 2 - 1, torch.rand(4, 1, 16, 16) * 0.1
    joint_real, joint_fake = script.discriminator_logits(disc, real, fake, joint=True)
    both = disc(torch.cat([real, fake])).logits
    assert torch.equal(joint_real, both[:4]) and torch.equal(joint_fake, both[4:])
    separate_real, separate_fake = script.discriminator_logits(disc, real, fake, joint=False)
    assert torch.equal(separate_real, disc(real).logits) and torch.equal(separate_fake, disc(fake).logits)
    assert not torch.allclose(joint_fake, separate_fake)  # BatchNorm saw other statistics
    assert script.parse_args(["--dataset_name", "x"]).disc_batch == "separate"  # the original by default


# ----------------------------------------------------------------------------- end to end


# Runs scripts/train_vqgan.py with one of its functions patched, so tests can crash or watch a run from
# outside the user script. `kill-on-save:N` SIGKILLs the process just before checkpoint-N is renamed into
# place; `trace:DIR` makes every rank append hashes of its batch and of both models' weights after each step.
PROBE = """
import hashlib, json, os, signal, sys
sys.path.insert(0, {scripts!r})
import train_vqgan
from taming_hf.training import checkpointing

def sha(tensors):
    digest = hashlib.sha1()
    for tensor in tensors:
        digest.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]

mode, _, value = sys.argv.pop(1).partition(":")
if mode == "kill-on-save":
    rename = checkpointing.os.replace
    def replace(src, dst):
        if os.path.basename(dst) == "checkpoint-" + value:
            os.kill(os.getpid(), signal.SIGKILL)
        rename(src, dst)
    checkpointing.os.replace = replace
elif mode == "trace":
    step = train_vqgan.train_step
    def traced(components, pixel_values, global_step):
        result = step(components, pixel_values, global_step)
        unwrap = components.accelerator.unwrap_model
        record = {{
            "step": global_step + 1,
            "batch": sha([pixel_values]),
            "model": sha(unwrap(components.model).parameters()),
            "discriminator": sha(unwrap(components.discriminator).parameters()),
        }}
        with open(os.path.join(value, f"rank{{components.accelerator.process_index}}.jsonl"), "a") as f:
            f.write(json.dumps(record) + "\\n")
        return result
    train_vqgan.train_step = traced
train_vqgan.main(train_vqgan.parse_args())
"""


def _run(args, output_dir, probe=None, launcher=None, check=True, timeout=300):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO / "src"), TOKENIZERS_PARALLELISM="false")
    script = [str(SCRIPT)]
    if probe is not None:
        probe_path = Path(output_dir).parent / "probe_train_vqgan.py"
        probe_path.write_text(PROBE.format(scripts=str(SCRIPT.parent)))
        script = [str(probe_path), probe]
    command = (launcher or [sys.executable]) + script + ["--output_dir", str(output_dir)] + args
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed ({result.returncode}):\n{result.stderr[-4000:]}")
    return result


def _tiny_args(tmp_path, steps, config=None, **overrides):
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(config or TINY_CONFIG))
    options = {
        "dataset_name": "fashion_mnist",
        "max_train_samples": 64,
        "resolution": 16,
        "model_config_name_or_path": str(config_path),
        "train_batch_size": 4,
        "learning_rate": 1e-3,
        "max_train_steps": steps,
        "disc_start": 3,
        "checkpointing_steps": 2,
        "validation_steps": 1000,
        "num_validation_images": 4,
        "disc_base_channels": 16,
        "disc_num_layers": 2,
        "perceptual_weight": 0,
        "report_to": "none",
        "logging_steps": 1,
        "no-scale_lr": True,
    }
    options.update(overrides)
    args = []
    for key, value in options.items():
        args += [f"--{key}"] if value is True else [f"--{key}", str(value)]
    return args


def _train_log(output_dir):
    return [json.loads(line) for line in (Path(output_dir) / "logs" / "train_log.jsonl").read_text().splitlines()]


@needs_fashion_mnist
@pytest.mark.slow
def test_reconstruction_loss_decreases_on_fashion_mnist(tmp_path):
    out = tmp_path / "run"
    args = _tiny_args(
        tmp_path, 30, train_batch_size=8, learning_rate=2e-3, max_train_samples=240, perceptual_weight=1.0,
        disc_start=1000, checkpointing_steps=1000, validation_steps=30, center_crop=True,
    )  # fmt: skip
    _run(args, out)
    log = _train_log(out)
    validation = [r for r in log if "val/psnr" in r]
    log = [r for r in log if "val/psnr" not in r]
    assert [r["step"] for r in log] == list(range(1, 31))
    assert [r["step"] for r in validation] == [30]
    assert 5 < validation[0]["val/psnr"] < 60 and 0 < validation[0]["val/ssim"] <= 1
    assert 0 < validation[0]["val/lpips"] < 1 and 0 < validation[0]["val/codebook_usage"] <= 1
    first = sum(r["rec_loss"] for r in log[:5]) / 5
    last = sum(r["rec_loss"] for r in log[-5:]) / 5
    assert last < 0.75 * first, (first, last)
    assert all(r["disc_factor"] == 0.0 and r["d_loss"] == 0.0 for r in log)  # before disc_start
    assert 0 < log[-1]["codebook_usage"] <= 1 and log[-1]["codebook_perplexity"] >= 1
    assert (out / "validation" / "step-0000030.png").exists()
    model = VQGANModel.from_pretrained(out / "vqgan")
    assert model.config.resolution == 16 and model.config.in_channels == 1
    assert isinstance(PatchGANDiscriminator.from_pretrained(out / "discriminator"), PatchGANDiscriminator)


@needs_fashion_mnist
@pytest.mark.slow
def test_code_colour_loss_is_logged_and_learned(tmp_path):
    out = tmp_path / "run"
    args = _tiny_args(
        tmp_path, 20, train_batch_size=8, learning_rate=2e-3, max_train_samples=160, disc_start=1000,
        checkpointing_steps=1000, code_colour_loss_weight=1.0,
    )  # fmt: skip
    _run(args, out)
    log = _train_log(out)
    assert [r["step"] for r in log] == list(range(1, 21))
    colour = [r["code_colour_loss"] for r in log]
    assert all(value > 0 for value in colour)
    assert sum(colour[-5:]) < 0.8 * sum(colour[:5]), colour  # the codes learn to carry each patch's colour


@needs_fashion_mnist
@pytest.mark.slow
@pytest.mark.parametrize("streaming", [False, True], ids=["map-style", "streaming"])
def test_two_processes_shard_data_and_keep_weights_identical(tmp_path, streaming):
    trace = tmp_path / "trace"
    trace.mkdir()
    launcher = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
    ]  # fmt: skip
    args = _tiny_args(tmp_path, 4, codebook_reseed_steps=2) + (["--streaming"] if streaming else [])
    _run(args, tmp_path / "run", probe=f"trace:{trace}", launcher=launcher)
    rank0 = [json.loads(line) for line in (trace / "rank0.jsonl").read_text().splitlines()]
    rank1 = [json.loads(line) for line in (trace / "rank1.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rank0] == [r["step"] for r in rank1] == [1, 2, 3, 4]
    for a, b in zip(rank0, rank1):
        assert a["batch"] != b["batch"]  # each rank gets its own shard
        assert a["model"] == b["model"] and a["discriminator"] == b["discriminator"]
    assert rank0[-1]["discriminator"] != rank0[0]["discriminator"]  # the GAN phase ran (disc_start 3)


def _checkpoint_tensors(path):
    tensors = {}
    for name in ("model.safetensors", "model_1.safetensors"):
        tensors.update({f"{name}:{k}": v for k, v in load_file(path / name).items()})
    for name in ("optimizer.bin", "optimizer_1.bin"):
        state = torch.load(path / name, weights_only=True)["state"]
        tensors.update({f"{name}:{i}:{k}": v for i, s in state.items() for k, v in s.items()})
    return tensors


@needs_fashion_mnist
@pytest.mark.slow
def test_sigkill_then_resume_latest_matches_uninterrupted_run(tmp_path):
    args = _tiny_args(tmp_path, 6, random_flip=True, use_ema=True, codebook_reseed_steps=3)
    full, killed = tmp_path / "full", tmp_path / "killed"
    _run(args, full)
    # SIGKILL while checkpoint-4 is being written: it stays a hidden temporary folder
    result = _run(args, killed, probe="kill-on-save:4", check=False)
    assert result.returncode == -9
    assert list_checkpoints(killed) == ["checkpoint-2"] and (killed / ".tmp-checkpoint-4").exists()
    resumed = _run(args + ["--resume_from_checkpoint", "latest"], killed)
    assert "Resuming from" in resumed.stderr and "checkpoint-2" in resumed.stderr

    log_full, log_resumed = _train_log(full), _train_log(killed)
    assert [r["step"] for r in log_resumed] == [1, 2, 3, 4, 3, 4, 5, 6]  # killed during step 4's save
    by_step = {r["step"]: r for r in log_resumed}  # the resumed run overwrote steps 3-4
    for record in log_full:
        assert by_step[record["step"]]["ae_loss"] == record["ae_loss"]
    a, b = _checkpoint_tensors(full / "checkpoint-6"), _checkpoint_tensors(killed / "checkpoint-6")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    # read without running pickled code; the re-seed window was just emptied by the step-6 re-seed
    for name in ("ema.pt", "codebook_usage.pt", "codebook_reseed_window.pt"):
        state_a = torch.load(full / "checkpoint-6" / name, weights_only=True)
        state_b = torch.load(killed / "checkpoint-6" / name, weights_only=True)
        flat_a = state_a.get("shadow_params") or state_a["history"]
        flat_b = state_b.get("shadow_params") or state_b["history"]
        assert len(flat_a) == len(flat_b) and all(torch.equal(x, y) for x, y in zip(flat_a, flat_b)), name
    assert not list((killed / "checkpoint-6").glob("custom_checkpoint_*"))
    rng_a = torch.load(full / "checkpoint-6" / "random_states_0.pkl", weights_only=False)
    rng_b = torch.load(killed / "checkpoint-6" / "random_states_0.pkl", weights_only=False)
    assert torch.equal(rng_a["torch_manual_seed"], rng_b["torch_manual_seed"])
    ema_a, ema_b = load_file(full / "vqgan" / "model.safetensors"), load_file(killed / "vqgan" / "model.safetensors")
    assert all(torch.equal(ema_a[k], ema_b[k]) for k in ema_a)


@needs_fashion_mnist
@pytest.mark.slow
def test_non_finite_loss_stops_with_a_clear_error(tmp_path):
    args = _tiny_args(tmp_path, 3, learning_rate="inf", checkpointing_steps=1000)
    result = _run(args, tmp_path / "run", check=False)
    assert result.returncode != 0
    assert "Non-finite loss at step" in result.stderr
