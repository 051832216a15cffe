"""Training the latent prior with transformers' `Trainer`.

`PriorTrainer` is a `Trainer` with three changes, all from the original recipe:
- the training batch's inputs are corrupted (class dropout, `pkeep`; see `corrupt_inputs`), never
  the evaluation batch's;
- weight decay applies to the weights of linear layers only (GPT2's `Conv1D` and `nn.Linear`), not
  to biases, LayerNorms or the token / position embeddings;
- evaluation reports bits per token (`eval_bits_per_token = eval_loss / ln 2`) beside the loss.

`SampleGridCallback` samples a grid of images with the pipeline every N steps.
"""

import math
import os
from typing import Callable, List, Optional

import PIL.Image
import torch
from torch import nn
from transformers import GPT2Config, Trainer, TrainerCallback
from transformers.pytorch_utils import Conv1D

from ..pipelines.taming.vocabulary import TokenLayout
from .prior_data import corrupt_inputs


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
        *args, **kwargs: passed to `Trainer`.
    """

    def __init__(self, *args, layout: TokenLayout, class_dropout_prob: float = 0.0, pkeep: float = 1.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.layout = layout
        self.class_dropout_prob = class_dropout_prob
        self.pkeep = pkeep

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if model.training and (self.class_dropout_prob > 0 or self.pkeep < 1.0):
            inputs = dict(inputs)
            inputs["input_ids"] = corrupt_inputs(
                inputs["input_ids"], inputs["labels"], self.layout, self.class_dropout_prob, self.pkeep
            )
        return super().compute_loss(
            model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch
        )

    def get_decay_parameter_names(self, model: nn.Module) -> List[str]:
        return linear_weight_names(model)

    def evaluation_loop(self, *args, **kwargs):
        output = super().evaluation_loop(*args, **kwargs)
        prefix = kwargs.get("metric_key_prefix", args[4] if len(args) > 4 else "eval")
        loss = output.metrics.get(f"{prefix}_loss")
        if loss is not None:
            output.metrics[f"{prefix}_bits_per_token"] = loss / math.log(2)
        return output


def image_grid(images: List[PIL.Image.Image], columns: int) -> PIL.Image.Image:
    """Paste equally sized images row by row into one image with `columns` columns."""
    if not images:
        raise ValueError("image_grid needs at least one image.")
    width, height = images[0].size
    rows = math.ceil(len(images) / columns)
    grid = PIL.Image.new(images[0].mode, (columns * width, rows * height))
    for position, image in enumerate(images):
        grid.paste(image, ((position % columns) * width, (position // columns) * height))
    return grid


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
