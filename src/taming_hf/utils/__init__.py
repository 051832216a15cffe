"""Utilities outside the models. `offline_weights` places third-party weight files on machines without internet;
it is not imported here, so that `python -m taming_hf.utils.offline_weights` runs it as a fresh module."""
