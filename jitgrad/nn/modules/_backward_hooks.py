"""Module full backward hooks (torch's ``BackwardHook``): the module's tensor inputs and
outputs pass through an identity Function; its backward on the outputs sees ``grad_output``
(and runs the pre-hooks), its backward on the inputs sees ``grad_input`` (and runs the hooks)."""
from __future__ import annotations

from ..._state import is_grad_enabled
from ..._tensor import Tensor
from ...autograd.function import Function, _OutputNode


class BackwardHookFunction(Function):
    """Identity whose node is where a module's backward hooks run."""

    @staticmethod
    def forward(ctx, *args):
        ctx.mark_non_differentiable(*[a for a in args if not a.requires_grad])
        return args

    @staticmethod
    def backward(ctx, *grads):
        return ctx.on_grads(grads)


class BackwardHook:
    """One module call's hook state."""

    def __init__(self, module, hooks, pre_hooks):
        self.module, self.hooks, self.pre_hooks = module, hooks, pre_hooks
        self.n_inputs = 0
        self.input_idx = None
        self.grad_outputs = None
        self.n_outputs = 0

    @staticmethod
    def _wrap(args, on_grads, materialize):
        """Pass the tensors among ``args`` through BackwardHookFunction; (new args, the
        tensors' positions) or (args, None) when none requires grad. Like torch, the hooks
        see zeros for inputs that got no gradient but None for such outputs."""
        idx = [k for k, a in enumerate(args) if isinstance(a, Tensor)]
        if not (is_grad_enabled() and any(args[k].requires_grad for k in idx)):
            return args, None
        new = BackwardHookFunction.apply(*[args[k] for k in idx])
        for t in new:
            if t.grad_fn is not None:
                ctx = _ctx(t.grad_fn)
                ctx.on_grads = on_grads
                ctx.set_materialize_grads(materialize)
                break
        out = list(args)
        for k, t in zip(idx, new):
            out[k] = t
        return tuple(out), idx

    def _pack(self, idx, grads, n):
        res = [None] * n
        for k, g in zip(idx, grads):
            res[k] = g
        return tuple(res)

    def setup_input_hook(self, args):
        self.n_inputs = len(args)
        args, self.input_idx = self._wrap(args, self._on_input_grads, True)
        return args

    def setup_output_hook(self, out):
        is_tuple = isinstance(out, tuple)
        outs = out if is_tuple else (out,)
        self.n_outputs = len(outs)
        new, self.output_idx = self._wrap(outs, self._on_output_grads, False)
        return new if is_tuple else new[0]

    def _on_output_grads(self, grads):
        grad_outputs = self._pack(self.output_idx, grads, self.n_outputs)
        for hook in self.pre_hooks:
            res = hook(self.module, grad_outputs)
            if res is not None:
                res = res if isinstance(res, tuple) else (res,)
                if len(res) != len(grad_outputs):
                    raise RuntimeError(f"Backward pre hook returned an invalid number of "
                                       f"grad_output, got {len(res)}, but expected "
                                       f"{len(grad_outputs)}")
                grad_outputs = res
        self.grad_outputs = grad_outputs
        if self.input_idx is None:  # no input requires grad: the hooks run now
            none = (None,) * self.n_inputs
            for hook in self.hooks:
                res = hook(self.module, none, grad_outputs)
                if res is not None and not all(r is None for r in res):
                    raise RuntimeError("Backward hook for Modules where no input requires "
                                       "gradient should always return None or None for all "
                                       "gradients.")
        return tuple(grad_outputs[k] for k in self.output_idx)

    def _on_input_grads(self, grads):
        grad_inputs = self._pack(self.input_idx, grads, self.n_inputs)
        for hook in self.hooks:
            res = hook(self.module, grad_inputs, self.grad_outputs)
            if res is not None:
                res = res if isinstance(res, tuple) else (res,)
                if len(res) != len(grad_inputs):
                    raise RuntimeError(f"Backward hook returned an invalid number of "
                                       f"grad_input, got {len(res)}, but expected "
                                       f"{len(grad_inputs)}")
                grad_inputs = res
        return tuple(grad_inputs[k] for k in self.input_idx)


def _ctx(fn):
    """The shared ctx node behind an output's grad_fn (itself, or the node a per-output node
    forwards to)."""
    return fn.next_edges[0] if isinstance(fn, _OutputNode) else fn
