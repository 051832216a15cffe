"""CLIP training (`scripts/train_clip.py`) and text -> image retrieval (`taming_hf.evaluation.clip_retrieval`):
the loss falls, a resumed run equals an uninterrupted one, the saved folder reloads with the standard classes, the
retrieval figure on hand-made cases, and clear errors. Tiny models on a 24-image synthetic dataset, on CPU."""

import importlib.util
import json
import re
import shutil
from pathlib import Path

import datasets
import numpy as np
import PIL.Image
import pytest
import torch
from safetensors.torch import load_file
from transformers import CLIPModel, CLIPProcessor

from taming_hf.evaluation import clip_retrieval as retrieval_cli
from taming_hf.evaluation.clip_retrieval import (
    draw_distinct_captions,
    evaluate_clip_retrieval,
    grouped_top1,
    retrieval_accuracy,
)
from taming_hf.text import clip_tokenizer_dir
from taming_hf.utils.offline_weights import CLIP_BPE, place_weight_file

REPO = Path(__file__).resolve().parents[1]
COLORS = {"red": (220, 30, 30), "green": (30, 180, 40), "blue": (30, 60, 220), "yellow": (240, 220, 20)}
COLORS.update({"black": (10, 10, 10), "purple": (140, 40, 170)})
PLACES = {"top left": (0, 0), "top right": (0, 1), "bottom left": (1, 0), "bottom right": (1, 1)}
TINY = [
    "--resolution", "32", "--patch_size", "8", "--projection_dim", "8",
    "--text_hidden_size", "16", "--text_num_layers", "1", "--text_num_heads", "2",
    "--vision_hidden_size", "16", "--vision_num_layers", "1", "--vision_num_heads", "2",
    "--train_batch_size", "4", "--report_to", "none", "--num_retrieval_candidates", "10", "--lr_warmup_steps", "0",
    "--seed", "0",
]  # fmt: skip


@pytest.fixture(scope="module")
def train_clip():
    if not clip_tokenizer_dir().is_dir():  # the script's default tokenizer (`.ci/run` places it)
        place_weight_file(CLIP_BPE)
    spec = importlib.util.spec_from_file_location("script_train_clip", REPO / "scripts" / "train_clip.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def squares_dataset() -> datasets.Dataset:
    """24 white 32 px images, each with one coloured quadrant, captioned "a red square at the top left"."""
    rows = {"image": [], "text": [], "keywords": []}
    for color, rgb in COLORS.items():
        for place, (y, x) in PLACES.items():
            array = np.full((32, 32, 3), 255, np.uint8)
            array[y * 16 : (y + 1) * 16, x * 16 : (x + 1) * 16] = rgb
            rows["image"].append(PIL.Image.fromarray(array))
            rows["text"].append(f"a {color} square at the {place}")
            rows["keywords"].append([color, place])
    features = datasets.Features(
        {
            "image": datasets.Image(),
            "text": datasets.Value("string"),
            "keywords": datasets.List(datasets.Value("string")),
        }
    )
    return datasets.Dataset.from_dict(rows, features=features)


@pytest.fixture(scope="module")
def squares(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "squares"
    squares_dataset().train_test_split(test_size=4, seed=0).save_to_disk(str(path))
    return str(path)


def run(train_clip, squares, output_dir, *extra):
    argv = ["--dataset_name", squares, "--output_dir", str(output_dir), *TINY, *extra]
    return train_clip.main(train_clip.parse_args(argv))


# ----------------------------------------------------------------------------- retrieval


def test_retrieval_accuracy_counts_ranks_and_ties_against_the_query():
    similarity = torch.tensor(
        [
            [0.9, 0.1, 0.0],  # correct first
            [0.5, 0.4, 0.3],  # correct second
            [0.2, 0.2, 0.2],  # a tie with the correct one: ranks third
        ]
    )
    assert retrieval_accuracy(similarity, ks=(1, 2, 3)) == {1: 1 / 3, 2: 2 / 3, 3: 1.0}
    with pytest.raises(ValueError, match=re.escape("similarity should be a square (N, N) matrix, got shape (2, 3).")):
        retrieval_accuracy(torch.zeros(2, 3))


def test_grouped_top1_scores_each_image_against_its_own_group_only():
    # 4 images in 2 groups of 2; one-hot features, so image i matches exactly the prompts whose feature it shares.
    eye = torch.eye(4)
    text = eye.clone()
    # Group 0: image 0 is its own prompt, image 1 looks like prompt 0 (a miss). Group 1: both hit; image 3 also
    # equals prompt 0, which is in the other group and must not count against it.
    images = torch.stack([eye[0], eye[0], eye[2], eye[3] + eye[0]])
    assert grouped_top1(images, text, group_size=2) == (0.5 + 1.0) / 2
    assert grouped_top1(eye, text, group_size=4) == 1.0
    with pytest.raises(ValueError, match=re.escape("N=4 should be a positive multiple of group_size=3.")):
        grouped_top1(eye, text, group_size=3)
    with pytest.raises(ValueError, match=re.escape("image_features (4, 4) and text_features (3, 4) should have")):
        grouped_top1(eye, text[:3], group_size=2)


class IndexProcessor:
    """Stands in for a CLIPProcessor: a caption "c<i>" -> token i, an image -> its pixel value."""

    def __call__(self, text=None, images=None, **kwargs):
        if text is not None:
            return {"input_ids": torch.tensor([[int(t[1:])] for t in text])}
        return {"pixel_values": torch.tensor([[float(np.asarray(image)[0, 0, 0])] for image in images])}


class OneHotCLIP(torch.nn.Module):
    """Caption i embeds as e_i; image i as e_{image_to_caption[i]}: retrieval is right where the map is identity."""

    def __init__(self, image_to_caption):
        super().__init__()
        self.register_buffer("image_to_caption", torch.tensor(image_to_caption))
        self.weight = torch.nn.Parameter(torch.zeros(1))

    def get_text_features(self, input_ids, attention_mask=None):
        return torch.nn.functional.one_hot(input_ids[:, 0], len(self.image_to_caption)).float()

    def get_image_features(self, pixel_values):
        index = self.image_to_caption[pixel_values[:, 0].long()]
        return torch.nn.functional.one_hot(index, len(self.image_to_caption)).float()


def test_clip_retrieval_on_a_hand_made_model():
    # 6 images; images 4 and 5 swap their embeddings, so captions 4 and 5 retrieve the wrong image first.
    images = [PIL.Image.fromarray(np.full((2, 2, 3), i, np.uint8)) for i in range(6)]
    captions = [f"c{i}" for i in range(6)]
    result = evaluate_clip_retrieval(
        OneHotCLIP([0, 1, 2, 3, 5, 4]), IndexProcessor(), images, captions, num_candidates=None
    )
    assert (result.text_to_image_top1, result.image_to_text_top1, result.num_candidates) == (4 / 6, 4 / 6, 6)
    assert result.text_to_image_top5 == 4 / 6  # the swapped pair's own image scores 0, tied with every other
    assert sorted(result.indices) == list(range(6))


def test_draw_distinct_captions_is_seeded_and_skips_repeated_captions():
    captions = ["cat", "dog", "cat", "owl", "dog", "ant"]
    drawn = draw_distinct_captions(captions, 4, seed=3)
    assert drawn == draw_distinct_captions(captions, 4, seed=3)
    assert sorted(captions[i] for i in drawn) == ["ant", "cat", "dog", "owl"]
    with pytest.raises(ValueError, match=re.escape("num_candidates=5 but the captions hold only 4 distinct ones")):
        draw_distinct_captions(captions, 5)


# ----------------------------------------------------------------------------- training


def test_loss_decreases_on_a_fixed_batch(train_clip):
    args = train_clip.parse_args(["--dataset_name", "unused", *TINY])
    processor = train_clip.build_processor(args)
    torch.manual_seed(0)
    model = CLIPModel(train_clip.build_config(args, processor.tokenizer))
    from accelerate import Accelerator

    accelerator = Accelerator(cpu=True)
    optimizer = torch.optim.AdamW(train_clip.parameter_groups(model, 0.1), lr=3e-3)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    model, optimizer = accelerator.prepare(model, optimizer)
    state = train_clip.TrainState(accelerator, model, optimizer, scheduler, max_grad_norm=1.0)
    dataset = squares_dataset().select(range(0, 24, 3))  # 8 pairs, every colour
    transform = train_clip.CaptionedImageTransform(args, processor.image_processor, train=False)
    batch = train_clip.make_collate_fn(processor.tokenizer)(
        [dict(zip(rows, values)) for rows in [transform(dataset[:8])] for values in zip(*rows.values())]
    )
    losses = [train_clip.train_step(state, batch).item() for _ in range(15)]
    assert losses[0] > 1.9  # ~ln(8) at random initialisation
    assert losses[-1] < 0.5 * losses[0], losses


def test_resume_from_a_checkpoint_equals_an_uninterrupted_run(train_clip, squares, tmp_path):
    augment = ["--keywords_column", "keywords", "--random_crop_min_scale", "0.6", "--checkpointing_steps", "4"]
    run(train_clip, squares, tmp_path / "full", "--max_train_steps", "8", *augment)
    # The interrupted run: only the checkpoint of step 4 survives, then `latest` resumes it.
    shutil.copytree(tmp_path / "full" / "checkpoint-4", tmp_path / "resumed" / "checkpoint-4")
    run(
        train_clip,
        squares,
        tmp_path / "resumed",
        "--max_train_steps",
        "8",
        "--resume_from_checkpoint",
        "latest",
        *augment,
    )
    full = load_file(tmp_path / "full" / "model.safetensors")
    resumed = load_file(tmp_path / "resumed" / "model.safetensors")
    assert full.keys() == resumed.keys()
    for key in full:
        torch.testing.assert_close(resumed[key], full[key], rtol=0, atol=0, msg=key)
    at_4 = load_file(tmp_path / "full" / "checkpoint-4" / "model.safetensors")
    assert not torch.equal(at_4["logit_scale"], full["logit_scale"])  # steps 5-8 did change the model


def test_saved_folder_reloads_with_the_standard_classes(train_clip, squares, tmp_path):
    results = run(train_clip, squares, tmp_path / "out", "--max_train_steps", "3", "--validation_split", "test")
    model = CLIPModel.from_pretrained(tmp_path / "out").eval()
    processor = CLIPProcessor.from_pretrained(tmp_path / "out")
    assert model.dtype == torch.float32 and model.config.vision_config.image_size == 32
    assert processor.image_processor.crop_size == {"height": 32, "width": 32}
    assert list(processor.image_processor.image_mean) == [0.48145466, 0.4578275, 0.40821073]  # CLIP's
    assert processor.tokenizer("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]
    # The reloaded model gives the figures the run recorded (retrieval.json, the model card).
    saved = json.loads((tmp_path / "out" / "retrieval.json").read_text())
    assert saved == {name: result.metrics() for name, result in results.items()} and set(saved) == {"train", "test"}
    dataset = datasets.load_from_disk(squares)["test"]
    again = evaluate_clip_retrieval(model, processor, dataset["image"], dataset["text"], 4, seed=0)
    assert again.metrics() == saved["test"]
    # The command-line measure reads the same figure.
    cli = retrieval_cli.parse_args(
        ["--model", str(tmp_path / "out"), "--dataset_name", squares, "--num_candidates", "4"]
    )
    assert retrieval_cli.main(cli) == saved["test"]
    card = (tmp_path / "out" / "README.md").read_text()
    test = saved["test"]
    assert f"| test | 4 | {test['text_to_image_top1']:.1%} | {test['text_to_image_top5']:.1%} |" in card
    assert "accelerate launch scripts/train_clip.py --projection_dim 8 --text_hidden_size 16 " in card  # changed flags
    assert f"--dataset_name {squares} --validation_split test --resolution 32 " in card and "--patch_size" not in card


def test_float16_save_halves_the_weights_and_loads_float32(train_clip, squares, tmp_path):
    run(train_clip, squares, tmp_path / "fp32", "--max_train_steps", "2")
    run(train_clip, squares, tmp_path / "fp16", "--max_train_steps", "2", "--save_dtype", "float16")
    fp32, fp16 = load_file(tmp_path / "fp32" / "model.safetensors"), load_file(tmp_path / "fp16" / "model.safetensors")
    assert fp16["text_model.embeddings.token_embedding.weight"].dtype == torch.float16
    size = {name: (tmp_path / name / "model.safetensors").stat().st_size for name in ("fp32", "fp16")}
    assert size["fp16"] < 0.51 * size["fp32"]
    model = CLIPModel.from_pretrained(tmp_path / "fp16")
    assert model.dtype == torch.float32
    weight = model.text_model.embeddings.token_embedding.weight.detach()
    torch.testing.assert_close(
        weight, fp32["text_model.embeddings.token_embedding.weight"].half().float(), rtol=0, atol=0
    )


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "flags, expected",
    [
        (["--caption_column", "caption"], "--caption_column 'caption' not found in the dataset; its columns are "),
        (["--keywords_column", "tags"], "--keywords_column 'tags' not found in the dataset; its columns are "),
        (["--image_column", "img"], "--image_column 'img' not found in the dataset; its columns are "),
        (["--caption_column", "keywords"], "--caption_column 'keywords' should hold strings, its first value is "),
        (["--train_batch_size", "64"], "The training split has 20 rows: no full batch of --train_batch_size 64"),
    ],
)
def test_bad_columns_and_batch_name_the_problem(train_clip, squares, tmp_path, flags, expected):
    with pytest.raises(ValueError, match=re.escape(expected)):
        run(train_clip, squares, tmp_path / "out", "--max_train_steps", "1", *flags)


@pytest.mark.parametrize(
    "flags, expected",
    [
        (["--resolution", "36"], "--resolution 36 is not a multiple of --patch_size 8."),
        (["--random_crop_min_scale", "0"], "--random_crop_min_scale must be in (0, 1], got 0.0."),
        (["--keyword_caption_prob", "1.5"], "--keyword_caption_prob must be in [0, 1], got 1.5."),
        ([], "Pass exactly one of --dataset_name and --train_data_dir."),
    ],
)
def test_bad_flags_are_parser_errors(train_clip, capsys, flags, expected):
    data = ["--dataset_name", "x"] if flags else []
    with pytest.raises(SystemExit):
        train_clip.parse_args(data + flags)
    assert expected in capsys.readouterr().err
