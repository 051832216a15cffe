"""Atomic training checkpoints: `checkpoint-{step}` folders that are complete or absent.

`accelerator.save_state` writes into a hidden temporary folder, a marker file is added,
and only then is the folder renamed to `checkpoint-{step}` (a rename within one filesystem
is atomic). `latest_checkpoint` only considers renamed folders with the marker, so a
checkpoint cut short by a crash or SIGKILL is never resumed from.

Training state that is not a model, optimizer or scheduler (codebook trackers, EMA weights)
is passed as `extra_state` and stored as `{name}.pt` files of tensors and plain values, read
back with `torch.load(weights_only=True)`: resuming never runs pickled code for it
(Accelerate's `register_for_checkpointing` would load it with `weights_only=False`).
"""

import json
import os
import re
import shutil
from typing import Dict, List, Optional, Sequence

import torch

from ..utils.loading import name_unreadable_safetensors

CHECKPOINT_PATTERN = re.compile(r"^checkpoint-(\d+)$")
COMPLETE_MARKER = "checkpoint_complete.json"
TEMP_PREFIX = ".tmp-checkpoint-"


def list_checkpoints(output_dir: str) -> List[str]:
    """Complete `checkpoint-{step}` folder names in `output_dir`, oldest (lowest step) first."""
    if not os.path.isdir(output_dir):
        return []
    found = []
    for name in os.listdir(output_dir):
        match = CHECKPOINT_PATTERN.match(name)
        if match and os.path.exists(os.path.join(output_dir, name, COMPLETE_MARKER)):
            found.append((int(match.group(1)), name))
    return [name for _, name in sorted(found)]


def latest_checkpoint(output_dir: str) -> Optional[str]:
    """Path of the complete checkpoint with the highest step, or None."""
    names = list_checkpoints(output_dir)
    return os.path.join(output_dir, names[-1]) if names else None


def checkpoint_step(path: str) -> int:
    """The step a `checkpoint-{step}` folder was written at."""
    match = CHECKPOINT_PATTERN.match(os.path.basename(os.path.normpath(path)))
    if match is None:
        raise ValueError(f"{path} is not a checkpoint-<step> folder.")
    return int(match.group(1))


def prune_checkpoints(output_dir: str, total_limit: Optional[int], keep_room: int = 1) -> List[str]:
    """
    Delete the oldest checkpoints so that at most `total_limit - keep_room` remain (room for
    the one about to be written), and left-over temporary folders. Returns what was removed.
    """
    removed = []
    for name in os.listdir(output_dir) if os.path.isdir(output_dir) else []:
        if name.startswith(TEMP_PREFIX):
            shutil.rmtree(os.path.join(output_dir, name), ignore_errors=True)
            removed.append(name)
    if total_limit is None:
        return removed
    names = list_checkpoints(output_dir)
    excess = len(names) - max(total_limit - keep_room, 0)
    for name in names[: max(excess, 0)]:
        shutil.rmtree(os.path.join(output_dir, name))
        removed.append(name)
    return removed


def save_checkpoint(
    accelerator,
    output_dir: str,
    global_step: int,
    total_limit: Optional[int] = None,
    extra_state: Optional[Dict[str, object]] = None,
) -> str:
    """
    Save the Accelerate state (models, optimizers, schedulers, RNG states of every process) and
    `extra_state` (name -> object with `state_dict()`, identical on every process) as
    `output_dir/checkpoint-{global_step}`, atomically. Call on every process.
    """
    final = os.path.join(output_dir, f"checkpoint-{global_step}")
    tmp = os.path.join(output_dir, f"{TEMP_PREFIX}{global_step}")
    if accelerator.is_main_process:
        prune_checkpoints(output_dir, total_limit)
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
    accelerator.wait_for_everyone()
    accelerator.save_state(tmp)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        for name, obj in (extra_state or {}).items():
            torch.save(obj.state_dict(), os.path.join(tmp, f"{name}.pt"))
        with open(os.path.join(tmp, COMPLETE_MARKER), "w") as f:
            json.dump({"global_step": global_step, "num_processes": accelerator.num_processes}, f)
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
    accelerator.wait_for_everyone()
    return final


def load_checkpoint(accelerator, path: str, extra_state: Optional[Dict[str, object]] = None) -> int:
    """
    Restore what `save_checkpoint` wrote (on every process); returns the checkpoint's step. A corrupt or
    truncated `model*.safetensors` raises an `OSError` naming the file (safetensors' own error names none).
    """
    with name_unreadable_safetensors(path):
        accelerator.load_state(path)
    for name, obj in (extra_state or {}).items():
        obj.load_state_dict(torch.load(os.path.join(path, f"{name}.pt"), map_location="cpu", weights_only=True))
    return checkpoint_step(path)


def resolve_resume_path(output_dir: str, resume_from_checkpoint: str) -> Optional[str]:
    """`latest` -> newest complete checkpoint in `output_dir` (None if there is none); else the path, checked."""
    if resume_from_checkpoint == "latest":
        return latest_checkpoint(output_dir)
    path = resume_from_checkpoint
    if not os.path.isdir(path):
        path = os.path.join(output_dir, resume_from_checkpoint)
    if not os.path.exists(os.path.join(path, COMPLETE_MARKER)):
        raise ValueError(
            f"--resume_from_checkpoint {resume_from_checkpoint}: {path} is not a complete checkpoint "
            f"(no {COMPLETE_MARKER}); complete ones in {output_dir}: {list_checkpoints(output_dir)}."
        )
    return path


def push_output_dir(
    output_dir: str,
    hub_model_id: Optional[str] = None,
    hub_token: Optional[str] = None,
    commit_message: str = "Training run",
    ignore_patterns: Sequence[str] = (),
) -> str:
    """
    Upload a finished run's `output_dir` to the Hub repo `hub_model_id` (created if needed; by default named
    after the folder), without its checkpoints (complete or cut short) and `ignore_patterns`. Returns the repo id.
    """
    from huggingface_hub import create_repo, upload_folder

    repo_id = create_repo(
        hub_model_id or os.path.basename(os.path.abspath(output_dir)), exist_ok=True, token=hub_token
    ).repo_id
    upload_folder(
        repo_id=repo_id,
        folder_path=output_dir,
        token=hub_token,
        ignore_patterns=["checkpoint-*", f"{TEMP_PREFIX}*", *ignore_patterns],
        commit_message=commit_message,
    )
    return repo_id
