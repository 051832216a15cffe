"""The Gradio demo's handlers (scripts/demo.py) called directly on tiny random pipelines: outputs, errors, layout.

Without gradio (the `demo` extra) the tests fail under CI (`CI=true`) and are skipped elsewhere. The browser test
of the same app is tests/test_demo_browser.py.
"""

import importlib.util
import re
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch
from diffusers.utils import make_image_grid

from original_taming import running_in_ci

if importlib.util.find_spec("gradio") is None:
    reason = 'The demo tests need gradio; install it with: pip install -e ".[demo]"'
    if running_in_ci():
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason, allow_module_level=True)

import gradio as gr  # noqa: E402
from gradio.data_classes import ImageData  # noqa: E402

from test_pipeline import NUM_CLASSES, make_pipeline  # noqa: E402
from test_text_pipeline import make_text_pipeline  # noqa: E402
from test_vqgan_clip_pipeline import make_pipeline as make_vqgan_clip_pipeline  # noqa: E402
from test_vqgan_clip_pipeline import tiny_vqgan  # noqa: E402
from text_fixtures import tiny_clip, tiny_clip_tokenizer  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CLASS_NAMES = {"0": "cat", "1": "dog", "2": "fish"}


def load_demo_script():
    spec = importlib.util.spec_from_file_location("demo_script", REPO / "scripts" / "demo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


demo = load_demo_script()


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def same_pixels(a: PIL.Image.Image, b: PIL.Image.Image) -> bool:
    return a.size == b.size and np.array_equal(np.asarray(a), np.asarray(b))


@contextmanager
def gradio_error(message: str, prefix: bool = False):
    """Expect a `gr.Error` whose message (what the page shows) is `message` (or starts with it)."""
    with pytest.raises(gr.Error) as info:
        yield
    shown = info.value.message
    assert shown.startswith(message) if prefix else shown == message, shown


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def text_pipe(tmp_path_factory):
    tokenizer = tiny_clip_tokenizer(tmp_path_factory.mktemp("tokenizer"))
    return make_text_pipeline(tokenizer, clip=tiny_clip(tokenizer))


@pytest.fixture(scope="module")
def vqgan_clip_pipe(tmp_path_factory):
    # Codes looked up in fewer, l2-normalised dimensions than the latents, as in the shipped emoji VQGAN: the
    # pipeline's latents live in code space, which the streamed previews must decode from.
    vqgan = tiny_vqgan(codebook_dim=2, normalize_codes=True)
    return make_vqgan_clip_pipeline(tiny_clip_tokenizer(tmp_path_factory.mktemp("clip-tokenizer")), vqgan=vqgan)


@pytest.fixture(scope="module")
def class_pipe():
    return make_pipeline("class", with_null=True, id2label=CLASS_NAMES)


@pytest.fixture(scope="module")
def pipelines(text_pipe, vqgan_clip_pipe, class_pipe):
    return demo.DemoPipelines(text=text_pipe, vqgan_clip=vqgan_clip_pipe, classes=class_pipe)


# ---------------------------------------------------------------------------------------------- text to emoji


def test_text_handler_returns_the_pipelines_images_with_captions(text_pipe):
    pairs = demo.generate_emoji(text_pipe, " red apple ", "", 2, 1.0, 7, False, 8)
    expected = text_pipe(prompt="red apple", num_images_per_prompt=2, guidance_scale=1.0, generator=seeded(7)).images
    assert [caption for _, caption in pairs] == ["red apple (1)", "red apple (2)"]
    assert all(same_pixels(image, reference) for (image, _), reference in zip(pairs, expected))
    resolution = text_pipe.vqgan.config.resolution
    assert [image.size for image, _ in pairs] == [(resolution, resolution)] * 2


def test_text_handler_reranks_with_the_pipelines_clip(text_pipe):
    pairs = demo.generate_emoji(text_pipe, "red apple", "", 2, 1.0, 0, True, 4)
    expected = text_pipe(
        prompt="red apple", num_images_per_prompt=2, guidance_scale=1.0, num_candidates=4, generator=seeded(0)
    )
    scores = expected.clip_scores.flatten().tolist()
    assert [caption for _, caption in pairs] == [f"#{i + 1} of 4, CLIP {score:.3f}" for i, score in enumerate(scores)]
    assert all(same_pixels(image, reference) for (image, _), reference in zip(pairs, expected.images))


def test_text_handler_passes_the_negative_prompt(text_pipe):
    pairs = demo.generate_emoji(text_pipe, "red apple", " green dog ", 1, 3.0, 0, False, 8)
    expected = text_pipe(prompt="red apple", negative_prompt="green dog", guidance_scale=3.0, generator=seeded(0))
    assert same_pixels(pairs[0][0], expected.images[0])


@pytest.mark.parametrize("prompt", ["", "   ", None])
def test_text_handler_empty_prompt_is_a_readable_error(text_pipe, prompt):
    with gradio_error(demo.EMPTY_PROMPT):
        demo.generate_emoji(text_pipe, prompt, "", 1, 1.0, 0, False, 8)


@pytest.mark.parametrize(
    "arguments, message",
    [
        (
            ("red apple", "blurry", 1, 1.0, 0, False, 8),
            "negative_prompt only acts through classifier-free guidance, which is off (guidance_scale=1.0); pass a "
            "guidance_scale other than 1.",
        ),
        (
            ("red apple", "", 4, 1.0, 0, True, 2),
            "num_candidates=2 must be >= num_images_per_prompt=4: the best num_images_per_prompt of num_candidates "
            "samples per prompt are kept.",
        ),
        (("red apple", "", 1, 1.0, -1, False, 8), "The seed must be a whole number >= 0, got -1."),
        (("red apple", "", 1, 1.0, 1.5, False, 8), "The seed must be a whole number >= 0, got 1.5."),
    ],
)
def test_text_handler_pipeline_errors_are_readable(text_pipe, arguments, message):
    with gradio_error(message):
        demo.generate_emoji(text_pipe, *arguments)


# ---------------------------------------------------------------------------------------------- VQGAN+CLIP


def test_vqgan_clip_streams_each_step_then_the_result_and_its_gif(vqgan_clip_pipe, tmp_path):
    updates = list(demo.run_vqgan_clip(vqgan_clip_pipe, "red apple:1 | blurry:-0.5", None, 0.0, 3, 0, 2))
    expected = vqgan_clip_pipe(
        "red apple:1 | blurry:-0.5",
        num_inference_steps=3,
        cutn=2,
        generator=seeded(0),
        return_intermediates=True,
        intermediate_interval=1,
    )
    assert len(updates) == 4  # one per step, then the result
    assert [status for _, _, status in updates[:3]] == [
        f"Step {step + 1}/3, loss {loss:.4f}" for step, loss in enumerate(expected.losses[:, 0].tolist())
    ]
    assert all(gif is None for _, gif, _ in updates[:3])
    resolution = vqgan_clip_pipe.vqgan.config.resolution
    assert all(frame.size == (resolution, resolution) for frame, _, _ in updates)
    # the last streamed frame is the result: both decode the final latents' nearest codes
    assert same_pixels(updates[2][0], expected.images[0])
    image, gif, status = updates[-1]
    assert same_pixels(image, expected.images[0])
    assert status.startswith("Done: 3 steps in ") and status.endswith(" s; 4 GIF frames.")
    with PIL.Image.open(gif) as animation:
        assert animation.n_frames == len(expected.frames[0]) == 4


def test_vqgan_clip_closing_the_stream_stops_the_run(vqgan_clip_pipe):
    updates = demo.run_vqgan_clip(vqgan_clip_pipe, "red apple", None, 0.0, 300, 0, 1)
    first = next(updates)
    assert first[2].startswith("Step 1/300")
    updates.close()  # what Gradio does when the page goes away: the worker stops after its current step
    assert vqgan_clip_pipe.interrupt


def test_vqgan_clip_starts_from_an_init_image_composited_on_white(vqgan_clip_pipe, tmp_path):
    path = tmp_path / "transparent.png"
    image = PIL.Image.new("RGBA", (24, 20), (0, 0, 0, 0))
    image.paste((255, 0, 0, 255), (4, 4, 12, 12))
    image.save(path)
    resolution = vqgan_clip_pipe.vqgan.config.resolution
    opened = demo.open_init_image(str(path), resolution)
    assert opened.mode == "RGB" and opened.size == (resolution, resolution)
    assert opened.getpixel((resolution - 1, resolution - 1)) == (255, 255, 255)
    result = list(demo.run_vqgan_clip(vqgan_clip_pipe, "red apple", str(path), 0.5, 1, 0, 1))[-1][0]
    expected = vqgan_clip_pipe(
        "red apple", init_image=opened, init_weight=0.5, num_inference_steps=1, cutn=1, generator=seeded(0)
    )
    assert same_pixels(result, expected.images[0])


@pytest.mark.parametrize(
    "prompt, message",
    [
        ("", "Prompt '' has an empty part ''; every '|'-separated part needs text."),
        (
            "red apple:1 | :0.5",
            "Prompt 'red apple:1 | :0.5' has an empty part ' :0.5'; every '|'-separated part needs text.",
        ),
        ("red apple:1 | blurry:-1", "The prompt weights [1.0, -1.0] sum to 0; they must sum to a positive number"),
    ],
)
def test_vqgan_clip_bad_prompts_are_readable_errors(vqgan_clip_pipe, prompt, message):
    with gradio_error(message, prefix=True):
        next(demo.run_vqgan_clip(vqgan_clip_pipe, prompt, None, 0.0, 1, 0, 1))


def test_vqgan_clip_unreadable_init_image_is_a_readable_error(vqgan_clip_pipe, tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("not an image")
    message = (
        "The init image 'notes.png' is not an image Pillow can read (UnidentifiedImageError); upload a PNG, JPEG or "
        "WebP image."
    )
    with gradio_error(message):
        next(demo.run_vqgan_clip(vqgan_clip_pipe, "red apple", str(path), 0.0, 1, 0, 1))
    # Gradio opens uploads itself before the handler runs; the page's component says the same
    component = demo.readable_upload_errors(gr.Image(type="filepath", image_mode=None, render=False))
    with gradio_error(message):
        component.preprocess(ImageData(path=str(path), orig_name="notes.png"))


# ---------------------------------------------------------------------------------------------- class samples


def test_class_choices_are_the_pipelines_names(class_pipe):
    assert demo.class_choices(class_pipe) == [("cat", 0), ("dog", 1), ("fish", 2)]


def test_class_grid_has_a_row_per_class_of_the_pipelines_samples(class_pipe):
    grid = demo.sample_classes(class_pipe, [2, 0], 3, 2.0, 5)
    images = class_pipe(class_labels=[2, 0], num_images_per_prompt=3, guidance_scale=2.0, generator=seeded(5)).images
    expected = make_image_grid(images, rows=2, cols=3)
    scale = demo.GRID_SCALE
    assert grid.size == (3 * images[0].width * scale, 2 * images[0].height * scale)
    assert same_pixels(grid, expected.resize(grid.size, PIL.Image.Resampling.NEAREST))


def test_class_grid_needs_a_class(class_pipe):
    with gradio_error(demo.NO_CLASSES):
        demo.sample_classes(class_pipe, [], 3, 2.0, 0)


def test_class_grid_pipeline_errors_are_readable(class_pipe):
    with gradio_error(f"Class id {NUM_CLASSES} is outside the model's classes: class_labels must lie in [0, 3)."):
        demo.sample_classes(class_pipe, [NUM_CLASSES], 1, 2.0, 0)


# ---------------------------------------------------------------------------------------------- the app


def test_app_has_three_tabs_queued_one_call_at_a_time(pipelines):
    app = demo.build_demo(pipelines)
    tabs = [block.label for block in app.blocks.values() if isinstance(block, gr.Tab)]
    assert tabs == ["Text to emoji", "VQGAN+CLIP", "Class samples"]
    assert app._queue.default_concurrency_limit == demo.CONCURRENCY_LIMIT == 1
    public = {fn.api_name for fn in app.fns.values() if fn.api_visibility == "public"}
    assert public == {"text_to_emoji", "vqgan_clip", "class_samples"}  # the Enter-key twins are private


def test_wrong_kind_of_pipeline_is_refused(pipelines, class_pipe, text_pipe):
    swapped = demo.DemoPipelines(text=class_pipe, vqgan_clip=pipelines.vqgan_clip, classes=class_pipe)
    with pytest.raises(
        ValueError,
        match=re.escape("--text_pipeline must be a text-conditional TamingPipeline, but its conditioning is 'class'."),
    ):
        demo.check_pipelines(swapped)
    swapped = demo.DemoPipelines(text=text_pipe, vqgan_clip=pipelines.vqgan_clip, classes=text_pipe)
    with pytest.raises(
        ValueError,
        match=re.escape(
            "--class_pipeline must be a class-conditional TamingPipeline, but its conditioning is 'text'."
        ),
    ):
        demo.check_pipelines(swapped)


def test_default_flags_are_the_shipped_models_on_loopback(monkeypatch):
    monkeypatch.delenv("GRADIO_SERVER_NAME", raising=False)
    monkeypatch.delenv("GRADIO_SERVER_PORT", raising=False)
    args = demo.parse_args([])
    assert args.server_name == "127.0.0.1" and args.server_port == 7860
    for name, folder in (
        ("text_pipeline", "taming-emoji-text"),
        ("vqgan", "emoji-vqgan"),
        ("clip", "emoji-clip"),
        ("class_pipeline", "taming-fashion-mnist"),
    ):
        assert Path(getattr(args, name)) == REPO / "pretrained" / folder
    assert demo.os.environ["GRADIO_ANALYTICS_ENABLED"] == "False"


def test_missing_model_folder_is_a_usage_error(tmp_path, capsys):
    missing = tmp_path / "no-such-pipeline"
    with pytest.raises(SystemExit):
        demo.parse_args(["--text_pipeline", str(missing)])
    assert f"--text_pipeline {str(missing)!r} is neither an existing folder nor a valid Hub repo id" in (
        capsys.readouterr().err
    )


def test_vqgan_clip_streams_with_the_shipped_models():
    """The app's own VQGAN+CLIP pipeline over the shipped emoji VQGAN and CLIP: streamed previews and the result are
    the pipeline's images (the shipped VQGAN looks codes up in 8 of its 32 latent dimensions)."""
    pipe = demo.load_pipelines(demo.parse_args(["--device", "cpu"])).vqgan_clip
    pipe.set_progress_bar_config(disable=True)
    assert pipe.vqgan.config.codebook_dim == 8 and pipe.vqgan.config.embed_dim == 32
    updates = list(demo.run_vqgan_clip(pipe, "red heart", None, 0.0, 2, 0, 2))
    expected = pipe("red heart", num_inference_steps=2, cutn=2, generator=seeded(0))
    assert len(updates) == 3 and [status.split(",")[0] for _, _, status in updates[:2]] == ["Step 1/2", "Step 2/2"]
    assert all(frame.size == (64, 64) for frame, _, _ in updates)
    assert same_pixels(updates[2][0], expected.images[0])
    # The last preview decodes the same codes from their indices, the result from their vectors: rounding apart, equal.
    last_preview, result = (np.asarray(image, dtype=np.int16) for image in (updates[1][0], expected.images[0]))
    assert np.abs(last_preview - result).max() <= 1
