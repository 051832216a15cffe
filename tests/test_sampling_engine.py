"""The sampling engine: one ImageTokenSampler step for the cached path and the sliding window, batched
classifier-free guidance, seeded tokens equal to the previous generate()-based sampler, callbacks."""

import pytest
import torch
from transformers import GenerationConfig

from taming_hf.pipelines.taming import sampling
from taming_hf.pipelines.taming.sampling import (
    ImageTokenSampler,
    build_logits_processors,
    guided_log_probs,
    window_start,
)
from test_pipeline import WINDOW, K, greedy_reference, make_pipeline, seeded

# ------------------------------------------------------------------------- the previous samplers


@torch.no_grad()
def generate_reference(gpt, prefix, num_tokens, kept=None, generator=None, **sampling_arguments):
    """The pipeline's previous cached path: greedy `generate()` with the Gumbel logits processors."""
    kept = torch.zeros(prefix.shape[0], 0, dtype=torch.long) if kept is None else kept
    input_ids = torch.cat([prefix, kept], dim=1)
    processors = build_logits_processors(K, gpt.config.vocab_size, generator=generator, **sampling_arguments)
    stop = gpt.config.vocab_size - 1
    config = GenerationConfig(
        max_new_tokens=num_tokens - kept.shape[1], do_sample=False, eos_token_id=stop, pad_token_id=stop
    )
    sequences = gpt.generate(
        input_ids=input_ids,
        attention_mask=torch.ones_like(input_ids),
        generation_config=config,
        logits_processor=processors,
    )
    return sequences[:, prefix.shape[1] :]


@torch.no_grad()
def previous_sliding_window(gpt, grid, prefix, null_prefix=None, scale=1.0, generator=None, **sampling_arguments):
    """The pipeline's previous sliding window, one full forward of the window per cell (no cache)."""
    processors = build_logits_processors(K, gpt.config.vocab_size, generator=generator, **sampling_arguments)
    height, width = grid.shape[1:]
    window_h, window_w = min(height, WINDOW), min(width, WINDOW)
    for position in range(height * width):
        row, col = divmod(position, width)
        top, left = window_start(row, height, window_h), window_start(col, width, window_w)
        window = grid[:, top : top + window_h, left : left + window_w].reshape(grid.shape[0], -1)
        before = window[:, : (row - top) * window_w + (col - left)]
        input_ids = torch.cat([prefix, before], dim=1)
        scores = gpt(input_ids).logits[:, -1]
        if scale != 1.0:
            null_scores = gpt(torch.cat([null_prefix, before], dim=1)).logits[:, -1]
            scores = guided_log_probs(scores, null_scores, scale)
        grid[:, row, col] = processors(input_ids, scores.float()).argmax(dim=-1)
    return grid


def latent(pipe, **kwargs):
    return pipe(output_type="latent", **kwargs).indices


# ------------------------------------------------------------------------------ same tokens as before


@pytest.mark.parametrize(
    "arguments",
    [{"top_k": 5}, {"temperature": 0.7}, {"top_p": 0.8}, {"top_k": 8, "top_p": 0.9, "temperature": 1.3}, {}],
)
def test_unguided_tokens_equal_the_previous_generate_sampler(arguments):
    pipe = make_pipeline()
    sos = torch.full((3, 1), pipe.config.sos_token_id)
    indices = latent(pipe, batch_size=3, generator=seeded(7), **arguments)
    expected = generate_reference(pipe.transformer, sos, WINDOW * WINDOW, generator=seeded(7), **arguments)
    assert torch.equal(indices.reshape(3, -1), expected)


def test_generator_lists_give_the_previous_tokens():
    pipe = make_pipeline("class", with_null=True)
    prefix = torch.tensor([[K], [K + 2]])
    indices = latent(pipe, class_labels=[0, 2], top_k=6, generator=[seeded(1), seeded(2)])
    expected = generate_reference(pipe.transformer, prefix, 16, top_k=6, generator=[seeded(1), seeded(2)])
    assert torch.equal(indices.reshape(2, -1), expected)


def test_completion_gives_the_previous_tokens():
    pipe = make_pipeline()
    image = torch.rand(2, 3, 8, 8) * 2 - 1
    kept = pipe.vqgan.encode(image).indices.reshape(2, -1)[:, :6]
    indices = latent(pipe, image=image, num_rows_to_keep=1, generator=seeded(5))
    assert torch.equal(indices.reshape(2, -1)[:, :4], kept[:, :4])
    sos = torch.full((2, 1), pipe.config.sos_token_id)
    expected = generate_reference(pipe.transformer, sos, 16, kept=kept[:, :4], generator=seeded(5))
    assert torch.equal(indices.reshape(2, -1), expected)


@pytest.mark.parametrize("scale", [1.0, 2.5])
def test_sliding_window_gives_the_previous_tokens(scale):
    pipe = make_pipeline("class", with_null=True)
    indices = latent(pipe, class_labels=[1, 2], height=12, width=10, guidance_scale=scale, generator=seeded(3))
    null = torch.full((2, 1), pipe.config.null_class_token_id)
    grid = torch.zeros(2, 6, 5, dtype=torch.long)
    expected = previous_sliding_window(
        pipe.transformer, grid, torch.tensor([[K + 1], [K + 2]]), null, scale, generator=seeded(3)
    )
    assert torch.equal(indices, expected)


# ------------------------------------------------------------------------------------ guidance


@torch.no_grad()
def test_batched_guidance_equals_the_two_forward_formula():
    pipe = make_pipeline("class", with_null=True)
    gpt, scale = pipe.transformer, 3.0
    sampler = ImageTokenSampler(gpt, K, 2, guidance_scale=scale)
    cache = sampler.new_cache()
    prefix, null = torch.tensor([[K], [K + 1]]), torch.full((2, 1), pipe.config.null_class_token_id)
    model_ids, tokens = sampler.model_inputs(prefix, null), torch.zeros(2, 0, dtype=torch.long)
    for _ in range(10):
        batched = sampler.scores(gpt(model_ids, cache=cache, use_cache=True).logits[:, -1])
        conditional = gpt(torch.cat([prefix, tokens], 1)).logits[:, -1]
        unconditional = gpt(torch.cat([null, tokens], 1)).logits[:, -1]
        expected = guided_log_probs(conditional, unconditional, scale)[:, :K]
        torch.testing.assert_close(batched, expected, atol=1e-5, rtol=0)
        next_ids = torch.randint(0, K, (2, 1))
        tokens, model_ids = torch.cat([tokens, next_ids], 1), torch.cat([next_ids, next_ids])


def test_guided_sampling_runs_one_forward_of_both_branches_per_token():
    pipe = make_pipeline("class", with_null=True)
    batch_sizes = []
    hook = pipe.transformer.register_forward_hook(lambda module, args, output: batch_sizes.append(args[0].shape[0]))
    latent(pipe, class_labels=[0, 1, 2], guidance_scale=2.0, generator=seeded())
    hook.remove()
    assert batch_sizes == [6] * WINDOW * WINDOW


def test_guided_top_k_1_matches_the_reference_formula_with_cache():
    pipe = make_pipeline("class", with_null=True)
    gpt, null = pipe.transformer, pipe.config.null_class_token_id
    indices = latent(pipe, class_labels=[2], guidance_scale=0.5, top_k=1).reshape(1, -1)
    tokens = torch.zeros(1, 0, dtype=torch.long)
    with torch.no_grad():
        for _ in range(16):
            conditional = gpt(torch.cat([torch.tensor([[K + 2]]), tokens], 1)).logits[:, -1]
            unconditional = gpt(torch.cat([torch.tensor([[null]]), tokens], 1)).logits[:, -1]
            guided = guided_log_probs(conditional, unconditional, 0.5)
            tokens = torch.cat([tokens, guided[:, :K].argmax(-1, keepdim=True)], 1)
    assert torch.equal(indices, tokens)


# ------------------------------------------------------------------------------- one step function


@pytest.mark.parametrize("size, steps", [(8, WINDOW * WINDOW), (12, 36)])
def test_cached_path_and_sliding_window_share_the_sampler_step(monkeypatch, size, steps):
    calls = []
    step = ImageTokenSampler.__call__

    def spy(self, model_ids, cache):
        calls.append(model_ids.shape)
        return step(self, model_ids, cache)

    monkeypatch.setattr(ImageTokenSampler, "__call__", spy)
    pipe = make_pipeline()
    latent(pipe, height=size, width=size, generator=seeded())
    assert len(calls) == steps


def test_sampling_never_syncs_with_the_host_per_token(monkeypatch):
    def no_item(self):
        raise AssertionError("Tensor.item() in the sampling loop")

    pipe = make_pipeline("class", with_null=True)
    monkeypatch.setattr(torch.Tensor, "item", no_item)
    monkeypatch.setattr(torch.Tensor, "tolist", no_item)
    sampler = ImageTokenSampler(pipe.transformer, K, 2, top_k=4, top_p=0.9, guidance_scale=2.0, generator=seeded())
    prefix, null = torch.tensor([[K], [K + 1]]), torch.full((2, 1), pipe.config.null_class_token_id)
    kept = torch.zeros(2, 0, dtype=torch.long)
    with torch.no_grad():
        tokens = sampling.sample_tokens(sampler, prefix, kept, 16, null)
    assert tokens.shape == (2, 16)


# ------------------------------------------------------------------------------------ callbacks


def test_callback_sees_every_token_with_its_raster_position():
    order = list(reversed(range(WINDOW * WINDOW)))
    pipe = make_pipeline(token_order=order)
    seen = []

    def callback(pipe, step, position, callback_kwargs):
        seen.append((step, position, callback_kwargs["latents"].clone()))
        return callback_kwargs

    indices = latent(pipe, batch_size=2, generator=seeded(1), callback_on_step_end=callback)
    assert [(step, position) for step, position, _ in seen] == list(enumerate(order))
    generated = indices.reshape(2, -1)[:, order]
    for step, _, tokens in seen:
        assert torch.equal(tokens, generated[:, : step + 1])
    assert torch.equal(indices, latent(pipe, batch_size=2, generator=seeded(1)))


def test_callback_replacing_tokens_continues_from_them():
    pipe = make_pipeline()
    forced = torch.tensor([[3, 1, 4, 1, 5]])

    def callback(pipe, step, position, callback_kwargs):
        return {"latents": forced} if step == 4 else {}

    indices = latent(pipe, top_k=1, callback_on_step_end=callback).reshape(1, -1)
    sos = torch.tensor([[pipe.config.sos_token_id]])
    rest = greedy_reference(pipe.transformer, torch.cat([sos, forced], 1), 11)
    assert torch.equal(indices, torch.cat([forced, rest], 1))


def test_callback_replacing_tokens_in_the_sliding_window():
    pipe = make_pipeline()

    def callback(pipe, step, position, callback_kwargs):
        tokens = callback_kwargs["latents"]
        return {"latents": torch.full_like(tokens, 7)} if position == 20 else None

    indices = latent(pipe, height=12, width=12, top_k=1, callback_on_step_end=callback)
    assert (indices.reshape(1, -1)[:, :21] == 7).all()


@pytest.mark.parametrize("size", [8, 12])
def test_interrupt_stops_sampling_and_marks_the_rest(size):
    pipe = make_pipeline()
    steps = []

    def callback(pipe, step, position, callback_kwargs):
        steps.append(step)
        pipe._interrupt = step == 5
        return callback_kwargs

    out = pipe(height=size, width=size, generator=seeded(), output_type="pt", callback_on_step_end=callback)
    tokens = out.indices.reshape(1, -1)
    assert steps == list(range(6)) and pipe.interrupt
    assert (tokens[:, :6] >= 0).all() and (tokens[:, 6:] == -1).all()
    assert out.images.shape == (1, 3, size, size)
    assert not make_pipeline().interrupt


def test_guidance_scale_property_is_the_calls_scale():
    pipe = make_pipeline("class", with_null=True)
    scales = []
    latent(
        pipe, class_labels=[1], guidance_scale=1.5, callback_on_step_end=lambda p, *_: scales.append(p.guidance_scale)
    )
    assert scales == [1.5] * 16 and pipe.guidance_scale == 1.5


def test_callback_can_change_the_guidance_scale_between_tokens(monkeypatch):
    pipe = make_pipeline("class", with_null=True)
    used = []
    original = ImageTokenSampler.scores

    def spy(self, logits):
        used.append(self.guidance_scale)
        return original(self, logits)

    def raise_scale(pipe, step, position, callback_kwargs):
        pipe._guidance_scale += 1.0
        return callback_kwargs

    monkeypatch.setattr(ImageTokenSampler, "scores", spy)
    latent(pipe, class_labels=[1], guidance_scale=1.5, callback_on_step_end=raise_scale)
    assert pipe.num_timesteps == 16
    assert used == [1.5 + step for step in range(16)]
    assert pipe.guidance_scale == 1.5 + pipe.num_timesteps


def test_rejects_unknown_callback_tensor_inputs():
    with pytest.raises(
        ValueError,
        match=r"callback_on_step_end_tensor_inputs must be a list of names from \['latents'\], got \['tokens'\]\.",
    ):
        make_pipeline()(callback_on_step_end=lambda *args: None, callback_on_step_end_tensor_inputs=["tokens"])


def test_rejects_a_callback_that_is_not_callable():
    with pytest.raises(ValueError, match=r"callback_on_step_end must be a callable .* got int\."):
        make_pipeline()(callback_on_step_end=3)


def test_rejects_a_callback_that_returns_no_dict():
    with pytest.raises(
        ValueError, match=r"callback_on_step_end must return a dict of tensors \(or None\), got list\."
    ):
        make_pipeline()(output_type="latent", callback_on_step_end=lambda *args: [])


def test_rejects_replacement_tokens_of_another_shape():
    def callback(pipe, step, position, callback_kwargs):
        return {"latents": torch.zeros(1, 3, dtype=torch.long)}

    message = r"callback_on_step_end returned tokens \(1, 3\); expected a tensor of the shape \(1, 1\) of the tokens"
    with pytest.raises(ValueError, match=message):
        make_pipeline()(output_type="latent", callback_on_step_end=callback)


def test_rejects_replacement_tokens_that_are_not_integers():
    def callback(pipe, step, position, callback_kwargs):
        return {"latents": callback_kwargs["latents"].float()}

    with pytest.raises(
        ValueError, match=r"callback_on_step_end must return integer tokens, got dtype torch.float32\."
    ):
        make_pipeline()(output_type="latent", callback_on_step_end=callback)


def test_rejects_replacement_tokens_outside_the_image_codes():
    def callback(pipe, step, position, callback_kwargs):
        return {"latents": torch.full_like(callback_kwargs["latents"], K)}

    with pytest.raises(
        ValueError, match=rf"callback_on_step_end returned tokens in \[{K}, {K}\]; image codes lie in \[0, {K}\)\."
    ):
        make_pipeline()(output_type="latent", callback_on_step_end=callback)


def test_diffusers_pipeline_callbacks_are_accepted():
    from diffusers.callbacks import MultiPipelineCallbacks, PipelineCallback

    class Recorder(PipelineCallback):
        tensor_inputs = ["latents"]

        def callback_fn(self, pipeline, step_index, timestep, callback_kwargs):
            self.seen = getattr(self, "seen", []) + [(step_index, callback_kwargs["latents"].shape[1])]
            return callback_kwargs

    first, second = Recorder(), Recorder()
    latent(make_pipeline(), generator=seeded(), callback_on_step_end=MultiPipelineCallbacks([first, second]))
    assert first.seen == second.seen == [(step, step + 1) for step in range(WINDOW * WINDOW)]
