"""Net2NetTransformer checkpoints -> a `TamingPipeline` directory.

A Net2NetTransformer state dict holds three models: `first_stage_model.*` (the image VQGAN),
`cond_stage_model.*` (a spatial-condition VQGAN, or nothing for SOS / class / coordinate
conditioning), and `transformer.*` (minGPT). Two things need more than renaming:

- minGPT -> `GPT2LMHeadModel`: q, k, v linears fuse into `c_attn`, and GPT-2's `Conv1D` layers
  store weights transposed.
- The vocabulary: the original feeds condition tokens (the SOS token, class ids, condition
  codes) through the *same* embedding table as image codes, without an offset, so class 3 and
  image code 3 share a row. taming_hf's `TokenLayout` gives every token its own id: image codes
  `[0, K)`, condition tokens from K, then specials. The conversion gathers, for every new id,
  the embedding row and output-head row of the original id it stands for. Image codes keep
  their rows, so the logits over image codes are exactly the original's.
"""

import re
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Tuple

import torch
from transformers import GPT2Config, GPT2LMHeadModel

from ..models.vqgan import VQGANModel
from ..pipelines.taming.vocabulary import TokenLayout
from .errors import ConversionError
from .safe_pickle import LazyTensor, materialize_state_dict
from .vqgan import (
    VQGAN_TARGETS,
    KeyAccounting,
    account_vqgan_keys,
    build_vqgan,
    checked_shape,
    strip_prefix,
    vqgan_config_from_state_dict,
    vqgan_config_from_yaml,
)

TRANSFORMER_TARGET = "taming.models.cond_transformer.Net2NetTransformer"
LABELATOR = "taming.modules.util.Labelator"
SOS_PROVIDER = "taming.modules.util.SOSProvider"
COORD_STAGE = "taming.modules.misc.coord.CoordStage"
TOP_LEVEL_PREFIXES = ("transformer.", "first_stage_model.", "cond_stage_model.", "permuter.")


@dataclass(frozen=True)
class VocabularyPlan:
    """The re-layout of the original shared vocabulary.

    Attributes:
        layout: the taming_hf `TokenLayout` of the converted prior.
        source_rows: `source_rows[new_id]` is the original token id whose embedding and head
            rows the new id takes.
        kind: the original cond stage: `"sos"`, `"class"`, `"vqgan"` or `"coordinates"`.
    """

    layout: TokenLayout
    source_rows: List[int]
    kind: str


def plan_vocabulary(
    kind: str, num_image_codes: int, original_vocab_size: int, num_condition_tokens: int = 0, sos_token: int = 0
) -> VocabularyPlan:
    """Where each token of the new layout comes from in the original vocabulary."""
    if kind == "sos":
        layout = TokenLayout.build("unconditional", num_image_codes)
        originals = [sos_token]
    elif kind in ("class", "vqgan", "coordinates"):
        conditioning = {"class": "class", "vqgan": "spatial", "coordinates": "coordinates"}[kind]
        layout = TokenLayout.build(conditioning, num_image_codes, num_condition_tokens)
        originals = list(range(num_condition_tokens))  # condition id c was token c in the original
    else:
        raise ConversionError(f"Unknown conditioning kind {kind!r}.")
    source_rows = list(range(num_image_codes)) + originals
    if max(source_rows) >= original_vocab_size:
        raise ConversionError(
            f"The original vocabulary has {original_vocab_size} tokens, but the {kind} conditioning needs token "
            f"{max(source_rows)} (image codes {num_image_codes}, condition tokens {num_condition_tokens})."
        )
    assert len(source_rows) == layout.vocab_size
    return VocabularyPlan(layout, source_rows, kind)


# ------------------------------------------------------------------------------------ minGPT -> GPT-2


def _num_layers(mingpt: Mapping[str, Any]) -> int:
    return len({int(m.group(1)) for key in mingpt if (m := re.match(r"blocks\.(\d+)\.", key))})


def mingpt_source_keys(num_layers: int) -> List[str]:
    """Every minGPT key the conversion reads (everything but the attention-mask buffers)."""
    keys = ["tok_emb.weight", "pos_emb", "ln_f.weight", "ln_f.bias", "head.weight"]
    for i in range(num_layers):
        for module in ("ln1", "ln2", "attn.query", "attn.key", "attn.value", "attn.proj", "mlp.0", "mlp.2"):
            keys += [f"blocks.{i}.{module}.weight", f"blocks.{i}.{module}.bias"]
    return keys


def _linear_as_conv1d(weight: torch.Tensor) -> torch.Tensor:
    # GPT-2's Conv1D computes x @ W with W of shape (in, out): the transpose of nn.Linear's.
    return weight.t().contiguous()


def gpt2_state_dict(mingpt: Mapping[str, torch.Tensor], source_rows: List[int]) -> Dict[str, torch.Tensor]:
    """minGPT weights (prefix `transformer.` stripped) -> GPT2LMHeadModel weights in the new vocabulary."""
    rows = torch.tensor(source_rows, dtype=torch.long)
    converted = {
        "transformer.wte.weight": mingpt["tok_emb.weight"][rows],
        "transformer.wpe.weight": mingpt["pos_emb"][0],
        "transformer.ln_f.weight": mingpt["ln_f.weight"],
        "transformer.ln_f.bias": mingpt["ln_f.bias"],
        "lm_head.weight": mingpt["head.weight"][rows],
    }
    for i in range(_num_layers(mingpt)):
        source, target = f"blocks.{i}.", f"transformer.h.{i}."
        for ours, theirs in (("ln_1", "ln1"), ("ln_2", "ln2")):
            converted[f"{target}{ours}.weight"] = mingpt[f"{source}{theirs}.weight"]
            converted[f"{target}{ours}.bias"] = mingpt[f"{source}{theirs}.bias"]
        qkv = [f"{source}attn.{name}" for name in ("query", "key", "value")]  # GPT-2 splits c_attn as q, k, v
        converted[f"{target}attn.c_attn.weight"] = _linear_as_conv1d(torch.cat([mingpt[k + ".weight"] for k in qkv]))
        converted[f"{target}attn.c_attn.bias"] = torch.cat([mingpt[k + ".bias"] for k in qkv])
        for ours, theirs in (("attn.c_proj", "attn.proj"), ("mlp.c_fc", "mlp.0"), ("mlp.c_proj", "mlp.2")):
            converted[f"{target}{ours}.weight"] = _linear_as_conv1d(mingpt[f"{source}{theirs}.weight"])
            converted[f"{target}{ours}.bias"] = mingpt[f"{source}{theirs}.bias"]
    return {key: value.contiguous() for key, value in converted.items()}


def check_mingpt_shapes(mingpt: Mapping[str, Any]) -> None:
    """
    Every minGPT weight (prefix `transformer.` stripped) has the shape its module implies, given the sizes read
    off `tok_emb.weight` (vocab_size, n_embd), `pos_emb` (1, block_size, n_embd) and `blocks.0.mlp.0.weight`
    (n_inner, n_embd); a checkpoint with a tensor of the wrong rank or width fails here, naming the key.
    """
    vocab, hidden = checked_shape(mingpt, "tok_emb.weight", "(vocab_size, n_embd)", "transformer.")
    block = checked_shape(mingpt, "pos_emb", "(1, block_size, n_embd)", "transformer.")[1]
    inner = checked_shape(mingpt, "blocks.0.mlp.0.weight", "(n_inner, n_embd)", "transformer.")[0]
    expected = {
        "tok_emb.weight": (vocab, hidden),
        "pos_emb": (1, block, hidden),
        "ln_f.weight": (hidden,),
        "ln_f.bias": (hidden,),
        "head.weight": (vocab, hidden),
    }
    for i in range(_num_layers(mingpt)):
        block_prefix = f"blocks.{i}."
        for norm in ("ln1", "ln2"):
            expected[f"{block_prefix}{norm}.weight"] = expected[f"{block_prefix}{norm}.bias"] = (hidden,)
        for linear in ("query", "key", "value", "proj"):
            expected[f"{block_prefix}attn.{linear}.weight"] = (hidden, hidden)
            expected[f"{block_prefix}attn.{linear}.bias"] = (hidden,)
        expected[f"{block_prefix}mlp.0.weight"], expected[f"{block_prefix}mlp.0.bias"] = (inner, hidden), (inner,)
        expected[f"{block_prefix}mlp.2.weight"], expected[f"{block_prefix}mlp.2.bias"] = (hidden, inner), (hidden,)
    for key, shape in expected.items():
        actual = tuple(mingpt[key].shape)
        if actual != shape:
            raise ConversionError(
                f"transformer.{key} has shape {actual}, expected {shape} (vocab_size={vocab}, block_size={block}, "
                f"n_embd={hidden}, n_inner={inner}, read off tok_emb, pos_emb and blocks.0.mlp.0)."
            )


def check_causal_masks(mingpt: Mapping[str, Any]) -> None:
    """GPT-2 is strictly causal; minGPT's `n_unmasked > 0` (bidirectional prefix) cannot be expressed."""
    for key, value in mingpt.items():
        if key.endswith("attn.mask"):
            mask = value.materialize() if isinstance(value, LazyTensor) else value
            size = mask.shape[-1]
            if not torch.equal(mask.reshape(size, size), torch.tril(torch.ones(size, size, dtype=mask.dtype))):
                raise ConversionError(
                    f"{key} is not a causal mask (the model was trained with n_unmasked > 0); GPT-2 cannot "
                    "reproduce a bidirectional prefix."
                )


def convert_mingpt(
    mingpt: Mapping[str, torch.Tensor], num_heads: int, plan: VocabularyPlan, dropout: Optional[Mapping] = None
) -> GPT2LMHeadModel:
    """A `GPT2LMHeadModel` computing the original minGPT's logits, with the vocabulary re-laid per `plan`."""
    vocab_size, hidden = len(plan.source_rows), mingpt["tok_emb.weight"].shape[1]
    if hidden % num_heads:
        raise ConversionError(f"n_embd={hidden} is not divisible by n_head={num_heads}.")
    dropout = dropout or {}
    last_token = vocab_size - 1  # not an image code: safe as bos / eos / pad for generate()
    config = GPT2Config(
        vocab_size=vocab_size,
        n_positions=mingpt["pos_emb"].shape[1],
        n_embd=hidden,
        n_layer=_num_layers(mingpt),
        n_head=num_heads,
        n_inner=mingpt["blocks.0.mlp.0.weight"].shape[0],
        activation_function="gelu",  # minGPT uses exact erf GELU; "gelu_new" would be off by ~1e-4
        resid_pdrop=dropout.get("resid_pdrop", 0.0),
        embd_pdrop=dropout.get("embd_pdrop", 0.0),
        attn_pdrop=dropout.get("attn_pdrop", 0.0),
        layer_norm_epsilon=1e-5,
        tie_word_embeddings=False,
        bos_token_id=last_token,
        eos_token_id=last_token,
        pad_token_id=last_token,
    )
    # Built on the meta device and filled by assignment: no random initialisation of weights that are
    # overwritten anyway (the ImageNet prior has 1.4B of them), and no second copy in memory.
    with torch.device("meta"):
        model = GPT2LMHeadModel(config)
    model.load_state_dict(gpt2_state_dict(mingpt, plan.source_rows), strict=True, assign=True)
    if any(tensor.is_meta for tensor in list(model.parameters()) + list(model.buffers())):
        raise ConversionError("Internal error: some GPT-2 tensors were not filled from the checkpoint.")
    return model.eval()


# ------------------------------------------------------------------------------------- whole model


def condition_stage(params: Mapping[str, Any]) -> Tuple[str, Optional[Mapping[str, Any]]]:
    """(kind, cond-stage config) of a Net2NetTransformer's `model.params`."""
    stage = params.get("cond_stage_config")
    if params.get("unconditional", False) or stage == "__is_unconditional__":
        return "sos", None
    if stage == "__is_first_stage__":
        raise ConversionError("cond_stage_config '__is_first_stage__' is not supported (no official model uses it).")
    target = stage.get("target") if isinstance(stage, Mapping) else None
    if target == SOS_PROVIDER:
        return "sos", stage
    if target == LABELATOR:
        return "class", stage
    if target in VQGAN_TARGETS:
        return "vqgan", stage
    if target == COORD_STAGE:
        return "coordinates", stage
    raise ConversionError(
        f"Unsupported cond stage {target or stage!r}: supported are the SOS provider (unconditional), "
        f"{LABELATOR}, a VQGAN ({', '.join(sorted(VQGAN_TARGETS))}) and {COORD_STAGE}. The bounding-box scene "
        "models (COCO / OpenImages) are not converted."
    )


def _stage_vqgan(
    state_dict: Mapping[str, Any],
    prefix: str,
    stage_config: Optional[Mapping[str, Any]],
    resolution: Optional[int],
    accounting: KeyAccounting,
) -> VQGANModel:
    """Convert the frozen VQGAN stored under `prefix`, folding its key accounting into `accounting`."""
    weights = strip_prefix(state_dict, prefix)
    stage_accounting = account_vqgan_keys(weights)
    # A frozen stage's discriminator cannot be used to resume anything: it is dropped, not kept.
    for reason, keys in stage_accounting.kept_aside.items():
        stage_accounting.dropped[f"{reason} of a frozen stage"] = keys
    stage_accounting.kept_aside = {}
    accounting.merge(stage_accounting, prefix)
    used = {key: weights[key] for key in stage_accounting.used}
    if stage_config is not None:
        config = vqgan_config_from_yaml(stage_config["params"], stage_config["target"], resolution)
    else:
        config = vqgan_config_from_state_dict(used, resolution or 256, prefix)
    return build_vqgan(materialize_state_dict(used), config, prefix)


def read_token_order(state_dict: Mapping[str, Any], num_tokens: int, accounting: KeyAccounting):
    """The permuter's `forward_shuffle_idx` is exactly `token_order`: generation step i -> raster position."""
    if "permuter.forward_shuffle_idx" not in state_dict:
        return None
    order = state_dict["permuter.forward_shuffle_idx"].materialize().long()
    if sorted(order.tolist()) != list(range(num_tokens)):
        raise ConversionError(f"permuter.forward_shuffle_idx is not a permutation of the {num_tokens} latent cells.")
    accounting.used.append("permuter.forward_shuffle_idx")
    if "permuter.backward_shuffle_idx" in state_dict:
        accounting.drop("permuter.backward_shuffle_idx", "inverse of the token order")
    return None if torch.equal(order, torch.arange(num_tokens)) else order.tolist()


def account_mingpt_keys(state_dict: Mapping[str, Any], accounting: KeyAccounting) -> Dict[str, Any]:
    """The minGPT weights (prefix stripped); records used, dropped and unknown `transformer.*` keys."""
    mingpt = strip_prefix(state_dict, "transformer.")
    expected = set(mingpt_source_keys(_num_layers(mingpt)))
    missing = sorted(expected - set(mingpt))
    if missing:
        raise ConversionError(f"The minGPT weights are incomplete; missing transformer.{missing[0]} and others.")
    for key in mingpt:
        if key in expected:
            accounting.used.append("transformer." + key)
        elif key.endswith("attn.mask"):
            accounting.drop("transformer." + key, "causal attention masks (GPT-2 builds its own)")
        else:
            accounting.unrecognised.append("transformer." + key)
    return mingpt


def _check_top_level(state_dict: Mapping[str, Any], kind: str, accounting: KeyAccounting) -> None:
    for key in state_dict:
        if not key.startswith(TOP_LEVEL_PREFIXES) or (key.startswith("cond_stage_model.") and kind != "vqgan"):
            accounting.unrecognised.append(key)
        elif key.startswith("permuter.") and key not in (
            "permuter.forward_shuffle_idx",
            "permuter.backward_shuffle_idx",
        ):
            accounting.unrecognised.append(key)
    if accounting.unrecognised:
        raise ConversionError(
            f"Unrecognised keys in the checkpoint: {accounting.unrecognised[:20]}. Refusing to drop weights silently."
        )


@dataclass
class ConvertedTransformer:
    """Everything a Net2NetTransformer checkpoint converts to."""

    vqgan: VQGANModel
    transformer: GPT2LMHeadModel
    condition_vqgan: Optional[VQGANModel]
    plan: VocabularyPlan
    token_order: Optional[List[int]]
    accounting: KeyAccounting
    notes: Dict[str, Any]
    coordinate_downsample_factor: Optional[int] = None


def convert_net2net(
    state_dict: Mapping[str, Any], model_config: Optional[Mapping[str, Any]], resolution: Optional[int] = None
) -> ConvertedTransformer:
    """Convert a Net2NetTransformer state dict given its original YAML `model` block."""
    if model_config is None:
        raise ConversionError(
            "Transformer checkpoints need their original YAML (--config): the number of attention heads and the "
            "conditioning cannot be read from the weights."
        )
    if resolution is not None:
        raise ConversionError(
            "--resolution applies to VQGAN checkpoints only: a prior's sampling window is fixed by its training "
            "resolution (sample other sizes with the pipeline's height / width)."
        )
    params = model_config["params"]
    kind, stage = condition_stage(params)
    accounting = KeyAccounting()
    _check_top_level(state_dict, kind, accounting)

    vqgan = _stage_vqgan(state_dict, "first_stage_model.", params.get("first_stage_config"), resolution, accounting)
    condition_vqgan = None
    num_condition_tokens, notes, coordinate_factor = 0, {}, None
    if kind == "vqgan":
        condition_vqgan = _stage_vqgan(state_dict, "cond_stage_model.", stage, resolution, accounting)
        num_condition_tokens = condition_vqgan.config.num_embeddings
    elif kind == "class":
        num_condition_tokens = int(stage["params"]["n_classes"])
    elif kind == "coordinates":
        # CoordStage codes are round(n_embed * coordinate), so n_embed + 1 distinct tokens.
        num_condition_tokens = int(stage["params"]["n_embed"]) + 1
        coordinate_factor = int(stage["params"]["down_factor"])
    if params.get("downsample_cond_size", -1) != -1:
        notes["downsample_cond_size"] = params["downsample_cond_size"]

    gpt_params = params["transformer_config"]["params"]
    mingpt = account_mingpt_keys(state_dict, accounting)
    check_mingpt_shapes(mingpt)
    check_causal_masks(mingpt)
    plan = plan_vocabulary(
        kind,
        vqgan.config.num_embeddings,
        mingpt["tok_emb.weight"].shape[0],
        num_condition_tokens,
        sos_token=int((stage or {}).get("params", {}).get("sos_token", params.get("sos_token", 0))),
    )
    weights = {key: value for key, value in mingpt.items() if not key.endswith("attn.mask")}
    transformer = convert_mingpt(materialize_state_dict(weights), int(gpt_params["n_head"]), plan, gpt_params)
    grid = vqgan.config.resolution // vqgan.config.downsample_factor
    prefix = grid * grid if kind in ("vqgan", "coordinates") else 1
    if transformer.config.n_positions < prefix + grid * grid - 1:
        raise ConversionError(
            f"block_size={transformer.config.n_positions} cannot hold a {prefix}-token prefix and a {grid}x{grid} "
            "latent grid at the first stage's training resolution; check the config's ddconfig.resolution."
        )
    token_order = read_token_order(state_dict, grid * grid, accounting)
    return ConvertedTransformer(
        vqgan, transformer, condition_vqgan, plan, token_order, accounting, notes, coordinate_factor
    )


def save_converted(
    converted: ConvertedTransformer, output_dir: str, id2label: Optional[Dict[int, str]] = None
) -> None:
    """Write the converted models as a `TamingPipeline` directory."""
    layout = converted.plan.layout
    from ..pipelines.taming import TamingPipeline  # noqa: PLC0415 - diffusers import only when needed

    pipeline = TamingPipeline(
        vqgan=converted.vqgan,
        transformer=converted.transformer,
        condition_vqgan=converted.condition_vqgan,
        conditioning=layout.conditioning,
        num_condition_tokens=layout.num_condition_tokens,
        sos_token_id=layout.sos_token_id,
        null_class_token_id=layout.null_class_token_id,
        token_order=converted.token_order,
        id2label=id2label,
        coordinate_downsample_factor=converted.coordinate_downsample_factor,
    )
    pipeline.save_pretrained(output_dir)


def convert_transformer(
    state_dict: Mapping[str, Any],
    model_config: Optional[Mapping[str, Any]],
    output_dir: str,
    resolution: Optional[int] = None,
    verbose: bool = False,
    id2label: Optional[Dict[int, str]] = None,
) -> ConvertedTransformer:
    """Convert a Net2NetTransformer checkpoint and write it to `output_dir`."""
    converted = convert_net2net(state_dict, model_config, resolution)
    if id2label is not None and converted.plan.kind != "class":
        raise ConversionError("--id2label only applies to class-conditional transformers.")
    save_converted(converted, output_dir, id2label)
    print(converted.accounting.summary(verbose))
    for name, value in converted.notes.items():
        print(f"note: the original used {name}={value}; apply it to condition inputs yourself.")
    return converted
