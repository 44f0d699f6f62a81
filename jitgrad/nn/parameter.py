"""nn.Parameter: a leaf tensor that a Module registers as one of its parameters."""
from __future__ import annotations

import numpy as np

from .._state import no_grad
from .._tensor import Tensor


class Parameter(Tensor):
    """A Tensor subclass (so ``isinstance(p, jitgrad.Tensor)`` holds) that ``Module.__setattr__``
    recognises. Like torch it shares memory with the tensor it wraps, is always a leaf and
    requires grad by default. Results of ops on a Parameter are plain Tensors."""

    def __new__(cls, data=None, requires_grad=True):
        if data is None:
            arr = np.empty(0, np.dtype("float32"))
        elif isinstance(data, Tensor):
            arr = data._data  # (a pending value is computed here: a Parameter holds an array)
        else:
            raise TypeError(f"Parameter: expected a jitgrad.Tensor, got {type(data).__name__}")
        p = cls._make(arr)
        if data is not None and isinstance(data, Tensor):
            p._vc = data._vc  # shares memory with ``data``: in-place writes bump one counter
        p.requires_grad_(requires_grad)
        return p

    def __init__(self, data=None, requires_grad=True):  # (Tensor.__init__ would copy)
        pass

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()

    def __deepcopy__(self, memo):
        if id(self) in memo:
            return memo[id(self)]
        with no_grad():
            p = type(self)(self.detach().clone(), self._rg)
            if self.grad is not None:
                p.grad = self.grad.detach().clone()
        memo[id(self)] = p
        return p

    def __reduce_ex__(self, proto):
        return (_rebuild_parameter, (self._host, self._rg))


def _rebuild_parameter(arr, rg):
    return Parameter(Tensor._make(np.array(arr)), rg)
