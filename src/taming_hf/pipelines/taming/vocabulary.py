"""The prior's vocabulary layout: which token ids mean image codes, conditions and specials.

The latent prior is a plain `GPT2LMHeadModel`; its vocabulary is laid out as

    [0, num_image_codes)                                  image codes (the VQGAN's codebook)
    [condition_offset, condition_offset + num_condition_tokens)
                                                          condition tokens: class ids, the
                                                          condition VQGAN's codes, or
                                                          coordinate codes
    sos_token_id                                          start token of unconditional models
    null_class_token_id                                   "no class" for classifier-free guidance
    text_pad_token_id                                     fills a caption up to max_text_length (text)
    text_unknown_token_id                                 a tokenizer id the prior has no token for (text)

with `condition_offset = num_image_codes`. For text conditioning the condition tokens are the caption's
tokenizer ids, mapped into the prior's vocabulary by a `TextVocabulary` (see `text_vocabulary.py`). The layout is stored in the pipeline's config (never
as code constants), so a converted original checkpoint and a freshly trained one share it.
"""

from dataclasses import asdict, dataclass
from typing import Optional

CONDITIONING_KINDS = ("unconditional", "class", "spatial", "coordinates", "completion", "text")


@dataclass(frozen=True)
class TokenLayout:
    """
    Args:
        conditioning (`str`):
            `"unconditional"` (an SOS prefix), `"class"` (one class token), `"spatial"` (the
            condition VQGAN's code grid, aligned with the image grid), `"coordinates"` (a grid of
            quantized coordinates, aligned with the image grid: the original's FacesHQ models) or
            `"completion"` (unconditional, sampled from a partial image) or `"text"` (a caption's tokens,
            padded to a fixed length).
        num_image_codes (`int`):
            Codebook size K of the image VQGAN; image codes are token ids `[0, K)`.
        num_condition_tokens (`int`):
            Number of classes, the condition VQGAN's codebook size, the number of coordinate levels, or the
            number of text tokens; 0 for unconditional models.
        sos_token_id (`int`, *optional*):
            The start token that prefixes unconditional sequences.
        null_class_token_id (`int`, *optional*):
            The "no class" token a class-conditional model was trained with (class dropout);
            required for classifier-free guidance.
        text_pad_token_id (`int`, *optional*):
            The token that pads a caption to `max_text_length`; required for text layouts.
        text_unknown_token_id (`int`, *optional*):
            The token of tokenizer ids outside the prior's text vocabulary (only when the text vocabulary
            keeps a subset of the tokenizer's ids).
    """

    conditioning: str
    num_image_codes: int
    num_condition_tokens: int = 0
    sos_token_id: Optional[int] = None
    null_class_token_id: Optional[int] = None
    text_pad_token_id: Optional[int] = None
    text_unknown_token_id: Optional[int] = None

    def __post_init__(self):
        if self.conditioning not in CONDITIONING_KINDS:
            raise ValueError(f"conditioning must be one of {CONDITIONING_KINDS}, got {self.conditioning!r}.")
        if self.num_image_codes <= 0:
            raise ValueError(f"num_image_codes must be positive, got {self.num_image_codes}.")
        if self.conditioning in ("class", "spatial", "coordinates", "text") and self.num_condition_tokens <= 0:
            raise ValueError(
                f"A {self.conditioning!r} layout needs num_condition_tokens > 0, got {self.num_condition_tokens}."
            )
        if self.conditioning in ("unconditional", "completion") and self.sos_token_id is None:
            raise ValueError(f"A {self.conditioning!r} layout needs an sos_token_id.")
        if self.conditioning == "text" and self.text_pad_token_id is None:
            raise ValueError("A 'text' layout needs a text_pad_token_id.")
        for name in self._special_names:
            token = getattr(self, name)
            if token is not None and token < self.special_offset:
                raise ValueError(
                    f"{name}={token} collides with image or condition tokens; special tokens start at "
                    f"{self.special_offset}."
                )

    _special_names = ("sos_token_id", "null_class_token_id", "text_pad_token_id", "text_unknown_token_id")

    @classmethod
    def build(
        cls,
        conditioning: str,
        num_image_codes: int,
        num_condition_tokens: int = 0,
        with_null_class: bool = False,
        with_text_unknown: bool = False,
    ) -> "TokenLayout":
        """
        The standard layout: specials right after the condition tokens (SOS, then the null class; for text the
        pad token, then the unknown-text token when `with_text_unknown`).
        """
        next_id = num_image_codes + num_condition_tokens
        specials = {}
        wanted = {
            "sos_token_id": conditioning in ("unconditional", "completion"),
            "null_class_token_id": with_null_class,
            "text_pad_token_id": conditioning == "text",
            "text_unknown_token_id": conditioning == "text" and with_text_unknown,
        }
        for name in cls._special_names:
            if wanted[name]:
                specials[name], next_id = next_id, next_id + 1
        return cls(conditioning, num_image_codes, num_condition_tokens, **specials)

    @property
    def condition_offset(self) -> int:
        return self.num_image_codes

    @property
    def special_offset(self) -> int:
        return self.num_image_codes + self.num_condition_tokens

    @property
    def vocab_size(self) -> int:
        """The smallest vocabulary that holds every token of this layout."""
        specials = [getattr(self, name) for name in self._special_names if getattr(self, name) is not None]
        return max([self.special_offset - 1] + specials) + 1

    def condition_token(self, condition_id: int) -> int:
        """Token id of class `condition_id` (or condition code `condition_id`)."""
        if not 0 <= condition_id < self.num_condition_tokens:
            raise ValueError(
                f"Condition id {condition_id} is outside the model's [0, {self.num_condition_tokens}) range."
            )
        return self.condition_offset + condition_id

    def to_dict(self) -> dict:
        return asdict(self)


def class_name_key(name: str) -> str:
    """
    The form class names are matched in by `TamingPipeline.get_label_ids`: case-folded, with all
    whitespace removed, so spellings that differ only there ("T - shirt / top" of the Hub's
    Fashion-MNIST, "T-shirt/top" of its paper) name the same class.
    """
    return "".join(name.split()).casefold()
