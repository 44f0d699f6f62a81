"""jitgrad.nn: torch.nn's Module system, layers, activations, losses, ``functional`` and
``init``."""
from . import functional, init  # noqa: F401
from .parameter import Parameter  # noqa: F401
from .modules import *  # noqa: F401,F403
