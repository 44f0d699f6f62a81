"""jitgrad.autograd: ``backward``, ``grad``, grad-mode switches, ``Function`` (custom ops) and
``autograd.functional``."""
from __future__ import annotations

from .._engine import AccumulateGrad, Node  # noqa: F401
from .._methods import implement
from .._state import enable_grad, is_grad_enabled, no_grad, set_grad_enabled  # noqa: F401
from ._grad import backward, grad
from .function import Function, FunctionCtx, once_differentiable  # noqa: F401
from .gradcheck import gradcheck, gradgradcheck  # noqa: F401 (torch.autograd's names)

__all__ = ["backward", "grad", "no_grad", "enable_grad", "set_grad_enabled", "is_grad_enabled",
           "Node", "Function", "functional", "gradcheck", "gradgradcheck"]


implement(backward=backward)  # Tensor.backward runs it (see jitgrad._methods)
