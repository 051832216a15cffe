"""Training the latent prior with transformers' `Trainer`.

`PriorTrainer` is a `Trainer` with these changes, from the original recipe and DALL-E's:
- the training batch's inputs are corrupted (class dropout, `pkeep`; see `corrupt_inputs`; for text
  models a random caption per image and caption dropout, see `choose_captions`), never the evaluation
  batch's;
- text models may also learn their captions: the training loss is
  `text_loss_weight * CE(caption tokens) + (1 - text_loss_weight) * CE(image codes)` (DALL-E: 1/8 and
  7/8); with the default weight 0 it is the image codes' loss alone, as for every other kind, and the
  evaluation loss always is;
- weight decay applies to the weights of linear layers only (GPT2's `Conv1D` and `nn.Linear`), not
  to biases, LayerNorms or the token / position embeddings;
- evaluation reports bits per token (`eval_bits_per_token = eval_loss / ln 2`) beside the loss.

`SampleGridCallback` samples a grid of images with the pipeline every N steps.
"""

import math
import os
from typing import Callable, List, Optional

import torch
import torch.nn.functional as F
from torch import nn
from transformers import GPT2Config, Trainer, TrainerCallback
from transformers.pytorch_utils import Conv1D

from ..pipelines.taming import TextVocabulary, TokenLayout
from ..utils.image_grid import image_grid
from .prior_data import IGNORE_INDEX, choose_captions, corrupt_inputs


def build_prior_config(
    layout: TokenLayout,
    sequence_length: int,
    n_layer: int = 12,
    n_head: int = 8,
    n_embd: int = 512,
    dropout: float = 0.0,
) -> GPT2Config:
    """
    A `GPT2Config` for a prior over `layout`'s vocabulary, shaped like the original minGPT: exact
    GELU, untied input / output embeddings, LayerNorm eps 1e-5.

    Args:
        sequence_length (`int`): P + h * w, the prefix plus the image's latent cells.
    """
    if n_embd % n_head:
        raise ValueError(f"n_embd ({n_embd}) must be divisible by n_head ({n_head}).")
    special = layout.sos_token_id if layout.sos_token_id is not None else layout.condition_offset
    return GPT2Config(
        vocab_size=layout.vocab_size,
        n_positions=sequence_length,
        n_embd=n_embd,
        n_layer=n_layer,
        n_head=n_head,
        activation_function="gelu",
        resid_pdrop=dropout,
        embd_pdrop=dropout,
        attn_pdrop=dropout,
        layer_norm_epsilon=1e-5,
        tie_word_embeddings=False,
        bos_token_id=special,
        eos_token_id=special,
    )


def linear_weight_names(model: nn.Module) -> List[str]:
    """Names of the weights of every linear layer (`nn.Linear`, GPT2's `Conv1D`) in `model`."""
    return [
        f"{module_name}.weight" if module_name else "weight"
        for module_name, module in model.named_modules()
        if isinstance(module, (nn.Linear, Conv1D))
    ]


class PriorTrainer(Trainer):
    """
    `Trainer` for a `GPT2LMHeadModel` prior fed by `PriorDataCollator`.

    Args:
        layout (`TokenLayout`): the vocabulary layout (for the corruption).
        class_dropout_prob (`float`): probability of replacing the class token with the null class.
        pkeep (`float`): probability of keeping each input image code (1.0: no corruption).
        text_vocabulary (`TextVocabulary`, *optional*): text models: the caption prefix's layout.
        null_text_prefix (`torch.LongTensor` of shape `(L,)`, *optional*): text models: the null caption's prefix.
        caption_dropout_prob (`float`): probability of replacing a caption with the null caption.
        text_loss_weight (`float`): weight of the caption tokens' loss in [0, 1); the image codes' is 1 minus it.
        *args, **kwargs: passed to `Trainer`.
    """

    def __init__(
        self,
        *args,
        layout: TokenLayout,
        class_dropout_prob: float = 0.0,
        pkeep: float = 1.0,
        text_vocabulary: Optional[TextVocabulary] = None,
        null_text_prefix: Optional[torch.LongTensor] = None,
        caption_dropout_prob: float = 0.0,
        text_loss_weight: float = 0.0,
        **kwargs,
    ):
        if not 0.0 <= text_loss_weight < 1.0:
            raise ValueError(
                f"text_loss_weight must be in [0, 1) (1 would train no image code), got {text_loss_weight}."
            )
        if (caption_dropout_prob > 0 or text_loss_weight > 0) and layout.conditioning != "text":
            raise ValueError("caption_dropout_prob and text_loss_weight need a text layout.")
        super().__init__(*args, **kwargs)
        self.layout = layout
        self.class_dropout_prob = class_dropout_prob
        self.pkeep = pkeep
        self.text_vocabulary = text_vocabulary
        self.null_text_prefix = null_text_prefix
        self.caption_dropout_prob = caption_dropout_prob
        self.text_loss_weight = text_loss_weight

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        inputs = dict(inputs)
        caption_choices, caption_counts = inputs.pop("caption_choices", None), inputs.pop("caption_counts", None)
        if model.training:
            if caption_choices is not None:
                inputs["input_ids"] = choose_captions(
                    inputs["input_ids"],
                    caption_choices,
                    caption_counts,
                    self.null_text_prefix,
                    self.caption_dropout_prob,
                )
            if self.class_dropout_prob > 0 or self.pkeep < 1.0:
                inputs["input_ids"] = corrupt_inputs(
                    inputs["input_ids"], inputs["labels"], self.layout, self.class_dropout_prob, self.pkeep
                )
            if self.text_loss_weight > 0:
                loss, outputs = self.text_and_image_loss(model, inputs)
                if num_items_in_batch is not None and self.model_accepts_loss_kwargs:
                    # Trainer leaves gradient accumulation's division to losses normalised by num_items_in_batch;
                    # this one is a per-batch mean, so it divides itself.
                    loss = loss / self.current_gradient_accumulation_steps
                return (loss, outputs) if return_outputs else loss
        return super().compute_loss(
            model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch
        )

    def text_and_image_loss(self, model, inputs):
        """
        `text_loss_weight * CE(caption tokens) + (1 - w) * CE(image codes)`, each the mean over its tokens. The
        caption targets are the prefix's tokens after the first (pads excluded); the image targets, `labels`.

        Returns:
            The loss and the model's outputs.
        """
        length, pad = self.text_vocabulary.max_text_length, self.text_vocabulary.pad_token_id
        input_ids, labels = inputs["input_ids"], inputs["labels"]
        text_targets = input_ids[:, :length].masked_fill(input_ids[:, :length] == pad, IGNORE_INDEX)
        targets = torch.cat([text_targets, labels[:, length:]], dim=1)[:, 1:]
        outputs = model(input_ids=input_ids)
        losses = F.cross_entropy(
            outputs.logits[:, :-1].float().transpose(1, 2), targets, ignore_index=IGNORE_INDEX, reduction="none"
        )
        is_text = torch.zeros_like(targets, dtype=torch.bool)
        is_text[:, : length - 1] = True  # positions 0 .. L-2 predict caption tokens 1 .. L-1
        valid = targets != IGNORE_INDEX
        text, image = valid & is_text, valid & ~is_text
        text_loss = (losses * text).sum() / text.sum().clamp(min=1)
        image_loss = (losses * image).sum() / image.sum().clamp(min=1)
        loss = self.text_loss_weight * text_loss + (1.0 - self.text_loss_weight) * image_loss
        return loss, outputs

    def get_decay_parameter_names(self, model: nn.Module) -> List[str]:
        return linear_weight_names(model)

    def evaluation_loop(self, *args, **kwargs):
        output = super().evaluation_loop(*args, **kwargs)
        prefix = kwargs.get("metric_key_prefix", args[4] if len(args) > 4 else "eval")
        loss = output.metrics.get(f"{prefix}_loss")
        if loss is not None:
            output.metrics[f"{prefix}_bits_per_token"] = loss / math.log(2)
        return output


class SampleGridCallback(TrainerCallback):
    """
    Every `every_n_steps` optimizer steps (and at the end of training), the main process samples
    images with the pipeline built by `make_pipeline(model)` and writes a grid to
    `{output_dir}/samples/step-{step:07d}.png` (and to TensorBoard when it is a tracker).

    Args:
        make_pipeline (`Callable`): builds a `TamingPipeline` around the prior being trained.
        pipeline_kwargs (`dict`): arguments of the pipeline call (`class_labels` or `batch_size`, ...).
        seed (`int`): the sampling generator's seed, fixed so grids are comparable across steps.
    """

    def __init__(
        self,
        make_pipeline: Callable,
        output_dir: str,
        every_n_steps: int,
        pipeline_kwargs: dict,
        columns: int = 8,
        seed: int = 0,
    ):
        self.make_pipeline = make_pipeline
        self.output_dir = output_dir
        self.every_n_steps = every_n_steps
        self.pipeline_kwargs = pipeline_kwargs
        self.columns = columns
        self.seed = seed
        self.last_path: Optional[str] = None

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if self.every_n_steps > 0 and state.global_step % self.every_n_steps == 0:
            self.sample(state, model)

    def on_train_end(self, args, state, control, model=None, **kwargs):
        if self.last_path is None or not self.last_path.endswith(f"{state.global_step:07d}.png"):
            self.sample(state, model)

    def sample(self, state, model) -> None:
        if not state.is_world_process_zero or model is None:
            return
        was_training = model.training
        model.eval()
        try:
            pipeline = self.make_pipeline(model)
            generator = torch.Generator(device="cpu").manual_seed(self.seed)
            images = pipeline(generator=generator, output_type="pil", **self.pipeline_kwargs).images
        finally:
            model.train(was_training)
        grid = image_grid(images, min(self.columns, len(images)))
        os.makedirs(os.path.join(self.output_dir, "samples"), exist_ok=True)
        self.last_path = os.path.join(self.output_dir, "samples", f"step-{state.global_step:07d}.png")
        grid.save(self.last_path)
