"""torch.autograd.grad_mode's names; they live in jitgrad._state (the bottom layer: lazy fusion
reads the same per-thread state)."""
from .._state import (STATE, enable_grad, is_grad_enabled, no_grad,  # noqa: F401
                      set_grad_enabled)
