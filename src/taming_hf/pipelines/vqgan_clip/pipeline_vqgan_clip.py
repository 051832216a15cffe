"""VQGANCLIPPipeline: optimise a VQGAN code grid so that CLIP's embedding of the decoded image matches prompts."""

import contextlib
import importlib
import math
import numbers
import os
from dataclasses import dataclass
from typing import Callable, Dict, Iterator, List, Optional, Tuple, Type, Union

import numpy as np
import PIL.Image
import torch
import torch.nn.functional as F
from diffusers import DiffusionPipeline
from diffusers.callbacks import MultiPipelineCallbacks, PipelineCallback
from diffusers.utils import BaseOutput
from transformers import CLIPModel, CLIPProcessor, PreTrainedModel, ProcessorMixin
from transformers.modeling_layers import GradientCheckpointingLayer

from ...models.vqgan import VQGANImageProcessor, VQGANModel
from ...models.vqgan.image_processing_vqgan import to_pixel_values
from ...utils.loading import check_config_file, check_local_path, name_unreadable_safetensors
from ..callbacks import check_step_callback
from ..image_inputs import ImageInput, check_image, pil_to_tensor
from ..taming import pipeline_taming  # noqa: F401  registers taming_hf's classes with diffusers' loader
from .cutouts import MakeCutouts
from .losses import clamp_with_grad, spherical_distance
from .parameterization import PARAMETERIZATIONS
from .prompts import check_weights_sum, parse_prompts

ComponentSource = Union[str, List[str]]

OPTIMIZERS: Dict[str, Type[torch.optim.Optimizer]] = {
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "sgd": torch.optim.SGD,
}
STARTS = ("codes", "noise")
COMPONENTS = ("vqgan", "clip", "clip_processor")


@dataclass
class VQGANCLIPPipelineOutput(BaseOutput):
    """
    Args:
        images (`List[PIL.Image.Image]`, `np.ndarray` or `torch.Tensor`):
            The optimised images: PIL images, a `(batch, height, width, 3)` array or a `(batch, 3, height, width)`
            tensor in [0, 1]; the index grids for `output_type="latent"`.
        indices (`torch.LongTensor` of shape `(batch, h, w)`):
            The final codebook indices.
        losses (`torch.FloatTensor` of shape `(steps_run, batch)`):
            Each image's loss at every step, before that step's update.
        frames (`List[List[PIL.Image.Image]]`, *optional*):
            With `return_intermediates=True`, `frames[b]` is image `b` at step 0, every `intermediate_interval`
            steps and at the end; write them with [`export_frames`].
    """

    images: Union[List[PIL.Image.Image], np.ndarray, torch.Tensor]
    indices: torch.LongTensor
    losses: torch.FloatTensor
    frames: Optional[List[List[PIL.Image.Image]]] = None


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_finite_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


@contextlib.contextmanager
def frozen(*models: torch.nn.Module) -> Iterator[None]:
    """Turn off `requires_grad` of every parameter of `models` for the block, then restore each flag."""
    flags = [(parameter, parameter.requires_grad) for model in models for parameter in model.parameters()]
    try:
        for parameter, _ in flags:
            parameter.requires_grad_(False)
        yield
    finally:
        for parameter, flag in flags:
            parameter.requires_grad_(flag)


@contextlib.contextmanager
def checkpointing_in_eval(*models: PreTrainedModel) -> Iterator[None]:
    """
    Let transformers' gradient checkpointing run in eval mode, for models where it is enabled.

    A `GradientCheckpointingLayer` checkpoints only when its own `training` flag is set, but the pipeline
    keeps its models in eval mode (no dropout). Setting the flag on those layers alone, not on their
    children, checkpoints them without turning dropout on.
    """
    layers = []
    for model in models:
        if getattr(model, "is_activation_checkpointing", False):
            layers += [m for m in model.modules() if isinstance(m, GradientCheckpointingLayer) and not m.training]
    try:
        for layer in layers:
            layer.training = True
        yield
    finally:
        for layer in layers:
            layer.training = False


class VQGANCLIPPipeline(DiffusionPipeline):
    r"""
    VQGAN+CLIP: optimise a grid of VQGAN codes so that CLIP's embeddings of random cutouts of the decoded
    image are close (in spherical distance) to weighted text and image prompts. Only the latents change;
    the models stay frozen.

    Args:
        vqgan ([`VQGANModel`]):
            An RGB VQGAN (`in_channels = out_channels = 3`): decodes the optimised codes, encodes init images.
        clip ([`~transformers.CLIPModel`]):
            Scores cutouts against the prompts.
        clip_processor ([`~transformers.CLIPProcessor`]):
            CLIP's tokenizer and image processor: its `image_mean` / `image_std` normalise the cutouts, and its
            crop size must be the CLIP vision model's `image_size`.
        component_sources (`Dict[str, str]`, *optional*):
            Components stored elsewhere: a name of `vqgan`, `clip` or `clip_processor` -> a local folder or Hub
            repo id, or `[folder_or_repo_id, subfolder]`. `save_pretrained` writes no folder for them and
            `from_pretrained` loads them from there; a path that starts with `./` or `../` is relative to the
            pipeline's folder.
    """

    model_cpu_offload_seq = "clip->vqgan"
    _callback_tensor_inputs = ["latents", "loss"]

    def __init__(
        self,
        vqgan: VQGANModel,
        clip: CLIPModel,
        clip_processor: CLIPProcessor,
        component_sources: Optional[Dict[str, ComponentSource]] = None,
    ):
        super().__init__()
        self.register_modules(vqgan=vqgan, clip=clip, clip_processor=clip_processor)
        self.register_to_config(component_sources=self._check_sources(component_sources))
        self._check_components()
        self.image_processor = VQGANImageProcessor()

    # ----------------------------------------------------------------------------------------- setup

    @staticmethod
    def _check_sources(sources: Optional[Dict[str, ComponentSource]]) -> Optional[Dict[str, ComponentSource]]:
        if sources is None:
            return None
        if not isinstance(sources, dict):
            raise ValueError(f"component_sources must be a dict of component name -> source, got {sources!r}.")
        for name, source in sources.items():
            if name not in COMPONENTS:
                raise ValueError(f"component_sources names {name!r}; the components are {list(COMPONENTS)}.")
            is_pair = (
                isinstance(source, (list, tuple)) and len(source) == 2 and all(isinstance(s, str) for s in source)
            )
            if not (isinstance(source, str) or is_pair):
                raise ValueError(
                    f"component_sources[{name!r}] must be a folder or Hub repo id, or [folder_or_repo_id, subfolder], "
                    f"got {source!r}."
                )
        return {name: source if isinstance(source, str) else list(source) for name, source in sources.items()}

    @property
    def cut_size(self) -> int:
        """The side of CLIP's input images, which every cutout is resized to."""
        return self.clip.config.vision_config.image_size

    def _check_components(self) -> None:
        """Raise a `ValueError` for a VQGAN, CLIP and processor that cannot work together."""
        vqgan_config = self.vqgan.config
        if vqgan_config.in_channels != 3 or vqgan_config.out_channels != 3:
            raise ValueError(
                "VQGANCLIPPipeline needs an RGB VQGAN, since CLIP scores 3-channel images: the vqgan has "
                f"in_channels={vqgan_config.in_channels}, out_channels={vqgan_config.out_channels}; expected 3 and 3."
            )
        vision = self.clip.config.vision_config
        if vision.num_channels != 3:
            raise ValueError(f"The CLIP vision model takes {vision.num_channels}-channel images; expected RGB (3).")
        image_processor = self.clip_processor.image_processor
        crop = image_processor.crop_size if image_processor.do_center_crop else image_processor.size
        crop = (crop.get("height"), crop.get("width"))
        if crop != (vision.image_size, vision.image_size):
            raise ValueError(
                f"The clip_processor prepares {crop[0]}x{crop[1]} images, but the CLIP vision model takes "
                f"{vision.image_size}x{vision.image_size} (vision_config.image_size), the size of every cutout; use "
                "the processor saved with this CLIP."
            )
        for name in ("image_mean", "image_std"):
            values = getattr(image_processor, name)
            if values is None or len(values) != 3:
                raise ValueError(f"The clip_processor's {name} must hold 3 values (RGB), got {values!r}.")
        vocab_size, tokenizer_size = self.clip.config.text_config.vocab_size, len(self.clip_processor.tokenizer)
        if tokenizer_size > vocab_size:
            raise ValueError(
                f"The clip_processor's tokenizer has {tokenizer_size} tokens, but the CLIP text model's vocabulary "
                f"holds {vocab_size} (text_config.vocab_size); use the tokenizer saved with this CLIP."
            )

    # --------------------------------------------------------------------------------- save and load

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs):
        """
        [`~diffusers.DiffusionPipeline.from_pretrained`], which also loads the components that the folder's
        `component_sources` reference (unless passed as keyword arguments), with clear errors (`OSError`s
        naming the path) for a missing local folder, a component folder without its config, and a corrupt
        `*.safetensors` file.
        """
        check_local_path(pretrained_model_name_or_path)
        index = cls.load_config(
            pretrained_model_name_or_path,
            **{key: kwargs[key] for key in ("cache_dir", "revision", "token", "local_files_only") if key in kwargs},
        )
        sources = cls._check_sources(index.get("component_sources")) or {}
        for name, source in sources.items():
            if name not in kwargs:
                kwargs[name] = cls._load_component(
                    pretrained_model_name_or_path, name, index.get(name), source, kwargs
                )
        if os.path.isdir(pretrained_model_name_or_path):
            for name in ("vqgan", "clip"):  # the models (a processor folder has no config.json)
                if name not in kwargs:
                    check_config_file(
                        pretrained_model_name_or_path, name, (index.get(name) or [None, name])[1] or name
                    )
        with name_unreadable_safetensors(
            pretrained_model_name_or_path, cache_dir=kwargs.get("cache_dir"), revision=kwargs.get("revision")
        ):
            return super().from_pretrained(pretrained_model_name_or_path, **kwargs)

    @staticmethod
    def _load_component(folder, name: str, entry, source: ComponentSource, kwargs: dict):
        """Load component `name` of class `entry = [library, class_name]` (from model_index.json) from `source`."""
        if not (isinstance(entry, (list, tuple)) and len(entry) == 2 and all(isinstance(e, str) for e in entry)):
            raise OSError(
                f"model_index.json of {folder} references component {name!r} but names no [library, class] for it "
                f"(got {entry!r})."
            )
        path, subfolder = (source, "") if isinstance(source, str) else source
        if path.startswith(("./", "../")):
            if not os.path.isdir(folder):
                raise OSError(
                    f"component_sources[{name!r}]={path!r} is relative, which only works for a local folder."
                )
            path = os.path.normpath(os.path.join(folder, path))
        check_local_path(path, f"component_sources[{name!r}]")
        # only model and processor classes of the two libraries the components come from
        library = importlib.import_module(entry[0]) if entry[0] in ("transformers", "taming_hf") else None
        component_class = getattr(library, entry[1], None)
        if not (isinstance(component_class, type) and issubclass(component_class, (PreTrainedModel, ProcessorMixin))):
            raise OSError(
                f"model_index.json of {folder} names {entry!r} for component {name!r}; expected a transformers or "
                "taming_hf model or processor class."
            )
        load_kwargs = {"subfolder": subfolder} if subfolder else {}
        if issubclass(component_class, PreTrainedModel) and kwargs.get("torch_dtype") is not None:
            load_kwargs["dtype"] = kwargs["torch_dtype"]
        return component_class.from_pretrained(path, **load_kwargs)

    def save_pretrained(self, save_directory: Union[str, os.PathLike], **kwargs) -> None:
        """
        [`~diffusers.DiffusionPipeline.save_pretrained`]; components listed in `config.component_sources` are
        not written, only referenced from `model_index.json`.
        """
        sources = self.config.component_sources or {}
        if not sources:
            return super().save_pretrained(save_directory, **kwargs)
        # diffusers' push_to_hub passes its defaults (variant=None, ...) along
        unsupported = sorted(key for key, value in kwargs.items() if key != "safe_serialization" and value is not None)
        if unsupported:
            raise ValueError(f"save_pretrained with component_sources takes no {unsupported}; save without them.")
        os.makedirs(save_directory, exist_ok=True)
        for name in COMPONENTS:
            if name not in sources:
                getattr(self, name).save_pretrained(os.path.join(save_directory, name))
        self.save_config(save_directory)

    # ---------------------------------------------------------------------------------- input checks

    def _pixels(self, image: ImageInput, size: Optional[Tuple[int, int]] = None) -> torch.Tensor:
        """A PIL image (resized to `size = (height, width)` if given), a list of them, or a `(B, 3, H, W)` tensor
        in [-1, 1] -> a `(B, 3, H, W)` float tensor in [-1, 1]."""
        if isinstance(image, PIL.Image.Image):
            image = [image]
        if isinstance(image, (list, tuple)):
            if size is not None:
                image = [item.resize((size[1], size[0]), PIL.Image.Resampling.LANCZOS) for item in image]
            image = to_pixel_values(pil_to_tensor(image, "RGB"))
        return image.float()

    def output_size(
        self, init_image: Optional[ImageInput], height: Optional[int], width: Optional[int]
    ) -> Tuple[int, int]:
        """The `(height, width)` in pixels of a call: the arguments, else the init image's size, else the VQGAN's
        training resolution."""
        default = (self.vqgan.config.resolution, self.vqgan.config.resolution)
        if isinstance(init_image, PIL.Image.Image):
            default = (init_image.height, init_image.width)
        elif isinstance(init_image, (list, tuple)) and init_image and isinstance(init_image[0], PIL.Image.Image):
            default = (init_image[0].height, init_image[0].width)
        elif isinstance(init_image, torch.Tensor) and init_image.ndim == 4:
            default = tuple(init_image.shape[-2:])
        return (default[0] if height is None else height, default[1] if width is None else width)

    def check_inputs(
        self,
        prompt=None,
        prompt_weights=None,
        image_prompts=None,
        image_prompt_weights=None,
        init_image=None,
        init_weight=0.0,
        start="codes",
        height=None,
        width=None,
        num_images_per_prompt=1,
        num_inference_steps=300,
        learning_rate=0.1,
        optimizer="adam",
        parameterization="latents",
        cutn=32,
        cut_pow=1.0,
        autocast_dtype=None,
        generator=None,
        output_type="pil",
        intermediate_interval=10,
    ) -> None:
        """
        Check the arguments of [`~VQGANCLIPPipeline.__call__`] before any work is done: every bad input raises a
        `ValueError` here that names the value and what was expected.
        """
        prompts = parse_prompts(prompt, prompt_weights)
        num_image_prompts = self._check_image_prompts(image_prompts, image_prompt_weights)
        if not prompts and not num_image_prompts:
            raise ValueError(
                "VQGANCLIPPipeline needs something to steer towards: pass a prompt (e.g. 'a red apple:1 | blurry:-0.5') "
                "or image_prompts."
            )
        weights = [p.weight for p in prompts] + list(image_prompt_weights or [1.0] * num_image_prompts)
        check_weights_sum(weights)

        for name, value, low in (
            ("num_images_per_prompt", num_images_per_prompt, 1),
            ("num_inference_steps", num_inference_steps, 0),
            ("cutn", cutn, 1),
            ("intermediate_interval", intermediate_interval, 1),
        ):
            if not _is_int(value) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}.")
        if not _is_finite_real(learning_rate) or learning_rate <= 0:
            raise ValueError(f"learning_rate must be a positive finite number, got {learning_rate!r}.")
        if not _is_finite_real(cut_pow) or cut_pow <= 0:
            raise ValueError(f"cut_pow must be a positive finite number, got {cut_pow!r}.")
        if not _is_finite_real(init_weight) or init_weight < 0:
            raise ValueError(f"init_weight must be a finite number >= 0, got {init_weight!r}.")
        if isinstance(optimizer, str):
            if optimizer not in OPTIMIZERS:
                raise ValueError(
                    f"optimizer must be one of {list(OPTIMIZERS)} or a torch.optim class, got {optimizer!r}."
                )
        elif not (isinstance(optimizer, type) and issubclass(optimizer, torch.optim.Optimizer)):
            raise ValueError(f"optimizer must be one of {list(OPTIMIZERS)} or a torch.optim class, got {optimizer!r}.")
        if parameterization not in PARAMETERIZATIONS:
            raise ValueError(f"parameterization must be one of {list(PARAMETERIZATIONS)}, got {parameterization!r}.")
        if start not in STARTS:
            raise ValueError(f"start must be one of {list(STARTS)}, got {start!r}.")
        if autocast_dtype not in (None, torch.float16, torch.bfloat16):
            raise ValueError(f"autocast_dtype must be None, torch.float16 or torch.bfloat16, got {autocast_dtype!r}.")
        if output_type not in ("pil", "np", "pt", "latent"):
            raise ValueError(f"output_type must be one of 'pil', 'np', 'pt', 'latent', got {output_type!r}.")
        if generator is not None and not isinstance(generator, torch.Generator):
            raise ValueError(f"generator must be a torch.Generator or None, got {type(generator).__name__}.")

        for name, value in (("height", height), ("width", width)):
            if value is not None and not _is_int(value):
                raise ValueError(f"{name} must be an integer number of pixels, got {value!r}.")
        out_h, out_w = self.output_size(init_image, height, width)
        factor = self.vqgan.config.downsample_factor
        if out_h <= 0 or out_w <= 0 or out_h % factor or out_w % factor:
            raise ValueError(
                f"height and width must be positive multiples of the VQGAN's downsampling factor {factor}, got "
                f"{out_h}x{out_w}."
            )
        if init_image is not None:
            # the checks (type, channels, finite [-1, 1] floats) and messages of TamingPipeline's images
            batch, image_h, image_w = check_image(init_image, 3, "init_image")
            if isinstance(init_image, torch.Tensor) and (image_h, image_w) != (out_h, out_w):
                raise ValueError(
                    f"init_image is {image_h}x{image_w} pixels, but the output is {out_h}x{out_w} (height x width); "
                    "pass a tensor of the output size, or a PIL image (resized to it)."
                )
            if batch not in (1, num_images_per_prompt):
                raise ValueError(
                    f"init_image holds {batch} images; pass one (shared by every image) or num_images_per_prompt="
                    f"{num_images_per_prompt}."
                )

    @staticmethod
    def _check_image_prompts(image_prompts, image_prompt_weights) -> int:
        """Check image prompts (PIL images or `(B, 3, H, W)` tensors in [-1, 1]) and return how many there are."""
        if image_prompts is None:
            if image_prompt_weights is not None:
                raise ValueError(f"image_prompt_weights={image_prompt_weights!r} were given without image_prompts.")
            return 0
        count, _, _ = check_image(image_prompts, 3, "image_prompts")
        if image_prompt_weights is not None:
            weights = list(image_prompt_weights)
            if len(weights) != count:
                raise ValueError(f"Got {count} image prompts but {len(weights)} image_prompt_weights.")
            for weight in weights:
                if not _is_finite_real(weight):
                    raise ValueError(f"image_prompt_weights must be finite numbers, got {weight!r}.")
        return count

    # ------------------------------------------------------------------------------------ properties

    @property
    def num_timesteps(self) -> int:
        """The number of optimisation steps of the current (or last) call: one callback each."""
        return getattr(self, "_num_timesteps", 0)

    @property
    def interrupt(self) -> bool:
        """Set `pipe._interrupt = True` in a `callback_on_step_end` to stop after that step."""
        return getattr(self, "_interrupt", False)

    def check_callback_inputs(self, callback_on_step_end, callback_on_step_end_tensor_inputs) -> None:
        """Raise a `ValueError` for a callback that is not callable or asks for tensors the loop does not have."""
        check_step_callback(
            callback_on_step_end,
            callback_on_step_end_tensor_inputs,
            self._callback_tensor_inputs,
            "(pipe, step, timestep, callback_kwargs)",
        )

    # ------------------------------------------------------------------------------------ call steps

    @torch.no_grad()
    def encode_prompts(
        self, prompt, prompt_weights, image_prompts, image_prompt_weights
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """
        CLIP embeddings of the text and image prompts and their weights divided by the weights' sum.

        Returns:
            `(targets, weights)`: `(P, E)` unit-norm embeddings and `(P,)` weights.
        """
        device = self._execution_device
        prompts = parse_prompts(prompt, prompt_weights)
        embeds, weights = [], [p.weight for p in prompts]
        if prompts:
            tokenizer = self.clip_processor.tokenizer
            max_length = self.clip.config.text_config.max_position_embeddings
            tokens = tokenizer(
                [p.text for p in prompts], padding=True, truncation=True, max_length=max_length, return_tensors="pt"
            ).to(device)
            embeds.append(self.clip.get_text_features(**tokens).pooler_output.float())
        if image_prompts is not None:
            pixels = (self._pixels(image_prompts) + 1) / 2  # the processor resizes, crops and normalises [0, 1]
            pixel_values = self.clip_processor.image_processor(
                images=list(pixels), do_rescale=False, return_tensors="pt"
            ).pixel_values
            pixel_values = pixel_values.to(device=device, dtype=self.clip.dtype)
            embeds.append(self.clip.get_image_features(pixel_values=pixel_values).pooler_output.float())
            weights += list(image_prompt_weights or [1.0] * len(pixel_values))
        total = check_weights_sum(weights)
        targets = F.normalize(torch.cat(embeds), dim=-1)
        return targets, torch.tensor(weights, device=device) / total

    @torch.no_grad()
    def prepare_start(
        self,
        init_image: Optional[ImageInput],
        start: str,
        size: Tuple[int, int],
        batch: int,
        generator: Optional[torch.Generator],
    ) -> torch.LongTensor:
        """
        The `(batch, h, w)` code grid the optimisation starts from: the init image's codes, random codes
        (`start="codes"`), or the codes of uniform noise pixels (`start="noise"`).
        """
        device = self._execution_device
        grid = self.vqgan.latent_shape(*size)
        random_device = generator.device if generator is not None else torch.device("cpu")
        if init_image is not None:
            pixels = self._pixels(init_image, size if not isinstance(init_image, torch.Tensor) else None)
        elif start == "noise":
            pixels = torch.rand(batch, 3, *size, generator=generator, device=random_device) * 2 - 1
        else:
            codes = self.vqgan.config.num_embeddings
            return torch.randint(codes, (batch, *grid), generator=generator, device=random_device).to(device)
        indices = self.vqgan.encode(pixels.to(device=device, dtype=self.vqgan.dtype)).indices
        return indices.expand(batch, -1, -1) if indices.shape[0] == 1 else indices

    def clip_loss(
        self, images: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor, cutouts: MakeCutouts, generator
    ) -> torch.Tensor:
        """
        `(B, 3, H, W)` images in [0, 1] -> `(B,)` losses: the weighted spherical distance of CLIP's embedding of
        each cutout to each target, averaged over the cutouts.
        """
        batch = images.shape[0]
        crops = cutouts(images, generator)
        processor = self.clip_processor.image_processor
        mean = torch.tensor(processor.image_mean, device=crops.device).view(1, 3, 1, 1)
        std = torch.tensor(processor.image_std, device=crops.device).view(1, 3, 1, 1)
        pixel_values = ((crops - mean) / std).to(self.clip.dtype)
        embeds = self.clip.get_image_features(pixel_values=pixel_values).pooler_output.float()
        distances = spherical_distance(embeds.view(cutouts.cutn, batch, 1, -1), targets)  # (cutn, B, P)
        return (distances.mean(dim=0) * weights).sum(dim=-1)

    def decode_latents(self, quantized: torch.Tensor) -> torch.Tensor:
        """`(B, D, h, w)` code vectors (`vqgan.get_code_vectors()` space) -> `(B, 3, H, W)` images in [-1, 1]
        (roughly; the decoder has no tanh)."""
        return self.vqgan.decode_code_vectors(quantized.to(self.vqgan.dtype))

    @contextlib.contextmanager
    def _seeded_global_rng(self, generator: Optional[torch.Generator]) -> Iterator[None]:
        """
        torchvision's augmentations draw from the global RNG: seed it from `generator` inside the block, so
        seeded calls repeat exactly, and give the caller's global RNG state back afterwards.
        """
        if generator is None:
            yield
            return
        device = self._execution_device
        devices = [device] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            seed = int(torch.randint(2**62, (1,), generator=generator, device=generator.device))
            torch.manual_seed(seed)
            yield

    def __call__(
        self,
        prompt: Optional[Union[str, List[str]]] = None,
        prompt_weights: Optional[List[float]] = None,
        image_prompts: Optional[ImageInput] = None,
        image_prompt_weights: Optional[List[float]] = None,
        init_image: Optional[ImageInput] = None,
        init_weight: float = 0.0,
        start: str = "codes",
        height: Optional[int] = None,
        width: Optional[int] = None,
        num_images_per_prompt: int = 1,
        num_inference_steps: int = 300,
        learning_rate: float = 0.1,
        optimizer: Union[str, Type[torch.optim.Optimizer]] = "adam",
        parameterization: str = "latents",
        cutn: int = 32,
        cut_pow: float = 1.0,
        augmentations: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
        autocast_dtype: Optional[torch.dtype] = None,
        generator: Optional[torch.Generator] = None,
        output_type: str = "pil",
        return_dict: bool = True,
        return_intermediates: bool = False,
        intermediate_interval: int = 10,
        callback_on_step_end: Optional[Union[Callable, PipelineCallback, MultiPipelineCallbacks]] = None,
        callback_on_step_end_tensor_inputs: Union[List[str], Tuple[str, ...]] = ("latents",),
    ) -> Union[VQGANCLIPPipelineOutput, Tuple]:
        r"""
        Generate (or edit) images by optimising VQGAN codes towards the prompts.

        Examples:

        ```py
        >>> import torch
        >>> from taming_hf import VQGANCLIPPipeline

        >>> pipe = VQGANCLIPPipeline.from_pretrained("pretrained/vqgan-clip-emoji")
        >>> generator = torch.Generator().manual_seed(0)
        >>> out = pipe("red apple:1 | blurry:-0.3", num_inference_steps=100, generator=generator)
        >>> out.images[0].save("apple.png")
        ```

        Args:
            prompt (`str` or `List[str]`, *optional*):
                Text prompts, `"text:weight | text:weight"` (weights default to 1; negative ones push away), or a
                list of such strings. With `prompt_weights` the strings are taken literally.
            prompt_weights (`List[float]`, *optional*):
                One weight per string of `prompt`.
            image_prompts (`PIL.Image.Image`, list of them, or a `(P, 3, H, W)` tensor in [-1, 1], *optional*):
                Images whose CLIP embeddings are targets too.
            image_prompt_weights (`List[float]`, *optional*):
                One weight per image prompt (default 1). All weights are divided by their sum, which must be > 0.
            init_image (`PIL.Image.Image`, list of them, or a `(B, 3, H, W)` tensor in [-1, 1], *optional*):
                Start from this image's codes (editing). PIL images are resized to `height x width`; tensors must
                have that size.
            init_weight (`float`, defaults to 0):
                Weight of the mean squared distance of the latents to the start's, which keeps the result close to
                the init image (or the random start).
            start (`str`, defaults to `"codes"`):
                Without an init image: `"codes"` starts from uniformly random codes, `"noise"` from the codes of
                uniform noise pixels.
            height, width (`int`, *optional*):
                Output size, multiples of the VQGAN's downsampling factor; default the init image's size, else the
                VQGAN's training resolution.
            num_images_per_prompt (`int`, defaults to 1):
                Images optimised side by side from independent starts.
            num_inference_steps (`int`, defaults to 300):
                Optimisation steps; 0 returns the start.
            learning_rate (`float`, defaults to 0.1):
                The optimizer's step size.
            optimizer (`str` or a `torch.optim.Optimizer` subclass, defaults to `"adam"`):
                `"adam"`, `"adamw"`, `"sgd"`, or a class called as `optimizer([latents], lr=learning_rate)`.
            parameterization (`str`, defaults to `"latents"`):
                `"latents"`: continuous latents, nearest-code quantised (straight-through) and clamped to the
                codebook's range; `"logits"`: logits over the codebook per cell (straight-through categorical).
            cutn (`int`, defaults to 32):
                Cutouts per image and step; fewer trade quality for memory and time.
            cut_pow (`float`, defaults to 1.0):
                Exponent of the cutout-size distribution; above 1 favours small cutouts.
            augmentations (`Callable`, *optional*):
                Applied to each `(3, S, S)` cutout in [0, 1]; `None` means flips, affine and perspective warps and
                colour jitter ([`default_augmentations`]); `torch.nn.Identity()` turns them off.
            autocast_dtype (`torch.dtype`, *optional*):
                `torch.float16` or `torch.bfloat16` runs the VQGAN and CLIP under autocast (less memory); the
                latents and the optimizer stay in float32.
            generator (`torch.Generator`, *optional*):
                Makes the start, the cutouts and the augmentations deterministic.
            output_type (`str`, defaults to `"pil"`):
                `"pil"`, `"np"`, `"pt"` or `"latent"` (the `(B, h, w)` index grids).
            return_dict (`bool`, defaults to `True`):
                Return a [`VQGANCLIPPipelineOutput`] instead of a tuple `(images, indices)`.
            return_intermediates (`bool`, defaults to `False`):
                Also return PIL `frames` of each image every `intermediate_interval` steps.
            intermediate_interval (`int`, defaults to 10):
                Steps between two frames.
            callback_on_step_end (`Callable`, `PipelineCallback` or `MultiPipelineCallbacks`, *optional*):
                Called after each step as `callback_on_step_end(pipe, step, step, callback_kwargs)`:
                `callback_kwargs["latents"]` is the optimised tensor (latents or logits) after the update,
                `callback_kwargs["loss"]` the `(B,)` losses of the step. A returned `"latents"` of the same shape
                replaces the optimised values; `pipe._interrupt = True` stops after this step.
            callback_on_step_end_tensor_inputs (`List[str]`, defaults to `("latents",)`):
                The tensors passed in `callback_kwargs`, from `pipe._callback_tensor_inputs`.

        Returns:
            [`VQGANCLIPPipelineOutput`] or `tuple`: `images`, the final `indices`, each step's `losses` and, with
            `return_intermediates`, `frames`; a tuple `(images, indices)` when `return_dict=False`.

        Memory: fewer `cutn`, `autocast_dtype`, and gradient checkpointing of the decoder
        (`pipe.vqgan.activation_checkpointing_enable()`) or of CLIP (`pipe.clip.activation_checkpointing_enable()`),
        which the pipeline honours although its models stay in eval mode.
        """
        # 1. Check inputs.
        if isinstance(callback_on_step_end, (PipelineCallback, MultiPipelineCallbacks)):
            callback_on_step_end_tensor_inputs = callback_on_step_end.tensor_inputs
        self.check_callback_inputs(callback_on_step_end, callback_on_step_end_tensor_inputs)
        self.check_inputs(
            prompt=prompt,
            prompt_weights=prompt_weights,
            image_prompts=image_prompts,
            image_prompt_weights=image_prompt_weights,
            init_image=init_image,
            init_weight=init_weight,
            start=start,
            height=height,
            width=width,
            num_images_per_prompt=num_images_per_prompt,
            num_inference_steps=num_inference_steps,
            learning_rate=learning_rate,
            optimizer=optimizer,
            parameterization=parameterization,
            cutn=cutn,
            cut_pow=cut_pow,
            autocast_dtype=autocast_dtype,
            generator=generator,
            output_type=output_type,
            intermediate_interval=intermediate_interval,
        )
        size = self.output_size(init_image, height, width)
        device = self._execution_device

        with frozen(self.vqgan, self.clip), self._seeded_global_rng(generator):
            # 2. Encode the prompts.
            targets, weights = self.encode_prompts(prompt, prompt_weights, image_prompts, image_prompt_weights)

            # 3. The starting codes and what is optimised.
            start_indices = self.prepare_start(init_image, start, size, num_images_per_prompt, generator)
            codebook = self.vqgan.get_code_vectors().detach().float().to(device)
            latents = PARAMETERIZATIONS[parameterization](codebook, start_indices)
            anchor = latents.anchor().detach().clone()
            optimizer_class = OPTIMIZERS[optimizer] if isinstance(optimizer, str) else optimizer
            optim = optimizer_class([latents.parameter], lr=learning_rate)
            cutouts = MakeCutouts(self.cut_size, cutn, cut_pow, augmentations)

            # 4. The optimisation loop.
            self._num_timesteps, self._interrupt = num_inference_steps, False
            frames = [[] for _ in range(num_images_per_prompt)] if return_intermediates else None
            losses = []
            autocast = torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None)
            with self.progress_bar(total=num_inference_steps) as progress_bar, torch.enable_grad():
                for step in range(num_inference_steps):
                    if frames is not None and step % intermediate_interval == 0:
                        self._add_frames(frames, latents)
                    with autocast, checkpointing_in_eval(self.vqgan, self.clip):
                        quantized, _ = latents.quantized()
                        images = clamp_with_grad((self.decode_latents(quantized).float() + 1) / 2)
                        loss = self.clip_loss(images, targets, weights, cutouts, generator)
                    if init_weight:
                        loss = loss + init_weight * (latents.anchor() - anchor).pow(2).mean(dim=(1, 2, 3))
                    optim.zero_grad(set_to_none=True)
                    loss.sum().backward()  # a sum: each image's gradient does not depend on the batch
                    optim.step()
                    latents.after_step()
                    losses.append(loss.detach())
                    progress_bar.update()
                    if callback_on_step_end is not None:
                        self._run_callback(
                            callback_on_step_end, callback_on_step_end_tensor_inputs, step, latents, loss
                        )
                    if self.interrupt:
                        break

            # 5. Decode the result.
            with torch.no_grad():
                quantized, indices = latents.quantized()
                if frames is not None:
                    self._add_frames(frames, latents)
                if output_type == "latent":
                    images = indices
                else:
                    images = self.image_processor.postprocess(self.decode_latents(quantized), output_type=output_type)
        losses = torch.stack(losses) if losses else torch.zeros(0, num_images_per_prompt, device=device)
        self.maybe_free_model_hooks()
        if not return_dict:
            return images, indices
        return VQGANCLIPPipelineOutput(images=images, indices=indices, losses=losses, frames=frames)

    @torch.no_grad()
    def _add_frames(self, frames: List[List[PIL.Image.Image]], latents) -> None:
        quantized, _ = latents.quantized()
        for image_frames, image in zip(frames, self.image_processor.postprocess(self.decode_latents(quantized))):
            image_frames.append(image)

    def _run_callback(self, callback, tensor_inputs, step: int, latents, loss: torch.Tensor) -> None:
        """Call `callback(pipe, step, step, callback_kwargs)`; a returned `"latents"` replaces the optimised values."""
        available = {"latents": latents.parameter.detach(), "loss": loss.detach()}
        outputs = callback(self, step, step, {name: available[name] for name in tensor_inputs})
        if outputs is not None and not isinstance(outputs, dict):
            raise ValueError(
                f"callback_on_step_end must return a dict of tensors (or None), got {type(outputs).__name__}."
            )
        replacement = None if outputs is None else outputs.get("latents")
        if replacement is None or replacement is available["latents"]:
            return
        if not isinstance(replacement, torch.Tensor) or replacement.shape != latents.parameter.shape:
            shape = tuple(replacement.shape) if isinstance(replacement, torch.Tensor) else replacement
            raise ValueError(
                f"callback_on_step_end returned latents {shape!r}; expected a tensor of shape "
                f"{tuple(latents.parameter.shape)}."
            )
        with torch.no_grad():
            latents.parameter.copy_(replacement)
            latents.after_step()
