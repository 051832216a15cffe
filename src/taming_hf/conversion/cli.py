"""Command line of `scripts/convert_original_checkpoint.py`."""

import argparse
import sys
from typing import List, Optional

from .convert import ConversionError, convert_checkpoint
from .safe_pickle import UnsafeCheckpointError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=(
            "Convert an original CompVis taming-transformers checkpoint (VQModel, GumbelVQ, latent-diffusion VQ "
            "autoencoder, or Net2NetTransformer) to a VQGANModel or TamingPipeline directory. The .ckpt is read "
            "without executing any pickled code."
        )
    )
    parser.add_argument("--checkpoint", required=True, help="Path to the original .ckpt file.")
    parser.add_argument("--config", help="The original YAML config. Required for transformers; optional for VQGANs.")
    parser.add_argument("--output_dir", required=True, help="Where to write the converted model.")
    parser.add_argument(
        "--resolution",
        type=int,
        help="VQGAN checkpoints only: resolution to record (default: the config's, else 256).",
    )
    parser.add_argument(
        "--keep_discriminator",
        action="store_true",
        help="Also write the PatchGAN discriminator (to resume GAN training) to OUTPUT_DIR/discriminator.",
    )
    parser.add_argument(
        "--id2label", help="JSON file mapping class ids to names (class-conditional transformers), for get_label_ids."
    )
    parser.add_argument("--push_to_hub", metavar="REPO_ID", help="Upload the result to this Hub repository.")
    parser.add_argument("--verbose", action="store_true", help="List every key used and dropped.")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        convert_checkpoint(
            args.checkpoint,
            args.output_dir,
            config=args.config,
            resolution=args.resolution,
            keep_discriminator=args.keep_discriminator,
            push_to_hub=args.push_to_hub,
            verbose=args.verbose,
            id2label=args.id2label,
        )
    except (ConversionError, UnsafeCheckpointError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0
