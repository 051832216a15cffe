"""TamingPipeline: sample VQGAN code grids with a GPT prior and decode them to images."""

import numbers
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import PIL.Image
import torch
import torch.nn.functional as F
from diffusers import DiffusionPipeline
from diffusers.callbacks import MultiPipelineCallbacks, PipelineCallback
from diffusers.pipelines import pipeline_loading_utils
from diffusers.utils import BaseOutput, logging
from transformers import CLIPModel, CLIPProcessor, GPT2LMHeadModel, PreTrainedTokenizerBase

from ...models.vqgan import VQGANImageProcessor, VQGANModel
from ...models.vqgan.image_processing_vqgan import to_pixel_values
from ...utils.loading import check_local_path, check_pipeline_components, name_unreadable_safetensors
from ..callbacks import check_step_callback
from ..image_inputs import ImageInput, check_image, pil_to_tensor
from .model_card import create_model_card
from .sampling import (
    GeneratorType,
    ImageTokenSampler,
    TokenCallback,
    check_generator,
    check_sampling_arguments,
    check_token_order,
    sample_tokens,
    to_generation_order,
    to_raster_order,
    window_start,
)
from .sampling_settings import SamplingSettings
from .text_vocabulary import TextVocabulary, tokenize_captions
from .text_vocabulary import tokenizer_fingerprint as _fingerprint
from .vocabulary import TokenLayout, class_name_key

logger = logging.get_logger(__name__)

# diffusers resolves a component's library through `LOADABLE_CLASSES`; a library it does not know is
# taken for remote code, and `download` then looks for `<component>/<library>.py` in the repo and fails.
# Registering taming_hf's classes (saved and loaded like any transformers model) makes Hub repo ids load
# without `trust_remote_code`.
_TAMING_LOADABLE = {
    "VQGANModel": ["save_pretrained", "from_pretrained"],
    "VQGANImageProcessor": ["save_pretrained", "from_pretrained"],
}
pipeline_loading_utils.LOADABLE_CLASSES.setdefault("taming_hf", {}).update(_TAMING_LOADABLE)
pipeline_loading_utils.ALL_IMPORTABLE_CLASSES.update(_TAMING_LOADABLE)


def _features(output) -> torch.Tensor:
    """`CLIPModel.get_*_features` return the projected features, or (transformers >= 5) an output whose
    `pooler_output` holds them."""
    return output if isinstance(output, torch.Tensor) else output.pooler_output


def _num_images(image: ImageInput) -> int:
    """How many images a PIL image, a list of them or a (B, C, H, W) tensor holds."""
    if isinstance(image, PIL.Image.Image):
        return 1
    return len(image) if isinstance(image, (list, tuple)) else image.shape[0]


def encode_coordinates(coordinates: torch.Tensor, num_levels: int, downsample_factor: int) -> torch.LongTensor:
    """
    Quantize a `(B, 1, H, W)` coordinate map in [0, 1] to a `(B, H / f, W / f)` code grid as the original's
    `CoordStage` does: area-downsample by `f = downsample_factor`, clamp to [0, 1], scale by `num_levels`
    (its `n_embed`) and round, so codes lie in `[0, num_levels]`.
    """
    height, width = coordinates.shape[-2:]
    size = (height // downsample_factor, width // downsample_factor)
    pooled = F.interpolate(coordinates, size=size, mode="area").clamp(0.0, 1.0)
    return (pooled * num_levels).round().long()[:, 0]


@dataclass
class TamingPipelineOutput(BaseOutput):
    """
    Args:
        images (`List[PIL.Image.Image]`, `np.ndarray` or `torch.Tensor`):
            Decoded images: a list of PIL images, a `(batch, height, width, channels)` array or a
            `(batch, channels, height, width)` tensor in [0, 1]; the index grids for `output_type="latent"`.
        indices (`torch.LongTensor` of shape `(batch, h, w)`):
            The sampled codebook indices in raster order.
        clip_scores (`torch.FloatTensor` of shape `(batch,)`, *optional*):
            With CLIP reranking: each returned image's cosine similarity to its prompt (best first per prompt).
    """

    images: Union[List[PIL.Image.Image], np.ndarray, torch.Tensor]
    indices: torch.LongTensor
    clip_scores: Optional[torch.FloatTensor] = None


class TamingPipeline(DiffusionPipeline):
    r"""
    Taming Transformers sampling: an autoregressive `GPT2LMHeadModel` prior samples a grid of VQGAN
    codebook indices, which the VQGAN decodes to pixels.

    The prior's vocabulary is `[0, K)` image codes, then `num_condition_tokens` condition tokens (class
    ids, the condition VQGAN's codes, coordinate codes, or text tokens) at offset K, then special tokens
    (see [`TokenLayout`]).

    Args:
        vqgan ([`VQGANModel`]):
            Decodes sampled indices to images (and encodes `image` for completion).
        transformer ([`~transformers.GPT2LMHeadModel`]):
            The prior over token sequences `prefix + image codes`.
        condition_vqgan ([`VQGANModel`], *optional*):
            Encodes spatial conditions (segmentation, depth) into a code grid aligned with the image grid.
        tokenizer ([`~transformers.PreTrainedTokenizerBase`], *optional*):
            Tokenizes prompts for `conditioning="text"` (e.g. a `CLIPTokenizer`); the one the prior was trained with.
        clip ([`~transformers.CLIPModel`], *optional*):
            Reranks text-conditional samples (`num_candidates`) by the similarity of its image and text features.
        clip_processor ([`~transformers.CLIPProcessor`], *optional*):
            Prepares prompts and images for `clip`.
        conditioning (`str`, defaults to `"unconditional"`):
            `"unconditional"`, `"class"`, `"spatial"`, `"coordinates"`, `"completion"` or `"text"`.
        num_condition_tokens (`int`, defaults to 0):
            Number of classes, the condition VQGAN's codebook size, `n_embed + 1` coordinate codes, or the number
            of text tokens (`len(text_token_ids)`, or the tokenizer's size when all its ids are kept).
        sos_token_id (`int`, *optional*):
            Start token of unconditional models; defaults to the first id after the condition tokens.
        null_class_token_id (`int`, *optional*):
            The "no class" token of models trained with class dropout; enables `guidance_scale`.
        id2label (`Dict[int, str]`, *optional*):
            Class names, for [`~TamingPipeline.get_label_ids`].
        token_order (`List[int]`, *optional*):
            `token_order[i]` is the raster position of the i-th generated token (the original's
            permuters); `None` means raster order.
        coordinate_downsample_factor (`int`, *optional*):
            For `conditioning="coordinates"`: the factor by which coordinate maps are area-downsampled to
            the condition grid (the original `CoordStage`'s `down_factor`).
        max_text_length (`int`, *optional*):
            For `conditioning="text"`: the length L of every text prefix (longer prompts are truncated).
        text_token_ids (`List[int]`, *optional*):
            The tokenizer ids the prior has tokens for, in order (token `K + j` is tokenizer id
            `text_token_ids[j]`); `None` means all of them (token `K + i` is tokenizer id `i`).
        text_pad_token_id (`int`, *optional*):
            Pads a caption to `max_text_length`; defaults to the first id after the text tokens.
        text_unknown_token_id (`int`, *optional*):
            Stands for tokenizer ids outside `text_token_ids`; defaults to the id after the pad token.
        null_caption (`str`, *optional*):
            The caption a text model was trained to read as "no caption" (caption dropout; usually `""`); enables
            `guidance_scale` without a `negative_prompt`.
        tokenizer_vocab_size (`int`, *optional*), tokenizer_fingerprint (`str`, *optional*):
            `len(tokenizer)` and a hash of the vocabulary of the tokenizer the prior was trained with; default to
            the given tokenizer's, and a different tokenizer is refused.
    """

    model_cpu_offload_seq = "transformer->vqgan->clip"
    _optional_components = ["condition_vqgan", "tokenizer", "clip", "clip_processor"]
    _callback_tensor_inputs = ["latents"]

    def __init__(
        self,
        vqgan: VQGANModel,
        transformer: GPT2LMHeadModel,
        condition_vqgan: Optional[VQGANModel] = None,
        tokenizer: Optional[PreTrainedTokenizerBase] = None,
        clip: Optional[CLIPModel] = None,
        clip_processor: Optional[CLIPProcessor] = None,
        conditioning: str = "unconditional",
        num_condition_tokens: int = 0,
        sos_token_id: Optional[int] = None,
        null_class_token_id: Optional[int] = None,
        id2label: Optional[Dict[Union[int, str], str]] = None,  # JSON stores the keys as strings
        token_order: Optional[List[int]] = None,
        coordinate_downsample_factor: Optional[int] = None,
        max_text_length: Optional[int] = None,
        text_token_ids: Optional[List[int]] = None,
        text_pad_token_id: Optional[int] = None,
        text_unknown_token_id: Optional[int] = None,
        null_caption: Optional[str] = None,
        tokenizer_vocab_size: Optional[int] = None,
        tokenizer_fingerprint: Optional[str] = None,
    ):
        super().__init__()
        if sos_token_id is None and conditioning in ("unconditional", "completion"):
            sos_token_id = vqgan.config.num_embeddings + num_condition_tokens
        if conditioning == "text":
            text_token_ids = None if text_token_ids is None else [int(i) for i in text_token_ids]
            specials = vqgan.config.num_embeddings + num_condition_tokens
            text_pad_token_id = specials if text_pad_token_id is None else text_pad_token_id
            if text_unknown_token_id is None and text_token_ids is not None:
                text_unknown_token_id = specials + 1
            if tokenizer is not None:  # a new pipeline records its tokenizer; a loaded one checks it (below)
                tokenizer_vocab_size = len(tokenizer) if tokenizer_vocab_size is None else tokenizer_vocab_size
                if tokenizer_fingerprint is None:
                    tokenizer_fingerprint = _fingerprint(tokenizer)
        # JSON turns int keys into strings; store them as ints again.
        id2label = None if id2label is None else {int(key): value for key, value in id2label.items()}
        token_order = None if token_order is None else [int(position) for position in token_order]
        self.register_modules(
            vqgan=vqgan,
            transformer=transformer,
            condition_vqgan=condition_vqgan,
            tokenizer=tokenizer,
            clip=clip,
            clip_processor=clip_processor,
        )
        self.register_to_config(
            conditioning=conditioning,
            num_condition_tokens=num_condition_tokens,
            sos_token_id=sos_token_id,
            null_class_token_id=null_class_token_id,
            id2label=id2label,
            token_order=token_order,
            coordinate_downsample_factor=coordinate_downsample_factor,
            max_text_length=max_text_length,
            text_token_ids=text_token_ids,
            text_pad_token_id=text_pad_token_id,
            text_unknown_token_id=text_unknown_token_id,
            null_caption=null_caption,
            tokenizer_vocab_size=tokenizer_vocab_size,
            tokenizer_fingerprint=tokenizer_fingerprint,
        )
        self._check_components()
        self.image_processor = VQGANImageProcessor()

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs):
        """
        [`~diffusers.DiffusionPipeline.from_pretrained`], with clear errors (`OSError`s naming the path) for a
        local folder that does not exist, a component folder without `config.json`, and a corrupt or truncated
        `*.safetensors` file of a component.
        """
        check_local_path(pretrained_model_name_or_path)
        check_pipeline_components(pretrained_model_name_or_path)
        with name_unreadable_safetensors(
            pretrained_model_name_or_path, cache_dir=kwargs.get("cache_dir"), revision=kwargs.get("revision")
        ):
            return super().from_pretrained(pretrained_model_name_or_path, **kwargs)

    # ----------------------------------------------------------------------------------------- setup

    @property
    def layout(self) -> TokenLayout:
        """The vocabulary layout of the prior (image codes, condition tokens, special tokens)."""
        return TokenLayout(
            conditioning=self.config.conditioning,
            num_image_codes=self.vqgan.config.num_embeddings,
            num_condition_tokens=self.config.num_condition_tokens,
            sos_token_id=self.config.sos_token_id,
            null_class_token_id=self.config.null_class_token_id,
            text_pad_token_id=self.config.get("text_pad_token_id"),
            text_unknown_token_id=self.config.get("text_unknown_token_id"),
        )

    @property
    def text_vocabulary(self) -> TextVocabulary:
        """How the tokenizer's ids map to the prior's text tokens (text pipelines only)."""
        config = self.config
        token_ids = config.get("text_token_ids")
        return TextVocabulary(
            offset=self.vqgan.config.num_embeddings,
            tokenizer_vocab_size=config.tokenizer_vocab_size,
            max_text_length=config.max_text_length,
            pad_token_id=config.text_pad_token_id,
            token_ids=None if token_ids is None else tuple(token_ids),
            unknown_token_id=config.get("text_unknown_token_id"),
        )

    @property
    def latent_window(self) -> int:
        """Side of the latent grid the prior was trained on (the VQGAN's training resolution / f)."""
        return self.vqgan.config.resolution // self.vqgan.config.downsample_factor

    def _check_components(self) -> None:
        layout = self.layout  # validates the layout itself
        vocab_size = self.transformer.config.vocab_size
        if vocab_size < layout.vocab_size:
            raise ValueError(
                f"The transformer's vocabulary (vocab_size={vocab_size}) is too small for the token layout: "
                f"{layout.num_image_codes} image codes + {layout.num_condition_tokens} condition tokens + special "
                f"tokens need vocab_size >= {layout.vocab_size}."
            )
        if layout.conditioning == "spatial":
            if self.condition_vqgan is None:
                raise ValueError("conditioning='spatial' needs a condition_vqgan to encode condition images.")
            codes = self.condition_vqgan.config.num_embeddings
            if codes != layout.num_condition_tokens:
                raise ValueError(
                    f"num_condition_tokens={layout.num_condition_tokens} must equal the condition_vqgan's codebook "
                    f"size ({codes}) for conditioning='spatial'."
                )
        factor = self.config.coordinate_downsample_factor
        if layout.conditioning == "coordinates" and (factor is None or factor < 1):
            raise ValueError(
                "conditioning='coordinates' needs a positive coordinate_downsample_factor (the original "
                f"CoordStage's down_factor), got {factor}."
            )
        if layout.conditioning == "text":
            self._check_text_components()
        if (self.clip is None) != (self.clip_processor is None):
            raise ValueError(
                "clip and clip_processor go together: pass both (a CLIPModel and its CLIPProcessor) or neither."
            )

    def _check_text_components(self) -> None:
        """A text pipeline needs its tokenizer, and the tokenizer the prior's text vocabulary was built for."""
        config = self.config
        length = config.max_text_length
        if isinstance(length, bool) or not isinstance(length, numbers.Integral) or length < 1:
            raise ValueError(f"conditioning='text' needs a positive integer max_text_length, got {length!r}.")
        if self.tokenizer is None:
            raise ValueError("conditioning='text' needs a tokenizer component to tokenize prompts.")
        size, fingerprint = len(self.tokenizer), _fingerprint(self.tokenizer)
        name = type(self.tokenizer).__name__
        if size != config.tokenizer_vocab_size:
            raise ValueError(
                f"The tokenizer ({name}, {size} tokens) is not the one the prior's text vocabulary was built for: "
                f"tokenizer_vocab_size={config.tokenizer_vocab_size}. Load the pipeline's own tokenizer."
            )
        if fingerprint != config.tokenizer_fingerprint:
            raise ValueError(
                f"The tokenizer ({name}) has the expected {size} tokens but a different vocabulary (fingerprint "
                f"{fingerprint}, the prior was trained with {config.tokenizer_fingerprint}). Load the pipeline's own "
                "tokenizer."
            )
        vocabulary = self.text_vocabulary  # checks text_token_ids against the tokenizer's size
        if vocabulary.num_tokens != config.num_condition_tokens:
            kept = "all the tokenizer's ids" if vocabulary.token_ids is None else "len(text_token_ids)"
            raise ValueError(
                f"num_condition_tokens={config.num_condition_tokens} must equal the number of text tokens "
                f"({vocabulary.num_tokens}, {kept}) for conditioning='text'."
            )

    def get_label_ids(self, label: Union[str, List[str]]) -> List[int]:
        """
        Map class names to class ids, as `DiTPipeline.get_label_ids` does. Each comma-separated synonym of
        an `id2label` entry ("tench, Tinca tinca") names its class, and names match ignoring case and
        whitespace, so the Hub's "T - shirt / top" and the paper's "T-shirt/top" are the same class.

        Args:
            label (`str` or `List[str]`): class names from the pipeline's `id2label`.

        Returns:
            `List[int]`: the class ids, to pass as `class_labels`.
        """
        labels = [label] if isinstance(label, str) else label
        if not isinstance(labels, (list, tuple)) or not all(isinstance(name, str) for name in labels):
            raise ValueError(
                f"get_label_ids takes class names (strings), got {label!r}; class ids need no lookup: pass them "
                "straight to the pipeline's class_labels."
            )
        id2label = self.config.id2label
        if not id2label:
            raise ValueError("This pipeline has no id2label mapping; pass class ids as integers.")
        exact, by_key = {}, {}
        for class_id, names in sorted(id2label.items()):
            for name in str(names).split(","):
                exact.setdefault(name.strip(), int(class_id))
                by_key.setdefault(class_name_key(name), set()).add(int(class_id))
        ids, unknown = [], []
        for name in labels:
            if name in exact:
                ids.append(exact[name])
                continue
            candidates = sorted(by_key.get(class_name_key(name), ()))
            if len(candidates) > 1:
                raise ValueError(
                    f"Class name {name!r} is ambiguous: ignoring case and spaces it names classes "
                    f"{[id2label[i] for i in candidates]}; spell it exactly as in id2label."
                )
            if candidates:
                ids.append(candidates[0])
            else:
                unknown.append(name)
        if unknown:
            known = [id2label[class_id] for class_id in sorted(id2label)]
            listed = known if len(known) <= 20 else f"e.g. {known[:10]} (all {len(known)} in pipe.config.id2label)"
            raise ValueError(f"Unknown class names {unknown}; known names are {listed}.")
        return ids

    # ------------------------------------------------------------------------------------ conditions

    def _pixels(self, image: ImageInput, channels: int, coordinates: bool = False) -> torch.Tensor:
        """A PIL image, a list of them, or a (B, C, H, W) tensor in [-1, 1] ([0, 1] for coordinates) -> a
        (B, C, H, W) float tensor (checked by `check_inputs`)."""
        if isinstance(image, PIL.Image.Image):
            image = [image]
        if isinstance(image, (list, tuple)):
            values = pil_to_tensor(image, "L" if channels == 1 else "RGB")
            image = values / 255.0 if coordinates else to_pixel_values(values)
        return image.float()

    def _encode(self, vqgan: VQGANModel, image: ImageInput) -> torch.LongTensor:
        """Encode an image input with `vqgan` to (B, h, w) indices."""
        pixels = self._pixels(image, vqgan.config.in_channels)
        return vqgan.encode(pixels.to(device=self._execution_device, dtype=vqgan.dtype)).indices

    def _encode_coordinates(self, image: ImageInput) -> torch.LongTensor:
        """Encode a coordinate map in [0, 1] to (B, h, w) coordinate codes."""
        coordinates = self._pixels(image, 1, coordinates=True)
        factor = self.config.coordinate_downsample_factor
        return encode_coordinates(coordinates, self.config.num_condition_tokens - 1, factor)

    def _latent_size(self, height: Optional[int], width: Optional[int], default: Tuple[int, int]) -> Tuple[int, int]:
        """The (h, w) latent grid of a `height x width` output; `None` sizes come from the `default` grid."""
        factor = self.vqgan.config.downsample_factor
        height = default[0] * factor if height is None else height
        width = default[1] * factor if width is None else width
        return height // factor, width // factor

    def _class_tokens(self, class_labels: Union[int, List[int], torch.Tensor]) -> torch.LongTensor:
        labels = torch.as_tensor(class_labels).reshape(-1).long().cpu()
        return labels + self.layout.condition_offset

    # ---------------------------------------------------------------------------------- input checks

    @staticmethod
    def _check_divisible(name: str, height: int, width: int, factor: int, what: str) -> None:
        if height % factor or width % factor:
            raise ValueError(f"{name} is {height}x{width} pixels, which is not divisible by {what} {factor}.")

    def _check_class_labels(self, class_labels) -> int:
        """Check class ids (integers in range, not names, not empty) and return how many there are."""
        if isinstance(class_labels, str) or (
            isinstance(class_labels, (list, tuple)) and any(isinstance(label, str) for label in class_labels)
        ):
            names = [class_labels] if isinstance(class_labels, str) else list(class_labels)
            raise ValueError(
                f"class_labels must be class ids, got the class names {class_labels!r}; map names to ids with "
                f"pipe.get_label_ids({names!r})."
            )
        if isinstance(class_labels, (torch.Tensor, np.ndarray)):
            labels = torch.as_tensor(class_labels)
            if labels.dtype.is_floating_point or labels.dtype.is_complex or labels.dtype == torch.bool:
                raise ValueError(
                    f"class_labels must be integer class ids, got a {labels.dtype} tensor; cast it with .long() "
                    "if it holds whole numbers."
                )
        else:
            values = list(class_labels) if isinstance(class_labels, (list, tuple)) else [class_labels]
            for value in values:
                if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                    raise ValueError(
                        f"class_labels must be integer class ids, got {value!r} ({type(value).__name__})."
                    )
            labels = torch.tensor(values, dtype=torch.long)
        labels = labels.reshape(-1)
        if labels.numel() == 0:
            raise ValueError("class_labels is empty; pass at least one class id.")
        num_classes = self.layout.num_condition_tokens
        for label in labels.tolist():
            if not 0 <= label < num_classes:
                raise ValueError(
                    f"Class id {label} is outside the model's classes: class_labels must lie in [0, {num_classes})."
                )
        return labels.numel()

    def _check_context(self, prefix_length: int, num_tokens: int, what: str) -> None:
        context = self.transformer.config.n_positions
        if prefix_length + num_tokens - 1 > context:
            raise ValueError(
                f"The transformer's context (n_positions={context}) is too short for {what}: a prefix of "
                f"{prefix_length} tokens plus {num_tokens} image tokens need n_positions >= "
                f"{prefix_length + num_tokens - 1}."
            )

    def _has_null_class(self) -> bool:
        """Whether the model learned a null condition to guide with: a null class, or a null caption (text)."""
        if self.config.conditioning == "text":
            return self.config.get("null_caption") is not None
        return self.config.conditioning == "class" and self.config.null_class_token_id is not None

    def _check_guidance_applies(self, guidance_scale: Optional[float], negative_prompt=None) -> None:
        """An explicit guidance scale other than 1 needs a null row to guide with."""
        if guidance_scale in (None, 1.0) or self._has_null_class():
            return
        if self.config.conditioning == "text":
            if negative_prompt is None:
                raise ValueError(
                    f"guidance_scale={guidance_scale} needs a null caption to guide with: this text model was not "
                    "trained with caption dropout (null_caption is None). Pass a negative_prompt, or use "
                    "guidance_scale=1.0."
                )
            return
        raise ValueError(
            f"guidance_scale={guidance_scale} needs a class-conditional model trained with a null class "
            "(null_class_token_id); this pipeline has none. Use guidance_scale=1.0."
        )

    def _check_prompts(self, prompt, negative_prompt) -> int:
        """Check a text call's prompts (strings, a negative prompt per prompt) and return how many there are."""
        prompts = [prompt] if isinstance(prompt, str) else prompt
        if not isinstance(prompts, (list, tuple)) or not all(isinstance(text, str) for text in prompts):
            raise ValueError(f"prompt must be a string or a list of strings, got {prompt!r}.")
        if not prompts:
            raise ValueError("prompt is an empty list; pass at least one prompt.")
        if negative_prompt is not None:
            negatives = [negative_prompt] if isinstance(negative_prompt, str) else negative_prompt
            if not isinstance(negatives, (list, tuple)) or not all(isinstance(text, str) for text in negatives):
                raise ValueError(f"negative_prompt must be a string or a list of strings, got {negative_prompt!r}.")
            if len(negatives) not in (1, len(prompts)):
                raise ValueError(
                    f"negative_prompt has {len(negatives)} entries for {len(prompts)} prompts; pass one string, or "
                    "one per prompt."
                )
        return len(prompts)

    def _check_reranking(self, num_candidates, num_images_per_prompt: int, clip, clip_processor) -> None:
        """`num_candidates` needs text conditioning and a CLIP (component or argument) with its processor."""
        if num_candidates is None:
            if clip is not None or clip_processor is not None:
                raise ValueError(
                    "clip and clip_processor arguments rerank candidates: pass num_candidates (samples per prompt) "
                    "as well."
                )
            return
        if self.config.conditioning != "text":
            raise ValueError(
                f"num_candidates reranks text-conditional samples by CLIP, but this pipeline's conditioning is "
                f"{self.config.conditioning!r}."
            )
        if isinstance(num_candidates, bool) or not isinstance(num_candidates, numbers.Integral):
            raise ValueError(f"num_candidates must be a positive integer, got {num_candidates!r}.")
        if num_candidates < num_images_per_prompt:
            raise ValueError(
                f"num_candidates={num_candidates} must be >= num_images_per_prompt={num_images_per_prompt}: the best "
                "num_images_per_prompt of num_candidates samples per prompt are kept."
            )
        if (clip is None) != (clip_processor is None):
            raise ValueError("clip and clip_processor go together: pass both (a CLIPModel and its CLIPProcessor).")
        if clip is None and self.clip is None:
            raise ValueError(
                "num_candidates needs a CLIP to rank the candidates: this pipeline has no clip component; pass "
                "clip=CLIPModel.from_pretrained(...) and clip_processor=CLIPProcessor.from_pretrained(...)."
            )

    def check_inputs(
        self,
        class_labels: Optional[Union[int, List[int], torch.Tensor]] = None,
        prompt: Optional[Union[str, List[str]]] = None,
        negative_prompt: Optional[Union[str, List[str]]] = None,
        num_candidates: Optional[int] = None,
        clip: Optional[CLIPModel] = None,
        clip_processor: Optional[CLIPProcessor] = None,
        batch_size: int = 1,
        num_images_per_prompt: int = 1,
        condition_image: Optional[ImageInput] = None,
        image: Optional[ImageInput] = None,
        num_rows_to_keep: Optional[int] = None,
        height: Optional[int] = None,
        width: Optional[int] = None,
        top_k: Optional[int] = None,
        top_p: Optional[float] = None,
        temperature: Optional[float] = None,
        guidance_scale: Optional[float] = None,
        generator: GeneratorType = None,
        output_type: str = "pil",
    ) -> None:
        """
        Check the arguments of [`~TamingPipeline.__call__`] before any work is done: every bad input raises
        a `ValueError` here that names the value and what was expected. `None` sampling arguments mean the
        model's defaults.
        """
        layout = self.layout
        conditioning = layout.conditioning
        if output_type not in ("pil", "np", "pt", "latent"):
            raise ValueError(f"output_type must be one of 'pil', 'np', 'pt', 'latent', got {output_type!r}.")
        for name, value in (("batch_size", batch_size), ("num_images_per_prompt", num_images_per_prompt)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}.")
        check_sampling_arguments(top_k, top_p, temperature, guidance_scale)
        self._check_guidance_applies(guidance_scale, negative_prompt)

        # Inputs this pipeline's conditioning would ignore, then the ones it needs.
        if class_labels is not None and conditioning != "class":
            raise ValueError(
                f"class_labels are only used by class-conditional pipelines, but this one's conditioning is "
                f"{conditioning!r}; got class_labels={class_labels!r}."
            )
        for name, value in (("prompt", prompt), ("negative_prompt", negative_prompt)):
            if value is not None and conditioning != "text":
                raise ValueError(
                    f"{name} is only used by text-conditional pipelines, but this one's conditioning is "
                    f"{conditioning!r}; got {name}={value!r}."
                )
        if conditioning == "text" and prompt is None:
            raise ValueError("This is a text-conditional pipeline: pass a prompt (a string or a list of strings).")
        if negative_prompt is not None:
            resolved = self.sampling_settings(guidance_scale=guidance_scale).guidance_scale
            if resolved == 1.0:
                raise ValueError(
                    "negative_prompt only acts through classifier-free guidance, which is off (guidance_scale=1.0); "
                    "pass a guidance_scale other than 1."
                )
        self._check_reranking(num_candidates, num_images_per_prompt, clip, clip_processor)
        if condition_image is not None and conditioning not in ("spatial", "coordinates"):
            raise ValueError(
                f"condition_image is only used by spatial and coordinate-conditioned pipelines, but this one's "
                f"conditioning is {conditioning!r}."
            )
        if num_rows_to_keep is not None and image is None:
            raise ValueError(
                f"num_rows_to_keep only applies to an image to complete, got num_rows_to_keep={num_rows_to_keep!r} "
                "without an image."
            )
        if conditioning == "completion" and image is None:
            raise ValueError("This is a completion pipeline: pass the image to complete.")
        if conditioning == "class" and class_labels is None:
            raise ValueError("This is a class-conditional pipeline: pass class_labels (ids or get_label_ids).")
        if conditioning == "spatial" and condition_image is None:
            raise ValueError("This is a spatially conditioned pipeline: pass a condition_image.")
        if conditioning == "coordinates" and condition_image is None:
            raise ValueError(
                "This is a coordinate-conditioned pipeline: pass a condition_image, a (batch, 1, height, width) "
                "coordinate map in [0, 1]."
            )

        # Sizes: the image to complete sets the grid, a condition image overrides it, height and width win.
        factor = self.vqgan.config.downsample_factor
        default_size = image_grid = condition_grid = None
        if image is not None:
            image_batch, image_h, image_w = check_image(image, self.vqgan.config.in_channels, "image")
            self._check_divisible("image", image_h, image_w, factor, "its VQGAN's downsampling factor")
            default_size = image_grid = (image_h // factor, image_w // factor)
        if conditioning == "class":
            conditions, unit = self._check_class_labels(class_labels), "class label"
        elif conditioning == "text":
            conditions, unit = self._check_prompts(prompt, negative_prompt), "prompt"
        elif conditioning in ("spatial", "coordinates"):
            if conditioning == "spatial":
                channels = self.condition_vqgan.config.in_channels
                condition_factor = self.condition_vqgan.config.downsample_factor
                what = "its VQGAN's downsampling factor"
            else:
                channels, condition_factor = 1, self.config.coordinate_downsample_factor
                what = "the coordinate_downsample_factor"
            coordinates = conditioning == "coordinates"
            conditions, condition_h, condition_w = check_image(
                condition_image, channels, "condition_image", coordinates=coordinates
            )
            self._check_divisible("condition_image", condition_h, condition_w, condition_factor, what)
            default_size = condition_grid = (condition_h // condition_factor, condition_w // condition_factor)
            unit = "condition image"
        elif image is not None:
            conditions, unit = image_batch, "image to complete"
        else:
            conditions, unit = batch_size, None
        if unit is not None and batch_size not in (1, conditions):
            raise ValueError(
                f"batch_size={batch_size} does not match the {conditions} {unit}(s) given: the batch holds one row "
                f"per {unit}. Leave batch_size at 1 and use num_images_per_prompt for several images per {unit}."
            )

        for name, value in (("height", height), ("width", width)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Integral)):
                raise ValueError(f"{name} must be an integer number of pixels, got {value!r}.")
        default_size = default_size or (self.latent_window, self.latent_window)
        pixel_h = default_size[0] * factor if height is None else height
        pixel_w = default_size[1] * factor if width is None else width
        if pixel_h % factor or pixel_w % factor or pixel_h <= 0 or pixel_w <= 0:
            raise ValueError(
                f"height and width must be positive multiples of the VQGAN's downsampling factor {factor}, "
                f"got {pixel_h}x{pixel_w}."
            )
        grid_h, grid_w = pixel_h // factor, pixel_w // factor
        if condition_grid is not None and condition_grid != (grid_h, grid_w):
            raise ValueError(
                f"condition_image encodes to a {condition_grid[0]}x{condition_grid[1]} code grid, but the image grid "
                f"is {grid_h}x{grid_w}; pass a condition image of "
                f"{grid_h * condition_factor}x{grid_w * condition_factor} pixels."
            )

        # Batch: one row per condition, times num_images_per_prompt (num_candidates when reranking); one image to
        # complete may serve them all.
        rows = conditions * (num_candidates or num_images_per_prompt)
        if image_grid is not None:
            if image_grid != (grid_h, grid_w):
                raise ValueError(f"image encodes to a {image_grid} grid, expected {(grid_h, grid_w)}.")
            image_rows = image_batch * (num_candidates or num_images_per_prompt)
            if image_rows != rows and not (image_rows == 1 and rows > 1):
                raise ValueError(f"image has {image_rows} images, but the batch has {rows} rows.")
            if num_rows_to_keep is not None:
                if isinstance(num_rows_to_keep, bool) or not isinstance(num_rows_to_keep, numbers.Integral):
                    raise ValueError(
                        f"num_rows_to_keep must be an integer number of latent rows, got {num_rows_to_keep!r}."
                    )
                if not 0 <= num_rows_to_keep <= grid_h:
                    raise ValueError(f"num_rows_to_keep must lie in [0, {grid_h}], got {num_rows_to_keep}.")
        check_generator(generator, rows)

        # The prior: its token order and context must fit the grid (or the sliding window).
        num_tokens = grid_h * grid_w
        order = check_token_order(self.config.token_order, num_tokens)
        window = self.latent_window
        text_length = self.config.max_text_length if conditioning == "text" else 1
        if grid_h <= window and grid_w <= window:
            prefix_length = num_tokens if condition_grid is not None else text_length
            self._check_context(prefix_length, num_tokens, f"a {grid_h}x{grid_w} grid")
        else:
            if order is not None and not torch.equal(order, torch.arange(num_tokens)):
                raise ValueError(
                    f"Sliding-window sampling ({grid_h}x{grid_w} grid > {window}x{window} window) needs raster order; "
                    "this pipeline has a token_order."
                )
            window_tokens = min(grid_h, window) * min(grid_w, window)
            prefix_length = window_tokens if condition_grid is not None else text_length
            self._check_context(prefix_length, window_tokens, f"a {window}x{window} sliding window")

    # -------------------------------------------------------------------------------------- sampling

    @property
    def guidance_scale(self) -> float:
        """The classifier-free guidance scale of the current (or last) call; 1 means no guidance."""
        return getattr(self, "_guidance_scale", 1.0)

    @property
    def num_timesteps(self) -> int:
        """The number of tokens the current (or last) call samples: one callback step each."""
        return getattr(self, "_num_timesteps", 0)

    @property
    def interrupt(self) -> bool:
        """Set `pipe._interrupt = True` in a `callback_on_step_end` to stop sampling after that token."""
        return getattr(self, "_interrupt", False)

    def check_callback_inputs(self, callback_on_step_end, callback_on_step_end_tensor_inputs) -> None:
        """Raise a `ValueError` for a callback that is not callable or asks for tensors the loop does not have."""
        check_step_callback(
            callback_on_step_end,
            callback_on_step_end_tensor_inputs,
            self._callback_tensor_inputs,
            "(pipe, step, token_position, callback_kwargs)",
        )

    def _token_callback(
        self,
        callback_on_step_end,
        tensor_inputs: List[str],
        order: Optional[torch.LongTensor],
        sampler: ImageTokenSampler,
    ) -> Optional[TokenCallback]:
        """
        Adapt `callback_on_step_end(pipe, step, token_position, callback_kwargs)` to the sampling loops'
        `(step, index, tokens) -> (replacement, stop)`: `token_position` is the raster position of the token
        just sampled (generation `index` through the token order), and `stop` is `pipe.interrupt`. A guidance
        scale the callback sets (`pipe._guidance_scale`) applies from the next token on.
        """
        if callback_on_step_end is None:
            return None
        positions = None if order is None else order.tolist()
        num_codes = self.layout.num_image_codes

        def on_token(step: int, index: int, tokens: torch.LongTensor):
            position = index if positions is None else positions[index]
            callback_kwargs = {"latents": tokens} if "latents" in tensor_inputs else {}
            outputs = callback_on_step_end(self, step, position, callback_kwargs)
            if sampler.guided:
                sampler.guidance_scale = self.guidance_scale
            if outputs is not None and not isinstance(outputs, dict):
                raise ValueError(
                    f"callback_on_step_end must return a dict of tensors (or None), got {type(outputs).__name__}."
                )
            replacement = None if outputs is None else outputs.get("latents")
            if replacement is not None and replacement is not tokens:
                if not isinstance(replacement, torch.Tensor) or replacement.shape != tokens.shape:
                    shape = tuple(replacement.shape) if isinstance(replacement, torch.Tensor) else replacement
                    raise ValueError(
                        f"callback_on_step_end returned tokens {shape!r}; expected a tensor of the shape "
                        f"{tuple(tokens.shape)} of the tokens it was given."
                    )
                if replacement.is_floating_point() or replacement.is_complex() or replacement.dtype == torch.bool:
                    raise ValueError(
                        f"callback_on_step_end must return integer tokens, got dtype {replacement.dtype}."
                    )
                low, high = replacement.min().item(), replacement.max().item()  # a sync, only on replacement
                if low < 0 or high >= num_codes:
                    raise ValueError(
                        f"callback_on_step_end returned tokens in [{low}, {high}]; image codes lie in [0, {num_codes})."
                    )
            return replacement, self.interrupt

        return on_token

    def _generate(
        self,
        prefix: torch.LongTensor,
        kept: torch.LongTensor,
        num_tokens: int,
        unconditional_prefix: Optional[torch.LongTensor],
        sampler: ImageTokenSampler,
        callback: Optional[TokenCallback] = None,
    ) -> torch.LongTensor:
        """
        Sample image tokens after `prefix + kept` with the model's KV cache, one [`ImageTokenSampler`] step
        per token; guidance runs the null-class rows (`unconditional_prefix + kept`) in the same batch.

        Returns the (B, t) tokens in generation order, `kept` included; `t = num_tokens` unless interrupted.
        """
        with self.progress_bar(total=num_tokens - kept.shape[1]) as progress_bar:
            return sample_tokens(
                sampler, prefix, kept, num_tokens, unconditional_prefix, callback=callback, progress_bar=progress_bar
            )

    def _sliding_window(
        self,
        grid: torch.LongTensor,
        start: int,
        prefix: Optional[torch.LongTensor],
        condition_grid: Optional[torch.LongTensor],
        unconditional_prefix: Optional[torch.LongTensor],
        sampler: ImageTokenSampler,
        callback: Optional[TokenCallback] = None,
    ) -> Tuple[torch.LongTensor, int]:
        """
        Fill a (B, h, w) raster grid larger than the prior's training window, cell by cell from raster
        index `start`: each cell is sampled from a window of the training size around it (the original's
        high-resolution scheme); the cell's logits come from the last of the window's tokens before it.

        Each cell is one [`ImageTokenSampler`] step (the same step as the cached path's). While the window
        stays put, a step only appends the previous cell to the window's KV cache; when the window moves,
        its tokens are different positions of a new sequence, so the window is fed in full again.

        `prefix` (B, P) is the class / start token; for spatial models `condition_grid` (B, h, w) holds
        the condition tokens (already offset), cropped with the same window.

        Returns the grid and the number of raster cells filled (`h * w` unless interrupted).
        """
        height, width = grid.shape[1:]
        flat = grid.view(grid.shape[0], -1)  # the callback's tokens so far: raster order is generation order
        window_h, window_w = min(height, self.latent_window), min(width, self.latent_window)
        cache, cached = None, None  # the window's KV cache and the (top, left, length) it holds
        with self.progress_bar(total=height * width - start) as progress_bar:
            for position in range(start, height * width):
                row, col = divmod(position, width)
                top, left = window_start(row, height, window_h), window_start(col, width, window_w)
                window = grid[:, top : top + window_h, left : left + window_w].reshape(grid.shape[0], -1)
                before = window[:, : (row - top) * window_w + (col - left)]
                if condition_grid is not None:
                    condition = condition_grid[:, top : top + window_h, left : left + window_w]
                    prefix = condition.reshape(grid.shape[0], -1)
                input_ids = torch.cat([prefix, before], dim=1)
                null_ids = None if unconditional_prefix is None else torch.cat([unconditional_prefix, before], dim=1)
                model_ids = sampler.model_inputs(input_ids, null_ids)
                if cached == (top, left, input_ids.shape[1] - 1):
                    model_ids = model_ids[:, -1:]
                else:
                    cache = sampler.new_cache()
                grid[:, row, col] = sampler(model_ids, cache)
                cached = (top, left, input_ids.shape[1])
                progress_bar.update(1)
                if callback is not None:
                    so_far = flat[:, : position + 1]
                    replacement, stop = callback(position - start, position, so_far)
                    if replacement is not None and replacement is not so_far:
                        so_far.copy_(replacement)
                        cached = None  # the window's cached tokens may have changed
                    if stop:
                        return grid, position + 1
        return grid, height * width

    # ------------------------------------------------------------------------------ sampling defaults

    def sampling_settings(
        self,
        top_k: Optional[int] = None,
        top_p: Optional[float] = None,
        temperature: Optional[float] = None,
        guidance_scale: Optional[float] = None,
    ) -> SamplingSettings:
        """
        The settings a call samples with: each argument that is not `None`, else the transformer's
        `generation_config` field (the model's recommended default), else no top-k, no top-p, temperature 1
        and guidance 1 (off). Guidance from the `generation_config` applies only when the pipeline has a null
        class.
        """
        settings = SamplingSettings.resolve(
            self.transformer.generation_config,
            has_null_class=self._has_null_class(),
            top_k=top_k,
            top_p=top_p,
            temperature=temperature,
            guidance_scale=guidance_scale,
        )
        try:  # a hand-edited generation_config.json could hold any value
            check_sampling_arguments(settings.top_k, settings.top_p, settings.temperature, settings.guidance_scale)
        except ValueError as error:
            raise ValueError(f"The transformer's generation_config holds a bad sampling default: {error}") from None
        return settings

    def set_default_sampling(
        self,
        top_k: Optional[int] = None,
        top_p: Optional[float] = None,
        temperature: Optional[float] = None,
        guidance_scale: Optional[float] = None,
    ) -> None:
        """
        Make these the model's recommended sampling settings: they are written to the transformer's
        `generation_config` (with `do_sample=True`), used by calls that leave the argument at `None`, and saved
        with `save_pretrained` as `transformer/generation_config.json`. `None` means "no top-k", "no top-p",
        temperature 1 and guidance 1 (off).
        """
        check_sampling_arguments(top_k, top_p, temperature, guidance_scale)
        self._check_guidance_applies(guidance_scale)
        settings = SamplingSettings(
            top_k=top_k,
            top_p=top_p,
            temperature=1.0 if temperature is None else temperature,
            guidance_scale=1.0 if guidance_scale is None else guidance_scale,
        )
        settings.write_to(self.transformer.generation_config)

    # ------------------------------------------------------------------------------------ call steps

    def encode_prompt(self, prompt: Union[str, List[str]]) -> torch.LongTensor:
        """
        Prompts -> their `(B, max_text_length)` text prefixes: the tokenizer's ids (its special tokens included)
        mapped into the prior's vocabulary, then pad tokens. A prompt longer than `max_text_length` tokens is
        truncated by the tokenizer (keeping its end token) with a warning; tokenizer ids the prior has no token
        for become the unknown-text token, with a warning.
        """
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        vocabulary = self.text_vocabulary
        ids, lengths = tokenize_captions(self.tokenizer, prompts, vocabulary.max_text_length)
        for text, kept, length in zip(prompts, ids, lengths):
            if length > vocabulary.max_text_length:
                shown = self.tokenizer.decode(kept, skip_special_tokens=True)
                logger.warning(
                    f"Prompt {text!r} is {length} tokens long, longer than this pipeline's max_text_length="
                    f"{vocabulary.max_text_length}; it is truncated to {shown!r}."
                )
        unknown = vocabulary.unknown_ids(token for row in ids for token in row)
        if unknown:
            tokens = self.tokenizer.convert_ids_to_tokens(unknown)
            logger.warning(
                f"The prior has no text token for {len(unknown)} of the prompts' tokens ({tokens[:10]}): the training "
                "captions never used them, and they are read as the unknown-text token."
            )
        return vocabulary.prefix(ids)

    def prepare_condition(
        self,
        class_labels: Optional[Union[int, List[int], torch.Tensor]],
        condition_image: Optional[ImageInput],
        batch_size: int,
        num_images_per_prompt: int,
        prompt: Optional[Union[str, List[str]]] = None,
    ) -> Tuple[Optional[torch.LongTensor], Optional[torch.LongTensor]]:
        """
        The condition of each batch row, `num_images_per_prompt` rows per class label, prompt or condition image.

        Returns:
            `(start_tokens, condition_grid)`: for unconditional, completion and class models, the `(rows, 1)`
            start or class token and `None`; for text models the `(rows, max_text_length)` text prefixes and
            `None`; for spatial and coordinate models, `None` and the `(rows, h, w)` grid of condition tokens
            (already offset into the vocabulary), aligned with the image grid.
        """
        layout = self.layout
        if layout.conditioning == "text":
            return self.encode_prompt(prompt).repeat_interleave(num_images_per_prompt, dim=0), None
        if layout.conditioning == "spatial":
            condition_codes = self._encode(self.condition_vqgan, condition_image).cpu()
        elif layout.conditioning == "coordinates":
            condition_codes = self._encode_coordinates(condition_image).cpu()
        else:
            if layout.conditioning == "class":
                start_tokens = self._class_tokens(class_labels)[:, None]
            else:
                start_tokens = torch.full((batch_size, 1), layout.sos_token_id, dtype=torch.long)
            return start_tokens.repeat_interleave(num_images_per_prompt, dim=0), None
        condition_grid = condition_codes + layout.condition_offset
        return None, condition_grid.repeat_interleave(num_images_per_prompt, dim=0)

    def prepare_null_condition(
        self,
        settings: SamplingSettings,
        start_tokens: Optional[torch.LongTensor],
        negative_prompt: Optional[Union[str, List[str]]],
        num_images_per_prompt: int,
    ) -> Optional[torch.LongTensor]:
        """
        The prefix of the null rows of classifier-free guidance, shaped like `start_tokens`: the null class
        token, or for text the `negative_prompt` (one for all prompts, or one per prompt), else the
        `null_caption` the model learned by caption dropout. `None` without guidance.
        """
        if settings.guidance_scale == 1.0:
            return None
        rows = start_tokens.shape[0]
        if self.config.conditioning != "text":
            return torch.full((rows, 1), self.layout.null_class_token_id, dtype=torch.long)
        null = self.config.null_caption if negative_prompt is None else negative_prompt
        null_prefix = self.encode_prompt(null)
        if null_prefix.shape[0] == 1:
            return null_prefix.expand(rows, -1)
        return null_prefix.repeat_interleave(num_images_per_prompt, dim=0)

    def prepare_completion(
        self, image: Optional[ImageInput], rows: int, num_images_per_prompt: int
    ) -> Optional[torch.LongTensor]:
        """
        The `(rows, h, w)` raster code grid of the images to complete (one image may serve every row), or
        `None` without `image`.
        """
        if image is None:
            return None
        kept_grid = self._encode(self.vqgan, image).cpu().repeat_interleave(num_images_per_prompt, dim=0)
        if kept_grid.shape[0] == 1 and rows > 1:
            kept_grid = kept_grid.expand(rows, -1, -1)
        return kept_grid

    def sample_indices(
        self,
        start_tokens: Optional[torch.LongTensor],
        condition_grid: Optional[torch.LongTensor],
        kept_grid: Optional[torch.LongTensor],
        num_rows_to_keep: int,
        grid_size: Tuple[int, int],
        settings: SamplingSettings,
        generator: GeneratorType,
        callback_on_step_end: Optional[Callable] = None,
        callback_on_step_end_tensor_inputs: Sequence[str] = ("latents",),
        null_prefix: Optional[torch.LongTensor] = None,
    ) -> torch.LongTensor:
        """
        Sample the `(rows, h, w)` code grid (`h, w = grid_size`) after the condition, keeping the first
        `num_rows_to_keep` rows of `kept_grid`: in one pass with the KV cache when the grid fits the prior's
        window, else with a sliding window. Both run one [`ImageTokenSampler`] step per token; with guidance,
        `null_prefix` (see `prepare_null_condition`) starts the null rows. Cells left unsampled by an interrupt
        are -1.
        """
        device = self._execution_device
        layout = self.layout
        grid_h, grid_w = grid_size
        rows = (start_tokens if condition_grid is None else condition_grid).shape[0]
        num_tokens, num_kept = grid_h * grid_w, num_rows_to_keep * grid_w
        if null_prefix is not None:
            null_prefix = null_prefix.to(device)
        sampler = ImageTokenSampler(
            self.transformer,
            layout.num_image_codes,
            rows,
            settings.top_k,
            settings.top_p,
            settings.temperature,
            settings.guidance_scale,
            generator,
            device,
        )
        order = check_token_order(self.config.token_order, num_tokens)
        self._num_timesteps = num_tokens - num_kept
        callback = self._token_callback(callback_on_step_end, callback_on_step_end_tensor_inputs, order, sampler)
        if grid_h <= self.latent_window and grid_w <= self.latent_window:
            prompt_ids = start_tokens if condition_grid is None else condition_grid.reshape(rows, -1)
            kept_tokens = torch.zeros(rows, 0, dtype=torch.long)
            if kept_grid is not None:
                kept_tokens = to_generation_order(kept_grid.reshape(rows, -1), order)[:, :num_kept]
            generated = self._generate(
                prompt_ids.to(device),
                kept_tokens.to(device),
                num_tokens,
                null_prefix,
                sampler,
                callback,
            )
            if generated.shape[1] < num_tokens:  # interrupted: the cells not sampled are -1
                generated = F.pad(generated, (0, num_tokens - generated.shape[1]), value=-1)
            return to_raster_order(generated, order).reshape(rows, grid_h, grid_w)
        grid = torch.zeros(rows, grid_h, grid_w, dtype=torch.long, device=device)
        if kept_grid is not None:
            grid[:, :num_rows_to_keep] = kept_grid[:, :num_rows_to_keep].to(device)
        indices, filled = self._sliding_window(
            grid,
            num_kept,
            None if start_tokens is None else start_tokens.to(device),
            None if condition_grid is None else condition_grid.to(device),
            null_prefix,
            sampler,
            callback,
        )
        indices.view(rows, -1)[:, filled:] = -1  # interrupted: the cells not sampled are -1
        return indices

    def decode_latents(
        self, indices: torch.LongTensor, output_type: str = "pil"
    ) -> Union[List[PIL.Image.Image], np.ndarray, torch.Tensor]:
        """Decode `(B, h, w)` code indices to images of `output_type` (`"latent"` returns the indices)."""
        if output_type == "latent":
            return indices
        # cells an interrupt left unsampled (-1) decode as code 0
        pixels = self.vqgan.decode_indices(indices.clamp(min=0).to(self._execution_device))
        return self.image_processor.postprocess(pixels, output_type=output_type)

    def clip_similarity(
        self, prompts: List[str], images: List[PIL.Image.Image], clip: CLIPModel, clip_processor: CLIPProcessor
    ) -> torch.FloatTensor:
        """
        `(P, N)` cosine similarities of N images to P prompts, from any `CLIPModel`'s public
        `get_text_features` / `get_image_features` (prompts truncated to its text context).
        """
        device = clip.device
        context = clip.config.text_config.max_position_embeddings
        text = clip_processor(text=prompts, padding=True, truncation=True, max_length=context, return_tensors="pt")
        pixels = clip_processor(images=[image.convert("RGB") for image in images], return_tensors="pt")
        text_features = _features(
            clip.get_text_features(
                input_ids=text["input_ids"].to(device), attention_mask=text["attention_mask"].to(device)
            )
        )
        image_features = _features(clip.get_image_features(pixel_values=pixels["pixel_values"].to(device, clip.dtype)))
        text_features = F.normalize(text_features.float(), dim=-1)
        image_features = F.normalize(image_features.float(), dim=-1)
        return (text_features @ image_features.T).cpu()

    def rerank(
        self,
        prompts: List[str],
        pixels: torch.Tensor,
        num_images_per_prompt: int,
        clip: CLIPModel,
        clip_processor: CLIPProcessor,
    ) -> Tuple[torch.LongTensor, torch.FloatTensor]:
        """
        Keep the `num_images_per_prompt` candidates of each prompt that CLIP finds most similar to it, as
        DALL-E did. `pixels` are the `(P * C, channels, H, W)` decoded candidates in [-1, 1], C per prompt.

        Returns:
            The kept rows of `pixels` (per prompt, best first) and their `(P * num_images_per_prompt,)` scores.
        """
        num_prompts = len(prompts)
        candidates = pixels.shape[0] // num_prompts
        images = self.image_processor.postprocess(pixels, output_type="pil")
        similarity = self.clip_similarity(prompts, images, clip, clip_processor)  # (P, P * C)
        own = similarity.view(num_prompts, num_prompts, candidates)[
            torch.arange(num_prompts), torch.arange(num_prompts)
        ]
        scores, best = own.topk(num_images_per_prompt, dim=-1)  # sorted, best first
        rows = (best + torch.arange(num_prompts)[:, None] * candidates).reshape(-1)
        return rows, scores.reshape(-1)

    @torch.no_grad()
    def __call__(
        self,
        class_labels: Optional[Union[int, List[int], torch.Tensor]] = None,
        prompt: Optional[Union[str, List[str]]] = None,
        negative_prompt: Optional[Union[str, List[str]]] = None,
        num_candidates: Optional[int] = None,
        clip: Optional[CLIPModel] = None,
        clip_processor: Optional[CLIPProcessor] = None,
        batch_size: int = 1,
        num_images_per_prompt: int = 1,
        condition_image: Optional[ImageInput] = None,
        image: Optional[ImageInput] = None,
        num_rows_to_keep: Optional[int] = None,
        height: Optional[int] = None,
        width: Optional[int] = None,
        top_k: Optional[int] = None,
        top_p: Optional[float] = None,
        temperature: Optional[float] = None,
        guidance_scale: Optional[float] = None,
        generator: GeneratorType = None,
        output_type: str = "pil",
        return_dict: bool = True,
        callback_on_step_end: Optional[Union[Callable, PipelineCallback, MultiPipelineCallbacks]] = None,
        callback_on_step_end_tensor_inputs: Union[List[str], Tuple[str, ...]] = ("latents",),
    ) -> Union[TamingPipelineOutput, Tuple]:
        r"""
        Sample images.

        `None` sampling arguments (`top_k`, `top_p`, `temperature`, `guidance_scale`) mean the model's default:
        the transformer's `generation_config` field when set (see [`~TamingPipeline.set_default_sampling`]),
        else no top-k, no top-p, temperature 1 and no guidance.

        Examples:

        ```py
        >>> import torch
        >>> from taming_hf import TamingPipeline

        >>> pipe = TamingPipeline.from_pretrained("pretrained/taming-fashion-mnist")
        >>> class_ids = pipe.get_label_ids(["Sneaker", "Bag"])
        >>> generator = torch.Generator().manual_seed(0)
        >>> # the model's recommended settings (top_k 32, guidance 2.0), from its generation_config
        >>> images = pipe(class_labels=class_ids, num_images_per_prompt=2, generator=generator).images
        >>> images[0].save("sneaker.png")

        ```

        Text-conditional pipelines take prompts instead of class labels:

        ```py
        >>> images = pipe(prompt="a red apple", num_images_per_prompt=4, guidance_scale=3.0).images  # doctest: +SKIP
        >>> best = pipe(prompt="a red apple", num_images_per_prompt=2, num_candidates=16).images  # doctest: +SKIP
        ```

        Args:
            class_labels (`int`, `List[int]` or an integer `torch.Tensor`, *optional*):
                Class ids for class-conditional models (see `get_label_ids` for names); one image each.
            prompt (`str` or `List[str]`, *optional*):
                Captions for text-conditional models; a list batches them. A prompt longer than the config's
                `max_text_length` tokens is truncated with a warning.
            negative_prompt (`str` or `List[str]`, *optional*):
                With guidance, the caption the samples are guided away from (one, or one per prompt); `None` means
                the model's `null_caption` (the empty caption it learned by caption dropout).
            num_candidates (`int`, *optional*):
                Text models: sample this many candidates per prompt and return the `num_images_per_prompt` that
                CLIP finds most similar to the prompt, best first (DALL-E's reranking); `None` samples
                `num_images_per_prompt` and does not rerank.
            clip (`CLIPModel`, *optional*), clip_processor (`CLIPProcessor`, *optional*):
                The CLIP that reranks (any `CLIPModel`, e.g. `openai/clip-vit-base-patch32`); default to the
                pipeline's `clip` and `clip_processor` components.
            batch_size (`int`, defaults to 1):
                Number of images for unconditional models; otherwise the class labels, prompts, condition images or
                images to complete set the batch, and a `batch_size` other than 1 or their number raises.
            num_images_per_prompt (`int`, defaults to 1):
                Images per class label, prompt, condition image or completion image.
            condition_image (`PIL.Image.Image`, list of them, or `torch.Tensor` of shape `(B, C, H, W)` in [-1, 1]):
                Spatial condition (segmentation / depth map) for `conditioning="spatial"`; its code grid from
                `condition_vqgan` must match the image grid, and sets the output size by default. For
                `conditioning="coordinates"`, a `(B, 1, H, W)` coordinate map in [0, 1] (or PIL `"L"` images,
                scaled to [0, 1]) whose size is the image grid times `coordinate_downsample_factor`.
            image (`PIL.Image.Image`, list of them, or `torch.Tensor` of shape `(B, C, H, W)` in [-1, 1]):
                Image to complete: its first `num_rows_to_keep` rows of tokens are kept, the rest is sampled.
            num_rows_to_keep (`int`, *optional*):
                Latent rows of `image` to keep; `None` keeps half of them. Only with `image`.
            height, width (`int`, *optional*):
                Output size in pixels (multiples of the VQGAN's downsampling factor); `None` means the condition
                image's or image's size, else the VQGAN's training resolution. Larger grids than the prior's
                window are sampled with a sliding window.
            top_k (`int`, *optional*):
                Keep the k most likely image codes (`>= 0`, 0 disables it); `None` means the model's default.
            top_p (`float`, *optional*):
                Nucleus sampling threshold in (0, 1]; `None` means the model's default.
            temperature (`float`, *optional*):
                A positive finite divisor of the logits; `None` means the model's default (1 if unset).
            guidance_scale (`float`, *optional*):
                Classifier-free guidance for class-conditional models with a null class, and text models with a
                null caption or a `negative_prompt` (finite, >= 0; 1 disables it, 0 samples the null row); `None`
                means the model's default (1 if unset).
            generator (`torch.Generator` or a list, one per image (one per candidate when reranking), *optional*):
                Makes sampling deterministic; `None` samples from the global RNG.
            output_type (`str`, defaults to `"pil"`):
                `"pil"`, `"np"`, `"pt"` or `"latent"` (the `(B, h, w)` index grids).
            return_dict (`bool`, defaults to `True`):
                Return a [`TamingPipelineOutput`] instead of a tuple `(images, indices)`.
            callback_on_step_end (`Callable`, `PipelineCallback` or `MultiPipelineCallbacks`, *optional*):
                Called after each sampled token (all rows at once) as
                `callback_on_step_end(pipe, step, token_position, callback_kwargs)`: `step` counts sampled tokens
                from 0, `token_position` is the token's raster position in the latent grid, and
                `callback_kwargs["latents"]` is the `(B, t)` image tokens so far in generation order (given ones of
                `image` included). It returns a dict (or `None`); a `"latents"` entry of the same shape replaces
                the tokens so far, and sampling goes on from them. Setting `pipe._interrupt = True` stops sampling
                after this token: the cells not sampled yet are -1 in `indices` (and decode as code 0).
            callback_on_step_end_tensor_inputs (`List[str]`, defaults to `("latents",)`):
                The tensors passed in `callback_kwargs`, from `pipe._callback_tensor_inputs`.

        Returns:
            [`TamingPipelineOutput`] or `tuple`: `images` (see `output_type`), the sampled `indices` of shape
            `(B, h, w)` and, when reranking, the `clip_scores`; a tuple `(images, indices)` when `return_dict=False`.
        """
        # 1. Check inputs and resolve the sampling settings (call arguments > the model's defaults).
        if isinstance(callback_on_step_end, (PipelineCallback, MultiPipelineCallbacks)):
            callback_on_step_end_tensor_inputs = callback_on_step_end.tensor_inputs
        self.check_callback_inputs(callback_on_step_end, callback_on_step_end_tensor_inputs)
        self.check_inputs(
            class_labels=class_labels,
            prompt=prompt,
            negative_prompt=negative_prompt,
            num_candidates=num_candidates,
            clip=clip,
            clip_processor=clip_processor,
            batch_size=batch_size,
            num_images_per_prompt=num_images_per_prompt,
            condition_image=condition_image,
            image=image,
            num_rows_to_keep=num_rows_to_keep,
            height=height,
            width=width,
            top_k=top_k,
            top_p=top_p,
            temperature=temperature,
            guidance_scale=guidance_scale,
            generator=generator,
            output_type=output_type,
        )
        settings = self.sampling_settings(top_k, top_p, temperature, guidance_scale)

        # 2. The condition of each row: start / class / text tokens, or a condition grid, and the null rows'
        # prefix for guidance. For unconditional and completion models the images to complete set the batch;
        # reranking samples num_candidates rows per prompt.
        if image is not None and self.config.conditioning in ("unconditional", "completion"):
            batch_size = _num_images(image)
        per_prompt = num_candidates or num_images_per_prompt
        start_tokens, condition_grid = self.prepare_condition(
            class_labels, condition_image, batch_size, per_prompt, prompt
        )
        null_prefix = self.prepare_null_condition(settings, start_tokens, negative_prompt, per_prompt)
        rows = (start_tokens if condition_grid is None else condition_grid).shape[0]

        # 3. The code grids of the images to complete; the grid size (condition image > image > window).
        kept_grid = self.prepare_completion(image, rows, per_prompt)
        default_size = (self.latent_window, self.latent_window)
        for grid in (kept_grid, condition_grid):
            if grid is not None:
                default_size = tuple(grid.shape[1:])
        grid_size = self._latent_size(height, width, default_size)
        if num_rows_to_keep is None:
            num_rows_to_keep = grid_size[0] // 2 if kept_grid is not None else 0

        # 4. Sample the code grid.
        self._guidance_scale, self._interrupt = settings.guidance_scale, False
        indices = self.sample_indices(
            start_tokens,
            condition_grid,
            kept_grid,
            num_rows_to_keep,
            grid_size,
            settings,
            generator,
            callback_on_step_end,
            callback_on_step_end_tensor_inputs,
            null_prefix,
        )

        # 5. Rerank the candidates with CLIP (best num_images_per_prompt per prompt), decode, free offloaded
        # models, return.
        clip_scores = None
        if num_candidates is not None:
            prompts = [prompt] if isinstance(prompt, str) else list(prompt)
            pixels = self.vqgan.decode_indices(indices.clamp(min=0).to(self._execution_device))
            clip, clip_processor = (self.clip, self.clip_processor) if clip is None else (clip, clip_processor)
            kept, clip_scores = self.rerank(prompts, pixels, num_images_per_prompt, clip, clip_processor)
            indices = indices[kept.to(indices.device)]
            images = (
                indices if output_type == "latent" else self.image_processor.postprocess(pixels[kept], output_type)
            )
        else:
            images = self.decode_latents(indices, output_type)
        self.maybe_free_model_hooks()
        if not return_dict:
            return images, indices
        return TamingPipelineOutput(images=images, indices=indices, clip_scores=clip_scores)

    # --------------------------------------------------------------------------------------- sharing

    def create_model_card(self, repo_id: Optional[str] = None, metrics: Optional[Dict[str, float]] = None):
        """
        A `huggingface_hub.ModelCard` describing this pipeline: usage snippet, configuration and,
        when given, evaluation metrics (e.g. `{"FID": 9.6}`).
        """
        return create_model_card(self, repo_id=repo_id, metrics=metrics)

    def push_to_hub(
        self,
        repo_id: str,
        *,
        metrics: Optional[Dict[str, float]] = None,
        commit_message: Optional[str] = None,
        private: Optional[bool] = None,
        token: Optional[str] = None,
        create_pr: bool = False,
        **kwargs,
    ) -> str:
        """
        Save the pipeline with a generated model card (`README.md`) and upload it to `repo_id`.

        Returns:
            The URL of the commit.
        """
        import tempfile

        from huggingface_hub import HfApi

        api = HfApi(token=token)
        repo_id = api.create_repo(repo_id, private=private, exist_ok=True).repo_id
        with tempfile.TemporaryDirectory() as folder:
            self.save_pretrained(folder, **kwargs)
            self.create_model_card(repo_id, metrics=metrics).save(f"{folder}/README.md")
            commit = api.upload_folder(
                repo_id=repo_id,
                folder_path=folder,
                commit_message=commit_message or "Upload TamingPipeline",
                create_pr=create_pr,
            )
        return str(commit)
