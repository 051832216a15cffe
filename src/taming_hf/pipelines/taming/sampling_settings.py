"""The sampling settings of one pipeline call: call arguments over the model's `generation_config` defaults.

The recommended settings of a trained prior live with it, in the transformer's `generation_config`
(saved as `transformer/generation_config.json`): transformers' own `top_k`, `top_p`, `temperature` and
`guidance_scale` fields, with `do_sample=True` (transformers' validation expects sampling flags to come
with it). A pipeline call resolves each setting in this order:

1. the call argument, when it is not `None`;
2. the transformer's `generation_config` field, when it is set;
3. the built-in fallback: no top-k, no top-p, temperature 1, guidance 1 (off).

Guidance from the `generation_config` applies only to pipelines with a null class; an explicit
`guidance_scale` other than 1 on a pipeline without one is an error (see `TamingPipeline.check_inputs`).
"""

from dataclasses import dataclass
from typing import Optional

from transformers import GenerationConfig


@dataclass(frozen=True)
class SamplingSettings:
    """
    The resolved sampling settings of a call.

    Args:
        top_k (`int`, *optional*): keep the k most likely image codes; `None` or 0 disables it.
        top_p (`float`, *optional*): nucleus threshold in (0, 1]; `None` or 1 disables it.
        temperature (`float`, defaults to 1.0): divides the logits.
        guidance_scale (`float`, defaults to 1.0): classifier-free guidance; 1 disables it.
    """

    top_k: Optional[int] = None
    top_p: Optional[float] = None
    temperature: float = 1.0
    guidance_scale: float = 1.0

    @classmethod
    def resolve(
        cls,
        generation_config: Optional[GenerationConfig],
        has_null_class: bool,
        top_k: Optional[int] = None,
        top_p: Optional[float] = None,
        temperature: Optional[float] = None,
        guidance_scale: Optional[float] = None,
    ) -> "SamplingSettings":
        """Call arguments (not `None`) > `generation_config` fields (set) > the built-in fallbacks."""

        def pick(argument, field: str, fallback):
            if argument is not None:
                return argument
            value = getattr(generation_config, field, None)
            return fallback if value is None else value

        model_guidance = pick(None, "guidance_scale", 1.0) if has_null_class else 1.0
        return cls(
            top_k=pick(top_k, "top_k", None),
            top_p=pick(top_p, "top_p", None),
            temperature=pick(temperature, "temperature", 1.0),
            guidance_scale=model_guidance if guidance_scale is None else guidance_scale,
        )

    def write_to(self, generation_config: GenerationConfig) -> GenerationConfig:
        """Store these settings as the model's defaults (with `do_sample=True`) and return the config."""
        generation_config._from_model_config = False  # chosen settings now, no longer copied from config.json
        generation_config.do_sample = True
        generation_config.top_k = self.top_k
        generation_config.top_p = self.top_p
        generation_config.temperature = self.temperature
        generation_config.guidance_scale = self.guidance_scale
        return generation_config
