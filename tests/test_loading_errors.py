"""Loading from disk fails with errors that name the path and say what was expected (CPU, tiny models).

`VQGANModel.from_pretrained`, `TamingPipeline.from_pretrained` and resuming a training checkpoint:
a local folder that does not exist, a folder without `config.json`, corrupt or truncated safetensors.
"""

import os
import re
import shutil
from pathlib import Path

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from taming_hf import TamingPipeline, VQGANConfig, VQGANModel
from taming_hf.utils.loading import component_folder, missing_local_path_message

NOT_A_FOLDER = "is neither an existing folder nor a valid Hub repo id"


def tiny_vqgan() -> VQGANModel:
    torch.manual_seed(0)
    config = VQGANConfig(
        embed_dim=4,
        num_embeddings=16,
        latent_channels=4,
        resolution=16,
        in_channels=1,
        out_channels=1,
        base_channels=32,
        channel_multiplier=[1, 1],
        num_res_blocks=1,
        attn_resolutions=[],
    )
    return VQGANModel(config).eval()


@pytest.fixture(scope="module")
def vqgan_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("vqgan")
    tiny_vqgan().save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def pipeline_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("pipeline")
    gpt = GPT2LMHeadModel(GPT2Config(vocab_size=17, n_positions=20, n_embd=16, n_layer=1, n_head=2, bos_token_id=16))
    gpt.config.eos_token_id = gpt.config.pad_token_id = 16
    TamingPipeline(tiny_vqgan(), gpt.eval()).save_pretrained(path)
    return path


def copy_of(folder, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    return copy


def truncate(path, keep: float = 0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


# ------------------------------------------------------------------------- paths that do not exist


@pytest.mark.parametrize(
    "name",
    ["{tmp}/missing", "./missing-model", "~/missing-model-xyz", "a/b/c", "path:missing-model"],
    ids=["absolute", "dot", "tilde", "two-slashes", "pathlike"],
)
def test_vqgan_from_pretrained_rejects_missing_local_folder(tmp_path, name):
    name = name.format(tmp=tmp_path)
    argument = Path(name[len("path:") :]) if name.startswith("path:") else name
    expected = f"pretrained_model_name_or_path {os.fspath(argument)!r} {NOT_A_FOLDER}"
    with pytest.raises(FileNotFoundError, match=re.escape(expected)):
        VQGANModel.from_pretrained(argument)


def test_missing_folder_under_an_existing_one_is_read_as_a_local_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "outputs").mkdir()
    with pytest.raises(FileNotFoundError, match="read as a local path because .*outputs exists"):
        VQGANModel.from_pretrained("outputs/vqgan")


def test_missing_folder_message_names_the_closest_existing_folder(tmp_path):
    message = missing_local_path_message(str(tmp_path / "a" / "b"))
    assert message.endswith(f"no folder {tmp_path / 'a' / 'b'} (closest existing folder: {tmp_path}).")


def test_valid_repo_id_still_goes_to_the_hub(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no local folder named like the namespace
    assert missing_local_path_message("someone/some-vqgan") is None
    with pytest.raises(OSError) as raised:  # transformers' own offline / not-cached error
        VQGANModel.from_pretrained("someone/some-vqgan", local_files_only=True)
    assert NOT_A_FOLDER not in str(raised.value)


def test_pipeline_from_pretrained_rejects_missing_local_folder(tmp_path):
    for name in (str(tmp_path / "missing"), "./missing-pipeline"):
        with pytest.raises(FileNotFoundError, match=re.escape(f"{name!r} {NOT_A_FOLDER}")):
            TamingPipeline.from_pretrained(name)


# ------------------------------------------------------------------------- folders without config.json


def test_vqgan_from_pretrained_rejects_folder_without_config(vqgan_dir, tmp_path):
    folder = copy_of(vqgan_dir, tmp_path)
    os.remove(folder / "config.json")
    with pytest.raises(OSError, match=re.escape(f"{folder} has no config.json; expected a VQGANModel folder")):
        VQGANModel.from_pretrained(folder)


def test_vqgan_from_pretrained_on_a_pipeline_folder_points_to_its_subfolder(pipeline_dir):
    with pytest.raises(OSError, match=r"has no config.json.*pipeline folder.*\['transformer', 'vqgan'\]"):
        VQGANModel.from_pretrained(pipeline_dir)
    assert VQGANModel.from_pretrained(pipeline_dir, subfolder="vqgan").config.num_embeddings == 16


def test_pipeline_from_pretrained_rejects_component_without_config(pipeline_dir, tmp_path):
    folder = copy_of(pipeline_dir, tmp_path)
    os.remove(folder / "transformer" / "config.json")
    expected = f"{folder / 'transformer'} has no config.json; expected a GPT2LMHeadModel folder"
    with pytest.raises(OSError, match=re.escape(expected)):
        TamingPipeline.from_pretrained(folder)


# ------------------------------------------------------------------------- corrupt safetensors


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_vqgan_from_pretrained_names_unreadable_safetensors(vqgan_dir, tmp_path, damage):
    folder = copy_of(vqgan_dir, tmp_path)
    weights = folder / "model.safetensors"
    truncate(weights) if damage == "truncated" else weights.write_bytes(b"not a safetensors file")
    with pytest.raises(OSError, match=re.escape(f"{weights} is not a readable safetensors file")):
        VQGANModel.from_pretrained(folder)


@pytest.mark.parametrize("component", ["vqgan", "transformer"])
def test_pipeline_from_pretrained_names_truncated_safetensors(pipeline_dir, tmp_path, component):
    folder = copy_of(pipeline_dir, tmp_path)
    truncate(folder / component / "model.safetensors")
    expected = f"{folder / component / 'model.safetensors'} is not a readable safetensors file"
    with pytest.raises(OSError, match=re.escape(expected) + ".*corrupt or truncated"):
        TamingPipeline.from_pretrained(folder)


def test_load_checkpoint_names_truncated_model_safetensors(tmp_path):
    """train_vqgan.py resumes through `load_checkpoint`; Accelerate's `load_state` reads model.safetensors."""
    from accelerate import Accelerator

    from taming_hf.training.checkpointing import load_checkpoint, save_checkpoint

    accelerator = Accelerator(cpu=True)
    accelerator.prepare(torch.nn.Linear(4, 4))
    path = save_checkpoint(accelerator, str(tmp_path), 3)
    assert load_checkpoint(accelerator, path) == 3
    truncate(tmp_path / "checkpoint-3" / "model.safetensors", keep=0.9)
    expected = f"{os.path.join(path, 'model.safetensors')} is not a readable safetensors file"
    with pytest.raises(OSError, match=re.escape(expected)):
        load_checkpoint(accelerator, path)


def test_component_folder_finds_the_first_existing_sub_folder(tmp_path):
    (tmp_path / "run" / "vqgan").mkdir(parents=True)
    (tmp_path / "pipe" / "condition_vqgan").mkdir(parents=True)
    (tmp_path / "pipe" / "vqgan").mkdir()
    assert component_folder(tmp_path / "run") == os.path.join(tmp_path / "run", "vqgan")
    assert component_folder(tmp_path / "pipe", ("condition_vqgan", "vqgan")) == os.path.join(
        tmp_path / "pipe", "condition_vqgan"
    )
    assert component_folder(str(tmp_path / "run" / "vqgan")) == str(tmp_path / "run" / "vqgan")  # a model folder
    assert component_folder("someone/vqgan-repo") == "someone/vqgan-repo"  # a Hub id is left to from_pretrained
