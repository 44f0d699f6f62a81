"""RMSprop (torch.optim.RMSprop's update: centered, momentum, weight decay, maximize)."""
from __future__ import annotations

from . import _fused
from .optimizer import (Optimizer, _step_scalar, _step_tensor, _zeros_like_param, check_nonneg,
                        lerp)


def _update(m, f, x):
    g = -x.g if f["maximize"] else x.g
    if f["wd"]:
        g = g + x.wd * x.p
    sq = x.square_avg * x.alpha + x.w * g * g
    out = {"square_avg": sq}
    if f["centered"]:
        ga = out["grad_avg"] = lerp(x.grad_avg, g, x.w, f["lerp_hi"])
        avg = m.sqrt(sq + -1.0 * ga * ga)
    else:
        avg = m.sqrt(sq)
    avg = avg + x.eps
    if f["momentum"]:
        buf = out["momentum_buffer"] = x.momentum_buffer * x.momentum + g / avg
        out["param"] = x.p + x.neg_lr * buf
    else:
        out["param"] = x.p + x.neg_lr * g / avg
    return out


RULE = _fused.Rule(
    "rmsprop", _update,
    lambda f: ("square_avg",) + (("momentum_buffer",) if f["momentum"] else ()) +
    (("grad_avg",) if f["centered"] else ()),
    ("neg_lr", "wd", "alpha", "w", "eps", "momentum"))


class RMSprop(Optimizer):
    """RMSprop::

        g = -grad if maximize else grad;  g += weight_decay * p
        s = alpha * s + (1 - alpha) * g * g
        centered: a = lerp(a, g, 1 - alpha);  avg = sqrt(s - a * a) + eps, else sqrt(s) + eps
        momentum > 0: buf = momentum * buf + g / avg;  p -= lr * buf,  else p -= lr * g / avg

    ``fused=False`` updates with jitgrad elementwise ops instead of the fused kernel;
    ``foreach`` is accepted and ignored."""

    _rule = RULE

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0,
                 centered=False, capturable=False, foreach=None, maximize=False,
                 differentiable=False, fused=None):
        defaults = dict(lr=lr, momentum=momentum, alpha=alpha, eps=eps, centered=centered,
                        weight_decay=weight_decay, capturable=capturable, foreach=foreach,
                        maximize=maximize, differentiable=differentiable)
        if fused is not None:
            defaults["fused"] = fused
        super().__init__(params, defaults)

    def _check(self, group):
        super()._check(group)
        check_nonneg(group, "eps", "momentum", "weight_decay", "alpha")

    def _flags(self, group):
        return {"maximize": bool(group["maximize"]), "wd": group["weight_decay"] != 0,
                "centered": bool(group["centered"]), "momentum": group["momentum"] > 0,
                "lerp_hi": 1 - group["alpha"] >= 0.5}

    def _prepare(self, p, state, group, memo):
        if not state:
            state["step"] = _step_tensor()
            state["square_avg"] = _zeros_like_param(p)
        if group["momentum"] > 0 and "momentum_buffer" not in state:
            state["momentum_buffer"] = _zeros_like_param(p)
        if group["centered"] and "grad_avg" not in state:
            state["grad_avg"] = _zeros_like_param(p)
        _step_scalar(state)
        r = memo.get(0)
        if r is None:
            alpha = group["alpha"]
            r = memo[0] = (-group["lr"], group["weight_decay"], alpha, 1 - alpha, group["eps"],
                           group["momentum"])
        return r
