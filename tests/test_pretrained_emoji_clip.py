"""The shipped emoji CLIPs (`pretrained/emoji-clip`, the guide and reranker, and `pretrained/emoji-clip-judge`, the
independent judge): each loads with transformers' standard classes, carries OpenAI's tokenizer, and ranks the right
caption first for most training emoji; the judge is another model, not a copy.

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

SHIPPED = Path(__file__).resolve().parents[1] / "pretrained"
GUIDE, JUDGE = SHIPPED / "emoji-clip", SHIPPED / "emoji-clip-judge"
# Most of each folder is the 49408-row token embedding (float16) and the 3.6 MB tokenizer; the judge is wider.
MAX_BYTES = {GUIDE: 15_000_000, JUDGE: 17_000_000}


@pytest.fixture(scope="module", params=[GUIDE, JUDGE], ids=["guide", "judge"])
def pretrained(request):
    return request.param


@pytest.fixture(scope="module")
def clip(pretrained):
    return CLIPModel.from_pretrained(pretrained).eval(), CLIPProcessor.from_pretrained(pretrained)


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


def test_shipped_clip_files_stay_small(pretrained):
    sizes = {path.name: path.stat().st_size for path in pretrained.iterdir() if path.is_file()}
    assert sum(sizes.values()) < MAX_BYTES[pretrained], sizes


def test_shipped_clip_ranks_the_right_caption_first_for_most_train_emoji(clip, real_emoji):
    model, processor = clip
    train = real_emoji["train"]
    result = evaluate_clip_retrieval(model, processor, train["image"], train["text"], num_candidates=20, seed=1)
    assert result.image_to_text_top1 >= 0.7 and result.text_to_image_top1 >= 0.7, result.metrics()


def test_shipped_retrieval_figures_match_the_model_card(pretrained):
    figures = json.loads((pretrained / "retrieval.json").read_text())
    card = (pretrained / "README.md").read_text()
    for split, metrics in figures.items():
        row = f"| {split} | {metrics['num_candidates']} | {metrics['text_to_image_top1']:.1%} |"
        assert row in card
    assert figures["train"]["text_to_image_top1"] >= 0.5  # the aim: half of 100 random train emoji


def test_judge_is_another_architecture_and_seed_than_the_guide():
    guide, judge = (json.loads((folder / "config.json").read_text()) for folder in (GUIDE, JUDGE))
    towers = ("hidden_size", "num_hidden_layers", "num_attention_heads")
    for tower in ("text_config", "vision_config"):
        assert [guide[tower][key] for key in towers] != [judge[tower][key] for key in towers], tower
    assert guide["projection_dim"] != judge["projection_dim"]
    assert "--seed 1 " in (JUDGE / "README.md").read_text()
