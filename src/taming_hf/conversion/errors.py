"""The errors the converter raises for inputs it cannot convert."""

import os


class ConversionError(ValueError):
    """The input cannot be converted; the message says what was expected instead."""


def require_file(path: str, what: str, expected: str) -> None:
    """Raise `FileNotFoundError` / `IsADirectoryError` (`OSError`s, as `open` would) naming `path` and `expected`."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"{what} {path} does not exist; expected {expected}.")
    if os.path.isdir(path):
        raise IsADirectoryError(f"{what} {path} is a folder; expected {expected}.")
