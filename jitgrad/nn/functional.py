"""jitgrad.nn.functional: losses and activations with torch's signatures.

Losses whose torch ``grad_fn`` is a single node (BCE-with-logits, BCE, MSE) are elementwise
registry primitives with their own numerically safe rules, reduced inside the same node;
the others are composed from primitives (l1_loss is ``abs(x - y).mean()``, as in torch);
cross_entropy is ``nll_loss(log_softmax(x))``.
"""
from __future__ import annotations

import numpy as np

from .. import functional_ops as F
from ..ops import ELEMENTWISE
from ..tensor import Ctx, Function, Tensor, apply_elementwise, apply_fn
from ..ops import structural

relu = F.relu
tanh = F.tanh
sigmoid = F.sigmoid
silu = F.silu
softmax = F.softmax
log_softmax = F.log_softmax


def gelu(x, approximate="none"):
    if approximate == "tanh":
        c = 0.7978845608028654
        return 0.5 * x * (1 + F.tanh(c * (x + 0.044715 * x * x * x)))
    if approximate != "none":
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return F.gelu_exact(x)


def _check_reduction(reduction):
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"{reduction} is not a valid value for reduction")


def _loss(row_name, input, target, reduction):
    _check_reduction(reduction)
    if not isinstance(target, Tensor):
        target = F._tt(target)
    if tuple(input.shape) != tuple(target.shape):
        raise ValueError(f"Target size ({list(target.shape)}) must be the same as input size "
                         f"({list(input.shape)})")
    return apply_elementwise(ELEMENTWISE[row_name], (input, target),
                             reduce=None if reduction == "none" else reduction)


def _weighted(loss, weight, reduction):
    loss = loss * weight
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None, reduce=None,
                                     reduction="mean", pos_weight=None):
    if weight is None and pos_weight is None:
        return _loss("bce_with_logits", input, target, reduction)
    _check_reduction(reduction)
    if pos_weight is not None:  # (1 - y) z + (1 + (pw - 1) y) softplus(-z), composed
        lw = 1 + (pos_weight - 1) * target
        sp = F.log1p(F.exp(-F.abs(input))) + F.relu(-input)
        loss = (1 - target) * input + lw * sp
    else:
        loss = _loss("bce_with_logits", input, target, "none")
    return _weighted(loss, 1 if weight is None else weight, reduction)


def binary_cross_entropy(input, target, weight=None, size_average=None, reduce=None,
                         reduction="mean"):
    if weight is None:
        return _loss("bce", input, target, reduction)
    return _weighted(_loss("bce", input, target, "none"), weight, reduction)


def mse_loss(input, target, size_average=None, reduce=None, reduction="mean"):
    return _loss("mse", input, target, reduction)


def l1_loss(input, target, size_average=None, reduce=None, reduction="mean"):
    _check_reduction(reduction)
    loss = F.abs(input - target)
    return _weighted(loss, 1, reduction)


def linear(input, weight, bias=None):
    out = F.matmul(input, weight.t() if weight.dim() == 2 else weight)
    return out if bias is None else out + bias


@structural("nll_loss", "NllLossBackward0")
class _NllLoss(Function):
    """-input[n, target[n]] * w[target[n]], summed or averaged over non-ignored rows."""

    @staticmethod
    def forward(ctx, x, target, weight, ignore_index, reduction):
        n, c = x.shape[0], x.shape[1]
        t = target
        valid = t != ignore_index
        tt = np.where(valid, t, 0)
        w = np.ones(c, x.dtype) if weight is None else weight.astype(x.dtype)
        wt = np.where(valid, w[tt], 0).astype(x.dtype)
        # gather input[n, t, ...] along dim 1
        picked = np.take_along_axis(x, tt[:, None, ...], axis=1)[:, 0, ...]
        losses = -picked * wt
        denom = wt.sum(dtype=np.float64)
        coef = wt.copy()
        if reduction == "none":
            out = losses
        elif reduction == "sum":
            out = np.asarray(losses.sum(dtype=np.float64), x.dtype)
        else:
            out = np.asarray(losses.sum(dtype=np.float64) / denom, x.dtype)
            coef = (wt / denom).astype(x.dtype) if denom else wt * np.nan
        onehot = np.zeros(x.shape, x.dtype)
        np.put_along_axis(onehot, tt[:, None, ...], (-coef)[:, None, ...], axis=1)
        ctx.onehot = onehot
        ctx.reduction = reduction
        return out

    @staticmethod
    def backward(ctx, g):
        gg = g if ctx.reduction != "none" else g.unsqueeze(1)
        return (gg * Tensor._make(ctx.onehot),)


def nll_loss(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
             reduction="mean"):
    _check_reduction(reduction)
    x = input
    t = target._data if isinstance(target, Tensor) else np.asarray(target)
    if t.dtype.kind not in "iu":
        raise RuntimeError(f"nll_loss: expected target of integer dtype (class indices), got "
                           f"{t.dtype}")
    unbatched = x.dim() == 1
    if unbatched:
        x = x.unsqueeze(0)
        t = t.reshape(1)
    if x.dim() < 2 or t.shape != (x.shape[0],) + tuple(x.shape[2:]):
        raise ValueError(f"nll_loss: expected input of shape (N, C, ...) and target (N, ...); "
                         f"got input {list(input.shape)} and target {list(t.shape)}")
    c = x.shape[1]
    bad = (t != ignore_index) & ((t < 0) | (t >= c))
    if bad.any():
        raise IndexError(f"nll_loss: target {int(t[bad][0])} is out of bounds for {c} classes")
    w = None if weight is None else weight._data
    if w is not None and w.shape != (c,):
        raise ValueError(f"nll_loss: weight must have shape ({c},), got {list(w.shape)}")
    out = apply_fn(_NllLoss, (x,), target=t.astype(np.int64), weight=w,
                   ignore_index=ignore_index, reduction=reduction)
    if unbatched and reduction == "none":
        out = out.reshape(())
    return out


def cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
                  reduction="mean", label_smoothing=0.0):
    if label_smoothing:
        raise NotImplementedError("cross_entropy(label_smoothing=...) is not supported yet")
    t = target._data if isinstance(target, Tensor) else np.asarray(target)
    if t.dtype.kind == "f":
        raise NotImplementedError("cross_entropy with class probabilities is not supported yet; "
                                  "pass class indices")
    dim = 0 if input.dim() == 1 else 1
    return nll_loss(F.log_softmax(input, dim), target, weight, ignore_index=ignore_index,
                    reduction=reduction)
