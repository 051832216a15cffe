#!/usr/bin/env python
"""Generate or edit an image with VQGAN+CLIP: optimise VQGAN codes until CLIP matches the prompts, offline.

Components come from a VQGANCLIPPipeline folder (or Hub id), or from a VQGAN and a CLIP given apart
(a CLIP folder holds the CLIPModel and its CLIPProcessor, as `save_pretrained` writes them):

    python scripts/vqgan_clip.py --vqgan pretrained/emoji-vqgan --clip pretrained/emoji-clip \
        --prompt "red apple:1 | blurry:-0.3" --steps 300 --seed 0 --output apple.png --frames apple.gif
    python scripts/vqgan_clip.py --pipeline pretrained/vqgan-clip-emoji --prompt "grinning face" \
        --init_image face.png --init_weight 0.5 --steps 100 --output edited.png

A `--vqgan` folder may also be a pipeline folder with a `vqgan/` subfolder (a TamingPipeline's).
"""

import argparse
import logging
import os
from typing import Optional

import PIL.Image
import torch
from transformers import CLIPModel, CLIPProcessor

from taming_hf import VQGANCLIPPipeline, VQGANModel, export_frames
from taming_hf.utils.loading import missing_local_path_message

logger = logging.getLogger(__name__)

MIXED_PRECISION = {"no": None, "fp16": torch.float16, "bf16": torch.bfloat16}


def parse_args(input_args=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pipeline", type=str, default=None, help="VQGANCLIPPipeline folder or Hub id.")
    parser.add_argument("--vqgan", type=str, default=None, help="VQGANModel folder (or pipeline folder with vqgan/).")
    parser.add_argument(
        "--clip", type=str, default=None, help="Folder or Hub id of a CLIPModel and its CLIPProcessor."
    )
    parser.add_argument(
        "--prompt",
        "--prompts",
        dest="prompt",
        type=str,
        default=None,
        help='Prompts, e.g. "a red apple:1 | blurry:-0.5".',
    )
    parser.add_argument("--image_prompt", type=str, nargs="+", default=None, help="Image files used as prompts too.")
    parser.add_argument("--init_image", type=str, default=None, help="Image file to start from (editing).")
    parser.add_argument("--init_weight", type=float, default=0.0, help="Keep the latents this close to the start.")
    parser.add_argument("--start", type=str, default="codes", choices=["codes", "noise"], help="Start without init.")
    parser.add_argument("--height", type=int, default=None, help="Output height (default: init image or VQGAN's).")
    parser.add_argument("--width", type=int, default=None, help="Output width (default: init image or VQGAN's).")
    parser.add_argument("--steps", type=int, default=300, help="Optimisation steps.")
    parser.add_argument("--learning_rate", type=float, default=0.1, help="The optimizer's step size.")
    parser.add_argument(
        "--optimizer",
        type=str,
        default="adam",
        choices=["adam", "adamw", "sgd"],
        help="The torch.optim optimizer of the latents: adam, adamw or sgd.",
    )
    parser.add_argument(
        "--parameterization",
        type=str,
        default="latents",
        choices=["latents", "logits"],
        help="latents: continuous latents snapped to the nearest code; logits: codebook logits per cell (both "
        "straight-through).",
    )
    parser.add_argument("--cutn", type=int, default=32, help="Cutouts per step (fewer: less memory and time).")
    parser.add_argument("--cut_pow", type=float, default=1.0, help="Cutout size exponent (> 1: smaller cutouts).")
    parser.add_argument("--no_augmentations", action="store_true", help="Score cutouts without augmentations.")
    parser.add_argument(
        "--mixed_precision",
        type=str,
        default="no",
        choices=list(MIXED_PRECISION),
        help="fp16 or bf16: run the VQGAN and CLIP under autocast (less memory); no: float32.",
    )
    parser.add_argument(
        "--gradient_checkpointing", action="store_true", help="Recompute the VQGAN decoder in backward (less memory)."
    )
    parser.add_argument("--seed", type=int, default=0, help="Seeds the start, the cutouts and the augmentations.")
    parser.add_argument("--device", type=str, default=None, help="Default: cuda when available, else cpu.")
    parser.add_argument(
        "--output",
        type=str,
        default="vqgan_clip.png",
        help="The final image file (its folder is created; the extension gives the format).",
    )
    parser.add_argument(
        "--frames",
        "--save_frames",
        dest="frames",
        type=str,
        default=None,
        help="Write the run's frames (.gif or .mp4).",
    )
    parser.add_argument("--frame_interval", type=int, default=10, help="Steps between two frames.")
    parser.add_argument("--fps", type=int, default=10, help="Frames per second of --frames.")
    args = parser.parse_args(input_args)
    check_args(parser, args)
    return args


def check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Fail with a usage error before any model loads; the pipeline checks the numeric arguments itself."""
    if (args.pipeline is None) == (args.vqgan is None and args.clip is None):
        parser.error("pass either --pipeline, or --vqgan and --clip.")
    if args.pipeline is None and (args.vqgan is None or args.clip is None):
        parser.error("--vqgan and --clip go together: pass both (or --pipeline).")
    if args.prompt is None and args.image_prompt is None:
        parser.error('pass --prompt "text:weight | text:weight" and/or --image_prompt FILES.')
    for name in ("pipeline", "vqgan", "clip"):
        message = missing_local_path_message(getattr(args, name), f"--{name}")
        if message:
            parser.error(message)
    for name in ("init_image",):
        path = getattr(args, name)
        if path is not None and not os.path.isfile(path):
            parser.error(f"--{name} {path!r} is not a file.")
    for path in args.image_prompt or []:
        if not os.path.isfile(path):
            parser.error(f"--image_prompt {path!r} is not a file.")
    if args.frames is not None and os.path.splitext(args.frames)[1].lower() not in (".gif", ".mp4"):
        parser.error(f"--frames must end in .gif or .mp4, got {args.frames!r}.")


def load_vqgan(path: str) -> VQGANModel:
    """A VQGANModel folder, or a pipeline folder holding one in `vqgan/`."""
    subfolder = "vqgan" if os.path.isfile(os.path.join(path, "model_index.json")) else ""
    return VQGANModel.from_pretrained(path, subfolder=subfolder)


def load_pipeline(args: argparse.Namespace) -> VQGANCLIPPipeline:
    if args.pipeline is not None:
        return VQGANCLIPPipeline.from_pretrained(args.pipeline)
    return VQGANCLIPPipeline(
        load_vqgan(args.vqgan), CLIPModel.from_pretrained(args.clip), CLIPProcessor.from_pretrained(args.clip)
    )


def open_image(path: Optional[str]) -> Optional[PIL.Image.Image]:
    return None if path is None else PIL.Image.open(path).convert("RGB")


def main(args: argparse.Namespace) -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    pipe = load_pipeline(args).to(device)
    if args.gradient_checkpointing:
        pipe.vqgan.activation_checkpointing_enable()
    image_prompts = None if args.image_prompt is None else [open_image(path) for path in args.image_prompt]
    if image_prompts is not None and len({image.size for image in image_prompts}) > 1:
        size = image_prompts[0].size  # the pipeline takes a batch of one size; CLIP's processor resizes them anyway
        image_prompts = [image.resize(size, PIL.Image.Resampling.BICUBIC) for image in image_prompts]
    output = pipe(
        prompt=args.prompt,
        image_prompts=image_prompts,
        init_image=open_image(args.init_image),
        init_weight=args.init_weight,
        start=args.start,
        height=args.height,
        width=args.width,
        num_inference_steps=args.steps,
        learning_rate=args.learning_rate,
        optimizer=args.optimizer,
        parameterization=args.parameterization,
        cutn=args.cutn,
        cut_pow=args.cut_pow,
        augmentations=torch.nn.Identity() if args.no_augmentations else None,
        autocast_dtype=MIXED_PRECISION[args.mixed_precision],
        generator=torch.Generator().manual_seed(args.seed),
        return_intermediates=args.frames is not None,
        intermediate_interval=args.frame_interval,
    )
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    output.images[0].save(args.output)
    losses = output.losses[:, 0].tolist()
    if losses:
        logger.info(f"loss {losses[0]:.4f} -> {losses[-1]:.4f} over {len(losses)} steps; wrote {args.output}")
    if args.frames is not None:
        export_frames(output.frames[0], args.frames, fps=args.fps)
        logger.info(f"wrote {len(output.frames[0])} frames to {args.frames}")


if __name__ == "__main__":
    main(parse_args())
