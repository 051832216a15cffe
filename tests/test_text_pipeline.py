"""Text conditioning of TamingPipeline on tiny random models: a CLIP BPE tokenizer built from a small
vocab.json / merges.txt, a one-layer GPT-2 prior, a 2x-downsampling VQGAN and a tiny CLIPModel."""

import json
import logging
import re

import pytest
import torch
from transformers import CLIPModel, CLIPProcessor, CLIPTokenizer, GPT2Config, GPT2LMHeadModel

from taming_hf import TamingPipeline, TokenLayout
from taming_hf.pipelines.taming.text_vocabulary import TextVocabulary, tokenizer_fingerprint
from test_pipeline import WINDOW, K, seeded, tiny_gpt, tiny_vqgan
from text_fixtures import tiny_clip, tiny_clip_tokenizer, write_clip_bpe

LENGTH = 6  # max_text_length
LOGGER = "taming_hf.pipelines.taming.pipeline_taming"


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory) -> CLIPTokenizer:
    return tiny_clip_tokenizer(tmp_path_factory.mktemp("tokenizer"))


def text_gpt(vocab_size, n_positions, seed=1):
    """A one-layer GPT-2 whose wide weight init makes its next-token choices depend on the prefix."""
    torch.manual_seed(seed)
    special = vocab_size - 1
    config = GPT2Config(
        vocab_size=vocab_size,
        n_positions=n_positions,
        n_embd=16,
        n_layer=1,
        n_head=2,
        bos_token_id=special,
        eos_token_id=special,
    )
    config.initializer_range = 0.5
    return GPT2LMHeadModel(config).eval()


def make_text_pipeline(tokenizer, token_ids=None, null_caption="", clip=None, max_text_length=LENGTH, **kwargs):
    """A text pipeline over all of the tokenizer's ids, or over `token_ids` only (with an unknown token)."""
    num_text = len(tokenizer) if token_ids is None else len(token_ids)
    layout = TokenLayout.build("text", K, num_text, with_text_unknown=token_ids is not None)
    clip_model, clip_processor = clip if clip is not None else (None, None)
    pipe = TamingPipeline(
        tiny_vqgan(),
        text_gpt(layout.vocab_size, max_text_length + WINDOW * WINDOW),
        tokenizer=tokenizer,
        clip=clip_model,
        clip_processor=clip_processor,
        conditioning="text",
        num_condition_tokens=num_text,
        max_text_length=max_text_length,
        text_token_ids=token_ids,
        null_caption=null_caption,
        **kwargs,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def messages(caplog) -> list:
    """The pipeline module's log messages (other libraries' records left out)."""
    return [record.getMessage() for record in caplog.records if record.name == LOGGER]


def raises_exactly(message):
    return pytest.raises(ValueError, match=f"^{re.escape(message)}$")


def ids_of(tokenizer, text):
    return tokenizer(text)["input_ids"]


# --------------------------------------------------------------------------------------- layout


def test_prefix_maps_all_tokenizer_ids_after_the_image_codes_then_pads(tokenizer):
    pipe = make_text_pipeline(tokenizer)
    layout = pipe.layout
    assert (layout.num_condition_tokens, layout.text_pad_token_id) == (len(tokenizer), K + len(tokenizer))
    assert layout.text_unknown_token_id is None and layout.vocab_size == K + len(tokenizer) + 1
    ids = ids_of(tokenizer, "a red apple")
    assert tokenizer.convert_ids_to_tokens(ids) == [
        "<|startoftext|>",
        "a</w>",
        "red</w>",
        "apple</w>",
        "<|endoftext|>",
    ]
    prefix = pipe.encode_prompt(["a red apple", ""])
    pad = layout.text_pad_token_id
    assert prefix.tolist() == [
        [K + i for i in ids] + [pad],
        [K + tokenizer.bos_token_id, K + tokenizer.eos_token_id] + [pad] * 4,
    ]


def test_prefix_with_kept_ids_maps_others_to_the_unknown_token(tokenizer, caplog):
    kept = ids_of(tokenizer, "a red apple cat")  # bos, a, red, apple, cat, eos
    pipe = make_text_pipeline(tokenizer, token_ids=kept)
    layout = pipe.layout
    assert (layout.text_pad_token_id, layout.text_unknown_token_id, layout.vocab_size) == (K + 6, K + 7, K + 8)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        prefix = pipe.encode_prompt("a green cat")
    assert prefix.tolist() == [[K + 0, K + 1, K + 7, K + 4, K + 5, K + 6]]
    assert messages(caplog) == [
        "The prior has no text token for 1 of the prompts' tokens (['green</w>']): the training captions never used "
        "them, and they are read as the unknown-text token."
    ]


def test_text_vocabulary_lookup_round_trips_the_kept_ids():
    vocabulary = TextVocabulary(
        offset=10, tokenizer_vocab_size=8, max_text_length=3, pad_token_id=13, token_ids=(5, 2, 7), unknown_token_id=14
    )
    assert vocabulary.num_tokens == 3
    assert vocabulary.lookup().tolist() == [14, 14, 11, 14, 14, 10, 14, 12]
    assert vocabulary.prefix([[5, 7], [3]]).tolist() == [[10, 12, 13], [14, 13, 13]]
    with raises_exactly(
        "text_token_ids hold tokenizer ids [9] outside the tokenizer's [0, 8) range: the tokenizer is not the one "
        "the prior was trained with."
    ):
        TextVocabulary(10, 8, 3, 13, token_ids=(5, 9), unknown_token_id=14)


def test_long_prompt_is_truncated_by_the_tokenizer_with_a_warning(tokenizer, caplog):
    pipe = make_text_pipeline(tokenizer)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        prefix = pipe.encode_prompt("a red apple a green dog")  # 8 tokens with bos / eos
    expected = tokenizer("a red apple a green dog", truncation=True, max_length=LENGTH)["input_ids"]
    assert prefix.tolist() == [[K + i for i in expected]]
    assert expected[-1] == tokenizer.eos_token_id  # CLIP's truncation keeps the end token
    assert messages(caplog) == [
        "Prompt 'a red apple a green dog' is 8 tokens long, longer than this pipeline's max_text_length=6; it is "
        "truncated to 'a red apple a'."
    ]


# ------------------------------------------------------------------------------------- sampling


def test_prompt_list_batches_with_num_images_per_prompt(tokenizer):
    pipe = make_text_pipeline(tokenizer)
    out = pipe(prompt=["a red apple", "a cat"], num_images_per_prompt=3, generator=seeded(), output_type="np")
    assert out.images.shape == (6, 8, 8, 3) and out.indices.shape == (6, 4, 4)
    assert out.clip_scores is None
    single = pipe(prompt="a cat", generator=seeded(1), output_type="latent").indices
    assert single.shape == (1, 4, 4) and 0 <= int(single.min()) and int(single.max()) < K


@torch.no_grad()
def test_text_guidance_batched_equals_two_forwards(tokenizer):
    pipe = make_text_pipeline(tokenizer)
    scale = 3.0
    indices = pipe(prompt="a red apple", guidance_scale=scale, top_k=1, output_type="latent").indices
    gpt = pipe.transformer
    conditional_prefix, null_prefix = pipe.encode_prompt("a red apple"), pipe.encode_prompt("")
    tokens = torch.zeros(1, 0, dtype=torch.long)
    for _ in range(WINDOW * WINDOW):
        conditional = gpt(torch.cat([conditional_prefix, tokens], 1)).logits[:, -1].log_softmax(-1)
        unconditional = gpt(torch.cat([null_prefix, tokens], 1)).logits[:, -1].log_softmax(-1)
        guided = unconditional + scale * (conditional - unconditional)
        tokens = torch.cat([tokens, guided[:, :K].argmax(-1, keepdim=True)], 1)
    assert torch.equal(indices.reshape(1, -1), tokens)
    unguided = pipe(prompt="a red apple", top_k=1, output_type="latent").indices
    assert not torch.equal(indices, unguided)


def first_forward_inputs(pipe, monkeypatch, **kwargs) -> torch.LongTensor:
    """The input ids of the transformer's first forward in a pipeline call."""
    seen = []
    forward = pipe.transformer.forward

    def spy(input_ids=None, **rest):
        seen.append(input_ids.clone())
        return forward(input_ids=input_ids, **rest)

    monkeypatch.setattr(pipe.transformer, "forward", spy)
    pipe(**kwargs, output_type="latent")
    return seen[0]


def test_negative_prompt_replaces_the_null_caption(tokenizer, monkeypatch):
    pipe = make_text_pipeline(tokenizer)
    call = dict(prompt=["a red apple", "a cat"], num_images_per_prompt=2, guidance_scale=2.0)
    inputs = first_forward_inputs(pipe, monkeypatch, **call, negative_prompt=["a green apple", "a dog"])
    expected_null = pipe.encode_prompt(["a green apple", "a dog"]).repeat_interleave(2, dim=0)
    assert torch.equal(inputs[:4], pipe.encode_prompt(["a red apple", "a cat"]).repeat_interleave(2, dim=0))
    assert torch.equal(inputs[4:], expected_null)
    inputs = first_forward_inputs(pipe, monkeypatch, **call)  # no negative prompt: the empty caption
    assert torch.equal(inputs[4:], pipe.encode_prompt("").expand(4, -1))


def test_empty_negative_prompt_equals_the_learned_null_caption(tokenizer):
    pipe = make_text_pipeline(tokenizer)
    kwargs = dict(prompt="a dog", guidance_scale=2.5, output_type="latent")
    default = pipe(**kwargs, generator=seeded(4)).indices
    assert torch.equal(pipe(**kwargs, negative_prompt="", generator=seeded(4)).indices, default)
    assert not torch.equal(pipe(**kwargs, negative_prompt="a cat", generator=seeded(4)).indices, default)


def test_model_default_guidance_applies_to_text_models_with_a_null_caption(tokenizer):
    pipe = make_text_pipeline(tokenizer)
    pipe.set_default_sampling(guidance_scale=2.0)
    explicit = pipe(prompt="a cat", guidance_scale=2.0, generator=seeded(), output_type="latent").indices
    assert torch.equal(pipe(prompt="a cat", generator=seeded(), output_type="latent").indices, explicit)
    assert make_text_pipeline(tokenizer, null_caption=None).sampling_settings().guidance_scale == 1.0


def test_text_sliding_window(tokenizer):
    pipe = make_text_pipeline(tokenizer)
    out = pipe(prompt="a cat", height=12, width=10, guidance_scale=2.0, generator=seeded(), output_type="latent")
    assert out.indices.shape == (1, 6, 5) and int(out.indices.max()) < K


# ------------------------------------------------------------------------------------ reranking


def test_reranking_keeps_the_candidates_clip_scores_best(tokenizer):
    clip, processor = tiny_clip(tokenizer)
    pipe = make_text_pipeline(tokenizer, clip=(clip, processor))
    prompts = ["a red apple", "a smiling cat face"]
    candidates = pipe(prompt=prompts, num_images_per_prompt=5, generator=seeded(7), output_type="pt")
    pil = pipe.image_processor.postprocess(candidates.images * 2 - 1, output_type="pil")
    scores = pipe.clip_similarity(prompts, pil, clip, processor)  # (2, 10)
    expected_rows, expected_scores = [], []
    for index in range(2):
        own = scores[index, 5 * index : 5 * index + 5]
        order = own.argsort(descending=True)[:2]
        expected_rows += (order + 5 * index).tolist()
        expected_scores += own[order].tolist()
    out = pipe(prompt=prompts, num_images_per_prompt=2, num_candidates=5, generator=seeded(7), output_type="pt")
    assert torch.equal(out.indices, candidates.indices[expected_rows])
    assert torch.allclose(out.images, candidates.images[expected_rows], atol=1e-6)
    assert out.clip_scores.tolist() == pytest.approx(expected_scores)
    assert out.clip_scores[0] >= out.clip_scores[1] and out.clip_scores[2] >= out.clip_scores[3]


def test_reranking_takes_a_clip_as_call_arguments(tokenizer):
    clip, processor = tiny_clip(tokenizer, seed=5)
    pipe = make_text_pipeline(tokenizer)  # no clip component
    out = pipe(prompt="a dog", num_candidates=3, clip=clip, clip_processor=processor, generator=seeded(2))
    assert len(out.images) == 1 and out.clip_scores.shape == (1,)
    similarity = pipe.clip_similarity(["a dog"], out.images, clip, processor)
    assert similarity.item() == pytest.approx(out.clip_scores.item(), abs=1e-5)


# ------------------------------------------------------------------------------ saving, loading


def test_save_load_round_trip_with_tokenizer_and_clip(tokenizer, tmp_path):
    clip = tiny_clip(tokenizer)
    pipe = make_text_pipeline(tokenizer, token_ids=ids_of(tokenizer, "a red apple cat dog"), clip=clip)
    pipe.save_pretrained(tmp_path)
    index = json.loads((tmp_path / "model_index.json").read_text())
    assert index["tokenizer"] == ["transformers", "CLIPTokenizer"] and index["clip"] == ["transformers", "CLIPModel"]
    assert index["max_text_length"] == LENGTH and index["null_caption"] == ""
    loaded = TamingPipeline.from_pretrained(tmp_path)
    loaded.set_progress_bar_config(disable=True)
    assert isinstance(loaded.tokenizer, CLIPTokenizer) and isinstance(loaded.clip, CLIPModel)
    assert isinstance(loaded.clip_processor, CLIPProcessor)
    assert loaded.layout == pipe.layout and loaded.text_vocabulary == pipe.text_vocabulary
    kwargs = dict(prompt=["a red apple", "a cat"], guidance_scale=2.0, num_candidates=3, output_type="latent")
    expected = pipe(**kwargs, generator=seeded(5))
    actual = loaded(**kwargs, generator=seeded(5))
    assert torch.equal(actual.indices, expected.indices)
    assert torch.allclose(actual.clip_scores, expected.clip_scores)


def test_model_card_of_a_text_pipeline(tokenizer):
    card = str(make_text_pipeline(tokenizer).create_model_card("user/emoji-text"))
    assert "pipeline_tag: text-to-image" in card and "- text-to-image" in card and "text-generation" not in card
    assert 'images = pipe(prompt="a red apple", num_images_per_prompt=4, generator=generator).images' in card
    assert f"| max_text_length | {LENGTH} |" in card
    assert f"| text tokens | all {len(tokenizer)} tokenizer ids |" in card


# --------------------------------------------------------------------------------------- errors


def test_error_prompt_on_a_pipeline_without_text_conditioning():
    from test_pipeline import make_pipeline

    with raises_exactly(
        "prompt is only used by text-conditional pipelines, but this one's conditioning is 'class'; got "
        "prompt='a red apple'."
    ):
        make_pipeline("class")(class_labels=[0], prompt="a red apple")


def test_error_class_labels_or_no_prompt_on_a_text_pipeline(tokenizer):
    pipe = make_text_pipeline(tokenizer)
    with raises_exactly(
        "class_labels are only used by class-conditional pipelines, but this one's conditioning is 'text'; got "
        "class_labels=[1]."
    ):
        pipe(prompt="a cat", class_labels=[1])
    with raises_exactly("This is a text-conditional pipeline: pass a prompt (a string or a list of strings)."):
        pipe()
    with raises_exactly("prompt must be a string or a list of strings, got ['a cat', 3]."):
        pipe(prompt=["a cat", 3])
    with raises_exactly("prompt is an empty list; pass at least one prompt."):
        pipe(prompt=[])
    with raises_exactly("negative_prompt has 2 entries for 3 prompts; pass one string, or one per prompt."):
        pipe(prompt=["a", "b", "c"], negative_prompt=["x", "y"], guidance_scale=2.0)


def test_error_guidance_needs_a_null_caption_or_a_negative_prompt(tokenizer):
    pipe = make_text_pipeline(tokenizer, null_caption=None)
    with raises_exactly(
        "guidance_scale=2.0 needs a null caption to guide with: this text model was not trained with caption "
        "dropout (null_caption is None). Pass a negative_prompt, or use guidance_scale=1.0."
    ):
        pipe(prompt="a cat", guidance_scale=2.0)
    out = pipe(prompt="a cat", negative_prompt="a dog", guidance_scale=2.0, output_type="latent")
    assert out.indices.shape == (1, 4, 4)
    with raises_exactly(
        "negative_prompt only acts through classifier-free guidance, which is off (guidance_scale=1.0); pass a "
        "guidance_scale other than 1."
    ):
        make_text_pipeline(tokenizer)(prompt="a cat", negative_prompt="a dog")


def test_error_tokenizer_that_does_not_match_the_prior(tokenizer, tmp_path):
    pipe = make_text_pipeline(tokenizer)
    pipe.save_pretrained(tmp_path / "pipe")
    other = CLIPTokenizer.from_pretrained(tmp_path / "pipe" / "tokenizer")
    other.add_tokens(["<extra>"])
    with raises_exactly(
        f"The tokenizer (CLIPTokenizer, {len(tokenizer) + 1} tokens) is not the one the prior's text vocabulary was "
        f"built for: tokenizer_vocab_size={len(tokenizer)}. Load the pipeline's own tokenizer."
    ):
        TamingPipeline.from_pretrained(tmp_path / "pipe", tokenizer=other)
    folder = write_clip_bpe(tmp_path / "swapped")  # the same tokens, two of them with each other's ids
    vocab = json.loads((folder / "vocab.json").read_text())
    vocab["cat</w>"], vocab["dog</w>"] = vocab["dog</w>"], vocab["cat</w>"]
    (folder / "vocab.json").write_text(json.dumps(vocab))
    reordered = CLIPTokenizer.from_pretrained(folder)
    assert len(reordered) == len(tokenizer)
    fingerprint = tokenizer_fingerprint(reordered)
    with raises_exactly(
        f"The tokenizer (CLIPTokenizer) has the expected {len(tokenizer)} tokens but a different vocabulary "
        f"(fingerprint {fingerprint}, the prior was trained with {pipe.config.tokenizer_fingerprint}). Load the "
        "pipeline's own tokenizer."
    ):
        TamingPipeline.from_pretrained(tmp_path / "pipe", tokenizer=reordered)


def test_error_text_pipeline_without_tokenizer_or_with_a_wrong_token_count(tokenizer):
    with raises_exactly("conditioning='text' needs a tokenizer component to tokenize prompts."):
        TamingPipeline(
            tiny_vqgan(), tiny_gpt(K + 10, 22), conditioning="text", num_condition_tokens=9, max_text_length=6
        )
    with raises_exactly(
        f"num_condition_tokens=9 must equal the number of text tokens ({len(tokenizer)}, all the tokenizer's ids) "
        "for conditioning='text'."
    ):
        TamingPipeline(
            tiny_vqgan(),
            tiny_gpt(K + len(tokenizer) + 1, 22),
            tokenizer=tokenizer,
            conditioning="text",
            num_condition_tokens=9,
            max_text_length=6,
        )


def test_error_reranking_arguments(tokenizer):
    pipe = make_text_pipeline(tokenizer)
    clip, processor = tiny_clip(tokenizer)
    with raises_exactly(
        "num_candidates needs a CLIP to rank the candidates: this pipeline has no clip component; pass "
        "clip=CLIPModel.from_pretrained(...) and clip_processor=CLIPProcessor.from_pretrained(...)."
    ):
        pipe(prompt="a cat", num_candidates=4)
    with raises_exactly(
        "num_candidates=2 must be >= num_images_per_prompt=3: the best num_images_per_prompt of num_candidates "
        "samples per prompt are kept."
    ):
        pipe(prompt="a cat", num_images_per_prompt=3, num_candidates=2, clip=clip, clip_processor=processor)
    with raises_exactly("clip and clip_processor go together: pass both (a CLIPModel and its CLIPProcessor)."):
        pipe(prompt="a cat", num_candidates=2, clip=clip)
    with raises_exactly(
        "clip and clip_processor arguments rerank candidates: pass num_candidates (samples per prompt) as well."
    ):
        pipe(prompt="a cat", clip=clip, clip_processor=processor)
    with raises_exactly("Got 2 generators for a batch of 4 images."):
        pipe(prompt="a cat", num_candidates=4, clip=clip, clip_processor=processor, generator=[seeded(), seeded()])


def test_text_calls_emit_no_warnings(tokenizer, caplog):
    from test_pipeline import warnings_of

    pipe = make_text_pipeline(tokenizer, clip=tiny_clip(tokenizer))
    call = dict(prompt=["a red apple", "a cat"], guidance_scale=2.0, num_candidates=2, generator=seeded())
    assert warnings_of(lambda: pipe(**call), caplog) == []
