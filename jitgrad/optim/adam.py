"""Adam and AdamW (torch.optim.Adam / AdamW's update, amsgrad and maximize included)."""
from __future__ import annotations

import math

from . import _fused
from .optimizer import (Optimizer, _step_scalar, _step_tensor, _zeros_like_param, check_nonneg,
                        lerp)


def _update(m, f, x):
    g = -x.g if f["maximize"] else x.g
    p = x.p
    if f["wd"]:
        if f["decoupled"]:
            p = p * x.decay  # AdamW: p *= 1 - lr * weight_decay, before the update
        else:
            g = g + x.wd * p
    exp_avg = lerp(x.exp_avg, g, x.w1, f["lerp_hi"])
    exp_avg_sq = x.exp_avg_sq * x.beta2 + x.w2 * g * g
    out = {"exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq}
    v = exp_avg_sq
    if f["amsgrad"]:
        v = out["max_exp_avg_sq"] = m.maximum(x.max_exp_avg_sq, exp_avg_sq)
    denom = m.sqrt(v) / x.bc2_sqrt + x.eps
    out["param"] = p + x.neg_step * exp_avg / denom
    return out


RULE = _fused.Rule(
    "adam", _update,
    lambda f: ("exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if f["amsgrad"] else ()),
    ("neg_step", "wd", "decay", "w1", "beta2", "w2", "bc2_sqrt", "eps"))


class Adam(Optimizer):
    """Adam (``decoupled_weight_decay=True``: AdamW)::

        g = -grad if maximize else grad;  g += weight_decay * p  (AdamW: p *= 1 - lr * wd)
        m = lerp(m, g, 1 - beta1);  v = beta2 * v + (1 - beta2) * g * g
        v_max = max(v_max, v) (amsgrad)
        p -= lr / (1 - beta1^t) * m / (sqrt(v or v_max) / sqrt(1 - beta2^t) + eps)

    ``fused=False`` updates with jitgrad elementwise ops instead of the fused kernel;
    ``foreach`` is accepted and ignored."""

    _rule = RULE

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 amsgrad=False, *, foreach=None, maximize=False, capturable=False,
                 differentiable=False, fused=None, decoupled_weight_decay=False):
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                        amsgrad=amsgrad, maximize=maximize, foreach=foreach,
                        capturable=capturable, differentiable=differentiable, fused=fused,
                        decoupled_weight_decay=decoupled_weight_decay)
        super().__init__(params, defaults)

    def _check(self, group):
        super()._check(group)
        check_nonneg(group, "eps", "weight_decay")
        betas = group["betas"]
        if len(betas) != 2:
            raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        for i, b in enumerate(betas):
            if not 0.0 <= b < 1.0:
                raise ValueError(f"Invalid beta parameter at index {i}: {b}")

    def _flags(self, group):
        return {"maximize": bool(group["maximize"]), "wd": group["weight_decay"] != 0,
                "decoupled": bool(group["decoupled_weight_decay"]),
                "amsgrad": bool(group["amsgrad"]), "lerp_hi": 1 - group["betas"][0] >= 0.5}

    def _prepare(self, p, state, group, memo):
        if not state:
            state["step"] = _step_tensor()
            state["exp_avg"] = _zeros_like_param(p)
            state["exp_avg_sq"] = _zeros_like_param(p)
        if group["amsgrad"] and "max_exp_avg_sq" not in state:
            state["max_exp_avg_sq"] = _zeros_like_param(p)
        step = _step_scalar(state)
        r = memo.get(step)
        if r is None:
            beta1, beta2 = group["betas"]
            lr, wd = group["lr"], group["weight_decay"]
            bc1 = 1 - beta1 ** step
            bc2 = 1 - beta2 ** step
            r = memo[step] = (-(lr / bc1), wd, 1 - lr * wd, 1 - beta1, beta2, 1 - beta2,
                              math.sqrt(bc2), group["eps"])
        return r


class AdamW(Adam):
    """Adam with decoupled weight decay (``p *= 1 - lr * weight_decay`` each step)."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False, *, maximize=False, foreach=None, capturable=False,
                 differentiable=False, fused=None):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         amsgrad=amsgrad, foreach=foreach, maximize=maximize,
                         capturable=capturable, differentiable=differentiable, fused=fused,
                         decoupled_weight_decay=True)
