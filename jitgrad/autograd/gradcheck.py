"""gradcheck: float64 central differences against the analytic VJPs (torch's gradcheck semantics).

``gradcheck`` builds, for every input that requires grad, the full Jacobian twice: numerically
(perturbing one element at a time, in place, so the input's layout is kept) and analytically
(one ``autograd.grad`` per output element with a one-hot ``grad_outputs``). ``gradgradcheck``
runs ``gradcheck`` on the function ``(inputs, grad_outputs) -> autograd.grad(...,
create_graph=True)``, which checks second derivatives.
"""
from __future__ import annotations

import warnings

import numpy as np

from .. import _state as grad_mode
from .._tensor import Tensor
from ..creation import from_numpy
from ._grad import grad

__all__ = ["GradcheckError", "gradcheck", "gradgradcheck"]


class GradcheckError(RuntimeError):
    """Analytic and numerical derivatives disagree (or the check could not be run)."""


def _as_tuple(x):
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def _diff_outputs(outputs):
    """Floating-point Tensor outputs (the ones that have a derivative), in order."""
    return [o for o in outputs if isinstance(o, Tensor) and o.is_floating_point()]


def _eval(func, inputs):
    # grad mode stays as it is: gradgradcheck's function calls autograd.grad inside
    outs = _diff_outputs(_as_tuple(func(*inputs)))
    return [np.array(o.detach().numpy(), dtype=np.float64, copy=True).reshape(-1) for o in outs]


def _numerical_jacobian(func, inputs, k, eps):
    """J[j, :] = d outputs (flattened, concatenated) / d inputs[k].flat[j], central differences."""
    x = inputs[k]
    arr = x.detach().numpy()
    if not arr.flags.writeable:
        raise GradcheckError(f"gradcheck: input {k} is a read-only (expanded) view; pass a tensor "
                             "that owns its memory")
    n_out = sum(o.size for o in _eval(func, inputs))
    jac = np.zeros((arr.size, n_out))
    for j, idx in enumerate(np.ndindex(arr.shape)):
        orig = arr[idx].item()
        arr[idx] = orig + eps
        plus = _eval(func, inputs)
        arr[idx] = orig - eps
        minus = _eval(func, inputs)
        arr[idx] = orig
        if plus:
            jac[j] = (np.concatenate(plus) - np.concatenate(minus)) / (2 * eps)
    return jac


def _analytical_jacobians(func, inputs, diff_idx):
    """One (numel(input), n_out) matrix per differentiable input, by one-hot backward passes."""
    with grad_mode.enable_grad():
        outs = _diff_outputs(_as_tuple(func(*inputs)))
    sizes = [o.numel() for o in outs]
    n_out = sum(sizes)
    jacs = [np.zeros((inputs[k].numel(), n_out)) for k in diff_idx]
    diff_inputs = [inputs[k] for k in diff_idx]
    col = 0
    for o, size in zip(outs, sizes):
        if not o.requires_grad:  # does not depend on any input: a zero block
            col += size
            continue
        for e in range(size):
            onehot = np.zeros(size, o.detach().numpy().dtype)
            onehot[e] = 1
            g = from_numpy(onehot.reshape(tuple(o.shape)))
            grads = grad(o, diff_inputs, grad_outputs=g, retain_graph=True,
                                  allow_unused=True)
            for m, (k, gk) in enumerate(zip(diff_idx, grads)):
                if gk is None:
                    continue
                if tuple(gk.shape) != tuple(inputs[k].shape):
                    raise GradcheckError(f"gradcheck: the gradient of input {k} has shape "
                                         f"{tuple(gk.shape)}, expected "
                                         f"{tuple(inputs[k].shape)}")
                if gk.dtype != inputs[k].dtype:
                    raise GradcheckError(f"gradcheck: the gradient of input {k} has dtype "
                                         f"{gk.dtype}, expected {inputs[k].dtype}")
                jacs[m][:, col + e] = np.asarray(gk.detach().numpy(), np.float64).reshape(-1)
        col += size
    return jacs


def _fail(msg, raise_exception):
    if raise_exception:
        raise GradcheckError(msg)
    return False


def gradcheck(func, inputs, *, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=True,
              nondet_tol=0.0, check_undefined_grad=True, fast_mode=False, **_ignored):
    """Check the gradients of ``func`` at ``inputs`` against central differences.

    For every Tensor input with ``requires_grad``, every entry of the analytic Jacobian must satisfy
    ``|analytic - numerical| <= atol + rtol * |numerical|`` (torch's criterion). Returns True, or
    raises :class:`GradcheckError` naming the input index and the largest absolute difference
    (returns False instead when ``raise_exception=False``)."""
    inputs = _as_tuple(inputs)
    diff_idx = [k for k, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    if not diff_idx:
        raise ValueError("gradcheck expects at least one input tensor to require gradient, but "
                         "none of the them have requires_grad=True.")
    for k in diff_idx:
        if inputs[k].dtype.name != "float64":
            warnings.warn(f"Input #{k} requires gradient and is not a double precision floating "
                          "point. This check will likely fail if all the inputs are not of "
                          "double precision floating point.", stacklevel=2)
    analytical = _analytical_jacobians(func, inputs, diff_idx)
    for m, k in enumerate(diff_idx):
        numerical = _numerical_jacobian(func, inputs, k, eps)
        a = analytical[m]
        if a.size == 0:
            continue
        bad = ~(np.abs(a - numerical) <= atol + rtol * np.abs(numerical))
        if bad.any():
            diff = np.abs(a - numerical)
            diff = np.where(np.isnan(diff), np.inf, diff)
            j, e = np.unravel_index(np.argmax(np.where(bad, diff, -1)), a.shape)
            return _fail(
                f"Jacobian mismatch with respect to input {k},\n"
                f"max abs difference {float(diff[bad].max()):.6g} at input element {j}, output "
                f"element {e} of the flattened outputs (analytical {float(a[j, e])!r}, numerical "
                f"{float(numerical[j, e])!r}).\n"
                f"numerical:{numerical}\nanalytical:{a}\n", raise_exception)
    if nondet_tol >= 0:  # reentrant: a second backward gives the same gradients
        again = _analytical_jacobians(func, inputs, diff_idx)
        for m, k in enumerate(diff_idx):
            d = np.abs(again[m] - analytical[m])
            if d.size and not (d <= nondet_tol).all():
                return _fail(f"Backward is not reentrant for input {k}: a second backward gave "
                             f"gradients that differ by up to {float(np.nanmax(d)):.6g}",
                             raise_exception)
    return True


def gradgradcheck(func, inputs, grad_outputs=None, *, eps=1e-6, atol=1e-5, rtol=1e-3,
                  gen_non_contig_grad_outputs=False, raise_exception=True, nondet_tol=0.0,
                  check_undefined_grad=True, fast_mode=False, seed=0, **_ignored):
    """Check second derivatives: ``gradcheck`` of ``(*inputs, *grad_outputs) -> grad(func(*inputs),
    inputs, grad_outputs, create_graph=True)``. ``grad_outputs`` default to random float64
    tensors (requires_grad) shaped like the differentiable outputs."""
    inputs = _as_tuple(inputs)
    diff_idx = [k for k, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    if grad_outputs is None:
        with grad_mode.enable_grad():
            outs = _diff_outputs(_as_tuple(func(*inputs)))
        rng = np.random.default_rng(seed)
        grad_outputs = []
        for o in outs:
            a = rng.standard_normal(tuple(o.shape)).astype(o.detach().numpy().dtype)
            if gen_non_contig_grad_outputs and a.ndim >= 2:
                a = np.asfortranarray(a)
            grad_outputs.append(from_numpy(a).requires_grad_(True))
    grad_outputs = _as_tuple(grad_outputs)
    n_in = len(inputs)

    def new_func(*args):
        xs, gos = args[:n_in], args[n_in:]
        outs = _diff_outputs(_as_tuple(func(*xs)))
        pairs = [(o, g) for o, g in zip(outs, gos) if o.requires_grad]
        if not pairs:
            return ()
        outs, gos = zip(*pairs)
        grads = grad(outs, [xs[k] for k in diff_idx], grad_outputs=gos,
                              create_graph=True, allow_unused=True)
        return tuple(g for g in grads if g is not None)

    with grad_mode.enable_grad():
        return gradcheck(new_func, inputs + grad_outputs, eps=eps, atol=atol, rtol=rtol,
                         raise_exception=raise_exception, nondet_tol=nondet_tol)
