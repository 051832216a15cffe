"""Tests of VQGANCLIPPipeline on tiny random models: a 2x-downsampling VQGAN and a one-layer CLIP of 32 px."""

import importlib.util
import json
import re
from pathlib import Path
from typing import Optional

import numpy as np
import PIL.Image
import pytest
import torch
from diffusers.callbacks import PipelineCallback
from transformers import CLIPModel, CLIPProcessor, CLIPTokenizer

from taming_hf import VQGANCLIPPipeline, VQGANConfig, VQGANModel, export_frames
from taming_hf.pipelines.vqgan_clip import MakeCutouts, WeightedPrompt, parse_prompt, parse_prompts
from taming_hf.pipelines.vqgan_clip.losses import clamp_with_grad, spherical_distance
from taming_hf.pipelines.vqgan_clip.pipeline_vqgan_clip import checkpointing_in_eval
from text_fixtures import tiny_clip, tiny_clip_processor, tiny_clip_tokenizer

CUT_SIZE = 32
# text_fixtures' tiny CLIP and processor at the cut size, a little wider than the text tests' one.
CLIP_SIZES = dict(seed=1, image_size=CUT_SIZE, hidden_size=32, projection_dim=16)


def tiny_vqgan(seed: int = 0, **overrides) -> VQGANModel:
    torch.manual_seed(seed)
    params = dict(
        embed_dim=4,
        num_embeddings=32,
        latent_channels=4,
        resolution=16,
        base_channels=32,
        channel_multiplier=[1, 1],
        num_res_blocks=1,
        attn_resolutions=[],
    )
    params.update(overrides)
    return VQGANModel(VQGANConfig(**params)).eval()


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory) -> CLIPTokenizer:
    return tiny_clip_tokenizer(tmp_path_factory.mktemp("tokenizer"))


def make_pipeline(tokenizer, vqgan: Optional[VQGANModel] = None, **kwargs) -> VQGANCLIPPipeline:
    pipe = VQGANCLIPPipeline(vqgan or tiny_vqgan(), *tiny_clip(tokenizer, **CLIP_SIZES), **kwargs)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture
def pipe(tokenizer) -> VQGANCLIPPipeline:
    return make_pipeline(tokenizer)


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


FAST = dict(num_inference_steps=3, cutn=2)
# Deterministic objective: one cutout covering the whole 32 px image, no augmentations.
EXACT = dict(cutn=1, height=CUT_SIZE, width=CUT_SIZE, augmentations=torch.nn.Identity())


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def spread_codebook(pipe: VQGANCLIPPipeline, seed: int = 3) -> None:
    """Give the tiny VQGAN a codebook of unit scale, as trained ones have (its init is +-1/K)."""
    torch.manual_seed(seed)
    with torch.no_grad():
        pipe.vqgan.get_codebook().normal_()


def clip_distance(pipe: VQGANCLIPPipeline, images: torch.Tensor, text: str) -> torch.Tensor:
    """Spherical distance of CLIP's embedding of `(B, 3, 32, 32)` images in [0, 1] to that of `text`."""
    processor = pipe.clip_processor
    mean = torch.tensor(processor.image_processor.image_mean).view(1, 3, 1, 1)
    std = torch.tensor(processor.image_processor.image_std).view(1, 3, 1, 1)
    with torch.no_grad():
        image_embeds = pipe.clip.get_image_features(pixel_values=(images - mean) / std).pooler_output
        text_embeds = pipe.clip.get_text_features(**processor.tokenizer([text], return_tensors="pt")).pooler_output
    return spherical_distance(image_embeds, text_embeds)


# ------------------------------------------------------------------------------------- prompts


def test_parse_prompt_splits_parts_and_weights():
    assert parse_prompt("a red apple:1 | blurry:-0.5") == [
        WeightedPrompt("a red apple", 1.0),
        WeightedPrompt("blurry", -0.5),
    ]
    assert parse_prompt("photo: a cat") == [WeightedPrompt("photo: a cat", 1.0)]
    assert parse_prompt("time 12:30:2e-1") == [WeightedPrompt("time 12:30", 0.2)]
    assert parse_prompt("  a dog  ") == [WeightedPrompt("a dog", 1.0)]


def test_parse_prompts_takes_lists_and_literal_texts_with_weights():
    assert parse_prompts(["a cat:2", "a dog"]) == [WeightedPrompt("a cat", 2.0), WeightedPrompt("a dog", 1.0)]
    assert parse_prompts(["a:b | c"], [0.5]) == [WeightedPrompt("a:b | c", 0.5)]
    assert parse_prompts(None) == []


@pytest.mark.parametrize(
    "prompt, weights, message",
    [
        ("", None, "Prompt '' has an empty part ''; every '|'-separated part needs text."),
        ("a cat | ", None, "Prompt 'a cat | ' has an empty part ' '; every '|'-separated part needs text."),
        (":0.5", None, "Prompt ':0.5' has an empty part ':0.5'; every '|'-separated part needs text."),
        ([], None, "prompt is an empty list; pass at least one text prompt (or None for image prompts only)."),
        (["a", "b"], [1.0], "Got 2 prompts but 1 prompt_weights; pass one weight per prompt."),
        (["a"], [float("nan")], "The weight of prompt 'a' must be a finite number, got nan."),
        ("a:1e999", None, "The weight of prompt 'a' must be a finite number, got inf."),
        (["  "], [1.0], "Prompt '  ' is empty; every prompt needs text."),
        (None, [1.0], "prompt_weights=[1.0] were given without a prompt."),
        (3, None, "prompt must be a string or a list of strings, got 3."),
    ],
)
def test_parse_prompts_errors(prompt, weights, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_prompts(prompt, weights)


@pytest.mark.parametrize(
    "prompt, total",
    [("a cat:1 | blurry:-1", "0"), ("blurry:-0.5", "-0.5")],
)
def test_weights_that_do_not_sum_to_a_positive_number_raise(pipe, prompt, total):
    weights = [w.weight for w in parse_prompt(prompt)]
    message = f"The prompt weights {weights} sum to {total}; they must sum to a positive number"
    with pytest.raises(ValueError, match=re.escape(message)):
        pipe(prompt, **FAST)


def test_call_without_any_prompt_raises(pipe):
    with pytest.raises(
        ValueError, match=re.escape("VQGANCLIPPipeline needs something to steer towards: pass a prompt")
    ):
        pipe(**FAST)


# ---------------------------------------------------------------------------- losses, cutouts


def test_spherical_distance_of_same_orthogonal_and_opposite_directions():
    u, v = torch.tensor([2.0, 0.0]), torch.tensor([0.0, 3.0])
    torch.testing.assert_close(spherical_distance(u, u), torch.tensor(0.0))
    torch.testing.assert_close(spherical_distance(u, v), torch.tensor(torch.pi**2 / 8))
    torch.testing.assert_close(spherical_distance(u, -u), torch.tensor(torch.pi**2 / 2))


def test_clamp_with_grad_keeps_inward_gradients_only():
    values = torch.tensor([-0.5, 0.5, 1.5, 1.5, -0.5], requires_grad=True)
    clamped = clamp_with_grad(values)
    assert clamped.tolist() == [0.0, 0.5, 1.0, 1.0, 0.0]
    # descent moves by -grad: entry 2 (above 1, grad > 0) goes down, entry 3 would go further up
    clamped.backward(torch.tensor([-1.0, 2.0, 3.0, -4.0, 5.0]))
    assert values.grad.tolist() == [-1.0, 2.0, 3.0, 0.0, 0.0]


def test_cutouts_of_an_image_of_the_cut_size_are_the_image():
    images = torch.rand(2, 3, 32, 32)
    crops = MakeCutouts(32, cutn=3, augmentations=torch.nn.Identity())(images, seeded())
    assert crops.shape == (6, 3, 32, 32)
    torch.testing.assert_close(crops, images.repeat(3, 1, 1, 1))


def test_cutouts_of_non_square_images_are_squares_of_the_cut_size():
    images = torch.rand(2, 3, 16, 40, requires_grad=True)
    crops = MakeCutouts(32, cutn=4, cut_pow=2.0)(images, seeded())
    assert crops.shape == (8, 3, 32, 32)
    crops.sum().backward()  # the default augmentations are differentiable
    assert images.grad.abs().sum() > 0


# --------------------------------------------------------------------------- the optimisation


@pytest.mark.parametrize("parameterization, learning_rate", [("latents", 0.1), ("logits", 2.0)])
def test_loss_decreases_over_steps(pipe, parameterization, learning_rate):
    out = pipe(
        "a red apple",
        num_inference_steps=12,
        learning_rate=learning_rate,
        parameterization=parameterization,
        generator=seeded(),
        output_type="latent",
        **EXACT,
    )
    losses = out.losses[:, 0]
    assert losses.shape == (12,)
    assert losses[-3:].max() < losses[0] - 0.2


def test_gradients_reach_only_the_latents_and_models_are_unchanged(pipe):
    pipe.vqgan.decoder.conv_in.weight.requires_grad_(False)  # a flag the call must restore as it was
    flags = {name: p.requires_grad for name, p in [*pipe.vqgan.named_parameters(), *pipe.clip.named_parameters()]}
    before = {**pipe.vqgan.state_dict(), **{f"clip.{k}": v for k, v in pipe.clip.state_dict().items()}}
    before = {name: tensor.clone() for name, tensor in before.items()}
    seen = []

    def check_frozen(pipeline, step, timestep, callback_kwargs):
        parameters = [*pipeline.vqgan.parameters(), *pipeline.clip.parameters()]
        seen.append((all(not p.requires_grad and p.grad is None for p in parameters), callback_kwargs["latents"]))
        return callback_kwargs

    start = pipe("a cat", num_inference_steps=0, generator=seeded(), output_type="latent", **EXACT).indices
    pipe("a cat", num_inference_steps=3, generator=seeded(), callback_on_step_end=check_frozen, **EXACT)
    assert [frozen for frozen, _ in seen] == [True, True, True]
    # the latents move: the gradient reached them
    start_latents = pipe.vqgan.get_codebook()[start].permute(0, 3, 1, 2)
    assert not torch.equal(seen[0][1], start_latents)
    after = {**pipe.vqgan.state_dict(), **{f"clip.{k}": v for k, v in pipe.clip.state_dict().items()}}
    assert all(torch.equal(before[name], after[name]) for name in before)
    assert {
        name: p.requires_grad for name, p in [*pipe.vqgan.named_parameters(), *pipe.clip.named_parameters()]
    } == flags
    assert all(p.grad is None for p in [*pipe.vqgan.parameters(), *pipe.clip.parameters()])
    assert not pipe.vqgan.training and not pipe.clip.training


def test_seeded_runs_repeat_exactly_and_leave_the_global_rng_alone(pipe):
    kwargs = dict(num_inference_steps=3, cutn=3, cut_pow=0.5, output_type="pt")  # default augmentations
    state = torch.get_rng_state()
    first = pipe("a red apple | blurry:-0.2", generator=seeded(7), **kwargs)
    assert torch.equal(torch.get_rng_state(), state)
    second = pipe("a red apple | blurry:-0.2", generator=seeded(7), **kwargs)
    other = pipe("a red apple | blurry:-0.2", generator=seeded(8), **kwargs)
    assert torch.equal(first.images, second.images) and torch.equal(first.losses, second.losses)
    assert not torch.equal(first.indices, other.indices)


def test_negative_weight_pushes_away(pipe):
    kwargs = dict(num_inference_steps=20, output_type="pt", **EXACT)
    plain = pipe("a cat", generator=seeded(1), **kwargs).images
    distances = [clip_distance(pipe, plain, "apple").item()]
    for weight in ("-0.5", "-1", "-1.5"):  # the larger the negative weight, the farther from "apple"
        pushed = pipe(f"a cat:2 | apple:{weight}", generator=seeded(1), **kwargs).images
        distances.append(clip_distance(pipe, pushed, "apple").item())
    assert distances == sorted(distances) and distances[-1] > distances[0] + 0.1, distances


def test_init_image_is_reproduced_at_zero_steps(pipe):
    init = torch.rand(2, 3, 16, 24) * 2 - 1
    out = pipe("a cat", init_image=init, num_inference_steps=0, num_images_per_prompt=2, output_type="pt")
    encoded = pipe.vqgan.encode(init)
    assert torch.equal(out.indices, encoded.indices)
    expected = pipe.image_processor.postprocess(pipe.vqgan.decode_indices(encoded.indices), output_type="pt")
    # up to float rounding: the decoder sees the straight-through `latents + (codes - latents).detach()`
    torch.testing.assert_close(out.images, expected, rtol=0, atol=1e-5)
    assert out.losses.shape == (0, 2)


def test_high_init_weight_keeps_the_init_codes(pipe):
    spread_codebook(pipe)
    init = torch.rand(1, 3, 32, 32) * 2 - 1
    codes = pipe.vqgan.encode(init).indices
    kwargs = dict(
        init_image=init, num_inference_steps=20, output_type="latent", cutn=1, augmentations=torch.nn.Identity()
    )
    assert pipe("a red apple", init_weight=1e3, **kwargs).indices.tolist() == codes.tolist()
    assert (pipe("a red apple", init_weight=0.0, **kwargs).indices != codes).float().mean() > 0.5


def test_pil_init_image_is_resized_to_the_output_size(pipe):
    init = PIL.Image.fromarray(np.random.default_rng(0).integers(0, 255, (20, 30, 3), dtype=np.uint8))
    out = pipe("a cat", init_image=init, height=16, width=24, num_inference_steps=0)
    assert out.images[0].size == (24, 16) and out.indices.shape == (1, 8, 12)
    resized = torch.from_numpy(np.asarray(init.resize((24, 16), PIL.Image.Resampling.LANCZOS), dtype=np.float32))
    assert torch.equal(out.indices, pipe.vqgan.encode(resized.permute(2, 0, 1)[None] / 127.5 - 1).indices)


def test_image_prompt_of_the_start_image_has_zero_loss(pipe):
    start = pipe("a cat", num_inference_steps=0, generator=seeded(2), output_type="pt", **EXACT).images
    out = pipe(image_prompts=start * 2 - 1, num_inference_steps=1, generator=seeded(2), **EXACT)
    assert out.losses.item() < 1e-6
    pil_prompt = pipe.image_processor.postprocess(start * 2 - 1)[0]
    assert pipe(image_prompts=pil_prompt, image_prompt_weights=[2.0], **FAST).losses.shape == (3, 1)


@pytest.mark.parametrize("start", ["codes", "noise"])
def test_starts_are_seeded_code_grids(pipe, start):
    kwargs = dict(start=start, num_inference_steps=0, output_type="latent", num_images_per_prompt=2)
    first = pipe("a cat", generator=seeded(4), **kwargs).indices
    assert first.shape == (2, 8, 8) and 0 <= first.min() and first.max() < 32
    assert torch.equal(first, pipe("a cat", generator=seeded(4), **kwargs).indices)
    assert not torch.equal(first[0], first[1])


def test_non_square_height_and_width(pipe):
    out = pipe("a cat", height=16, width=32, **FAST)
    assert out.images[0].size == (32, 16) and out.indices.shape == (1, 8, 16)


@pytest.mark.parametrize("optimizer", ["sgd", "adamw", torch.optim.RMSprop])
def test_other_optimizers(pipe, optimizer):
    out = pipe("a cat", optimizer=optimizer, learning_rate=0.05, output_type="np", **FAST)
    assert out.images.shape == (1, 16, 16, 3) and torch.isfinite(out.losses).all()


def test_bfloat16_autocast_runs(pipe):
    out = pipe("a cat", autocast_dtype=torch.bfloat16, output_type="pt", **FAST)
    assert out.images.dtype == torch.float32 and torch.isfinite(out.losses).all()


def test_decoder_checkpointing_gives_the_same_run_and_recomputes(pipe):
    kwargs = dict(num_inference_steps=2, output_type="pt", **EXACT)
    calls = []
    pipe.vqgan.decoder.up[0].block[0].conv1.register_forward_hook(lambda *_: calls.append(1))
    plain = pipe("a red apple", generator=seeded(5), **kwargs)
    plain_calls = len(calls)
    calls.clear()
    pipe.vqgan.activation_checkpointing_enable()
    checkpointed = pipe("a red apple", generator=seeded(5), **kwargs)
    assert len(calls) == plain_calls + 2  # each step's decode runs again in the backward pass
    torch.testing.assert_close(checkpointed.losses, plain.losses)
    torch.testing.assert_close(checkpointed.images, plain.images)
    assert not any(module.training for module in pipe.vqgan.modules())


def test_checkpointing_in_eval_leaves_dropout_off(pipe):
    pipe.clip.activation_checkpointing_enable()
    with checkpointing_in_eval(pipe.clip):
        layer = pipe.clip.vision_model.encoder.layers[0]
        assert layer.training and not layer.self_attn.training and not layer.mlp.training
    assert not any(module.training for module in pipe.clip.modules())


# ----------------------------------------------------------------------------- callbacks, frames


def test_callback_gets_latents_and_loss_replaces_latents_and_interrupts(pipe):
    codes = torch.randint(0, 32, (1, 8, 8), generator=seeded(9))
    seen = {}

    def callback(pipeline, step, timestep, callback_kwargs):
        seen[step] = {name: tensor.shape for name, tensor in callback_kwargs.items()}
        if step == 1:
            pipeline._interrupt = True
            return {"latents": pipeline.vqgan.get_codebook()[codes].permute(0, 3, 1, 2)}
        return callback_kwargs

    out = pipe(
        "a cat",
        num_inference_steps=5,
        callback_on_step_end=callback,
        callback_on_step_end_tensor_inputs=["latents", "loss"],
        output_type="latent",
    )
    assert seen == {0: {"latents": (1, 4, 8, 8), "loss": (1,)}, 1: {"latents": (1, 4, 8, 8), "loss": (1,)}}
    assert out.losses.shape == (2, 1) and pipe.num_timesteps == 5
    assert torch.equal(out.indices, codes)


def test_diffusers_pipeline_callback_is_accepted(pipe):
    class CountSteps(PipelineCallback):
        tensor_inputs = ["loss"]

        def callback_fn(self, pipeline, step_index, timestep, callback_kwargs):
            self.steps = step_index + 1
            return callback_kwargs

    counter = CountSteps(cutoff_step_ratio=None, cutoff_step_index=100)
    pipe("a cat", callback_on_step_end=counter, **FAST)
    assert counter.steps == 3


def test_callback_errors(pipe):
    with pytest.raises(ValueError, match=re.escape("callback_on_step_end_tensor_inputs must be a list of names from")):
        pipe("a cat", callback_on_step_end=lambda *a: None, callback_on_step_end_tensor_inputs=["images"], **FAST)
    with pytest.raises(
        ValueError,
        match=re.escape("callback_on_step_end returned latents (2, 2); expected a tensor of shape (1, 4, 8, 8)."),
    ):
        pipe("a cat", callback_on_step_end=lambda *a: {"latents": torch.zeros(2, 2)}, **FAST)


def test_intermediate_frames_and_gif(pipe, tmp_path):
    out = pipe(
        "a cat",
        num_inference_steps=5,
        intermediate_interval=2,
        return_intermediates=True,
        num_images_per_prompt=2,
        cutn=1,
    )
    assert [len(frames) for frames in out.frames] == [4, 4]  # steps 0, 2, 4 and the end
    assert out.frames[0][-1].tobytes() == out.images[0].tobytes()
    path = export_frames(out.frames[1], tmp_path / "run.gif", fps=5)
    with PIL.Image.open(path) as gif:
        assert gif.n_frames == 4 and gif.size == (16, 16)


def test_export_frames_errors(tmp_path, monkeypatch):
    from taming_hf.pipelines.vqgan_clip import frames

    image = PIL.Image.new("RGB", (8, 8))
    with pytest.raises(ValueError, match=re.escape("export_frames writes .gif or .mp4 files, got")):
        export_frames([image], tmp_path / "run.png")
    with pytest.raises(
        ValueError,
        match=re.escape(
            "export_frames takes the PIL frames of one image (output.frames[i]), got a list holding list."
        ),
    ):
        export_frames([[image]], tmp_path / "run.gif")
    monkeypatch.setattr(frames, "mp4_encoder_available", lambda: False)
    with pytest.raises(ImportError, match=re.escape("needs an MP4 encoder: `pip install imageio imageio-ffmpeg`")):
        export_frames([image], tmp_path / "run.mp4")


# ------------------------------------------------------------------------------------------ errors


def test_error_vqgan_that_is_not_rgb(tokenizer):
    message = (
        "VQGANCLIPPipeline needs an RGB VQGAN, since CLIP scores 3-channel images: the vqgan has in_channels=1, "
        "out_channels=1; expected 3 and 3."
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        VQGANCLIPPipeline(tiny_vqgan(in_channels=1, out_channels=1), *tiny_clip(tokenizer, **CLIP_SIZES))


def test_error_processor_size_differs_from_clip_image_size(tokenizer):
    message = (
        "The clip_processor prepares 24x24 images, but the CLIP vision model takes 32x32 (vision_config.image_size)"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        VQGANCLIPPipeline(tiny_vqgan(), tiny_clip(tokenizer, **CLIP_SIZES)[0], tiny_clip_processor(tokenizer, 24))


def test_error_tokenizer_larger_than_clip_vocabulary(tokenizer):
    message = (
        f"The clip_processor's tokenizer has {len(tokenizer)} tokens, but the CLIP text model's vocabulary holds 20"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        VQGANCLIPPipeline(tiny_vqgan(), *tiny_clip(tokenizer, **CLIP_SIZES, vocab_size=20))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(init_image=torch.zeros(1, 1, 16, 16)), "init_image has 1 channels, but its VQGAN expects 3."),
        (
            dict(init_image=torch.zeros(1, 3, 16, 24), height=16, width=16),
            "init_image is 16x24 pixels, but the output is 16x16 (height x width); pass a tensor of the output size",
        ),
        (
            dict(init_image=torch.zeros(1, 3, 15, 16)),
            "height and width must be positive multiples of the VQGAN's downsampling factor 2, got 15x16.",
        ),
        (dict(init_image=torch.zeros(3, 3, 16, 16), num_images_per_prompt=2), "init_image holds 3 images; pass one"),
        (dict(init_image=torch.full((1, 3, 16, 16), float("nan"))), "init_image holds 768 NaN or infinite value(s)"),
        (dict(learning_rate=float("nan")), "learning_rate must be a positive finite number, got nan."),
        (dict(learning_rate=float("inf")), "learning_rate must be a positive finite number, got inf."),
        (dict(learning_rate=0.0), "learning_rate must be a positive finite number, got 0.0."),
        (dict(cutn=0), "cutn must be an integer >= 1, got 0."),
        (dict(num_inference_steps=-1), "num_inference_steps must be an integer >= 0, got -1."),
        (dict(cut_pow=float("inf")), "cut_pow must be a positive finite number, got inf."),
        (dict(init_weight=-1.0), "init_weight must be a finite number >= 0, got -1.0."),
        (
            dict(optimizer="lbfgs"),
            "optimizer must be one of ['adam', 'adamw', 'sgd'] or a torch.optim class, got 'lbfgs'.",
        ),
        (dict(parameterization="pixels"), "parameterization must be one of ['latents', 'logits'], got 'pixels'."),
        (dict(start="zeros"), "start must be one of ['codes', 'noise'], got 'zeros'."),
        (
            dict(autocast_dtype=torch.float64),
            "autocast_dtype must be None, torch.float16 or torch.bfloat16, got torch.float64.",
        ),
        (
            dict(height=9),
            "height and width must be positive multiples of the VQGAN's downsampling factor 2, got 9x16.",
        ),
        (dict(generator=0), "generator must be a torch.Generator or None, got int."),
        (dict(image_prompt_weights=[1.0]), "image_prompt_weights=[1.0] were given without image_prompts."),
    ],
)
def test_bad_inputs_raise_before_any_work(pipe, monkeypatch, kwargs, message):
    monkeypatch.setattr(pipe, "encode_prompts", lambda *a: pytest.fail("work started before the checks"))
    with pytest.raises(ValueError, match=re.escape(message)):
        pipe("a cat", **kwargs)


# ------------------------------------------------------------------------------------- save, load


def test_save_load_round_trip(pipe, tmp_path):
    pipe.save_pretrained(tmp_path)
    assert {"model_index.json", "vqgan", "clip", "clip_processor"} <= {p.name for p in tmp_path.iterdir()}
    loaded = VQGANCLIPPipeline.from_pretrained(tmp_path)
    loaded.set_progress_bar_config(disable=True)
    assert isinstance(loaded.vqgan, VQGANModel) and isinstance(loaded.clip, CLIPModel)
    assert isinstance(loaded.clip_processor, CLIPProcessor)
    kwargs = dict(num_inference_steps=2, cutn=2, output_type="pt")
    expected = pipe("a red apple | blurry:-0.5", generator=seeded(3), **kwargs)
    got = loaded("a red apple | blurry:-0.5", generator=seeded(3), **kwargs)
    assert torch.equal(got.images, expected.images) and torch.equal(got.losses, expected.losses)


def test_folder_that_only_references_its_components(pipe, tmp_path):
    pipe.vqgan.save_pretrained(tmp_path / "vqgan-model")
    pipe.clip.save_pretrained(tmp_path / "clip-repo" / "clip")
    pipe.clip_processor.save_pretrained(tmp_path / "clip-repo" / "processor")
    sources = {
        "vqgan": "../vqgan-model",  # relative to the pipeline folder
        "clip": [str(tmp_path / "clip-repo"), "clip"],
        "clip_processor": [str(tmp_path / "clip-repo"), "processor"],
    }
    referencing = VQGANCLIPPipeline(pipe.vqgan, pipe.clip, pipe.clip_processor, component_sources=sources)
    referencing.save_pretrained(tmp_path / "pipeline")
    assert [p.name for p in (tmp_path / "pipeline").iterdir()] == ["model_index.json"]
    loaded = VQGANCLIPPipeline.from_pretrained(tmp_path / "pipeline")
    loaded.set_progress_bar_config(disable=True)
    assert loaded.config.component_sources == sources
    kwargs = dict(num_inference_steps=2, cutn=2, output_type="latent")
    expected = pipe("a cat", generator=seeded(3), **kwargs).indices
    assert torch.equal(loaded("a cat", generator=seeded(3), **kwargs).indices, expected)


def test_from_pretrained_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=re.escape(f"no folder {tmp_path / 'missing'}")):
        VQGANCLIPPipeline.from_pretrained(tmp_path / "missing")
    (tmp_path / "pipe").mkdir()
    index = {
        "_class_name": "VQGANCLIPPipeline",
        "vqgan": ["taming_hf", "VQGANModel"],
        "component_sources": {"vqgan": "../nowhere"},
    }
    (tmp_path / "pipe" / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(FileNotFoundError, match=re.escape("component_sources['vqgan'] ")):
        VQGANCLIPPipeline.from_pretrained(tmp_path / "pipe")


def test_bad_component_sources(pipe):
    with pytest.raises(
        ValueError,
        match=re.escape("component_sources names 'unet'; the components are ['vqgan', 'clip', 'clip_processor']."),
    ):
        VQGANCLIPPipeline(pipe.vqgan, pipe.clip, pipe.clip_processor, component_sources={"unet": "x"})


# ------------------------------------------------------------------------------- scripts/vqgan_clip.py


def load_script():
    path = Path(__file__).resolve().parents[1] / "scripts" / "vqgan_clip.py"
    spec = importlib.util.spec_from_file_location("script_vqgan_clip", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_script_writes_the_image_and_frames_from_vqgan_and_clip_folders(pipe, tmp_path):
    pipe.vqgan.save_pretrained(tmp_path / "vqgan")
    pipe.clip.save_pretrained(tmp_path / "clip")
    pipe.clip_processor.save_pretrained(tmp_path / "clip")
    init = tmp_path / "init.png"
    PIL.Image.fromarray(np.random.default_rng(0).integers(0, 255, (12, 20, 3), dtype=np.uint8)).save(init)
    script = load_script()
    args = script.parse_args(
        [
            "--vqgan",
            str(tmp_path / "vqgan"),
            "--clip",
            str(tmp_path / "clip"),
            "--prompt",
            "a cat | blurry:-0.5",
            "--init_image",
            str(init),
            "--height",
            "16",
            "--width",
            "24",
            "--steps",
            "4",
            "--cutn",
            "2",
            "--seed",
            "1",
            "--output",
            str(tmp_path / "out" / "cat.png"),
            "--save_frames",
            str(tmp_path / "cat.gif"),
            "--frame_interval",
            "2",
        ]
    )
    script.main(args)
    with PIL.Image.open(tmp_path / "out" / "cat.png") as image:
        assert image.size == (24, 16)
        written = np.asarray(image)
    expected = pipe(
        "a cat | blurry:-0.5",
        init_image=PIL.Image.open(init).convert("RGB"),
        height=16,
        width=24,
        num_inference_steps=4,
        cutn=2,
        generator=seeded(1),
    ).images[0]
    assert np.array_equal(written, np.asarray(expected))
    with PIL.Image.open(tmp_path / "cat.gif") as gif:
        assert gif.n_frames == 3  # steps 0, 2 and the end


def test_script_runs_from_a_pipeline_folder(pipe, tmp_path):
    pipe.save_pretrained(tmp_path / "pipeline")
    script = load_script()
    script.main(
        script.parse_args(
            [
                "--pipeline",
                str(tmp_path / "pipeline"),
                "--prompt",
                "a dog",
                "--steps",
                "1",
                "--cutn",
                "1",
                "--output",
                str(tmp_path / "dog.png"),
            ]
        )
    )
    assert PIL.Image.open(tmp_path / "dog.png").size == (16, 16)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--prompt", "a cat"], "pass either --pipeline, or --vqgan and --clip."),
        (["--vqgan", "{tmp}/v", "--prompt", "a cat"], "--vqgan and --clip go together: pass both (or --pipeline)."),
        (["--pipeline", "{tmp}"], 'pass --prompt "text:weight | text:weight" and/or --image_prompt FILES.'),
        (["--pipeline", "{tmp}/missing", "--prompt", "a"], "--pipeline '{tmp}/missing' is neither an existing folder"),
        (
            ["--pipeline", "{tmp}", "--prompt", "a", "--init_image", "{tmp}/no.png"],
            "--init_image '{tmp}/no.png' is not a file.",
        ),
        (
            ["--pipeline", "{tmp}", "--prompt", "a", "--frames", "run.avi"],
            "--frames must end in .gif or .mp4, got 'run.avi'.",
        ),
    ],
)
def test_script_argument_errors(tmp_path, capsys, argv, message):
    script = load_script()
    with pytest.raises(SystemExit):
        script.parse_args([arg.format(tmp=tmp_path) for arg in argv])
    assert message.format(tmp=tmp_path) in capsys.readouterr().err


def test_push_to_hub_uploads_the_saved_folder(pipe, monkeypatch):
    import diffusers.utils.hub_utils as hub_utils

    uploaded = {}

    def fake_upload(self, folder, repo_id, **kwargs):
        uploaded["files"] = {p.relative_to(folder).as_posix() for p in Path(folder).rglob("*") if p.is_file()}
        return "commit-url"

    monkeypatch.setattr(hub_utils, "create_repo", lambda repo_id, **kwargs: type("Repo", (), {"repo_id": repo_id})())
    monkeypatch.setattr(hub_utils, "load_or_create_model_card", lambda *args, **kwargs: hub_utils.ModelCard(""))
    monkeypatch.setattr(VQGANCLIPPipeline, "_upload_folder", fake_upload)
    assert pipe.push_to_hub("someone/tiny-vqgan-clip") == "commit-url"
    assert {"model_index.json", "README.md", "vqgan/config.json", "clip/config.json"} <= uploaded["files"]
    assert "clip_processor/processor_config.json" in uploaded["files"]


def test_gumbel_vqgan_is_optimised_too(tokenizer):
    pipe = VQGANCLIPPipeline(tiny_vqgan(quantizer_type="gumbel"), *tiny_clip(tokenizer, **CLIP_SIZES))
    pipe.set_progress_bar_config(disable=True)
    out = pipe("a red apple", num_inference_steps=8, generator=seeded(), output_type="pt", **EXACT)
    assert out.losses[-1, 0] < out.losses[0, 0]
    # the image is the decode of the Gumbel quantizer's own codebook vectors
    expected = pipe.image_processor.postprocess(pipe.vqgan.decode_indices(out.indices), output_type="pt")
    # up to float rounding: the decoder sees the straight-through `latents + (codes - latents).detach()`
    torch.testing.assert_close(out.images, expected, rtol=0, atol=1e-5)


def test_factorised_normalised_codebook_is_optimised_in_its_lookup_space(tokenizer):
    # 8-d l2-normalised code vectors projected to the 4-d latents the decoder takes (the shipped emoji VQGAN's kind)
    vqgan = tiny_vqgan(embed_dim=4, codebook_dim=8, normalize_codes=True)
    assert vqgan.get_code_vectors().shape == (32, 8)
    torch.testing.assert_close(vqgan.get_code_vectors().norm(dim=1), torch.ones(32))
    pipe = VQGANCLIPPipeline(vqgan, *tiny_clip(tokenizer, **CLIP_SIZES))
    pipe.set_progress_bar_config(disable=True)
    for parameterization in ("latents", "logits"):
        out = pipe(
            "a red apple", num_inference_steps=8, generator=seeded(), output_type="pt",
            parameterization=parameterization, **EXACT,
        )  # fmt: skip
        expected = pipe.image_processor.postprocess(pipe.vqgan.decode_indices(out.indices), output_type="pt")
        torch.testing.assert_close(out.images, expected, rtol=0, atol=1e-5)
        if parameterization == "latents":  # the logits' first steps only shift probability toward other codes
            assert out.losses[-1, 0] < out.losses[0, 0]


def test_referenced_component_of_a_foreign_class_is_refused(pipe, tmp_path):
    pipe.vqgan.save_pretrained(tmp_path / "vqgan-model")
    (tmp_path / "pipe").mkdir()
    index = {"vqgan": ["os", "system"], "component_sources": {"vqgan": "../vqgan-model"}}
    (tmp_path / "pipe" / "model_index.json").write_text(json.dumps(index))
    message = "names ['os', 'system'] for component 'vqgan'; expected a transformers or taming_hf model or processor"
    with pytest.raises(OSError, match=re.escape(message)):
        VQGANCLIPPipeline.from_pretrained(tmp_path / "pipe")
