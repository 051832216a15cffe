"""What both pipelines check of a diffusers-style `callback_on_step_end` before any work."""

from typing import Sequence


def check_step_callback(callback, tensor_inputs, allowed: Sequence[str], signature: str) -> None:
    """
    Raise a `ValueError` for a callback that is not callable or asks for tensors the loop does not have.

    Args:
        callback: `callback_on_step_end`, or None.
        tensor_inputs: `callback_on_step_end_tensor_inputs`, the names the callback asks for.
        allowed: the pipeline's `_callback_tensor_inputs`.
        signature: the call the loop makes, for the message ("(pipe, step, timestep, callback_kwargs)").
    """
    if callback is not None and not callable(callback):
        raise ValueError(
            f"callback_on_step_end must be a callable {signature} -> dict or a "
            f"diffusers PipelineCallback, got {type(callback).__name__}."
        )
    if not isinstance(tensor_inputs, (list, tuple)) or any(name not in allowed for name in tensor_inputs):
        raise ValueError(
            f"callback_on_step_end_tensor_inputs must be a list of names from {allowed}, got {tensor_inputs!r}."
        )
