"""Helpers for tests and benchmarks that run the original implementation side by side.

The original code (PyPI `taming-transformers-rom1504`) is a test-only dependency. Two of its
imports no longer resolve on current stacks: `transformers.top_k_top_p_filtering` (removed in
transformers 4.39) and PyTorch Lightning 1.x (`taming.models.*` subclass `pl.LightningModule`).
`import_original_taming` provides minimal stand-ins for both so its modules import; nothing of
the original is copied into this project.
"""

import importlib
import sys
import types

import torch


def _top_k_top_p_filtering(logits, top_k=0, top_p=1.0, filter_value=-float("inf"), min_tokens_to_keep=1):
    """Stand-in for the removed transformers helper, built on transformers' logits processors."""
    from transformers.generation.logits_process import TopKLogitsWarper, TopPLogitsWarper

    if top_k > 0:
        logits = TopKLogitsWarper(top_k, filter_value, min_tokens_to_keep)(None, logits)
    if top_p < 1.0:
        logits = TopPLogitsWarper(top_p, filter_value, min_tokens_to_keep)(None, logits)
    return logits


def _lightning_stub() -> types.ModuleType:
    """A module exposing just what `taming.models` touches at import and in eval-time methods."""
    pl = types.ModuleType("pytorch_lightning")

    class LightningModule(torch.nn.Module):
        def log(self, *args, **kwargs):
            pass

        def log_dict(self, *args, **kwargs):
            pass

    pl.LightningModule = LightningModule
    pl.LightningDataModule = object
    pl.seed_everything = torch.manual_seed
    for name in ("trainer", "callbacks", "utilities", "utilities.distributed", "utilities.rank_zero"):
        module = types.ModuleType(f"pytorch_lightning.{name}")
        sys.modules[f"pytorch_lightning.{name}"] = module
    sys.modules["pytorch_lightning.trainer"].Trainer = object
    callbacks = sys.modules["pytorch_lightning.callbacks"]
    callbacks.ModelCheckpoint = callbacks.Callback = callbacks.LearningRateMonitor = object
    sys.modules["pytorch_lightning.utilities.distributed"].rank_zero_only = lambda fn: fn
    sys.modules["pytorch_lightning.utilities.rank_zero"].rank_zero_only = lambda fn: fn
    return pl


def import_original_taming(module: str = "taming"):
    """Import a module of the original implementation, e.g. `taming.models.cond_transformer`."""
    import transformers

    if not hasattr(transformers, "top_k_top_p_filtering"):
        transformers.top_k_top_p_filtering = _top_k_top_p_filtering
    if "pytorch_lightning" not in sys.modules:
        try:
            import pytorch_lightning  # noqa: F401
        except ImportError:
            sys.modules["pytorch_lightning"] = _lightning_stub()
    if "omegaconf" not in sys.modules:
        try:
            import omegaconf  # noqa: F401
        except ImportError:
            stub = types.ModuleType("omegaconf")
            stub.OmegaConf = object
            sys.modules["omegaconf"] = stub
    return importlib.import_module(module)
