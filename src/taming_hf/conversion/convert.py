"""Entry point of the conversion: read an original checkpoint safely, decide what it is, write it out."""

import json
import os
from typing import Any, Dict, Mapping, Optional

import yaml
from safetensors.torch import save_file

from ..models.vqgan import VQGANImageProcessor
from .errors import ConversionError, require_file
from .safe_pickle import LazyTensor, load_checkpoint_safely, materialize_state_dict
from .transformer import TRANSFORMER_TARGET, convert_transformer
from .vqgan import (
    EXPECTED_VQGAN_KEYS,
    VQGAN_TARGETS,
    KeyAccounting,
    account_vqgan_keys,
    build_vqgan,
    discriminator_config,
    looks_like_vqgan,
    split_vqgan_checkpoint,
    vqgan_config_from_state_dict,
    vqgan_config_from_yaml,
)

EXPECTED_TRANSFORMER_KEYS = (
    "transformer.tok_emb.weight",
    "transformer.pos_emb",
    "transformer.blocks.0.attn.query.weight",
    "first_stage_model.encoder.conv_in.weight (the image VQGAN)",
)


def read_state_dict(path: str) -> Dict[str, LazyTensor]:
    """The (lazy) state dict of an original checkpoint: a Lightning dict's `state_dict`, or a bare one."""
    checkpoint = load_checkpoint_safely(path)
    if checkpoint.foreign_globals:
        names = ", ".join(sorted(checkpoint.foreign_globals))
        print(f"Pickled references read as inert placeholders (never called): {names}")
    content = checkpoint.content
    if isinstance(content, Mapping) and isinstance(content.get("state_dict"), Mapping):
        content = content["state_dict"]
    if isinstance(content, Mapping) and content and all(isinstance(v, LazyTensor) for v in content.values()):
        return dict(content)
    found = sorted(map(str, content))[:20] if isinstance(content, Mapping) else type(content).__name__
    raise ConversionError(_not_taming_message(path, f"no state dict of tensors; top level holds {found}"))


def _not_taming_message(path: str, what: str) -> str:
    return (
        f"{path} is not a taming-transformers checkpoint ({what}). Expected a Lightning checkpoint whose "
        f"'state_dict' holds either a VQGAN: {', '.join(EXPECTED_VQGAN_KEYS)}; or a Net2NetTransformer: "
        f"{', '.join(EXPECTED_TRANSFORMER_KEYS)}."
    )


def read_yaml_config(path: Optional[str]) -> Optional[Dict[str, Any]]:
    """The `model` block of an original YAML config (plain YAML; parsed without executing anything)."""
    if path is None:
        return None
    require_file(path, "Config", "the original taming YAML config of the checkpoint (a 'model' block with a 'target')")
    try:
        with open(path) as handle:
            document = yaml.safe_load(handle)
    except yaml.YAMLError as error:
        raise ConversionError(f"{path} is not valid YAML ({error}); expected the original taming config.") from error
    if not isinstance(document, dict) or "model" not in document or "target" not in document["model"]:
        raise ConversionError(f"{path} is not an original taming config: expected a 'model' block with a 'target'.")
    return document["model"]


def read_id2label(path: str) -> Dict[int, str]:
    """Class names for a class-conditional prior, from a JSON object `{"0": "tench", ...}`."""
    require_file(path, "id2label file", 'a JSON object mapping class ids to names, e.g. {"0": "tench"}')
    try:
        with open(path) as handle:
            mapping = json.load(handle)
    except json.JSONDecodeError as error:
        raise ConversionError(
            f"{path} is not valid JSON ({error}); expected an object mapping ids to names."
        ) from error
    if not isinstance(mapping, dict):
        raise ConversionError(f"{path} must hold a JSON object mapping class ids to names.")
    return {int(key): str(value) for key, value in mapping.items()}


def detect_kind(state_dict: Mapping[str, Any], model_config: Optional[Mapping[str, Any]], path: str) -> str:
    """`"vqgan"` or `"transformer"`, from the YAML target when given, else from the keys."""
    if model_config is not None:
        target = model_config["target"]
        if target == TRANSFORMER_TARGET:
            return "transformer"
        if target in VQGAN_TARGETS:
            return "vqgan"
        raise ConversionError(
            f"Unsupported model.target {target!r}; supported: {sorted(VQGAN_TARGETS) + [TRANSFORMER_TARGET]}."
        )
    if "transformer.tok_emb.weight" in state_dict:
        return "transformer"
    if looks_like_vqgan(state_dict):
        return "vqgan"
    raise ConversionError(_not_taming_message(path, f"found keys {sorted(state_dict)[:20]}"))


def check_accounting(accounting: KeyAccounting) -> None:
    if accounting.unrecognised:
        raise ConversionError(
            f"Unrecognised keys in the checkpoint: {accounting.unrecognised[:20]}"
            f"{' ...' if len(accounting.unrecognised) > 20 else ''}. Refusing to drop weights silently."
        )


def convert_vqgan(
    state_dict: Mapping[str, LazyTensor],
    model_config: Optional[Mapping[str, Any]],
    output_dir: str,
    resolution: Optional[int] = None,
    keep_discriminator: bool = False,
    verbose: bool = False,
) -> KeyAccounting:
    """Write a `VQGANModel` directory (and optionally `discriminator/`) from a VQGAN state dict."""
    accounting = account_vqgan_keys(state_dict)
    check_accounting(accounting)
    weights, discriminator = split_vqgan_checkpoint(state_dict, accounting)
    if model_config is not None:
        config = vqgan_config_from_yaml(model_config["params"], model_config["target"], resolution)
    else:
        config = vqgan_config_from_state_dict(weights, resolution or 256)
    model = build_vqgan(materialize_state_dict(weights), config)
    model.save_pretrained(output_dir)
    if config.in_channels in (1, 3):
        VQGANImageProcessor(resolution=config.resolution, num_channels=config.in_channels).save_pretrained(output_dir)
    if discriminator and keep_discriminator:
        loss_params = (model_config or {}).get("params", {}).get("lossconfig", {}).get("params")
        save_discriminator(discriminator, loss_params, os.path.join(output_dir, "discriminator"))
    elif discriminator:
        accounting.dropped["PatchGAN discriminator (pass --keep_discriminator to keep it)"] = (
            accounting.kept_aside.pop("PatchGAN discriminator")
        )
    print(accounting.summary(verbose))
    return accounting


def save_discriminator(state_dict: Mapping[str, LazyTensor], loss_params, directory: str) -> None:
    """The original PatchGAN weights as safetensors plus a JSON description, to resume GAN training."""
    os.makedirs(directory, exist_ok=True)
    tensors = {key: value.contiguous() for key, value in materialize_state_dict(state_dict).items()}
    save_file(tensors, os.path.join(directory, "model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(directory, "config.json"), "w") as handle:
        json.dump(discriminator_config(tensors, loss_params), handle, indent=2)


def convert_checkpoint(
    checkpoint: str,
    output_dir: str,
    config: Optional[str] = None,
    resolution: Optional[int] = None,
    keep_discriminator: bool = False,
    push_to_hub: Optional[str] = None,
    verbose: bool = False,
    id2label: Optional[str] = None,
) -> str:
    """Convert one original checkpoint; returns the kind written (`"vqgan"` or `"transformer"`)."""
    model_config = read_yaml_config(config)
    state_dict = read_state_dict(checkpoint)
    kind = detect_kind(state_dict, model_config, checkpoint)
    if kind == "vqgan":
        convert_vqgan(state_dict, model_config, output_dir, resolution, keep_discriminator, verbose)
    else:
        labels = read_id2label(id2label) if id2label else None
        convert_transformer(state_dict, model_config, output_dir, resolution, verbose, labels)
    print(f"Wrote a converted {kind} to {output_dir}")
    if push_to_hub:
        upload(output_dir, push_to_hub)
    return kind


def upload(output_dir: str, repo_id: str) -> None:
    """Create `repo_id` on the Hub if needed and upload the converted directory."""
    from huggingface_hub import create_repo, upload_folder

    create_repo(repo_id, exist_ok=True)
    upload_folder(repo_id=repo_id, folder_path=output_dir, commit_message="Convert original taming checkpoint")
    print(f"Uploaded to https://huggingface.co/{repo_id}")
