"""Write the intermediate frames of a VQGANCLIPPipeline call as a GIF (Pillow) or an MP4 (when an encoder exists)."""

import importlib.util
import os
from typing import List, Union

import PIL.Image
from diffusers.utils import export_to_gif, export_to_video


def mp4_encoder_available() -> bool:
    """Whether diffusers' `export_to_video` has an encoder here: imageio with imageio-ffmpeg, or OpenCV."""
    has_imageio = importlib.util.find_spec("imageio") is not None and importlib.util.find_spec("imageio_ffmpeg")
    return bool(has_imageio) or importlib.util.find_spec("cv2") is not None


def export_frames(frames: List[PIL.Image.Image], path: Union[str, os.PathLike], fps: int = 10) -> str:
    """
    Write `frames` (one image's frames, e.g. `output.frames[0]`) to `path`: `.gif` with Pillow
    (diffusers' `export_to_gif`), `.mp4` with diffusers' `export_to_video`, which needs imageio and
    imageio-ffmpeg (or OpenCV). Returns the path.

    Raises:
        `ValueError`: for no frames, frames that are not PIL images, a non-positive `fps`, or another suffix.
        `ImportError`: for `.mp4` when no encoder is installed.
    """
    path = os.fspath(path)
    if not isinstance(frames, (list, tuple)) or not frames:
        raise ValueError(f"export_frames needs a non-empty list of PIL images, got {type(frames).__name__}.")
    bad = [type(frame).__name__ for frame in frames if not isinstance(frame, PIL.Image.Image)]
    if bad:
        raise ValueError(
            f"export_frames takes the PIL frames of one image (output.frames[i]), got a list holding {bad[0]}."
        )
    if isinstance(fps, bool) or not isinstance(fps, int) or fps < 1:
        raise ValueError(f"fps must be a positive integer, got {fps!r}.")
    suffix = os.path.splitext(path)[1].lower()
    if suffix == ".gif":
        return export_to_gif(list(frames), path, fps=fps)
    if suffix == ".mp4":
        if not mp4_encoder_available():
            raise ImportError(
                f"Writing {path} needs an MP4 encoder: `pip install imageio imageio-ffmpeg` (or opencv-python). "
                "GIFs need none: use a .gif path."
            )
        return export_to_video(list(frames), path, fps=fps)
    raise ValueError(f"export_frames writes .gif or .mp4 files, got {path!r}.")
