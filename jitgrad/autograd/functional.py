"""jitgrad.autograd.functional: torch's functional higher-level API (jacobian, ...).

This first version computes the Jacobian row by row with reverse mode (one backward per output
element) on a retained graph; the batched, fused version is the functional-transforms issue.
"""
from __future__ import annotations

from .. import creation
from ..tensor import Tensor
from . import grad as _grad
from .grad_mode import enable_grad


def _tuple(x):
    return (tuple(x), True) if isinstance(x, (tuple, list)) else ((x,), False)


def jacobian(func, inputs, create_graph=False, strict=False, vectorize=False,
             strategy="reverse-mode"):
    """J[i][j] = d outputs[i] / d inputs[j], shaped ``out.shape + in.shape`` like torch."""
    if strategy not in ("reverse-mode", "forward-mode"):
        raise ValueError(f"Expected strategy to be either 'forward-mode' or 'reverse-mode', "
                         f"got {strategy!r}")
    ins, in_tuple = _tuple(inputs)
    for k, x in enumerate(ins):
        if not isinstance(x, Tensor):
            raise TypeError(f"The inputs given to jacobian must be Tensors (input {k} is "
                            f"{type(x).__name__})")
        if not x.is_floating_point():
            raise RuntimeError(f"jacobian: input {k} has dtype {x.dtype}; only floating point "
                               "inputs can be differentiated")
    with enable_grad():
        xs = tuple(x.detach().requires_grad_(True) for x in ins)
        outs = func(*xs)
        outs_t, out_tuple = _tuple(outs)
        for k, o in enumerate(outs_t):
            if not isinstance(o, Tensor):
                raise TypeError(f"The outputs of the user-provided function given to jacobian "
                                f"must be Tensors (output {k} is {type(o).__name__})")
        jac = []
        for o in outs_t:
            rows = [[] for _ in xs]
            flat = o.reshape(-1)
            for i in range(flat.numel()):
                if o.requires_grad:
                    gs = _grad(flat[i], xs, retain_graph=True, create_graph=create_graph,
                               allow_unused=True)
                else:
                    gs = (None,) * len(xs)
                for j, g in enumerate(gs):
                    if g is None:
                        if strict:
                            raise RuntimeError(f"Output {i} of the user-provided function is "
                                               f"independent of input {j}. This is not allowed "
                                               "in strict mode.")
                        g = creation.zeros_like(xs[j])
                    rows[j].append(g)
            per_in = []
            for j, x in enumerate(xs):
                if rows[j]:
                    from ..functional_ops import stack
                    J = stack(rows[j]).reshape(tuple(o.shape) + tuple(x.shape))
                else:
                    J = creation.zeros(tuple(o.shape) + tuple(x.shape), dtype=x.dtype)
                per_in.append(J if create_graph else J.detach())
            jac.append(tuple(per_in) if in_tuple else per_in[0])
    return tuple(jac) if out_tuple else jac[0]
