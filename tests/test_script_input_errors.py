"""Bad command-line values and bad files fail early with messages naming them: scripts/sample.py and
scripts/train_transformer.py (CPU, tiny models, a few seconds)."""

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import datasets
import numpy as np
import PIL.Image
import pytest
from transformers import GenerationConfig, GPT2Config, GPT2LMHeadModel

from taming_hf import VQGANImageProcessor
from taming_hf.pipelines.taming import TokenLayout
from taming_hf.training.prior_data import encode_dataset
from test_loading_errors import tiny_vqgan

REPO = Path(__file__).resolve().parents[1]


def load_script(name):
    spec = importlib.util.spec_from_file_location(f"script_{name}", REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def sample():
    return load_script("sample")


@pytest.fixture(scope="module")
def train_transformer():
    return load_script("train_transformer")


def parser_error(capsys, parse, argv) -> str:
    """The message `parser.error` printed (it exits with status 2)."""
    with pytest.raises(SystemExit) as raised:
        parse(argv)
    assert raised.value.code == 2
    return capsys.readouterr().err


# ------------------------------------------------------------------------- scripts/sample.py


@pytest.mark.parametrize(
    "flag, value, expected",
    [
        ("--num_images_per_class", "0", "--num_images_per_class must be a positive integer, got 0."),
        ("--num_images_per_class", "-3", "--num_images_per_class must be a positive integer, got -3."),
        ("--scale", "0", "--scale must be an integer >= 1, got 0."),
        ("--padding", "-1", "--padding must be an integer >= 0, got -1."),
        ("--top_k", "-1", "--top_k must be a non-negative integer (0 or None disables it), got -1."),
        ("--top_p", "0", "--top_p must be in (0, 1], got 0.0."),
        ("--top_p", "nan", "--top_p must be in (0, 1], got nan."),
        ("--temperature", "0", "--temperature must be a positive finite number, got 0.0."),
        ("--temperature", "inf", "--temperature must be a positive finite number, got inf."),
        ("--guidance_scale", "nan", "--guidance_scale must be a finite number >= 0 (1 disables guidance), got nan."),
    ],
)
def test_sample_script_rejects_bad_numeric_flags(sample, capsys, flag, value, expected):
    assert expected in parser_error(capsys, sample.parse_args, [flag, value])


def test_sample_script_accepts_any_integer_seed(sample):
    assert sample.parse_args(["--seed", "-5"]).seed == -5


def test_sample_script_rejects_missing_pipeline_folder(sample, capsys, tmp_path):
    message = parser_error(capsys, sample.parse_args, ["--pipeline", str(tmp_path / "nope")])
    assert f"--pipeline '{tmp_path / 'nope'}' is neither an existing folder nor a valid Hub repo id" in message


def test_sample_script_rejects_missing_output_folder(sample, capsys, tmp_path):
    output = tmp_path / "no-such-folder" / "grid.png"
    message = parser_error(capsys, sample.parse_args, ["--output", str(output)])
    assert f"--output {output}: the folder {output.parent} does not exist" in message


def test_sample_script_default_pipeline_is_the_repositorys(sample):
    default = Path(sample.DEFAULT_PIPELINE)
    assert default.is_absolute() and default == REPO / "pretrained" / "taming-fashion-mnist"
    assert (default / "model_index.json").exists()


def test_sample_script_runs_from_any_directory_and_logs_the_absolute_output(tmp_path):
    env = dict(os.environ, PYTHONPATH=f"{REPO / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    env.update(OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    command = [sys.executable, str(REPO / "scripts" / "sample.py"), "--class_labels", "0", "--num_images_per_class"]
    command += ["1", "--device", "cpu", "--output", "grid.png"]
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "grid.png").exists()
    assert re.search(rf"Wrote {re.escape(str(tmp_path / 'grid.png'))} \(\d+x\d+\)", result.stderr)


# ------------------------------------------------------------------------- scripts/train_transformer.py


def test_train_transformer_rejects_missing_vqgan_folder(train_transformer, capsys, tmp_path):
    for flag in ("--vqgan_model_name_or_path", "--condition_vqgan_model_name_or_path"):
        argv = ["--vqgan_model_name_or_path", "x", "--train_data_dir", str(tmp_path), flag, "./no-such-vqgan"]
        message = parser_error(capsys, train_transformer.parse_args, argv)
        assert f"{flag} './no-such-vqgan' is neither an existing folder nor a valid Hub repo id" in message


def test_train_transformer_resume_names_truncated_safetensors(train_transformer, tmp_path):
    checkpoint = tmp_path / "checkpoint-20"  # what Trainer writes, with its model.safetensors cut short
    GPT2LMHeadModel(GPT2Config(vocab_size=8, n_positions=4, n_embd=8, n_layer=1, n_head=2)).save_pretrained(checkpoint)
    weights = checkpoint / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    argv = ["--vqgan_model_name_or_path", "x", "--train_data_dir", str(tmp_path), "--output_dir", str(tmp_path)]
    args = train_transformer.parse_args(argv)
    for resume in (str(checkpoint), "latest"):
        args.resume_from_checkpoint = resume
        with pytest.raises(OSError, match=re.escape(f"{weights} is not a readable safetensors file")):
            train_transformer.resume_checkpoint(args)


def test_train_transformer_names_truncated_image(train_transformer, tmp_path):
    """The same mechanism as train_vqgan.py: images stay undecoded until `decode_image`, which names the file."""
    rng = np.random.default_rng(0)
    for name in ("boots", "coats"):
        (tmp_path / "images" / name).mkdir(parents=True)
        for i in range(4):
            pixels = rng.integers(0, 255, (16, 16), dtype=np.uint8)
            PIL.Image.fromarray(pixels).save(tmp_path / "images" / name / f"{i}.png")
    broken = tmp_path / "images" / "coats" / "2.png"
    broken.write_bytes(broken.read_bytes()[:-40])  # a valid header, cut-off pixel data
    args = train_transformer.parse_args(
        ["--vqgan_model_name_or_path", "x", "--train_data_dir", str(tmp_path / "images")]
    )
    args.validation_fraction = 0.25
    train, held_out = train_transformer.load_splits(args)
    images = datasets.concatenate_datasets([train, held_out])  # the broken file is in one of the two
    vqgan, processor = tiny_vqgan(), VQGANImageProcessor(resolution=16, num_channels=1)
    with pytest.raises(ValueError, match=re.escape(f"Cannot decode image {broken}: OSError: image file is truncated")):
        encode_dataset(train_transformer.prepare_images(images, args), vqgan, processor)


@pytest.mark.parametrize(
    "flag, value, expected",
    [
        ("--sample_top_k", "-1", "--sample_top_k must be a non-negative integer (0 or None disables it), got -1."),
        ("--sample_top_p", "1.5", "--sample_top_p must be in (0, 1], got 1.5."),
        ("--sample_temperature", "0", "--sample_temperature must be a positive finite number, got 0.0."),
        ("--sample_guidance_scale", "-1", "--sample_guidance_scale must be a finite number >= 0"),
    ],
)
def test_train_transformer_rejects_bad_sampling_defaults(train_transformer, capsys, tmp_path, flag, value, expected):
    argv = ["--vqgan_model_name_or_path", str(tmp_path), "--train_data_dir", str(tmp_path), flag, value]
    assert expected in parser_error(capsys, train_transformer.parse_args, argv)


def test_train_transformer_sampling_defaults_need_a_null_class_for_guidance(train_transformer, tmp_path):
    argv = ["--vqgan_model_name_or_path", str(tmp_path), "--train_data_dir", str(tmp_path)]
    args = train_transformer.parse_args(argv + ["--sample_guidance_scale", "2"])
    layout = TokenLayout.build("class", num_image_codes=32, num_condition_tokens=10, with_null_class=False)
    with pytest.raises(ValueError, match=r"--sample_guidance_scale 2.0 needs a null class to guide with"):
        train_transformer.sampling_defaults(args, layout)


def test_train_transformer_writes_sampling_defaults_to_generation_config(train_transformer, tmp_path):
    argv = ["--vqgan_model_name_or_path", str(tmp_path), "--train_data_dir", str(tmp_path)]
    layout = TokenLayout.build("class", num_image_codes=32, num_condition_tokens=10, with_null_class=True)
    assert train_transformer.sampling_defaults(train_transformer.parse_args(argv), layout) is None
    args = train_transformer.parse_args(argv + ["--sample_top_k", "8", "--sample_guidance_scale", "2"])
    config = train_transformer.sampling_defaults(args, layout).write_to(GenerationConfig())
    config.save_pretrained(tmp_path / "transformer")  # transformers' validation accepts it
    saved = GenerationConfig.from_pretrained(tmp_path / "transformer")
    assert (saved.do_sample, saved.top_k, saved.top_p, saved.temperature, saved.guidance_scale) == (
        True,
        8,
        None,
        1.0,
        2.0,
    )
