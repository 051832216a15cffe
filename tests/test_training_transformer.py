"""Training the latent prior: data pieces (unit) and `scripts/train_transformer.py` end to end (CPU, tiny).

The end-to-end runs encode a few hundred real Fashion-MNIST images (16 px) with a tiny random VQGAN
(32 codes, 8x8 grid) and train a 2-layer, 64-wide GPT2 prior for a few dozen steps.
"""

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import GPT2LMHeadModel

from taming_hf import VQGANConfig, VQGANImageProcessor, VQGANModel
from taming_hf.pipelines.taming import TamingPipeline, TokenLayout
from taming_hf.training.prior_data import (
    PriorDataCollator,
    build_prefix,
    corrupt_inputs,
    encode_dataset,
    make_token_order,
)
from taming_hf.training.prior_trainer import build_prior_config, linear_weight_names

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "train_transformer.py"
FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
needs_fashion_mnist = pytest.mark.skipif(
    not (FASHION_MNIST / "train-images-idx3-ubyte.gz").exists(), reason="Fashion-MNIST IDX files not installed"
)

CLASS_LAYOUT = TokenLayout.build("class", num_image_codes=32, num_condition_tokens=10, with_null_class=True)


def tiny_vqgan() -> VQGANModel:
    torch.manual_seed(0)
    config = VQGANConfig(
        embed_dim=8,
        num_embeddings=32,
        latent_channels=8,
        resolution=16,
        in_channels=1,
        base_channels=32,
        channel_multiplier=[1, 2],
        num_res_blocks=1,
        attn_resolutions=[],
    )
    return VQGANModel(config).eval()


# ----------------------------------------------------------------------------------------------
# Unit tests
# ----------------------------------------------------------------------------------------------


def test_collator_builds_prefix_and_masks_it():
    indices = torch.arange(2 * 2 * 3).reshape(2, 2, 3) % 32
    features = [{"indices": indices[0], "class_labels": 3}, {"indices": indices[1], "class_labels": 9}]
    batch = PriorDataCollator(CLASS_LAYOUT)(features)
    assert batch["input_ids"].shape == batch["labels"].shape == (2, 7)
    assert batch["input_ids"][:, 0].tolist() == [32 + 3, 32 + 9]  # class tokens at offset K
    assert batch["labels"][:, 0].tolist() == [-100, -100]
    assert torch.equal(batch["labels"][:, 1:], indices.reshape(2, -1))
    assert torch.equal(batch["input_ids"][:, 1:], indices.reshape(2, -1))


def test_collator_token_order_matches_pipeline_convention():
    order = make_token_order("random", 2, 3, seed=1)
    indices = torch.tensor([[[10, 11, 12], [13, 14, 15]]])
    batch = PriorDataCollator(TokenLayout.build("unconditional", 32), order)([{"indices": indices[0]}])
    assert batch["input_ids"][0, 0].item() == 32  # SOS right after the image codes
    codes = batch["labels"][0, 1:]
    assert codes.tolist() == [10 + position for position in order]  # sequence i holds raster cell order[i]
    restored = torch.empty_like(codes)
    restored[torch.tensor(order)] = codes
    assert restored.tolist() == list(range(10, 16))


def test_token_orders_are_permutations():
    assert make_token_order("raster", 2, 2) == [0, 1, 2, 3]
    assert make_token_order("zcurve", 4, 4)[:8] == [0, 1, 4, 5, 2, 3, 6, 7]
    assert sorted(make_token_order("random", 4, 4)) == list(range(16))
    with pytest.raises(ValueError, match="token order"):
        make_token_order("spiral", 4, 4)


def test_prefix_rejects_out_of_range_labels():
    with pytest.raises(ValueError, match="class label of 10"):
        build_prefix(CLASS_LAYOUT, 1, class_labels=torch.tensor([10]))


def test_class_dropout_and_pkeep_touch_inputs_only():
    generator = torch.Generator().manual_seed(0)
    input_ids = torch.cat([torch.full((4000, 1), 32 + 5), torch.randint(0, 32, (4000, 16))], dim=1)
    labels = input_ids.clone()
    labels[:, 0] = -100
    corrupted = corrupt_inputs(input_ids, labels, CLASS_LAYOUT, 0.25, pkeep=0.5, generator=generator)
    dropped = (corrupted[:, 0] == CLASS_LAYOUT.null_class_token_id).float().mean().item()
    assert abs(dropped - 0.25) < 0.03
    assert set(corrupted[:, 0].tolist()) == {37, CLASS_LAYOUT.null_class_token_id}
    changed = (corrupted[:, 1:] != input_ids[:, 1:]).float().mean().item()
    assert abs(changed - 0.5 * 31 / 32) < 0.02  # replaced w.p. 1 - pkeep; a random code can equal the old one
    assert int(corrupted[:, 1:].max()) < 32  # replacements are image codes
    assert torch.equal(labels[:, 1:], input_ids[:, 1:])  # targets untouched


def test_class_dropout_needs_null_class():
    layout = TokenLayout.build("class", 32, 10, with_null_class=False)
    with pytest.raises(ValueError, match="null_class_token_id"):
        corrupt_inputs(torch.zeros(1, 3, dtype=torch.long), torch.zeros(1, 3, dtype=torch.long), layout, 0.1)


def test_decay_applies_to_linear_weights_only():
    model = GPT2LMHeadModel(build_prior_config(CLASS_LAYOUT, 17, n_layer=2, n_head=2, n_embd=32))
    names = set(linear_weight_names(model))
    assert "transformer.h.0.attn.c_attn.weight" in names and "lm_head.weight" in names
    assert not any("wte" in n or "wpe" in n or "ln_" in n or n.endswith("bias") for n in names)
    assert len(names) == 2 * 4 + 1
    assert model.config.vocab_size == 43 and model.config.n_positions == 17


def test_prior_trainer_corrupts_training_batches_only(tmp_path):
    import datasets
    from transformers import TrainingArguments

    from taming_hf.training.prior_trainer import PriorTrainer

    torch.manual_seed(0)
    codes = datasets.Dataset.from_dict(
        {"indices": torch.randint(0, 32, (8, 2, 2)).tolist(), "class_labels": list(range(8))}
    )
    model = GPT2LMHeadModel(build_prior_config(CLASS_LAYOUT, 5, n_layer=1, n_head=2, n_embd=32))
    args = TrainingArguments(
        output_dir=str(tmp_path), per_device_eval_batch_size=8, report_to="none", use_cpu=True,
        remove_unused_columns=False, weight_decay=0.01, adam_beta1=0.9, adam_beta2=0.95,
    )  # fmt: skip
    collator = PriorDataCollator(CLASS_LAYOUT)
    trainer = PriorTrainer(
        model=model, args=args, eval_dataset=codes, data_collator=collator,
        layout=CLASS_LAYOUT, class_dropout_prob=1.0, pkeep=0.01,
    )  # fmt: skip
    metrics = trainer.evaluate()
    with torch.no_grad():
        clean_loss = model.eval()(**collator([codes[i] for i in range(8)])).loss.item()
    assert metrics["eval_loss"] == pytest.approx(clean_loss, rel=1e-5)  # no corruption at evaluation
    assert metrics["eval_bits_per_token"] == pytest.approx(clean_loss / math.log(2), rel=1e-5)
    batch = collator([codes[i] for i in range(8)])
    model.train()
    corrupted_loss = trainer.compute_loss(model, batch).item()
    assert corrupted_loss != pytest.approx(clean_loss, rel=1e-3)  # training batches are corrupted
    optimizer = trainer.create_optimizer()
    decayed = {id(p) for group in optimizer.param_groups if group["weight_decay"] == 0.01 for p in group["params"]}
    assert decayed == {id(p) for n, p in model.named_parameters() if n in linear_weight_names(model)}
    assert optimizer.defaults["betas"] == (0.9, 0.95)


def test_encode_dataset_caches_and_resumes(tmp_path):
    import datasets
    import numpy as np
    import PIL.Image

    images = [PIL.Image.fromarray(np.full((16, 16), 20 * i, dtype=np.uint8)) for i in range(10)]
    dataset = datasets.Dataset.from_dict({"image": images, "label": list(range(10))}).cast_column(
        "image", datasets.Image()
    )
    vqgan, processor = tiny_vqgan(), VQGANImageProcessor(resolution=16, num_channels=1)
    kwargs = dict(label_column="label", batch_size=4, cache_dir=str(tmp_path), shard_size=4)
    codes = encode_dataset(dataset, vqgan, processor, **kwargs)
    assert codes.column_names == ["indices", "class_labels"] and len(codes) == 10
    expected = vqgan.encode(processor(dataset[:3]["image"], return_tensors="pt")["pixel_values"]).indices
    assert np.array_equal(np.asarray(codes[:3]["indices"]), expected.numpy())
    shards = sorted(os.listdir(tmp_path))
    assert len(shards) == 3 and shards[0].endswith("-00000-of-00003.arrow")
    os.remove(tmp_path / shards[1])  # an interrupted encode: only the missing shard is redone
    again = encode_dataset(dataset, vqgan, processor, **kwargs)
    assert again["class_labels"] == list(range(10)) and len(os.listdir(tmp_path)) == 3


# ----------------------------------------------------------------------------------------------
# End to end: scripts/train_transformer.py
# ----------------------------------------------------------------------------------------------

TINY_RUN = [
    "--dataset_name", "fashion_mnist",
    "--max_train_samples", "512",
    "--max_eval_samples", "128",
    "--n_layer", "2", "--n_head", "2", "--n_embd", "64",
    "--train_batch_size", "32",
    "--learning_rate", "1e-3",
    "--lr_scheduler", "constant",
    "--logging_steps", "5",
    "--num_validation_images", "4",
]  # fmt: skip


def run_script(args, launcher=None, timeout=240):
    env = dict(os.environ, PYTHONPATH=f"{REPO / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    env.update(OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false", HF_DATASETS_DISABLE_PROGRESS_BARS="1")
    command = (launcher or [sys.executable]) + [str(SCRIPT)] + [str(a) for a in args]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return result


def logged_losses(output_dir) -> dict:
    state = json.loads((Path(output_dir) / "trainer_state.json").read_text())
    return {entry["step"]: entry["loss"] for entry in state["log_history"] if "loss" in entry}


@pytest.fixture(scope="module")
def vqgan_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("vqgan")
    tiny_vqgan().save_pretrained(path)
    VQGANImageProcessor(resolution=16, num_channels=1).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def class_run(vqgan_dir, tmp_path_factory):
    """40 steps of a class-conditional prior with class dropout and pkeep; checkpoints at 20 and 40."""
    output_dir = tmp_path_factory.mktemp("class_run")
    args = TINY_RUN + ["--vqgan_model_name_or_path", vqgan_dir, "--output_dir", output_dir]
    args += ["--conditioning", "class", "--class_dropout_prob", "0.1", "--pkeep", "0.95"]
    args += ["--max_train_steps", "40", "--checkpointing_steps", "20", "--validation_steps", "20"]
    args += ["--sample_top_k", "16", "--sample_guidance_scale", "2.0"]
    run_script(args)
    return output_dir


@pytest.mark.slow
@needs_fashion_mnist
def test_loss_decreases_on_fashion_mnist_codes(class_run):
    losses = logged_losses(class_run)
    assert sorted(losses) == [1, 5, 10, 15, 20, 25, 30, 35, 40]
    assert losses[1] > math.log(32) - 0.5  # starts near uniform over the 32 codes (3.47 nats)
    assert losses[40] < losses[1] - 0.8, losses
    metrics = json.loads((class_run / "eval_results.json").read_text())
    assert metrics["eval_loss"] < 2.8
    assert metrics["eval_bits_per_token"] == pytest.approx(metrics["eval_loss"] / math.log(2))
    assert (class_run / "samples" / "step-0000020.png").exists()


@pytest.mark.slow
@needs_fashion_mnist
def test_saved_pipeline_loads_and_samples(class_run):
    pipeline = TamingPipeline.from_pretrained(class_run)
    assert pipeline.config.conditioning == "class"
    assert pipeline.config.null_class_token_id == 42 and pipeline.config.num_condition_tokens == 10
    assert pipeline.config.id2label[9] == "Ankle boot"
    assert isinstance(pipeline.transformer, GPT2LMHeadModel) and pipeline.transformer.config.n_positions == 65
    generator = torch.Generator().manual_seed(0)
    config = pipeline.transformer.generation_config  # --sample_* flags: the saved recommended settings
    assert (config.do_sample, config.top_k, config.guidance_scale) == (True, 16, 2.0)
    output = pipeline(class_labels=[0, 7], generator=generator, output_type="np")
    assert output.images.shape == (2, 16, 16, 1)
    assert output.indices.shape == (2, 8, 8) and int(output.indices.max()) < 32


@pytest.mark.slow
@needs_fashion_mnist
def test_resume_continues_at_the_same_step_with_the_same_losses(class_run, vqgan_dir, tmp_path):
    shutil.copytree(class_run / "checkpoint-20", tmp_path / "checkpoint-20")
    shutil.copytree(class_run / "codes_cache", tmp_path / "codes_cache")
    # Mark the checkpoint's history: a run that resumes keeps it, a run that starts over rewrites it.
    state_file = tmp_path / "checkpoint-20" / "trainer_state.json"
    state = json.loads(state_file.read_text())
    next(entry for entry in state["log_history"] if entry.get("step") == 5)["loss"] = 999.0
    state_file.write_text(json.dumps(state))
    args = TINY_RUN + ["--vqgan_model_name_or_path", vqgan_dir, "--output_dir", tmp_path]
    args += ["--conditioning", "class", "--class_dropout_prob", "0.1", "--pkeep", "0.95"]
    args += ["--max_train_steps", "40", "--checkpointing_steps", "20", "--validation_steps", "20"]
    run_script(args + ["--resume_from_checkpoint", "latest"])
    resumed, uninterrupted = logged_losses(tmp_path), logged_losses(class_run)
    assert resumed[5] == 999.0  # steps 1-20 were not run again
    for step in (25, 30, 35, 40):
        assert resumed[step] == pytest.approx(uninterrupted[step], abs=2e-3), (step, resumed, uninterrupted)
    assert (tmp_path / "checkpoint-40").exists() and (tmp_path / "model_index.json").exists()


@pytest.mark.slow
@needs_fashion_mnist
def test_two_process_run(vqgan_dir, tmp_path):
    launcher = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2"]
    launcher += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    launcher += ["--main_process_port", "29517"]
    args = TINY_RUN + ["--vqgan_model_name_or_path", vqgan_dir, "--output_dir", tmp_path]
    args += ["--conditioning", "unconditional", "--token_order", "zcurve", "--pkeep", "0.9"]
    args += ["--max_train_samples", "256", "--max_train_steps", "8", "--checkpointing_steps", "8"]
    args += ["--validation_steps", "8", "--train_batch_size", "16"]
    run_script(args, launcher=launcher)
    state = json.loads((tmp_path / "trainer_state.json").read_text())
    assert state["global_step"] == 8
    assert state["log_history"][-1]["epoch"] == pytest.approx(1.0)  # 8 steps x 16 x 2 processes = 256 images
    pipeline = TamingPipeline.from_pretrained(tmp_path)
    assert pipeline.config.token_order == make_token_order("zcurve", 8, 8)
    output = pipeline(batch_size=2, generator=torch.Generator().manual_seed(0), output_type="np")
    assert output.images.shape == (2, 16, 16, 1)


def load_script_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("train_transformer", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_image_folder_class_subfolders_become_labels(tmp_path):
    import PIL.Image

    for name in ("boots", "coats"):
        (tmp_path / name).mkdir()
        for i in range(5):
            PIL.Image.new("L", (20, 20), color=40 * i).save(tmp_path / name / f"{i}.png")
    script = load_script_module()
    args = script.parse_args(["--vqgan_model_name_or_path", "x", "--train_data_dir", str(tmp_path)])
    args.validation_fraction = 0.2
    train, held_out = script.load_splits(args)
    assert len(train) == 8 and len(held_out) == 2
    label_column = script.find_label_column(train)
    assert label_column == "label"
    assert script.class_names(train, label_column) == (2, {0: "boots", 1: "coats"})
    assert script.resolve_conditioning(args, label_column) == "class"


@pytest.mark.slow
@needs_fashion_mnist
def test_spatial_conditioning_run(tmp_path):
    """A second VQGAN encodes condition images (here: the image's 2x2 mean-pooled, upsampled copy)."""
    import datasets
    import PIL.Image

    from taming_hf.training.data import load_fashion_mnist

    fashion = load_fashion_mnist("train", str(FASHION_MNIST), max_samples=96)
    images = [image.resize((16, 16)) for image in fashion["image"]]
    conditions = [image.resize((8, 8)).resize((16, 16), PIL.Image.NEAREST) for image in images]
    features = datasets.Features({"image": datasets.Image(), "condition": datasets.Image()})
    data = datasets.Dataset.from_dict({"image": images, "condition": conditions}, features=features)
    datasets.DatasetDict({"train": data}).save_to_disk(tmp_path / "data")
    tiny_vqgan().save_pretrained(tmp_path / "vqgan")
    condition_vqgan = tiny_vqgan()
    condition_vqgan.config.num_embeddings = 32
    condition_vqgan.save_pretrained(tmp_path / "condition_vqgan")
    for name in ("vqgan", "condition_vqgan"):
        VQGANImageProcessor(resolution=16, num_channels=1).save_pretrained(tmp_path / name)
    args = ["--dataset_name", tmp_path / "data", "--image_column", "image", "--validation_fraction", "0.25"]
    args += ["--vqgan_model_name_or_path", tmp_path / "vqgan", "--output_dir", tmp_path / "out"]
    args += ["--condition_vqgan_model_name_or_path", tmp_path / "condition_vqgan"]
    args += ["--condition_image_column", "condition", "--n_layer", "1", "--n_head", "2", "--n_embd", "32"]
    args += ["--train_batch_size", "8", "--max_train_steps", "6", "--validation_steps", "6"]
    args += ["--checkpointing_steps", "6", "--num_validation_images", "2", "--learning_rate", "1e-3"]
    run_script(args)
    pipeline = TamingPipeline.from_pretrained(tmp_path / "out")
    assert pipeline.config.conditioning == "spatial" and pipeline.condition_vqgan is not None
    assert pipeline.transformer.config.n_positions == 64 + 64  # condition grid prefix + image grid
    assert (tmp_path / "out" / "samples" / "step-0000006.png").exists()


def test_vqgan_loads_from_the_vqgan_script_output_folder(tmp_path):
    tiny_vqgan().save_pretrained(tmp_path / "vqgan")  # what scripts/train_vqgan.py writes
    VQGANImageProcessor(resolution=16, num_channels=1).save_pretrained(tmp_path / "vqgan")
    script = load_script_module()
    vqgan, processor = script.load_vqgan(str(tmp_path), None, "cpu")
    assert vqgan.config.num_embeddings == 32 and not any(p.requires_grad for p in vqgan.parameters())
    assert processor.num_channels == 1 and processor.crop_size["height"] == 16
    _, resized = script.load_vqgan(str(tmp_path), 32, "cpu")
    assert resized.crop_size["height"] == 32 and resized.size["shortest_edge"] == 32
