"""Where images come from: the emoji dataset (captioned colour emoji from npm packages)."""

from .emoji import EmojiSourceError, load_emoji_dataset

__all__ = ["EmojiSourceError", "load_emoji_dataset"]
