#!/usr/bin/env python
"""A Gradio app over the shipped pipelines, offline on a CPU: text to emoji, VQGAN+CLIP, class samples.

    pip install -e ".[demo]"
    python scripts/demo.py                       # http://127.0.0.1:7860
    python scripts/demo.py --text_pipeline my-text-pipeline --class_pipeline user/my-class-pipeline \
        --vqgan my-vqgan --clip openai/clip-vit-base-patch32 --server_port 8080

Each model flag takes a folder written by `save_pretrained` or a Hub repo id. The same file runs as a Hugging Face
Space when copied to the Space's `app.py` with the `pretrained/` folders beside it (docs/demo.md).

Three tabs, each over the library's public pipelines:
1. text to emoji: `TamingPipeline(prompt=...)` of a text-conditional pipeline, optionally reranked by CLIP
   (`num_candidates`) with the pipeline's `clip` component (the `--clip` model when it has none);
2. VQGAN+CLIP: `VQGANCLIPPipeline` over `--vqgan` and `--clip`, streaming the image as it evolves (from
   `callback_on_step_end`) and offering the run's frames (`return_intermediates`) as a GIF (`export_frames`);
3. class samples: a class-conditional `TamingPipeline`, one grid row per picked class.
"""

import os

# Before gradio is imported: no analytics, no version check, nothing sent anywhere.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import argparse  # noqa: E402
import contextlib  # noqa: E402
import functools  # noqa: E402
import logging  # noqa: E402
import queue  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Iterator, List, Optional, Tuple  # noqa: E402

import gradio as gr  # noqa: E402
import PIL.Image  # noqa: E402
import torch  # noqa: E402
from diffusers.utils import make_image_grid  # noqa: E402
from transformers import CLIPModel, CLIPProcessor  # noqa: E402

from taming_hf import TamingPipeline, VQGANCLIPPipeline, VQGANModel, export_frames  # noqa: E402
from taming_hf.data.emoji import composite_on_white  # noqa: E402
from taming_hf.pipelines.vqgan_clip.parameterization import nearest_codes  # noqa: E402
from taming_hf.utils.loading import missing_local_path_message  # noqa: E402

logger = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
EMPTY_PROMPT = "Type a prompt first, e.g. 'red heart' (the prompt box is empty)."
NO_CLASSES = "Pick at least one class."
# One call at a time per tab: a pipeline keeps per-call state (`_interrupt`, `_num_timesteps`), and on a small CPU
# two samplings side by side only slow each other down. The tabs' pipelines are separate objects.
CONCURRENCY_LIMIT = 1
GRID_SCALE = 3  # class grids are upscaled (nearest) so 28 px Fashion-MNIST samples stay crisp in the page
# 64 px outputs the browser scales up stay sharp; the files the page offers keep the pipelines' own size.
CSS = "#text-gallery img, #vqgan-image img { image-rendering: pixelated; }"
# Gradio finds a handler's progress bar by a `gr.Progress` default (and passes that object in); one is enough.
PROGRESS = gr.Progress()


def default_model(name: str) -> str:
    """`pretrained/<name>` beside this file (a Space's app.py) or in the repository root (scripts/demo.py)."""
    for root in (HERE / "pretrained", HERE.parent / "pretrained"):
        if (root / name).is_dir():
            return str(root / name)
    return str(HERE.parent / "pretrained" / name)


def parse_args(input_args=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--text_pipeline",
        type=str,
        default=default_model("taming-emoji-text"),
        help="Text-conditional TamingPipeline (folder or Hub id) for the text to emoji tab.",
    )
    parser.add_argument(
        "--vqgan",
        type=str,
        default=default_model("emoji-vqgan"),
        help="RGB VQGANModel (folder or Hub id; a pipeline folder with vqgan/ works too) for the VQGAN+CLIP tab.",
    )
    parser.add_argument(
        "--clip",
        type=str,
        default=default_model("emoji-clip"),
        help="CLIPModel and its CLIPProcessor (folder or Hub id): VQGAN+CLIP's judge, and the reranker of text "
        "pipelines without a clip component.",
    )
    parser.add_argument(
        "--class_pipeline",
        type=str,
        default=default_model("taming-fashion-mnist"),
        help="Class-conditional TamingPipeline (folder or Hub id) for the class samples tab.",
    )
    parser.add_argument(
        "--server_name",
        type=str,
        default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        help="Address to serve on (default: $GRADIO_SERVER_NAME, which Spaces set, else 127.0.0.1).",
    )
    parser.add_argument(
        "--server_port",
        type=int,
        default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)),
        help="Port to serve on (default: $GRADIO_SERVER_PORT, else 7860).",
    )
    parser.add_argument("--device", type=str, default=None, help="Default: cuda when available, else cpu.")
    args = parser.parse_args(input_args)
    for name in ("text_pipeline", "vqgan", "clip", "class_pipeline"):
        message = missing_local_path_message(getattr(args, name), f"--{name}")
        if message:
            parser.error(message)
    if not 0 <= args.server_port < 65536:
        parser.error(f"--server_port must be in [0, 65536), got {args.server_port}.")
    return args


# ---------------------------------------------------------------------------------------------------- loading


@dataclass
class DemoPipelines:
    """The pipelines behind the three tabs."""

    text: TamingPipeline
    vqgan_clip: VQGANCLIPPipeline
    classes: TamingPipeline


def load_vqgan(path: str) -> VQGANModel:
    """A VQGANModel folder, or a pipeline folder holding one in `vqgan/`."""
    subfolder = "vqgan" if os.path.isfile(os.path.join(path, "model_index.json")) else ""
    return VQGANModel.from_pretrained(path, subfolder=subfolder)


def load_pipelines(args: argparse.Namespace) -> DemoPipelines:
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    text = TamingPipeline.from_pretrained(args.text_pipeline)
    if text.clip is None:  # rerank with the --clip model, as a component of the pipeline
        text.clip, text.clip_processor = CLIPModel.from_pretrained(args.clip), CLIPProcessor.from_pretrained(args.clip)
    vqgan_clip = VQGANCLIPPipeline(
        vqgan=load_vqgan(args.vqgan),
        clip=CLIPModel.from_pretrained(args.clip),  # its own copy: the text tab may rerank at the same time
        clip_processor=CLIPProcessor.from_pretrained(args.clip),
    )
    classes = TamingPipeline.from_pretrained(args.class_pipeline)
    pipelines = DemoPipelines(text=text.to(device), vqgan_clip=vqgan_clip.to(device), classes=classes.to(device))
    check_pipelines(pipelines)
    return pipelines


def check_pipelines(pipelines: DemoPipelines) -> None:
    """Each tab needs its kind of pipeline; say which flag is wrong before the app starts."""
    for flag, pipe, kind in (
        ("--text_pipeline", pipelines.text, "text"),
        ("--class_pipeline", pipelines.classes, "class"),
    ):
        if pipe.config.conditioning != kind:
            raise ValueError(
                f"{flag} must be a {kind}-conditional TamingPipeline, but its conditioning is "
                f"{pipe.config.conditioning!r}."
            )
    for pipe in (pipelines.text, pipelines.vqgan_clip, pipelines.classes):
        pipe.set_progress_bar_config(disable=True)  # the page shows gr.Progress instead


# ---------------------------------------------------------------------------------------------------- helpers


@contextlib.contextmanager
def readable_errors() -> Iterator[None]:
    """The pipelines' `ValueError`s (bad prompts, weights, images) -> a message in the page, not a stack trace."""
    try:
        yield
    except gr.Error:  # already a message for the page (gr.Error is a ValueError too)
        raise
    except ValueError as error:
        raise gr.Error(str(error), print_exception=False) from error


def seeded(seed) -> torch.Generator:
    if seed is None or float(seed) != int(seed) or int(seed) < 0:
        raise gr.Error(f"The seed must be a whole number >= 0, got {seed!r}.", print_exception=False)
    return torch.Generator().manual_seed(int(seed))


def num_image_tokens(pipe: TamingPipeline) -> int:
    """Tokens sampled per image: the prior's grid at the VQGAN's training resolution."""
    resolution = pipe.vqgan.config.resolution
    height, width = pipe.vqgan.latent_shape(resolution, resolution)
    return height * width


def token_progress(progress: gr.Progress, total: int, desc: str):
    """A `callback_on_step_end` that reports each sampled token to Gradio's progress bar."""

    def on_token(pipe, step, token_position, callback_kwargs):
        progress((step + 1, total), desc=desc, unit="tokens")
        return callback_kwargs

    return on_token


# ---------------------------------------------------------------------------------------------------- tab 1


def generate_emoji(
    pipe: TamingPipeline,
    prompt: str,
    negative_prompt: str,
    num_images: int,
    guidance_scale: float,
    seed: int,
    rerank: bool,
    num_candidates: int,
    progress: gr.Progress = PROGRESS,
) -> List[Tuple[PIL.Image.Image, str]]:
    """
    Sample `num_images` images for `prompt` (the best `num_candidates` by CLIP when `rerank`).

    Returns:
        `(image, caption)` pairs for a `gr.Gallery`; images are the pipeline's size (64 x 64 for the emoji one).
    """
    prompt = (prompt or "").strip()
    if not prompt:
        raise gr.Error(EMPTY_PROMPT, print_exception=False)
    progress(0, desc="Sampling")
    with readable_errors():
        output = pipe(
            prompt=prompt,
            negative_prompt=(negative_prompt or "").strip() or None,
            num_images_per_prompt=int(num_images),
            guidance_scale=float(guidance_scale),
            num_candidates=int(num_candidates) if rerank else None,
            generator=seeded(seed),
            callback_on_step_end=token_progress(progress, num_image_tokens(pipe), "Sampling codes"),
            callback_on_step_end_tensor_inputs=[],
        )
    if rerank:
        scores = output.clip_scores.flatten().tolist()
        captions = [f"#{i + 1} of {int(num_candidates)}, CLIP {score:.3f}" for i, score in enumerate(scores)]
    else:
        captions = [f"{prompt} ({i + 1})" for i in range(len(output.images))]
    return list(zip(output.images, captions))


# ---------------------------------------------------------------------------------------------------- tab 2


def unreadable_image(name: str, error: Exception) -> gr.Error:
    return gr.Error(
        f"The init image {name!r} is not an image Pillow can read ({type(error).__name__}); upload a PNG, JPEG or "
        "WebP image.",
        print_exception=False,
    )


def readable_upload_errors(component: gr.Image) -> gr.Image:
    """
    Gradio opens an upload itself before the handler runs, and shows a bare "Error" for a file Pillow cannot read
    (a HEIC photo, a broken PNG): make that step say what is wrong. (A subclass of `gr.Image` would do it too, but
    Gradio writes a `.pyi` stub beside the file of every component class.)
    """
    preprocess = component.preprocess

    def checked(payload):
        try:
            return preprocess(payload)
        except (PIL.UnidentifiedImageError, OSError) as error:
            raise unreadable_image(payload.orig_name or os.path.basename(payload.path or ""), error) from error

    component.preprocess = checked
    return component


def open_init_image(path: Optional[str], resolution: int) -> Optional[PIL.Image.Image]:
    """An uploaded file -> an RGB image on white at the VQGAN's resolution, as the emoji training images are."""
    if path is None:
        return None
    try:
        with PIL.Image.open(path) as image:
            image.load()
            return composite_on_white(image, resolution)
    except (PIL.UnidentifiedImageError, OSError, ValueError) as error:  # e.g. an SVG, which Gradio passes on
        raise unreadable_image(os.path.basename(path), error) from error


def preview(pipe: VQGANCLIPPipeline, latents: torch.Tensor) -> PIL.Image.Image:
    """The image the VQGAN decodes from the optimised latents' nearest codes (what the next step starts from).
    The pipeline optimises in the VQGAN's code-vector space (`get_code_vectors()`), not in its encoder's latent
    space: the two differ when codes are looked up in fewer dimensions (`codebook_dim`), as in the emoji VQGAN."""
    with torch.no_grad():
        indices = nearest_codes(latents[:1], pipe.vqgan.get_code_vectors())
        return pipe.image_processor.postprocess(pipe.vqgan.decode_indices(indices))[0]


def run_vqgan_clip(
    pipe: VQGANCLIPPipeline,
    prompt: str,
    init_image: Optional[str],
    init_weight: float,
    num_steps: int,
    seed: int,
    cutn: int,
    progress: gr.Progress = PROGRESS,
) -> Iterator[Tuple[PIL.Image.Image, Optional[str], str]]:
    """
    Optimise VQGAN codes towards `prompt` ("text:weight | text:weight"), optionally from an uploaded image.

    Yields:
        `(image, gif_path, status)`: the decoded image after each step (the GIF path is None until the end), then
        the final image with the GIF of the run's frames.
    """
    num_steps = int(num_steps)
    image = open_init_image(init_image, pipe.vqgan.config.resolution)
    kwargs = dict(
        prompt=prompt,
        init_image=image,
        init_weight=float(init_weight),
        num_inference_steps=num_steps,
        cutn=int(cutn),
        generator=seeded(seed),
    )
    with readable_errors():  # every bad input fails here, before the worker thread starts
        pipe.check_inputs(**{name: value for name, value in kwargs.items() if name != "generator"})
    frame_interval = max(1, num_steps // 30)  # at most ~31 GIF frames

    updates: queue.Queue = queue.Queue()
    stop = threading.Event()

    def on_step(pipe, step, timestep, callback_kwargs):
        updates.put(("step", step + 1, preview(pipe, callback_kwargs["latents"]), callback_kwargs["loss"][0].item()))
        if stop.is_set():  # the page was closed: end the run after this step
            pipe._interrupt = True
        return {}

    def work():
        try:
            output = pipe(
                **kwargs,
                return_intermediates=True,
                intermediate_interval=frame_interval,
                callback_on_step_end=on_step,
                callback_on_step_end_tensor_inputs=["latents", "loss"],
            )
            updates.put(("done", output))
        except BaseException as error:  # handed to the generator, which re-raises it in Gradio's worker
            updates.put(("error", error))

    worker = threading.Thread(target=work, name="vqgan-clip", daemon=True)
    started = time.perf_counter()
    progress((0, num_steps), desc="Optimising", unit="steps")
    worker.start()
    try:
        while True:
            kind, *payload = updates.get()
            if kind == "step":
                step, frame, loss = payload
                progress((step, num_steps), desc="Optimising", unit="steps")
                yield frame, None, f"Step {step}/{num_steps}, loss {loss:.4f}"
            elif kind == "error":
                with readable_errors():
                    raise payload[0]
            else:
                output = payload[0]
                break
    finally:
        stop.set()
        worker.join()
    gif = export_frames(output.frames[0], os.path.join(tempfile.mkdtemp(prefix="vqgan-clip-"), "vqgan_clip.gif"))
    seconds = time.perf_counter() - started
    yield output.images[0], gif, f"Done: {num_steps} steps in {seconds:.1f} s; {len(output.frames[0])} GIF frames."


# ---------------------------------------------------------------------------------------------------- tab 3


def class_choices(pipe: TamingPipeline) -> List[Tuple[str, int]]:
    """`(name, id)` for each class of the pipeline (its id2label, else the ids themselves)."""
    id2label = pipe.config.id2label or {}
    return [(str(id2label.get(str(i), id2label.get(i, i))), i) for i in range(pipe.config.num_condition_tokens)]


def sample_classes(
    pipe: TamingPipeline,
    class_ids: List[int],
    num_per_class: int,
    guidance_scale: float,
    seed: int,
    progress: gr.Progress = PROGRESS,
) -> PIL.Image.Image:
    """
    Sample `num_per_class` images of each class in `class_ids`.

    Returns:
        A grid with one row per class, upscaled `GRID_SCALE` times (nearest): `(len(class_ids) * H * GRID_SCALE,
        num_per_class * W * GRID_SCALE)` pixels (height x width).
    """
    if not class_ids:
        raise gr.Error(NO_CLASSES, print_exception=False)
    num_per_class = int(num_per_class)
    progress(0, desc="Sampling")
    with readable_errors():
        images = pipe(
            class_labels=[int(i) for i in class_ids],
            num_images_per_prompt=num_per_class,
            guidance_scale=float(guidance_scale),
            generator=seeded(seed),
            callback_on_step_end=token_progress(progress, num_image_tokens(pipe), "Sampling codes"),
            callback_on_step_end_tensor_inputs=[],
        ).images
    grid = make_image_grid(images, rows=len(class_ids), cols=num_per_class)
    return grid.resize((grid.width * GRID_SCALE, grid.height * GRID_SCALE), PIL.Image.Resampling.NEAREST)


# ---------------------------------------------------------------------------------------------------- the app


def text_tab(pipe: TamingPipeline) -> None:
    settings = pipe.sampling_settings()
    with gr.Row():
        with gr.Column():
            prompt = gr.Textbox(label="Prompt", placeholder="red heart", elem_id="text-prompt")
            negative = gr.Textbox(
                label="Negative prompt (needs guidance > 1)", placeholder="optional", elem_id="text-negative"
            )
            num_images = gr.Slider(1, 8, value=4, step=1, label="Number of images", elem_id="text-num-images")
            guidance = gr.Slider(1.0, 10.0, value=settings.guidance_scale, step=0.5, label="Guidance scale (1 = off)")
            seed = gr.Number(value=0, precision=0, label="Seed", minimum=0, elem_id="text-seed")
            rerank = gr.Checkbox(value=False, label="Rerank with CLIP (keep the best of the candidates)")
            candidates = gr.Slider(2, 32, value=8, step=1, label="Candidates per prompt (reranking)")
            button = gr.Button("Generate", variant="primary", elem_id="text-generate")
        gallery = gr.Gallery(label="Samples", columns=4, format="png", elem_id="text-gallery", height="auto")
    inputs = [prompt, negative, num_images, guidance, seed, rerank, candidates]
    handler = functools.partial(generate_emoji, pipe)
    button.click(handler, inputs, gallery, api_name="text_to_emoji")
    prompt.submit(handler, inputs, gallery, api_visibility="private")


def vqgan_clip_tab(pipe: VQGANCLIPPipeline) -> None:
    with gr.Row():
        with gr.Column():
            prompt = gr.Textbox(
                label="Prompts with weights",
                placeholder="red heart:1 | blurry:-0.5",
                info="Parts split at '|', each with an optional ':weight' (negative weights push away).",
                elem_id="vqgan-prompt",
            )
            # the uploaded file itself (image_mode=None): transparent emoji are composited on white, not on black
            init_image = readable_upload_errors(
                gr.Image(
                    label="Init image (optional)", type="filepath", image_mode=None, sources=["upload", "clipboard"]
                )
            )
            init_weight = gr.Slider(0.0, 2.0, value=0.0, step=0.1, label="Init weight (stay close to the start)")
            steps = gr.Slider(1, 300, value=30, step=1, label="Steps", elem_id="vqgan-steps")
            seed = gr.Number(value=0, precision=0, label="Seed", minimum=0, elem_id="vqgan-seed")
            cutn = gr.Slider(1, 64, value=16, step=1, label="Cutouts per step (fewer: faster, noisier)")
            button = gr.Button("Generate", variant="primary", elem_id="vqgan-generate")
        with gr.Column():
            image = gr.Image(label="Image", type="pil", format="png", interactive=False, elem_id="vqgan-image")
            status = gr.Markdown(elem_id="vqgan-status")
            gif = gr.File(label="Frames (GIF)", elem_id="vqgan-gif")
    inputs = [prompt, init_image, init_weight, steps, seed, cutn]
    handler = functools.partial(run_vqgan_clip, pipe)
    button.click(handler, inputs, [image, gif, status], api_name="vqgan_clip")
    prompt.submit(handler, inputs, [image, gif, status], api_visibility="private")


def class_tab(pipe: TamingPipeline) -> None:
    choices = class_choices(pipe)
    settings = pipe.sampling_settings()
    with gr.Row():
        with gr.Column():
            classes = gr.CheckboxGroup(
                choices, value=[i for _, i in choices], label="Classes (one grid row each)", elem_id="class-picker"
            )
            num_per_class = gr.Slider(1, 10, value=4, step=1, label="Images per class")
            guidance = gr.Slider(1.0, 10.0, value=settings.guidance_scale, step=0.5, label="Guidance scale (1 = off)")
            seed = gr.Number(value=0, precision=0, label="Seed", minimum=0, elem_id="class-seed")
            button = gr.Button("Sample", variant="primary", elem_id="class-generate")
        grid = gr.Image(label="Samples", type="pil", format="png", interactive=False, elem_id="class-grid")
    handler = functools.partial(sample_classes, pipe)
    button.click(handler, [classes, num_per_class, guidance, seed], grid, api_name="class_samples")


def build_demo(pipelines: DemoPipelines) -> gr.Blocks:
    """The app: three tabs over `pipelines`, queued one call per tab at a time. Launch it with `launch_demo`."""
    with gr.Blocks(title="taming_hf demo", analytics_enabled=False, delete_cache=(3600, 3600)) as demo:
        gr.Markdown(
            "# taming_hf\nTaming Transformers on the Hugging Face stack: a VQGAN, a GPT-2 prior over its codes, "
            "and VQGAN+CLIP. The shipped models are small and trained on a CPU; expect blobs more than emoji."
        )
        with gr.Tabs():
            with gr.Tab("Text to emoji", id="text"):
                text_tab(pipelines.text)
            with gr.Tab("VQGAN+CLIP", id="vqgan-clip"):
                vqgan_clip_tab(pipelines.vqgan_clip)
            with gr.Tab("Class samples", id="classes"):
                class_tab(pipelines.classes)
    return demo.queue(default_concurrency_limit=CONCURRENCY_LIMIT)


def launch_demo(demo: gr.Blocks, server_name: str = "127.0.0.1", server_port: int = 7860, **kwargs):
    """Serve `demo` locally: no share link, no server-side rendering (it would need Node), no analytics."""
    return demo.launch(
        server_name=server_name, server_port=server_port, share=False, ssr_mode=False, css=CSS, **kwargs
    )


def main(args: argparse.Namespace) -> None:
    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", level=logging.INFO)
    demo = build_demo(load_pipelines(args))
    launch_demo(demo, args.server_name, args.server_port)


if __name__ == "__main__":
    main(parse_args())
