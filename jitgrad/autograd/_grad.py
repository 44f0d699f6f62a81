"""autograd.backward and autograd.grad: seed the output gradients and run the engine's sweep
(jitgrad._engine) into ``.grad`` or into returned tensors."""
from __future__ import annotations

from .._engine import accumulate_into_grad, grad_edge, run_backward
from .._tensor import Tensor, tensor
from ..creation import ones_like, zeros_like

__all__ = ["backward", "grad"]


def _as_tuple(x):
    if x is None:
        return None
    if isinstance(x, (tuple, list)):
        return tuple(x)
    return (x,)


def _make_grads(outputs, grad_outputs):
    grads = []
    for k, out in enumerate(outputs):
        g = grad_outputs[k] if grad_outputs is not None else None
        if g is None:
            if out.numel() != 1:
                raise RuntimeError(f"grad can be implicitly created only for scalar outputs "
                                   f"(output {k} has shape {tuple(out.shape)}); pass "
                                   "gradient= / grad_outputs= with that shape")
            g = ones_like(out)
        else:
            if not isinstance(g, Tensor):
                g = tensor(g, dtype=out.dtype)
            if tuple(g.shape) != tuple(out.shape):
                raise RuntimeError(f"Mismatch in shape: grad_output[{k}] has a shape of "
                                   f"{tuple(g.shape)} and output[{k}] has a shape of "
                                   f"{tuple(out.shape)}.")
            if g._meta[1] != out._meta[1]:
                g = g.to(out.dtype)
        grads.append(g)
    return grads


def _check_differentiable(tensors):
    for k, t in enumerate(tensors):
        if not t.requires_grad:
            raise RuntimeError(f"element {k} of tensors does not require grad and does not have "
                               "a grad_fn")


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False, inputs=None):
    """Accumulate d(tensors)/d(leaf) into every reachable leaf's ``.grad``."""
    tensors = _as_tuple(tensors)
    grad_tensors = _as_tuple(grad_tensors)
    if retain_graph is None:
        retain_graph = create_graph
    _check_differentiable(tensors)
    grads = _make_grads(tensors, grad_tensors)
    roots = [(grad_edge(t), g) for t, g in zip(tensors, grads)]
    if inputs is not None:
        inputs = _as_tuple(inputs)
        capture = {grad_edge(x): k for k, x in enumerate(inputs)}
        got = run_backward(roots, retain_graph, create_graph, capture=capture, accumulate=False)
        for k, x in enumerate(inputs):
            if k in got:
                accumulate_into_grad(x, got[k], create_graph)
        return
    run_backward(roots, retain_graph, create_graph)


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False,
         allow_unused=None, materialize_grads=False):
    """Return d(outputs)/d(inputs) as a tuple without touching ``.grad``."""
    outputs = _as_tuple(outputs)
    inputs = _as_tuple(inputs)
    grad_outputs = _as_tuple(grad_outputs)
    if retain_graph is None:
        retain_graph = create_graph
    _check_differentiable(outputs)
    for k, x in enumerate(inputs):
        if not x.requires_grad:
            raise RuntimeError(f"One of the differentiated Tensors (input {k}) does not require "
                               "grad")
    grads = _make_grads(outputs, grad_outputs)
    roots = [(grad_edge(t), g) for t, g in zip(outputs, grads)]
    capture = {}
    for k, x in enumerate(inputs):
        capture.setdefault(grad_edge(x), k)
    got = run_backward(roots, retain_graph, create_graph, capture=capture, accumulate=False)
    res = []
    for k, x in enumerate(inputs):
        e = grad_edge(x)
        g = got.get(capture[e])
        if g is None:
            if materialize_grads:
                g = zeros_like(x)
            elif not allow_unused:
                raise RuntimeError(f"One of the differentiated Tensors (input {k}, shape "
                                   f"{tuple(x.shape)}) appears to not have been used in the "
                                   "graph. Set allow_unused=True if this is the desired behavior.")
        elif not create_graph:
            g = g.detach()
        res.append(g)
    return tuple(res)
