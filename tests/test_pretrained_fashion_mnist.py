"""The shipped Fashion-MNIST pipeline loads offline, samples, and its samples look like their classes."""

import doctest
import logging
import warnings
from pathlib import Path

import torch
from transformers.utils import logging as transformers_logging

from taming_hf import TamingPipeline
from taming_hf.evaluation import SmallImageClassifier

REPO = Path(__file__).resolve().parents[1]
PIPELINE = REPO / "pretrained" / "taming-fashion-mnist"
CLASSIFIER = REPO / "pretrained" / "fashion-mnist-classifier"

# The documented sampling settings; on 1,000 samples they give 95.6 % classifier accuracy
# (docs/fashion_mnist.md); 20 samples give 19/20 with seed 0 (18-19/20 over seeds 0-4): margin below.
TOP_K = 32
GUIDANCE_SCALE = 2.0
MIN_ACCURACY = 0.8


def test_shipped_pipeline_samples_recognisable_classes():
    pipe = TamingPipeline.from_pretrained(PIPELINE)
    pipe.set_progress_bar_config(disable=True)
    assert pipe.config.conditioning == "class" and pipe.config.num_condition_tokens == 10
    assert pipe.get_label_ids(["Sneaker", "Bag"]) == [7, 8]
    classes = torch.arange(10).repeat_interleave(2)
    output = pipe(
        class_labels=list(range(10)),
        num_images_per_prompt=2,
        top_k=TOP_K,
        guidance_scale=GUIDANCE_SCALE,
        generator=torch.Generator().manual_seed(0),
        output_type="pt",
    )
    assert output.images.shape == (20, 1, 28, 28) and output.indices.shape == (20, 7, 7)
    classifier = SmallImageClassifier.from_pretrained(CLASSIFIER).eval()
    with torch.no_grad():
        predictions = classifier(output.images * 2 - 1).logits.argmax(-1)
    accuracy = (predictions == classes).float().mean().item()
    assert accuracy >= MIN_ACCURACY, f"classifier accuracy on samples {accuracy:.2f} < {MIN_ACCURACY}"


def test_shipped_pipeline_defaults_are_its_documented_settings():
    pipe = TamingPipeline.from_pretrained(PIPELINE)
    pipe.set_progress_bar_config(disable=True)
    config = pipe.transformer.generation_config
    assert (config.do_sample, config.top_k, config.guidance_scale) == (True, TOP_K, GUIDANCE_SCALE)
    kwargs = dict(class_labels=[3, 7], output_type="latent")
    default = pipe(**kwargs, generator=torch.Generator().manual_seed(0)).indices
    explicit = pipe(**kwargs, top_k=TOP_K, guidance_scale=GUIDANCE_SCALE, generator=torch.Generator().manual_seed(0))
    assert torch.equal(default, explicit.indices)
    unguided = pipe(**kwargs, guidance_scale=1.0, generator=torch.Generator().manual_seed(0)).indices
    assert not torch.equal(default, unguided)  # the default really is guided


def test_shipped_pipeline_default_call_emits_no_warnings(caplog):
    pipe = TamingPipeline.from_pretrained(PIPELINE)
    pipe.set_progress_bar_config(disable=True)
    transformers_logging.warning_once.cache_clear()
    logger = logging.getLogger("transformers")  # it does not propagate to the root logger caplog watches
    logger.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.WARNING), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            pipe(class_labels=[0, 1], generator=torch.Generator().manual_seed(0))
    finally:
        logger.removeHandler(caplog.handler)
    assert [str(warning.message) for warning in caught] == []
    assert [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING] == []


def test_call_docstring_example_runs(tmp_path, monkeypatch):
    (tmp_path / "pretrained").symlink_to(REPO / "pretrained")  # the example's relative path, output in tmp_path
    monkeypatch.chdir(tmp_path)
    (example,) = doctest.DocTestFinder().find(TamingPipeline.__call__, "TamingPipeline.__call__", globs={})
    runner = doctest.DocTestRunner()
    runner.run(example)
    assert runner.summarize(verbose=False) == (0, 7) and (tmp_path / "sneaker.png").exists()
