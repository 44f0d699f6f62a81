"""SGD with momentum, dampening, Nesterov, weight decay and maximize (torch.optim.SGD's update)."""
from __future__ import annotations

from . import _fused
from .optimizer import Optimizer, _zeros_like_param, check_nonneg


def _update(m, f, x):
    g = -x.g if f["maximize"] else x.g
    if f["wd"]:
        g = g + x.wd * x.p
    out = {}
    if f["momentum"]:
        # the first step's buffer is the gradient itself (torch clones it)
        buf = m.where(x.first > 0, g, x.momentum_buffer * x.momentum + x.damp1 * g)
        out["momentum_buffer"] = buf
        g = g + x.momentum * buf if f["nesterov"] else buf
    out["param"] = x.p + x.neg_lr * g
    return out


RULE = _fused.Rule("sgd", _update,
                   lambda f: ("momentum_buffer",) if f["momentum"] else (),
                   ("neg_lr", "wd", "momentum", "damp1", "first"))


class SGD(Optimizer):
    """Stochastic gradient descent, optionally with (Nesterov) momentum::

        g = -grad if maximize else grad;  g += weight_decay * p
        buf = g (first step) or momentum * buf + (1 - dampening) * g
        g = g + momentum * buf if nesterov else buf;   p -= lr * g

    ``fused=False`` updates with jitgrad elementwise ops instead of the fused kernel;
    ``foreach`` is accepted and ignored."""

    _rule = RULE

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0,
                 nesterov=False, *, maximize=False, foreach=None, differentiable=False,
                 fused=None):
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening,
                        weight_decay=weight_decay, nesterov=nesterov, maximize=maximize,
                        foreach=foreach, differentiable=differentiable, fused=fused)
        super().__init__(params, defaults)

    def _check(self, group):
        super()._check(group)
        check_nonneg(group, "momentum", "weight_decay")
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")

    def _flags(self, group):
        return {"maximize": bool(group["maximize"]), "wd": group["weight_decay"] != 0,
                "momentum": group["momentum"] != 0, "nesterov": bool(group["nesterov"])}

    def _prepare(self, p, state, group, memo):
        mom = group["momentum"]
        first = 0.0
        if mom != 0 and state.get("momentum_buffer") is None:
            state["momentum_buffer"] = _zeros_like_param(p)
            first = 1.0
        return (-group["lr"], group["weight_decay"], mom, 1 - group["dampening"], first)
