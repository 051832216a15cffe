"""Original VQGAN state dicts (VQModel, GumbelVQ, latent-diffusion VQ autoencoders) -> `VQGANModel`.

`VQGANModel` keeps the original module names, so the weights map by name; what this module
adds is the configuration (from the original YAML or from the tensors' shapes) and a strict
accounting of every key: used, dropped on purpose, kept aside (the discriminator), or unknown.
"""

import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple

import torch

from ..models.vqgan import VQGANConfig, VQGANModel
from .errors import ConversionError

# `model.target` values of the original configs that describe a VQGAN of this layout.
VQGAN_TARGETS = {
    "taming.models.vqgan.VQModel": "vector",
    "taming.models.vqgan.VQSegmentationModel": "vector",
    "taming.models.vqgan.GumbelVQ": "gumbel",
    "ldm.models.autoencoder.VQModel": "vector",
    "ldm.models.autoencoder.VQModelInterface": "vector",
}
MODEL_PREFIXES = ("encoder.", "decoder.", "quantize.", "quant_conv.", "post_quant_conv.")
EXPECTED_VQGAN_KEYS = (
    "encoder.conv_in.weight",
    "decoder.conv_out.weight",
    "quant_conv.weight",
    "post_quant_conv.weight",
    "quantize.embedding.weight (or quantize.embed.weight + quantize.proj.weight for GumbelVQ)",
)
DISCRIMINATOR_PREFIX = "loss.discriminator."
# Training-only entries the converter leaves out on purpose, with the reason it reports.
DROPPED_ON_PURPOSE = (
    ("loss.", "training loss (LPIPS network, loss buffers)"),
    ("model_ema.", "latent-diffusion EMA bookkeeping"),
    ("colorize", "random projection used only to log segmentation maps"),
)


@dataclass
class KeyAccounting:
    """Where every key of a checkpoint's state dict went."""

    used: List[str] = field(default_factory=list)
    dropped: Dict[str, List[str]] = field(default_factory=dict)
    kept_aside: Dict[str, List[str]] = field(default_factory=dict)
    unrecognised: List[str] = field(default_factory=list)

    def drop(self, key: str, reason: str) -> None:
        self.dropped.setdefault(reason, []).append(key)

    def merge(self, other: "KeyAccounting", prefix: str) -> None:
        """Fold the accounting of a sub-model whose keys were stripped of `prefix`."""
        self.used += [prefix + k for k in other.used]
        self.unrecognised += [prefix + k for k in other.unrecognised]
        for target, source in ((self.dropped, other.dropped), (self.kept_aside, other.kept_aside)):
            for reason, keys in source.items():
                target.setdefault(reason, []).extend(prefix + k for k in keys)

    def summary(self, verbose: bool = False) -> str:
        """Human-readable report: counts per group, every key when `verbose`."""
        lines = [f"used {len(self.used)} keys" + _group_counts(self.used)]
        for title, groups in (("dropped on purpose", self.dropped), ("kept aside", self.kept_aside)):
            for reason, keys in groups.items():
                lines.append(f"{title}: {len(keys)} keys ({reason})" + _group_counts(keys))
        if verbose:
            lines += ["  " + key for key in self.used]
            lines += ["  dropped " + key for keys in self.dropped.values() for key in keys]
        return "\n".join(lines)


def _group_counts(keys: List[str]) -> str:
    groups: Dict[str, int] = {}
    for key in keys:
        parts = key.split(".")
        group = ".".join(parts[:2]) + ".*" if len(parts) > 2 else key
        groups[group] = groups.get(group, 0) + 1
    return "".join(f"\n    {group}: {count}" for group, count in groups.items())


def strip_prefix(state_dict: Mapping[str, Any], prefix: str) -> Dict[str, Any]:
    """Entries of `state_dict` under `prefix`, with the prefix removed."""
    return {key[len(prefix) :]: value for key, value in state_dict.items() if key.startswith(prefix)}


def looks_like_vqgan(state_dict: Mapping[str, Any]) -> bool:
    has_codebook = "quantize.embedding.weight" in state_dict or "quantize.embed.weight" in state_dict
    return has_codebook and "encoder.conv_in.weight" in state_dict and "post_quant_conv.weight" in state_dict


def account_vqgan_keys(state_dict: Mapping[str, Any]) -> KeyAccounting:
    """Sort a VQGAN state dict's keys into model weights, discriminator, dropped and unknown."""
    accounting = KeyAccounting()
    for key in state_dict:
        if key.startswith(MODEL_PREFIXES):
            accounting.used.append(key)
        elif key.startswith(DISCRIMINATOR_PREFIX):
            accounting.kept_aside.setdefault("PatchGAN discriminator", []).append(key)
        else:
            reason = next((why for prefix, why in DROPPED_ON_PURPOSE if key.startswith(prefix)), None)
            if reason is None:
                accounting.unrecognised.append(key)
            else:
                accounting.drop(key, reason)
    return accounting


def _indices_under(state_dict: Mapping[str, Any], pattern: str) -> List[int]:
    """Sorted distinct integers `i` for which some key matches `pattern` (with one `(\\d+)` group)."""
    regex = re.compile(pattern)
    return sorted({int(m.group(1)) for key in state_dict if (m := regex.match(key))})


CONV_LAYOUT = "(out_channels, in_channels, kernel_height, kernel_width) of a convolution weight"


def checked_shape(state_dict: Mapping[str, Any], key: str, layout: str, prefix: str = "") -> Tuple[int, ...]:
    """
    The shape of `state_dict[key]`, checked to have as many dimensions as `layout` (e.g. `"(vocab_size,
    n_embd)"`) names, so that reading sizes off it cannot fail on a tensor of the wrong rank.
    `prefix` is prepended to `key` in messages (the key's name in the original checkpoint).
    """
    if key not in state_dict:
        raise ConversionError(f"The checkpoint has no {prefix}{key}; expected a tensor of shape {layout}.")
    shape = tuple(state_dict[key].shape)
    rank = layout.split(")")[0].count(",") + 1
    if len(shape) != rank:
        raise ConversionError(f"{prefix}{key} has shape {shape}; expected {rank} dimensions {layout}.")
    return shape


def vqgan_config_from_state_dict(
    state_dict: Mapping[str, Any], resolution: int = 256, prefix: str = ""
) -> VQGANConfig:
    """Infer the architecture from tensor shapes. Only `resolution` (and dropout) cannot be read off.

    The levels that carry attention are found from the keys; they are stored as
    `resolution / 2**level`, which places attention identically whatever `resolution` is. `prefix` is
    the keys' prefix in the original checkpoint (`first_stage_model.`), for error messages.
    """
    base_channels, in_channels = checked_shape(state_dict, "encoder.conv_in.weight", CONV_LAYOUT, prefix)[:2]
    latent_channels = checked_shape(state_dict, "post_quant_conv.weight", CONV_LAYOUT, prefix)[0]
    if checked_shape(state_dict, "encoder.conv_out.weight", CONV_LAYOUT, prefix)[0] != latent_channels:
        raise ConversionError(
            "The encoder outputs twice the latent channels (double_z=True): this is a KL autoencoder, not a VQGAN."
        )
    levels = _indices_under(state_dict, r"encoder\.down\.(\d+)\.")
    multipliers = [
        checked_shape(state_dict, f"encoder.down.{i}.block.0.conv1.weight", CONV_LAYOUT, prefix)[0] // base_channels
        for i in levels
    ]
    gumbel = "quantize.proj.weight" in state_dict
    codebook_key = "quantize.embed.weight" if gumbel else "quantize.embedding.weight"
    return VQGANConfig(
        embed_dim=checked_shape(state_dict, "quant_conv.weight", CONV_LAYOUT, prefix)[0],
        num_embeddings=checked_shape(state_dict, codebook_key, "(num_embeddings, embed_dim) of a codebook", prefix)[0],
        latent_channels=latent_channels,
        resolution=resolution,
        in_channels=in_channels,
        out_channels=checked_shape(state_dict, "decoder.conv_out.weight", CONV_LAYOUT, prefix)[0],
        base_channels=base_channels,
        channel_multiplier=multipliers,
        num_res_blocks=len(_indices_under(state_dict, r"encoder\.down\.0\.block\.(\d+)\.")),
        attn_resolutions=[
            resolution // 2**i for i in levels if any(k.startswith(f"encoder.down.{i}.attn.") for k in state_dict)
        ],
        quantizer_type="gumbel" if gumbel else "vector",
        legacy_beta=True,
        gumbel_kl_weight=1e-8,
    )


def vqgan_config_from_yaml(params: Mapping[str, Any], target: str, resolution: Optional[int] = None) -> VQGANConfig:
    """Build the config from an original `model.params` block (`ddconfig`, `n_embed`, `embed_dim`)."""
    ddconfig = params["ddconfig"]
    if ddconfig.get("double_z", False):
        raise ConversionError("ddconfig.double_z is true: this is a KL autoencoder, not a VQGAN.")
    if params.get("remap"):
        raise ConversionError(f"Codebook remapping (remap={params['remap']!r}) is not supported by the converter.")
    # Attention sits at the levels where `ddconfig.resolution / 2**level` is listed; a different
    # `resolution` (e.g. to sample larger images) rescales the list so the architecture is unchanged.
    trained, resolution = ddconfig["resolution"], resolution or ddconfig["resolution"]
    attn_resolutions = [size * resolution // trained for size in ddconfig["attn_resolutions"]]
    return VQGANConfig(
        embed_dim=params["embed_dim"],
        num_embeddings=params["n_embed"],
        latent_channels=ddconfig["z_channels"],
        resolution=resolution,
        in_channels=ddconfig["in_channels"],
        out_channels=ddconfig["out_ch"],
        base_channels=ddconfig["ch"],
        channel_multiplier=list(ddconfig["ch_mult"]),
        num_res_blocks=ddconfig["num_res_blocks"],
        attn_resolutions=attn_resolutions,
        dropout=ddconfig.get("dropout", 0.0),
        quantizer_type=VQGAN_TARGETS.get(target, "vector"),
        legacy_beta=True,  # every official checkpoint was trained with beta on the codebook term
        gumbel_kl_weight=params.get("kl_weight", 1e-8),
    )


def build_vqgan(state_dict: Mapping[str, torch.Tensor], config: VQGANConfig, prefix: str = "") -> VQGANModel:
    """A `VQGANModel` holding exactly the model weights of `state_dict`; any mismatch is an error naming the
    keys (with `prefix`, their prefix in the original checkpoint)."""
    model = VQGANModel(config)
    weights = {key: value for key, value in state_dict.items() if key.startswith(MODEL_PREFIXES)}
    # Compared before loading: `load_state_dict` raises a RuntimeError on the first size mismatch, even with
    # strict=False, and would not list the missing and unexpected keys with it.
    expected = model.state_dict()
    missing = [prefix + key for key in expected if key not in weights]
    unexpected = [prefix + key for key in weights if key not in expected]
    shape_errors = [
        f"{prefix}{key}: checkpoint {tuple(value.shape)} vs model {tuple(expected[key].shape)}"
        for key, value in weights.items()
        if key in expected and expected[key].shape != value.shape
    ]
    if missing or unexpected or shape_errors:
        raise ConversionError(
            "The VQGAN weights do not fit the configuration "
            f"(missing {missing}, unexpected {unexpected}, shape mismatches {shape_errors}). "
            "If you passed --config, check it belongs to this checkpoint."
        )
    model.load_state_dict(weights)
    return model.eval()


def discriminator_config(state_dict: Mapping[str, Any], loss_params: Optional[Mapping[str, Any]]) -> Dict[str, Any]:
    """The config of the original PatchGAN discriminator (`NLayerDiscriminator`), read off its weights.

    The field names and `model_type` are those of taming_hf's `PatchGANDiscriminatorConfig`, whose
    module names (`main.{i}`) follow the original, so the directory loads with its `from_pretrained`.
    `main` is a Sequential whose 4-d weights are its convolutions: the first, `num_layers`
    middle ones and the final 1-channel one.
    """
    convs = sorted((int(key.split(".")[1]), value.shape) for key, value in state_dict.items() if len(value.shape) == 4)
    if len(convs) < 2:
        raise ConversionError(
            f"The discriminator weights hold {len(convs)} convolution weights (4-d tensors), expected at least 2 "
            f"(main.0.weight ... the final 1-channel one); shapes: {[(k, tuple(v.shape)) for k, v in state_dict.items()]}."
        )
    config = {
        "model_type": "patchgan_discriminator",
        "in_channels": int(convs[0][1][1]),
        "base_channels": int(convs[0][1][0]),
        "num_layers": len(convs) - 2,
        "max_channel_multiplier": 8,
        "original_class": "taming.modules.discriminator.model.NLayerDiscriminator",
    }
    if any(key.endswith(".loc") for key in state_dict):
        config["original_norm"] = "ActNorm"  # taming_hf's discriminator uses BatchNorm; kept for the record
    if loss_params:
        # disc_start, disc_weight, codebook_weight, ...: what resuming GAN training should reuse.
        config["original_loss_params"] = dict(loss_params)
    return config


def split_vqgan_checkpoint(
    state_dict: Mapping[str, Any], accounting: KeyAccounting
) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """(model weights, discriminator weights without its prefix)."""
    model = {key: state_dict[key] for key in accounting.used}
    discriminator = strip_prefix(state_dict, DISCRIMINATOR_PREFIX)
    return model, discriminator
