"""Parity of converted original checkpoints, and the safety of reading them.

Checkpoints are built here with random weights from the original implementation's own modules
(test-only dependency `taming-transformers-rom1504`), saved the way Lightning saves them, run
through the converter, and compared output for output with the original.
"""

import os
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch
import yaml

from taming_hf import VQGANModel
from taming_hf.conversion.cli import main as convert_main
from taming_hf.testing_utils import import_original_taming

REPO_ROOT = Path(__file__).resolve().parents[1]
TINY_DDCONFIG = {
    "double_z": False,
    "z_channels": 8,
    "resolution": 16,
    "in_channels": 3,
    "out_ch": 3,
    "ch": 32,
    "ch_mult": [1, 2],
    "num_res_blocks": 1,
    "attn_resolutions": [8],
    "dropout": 0.0,
}
DUMMY_LOSS = {"target": "taming.modules.losses.vqperceptual.DummyLoss"}


def relative_error(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    return ((ours - theirs).abs().max() / theirs.abs().max()).item()


def lightning_checkpoint(state_dict, **extra):
    """What a Lightning `.ckpt` holds besides the weights: optimizer states, counters, hparams."""
    first = next(iter(state_dict.values()))
    return {
        "epoch": 7,
        "global_step": 1234,
        "pytorch-lightning_version": "1.0.8",
        "state_dict": state_dict,
        "optimizer_states": [{"state": {0: {"exp_avg": torch.zeros_like(first)}}, "param_groups": [{"lr": 1e-4}]}],
        "lr_schedulers": [],
        **extra,
    }


def save_yaml(path: Path, target: str, params: dict) -> Path:
    path.write_text(yaml.safe_dump({"model": {"base_learning_rate": 4.5e-6, "target": target, "params": params}}))
    return path


def original_vqgan(gumbel: bool = False, seed: int = 0):
    """A tiny original VQModel / GumbelVQ with a codebook spread over the latents' range."""
    torch.manual_seed(seed)
    vqgan = import_original_taming("taming.models.vqgan")
    params = {"ddconfig": TINY_DDCONFIG, "lossconfig": DUMMY_LOSS, "n_embed": 16, "embed_dim": 8}
    if gumbel:
        schedule = {
            "target": "taming.lr_scheduler.LambdaWarmUpCosineScheduler",
            "params": {"warm_up_steps": 0, "max_decay_steps": 10, "lr_start": 1.0, "lr_max": 1.0, "lr_min": 1.0},
        }
        params.update(temperature_scheduler_config=schedule, kl_weight=1e-8)
        model = vqgan.GumbelVQ(**params)
        with torch.no_grad():
            model.quantize.embed.weight.normal_()
    else:
        model = vqgan.VQModel(**params)
        with torch.no_grad():
            model.quantize.embedding.weight.normal_(std=0.5)
    target = "taming.models.vqgan.GumbelVQ" if gumbel else "taming.models.vqgan.VQModel"
    return model.eval(), target, params


def tiny_discriminator_state():
    discriminator = import_original_taming("taming.modules.discriminator.model").NLayerDiscriminator(
        input_nc=3, ndf=16, n_layers=2
    )
    return {f"loss.discriminator.{k}": v for k, v in discriminator.state_dict().items()}


def save_vqgan_checkpoint(tmp_path: Path, gumbel: bool = False, with_training_state: bool = True):
    model, target, params = original_vqgan(gumbel)
    state = dict(model.state_dict())
    if with_training_state:
        state.update(tiny_discriminator_state())
        state["loss.perceptual_loss.lin0.model.1.weight"] = torch.randn(1, 64, 1, 1)
    ckpt = tmp_path / "vqgan.ckpt"
    torch.save(lightning_checkpoint(state), ckpt)
    return model, ckpt, save_yaml(tmp_path / "vqgan.yaml", target, params)


def original_codes(model, pixels, gumbel):
    """The original's (indices, reconstruction). GumbelVQ samples Gumbel noise even in eval, so
    its deterministic code, the argmax of its `proj` logits, is decoded with its own modules."""
    with torch.no_grad():
        if not gumbel:
            quant, _, (_, _, indices) = model.encode(pixels)
            return indices.reshape(pixels.shape[0], -1), model.decode(quant)
        indices = model.quantize.proj(model.encode_to_prequant(pixels)).argmax(1)
        quant = model.quantize.embed(indices).permute(0, 3, 1, 2)
        return indices.flatten(1), model.decode(quant)


@pytest.mark.parametrize("gumbel", [False, True], ids=["VQModel", "GumbelVQ"])
@pytest.mark.parametrize("use_yaml", [True, False], ids=["yaml", "inferred"])
def test_vqgan_parity(tmp_path, gumbel, use_yaml):
    original, ckpt, config = save_vqgan_checkpoint(tmp_path, gumbel)
    out = tmp_path / "converted"
    argv = ["--checkpoint", str(ckpt), "--output_dir", str(out)]
    argv += ["--config", str(config)] if use_yaml else ["--resolution", "16"]
    assert convert_main(argv) == 0

    ours = VQGANModel.from_pretrained(out).eval()
    assert ours.config.legacy_beta and ours.config.quantizer_type == ("gumbel" if gumbel else "vector")
    pixels = torch.rand(2, 3, 16, 16) * 2 - 1
    indices, reconstruction = original_codes(original, pixels, gumbel)
    with torch.no_grad():
        encoded = ours.encode(pixels)
        ours_reconstruction = ours.decode(encoded.quantized)
    assert torch.equal(encoded.indices.flatten(1), indices)
    assert len(indices.unique()) > 1  # the comparison is not trivially about one code
    assert relative_error(ours_reconstruction, reconstruction) < 1e-5
    assert relative_error(ours.decode_indices(encoded.indices), reconstruction) < 1e-5


def test_keep_discriminator_writes_weights_and_config(tmp_path):
    _, ckpt, config = save_vqgan_checkpoint(tmp_path)
    out = tmp_path / "converted"
    assert (
        convert_main(
            ["--checkpoint", str(ckpt), "--config", str(config), "--output_dir", str(out), "--keep_discriminator"]
        )
        == 0
    )
    from safetensors.torch import load_file

    weights = load_file(out / "discriminator" / "model.safetensors")
    expected = {k[len("loss.discriminator.") :]: v for k, v in tiny_discriminator_state().items()}
    assert set(weights) == set(expected)
    described = yaml.safe_load((out / "discriminator" / "config.json").read_text())
    assert (described["in_channels"], described["base_channels"], described["num_layers"]) == (3, 16, 2)


def test_key_accounting_is_printed_and_unknown_keys_fail(tmp_path, capsys):
    model, ckpt, config = save_vqgan_checkpoint(tmp_path)
    assert convert_main(["--checkpoint", str(ckpt), "--config", str(config), "--output_dir", str(tmp_path / "a")]) == 0
    printed = capsys.readouterr().out
    assert "used" in printed and "dropped on purpose" in printed and "loss.perceptual_loss" in printed

    state = dict(model.state_dict(), **{"mystery.weight": torch.zeros(3)})
    torch.save({"state_dict": state}, tmp_path / "odd.ckpt")
    assert convert_main(["--checkpoint", str(tmp_path / "odd.ckpt"), "--output_dir", str(tmp_path / "b")]) == 1
    assert "mystery.weight" in capsys.readouterr().err


def test_not_a_taming_checkpoint_lists_expected_keys(tmp_path, capsys):
    torch.save({"state_dict": {"bert.embeddings.weight": torch.zeros(2, 2)}}, tmp_path / "bert.ckpt")
    assert convert_main(["--checkpoint", str(tmp_path / "bert.ckpt"), "--output_dir", str(tmp_path / "o")]) == 1
    error = capsys.readouterr().err
    assert "not a taming-transformers checkpoint" in error
    assert "encoder.conv_in.weight" in error and "transformer.tok_emb.weight" in error

    (tmp_path / "text.ckpt").write_text("hello")
    assert convert_main(["--checkpoint", str(tmp_path / "text.ckpt"), "--output_dir", str(tmp_path / "o")]) == 1
    assert "not a PyTorch zip checkpoint" in capsys.readouterr().err


# ---------------------------------------------------------------- pickle safety


class _Unimportable:
    """Pickled under a module name that does not exist when the checkpoint is read."""

    def __init__(self):
        self.lr = 4.5e-6
        self.layers = [1, 2]


class _RunsACommand:
    """A `__reduce__` that would create `marker` if the pickle were executed."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_foreign_class_in_pickle_becomes_placeholder_and_converts(tmp_path):
    module = types.ModuleType("not_installed_anywhere")
    _Unimportable.__module__ = module.__name__
    module._Unimportable = _Unimportable
    sys.modules[module.__name__] = module
    try:
        model, _, _ = original_vqgan()
        torch.save(lightning_checkpoint(model.state_dict(), hyper_parameters=_Unimportable()), tmp_path / "f.ckpt")
    finally:
        del sys.modules[module.__name__]

    from taming_hf.conversion import PickledObjectPlaceholder, load_checkpoint_safely

    loaded = load_checkpoint_safely(str(tmp_path / "f.ckpt"))
    assert isinstance(loaded.content["hyper_parameters"], PickledObjectPlaceholder)
    assert "not_installed_anywhere._Unimportable" in loaded.foreign_globals
    out = tmp_path / "out"
    assert (
        convert_main(["--checkpoint", str(tmp_path / "f.ckpt"), "--output_dir", str(out), "--resolution", "16"]) == 0
    )
    assert (out / "model.safetensors").exists()


def test_reduce_payload_is_never_executed(tmp_path):
    marker = tmp_path / "pwned"
    model, _, _ = original_vqgan()
    ckpt = tmp_path / "evil.ckpt"
    torch.save(lightning_checkpoint(model.state_dict(), callbacks={"x": _RunsACommand(marker)}), ckpt)
    assert not marker.exists()

    out = tmp_path / "out"
    assert convert_main(["--checkpoint", str(ckpt), "--output_dir", str(out), "--resolution", "16"]) == 0
    assert not marker.exists()
    assert (out / "model.safetensors").exists()


def test_script_end_to_end(tmp_path):
    _, ckpt, config = save_vqgan_checkpoint(tmp_path)
    out = tmp_path / "converted"
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    result = subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "scripts" / "convert_original_checkpoint.py"),
            "--checkpoint",
            str(ckpt),
            "--config",
            str(config),
            "--output_dir",
            str(out),
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert (out / "config.json").exists() and (out / "preprocessor_config.json").exists()
