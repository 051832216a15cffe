"""Tests of TamingPipeline on tiny random models (a 2x-downsampling VQGAN, a one-layer GPT-2)."""

import hashlib
import json
import logging
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel
from transformers.utils import logging as transformers_logging

from original_taming import require_original_taming
from taming_hf import TamingPipeline, TamingPipelineOutput, TokenLayout, VQGANConfig, VQGANModel
from taming_hf.pipelines.taming.pipeline_taming import encode_coordinates
from taming_hf.pipelines.taming.sampling import window_start

K = 16  # image codes
NUM_CLASSES = 3
WINDOW = 4  # latent window: 8 px VQGAN resolution / f2


def tiny_vqgan(seed=0, num_embeddings=K, in_channels=3):
    torch.manual_seed(seed)
    config = VQGANConfig(
        embed_dim=4,
        num_embeddings=num_embeddings,
        latent_channels=4,
        resolution=8,
        in_channels=in_channels,
        base_channels=32,
        channel_multiplier=[1, 1],
        num_res_blocks=1,
        attn_resolutions=[],
    )
    return VQGANModel(config).eval()


def tiny_gpt(vocab_size, n_positions, seed=1):
    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=vocab_size,
        n_positions=n_positions,
        n_embd=16,
        n_layer=1,
        n_head=2,
        bos_token_id=vocab_size - 1,
        eos_token_id=vocab_size - 1,
    )
    return GPT2LMHeadModel(config).eval()


def make_pipeline(conditioning="unconditional", n_positions=WINDOW * WINDOW + 1, with_null=False, **kwargs):
    num_condition = NUM_CLASSES if conditioning == "class" else 0
    layout = TokenLayout.build(conditioning, K, num_condition, with_null_class=with_null)
    pipe = TamingPipeline(
        tiny_vqgan(),
        tiny_gpt(layout.vocab_size, n_positions),
        conditioning=conditioning,
        num_condition_tokens=num_condition,
        sos_token_id=layout.sos_token_id,
        null_class_token_id=layout.null_class_token_id,
        **kwargs,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def make_spatial_pipeline(n_positions=2 * WINDOW * WINDOW):
    condition_codes = 5
    condition_vqgan = tiny_vqgan(seed=2, num_embeddings=condition_codes, in_channels=1)
    pipe = TamingPipeline(
        tiny_vqgan(),
        tiny_gpt(K + condition_codes, n_positions),
        condition_vqgan=condition_vqgan,
        conditioning="spatial",
        num_condition_tokens=condition_codes,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def make_coordinate_pipeline(n_embed=8, factor=2):
    pipe = TamingPipeline(
        tiny_vqgan(),
        tiny_gpt(K + n_embed + 1, 2 * WINDOW * WINDOW),
        conditioning="coordinates",
        num_condition_tokens=n_embed + 1,
        coordinate_downsample_factor=factor,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def seeded(seed=0):
    return torch.Generator().manual_seed(seed)


@torch.no_grad()
def greedy_reference(gpt, prefix, num_tokens):
    """Greedy decoding over image codes with a full forward per token (no cache, no generate())."""
    ids = prefix
    for _ in range(num_tokens):
        next_token = gpt(ids).logits[:, -1, :K].argmax(dim=-1, keepdim=True)
        ids = torch.cat([ids, next_token], dim=1)
    return ids[:, prefix.shape[1] :]


# ------------------------------------------------------------------------------------- outputs


def test_output_types_and_shapes():
    pipe = make_pipeline()
    pil = pipe(batch_size=2, num_images_per_prompt=2, generator=seeded())
    assert isinstance(pil, TamingPipelineOutput)
    assert len(pil.images) == 4 and all(isinstance(image, PIL.Image.Image) for image in pil.images)
    assert pil.images[0].size == (8, 8)
    assert pil.indices.shape == (4, 4, 4) and pil.indices.dtype == torch.long

    array = pipe(batch_size=2, generator=seeded(), output_type="np").images
    assert isinstance(array, np.ndarray) and array.shape == (2, 8, 8, 3)
    assert 0.0 <= array.min() and array.max() <= 1.0
    tensor = pipe(batch_size=2, generator=seeded(), output_type="pt").images
    assert tensor.shape == (2, 3, 8, 8)
    np.testing.assert_allclose(tensor.permute(0, 2, 3, 1).numpy(), array, atol=1e-6)

    latent = pipe(batch_size=2, generator=seeded(), output_type="latent")
    assert torch.equal(latent.images, latent.indices) and latent.indices.shape == (2, 4, 4)
    images, indices = pipe(batch_size=1, generator=seeded(), output_type="latent", return_dict=False)
    assert torch.equal(images, indices)


def test_non_square_size_from_height_width():
    pipe = make_pipeline(n_positions=17)
    indices = pipe(height=4, width=8, generator=seeded(), output_type="latent").indices
    assert indices.shape == (1, 2, 4)


def test_seeded_generator_is_deterministic():
    pipe = make_pipeline()
    first = pipe(batch_size=3, generator=seeded(7), output_type="latent").indices
    second = pipe(batch_size=3, generator=seeded(7), output_type="latent").indices
    other = pipe(batch_size=3, generator=seeded(8), output_type="latent").indices
    assert torch.equal(first, second)
    assert not torch.equal(first, other)
    per_image = pipe(batch_size=2, generator=[seeded(1), seeded(2)], output_type="latent").indices
    assert torch.equal(per_image, pipe(batch_size=2, generator=[seeded(1), seeded(2)], output_type="latent").indices)


def test_top_k_1_equals_greedy_decoding():
    pipe = make_pipeline()
    indices = pipe(batch_size=2, top_k=1, generator=seeded(), output_type="latent").indices
    prefix = torch.full((2, 1), pipe.config.sos_token_id)
    expected = greedy_reference(pipe.transformer, prefix, 16)
    assert torch.equal(indices.reshape(2, -1), expected)


def test_samples_never_leave_image_codes():
    pipe = make_pipeline()

    def favour_special_tokens(module, inputs, logits):
        logits[..., K:] += 100.0
        return logits

    pipe.transformer.lm_head.register_forward_hook(favour_special_tokens)
    with torch.no_grad():
        raw = pipe.transformer(torch.tensor([[pipe.config.sos_token_id]])).logits[0, -1]
    assert raw.argmax() >= K  # unrestricted, the model would emit a special token
    indices = pipe(batch_size=4, temperature=5.0, generator=seeded(), output_type="latent").indices
    assert indices.min() >= 0 and indices.max() < K


def test_top_p_and_temperature_run_and_stay_in_range():
    pipe = make_pipeline()
    indices = pipe(batch_size=2, top_p=0.5, temperature=0.7, generator=seeded(), output_type="latent").indices
    assert indices.shape == (2, 4, 4) and indices.max() < K


# ---------------------------------------------------------------------------------- conditioning


def test_class_conditional_top_k_1_matches_reference():
    pipe = make_pipeline("class")
    indices = pipe(class_labels=[0, 2], top_k=1, generator=seeded(), output_type="latent").indices
    expected = greedy_reference(pipe.transformer, torch.tensor([[K + 0], [K + 2]]), 16)
    assert torch.equal(indices.reshape(2, -1), expected)


def test_get_label_ids():
    pipe = make_pipeline("class", id2label={0: "tench, Tinca tinca", 1: "goldfish", 2: "shark"})
    assert pipe.get_label_ids(["goldfish", "tench", "shark"]) == [1, 0, 2]
    assert pipe.config.id2label[0] == "tench, Tinca tinca"
    with pytest.raises(ValueError, match=r"Unknown class names \['cat'\]"):
        pipe.get_label_ids("cat")


def test_guidance_scale_1_equals_no_guidance():
    pipe = make_pipeline("class", with_null=True)
    plain = pipe(class_labels=[1, 2], generator=seeded(3), output_type="latent").indices
    guided = pipe(class_labels=[1, 2], guidance_scale=1.0, generator=seeded(3), output_type="latent").indices
    assert torch.equal(plain, guided)


@torch.no_grad()
def test_guidance_matches_reference_formula():
    pipe = make_pipeline("class", with_null=True)
    scale = 3.0
    indices = pipe(class_labels=[1], guidance_scale=scale, top_k=1, generator=seeded(), output_type="latent").indices
    gpt, null = pipe.transformer, pipe.config.null_class_token_id
    tokens = torch.zeros(1, 0, dtype=torch.long)
    for _ in range(16):
        conditional = gpt(torch.cat([torch.tensor([[K + 1]]), tokens], 1)).logits[:, -1].log_softmax(-1)
        unconditional = gpt(torch.cat([torch.tensor([[null]]), tokens], 1)).logits[:, -1].log_softmax(-1)
        guided = unconditional + scale * (conditional - unconditional)
        tokens = torch.cat([tokens, guided[:, :K].argmax(-1, keepdim=True)], 1)
    assert torch.equal(indices.reshape(1, -1), tokens)
    assert not torch.equal(indices.reshape(1, -1), greedy_reference(gpt, torch.tensor([[K + 1]]), 16))


def test_spatial_conditioning_uses_condition_codes_as_prefix():
    pipe = make_spatial_pipeline()
    condition = torch.rand(2, 1, 8, 8) * 2 - 1
    out = pipe(condition_image=condition, top_k=1, output_type="latent")
    codes = pipe.condition_vqgan.encode(condition).indices.reshape(2, -1) + K
    assert torch.equal(out.indices.reshape(2, -1), greedy_reference(pipe.transformer, codes, 16))
    pil_condition = PIL.Image.fromarray(np.zeros((8, 8), dtype=np.uint8))
    assert pipe(condition_image=pil_condition, num_images_per_prompt=2, output_type="latent").indices.shape == (
        2,
        4,
        4,
    )


def test_completion_keeps_top_rows():
    pipe = make_pipeline("completion")
    image = torch.rand(2, 3, 8, 8) * 2 - 1
    given = pipe.vqgan.encode(image).indices
    out = pipe(image=image, num_rows_to_keep=3, top_k=1, output_type="latent").indices
    assert torch.equal(out[:, :3], given[:, :3])
    prefix = torch.cat([torch.full((2, 1), pipe.config.sos_token_id), given[:, :3].reshape(2, -1)], 1)
    assert torch.equal(out[:, 3:].reshape(2, -1), greedy_reference(pipe.transformer, prefix, 4))


def test_token_order_is_honoured():
    order = list(reversed(range(16)))  # generate bottom-right first
    pipe = make_pipeline(token_order=order)
    indices = pipe(top_k=1, output_type="latent").indices
    generated = greedy_reference(pipe.transformer, torch.tensor([[pipe.config.sos_token_id]]), 16)[0]
    flat = indices.reshape(-1)
    assert all(flat[order[i]] == generated[i] for i in range(16))
    assert torch.equal(flat, generated.flip(0))


# -------------------------------------------------------------------------------- sliding window


def reference_window_start(i, size, window=WINDOW):
    """The original's `local_i` formula, written out, turned into the window's first row."""
    half = window // 2
    local = i if i <= half else (window - (size - i) if size - i < half else half)
    return i - local


def test_window_start_matches_original_formula():
    for size in (4, 5, 8, 13):
        assert [window_start(i, size, WINDOW) for i in range(size)] == [
            reference_window_start(i, size) if size > WINDOW else 0 for i in range(size)
        ]


@torch.no_grad()
def reference_sliding_window(gpt, prefix, height, width, scale=1.0, null_prefix=None, condition=None):
    """The original's high-resolution loop: a full forward of the window before each cell, greedy.
    With a `condition` grid (h, w), the prefix is its crop by the same window."""
    grid = torch.zeros(height, width, dtype=torch.long)
    for i in range(height):
        for j in range(width):
            top, left = reference_window_start(i, height), reference_window_start(j, width)
            window = grid[top : top + WINDOW, left : left + WINDOW].reshape(-1)
            if condition is not None:
                prefix = condition[top : top + WINDOW, left : left + WINDOW].reshape(-1)
            before = window[: (i - top) * min(width, WINDOW) + (j - left)]
            scores = gpt(torch.cat([prefix, before])[None]).logits[0, -1].log_softmax(-1)
            if scale != 1.0:
                unconditional = gpt(torch.cat([null_prefix, before])[None]).logits[0, -1].log_softmax(-1)
                scores = unconditional + scale * (scores - unconditional)
            grid[i, j] = scores[:K].argmax()
    return grid


@pytest.mark.parametrize("height, width", [(16, 8), (8, 16), (12, 12)])
def test_sliding_window_on_grid_twice_the_context(height, width):
    pipe = make_pipeline()  # context: SOS + 16 image tokens (4x4); 8x4 and 4x8 grids hold 32 tokens
    out = pipe(height=height, width=width, top_k=1, output_type="latent").indices
    assert out.shape == (1, height // 2, width // 2) and out.max() < K
    sos = torch.tensor([pipe.config.sos_token_id])
    assert torch.equal(out[0], reference_sliding_window(pipe.transformer, sos, height // 2, width // 2))
    again = pipe(height=height, width=width, generator=seeded(4), output_type="latent").indices
    assert torch.equal(again, pipe(height=height, width=width, generator=seeded(4), output_type="latent").indices)


def test_sliding_window_guidance_matches_reference():
    pipe = make_pipeline("class", with_null=True)
    out = pipe(class_labels=[2], height=12, width=10, guidance_scale=2.5, top_k=1, output_type="latent").indices
    null = torch.tensor([pipe.config.null_class_token_id])
    expected = reference_sliding_window(pipe.transformer, torch.tensor([K + 2]), 6, 5, 2.5, null)
    assert torch.equal(out[0], expected)


def test_sliding_window_class_guidance_and_completion():
    pipe = make_pipeline("class", with_null=True)
    out = pipe(class_labels=[0, 1], height=16, width=16, guidance_scale=2.0, output_type="latent").indices
    assert out.shape == (2, 8, 8) and out.max() < K
    image = torch.rand(1, 3, 16, 8) * 2 - 1
    given = pipe.vqgan.encode(image).indices
    completed = pipe(class_labels=[2], image=image, num_rows_to_keep=5, output_type="latent").indices
    assert torch.equal(completed[:, :5], given[:, :5])


def test_sliding_window_spatial():
    pipe = make_spatial_pipeline()
    condition = torch.rand(1, 1, 16, 12) * 2 - 1
    out = pipe(condition_image=condition, generator=seeded(), output_type="latent").indices
    assert out.shape == (1, 8, 6) and out.max() < K


# ------------------------------------------------------------------------------------ coordinates


@pytest.mark.parametrize("n_embed, factor", [(8, 1), (8, 2), (1024, 4), (1024, 16)])
def test_coordinate_codes_match_original_coord_stage(n_embed, factor):
    coord_stage = require_original_taming("taming.modules.misc.coord").CoordStage(n_embed, factor)
    torch.manual_seed(0)
    size = 4 * factor
    ramp = torch.linspace(0, 1, size * size).reshape(1, 1, size, size)
    for coordinates in (torch.rand(3, 1, size, 2 * size), ramp, torch.rand(2, 1, size, size) ** 4):
        _, _, (_, _, theirs) = coord_stage.encode(coordinates)
        ours = encode_coordinates(coordinates, n_embed, factor)
        assert ours.shape == (coordinates.shape[0], coordinates.shape[2] // factor, coordinates.shape[3] // factor)
        assert torch.equal(ours, theirs[:, 0])
    ones = torch.ones(1, 1, size, size)  # n_embed + 1 codes: 0 ... n_embed
    assert encode_coordinates(ones, n_embed, factor).unique().tolist() == [n_embed]
    assert encode_coordinates(ones * 0, n_embed, factor).unique().tolist() == [0]


def test_coordinate_conditioning_uses_codes_as_prefix():
    pipe = make_coordinate_pipeline()
    assert pipe.layout.conditioning == "coordinates" and pipe.layout.vocab_size == K + 9
    coordinates = torch.rand(2, 1, 8, 8)
    out = pipe(condition_image=coordinates, top_k=1, output_type="latent")
    codes = encode_coordinates(coordinates, 8, 2).reshape(2, -1) + K
    assert codes.min() >= K and codes.max() <= K + 8
    assert torch.equal(out.indices.reshape(2, -1), greedy_reference(pipe.transformer, codes, 16))
    # a PIL "L" image means its values / 255
    pixels = np.arange(64, dtype=np.uint8).reshape(8, 8) * 4
    from_pil = pipe(condition_image=PIL.Image.fromarray(pixels), top_k=1, output_type="latent").indices
    as_tensor = torch.from_numpy(pixels / 255.0).float()[None, None]
    assert torch.equal(from_pil, pipe(condition_image=as_tensor, top_k=1, output_type="latent").indices)


def test_sliding_window_coordinates_crops_the_condition_grid():
    pipe = make_coordinate_pipeline()
    coordinates = torch.rand(1, 1, 16, 12)
    out = pipe(condition_image=coordinates, top_k=1, output_type="latent").indices
    assert out.shape == (1, 8, 6)
    condition = encode_coordinates(coordinates, 8, 2)[0] + K
    assert torch.equal(out[0], reference_sliding_window(pipe.transformer, None, 8, 6, condition=condition))


def test_error_coordinate_inputs():
    def raises(message):
        return pytest.raises(ValueError, match="^" + re.escape(message) + "$")

    pipe = make_coordinate_pipeline()
    with raises("condition_image must hold coordinates in [0, 1], got values in [-0.5, 1]."):
        pipe(condition_image=torch.linspace(-0.5, 1, 64).reshape(1, 1, 8, 8))
    with raises("condition_image must hold coordinates in [0, 1], got values in [0, 1.25]."):
        pipe(condition_image=torch.linspace(0, 1.25, 64).reshape(1, 1, 8, 8))
    with raises("condition_image has 3 channels, but coordinate conditioning expects 1."):
        pipe(condition_image=torch.zeros(1, 3, 8, 8))
    with raises("condition_image is 7x8 pixels, which is not divisible by the coordinate_downsample_factor 2."):
        pipe(condition_image=torch.zeros(1, 1, 7, 8))
    with raises(
        "condition_image encodes to a 4x4 code grid, but the image grid is 6x4; pass a condition image of 12x8 pixels."
    ):
        pipe(condition_image=torch.zeros(1, 1, 8, 8), height=12, width=8)
    with raises(
        "This is a coordinate-conditioned pipeline: pass a condition_image, a (batch, 1, height, width) coordinate "
        "map in [0, 1]."
    ):
        pipe()
    with raises(
        "conditioning='coordinates' needs a positive coordinate_downsample_factor (the original CoordStage's "
        "down_factor), got None."
    ):
        TamingPipeline(tiny_vqgan(), tiny_gpt(K + 9, 32), conditioning="coordinates", num_condition_tokens=9)
    with raises("A 'coordinates' layout needs num_condition_tokens > 0, got 0."):
        TokenLayout.build("coordinates", K)


# ----------------------------------------------------------------------------------------- errors


def test_error_vocabulary_too_small():
    with pytest.raises(ValueError, match=r"vocabulary \(vocab_size=17\) is too small .* need vocab_size >= 19"):
        TamingPipeline(tiny_vqgan(), tiny_gpt(17, 17), conditioning="class", num_condition_tokens=3)


def test_error_context_too_short():
    pipe = make_pipeline(n_positions=10)
    with pytest.raises(ValueError, match=r"context \(n_positions=10\) is too short .* need n_positions >= 16"):
        pipe(output_type="latent")


def test_error_class_id_out_of_range():
    pipe = make_pipeline("class")
    with pytest.raises(
        ValueError, match=r"Class id 3 is outside the model's classes: class_labels must lie in \[0, 3\)"
    ):
        pipe(class_labels=[0, 3])
    with pytest.raises(ValueError, match="pass class_labels"):
        pipe()


def test_error_condition_image_wrong_size_or_channels():
    pipe = make_spatial_pipeline()
    with pytest.raises(ValueError, match="condition_image has 3 channels, but its VQGAN expects 1"):
        pipe(condition_image=torch.zeros(1, 3, 8, 8))
    with pytest.raises(ValueError, match=r"encodes to a 4x4 code grid, but the image grid is 6x4"):
        pipe(condition_image=torch.zeros(1, 1, 8, 8), height=12, width=8)
    with pytest.raises(ValueError, match="not divisible by its VQGAN's downsampling factor 2"):
        pipe(condition_image=torch.zeros(1, 1, 7, 8))


def test_error_guidance_without_null_class():
    pipe = make_pipeline("class")
    with pytest.raises(
        ValueError, match=r"guidance_scale=3.0 needs a class-conditional model trained with a null class"
    ):
        pipe(class_labels=[0], guidance_scale=3.0)


def test_error_bad_token_order_and_size():
    pipe = make_pipeline(token_order=[0, 1, 2])
    with pytest.raises(ValueError, match=r"token_order must be a permutation of range\(16\)"):
        pipe()
    with pytest.raises(ValueError, match="positive multiples of the VQGAN's downsampling factor 2, got 7x8"):
        make_pipeline()(height=7, width=8)


# ------------------------------------------------------------------------------- saving, loading


def test_save_load_round_trip(tmp_path):
    pipe = make_pipeline("class", with_null=True, id2label={0: "a", 1: "b", 2: "c"}, token_order=list(range(16))[::-1])
    pipe.save_pretrained(tmp_path)
    loaded = TamingPipeline.from_pretrained(tmp_path)
    loaded.set_progress_bar_config(disable=True)
    assert loaded.layout == pipe.layout
    assert loaded.config.id2label == {0: "a", 1: "b", 2: "c"}
    assert loaded.config.token_order == list(range(16))[::-1]
    assert isinstance(loaded.vqgan, VQGANModel) and loaded.condition_vqgan is None
    kwargs = dict(class_labels=[0, 2], guidance_scale=2.0, generator=seeded(5), output_type="latent")
    expected = pipe(**kwargs).indices
    kwargs["generator"] = seeded(5)
    assert torch.equal(loaded(**kwargs).indices, expected)


def populate_hub_cache(folder: Path, cache: Path, repo_id: str) -> None:
    """Lay `folder` out as the Hub cache would after a download: refs, snapshot and tree listing."""
    commit = hashlib.sha1(repo_id.encode()).hexdigest()
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / commit
    files = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            name = path.relative_to(folder).as_posix()
            target = snapshot / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
            files[name] = {"size": path.stat().st_size, "blob_id": hashlib.sha1(path.read_bytes()).hexdigest()}
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    (repo / "trees").mkdir()
    (repo / "trees" / f"{commit}.json").write_text(json.dumps({"format_version": 1, "files": files}))


def test_repo_id_loads_offline_without_remote_code(tmp_path):
    pipe = make_spatial_pipeline()
    pipe.save_pretrained(tmp_path / "saved")
    populate_hub_cache(tmp_path / "saved", tmp_path / "hub", "taming-hf/tiny-spatial")
    expected = pipe(condition_image=torch.zeros(1, 1, 8, 8), top_k=1, output_type="latent").indices
    script = (
        "import torch; from taming_hf import TamingPipeline\n"
        "pipe = TamingPipeline.from_pretrained('taming-hf/tiny-spatial')\n"
        "out = pipe(condition_image=torch.zeros(1, 1, 8, 8), top_k=1, output_type='latent')\n"
        "print('INDICES', out.indices.flatten().tolist())\n"
    )
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HUB_CACHE=str(tmp_path / "hub"))
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parents[1] / "src"), env.get("PYTHONPATH", "")])
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    line = next(line for line in result.stdout.splitlines() if line.startswith("INDICES"))
    assert json.loads(line.split(" ", 1)[1]) == expected.flatten().tolist()


def test_model_card_content():
    pipe = make_pipeline("class", with_null=True)
    card = pipe.create_model_card("someone/tiny-imagenet", metrics={"FID": 15.98})
    text = str(card)
    assert card.data.library_name == "taming_hf" and card.data.pipeline_tag == "image-generation"
    assert 'TamingPipeline.from_pretrained("someone/tiny-imagenet")' in text
    assert "pipe(class_labels=[1, 2]" in text
    assert "| conditioning | class |" in text and "| null_class_token_id | 19 |" in text
    assert "| vocab_size / context | 20 / 17 |" in text
    assert "| FID | 15.98 |" in text
    assert "No evaluation metrics" in str(make_pipeline().create_model_card())


def test_model_card_lists_the_sampling_defaults():
    pipe = make_pipeline("class", with_null=True)
    assert "| no top-k, no top-p, temperature 1.0, no guidance |" in str(pipe.create_model_card())
    pipe.set_default_sampling(top_k=32, guidance_scale=2.0)
    assert "| top_k 32, no top-p, temperature 1.0, guidance 2.0 |" in str(pipe.create_model_card())


def test_push_to_hub_uploads_folder_with_card(monkeypatch):
    from huggingface_hub import HfApi

    uploaded = {}

    def fake_create_repo(self, repo_id, **kwargs):
        return type("RepoUrl", (), {"repo_id": repo_id})()

    def fake_upload_folder(self, repo_id, folder_path, **kwargs):
        root = Path(folder_path)
        uploaded.update({p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()})
        return "commit-url"

    monkeypatch.setattr(HfApi, "create_repo", fake_create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", fake_upload_folder)
    assert make_pipeline().push_to_hub("someone/tiny", metrics={"FID": 9.6}) == "commit-url"
    assert {"model_index.json", "README.md", "vqgan/config.json", "transformer/config.json"} <= set(uploaded)
    assert b"| FID | 9.6 |" in uploaded["README.md"]


def test_gumbel_sampling_matches_softmax_distribution():
    from taming_hf.pipelines.taming.sampling import build_logits_processors

    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0, 5.0]]).repeat(20000, 1)  # the last id is not an image code
    processors = build_logits_processors(4, 5, temperature=0.5, generator=seeded())
    samples = processors(None, logits.clone()).argmax(dim=-1)
    frequencies = torch.bincount(samples, minlength=5).float() / samples.numel()
    expected = torch.softmax(logits[0, :4] / 0.5, dim=-1)
    assert frequencies[4] == 0
    torch.testing.assert_close(frequencies[:4], expected, atol=0.01, rtol=0)


def test_error_missing_inputs_and_bad_output_type():
    with pytest.raises(ValueError, match="This is a completion pipeline: pass the image to complete"):
        make_pipeline("completion")()
    with pytest.raises(ValueError, match="This is a spatially conditioned pipeline: pass a condition_image"):
        make_spatial_pipeline()()
    with pytest.raises(ValueError, match=r"output_type must be one of 'pil', 'np', 'pt', 'latent', got 'jpg'"):
        make_pipeline()(output_type="jpg")
    with pytest.raises(ValueError, match=r"num_rows_to_keep must lie in \[0, 4\], got 5"):
        make_pipeline("completion")(image=torch.zeros(1, 3, 8, 8), num_rows_to_keep=5)
    with pytest.raises(ValueError, match="conditioning='spatial' needs a condition_vqgan"):
        TamingPipeline(tiny_vqgan(), tiny_gpt(20, 32), conditioning="spatial", num_condition_tokens=4)


# ----------------------------------------------------------------------------------- input checks


def raises_exactly(message):
    return pytest.raises(ValueError, match="^" + re.escape(message) + "$")


def test_check_inputs_runs_before_any_work(monkeypatch):
    pipe = make_pipeline("completion")

    def fail(*args, **kwargs):
        raise AssertionError("the VQGAN encoded an image before the inputs were checked")

    monkeypatch.setattr(pipe.vqgan, "encode", fail)
    with raises_exactly("top_p must be in (0, 1], got 0.0."):
        pipe(image=torch.zeros(1, 3, 8, 8), top_p=0.0)
    pipe.check_inputs(image=torch.zeros(1, 3, 8, 8), num_rows_to_keep=2)  # valid inputs pass silently


def test_image_rejects_non_finite_pixels():
    pipe = make_pipeline("completion")
    image = torch.zeros(1, 3, 8, 8)
    image[0, 0, 0, 0] = float("nan")
    with raises_exactly("image holds 1 NaN or infinite value(s) of 192; expected finite pixel values in [-1, 1]."):
        pipe(image=image)
    image[0, 1, :, 0] = float("inf")
    with raises_exactly("image holds 9 NaN or infinite value(s) of 192; expected finite pixel values in [-1, 1]."):
        pipe(image=image)


def test_image_rejects_integer_tensors():
    with raises_exactly(
        "image must be a floating point tensor of pixel values in [-1, 1], got dtype torch.uint8; pass PIL images, "
        "or scale uint8 pixels with x / 127.5 - 1 (x / 255 for coordinates)."
    ):
        make_pipeline("completion")(image=torch.full((1, 3, 8, 8), 255, dtype=torch.uint8))


def test_condition_image_rejects_non_finite_values():
    condition = torch.zeros(1, 1, 8, 8)
    condition[0, 0, 3] = float("-inf")
    with raises_exactly(
        "condition_image holds 8 NaN or infinite value(s) of 64; expected finite pixel values in [-1, 1]."
    ):
        make_spatial_pipeline()(condition_image=condition)
    condition[0, 0, 3] = float("nan")
    with raises_exactly(
        "condition_image holds 8 NaN or infinite value(s) of 64; expected finite coordinates in [0, 1]."
    ):
        make_coordinate_pipeline()(condition_image=condition)


@pytest.mark.parametrize("name", ["batch_size", "num_images_per_prompt"])
@pytest.mark.parametrize("value", [0, -2, 1.0, True])
def test_rejects_batch_sizes_that_are_not_positive_integers(name, value):
    with raises_exactly(f"{name} must be a positive integer, got {value!r}."):
        make_pipeline()(**{name: value})


def test_rejects_empty_class_labels():
    pipe = make_pipeline("class")
    for empty in ([], torch.zeros(0, dtype=torch.long)):
        with raises_exactly("class_labels is empty; pass at least one class id."):
            pipe(class_labels=empty)


def test_rejects_images_without_pixels():
    pipe = make_pipeline("completion")
    expected = "image must hold at least one image of positive height and width, got "
    with raises_exactly(expected + "shape (0, 3, 8, 8)."):
        pipe(image=torch.zeros(0, 3, 8, 8))
    with raises_exactly(expected + "shape (1, 3, 0, 0)."):
        pipe(image=torch.zeros(1, 3, 0, 0))
    with raises_exactly(expected + "0 PIL images of 0x0 pixels."):
        pipe(image=[])
    with raises_exactly(expected + "1 PIL images of 0x8 pixels."):
        pipe(image=PIL.Image.new("RGB", (0, 8)))
    with raises_exactly(
        "condition_image must hold at least one image of positive height and width, got shape (1, 1, 8, 0)."
    ):
        make_spatial_pipeline()(condition_image=torch.zeros(1, 1, 8, 0))


def test_rejects_pil_images_of_different_sizes():
    images = [PIL.Image.new("RGB", (8, 8)), PIL.Image.new("RGB", (8, 16))]
    with raises_exactly(
        "image's PIL images must all have the same size, got (width, height) sizes [(8, 8), (8, 16)]."
    ):
        make_pipeline("completion")(image=images)
    with raises_exactly(
        "image must be a PIL image or a (batch, channels, height, width) tensor, got a list holding int."
    ):
        make_pipeline("completion")(image=[PIL.Image.new("RGB", (8, 8)), 3])


@pytest.mark.parametrize("top_k", [-1, 2.5, 32.0, "32", True])
def test_rejects_top_k_that_is_not_a_non_negative_integer(top_k):
    with raises_exactly(f"top_k must be a non-negative integer (0 or None disables it), got {top_k!r}."):
        make_pipeline()(top_k=top_k)


@pytest.mark.parametrize("top_p", [0.0, -0.5, 1.5, float("nan"), "0.9"])
def test_rejects_top_p_outside_zero_one(top_p):
    with raises_exactly(f"top_p must be in (0, 1], got {top_p!r}."):
        make_pipeline()(top_p=top_p)


@pytest.mark.parametrize("temperature", [0.0, -1.0, float("nan"), float("inf")])
def test_rejects_temperature_that_is_not_positive_and_finite(temperature):
    with raises_exactly(f"temperature must be a positive finite number, got {temperature!r}."):
        make_pipeline()(temperature=temperature)


@pytest.mark.parametrize("scale", [float("nan"), float("inf"), -2.0])
def test_rejects_guidance_scale_that_is_not_finite_and_non_negative(scale):
    with raises_exactly(f"guidance_scale must be a finite number >= 0 (1 disables guidance), got {scale!r}."):
        make_pipeline("class", with_null=True)(class_labels=[0], guidance_scale=scale)


def test_none_sampling_arguments_mean_model_defaults():
    pipe = make_pipeline("class", with_null=True)
    default = pipe(class_labels=[1], generator=seeded(), output_type="latent").indices
    unset = dict(top_k=None, top_p=None, temperature=None, guidance_scale=None)
    assert torch.equal(default, pipe(class_labels=[1], generator=seeded(), output_type="latent", **unset).indices)
    assert pipe(class_labels=[1], top_k=0, guidance_scale=0.0, output_type="latent").indices.shape == (1, 4, 4)


def test_rejects_non_integer_class_ids():
    pipe = make_pipeline("class")
    with raises_exactly("class_labels must be integer class ids, got 1.5 (float)."):
        pipe(class_labels=[0, 1.5])
    with raises_exactly("class_labels must be integer class ids, got True (bool)."):
        pipe(class_labels=True)
    with raises_exactly(
        "class_labels must be integer class ids, got a torch.float32 tensor; cast it with .long() if it holds "
        "whole numbers."
    ):
        pipe(class_labels=torch.tensor([1.0, 2.0]))
    # integer tensors and numpy ids are fine
    assert pipe(class_labels=torch.tensor([2, 0]), top_k=1, output_type="latent").indices.shape == (2, 4, 4)
    assert pipe(class_labels=np.array([1]), output_type="latent").indices.shape == (1, 4, 4)


def test_class_names_as_class_labels_point_to_get_label_ids():
    pipe = make_pipeline("class", id2label={0: "a", 1: "b", 2: "c"})
    with raises_exactly(
        "class_labels must be class ids, got the class names ['b', 'c']; map names to ids with "
        "pipe.get_label_ids(['b', 'c'])."
    ):
        pipe(class_labels=["b", "c"])
    with raises_exactly(
        "class_labels must be class ids, got the class names 'b'; map names to ids with pipe.get_label_ids(['b'])."
    ):
        pipe(class_labels="b")


def test_get_label_ids_rejects_class_ids():
    pipe = make_pipeline("class", id2label={0: "a", 1: "b", 2: "c"})
    for ids in (3, [1, 2]):
        with raises_exactly(
            f"get_label_ids takes class names (strings), got {ids!r}; class ids need no lookup: pass them straight "
            "to the pipeline's class_labels."
        ):
            pipe.get_label_ids(ids)


@pytest.mark.parametrize("name", ["height", "width"])
def test_rejects_non_integer_height_and_width(name):
    with raises_exactly(f"{name} must be an integer number of pixels, got 8.0."):
        make_pipeline()(**{name: 8.0})


def test_rejects_generators_that_are_not_torch_generators():
    pipe = make_pipeline()
    expected = "generator must be a torch.Generator or a list of them (one per image), got "
    with raises_exactly(expected + "int."):
        pipe(generator=0)
    with raises_exactly(expected + "a list holding int."):
        pipe(batch_size=2, generator=[seeded(), 1])
    with raises_exactly("Got 1 generators for a batch of 2 images."):
        pipe(batch_size=2, generator=[seeded()])


def test_rejects_inputs_the_conditioning_ignores():
    with raises_exactly(
        "condition_image is only used by spatial and coordinate-conditioned pipelines, but this one's conditioning "
        "is 'class'."
    ):
        make_pipeline("class")(class_labels=[0], condition_image=torch.zeros(1, 1, 8, 8))
    with raises_exactly(
        "class_labels are only used by class-conditional pipelines, but this one's conditioning is 'unconditional'; "
        "got class_labels=[1]."
    ):
        make_pipeline()(class_labels=[1])
    with raises_exactly(
        "num_rows_to_keep only applies to an image to complete, got num_rows_to_keep=2 without an image."
    ):
        make_pipeline()(num_rows_to_keep=2)
    with raises_exactly(
        "batch_size=4 does not match the 2 class label(s) given: the batch holds one row per class label. Leave "
        "batch_size at 1 and use num_images_per_prompt for several images per class label."
    ):
        make_pipeline("class")(class_labels=[0, 1], batch_size=4)
    with raises_exactly(
        "batch_size=3 does not match the 1 image to complete(s) given: the batch holds one row per image to "
        "complete. Leave batch_size at 1 and use num_images_per_prompt for several images per image to complete."
    ):
        make_pipeline("completion")(image=torch.zeros(1, 3, 8, 8), batch_size=3)


def test_batch_size_equal_to_the_conditions_is_accepted():
    pipe = make_pipeline("completion")  # as scripts/train_transformer.py's validation grid calls it
    assert pipe(image=torch.zeros(2, 3, 8, 8), batch_size=2, output_type="latent").indices.shape == (2, 4, 4)
    assert make_pipeline("class")(class_labels=[0, 1], batch_size=2, output_type="latent").indices.shape[0] == 2


@pytest.mark.parametrize("rows", [1.5, 2.0])
def test_rejects_non_integer_num_rows_to_keep(rows):
    with raises_exactly(f"num_rows_to_keep must be an integer number of latent rows, got {rows!r}."):
        make_pipeline("completion")(image=torch.zeros(1, 3, 8, 8), num_rows_to_keep=rows)


def test_get_label_ids_ignores_case_and_whitespace():
    pipe = make_pipeline("class", id2label={0: "T-shirt/top", 1: "Ankle boot", 2: "tench, Tinca tinca"})
    assert pipe.get_label_ids(["T - shirt / top", "t-shirt/TOP", "ankle  boot", " Tinca tinca", "tench"]) == [
        0,
        0,
        1,
        2,
        2,
    ]
    with raises_exactly(
        "Unknown class names ['T-shirt', 'boot']; known names are ['T-shirt/top', 'Ankle boot', 'tench, Tinca tinca']."
    ):
        pipe.get_label_ids(["T-shirt", "boot", "Ankle boot"])
    clash = make_pipeline("class", id2label={0: "Shirt", 1: "shirt", 2: "bag"})
    assert clash.get_label_ids(["Shirt", "shirt"]) == [0, 1]  # an exact spelling decides
    with raises_exactly(
        "Class name 'SHIRT' is ambiguous: ignoring case and spaces it names classes ['Shirt', 'shirt']; spell it "
        "exactly as in id2label."
    ):
        clash.get_label_ids("SHIRT")


def test_unknown_class_names_list_some_of_many_known_names():
    pipe = make_pipeline("class", id2label={i: f"class {i}" for i in range(30)})
    with raises_exactly(
        f"Unknown class names ['cat']; known names are e.g. {[f'class {i}' for i in range(10)]} (all 30 in "
        "pipe.config.id2label)."
    ):
        pipe.get_label_ids("cat")


def test_shipped_class_names_are_zalandos_and_match_either_spelling():
    from taming_hf.training.data import FASHION_MNIST_CLASSES

    repo = Path(__file__).resolve().parents[1] / "pretrained"
    pipe_names = json.loads((repo / "taming-fashion-mnist" / "model_index.json").read_text())["id2label"]
    classifier_names = json.loads((repo / "fashion-mnist-classifier" / "config.json").read_text())["id2label"]
    assert FASHION_MNIST_CLASSES[0] == "T-shirt/top"
    assert list(pipe_names.values()) == list(classifier_names.values()) == FASHION_MNIST_CLASSES
    pipe = TamingPipeline.from_pretrained(repo / "taming-fashion-mnist")
    assert pipe.get_label_ids(["T-shirt/top", "T - shirt / top", "ankle boot"]) == [0, 0, 9]


# ------------------------------------------------------------------------------ quiet default calls


def warnings_of(call, caplog) -> list:
    """Python warnings and transformers / diffusers log records at WARNING or above that `call()` emits."""
    transformers_logging.warning_once.cache_clear()  # a warning_once seen by an earlier test counts too
    loggers = [logging.getLogger(name) for name in ("transformers", "diffusers")]
    for logger in loggers:
        logger.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.WARNING), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            call()
    finally:
        for logger in loggers:
            logger.removeHandler(caplog.handler)
    records = [
        f"{record.name}: {record.getMessage()}" for record in caplog.records if record.levelno >= logging.WARNING
    ]
    return [str(warning.message) for warning in caught] + records


@pytest.mark.parametrize(
    "make, kwargs",
    [
        (make_pipeline, dict(batch_size=2)),
        (lambda: make_pipeline("class"), dict(class_labels=[0, 1])),
        (lambda: make_pipeline("class", with_null=True), dict(class_labels=[0, 1], guidance_scale=2.0)),
        (make_spatial_pipeline, dict(condition_image=torch.zeros(1, 1, 8, 8))),
        (make_coordinate_pipeline, dict(condition_image=torch.zeros(1, 1, 8, 8))),
        (lambda: make_pipeline("completion"), dict(image=torch.zeros(1, 3, 8, 8))),
    ],
    ids=["unconditional", "class", "class-guided", "spatial", "coordinates", "completion"],
)
def test_default_call_emits_no_warnings(make, kwargs, caplog):
    pipe = make()
    assert warnings_of(lambda: pipe(**kwargs, generator=seeded()), caplog) == []


def test_call_with_model_sampling_defaults_emits_no_warnings(caplog):
    pipe = make_pipeline("class", with_null=True)
    pipe.set_default_sampling(top_k=4, top_p=0.9, temperature=0.8, guidance_scale=2.0)
    assert warnings_of(lambda: pipe(class_labels=[0, 1], generator=seeded()), caplog) == []


# -------------------------------------------------------------------------- sampling defaults


def test_none_sampling_arguments_take_the_generation_config_defaults():
    pipe = make_pipeline("class", with_null=True)
    kwargs = dict(class_labels=[0, 1, 2], output_type="latent")
    explicit = pipe(**kwargs, top_k=3, top_p=0.9, temperature=0.7, guidance_scale=2.5, generator=seeded()).indices
    pipe.set_default_sampling(top_k=3, top_p=0.9, temperature=0.7, guidance_scale=2.5)
    config = pipe.transformer.generation_config
    assert (config.do_sample, config.top_k, config.top_p, config.temperature, config.guidance_scale) == (
        True,
        3,
        0.9,
        0.7,
        2.5,
    )
    assert torch.equal(pipe(**kwargs, generator=seeded()).indices, explicit)
    # call arguments override the model's defaults
    override = pipe(**kwargs, top_k=0, top_p=1.0, temperature=1.0, guidance_scale=1.0, generator=seeded()).indices
    plain = make_pipeline("class", with_null=True)(**kwargs, generator=seeded()).indices
    assert torch.equal(override, plain)


def test_sampling_defaults_survive_save_and_load(tmp_path):
    pipe = make_pipeline("class", with_null=True)
    pipe.set_default_sampling(top_k=5, guidance_scale=1.5)
    pipe.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "transformer" / "generation_config.json").read_text())
    assert (saved["do_sample"], saved["top_k"], saved["guidance_scale"]) == (True, 5, 1.5)
    loaded = TamingPipeline.from_pretrained(tmp_path)
    settings = loaded.sampling_settings()
    assert (settings.top_k, settings.top_p, settings.temperature, settings.guidance_scale) == (5, None, 1.0, 1.5)


def test_generation_config_guidance_is_off_without_a_null_class():
    pipe = make_pipeline("class")  # no null class
    pipe.transformer.generation_config.guidance_scale = 2.0  # e.g. copied from another model's config
    assert pipe.sampling_settings().guidance_scale == 1.0
    kwargs = dict(class_labels=[0, 1], output_type="latent")
    assert torch.equal(
        pipe(**kwargs, generator=seeded()).indices, make_pipeline("class")(**kwargs, generator=seeded()).indices
    )


def test_explicit_guidance_without_a_null_class_still_raises():
    pipe = make_pipeline("class")
    with pytest.raises(
        ValueError, match=r"guidance_scale=2.0 needs a class-conditional model trained with a null class"
    ):
        pipe(class_labels=[0], guidance_scale=2.0)
    with pytest.raises(
        ValueError, match=r"guidance_scale=2.0 needs a class-conditional model trained with a null class"
    ):
        pipe.set_default_sampling(guidance_scale=2.0)


def test_set_default_sampling_rejects_bad_values():
    with pytest.raises(ValueError, match=r"top_p must be in \(0, 1\], got 0.0."):
        make_pipeline().set_default_sampling(top_p=0.0)


def test_bad_generation_config_default_is_named():
    pipe = make_pipeline()
    pipe.transformer.generation_config.temperature = -1.0  # a hand-edited generation_config.json
    with pytest.raises(
        ValueError,
        match=r"The transformer's generation_config holds a bad sampling default: temperature must be a positive "
        r"finite number, got -1.0.",
    ):
        pipe(batch_size=1)


def test_push_to_hub_extra_arguments_are_keyword_only():
    with pytest.raises(TypeError, match="positional argument"):
        make_pipeline().push_to_hub("someone/tiny", {"FID": 9.6})
