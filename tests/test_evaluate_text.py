"""`scripts/evaluate.py --pipeline` on a text-conditional pipeline, end to end on tiny random models (CPU, seconds):
a one-layer text prior with a tiny CLIP as its reranking component, another tiny CLIP as the judge, and a two-split
captioned stand-in of the emoji dataset."""

import json
import math
import re

import datasets
import numpy as np
import PIL.Image
import pytest
import torch
from torchmetrics.image.fid import FrechetInceptionDistance

from taming_hf import TamingPipeline
from taming_hf.evaluation import clip_score, derangement, judge_figures
from taming_hf.evaluation.clip_retrieval import clip_image_features, clip_text_features, grouped_top1
from test_pipeline import make_pipeline
from test_sample_evaluate_scripts import PixelStatistics, load_script
from test_text_pipeline import make_text_pipeline
from text_fixtures import tiny_clip, tiny_clip_tokenizer

ADJECTIVES = ((), ("red",), ("green",), ("smiling",), ("red", "green"), ("red", "smiling"), ("green", "smiling"))
NOUNS = ("apple", "cat", "dog", "face")
# 28 distinct captions of at most 6 tokens (the pipeline's max_text_length) with the tiny tokenizer's words
CAPTIONS = [" ".join(("a", *adjectives, noun)) for adjectives in ADJECTIVES for noun in NOUNS]
REAL_SIZE, SAMPLE_SIZE = 12, 8  # the stand-in dataset's images, the tiny VQGAN's output
ROW_KEYS = {"split", "num_candidates", "num_images", "judge_top1", "clip_score", "shuffled_clip_score"}
ROW_KEYS |= {"real_judge_top1", "real_clip_score", "real_shuffled_clip_score"}


def captioned_splits(folder):
    """train and test splits, each one random 12 px image per caption (a seeded stand-in for the emoji dataset)."""
    rng = np.random.default_rng(0)
    splits = {}
    for split in ("train", "test"):
        images = [
            PIL.Image.fromarray(rng.integers(0, 256, (REAL_SIZE, REAL_SIZE, 3), dtype=np.uint8)) for _ in CAPTIONS
        ]
        features = datasets.Features({"image": datasets.Image(), "text": datasets.Value("string")})
        splits[split] = datasets.Dataset.from_dict({"image": images, "text": CAPTIONS}, features=features)
    datasets.DatasetDict(splits).save_to_disk(folder)
    return folder


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return tiny_clip_tokenizer(tmp_path_factory.mktemp("tokenizer"))


@pytest.fixture(scope="module")
def artifacts(tokenizer, tmp_path_factory):
    root = tmp_path_factory.mktemp("text_eval")
    pipe = make_text_pipeline(tokenizer, clip=tiny_clip(tokenizer, seed=3))
    pipe.set_default_sampling(top_k=4, guidance_scale=2.0)
    pipe.save_pretrained(root / "pipeline")
    make_text_pipeline(tokenizer).save_pretrained(root / "pipeline-without-clip")
    for name, seed in (("judge", 5), ("other-clip", 7)):
        model, processor = tiny_clip(tokenizer, seed=seed)
        model.save_pretrained(root / name)
        processor.save_pretrained(root / name)
    make_pipeline("class").save_pretrained(root / "class-pipeline")
    captioned_splits(root / "data")
    return root


def evaluate_args(artifacts, output_dir, *extra, pipeline="pipeline"):
    args = ["--pipeline", str(artifacts / pipeline), "--dataset_name", str(artifacts / "data")]
    args += ["--num_prompts", "20", "--batch_size", "60", "--output_dir", str(output_dir)]
    return load_script("evaluate").parse_args(args + [str(value) for value in extra])


def run_evaluate(artifacts, output_dir, *extra, **kwargs):
    return load_script("evaluate").main(evaluate_args(artifacts, output_dir, *extra, **kwargs))


def grid_rows(path, num_rows):
    """The sample grid cut back into its rows of 20 images (one group of 20 prompts: real, samples, reranked)."""
    grid = PIL.Image.open(path)
    assert grid.size == (20 * SAMPLE_SIZE, num_rows * SAMPLE_SIZE)
    return [
        [
            grid.crop((c * SAMPLE_SIZE, r * SAMPLE_SIZE, (c + 1) * SAMPLE_SIZE, (r + 1) * SAMPLE_SIZE))
            for c in range(20)
        ]
        for r in range(num_rows)
    ]


def pixels(images):
    return np.stack([np.asarray(image.convert("RGB")) for image in images])


def load_judge(folder):
    from transformers import CLIPModel, CLIPProcessor

    return CLIPModel.from_pretrained(folder).eval(), CLIPProcessor.from_pretrained(folder)


@pytest.fixture(scope="module")
def reranked_run(artifacts, tmp_path_factory):
    """Both splits, unreranked and reranked as the best of 3 by the pipeline's own clip; no Inception."""
    output_dir = tmp_path_factory.mktemp("reranked_run")
    results = run_evaluate(
        artifacts, output_dir, "--judge_clip", artifacts / "judge", "--num_candidates", 3, "--no_inception_fid"
    )
    return results, output_dir


# ------------------------------------------------------------------------------------ end to end


def test_text_branch_writes_rows_for_each_split_and_reranking(reranked_run):
    results, output_dir = reranked_run
    saved = json.loads((output_dir / "metrics.json").read_text())
    assert saved == json.loads(json.dumps(results))
    text = saved["text_to_image"]
    assert [(row["split"], row["num_candidates"]) for row in text["rows"]] == [
        ("train", None),
        ("train", 3),
        ("test", None),
        ("test", 3),
    ]
    for row in text["rows"]:
        assert set(row) == ROW_KEYS and row["num_images"] == 20
        for key in ("judge_top1", "real_judge_top1"):
            assert 0 <= row[key] <= 1 and (row[key] * 20) == int(row[key] * 20)  # a count out of 20
        for key in ("clip_score", "shuffled_clip_score", "real_clip_score", "real_shuffled_clip_score"):
            assert math.isfinite(row[key]) and 0 <= row[key] <= 100
    # unset sampling flags: the pipeline's own defaults, recorded as resolved
    settings = {key: text[key] for key in ("top_k", "top_p", "temperature", "guidance_scale")}
    assert settings == {"top_k": 4, "top_p": None, "temperature": 1.0, "guidance_scale": 2.0}
    assert (text["num_prompts"], text["group_size"], text["num_candidates"]) == (20, 20, 3)
    assert text["rerank_clip"] == "the pipeline's clip" and saved["dataset"].endswith("data")
    for split in ("train", "test"):
        prompts = text["prompts"][split]
        assert len(set(prompts)) == 20 and set(prompts) <= set(CAPTIONS)
        assert text["grids"][split] == f"samples_{split}.png"
        grid_rows(output_dir / f"samples_{split}.png", 3)  # real, samples, reranked
    table = (output_dir / "metrics.md").read_text()
    assert "| judge top-1 | real top-1 | CLIP score | shuffled |" in table
    first = text["rows"][1]
    assert (
        f"| pipeline | train | 20 | 4 | 2.0 | best of 3 | {first['judge_top1']:.1%} | {first['real_judge_top1']:.1%} "
        f"| {first['clip_score']:.2f} | {first['shuffled_clip_score']:.2f} |" in table
    )


def test_judge_figures_of_the_run_equal_a_hand_computation(reranked_run, artifacts):
    results, output_dir = reranked_run
    text = results["text_to_image"]
    judge, processor = load_judge(artifacts / "judge")
    data = datasets.load_from_disk(artifacts / "data")["train"]
    prompts = text["prompts"]["train"]
    real = [data[CAPTIONS.index(prompt)]["image"] for prompt in prompts]
    real_row, samples, reranked = grid_rows(output_dir / "samples_train.png", 3)
    # the grid's real row: the split's images of the prompts, in prompt order (resized to the samples' size)
    assert np.array_equal(pixels(real_row), pixels([image.resize((8, 8), PIL.Image.LANCZOS) for image in real]))
    text_features = clip_text_features(judge, processor, prompts)
    shuffle = derangement(20, seed=0)
    for images, row in ((real, text["rows"][0]), (samples, text["rows"][0]), (reranked, text["rows"][1])):
        prefix = "real_" if images is real else ""
        features = clip_image_features(judge, processor, images)
        cosine = features @ text_features.T  # (image, prompt)
        own_first = [all(cosine[i, i] > cosine[i, j] for j in range(20) if j != i) for i in range(20)]
        assert row[f"{prefix}judge_top1"] == pytest.approx(sum(own_first) / 20)
        own = [100 * max(cosine[i, i].item(), 0.0) for i in range(20)]
        shuffled = [100 * max(cosine[i, shuffle[i]].item(), 0.0) for i in range(20)]
        assert row[f"{prefix}clip_score"] == pytest.approx(sum(own) / 20, abs=1e-4)
        assert row[f"{prefix}shuffled_clip_score"] == pytest.approx(sum(shuffled) / 20, abs=1e-4)


def test_samples_are_the_pipelines_own_and_reranking_keeps_its_best_candidates(reranked_run, artifacts):
    results, output_dir = reranked_run
    pipe = TamingPipeline.from_pretrained(artifacts / "pipeline")
    pipe.set_progress_bar_config(disable=True)
    for split in ("train", "test"):
        prompts = results["text_to_image"]["prompts"][split]
        _, samples, reranked = grid_rows(output_dir / f"samples_{split}.png", 3)
        plain = pipe(prompt=prompts, generator=torch.Generator().manual_seed(0)).images
        best = pipe(prompt=prompts, num_candidates=3, generator=torch.Generator().manual_seed(0)).images
        assert np.array_equal(pixels(samples), pixels(plain))
        assert np.array_equal(pixels(reranked), pixels(best))
        assert not np.array_equal(pixels(reranked), pixels(samples))


def test_rerank_clip_replaces_the_pipelines_clip(artifacts, tmp_path):
    results = run_evaluate(
        artifacts,
        tmp_path,
        "--judge_clip",
        artifacts / "judge",
        "--num_candidates",
        2,
        "--rerank_clip",
        artifacts / "other-clip",
        "--splits",
        "test",
        "--no_inception_fid",
        pipeline="pipeline-without-clip",
    )
    text = results["text_to_image"]
    assert text["rerank_clip"] == str(artifacts / "other-clip") and [row["split"] for row in text["rows"]] == 2 * [
        "test"
    ]
    pipe = TamingPipeline.from_pretrained(artifacts / "pipeline-without-clip")
    pipe.set_progress_bar_config(disable=True)
    clip, processor = load_judge(artifacts / "other-clip")
    expected = pipe(
        prompt=text["prompts"]["test"],
        num_candidates=2,
        clip=clip,
        clip_processor=processor,
        generator=torch.Generator().manual_seed(0),
    ).images
    assert np.array_equal(pixels(grid_rows(tmp_path / "samples_test.png", 3)[2]), pixels(expected))


def test_gfid_compares_the_samples_with_the_splits_real_images(artifacts, tmp_path, monkeypatch):
    from taming_hf.evaluation import metrics

    built = []

    def standard_fid_or_none(**kwargs):
        built.append(FrechetInceptionDistance(feature=PixelStatistics(), **kwargs))
        return built[-1]

    monkeypatch.setattr(metrics, "standard_fid_or_none", standard_fid_or_none)
    results = run_evaluate(
        artifacts, tmp_path, "--judge_clip", artifacts / "judge", "--splits", "test", "--max_eval_samples", 25
    )
    (row,) = results["text_to_image"]["rows"]
    (fid,) = built
    real, generated = fid.inception.inputs
    data = datasets.load_from_disk(artifacts / "data")["test"]
    assert real.dtype == torch.uint8 and real.shape == (25, 3, REAL_SIZE, REAL_SIZE)
    assert np.array_equal(real.permute(0, 2, 3, 1).numpy(), pixels(data[:25]["image"]))
    samples = grid_rows(tmp_path / "samples_test.png", 2)[1]
    assert np.array_equal(generated.permute(0, 2, 3, 1).numpy(), pixels(samples))
    expected = FrechetInceptionDistance(feature=PixelStatistics())
    expected.update(real, real=True)
    expected.update(generated, real=False)
    assert row["num_real_images"] == 25 and row["gfid"] == pytest.approx(expected.compute().item())
    assert math.isfinite(row["gfid"]) and row["gfid"] > 0
    assert f"| {load_script('evaluate')._fmt(row['gfid'])} |" in (tmp_path / "metrics.md").read_text()


# ------------------------------------------------------------------------------------ the figures


def test_judge_figures_of_hand_made_features():
    text = torch.eye(20)  # prompt i along axis i
    hits = [0, 3, 4, 9, 11, 17, 19]
    images = torch.stack([text[i] if i in hits else text[(i + 1) % 20] for i in range(20)])  # misses point elsewhere
    shuffle = [(i + 1) % 20 for i in range(20)]  # the prompt each miss points at
    figures = judge_figures(images, text, shuffle, group_size=20)
    assert figures == {"judge_top1": 7 / 20, "clip_score": 100 * 7 / 20, "shuffled_clip_score": 100 * 13 / 20}
    # two groups of 10: image i scored against the prompts of its own group only
    assert grouped_top1(images, text, 10) == pytest.approx(7 / 20)
    # a constant judge ranks no prompt first (ties count against the image); negative cosines score 0
    assert judge_figures(torch.ones(20, 2) / 2**0.5, torch.ones(20, 2) / 2**0.5, shuffle)["judge_top1"] == 0
    assert clip_score(
        torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([[-1.0, 0.0], [0.6, 0.8]])
    ) == pytest.approx(40)


@pytest.mark.parametrize("n", [2, 3, 20, 100])
def test_shuffled_baseline_is_a_seeded_derangement(n):
    for seed in range(5):
        order = derangement(n, seed)
        assert sorted(order) == list(range(n)) and all(order[i] != i for i in range(n))
        assert derangement(n, seed) == order
    if n > 3:
        assert derangement(n, 0) != derangement(n, 1)


def test_derangement_and_judge_figures_errors():
    with pytest.raises(
        ValueError, match=re.escape("A derangement needs at least 2 items (one item can only map to itself), got n=1.")
    ):
        derangement(1)
    with pytest.raises(ValueError, match=re.escape("shuffle should be a derangement of range(3), got [0, 2, 1].")):
        judge_figures(torch.eye(3), torch.eye(3), [0, 2, 1], group_size=3)


# ------------------------------------------------------------------------------------ errors


def raises_exactly(message):
    return pytest.raises(ValueError, match=f"^{re.escape(message)}$")


def test_error_text_pipeline_without_judge(artifacts, tmp_path):
    with raises_exactly(
        f"--pipeline {artifacts / 'pipeline'} is text-conditional: pass --judge_clip DIR, the CLIPModel + "
        "CLIPProcessor folder that judges its samples (an independent CLIP, not the reranker)."
    ):
        run_evaluate(artifacts, tmp_path)
    assert not (tmp_path / "metrics.json").exists()


def test_error_reranking_without_a_clip(artifacts, tmp_path):
    with raises_exactly(
        f"--num_candidates 4 reranks with the pipeline's clip component, but {artifacts / 'pipeline-without-clip'} "
        "has none; pass --rerank_clip DIR (a CLIPModel + CLIPProcessor folder)."
    ):
        run_evaluate(
            artifacts,
            tmp_path,
            "--judge_clip",
            artifacts / "judge",
            "--num_candidates",
            4,
            pipeline="pipeline-without-clip",
        )


def test_error_text_flags_on_a_class_pipeline(artifacts, tmp_path):
    with raises_exactly(
        f"--judge_clip, --num_prompts measure text-conditional pipelines; {artifacts / 'class-pipeline'} is 'class'."
    ):
        run_evaluate(artifacts, tmp_path, "--judge_clip", artifacts / "judge", pipeline="class-pipeline")


def test_error_class_pipeline_with_classifier_none(artifacts, tmp_path):
    # a text pipeline needs no classifier; a class pipeline is measured with one
    evaluate = load_script("evaluate")
    argv = ["--pipeline", str(artifacts / "class-pipeline"), "--classifier", "none", "--output_dir", str(tmp_path)]
    with raises_exactly("--pipeline is measured with a classifier; --classifier none evaluates --vqgan only."):
        evaluate.main(evaluate.parse_args(argv))


@pytest.mark.parametrize(
    "flags, message",
    [
        (
            ["--num_prompts", "30"],
            "--num_prompts must be a positive multiple of 20 (prompts are judged in groups of 20), got 30.",
        ),
        (["--num_candidates", "1"], "--num_candidates must be at least 2 (one candidate is no reranking), got 1."),
        (
            ["--rerank_clip", "x"],
            "--rerank_clip reranks candidates: pass --num_candidates (samples per prompt) as well.",
        ),
    ],
)
def test_error_text_flag_values(flags, message, capsys):
    with pytest.raises(SystemExit):
        load_script("evaluate").parse_args(["--pipeline", "p", "--output_dir", "x"] + flags)
    assert message in capsys.readouterr().err


def test_error_text_flags_without_a_pipeline(capsys):
    with pytest.raises(SystemExit):
        load_script("evaluate").parse_args(["--vqgan", "v", "--judge_clip", "j", "--output_dir", "x"])
    assert "--judge_clip measure a text-conditional --pipeline; pass one." in capsys.readouterr().err
