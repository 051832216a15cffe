"""The shipped emoji CLIP (`pretrained/emoji-clip`): it loads with transformers' standard classes, carries OpenAI's
tokenizer, and ranks the right caption first for most training emoji.

The retrieval check needs the real emoji dataset (`python -m taming_hf.data.emoji`; CI builds it first): without it
the test fails under `CI=true` and is skipped elsewhere."""

import json
import os
from pathlib import Path

import pytest
import torch
from transformers import CLIPModel, CLIPProcessor

from original_taming import running_in_ci
from taming_hf.data import emoji
from taming_hf.evaluation import evaluate_clip_retrieval

PRETRAINED = Path(__file__).resolve().parents[1] / "pretrained" / "emoji-clip"


@pytest.fixture(scope="module")
def clip():
    return CLIPModel.from_pretrained(PRETRAINED).eval(), CLIPProcessor.from_pretrained(PRETRAINED)


@pytest.fixture(scope="module")
def real_emoji():
    folder = os.path.join(emoji.default_cache_dir(), emoji.cache_key(emoji.STYLES, 64))
    if not os.path.isfile(os.path.join(folder, "dataset_dict.json")):
        reason = f"The emoji dataset is not built ({folder} is missing); build it with: python -m taming_hf.data.emoji"
        if running_in_ci():
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    return emoji.load_emoji_dataset()


def test_shipped_clip_loads_float32_at_64_px_with_openai_tokenizer(clip):
    model, processor = clip
    assert model.dtype == torch.float32 and model.config.vision_config.image_size == 64
    assert model.config.vision_config.patch_size == 8 and model.config.text_config.vocab_size == 49408
    assert processor.image_processor.crop_size == {"height": 64, "width": 64}
    assert processor.tokenizer("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]
    ids = processor(text=["thumbs up: medium skin tone"], return_tensors="pt").input_ids
    assert ids.tolist() == [[49406, 17599, 705, 281, 8675, 3575, 8408, 49407]]


def test_shipped_clip_files_stay_small():
    sizes = {path.name: path.stat().st_size for path in PRETRAINED.iterdir() if path.is_file()}
    assert sum(sizes.values()) < 15_000_000, sizes


def test_shipped_clip_ranks_the_right_caption_first_for_most_train_emoji(clip, real_emoji):
    model, processor = clip
    train = real_emoji["train"]
    result = evaluate_clip_retrieval(model, processor, train["image"], train["text"], num_candidates=20, seed=1)
    assert result.image_to_text_top1 >= 0.7 and result.text_to_image_top1 >= 0.7, result.metrics()


def test_shipped_retrieval_figures_match_the_model_card():
    figures = json.loads((PRETRAINED / "retrieval.json").read_text())
    card = (PRETRAINED / "README.md").read_text()
    for split, metrics in figures.items():
        row = f"| {split} | {metrics['num_candidates']} | {metrics['text_to_image_top1']:.1%} |"
        assert row in card
    assert figures["train"]["text_to_image_top1"] >= 0.5  # the aim: half of 100 random train emoji
