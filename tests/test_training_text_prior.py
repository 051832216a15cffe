"""Training a text-conditional prior: caption batches, caption choice and dropout, the text / image loss
weight (unit), and `scripts/train_transformer.py --conditioning text` end to end on a toy captioned set."""

import json
import math
import re

import datasets
import numpy as np
import PIL.Image
import pytest
import torch
import torch.nn.functional as F
from transformers import CLIPTokenizer, GPT2Config, GPT2LMHeadModel, TrainingArguments

from taming_hf import VQGANConfig, VQGANImageProcessor, VQGANModel
from taming_hf.pipelines.taming import TamingPipeline, TokenLayout
from taming_hf.pipelines.taming.text_vocabulary import TextVocabulary
from taming_hf.training.prior_data import (
    IGNORE_INDEX,
    PriorDataCollator,
    choose_captions,
    encode_dataset,
    example_captions,
    seen_text_token_ids,
)
from taming_hf.training.prior_trainer import PriorTrainer
from test_training_transformer import logged_losses, run_script
from text_fixtures import tiny_clip_tokenizer

K, LENGTH = 8, 5
COLORS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220), "yellow": (230, 220, 30)}


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory) -> CLIPTokenizer:
    return tiny_clip_tokenizer(tmp_path_factory.mktemp("tokenizer"))


def vocabulary(tokenizer, token_ids=None) -> TextVocabulary:
    num_text = len(tokenizer) if token_ids is None else len(token_ids)
    layout = TokenLayout.build("text", K, num_text, with_text_unknown=token_ids is not None)
    return TextVocabulary(K, len(tokenizer), LENGTH, layout.text_pad_token_id, token_ids, layout.text_unknown_token_id)


def test_example_captions_take_strings_and_lists_and_skip_empty_ones():
    assert example_captions(["a red apple", ["red", "", "fruit"], None, " "]) == ["a red apple", "red", "fruit"]
    with pytest.raises(ValueError, match=re.escape("Captions must be strings or lists of strings, got 3 (int).")):
        example_captions(["a", [3]])


def test_collator_builds_text_prefix_choices_and_masks_the_prefix(tokenizer):
    text = vocabulary(tokenizer)
    pad = text.pad_token_id
    red, cat = tokenizer("a red apple")["input_ids"], tokenizer("cat")["input_ids"]
    null = tokenizer("")["input_ids"]
    features = [
        {"indices": np.arange(4).reshape(2, 2), "caption_ids": [red, cat]},
        {"indices": np.arange(4, 8).reshape(2, 2), "caption_ids": []},  # no caption: the null caption
    ]
    batch = PriorDataCollator(TokenLayout.build("text", K, len(tokenizer)), None, text, null)(features)
    assert batch["input_ids"].tolist() == [
        [K + i for i in red] + [0, 1, 2, 3],
        [K + i for i in null] + [pad] * 3 + [4, 5, 6, 7],
    ]
    assert batch["labels"].tolist() == [[IGNORE_INDEX] * LENGTH + [0, 1, 2, 3], [IGNORE_INDEX] * LENGTH + [4, 5, 6, 7]]
    assert batch["caption_counts"].tolist() == [2, 1]
    assert batch["caption_choices"].shape == (2, 2, LENGTH)
    assert batch["caption_choices"][0, 1].tolist() == [K + i for i in cat] + [pad] * 2


def test_choose_captions_draws_among_each_rows_captions_and_drops_to_the_null_caption():
    choices = torch.tensor([[[1, 1], [2, 2], [3, 3]], [[4, 4], [4, 4], [4, 4]]])
    counts = torch.tensor([2, 1])
    input_ids = torch.tensor([[1, 1, 7, 7], [4, 4, 8, 8]])
    null = torch.tensor([9, 0])
    generator = torch.Generator().manual_seed(0)
    picked = {
        tuple(choose_captions(input_ids, choices, counts, null, 0.0, generator)[0, :2].tolist()) for _ in range(40)
    }
    assert picked == {(1, 1), (2, 2)}  # row 0 has 2 captions: the third choice is padding, never drawn
    dropped = choose_captions(input_ids, choices, counts, null, 0.999999, generator)
    assert dropped.tolist() == [[9, 0, 7, 7], [9, 0, 8, 8]]  # image codes untouched
    assert input_ids.tolist() == [[1, 1, 7, 7], [4, 4, 8, 8]]  # a copy


def test_seen_text_token_ids_are_the_captions_ids_and_the_extra_ones():
    assert seen_text_token_ids([[[5, 3], [3, 9]], [], [[1]]], extra=[2, 5]) == [1, 2, 3, 5, 9]


def tiny_text_trainer(tokenizer, tmp_path, text_loss_weight):
    text = vocabulary(tokenizer)
    layout = TokenLayout.build("text", K, len(tokenizer))
    torch.manual_seed(0)
    special = layout.text_pad_token_id
    config = GPT2Config(
        vocab_size=layout.vocab_size,
        n_positions=LENGTH + 4,
        n_embd=16,
        n_layer=1,
        n_head=2,
        bos_token_id=special,
        eos_token_id=special,
    )
    config.resid_pdrop = config.embd_pdrop = config.attn_pdrop = 0.0  # training mode without dropout noise
    model = GPT2LMHeadModel(config)
    args = TrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True, remove_unused_columns=False)
    null = text.prefix([tokenizer("")["input_ids"]])[0]
    trainer = PriorTrainer(
        model=model,
        args=args,
        layout=layout,
        text_vocabulary=text,
        null_text_prefix=null,
        text_loss_weight=text_loss_weight,
    )
    features = [{"indices": np.arange(4).reshape(2, 2), "caption_ids": [tokenizer("a red apple")["input_ids"]]}]
    batch = PriorDataCollator(layout, None, text, tokenizer("")["input_ids"])(features)
    return trainer, model, batch


def test_text_loss_weight_mixes_the_caption_and_image_losses(tokenizer, tmp_path):
    weight = 0.125
    trainer, model, batch = tiny_text_trainer(tokenizer, tmp_path, weight)
    model.train()
    loss = trainer.compute_loss(model, dict(batch))
    logits = model(batch["input_ids"]).logits[0, :-1]
    targets = batch["input_ids"][0, 1:]
    per_token = F.cross_entropy(logits, targets, reduction="none")
    caption = per_token[: LENGTH - 1]  # bos, a, red, apple predict a, red, apple, eos (no pads to skip here)
    image = per_token[LENGTH - 1 :]
    assert loss.item() == pytest.approx((weight * caption.mean() + (1 - weight) * image.mean()).item(), rel=1e-5)


def test_zero_text_loss_weight_is_the_image_codes_loss(tokenizer, tmp_path):
    trainer, model, batch = tiny_text_trainer(tokenizer, tmp_path, 0.0)
    model.train()
    loss = trainer.compute_loss(model, dict(batch))
    logits = model(batch["input_ids"]).logits[0, LENGTH - 1 : -1]
    assert loss.item() == pytest.approx(F.cross_entropy(logits, batch["input_ids"][0, LENGTH:]).item(), rel=1e-5)


def test_text_loss_weight_of_one_is_refused(tokenizer, tmp_path):
    with pytest.raises(
        ValueError, match=re.escape("text_loss_weight must be in [0, 1) (1 would train no image code), got 1.0.")
    ):
        tiny_text_trainer(tokenizer, tmp_path, 1.0)


def test_encode_dataset_tokenizes_every_caption_column(tokenizer):
    vqgan, processor = tiny_rgb_vqgan()
    images = [PIL.Image.new("RGB", (16, 16), color) for color in COLORS.values()][:2]
    data = datasets.Dataset.from_dict(
        {"image": images, "text": ["a red apple", ""], "keywords": [["red"], ["cat", "dog"]]}
    )
    codes = encode_dataset(
        data, vqgan, processor, caption_columns=["text", "keywords"], tokenizer=tokenizer, max_text_length=4
    )
    assert codes.column_names == ["indices", "caption_ids"]
    ids = tokenizer(["a red apple", "red", "cat", "dog"], truncation=True, max_length=4)["input_ids"]
    assert codes["caption_ids"] == [[ids[0], ids[1]], [ids[2], ids[3]]]
    assert codes["caption_ids"][0][0][-1] == tokenizer.eos_token_id and len(codes["caption_ids"][0][0]) == 4


# ----------------------------------------------------------------------------------------------
# End to end: scripts/train_transformer.py --conditioning text
# ----------------------------------------------------------------------------------------------


def tiny_rgb_vqgan():
    torch.manual_seed(0)
    config = VQGANConfig(
        embed_dim=8,
        num_embeddings=16,
        latent_channels=8,
        resolution=16,
        in_channels=3,
        base_channels=32,
        channel_multiplier=[1, 2],
        num_res_blocks=1,
        attn_resolutions=[],
    )
    return VQGANModel(config).eval(), VQGANImageProcessor(resolution=16, num_channels=3)


def captioned_squares(folder):
    """96 coloured squares on white, each with a caption ("a red square") and keywords (["red", "square"])."""
    images, texts, keywords = [], [], []
    for index in range(96):
        name, color = list(COLORS.items())[index % 4]
        image = PIL.Image.new("RGB", (16, 16), (255, 255, 255))
        offset = index // 4 % 5
        image.paste(PIL.Image.new("RGB", (8, 8), color), (offset, offset))
        images.append(image)
        texts.append(f"a {name} square")
        keywords.append([name, "square"])
    features = datasets.Features(
        {
            "image": datasets.Image(),
            "text": datasets.Value("string"),
            "keywords": datasets.Sequence(datasets.Value("string")),
        }
    )
    data = datasets.Dataset.from_dict({"image": images, "text": texts, "keywords": keywords}, features=features)
    datasets.DatasetDict({"train": data}).save_to_disk(folder)
    return folder


@pytest.fixture(scope="module")
def text_run(tokenizer, tmp_path_factory):
    root = tmp_path_factory.mktemp("text_run")
    vqgan, processor = tiny_rgb_vqgan()
    vqgan.save_pretrained(root / "vqgan")
    processor.save_pretrained(root / "vqgan")
    tokenizer.save_pretrained(root / "tokenizer")
    args = ["--dataset_name", captioned_squares(root / "data"), "--validation_fraction", "0.25"]
    args += ["--vqgan_model_name_or_path", root / "vqgan", "--output_dir", root / "out"]
    args += ["--conditioning", "text", "--caption_column", "text", "--extra_caption_columns", "keywords"]
    args += ["--tokenizer_name_or_path", root / "tokenizer", "--max_text_length", "8"]
    args += ["--caption_dropout_prob", "0.2", "--text_loss_weight", "0.125", "--sample_guidance_scale", "2.0"]
    args += ["--n_layer", "1", "--n_head", "2", "--n_embd", "32", "--train_batch_size", "16"]
    args += ["--learning_rate", "3e-3", "--lr_scheduler", "constant", "--max_train_steps", "30"]
    args += ["--logging_steps", "5", "--validation_steps", "30", "--checkpointing_steps", "30"]
    args += ["--num_validation_images", "4"]
    run_script(args)
    return root


@pytest.mark.slow
def test_text_training_loss_is_finite_and_decreases(text_run):
    losses = logged_losses(text_run / "out")
    assert sorted(losses) == [1, 5, 10, 15, 20, 25, 30]
    assert all(math.isfinite(loss) for loss in losses.values())
    assert losses[30] < losses[1] - 0.5, losses
    metrics = json.loads((text_run / "out" / "eval_results.json").read_text())
    assert math.isfinite(metrics["eval_loss"]) and metrics["eval_loss"] < math.log(16)
    assert (text_run / "out" / "samples" / "step-0000030.png").exists()


@pytest.mark.slow
def test_saved_text_pipeline_has_the_tokenizer_and_the_seen_vocabulary(text_run, tokenizer):
    out = text_run / "out"
    index = json.loads((out / "model_index.json").read_text())
    assert index["tokenizer"] == ["transformers", "CLIPTokenizer"] and (out / "tokenizer" / "tokenizer.json").exists()
    pipe = TamingPipeline.from_pretrained(out)
    captions = [f"a {name} square" for name in COLORS] + list(COLORS) + ["square", ""]
    expected = sorted({i for ids in tokenizer(captions)["input_ids"] for i in ids})
    assert pipe.config.text_token_ids == expected
    assert (pipe.config.max_text_length, pipe.config.null_caption) == (8, "")
    assert pipe.transformer.config.n_positions == 8 + 64
    assert pipe.transformer.generation_config.guidance_scale == 2.0
    images = pipe(
        prompt=["a red square", "a blue square"], generator=torch.Generator().manual_seed(0), output_type="np"
    )
    assert images.images.shape == (2, 16, 16, 3)


@pytest.mark.slow
def test_streamed_text_run_encodes_as_it_trains(text_run, tokenizer, tmp_path):
    """The same captioned set streamed: codes are encoded on the fly; every tokenizer id is a prior token."""
    root = text_run
    args = ["--dataset_name", root / "data", "--streaming", "--max_eval_samples", "16", "--text_vocab", "all"]
    args += ["--vqgan_model_name_or_path", root / "vqgan", "--output_dir", tmp_path / "out"]
    args += ["--conditioning", "text", "--caption_column", "text", "--extra_caption_columns", "keywords"]
    args += ["--tokenizer_name_or_path", root / "tokenizer", "--max_text_length", "8"]
    args += ["--n_layer", "1", "--n_head", "2", "--n_embd", "16", "--train_batch_size", "8"]
    args += ["--max_train_steps", "4", "--logging_steps", "2", "--validation_steps", "4", "--checkpointing_steps", "4"]
    args += ["--num_validation_images", "2"]
    run_script(args)
    losses = logged_losses(tmp_path / "out")
    assert sorted(losses) == [1, 2, 4] and all(math.isfinite(loss) for loss in losses.values())
    pipe = TamingPipeline.from_pretrained(tmp_path / "out")
    assert pipe.config.text_token_ids is None and pipe.config.num_condition_tokens == len(tokenizer)


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--text_loss_weight", "1"], "--text_loss_weight must be in [0, 1) (1 would train no image code), got 1.0."),
        (["--caption_dropout_prob", "1.5"], "--caption_dropout_prob must be in [0, 1), got 1.5."),
        (["--max_text_length", "0"], "--max_text_length must be a positive number of tokens, got 0."),
        (["--streaming"], "--streaming needs --max_train_steps: a streamed dataset has no length to count epochs by."),
        (
            ["--streaming", "--max_train_steps", "5"],
            "--streaming needs --text_vocab all: --text_vocab seen reads every training caption before training, "
            "which a stream cannot do.",
        ),
    ],
)
def test_text_flags_outside_their_domain_are_named(flags, message, capsys):
    from test_training_transformer import load_script_module

    script = load_script_module()
    with pytest.raises(SystemExit):
        script.parse_args(["--vqgan_model_name_or_path", "x", "--dataset_name", "d"] + flags)
    assert message in capsys.readouterr().err


def test_text_only_flags_need_text_conditioning():
    from test_training_transformer import load_script_module

    script = load_script_module()
    args = script.parse_args(["--vqgan_model_name_or_path", "x", "--dataset_name", "d", "--text_loss_weight", "0.1"])
    with pytest.raises(ValueError, match=re.escape("--text_loss_weight needs --conditioning text, got 'class'.")):
        script.check_text_arguments(args, "class")
    args = script.parse_args(["--vqgan_model_name_or_path", "x", "--dataset_name", "d"])
    with pytest.raises(
        ValueError, match=re.escape("--conditioning text needs --caption_column and --tokenizer_name_or_path.")
    ):
        script.check_text_arguments(args, "text")
