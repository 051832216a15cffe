"""The error the converter raises for inputs it cannot convert."""


class ConversionError(ValueError):
    """The input cannot be converted; the message says what was expected instead."""
