"""Model cards for TamingPipeline repositories on the Hub."""

from typing import Dict, Optional

from huggingface_hub import ModelCard, ModelCardData

_PIPELINE_TAGS = {
    "unconditional": "unconditional-image-generation",
    "completion": "unconditional-image-generation",
    "class": "image-generation",
    "spatial": "image-to-image",
    "coordinates": "image-to-image",
    "text": "text-to-image",
}

_KIND_TAGS = {"text": "text-to-image"}

_CALLS = {
    "unconditional": "pipe(batch_size=4, top_k=250, generator=generator).images",
    "completion": "pipe(image=image, num_rows_to_keep=8, top_k=250, generator=generator).images",
    "class": "pipe(class_labels=[1, 2], top_k=600, top_p=0.92, generator=generator).images",
    "spatial": "pipe(condition_image=segmentation_map, top_k=100, generator=generator).images",
    "coordinates": "pipe(condition_image=coordinate_map, top_k=100, generator=generator).images",
    "text": 'pipe(prompt="a red apple", num_images_per_prompt=4, generator=generator).images',
}


def _usage(repo_id: str, conditioning: str) -> str:
    return "\n".join(
        [
            "```python",
            "import torch",
            "from taming_hf import TamingPipeline",
            "",
            f'pipe = TamingPipeline.from_pretrained("{repo_id}")',
            "generator = torch.Generator().manual_seed(0)",
            f"images = {_CALLS[conditioning]}",
            "```",
        ]
    )


def _configuration(pipeline) -> str:
    vqgan, gpt = pipeline.vqgan.config, pipeline.transformer.config
    layout = pipeline.layout
    factor = vqgan.downsample_factor
    rows = [
        ("conditioning", layout.conditioning),
        ("image codes (VQGAN codebook)", vqgan.num_embeddings),
        ("condition tokens", layout.num_condition_tokens),
        ("sos_token_id", layout.sos_token_id),
        ("null_class_token_id", layout.null_class_token_id),
        ("VQGAN resolution / downsampling", f"{vqgan.resolution} px / f{factor}"),
        ("latent grid", f"{vqgan.resolution // factor}x{vqgan.resolution // factor}"),
        ("transformer", f"{gpt.n_layer} layers, {gpt.n_head} heads, {gpt.n_embd} dim"),
        ("vocab_size / context", f"{gpt.vocab_size} / {gpt.n_positions}"),
        ("token order", "raster" if pipeline.config.token_order is None else "custom permutation"),
        ("default sampling (transformer/generation_config.json)", _sampling_defaults(pipeline)),
    ]
    if layout.conditioning == "text":
        rows[3:5] = _text_rows(pipeline)
    lines = ["| setting | value |", "|---|---|"]
    lines += [f"| {name} | {value} |" for name, value in rows]
    return "\n".join(lines)


def _text_rows(pipeline) -> list:
    """The text layout's rows, in place of the SOS / null-class rows."""
    vocabulary, config = pipeline.text_vocabulary, pipeline.config
    kept = vocabulary.token_ids
    tokens = (
        f"all {vocabulary.tokenizer_vocab_size} tokenizer ids"
        if kept is None
        else (
            f"{len(kept)} of the tokenizer's {vocabulary.tokenizer_vocab_size} ids (the others: text_unknown_token_id "
            f"{vocabulary.unknown_token_id})"
        )
    )
    null = "none (no caption dropout)" if config.null_caption is None else repr(config.null_caption)
    return [
        ("tokenizer", type(pipeline.tokenizer).__name__),
        ("max_text_length", vocabulary.max_text_length),
        ("text tokens", tokens),
        ("text_pad_token_id", vocabulary.pad_token_id),
        ("null caption (guidance)", null),
    ]


def _sampling_defaults(pipeline) -> str:
    """The settings a call uses when it leaves top_k, top_p, temperature and guidance_scale at None."""
    settings = pipeline.sampling_settings()
    parts = [
        f"top_k {settings.top_k}" if settings.top_k else "no top-k",
        f"top_p {settings.top_p}" if settings.top_p not in (None, 1.0) else "no top-p",
        f"temperature {settings.temperature}",
        f"guidance {settings.guidance_scale}" if settings.guidance_scale != 1.0 else "no guidance",
    ]
    return ", ".join(parts)


def _metrics(metrics: Optional[Dict[str, float]]) -> str:
    if not metrics:
        return "No evaluation metrics were recorded for this checkpoint."
    lines = ["| metric | value |", "|---|---|"]
    lines += [f"| {name} | {value} |" for name, value in metrics.items()]
    return "\n".join(lines)


def create_model_card(
    pipeline, repo_id: Optional[str] = None, metrics: Optional[Dict[str, float]] = None
) -> ModelCard:
    """
    Build the model card of a [`TamingPipeline`]: YAML metadata, a usage snippet for its conditioning
    kind, its configuration and, when known, evaluation metrics.
    """
    repo_id = repo_id or "<user>/<repo>"
    conditioning = pipeline.layout.conditioning
    data = ModelCardData(
        library_name="taming_hf",
        license="mit",
        pipeline_tag=_PIPELINE_TAGS[conditioning],
        # "text-generation" is the Hub's tag for language models; a text prior makes images
        tags=[
            "taming-transformers",
            "vqgan",
            "autoregressive",
            _KIND_TAGS.get(conditioning, f"{conditioning}-generation"),
        ],
    )
    sections = [
        "---",
        data.to_yaml(),
        "---",
        "",
        f"# {repo_id.split('/')[-1]}",
        "",
        "A Taming Transformers pipeline (VQGAN + autoregressive GPT prior over codebook indices, "
        "[Esser et al., CVPR 2021](https://arxiv.org/abs/2012.09841)) for the "
        "`taming_hf` library (`pip install taming_hf`).",
        "",
        "## Usage",
        "",
        _usage(repo_id, conditioning),
        "",
        "## Configuration",
        "",
        _configuration(pipeline),
        "",
        "## Metrics",
        "",
        _metrics(metrics),
        "",
    ]
    return ModelCard("\n".join(sections))
