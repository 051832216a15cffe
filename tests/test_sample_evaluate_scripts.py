"""`scripts/sample.py` and `scripts/evaluate.py` end to end on tiny random models (CPU, a few seconds)."""

import importlib.util
import json
from pathlib import Path

import PIL.Image
import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from taming_hf import TamingPipeline, TokenLayout, VQGANConfig, VQGANModel
from taming_hf.evaluation import SmallClassifierConfig, SmallImageClassifier
from taming_hf.training.data import FASHION_MNIST_CLASSES

REPO = Path(__file__).resolve().parents[1]
K = 16


def load_script(name):
    spec = importlib.util.spec_from_file_location(f"script_{name}", REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tiny_vqgan(seed=0):
    """28 px grayscale, f4: a 7x7 grid of K codes."""
    torch.manual_seed(seed)
    config = VQGANConfig(
        embed_dim=4,
        num_embeddings=K,
        latent_channels=4,
        resolution=28,
        in_channels=1,
        out_channels=1,
        base_channels=32,
        channel_multiplier=[1, 1, 1],
        num_res_blocks=1,
        attn_resolutions=[],
    )
    return VQGANModel(config).eval()


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    root = tmp_path_factory.mktemp("artifacts")
    vqgan = tiny_vqgan()
    vqgan.save_pretrained(root / "vqgan-run" / "vqgan")  # the layout of train_vqgan.py's output
    layout = TokenLayout.build("class", K, 10, with_null_class=True)
    torch.manual_seed(1)
    gpt = GPT2LMHeadModel(GPT2Config(vocab_size=layout.vocab_size, n_positions=50, n_embd=16, n_layer=1, n_head=2))
    pipe = TamingPipeline(
        vqgan,
        gpt.eval(),
        conditioning="class",
        num_condition_tokens=10,
        null_class_token_id=layout.null_class_token_id,
        id2label=dict(enumerate(FASHION_MNIST_CLASSES)),
    )
    pipe.save_pretrained(root / "pipeline")
    torch.manual_seed(2)
    SmallImageClassifier(SmallClassifierConfig(image_size=28)).save_pretrained(root / "classifier")
    return root


def test_sample_script_writes_class_rows(artifacts, tmp_path):
    sample = load_script("sample")
    output = tmp_path / "grid.png"
    args = sample.parse_args(
        [
            "--pipeline",
            str(artifacts / "pipeline"),
            "--class_labels",
            "Sneaker",
            "0",
            "--num_images_per_class",
            "3",
            "--top_k",
            "5",
            "--guidance_scale",
            "1.5",
            "--scale",
            "1",
            "--output",
            str(output),
        ]
    )
    sample.main(args)
    grid = PIL.Image.open(output)
    assert grid.size == (3 * 28 + 4 * 2, 2 * 28 + 3 * 2) and grid.mode == "L"
    pipe = TamingPipeline.from_pretrained(artifacts / "pipeline")
    assert sample.resolve_class_labels(pipe, ["Sneaker", "0"]) == [7, 0]
    assert sample.resolve_class_labels(pipe, None) == list(range(10))
    # Same seed, same grid.
    sample.main(args)
    assert list(PIL.Image.open(output).getdata()) == list(grid.getdata())


def test_evaluate_script_writes_json_and_table(artifacts, tmp_path):
    evaluate = load_script("evaluate")
    args = evaluate.parse_args(
        [
            "--vqgan",
            str(artifacts / "vqgan-run"),
            str(artifacts / "pipeline"),
            "--pipeline",
            str(artifacts / "pipeline"),
            "--classifier",
            str(artifacts / "classifier"),
            "--max_eval_samples",
            "40",
            "--num_images_per_class",
            "3",
            "--batch_size",
            "20",
            "--top_k",
            "4",
            "--no_lpips",
            "--no_inception_fid",  # an Inception forward per image; test_evaluate_script_reports_standard_fids
            "--output_dir",
            str(tmp_path),
        ]
    )
    results = evaluate.main(args)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved == json.loads(json.dumps(results))
    assert set(saved["reconstruction"]) == {"vqgan-run", "pipeline"}
    run, pipe = saved["reconstruction"]["vqgan-run"], saved["reconstruction"]["pipeline"]
    for key in ("psnr", "ssim", "codebook_usage", "codebook_perplexity", "feature_fid"):
        assert run[key] == pytest.approx(pipe[key])  # the same VQGAN, found in two layouts
    assert run["num_images"] == 40 and 0 < run["codebook_usage"] <= 1 and run["feature_fid"] >= 0
    generation = saved["generation"]
    assert generation["num_generated"] == 30 and 0 <= generation["classifier_accuracy"] <= 1
    assert generation["feature_fid"] >= 0 and generation["top_k"] == 4
    # unset flags: the pipeline's own settings (no generation_config defaults here: the fallbacks), as used
    assert (generation["top_p"], generation["temperature"], generation["guidance_scale"]) == (None, 1.0, 1.0)
    assert 0 <= saved["classifier"]["test_accuracy"] <= 1
    table = (tmp_path / "metrics.md").read_text()
    assert "| vqgan-run |" in table and "classifier accuracy" in table


class PixelStatistics(torch.nn.Module):
    """A stand-in for the Inception in the standard FID: per-channel mean and std of the uint8 RGB pixels it gets."""

    num_features = 6

    def __init__(self):
        super().__init__()
        self.inputs = []

    def forward(self, pixels):
        self.inputs.append(pixels)
        x = pixels.float()
        return torch.cat([x.mean((2, 3)), x.std((2, 3))], dim=1)


def test_evaluate_script_reports_standard_fids(artifacts, tmp_path, monkeypatch):
    from torchmetrics.image.fid import FrechetInceptionDistance

    from taming_hf.evaluation import fid_uint8_images, metrics

    built = []

    def standard_fid_or_none():
        built.append(FrechetInceptionDistance(feature=PixelStatistics()))
        return built[-1]

    monkeypatch.setattr(metrics, "standard_fid_or_none", standard_fid_or_none)
    evaluate = load_script("evaluate")
    args = evaluate.parse_args(
        ["--vqgan", str(artifacts / "vqgan-run"), "--pipeline", str(artifacts / "pipeline")]
        + ["--classifier", str(artifacts / "classifier"), "--max_eval_samples", "12", "--num_images_per_class", "2"]
        + ["--batch_size", "20", "--no_lpips", "--output_dir", str(tmp_path)]
    )
    results = evaluate.main(args)
    reconstruction_fid, generation_fid = built
    # rFID: the 12 test images as real, their reconstructions as fake; uint8 RGB (the gray images repeated).
    real, fake = reconstruction_fid.inception.inputs
    assert real.dtype == torch.uint8 and real.shape == (12, 3, 28, 28) and torch.equal(real[:, 0], real[:, 2])
    images, _ = evaluate.load_test_images(args, 28, 1)
    assert torch.equal(real, fid_uint8_images(images))
    assert results["reconstruction"]["vqgan-run"]["rfid"] == pytest.approx(reconstruction_fid.compute().item())
    # gFID: the same 12 real images against 2 samples of each of the 10 classes.
    generated = torch.cat(generation_fid.inception.inputs[1:])
    assert torch.equal(generation_fid.inception.inputs[0], real) and generated.shape == (20, 3, 28, 28)
    assert results["generation"]["gfid"] == pytest.approx(generation_fid.compute().item())
    assert results["generation"]["gfid"] > 0
    table = (tmp_path / "metrics.md").read_text()
    assert "| gFID (Inception) |" in table and f"| {evaluate._fmt(results['generation']['gfid'])} |" in table


def test_evaluate_script_needs_something_to_evaluate():
    evaluate = load_script("evaluate")
    with pytest.raises(SystemExit):
        evaluate.parse_args(["--output_dir", "x"])


def test_evaluate_names_vqgan_rows_by_folder_and_by_path_where_folders_share_a_name():
    evaluate = load_script("evaluate")
    names = evaluate.vqgan_names(["runs/a/vqgan", "runs/b/vqgan/", "pretrained/emoji-vqgan"])
    assert names == ["runs/a/vqgan", "runs/b/vqgan", "emoji-vqgan"]
