"""jitgrad.nn: ``functional`` (losses, activations) for now."""
from . import functional  # noqa: F401
