"""Clear errors for the ways loading a model, pipeline or training checkpoint from disk goes wrong.

transformers and diffusers take any string that is not an existing folder for a Hub repo id, so a mistyped
local path surfaces as huggingface_hub's repo-id validation error (or as a failed download); a folder
without `config.json` loads with a default configuration and then fails on tensor sizes; and safetensors
reports a corrupt or truncated file without naming it. The checks here run before (or around) the
library's own loading and raise `OSError`s, as transformers does for files it cannot load, that name the
path and say what was expected.
"""

import contextlib
import glob
import json
import os
from typing import Iterator, Optional, Sequence, Tuple, Union

from huggingface_hub.utils import HFValidationError, validate_repo_id
from safetensors import SafetensorError, safe_open

PathOrId = Union[str, os.PathLike]


def _closest_existing_folder(path: str) -> Optional[str]:
    parent = os.path.dirname(path)
    while parent and not os.path.isdir(parent):
        if os.path.dirname(parent) == parent:
            return None
        parent = os.path.dirname(parent)
    return parent or None


def missing_local_path_message(name_or_path: PathOrId, what: str = "pretrained_model_name_or_path") -> Optional[str]:
    """
    Why `name_or_path` can be neither a local folder nor a Hub repo id, or None when it can be one of them.

    A name that is not an existing folder is read as a local path, not a repo id, when it is an `os.PathLike`,
    absolute, starts with `.` or `~`, is not a valid repo id (more than one `/`, odd characters), or when its
    parent folder exists (`outputs/vqgan` with an existing `outputs/`). A valid id such as `user/repo` is left
    to the Hub.
    """
    if name_or_path is None:
        return None
    name = os.fspath(name_or_path)
    if os.path.isdir(name):
        return None
    absolute = os.path.abspath(os.path.expanduser(name))
    if os.path.isfile(name):
        return f"{what} {name!r} is a file; expected a folder (as written by save_pretrained) or a Hub repo id."
    parent = os.path.dirname(name.rstrip("/" + os.sep))
    reason = None
    if isinstance(name_or_path, os.PathLike) or os.path.isabs(name) or name.startswith((".", "~")):
        reason = ""
    else:
        try:
            validate_repo_id(name)
        except HFValidationError:
            reason = ""
        else:
            if parent and os.path.isdir(parent):
                reason = f"; it is read as a local path because {os.path.abspath(parent)} exists"
    if reason is None:
        return None
    if reason == "":
        closest = _closest_existing_folder(absolute)
        reason = f" (closest existing folder: {closest})" if closest else ""
    if name.startswith("~") and os.path.isdir(absolute):
        reason += f"; '~' is not expanded here, pass {absolute}"
    return (
        f"{what} {name!r} is neither an existing folder nor a valid Hub repo id ('namespace/repo_name'): "
        f"no folder {absolute}{reason}."
    )


def check_local_path(name_or_path: PathOrId, what: str = "pretrained_model_name_or_path") -> None:
    """Raise `FileNotFoundError` (an `OSError`) if `name_or_path` is a local path that does not exist."""
    message = missing_local_path_message(name_or_path, what)
    if message is not None:
        raise FileNotFoundError(message)


def component_folder(name_or_path: PathOrId, components: Sequence[str] = ("vqgan",)) -> PathOrId:
    """
    `name_or_path/{component}` for the first of `components` that is a sub-folder of the local folder
    `name_or_path` (the output folder of `scripts/train_vqgan.py`, a pipeline folder), else `name_or_path` itself
    (a model folder, or a Hub id). The one place scripts find "a folder with a `vqgan/` sub-folder".
    """
    for component in components:
        candidate = os.path.join(os.fspath(name_or_path), component)
        if os.path.isdir(candidate):
            return candidate
    return name_or_path


def check_config_file(name_or_path: PathOrId, subfolder: str = "", model_name: str = "model") -> None:
    """
    Raise `OSError` if the local folder `name_or_path/subfolder` has no `config.json` (transformers would
    build a default configuration and fail on the weights' sizes). Hub ids are left to transformers.
    """
    if name_or_path is None or not os.path.isdir(name_or_path):
        return
    folder = os.path.join(os.fspath(name_or_path), subfolder or "")
    if os.path.isfile(os.path.join(folder, "config.json")):
        return
    if not os.path.isdir(folder):
        raise OSError(
            f"{os.path.normpath(folder)} does not exist; expected a {model_name} folder as written by save_pretrained."
        )
    hint = ""
    if os.path.isfile(os.path.join(folder, "model_index.json")):
        components = [
            name for name in sorted(os.listdir(folder)) if os.path.isfile(os.path.join(folder, name, "config.json"))
        ]
        hint = f" It is a pipeline folder: load a component from its subfolder (one of {components}), e.g. subfolder='vqgan'."
    raise OSError(
        f"{os.path.normpath(folder)} has no config.json; expected a {model_name} folder as written by "
        f"save_pretrained (config.json and model.safetensors).{hint}"
    )


def find_unreadable_safetensors(folder: PathOrId) -> Optional[Tuple[str, Exception]]:
    """The first `*.safetensors` file under `folder` (recursively) whose header safetensors rejects, with its error."""
    for path in sorted(glob.glob(os.path.join(glob.escape(os.fspath(folder)), "**", "*.safetensors"), recursive=True)):
        try:
            with safe_open(path, framework="pt"):
                pass
        except (SafetensorError, OSError) as error:
            return path, error
    return None


def unreadable_safetensors_message(path: str, error: Exception) -> str:
    return (
        f"{path} is not a readable safetensors file ({error}); it is corrupt or truncated (an interrupted save "
        "or download?). Write or download it again."
    )


def check_safetensors_files(folder: PathOrId) -> None:
    """Raise `OSError` naming the first corrupt or truncated `*.safetensors` file under `folder`."""
    found = find_unreadable_safetensors(folder)
    if found is not None:
        raise OSError(unreadable_safetensors_message(*found)) from found[1]


def _cached_snapshot(repo_id: str, cache_dir=None, revision=None) -> Optional[str]:
    """The local snapshot folder of a Hub repo already in the cache, or None."""
    from huggingface_hub import snapshot_download

    try:
        return snapshot_download(repo_id, cache_dir=cache_dir, revision=revision, local_files_only=True)
    except Exception:  # not cached, or not a repo id: nothing to point at
        return None


@contextlib.contextmanager
def name_unreadable_safetensors(
    name_or_path: PathOrId, subfolder: str = "", cache_dir=None, revision=None
) -> Iterator[None]:
    """
    Re-raise a `SafetensorError` from the block (safetensors names no file) as an `OSError` naming the corrupt
    file under `name_or_path/subfolder`, a local folder or a cached Hub repo.
    """
    try:
        yield
    except SafetensorError as error:
        name = os.fspath(name_or_path)
        folder = name if os.path.isdir(name) else _cached_snapshot(name, cache_dir, revision)
        found = find_unreadable_safetensors(os.path.join(folder, subfolder or "")) if folder else None
        if found is not None:
            raise OSError(unreadable_safetensors_message(*found)) from error
        raise OSError(
            f"A safetensors file of {name!r} is not readable ({error}); it is corrupt or truncated. Write it again, "
            "or download it again with force_download=True."
        ) from error


def _is_model_class(library: str, class_name: str) -> bool:
    """Whether `library.class_name` is a model (saved with a `config.json`), not a tokenizer or processor."""
    import importlib

    from transformers import PreTrainedModel

    try:
        cls = getattr(importlib.import_module(library), class_name)
    except (ImportError, AttributeError):
        return True  # unknown classes: keep checking, as before
    return isinstance(cls, type) and issubclass(cls, PreTrainedModel)


def check_pipeline_components(folder: PathOrId) -> None:
    """
    For a local pipeline folder: raise `OSError` if a model component listed in `model_index.json` has no folder
    or no `config.json` there (diffusers would load a transformers model with a default configuration and fail
    on the weights' sizes). Tokenizers and processors, saved without a `config.json`, are left to their loaders.
    """
    index = os.path.join(os.fspath(folder), "model_index.json")
    if not os.path.isfile(index):
        return
    with open(index) as handle:
        components = json.load(handle)
    for name, value in components.items():
        if name.startswith("_") or not isinstance(value, list) or len(value) != 2 or None in value:
            continue
        if _is_model_class(*value):
            check_config_file(folder, name, value[1])
