"""Parity of converted original checkpoints, and the safety of reading them.

Checkpoints are built here with random weights from the original implementation's own modules
(test-only dependency `taming-transformers-rom1504`), saved the way Lightning saves them, run
through the converter, and compared output for output with the original.
"""

import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch
import yaml

from original_taming import require_original_taming
from taming_hf import VQGANModel
from taming_hf.conversion.cli import main as convert_main

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
    vqgan = require_original_taming("taming.models.vqgan")
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
    discriminator = require_original_taming("taming.modules.discriminator.model").NLayerDiscriminator(
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


def test_missing_checkpoint_says_it_does_not_exist(tmp_path, capsys):
    missing = tmp_path / "missing.ckpt"
    assert convert_main(["--checkpoint", str(missing), "--output_dir", str(tmp_path / "o")]) == 1
    error = capsys.readouterr().err
    assert f"Checkpoint {missing} does not exist; expected a PyTorch checkpoint (.ckpt / .pt)" in error
    assert convert_main(["--checkpoint", str(tmp_path), "--output_dir", str(tmp_path / "o")]) == 1
    assert f"Checkpoint {tmp_path} is a folder; expected a PyTorch checkpoint" in capsys.readouterr().err


def test_missing_or_invalid_config_is_named(tmp_path, capsys):
    _, ckpt, _ = save_vqgan_checkpoint(tmp_path, with_training_state=False)
    missing = tmp_path / "missing.yaml"
    argv = ["--checkpoint", str(ckpt), "--output_dir", str(tmp_path / "o"), "--config"]
    assert convert_main(argv + [str(missing)]) == 1
    assert f"Config {missing} does not exist; expected the original taming YAML config" in capsys.readouterr().err
    (tmp_path / "broken.yaml").write_text("model: [\n")
    assert convert_main(argv + [str(tmp_path / "broken.yaml")]) == 1
    assert f"{tmp_path / 'broken.yaml'} is not valid YAML" in capsys.readouterr().err


@pytest.mark.parametrize("use_yaml", [False, True], ids=["inferred", "yaml"])
def test_wrong_rank_vqgan_tensor_names_key_and_shapes(tmp_path, capsys, use_yaml):
    model, target, params = original_vqgan()
    state = dict(model.state_dict())
    state["encoder.conv_in.weight"] = state["encoder.conv_in.weight"].flatten()  # (32, 3, 3, 3) -> (864,)
    torch.save(lightning_checkpoint(state), tmp_path / "flat.ckpt")
    argv = ["--checkpoint", str(tmp_path / "flat.ckpt"), "--output_dir", str(tmp_path / "o")]
    argv += ["--config", str(save_yaml(tmp_path / "v.yaml", target, params))] if use_yaml else []
    assert convert_main(argv) == 1
    expected = (
        "encoder.conv_in.weight: checkpoint (864,) vs model (32, 3, 3, 3)"
        if use_yaml
        else "encoder.conv_in.weight has shape (864,); expected 4 dimensions (out_channels, in_channels, "
        "kernel_height, kernel_width) of a convolution weight."
    )
    assert expected in capsys.readouterr().err


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


def test_reduce_payload_is_never_executed(tmp_path, capsys):
    marker = tmp_path / "pwned"
    model, _, _ = original_vqgan()
    ckpt = tmp_path / "evil.ckpt"
    torch.save(lightning_checkpoint(model.state_dict(), callbacks={"x": _RunsACommand(marker)}), ckpt)
    assert not marker.exists()

    out = tmp_path / "out"
    assert convert_main(["--checkpoint", str(ckpt), "--output_dir", str(out), "--resolution", "16"]) == 0
    assert not marker.exists()
    assert f"{os.system.__module__}.system" in capsys.readouterr().out  # reported as a placeholder
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


# ---------------------------------------------------------------- Net2NetTransformer

NUM_IMAGE_CODES, GRID = 16, 8  # the tiny first stage: 16 codes on an 8x8 grid for 16x16 images
LABELATOR = "taming.modules.util.Labelator"
DEPTH_DDCONFIG = dict(TINY_DDCONFIG, in_channels=1, out_ch=1)


def vqgan_stage(ddconfig, n_embed):
    params = {"ddconfig": ddconfig, "lossconfig": DUMMY_LOSS, "n_embed": n_embed, "embed_dim": 8}
    return {"target": "taming.models.vqgan.VQModel", "params": params}


def original_net2net(conditioning: str, permuter: str = None, seed: int = 0):
    """A tiny original Net2NetTransformer (its `params` too) with weights large enough to matter."""
    torch.manual_seed(seed)
    cond_stage = {
        "unconditional": "__is_unconditional__",
        "class": {"target": LABELATOR, "params": {"n_classes": 10}},
        "depth": vqgan_stage(DEPTH_DDCONFIG, 12),
        "coordinates": {"target": "taming.modules.misc.coord.CoordStage", "params": {"n_embed": 8, "down_factor": 2}},
    }[conditioning]
    block_size = 2 * GRID * GRID if conditioning in ("depth", "coordinates") else GRID * GRID
    gpt = {"vocab_size": NUM_IMAGE_CODES, "block_size": block_size, "n_layer": 2, "n_head": 4, "n_embd": 32}
    params = {
        "transformer_config": {"target": "taming.modules.transformer.mingpt.GPT", "params": gpt},
        "first_stage_config": vqgan_stage(TINY_DDCONFIG, NUM_IMAGE_CODES),
        "cond_stage_config": cond_stage,
        "first_stage_key": "image",
        "cond_stage_key": "depth" if conditioning == "depth" else "class_label",
    }
    if permuter:
        params["permuter_config"] = {
            "target": f"taming.modules.transformer.permuter.{permuter}",
            "params": {"H": GRID, "W": GRID},
        }
    model = require_original_taming("taming.models.cond_transformer").Net2NetTransformer(**params).eval()
    with torch.no_grad():
        for parameter in model.transformer.parameters():
            parameter.normal_(std=0.3)
        model.first_stage_model.quantize.embedding.weight.normal_(std=0.5)
        if conditioning == "depth":
            model.cond_stage_model.quantize.embedding.weight.normal_(std=0.5)
    return model, params


def convert_net2net(tmp_path, conditioning, permuter=None, extra_args=()):
    original, params = original_net2net(conditioning, permuter)
    ckpt = tmp_path / "transformer.ckpt"
    torch.save(lightning_checkpoint(original.state_dict()), ckpt)
    config = save_yaml(tmp_path / "transformer.yaml", "taming.models.cond_transformer.Net2NetTransformer", params)
    out = tmp_path / "pipeline"
    argv = ["--checkpoint", str(ckpt), "--config", str(config), "--output_dir", str(out), *extra_args]
    assert convert_main(argv) == 0
    from taming_hf.pipelines.taming import TamingPipeline

    return original, TamingPipeline.from_pretrained(out)


def compare_logits(original, pipeline, original_prefix, our_prefix):
    """Max |difference| of the logits over image codes for the same sequence in both vocabularies."""
    codes = torch.randint(0, NUM_IMAGE_CODES, (original_prefix.shape[0], GRID * GRID))
    with torch.no_grad():
        theirs, _ = original.transformer(torch.cat([original_prefix, codes], 1)[:, :-1])
        ours = pipeline.transformer(torch.cat([our_prefix, codes], 1)[:, :-1]).logits
    assert ours.shape[-1] == pipeline.layout.vocab_size
    return (ours[..., :NUM_IMAGE_CODES] - theirs[..., :NUM_IMAGE_CODES]).abs().max().item()


def test_unconditional_transformer_parity(tmp_path):
    original, pipeline = convert_net2net(tmp_path, "unconditional")
    layout = pipeline.layout
    assert (layout.conditioning, layout.sos_token_id, layout.vocab_size) == ("unconditional", 16, 17)
    assert pipeline.config.token_order is None
    sos = torch.full((3, 1), original.sos_token)
    assert compare_logits(original, pipeline, sos, torch.full((3, 1), layout.sos_token_id)) < 1e-4
    # the image VQGAN came along with the prior
    pixels = torch.rand(1, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        _, _, (_, _, theirs) = original.first_stage_model.encode(pixels)
        assert torch.equal(pipeline.vqgan.encode(pixels).indices.flatten(), theirs.flatten())
    images = pipeline(batch_size=1, generator=torch.Generator().manual_seed(0), output_type="pt").images
    assert images.shape == (1, 3, 16, 16)


def test_class_conditional_transformer_parity(tmp_path):
    labels_file = tmp_path / "id2label.json"
    labels_file.write_text(json.dumps({str(i): f"class {i}" for i in range(10)}))
    original, pipeline = convert_net2net(tmp_path, "class", extra_args=["--id2label", str(labels_file)])
    layout = pipeline.layout
    assert (layout.conditioning, layout.num_condition_tokens, layout.vocab_size) == ("class", 10, 26)
    assert pipeline.get_label_ids(["class 3"]) == [3]
    labels = torch.tensor([[0], [3], [9]])
    assert compare_logits(original, pipeline, labels, labels + layout.condition_offset) < 1e-4
    images = pipeline(class_labels=[3], generator=torch.Generator().manual_seed(0), output_type="pt").images
    assert images.shape == (1, 3, 16, 16)


def test_depth_conditional_transformer_parity(tmp_path):
    original, pipeline = convert_net2net(tmp_path, "depth")
    assert pipeline.layout.conditioning == "spatial" and pipeline.layout.num_condition_tokens == 12
    depth = torch.rand(2, 1, 16, 16) * 2 - 1
    with torch.no_grad():
        _, theirs = original.encode_to_c(depth)
        theirs = theirs.reshape(2, -1)  # the original's VQModel returns flat indices
        ours = pipeline.condition_vqgan.encode(depth).indices.flatten(1)
    assert torch.equal(ours, theirs)  # the condition VQGAN converted too
    assert compare_logits(original, pipeline, theirs, ours + pipeline.layout.condition_offset) < 1e-4
    generator = torch.Generator().manual_seed(0)
    images = pipeline(condition_image=depth[:1], generator=generator, output_type="pt").images
    assert images.shape == (1, 3, 16, 16)


def test_coordinate_conditional_transformer_parity(tmp_path):
    """CoordStage (FacesHQ) converts to a full pipeline: its codes round(n_embed * coordinate), n_embed + 1 of
    them, sit at the condition offset, and the pipeline encodes coordinate maps as the CoordStage does."""
    original, pipeline = convert_net2net(tmp_path, "coordinates")
    layout = pipeline.layout
    assert (layout.conditioning, layout.num_condition_tokens, layout.vocab_size) == ("coordinates", 9, 25)
    assert pipeline.config.coordinate_downsample_factor == 2
    assert not (tmp_path / "pipeline" / "coordinate_conditioning.json").exists()
    ramp = torch.linspace(0, 1, 16 * 16).reshape(1, 1, 16, 16)
    coordinates = torch.cat([ramp, torch.rand(1, 1, 16, 16)])
    _, _, (_, _, theirs) = original.cond_stage_model.encode(coordinates)
    theirs = theirs.reshape(2, -1)
    assert theirs.max() == 8 and theirs.min() == 0
    assert compare_logits(original, pipeline, theirs, theirs + NUM_IMAGE_CODES) < 1e-4

    # greedy sampling through the pipeline is the original's own greedy sampling loop
    indices = pipeline(condition_image=coordinates, top_k=1, output_type="latent").indices
    with torch.no_grad():
        expected = original.sample(torch.zeros(2, 0, dtype=torch.long), theirs, steps=GRID * GRID, sample=False)
    assert torch.equal(indices.reshape(2, -1), expected) and len(expected.unique()) > 1


def test_resolution_flag_keeps_attention_placement(tmp_path):
    _, ckpt, config = save_vqgan_checkpoint(tmp_path)
    out = tmp_path / "converted"
    argv = ["--checkpoint", str(ckpt), "--config", str(config), "--output_dir", str(out), "--resolution", "32"]
    assert convert_main(argv) == 0
    converted = VQGANModel.from_pretrained(out).config
    assert (converted.resolution, converted.attn_resolutions) == (32, [16])


@pytest.mark.parametrize("permuter", ["Subsample", "ZCurve", "SpiralOut", "SpiralIn", "Random", "AlternateParsing"])
def test_permuter_becomes_token_order(tmp_path, permuter):
    original, pipeline = convert_net2net(tmp_path, "unconditional", permuter)
    raster = torch.arange(GRID * GRID)[None]
    assert pipeline.config.token_order == original.permuter(raster)[0].tolist()
    if permuter == "Subsample":  # the converted order is honoured when sampling
        output = pipeline(generator=torch.Generator().manual_seed(0), output_type="pt")
        assert output.indices.shape == (1, GRID, GRID)


def test_transformer_without_config_fails_clearly(tmp_path, capsys):
    original, _ = original_net2net("unconditional")
    torch.save({"state_dict": original.state_dict()}, tmp_path / "t.ckpt")
    assert convert_main(["--checkpoint", str(tmp_path / "t.ckpt"), "--output_dir", str(tmp_path / "o")]) == 1
    assert "--config" in capsys.readouterr().err


@pytest.mark.parametrize(
    "key, expected",
    [
        ("transformer.tok_emb.weight", "transformer.tok_emb.weight has shape (512,); expected 2 dimensions"),
        (
            "transformer.pos_emb",
            "transformer.pos_emb has shape (2048,); expected 3 dimensions (1, block_size, n_embd)",
        ),
        (
            "transformer.blocks.1.attn.query.weight",
            "transformer.blocks.1.attn.query.weight has shape (1024,), expected (32, 32)",
        ),
        (
            "first_stage_model.quant_conv.weight",
            "first_stage_model.quant_conv.weight: checkpoint (64,) vs model (8, 8, 1, 1)",
        ),
    ],
)
def test_wrong_rank_transformer_tensor_names_key_and_shapes(tmp_path, capsys, key, expected):
    original, params = original_net2net("unconditional")
    state = dict(original.state_dict())
    state[key] = state[key].flatten()
    torch.save(lightning_checkpoint(state), tmp_path / "flat.ckpt")
    config = save_yaml(tmp_path / "t.yaml", "taming.models.cond_transformer.Net2NetTransformer", params)
    argv = ["--checkpoint", str(tmp_path / "flat.ckpt"), "--config", str(config), "--output_dir", str(tmp_path / "o")]
    assert convert_main(argv) == 1
    assert expected in capsys.readouterr().err


def test_segmentation_vqgan_converts_and_drops_colorize(tmp_path, capsys):
    """VQSegmentationModel (S-FLCKR / COCO / ADE20k cond stages): many input channels, a `colorize` buffer."""
    torch.manual_seed(0)
    ddconfig = dict(TINY_DDCONFIG, in_channels=5, out_ch=5)
    loss = {"target": "taming.modules.losses.segmentation.BCELossWithQuant"}
    params = {"n_labels": 5, "ddconfig": ddconfig, "lossconfig": loss, "n_embed": 16, "embed_dim": 8}
    original = require_original_taming("taming.models.vqgan").VQSegmentationModel(**params).eval()
    with torch.no_grad():
        original.quantize.embedding.weight.normal_(std=0.5)
    torch.save(lightning_checkpoint(original.state_dict()), tmp_path / "seg.ckpt")
    config = save_yaml(tmp_path / "seg.yaml", "taming.models.vqgan.VQSegmentationModel", params)
    out = tmp_path / "out"
    assert (
        convert_main(["--checkpoint", str(tmp_path / "seg.ckpt"), "--config", str(config), "--output_dir", str(out)])
        == 0
    )
    assert "colorize" in capsys.readouterr().out
    segmentation = torch.nn.functional.one_hot(torch.randint(0, 5, (2, 16, 16)), 5).permute(0, 3, 1, 2).float()
    indices, reconstruction = original_codes(original, segmentation, gumbel=False)
    ours = VQGANModel.from_pretrained(out).eval()
    with torch.no_grad():
        encoded = ours.encode(segmentation)
        assert torch.equal(encoded.indices.flatten(1), indices)
        assert relative_error(ours.decode(encoded.quantized), reconstruction) < 1e-5


def test_safe_reader_handles_dict_subclasses_views_and_legacy_files(tmp_path):
    """Lightning's AttributeDict (a dict subclass filled by SETITEMS), tensors viewing one storage,
    and a legacy (pre-1.6) file, which is refused rather than unpickled."""
    from taming_hf.conversion import UnsafeCheckpointError, load_checkpoint_safely

    module = types.ModuleType("lightning_like")

    class AttributeDict(dict):
        pass

    AttributeDict.__module__, AttributeDict.__qualname__ = "lightning_like", "AttributeDict"
    module.AttributeDict = AttributeDict
    sys.modules["lightning_like"] = module
    base = torch.arange(12.0).reshape(3, 4)
    try:
        torch.save({"hparams": AttributeDict(lr=0.1), "a": base, "row": base[1], "col": base[:, 2]}, tmp_path / "x.pt")
    finally:
        del sys.modules["lightning_like"]

    loaded = load_checkpoint_safely(str(tmp_path / "x.pt")).content
    assert loaded["hparams"].items == {"lr": 0.1}
    for key, expected in (("a", base), ("row", base[1]), ("col", base[:, 2])):
        assert torch.equal(loaded[key].materialize(), expected)

    torch.save({"a": base}, tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    with pytest.raises(UnsafeCheckpointError, match="not a PyTorch zip checkpoint"):
        load_checkpoint_safely(str(tmp_path / "legacy.pt"))
