"""The original implementation, side by side, for parity tests and benchmarks (not part of the package).

The original code (PyPI `taming-transformers-rom1504`) is a test-only dependency, installed with
`--no-deps` because its own pins are stale (`bash .ci/run` installs it). Two of its imports no longer
resolve on current stacks: `transformers.top_k_top_p_filtering` (removed in transformers 4.39) and
PyTorch Lightning 1.x (`taming.models.*` subclass `pl.LightningModule`). `import_original_taming`
provides minimal stand-ins for both so its modules import; nothing of the original is copied into
this project.

Tests call `require_original_taming`: without the original installed, a test fails with the install
command under CI (`CI=true`) and is skipped with that reason elsewhere.
"""

import importlib
import os
import sys
import types

import torch

INSTALL_COMMAND = 'pip install --no-deps "taming-transformers-rom1504==0.0.6" einops'


class OriginalTamingMissing(ModuleNotFoundError):
    """The original implementation is not installed."""


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
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as error:
        if error.name is None or error.name.split(".")[0] != "taming":
            raise
        raise OriginalTamingMissing(
            f"The original implementation is not installed (needed for {module}); install it with: {INSTALL_COMMAND}"
        ) from error


def running_in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def require_original_taming(module: str = "taming"):
    """`import_original_taming` for tests: a missing original fails under CI and skips elsewhere."""
    import pytest

    try:
        return import_original_taming(module)
    except OriginalTamingMissing as error:
        if running_in_ci():
            pytest.fail(str(error), pytrace=False)
        pytest.skip(str(error), allow_module_level=True)
