"""Adagrad (torch.optim.Adagrad's update: lr decay, weight decay, initial accumulator)."""
from __future__ import annotations

from . import _fused
from .optimizer import Optimizer, _step_scalar, _step_tensor, _zeros_like_param, check_nonneg


def _update(m, f, x):
    g = -x.g if f["maximize"] else x.g
    if f["wd"]:
        g = g + x.wd * x.p
    s = x.sum + g * g
    std = m.sqrt(s) + x.eps
    return {"sum": s, "param": x.p + x.neg_clr * g / std}


RULE = _fused.Rule("adagrad", _update, lambda f: ("sum",), ("neg_clr", "wd", "eps"))


class Adagrad(Optimizer):
    """Adagrad::

        g = -grad if maximize else grad;  g += weight_decay * p
        clr = lr / (1 + (t - 1) * lr_decay);  s += g * g;  p -= clr * g / (sqrt(s) + eps)

    Like torch, every parameter's state (``step``, ``sum`` = initial_accumulator_value) exists
    from construction. ``fused=False`` updates with jitgrad elementwise ops instead of the
    fused kernel; ``foreach`` is accepted and ignored."""

    _rule = RULE

    def __init__(self, params, lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0,
                 eps=1e-10, foreach=None, *, maximize=False, differentiable=False, fused=None):
        defaults = dict(lr=lr, lr_decay=lr_decay, eps=eps, weight_decay=weight_decay,
                        initial_accumulator_value=initial_accumulator_value, foreach=foreach,
                        maximize=maximize, differentiable=differentiable, fused=fused)
        super().__init__(params, defaults)
        for group in self.param_groups:
            for p in group["params"]:
                self._init(p, self.state[p], group)

    def _check(self, group):
        super()._check(group)
        check_nonneg(group, "lr_decay", "weight_decay", "initial_accumulator_value", "eps")

    @staticmethod
    def _init(p, state, group):
        state["step"] = _step_tensor()
        state["sum"] = _zeros_like_param(p, float(group["initial_accumulator_value"]))

    def _flags(self, group):
        return {"maximize": bool(group["maximize"]), "wd": group["weight_decay"] != 0}

    def _prepare(self, p, state, group, memo):
        if "sum" not in state:  # (a group added after construction)
            self._init(p, state, group)
        step = _step_scalar(state)
        r = memo.get(step)
        if r is None:
            clr = group["lr"] / (1 + (step - 1) * group["lr_decay"])
            r = memo[step] = (-clr, group["weight_decay"], group["eps"])
        return r
