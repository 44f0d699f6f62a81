"""jitgrad.nn.functional: losses and activations with torch's signatures.

Losses whose torch ``grad_fn`` is a single node (BCE-with-logits, BCE, MSE) are elementwise
registry primitives with their own numerically safe rules, reduced inside the same node;
the others are composed from primitives (l1_loss is ``abs(x - y).mean()``, as in torch);
cross_entropy of (N, C) logits is one node (``NllLossBackward0``: log-softmax and NLL in one
kernel, the gradient ``softmax - onehot`` in one kernel); other shapes compose
``nll_loss(log_softmax(x))``. ``linear`` with a 2-D input, 2-D weight and a bias is one node
(``AddmmBackward0``): a BLAS product plus a bias epilogue forward, dX, dW and db in one backward.
"""
from __future__ import annotations

import numpy as np

from .. import functional_ops as F
from ..backends import cpu_nn
from ..ops import ELEMENTWISE
from ..ops import structural
from ..tensor import Ctx, Tensor, apply_elementwise, apply_fn, broadcast_shapes

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


def _on_cpu(*ts) -> bool:
    """All operands are concrete or pending CPU tensors (the fused nodes have no GPU forward;
    GPU tensors take the composed path)."""
    for t in ts:
        a = t._arr
        if a is None:
            if t._lazy.cuda:
                return False
        elif type(a) is not np.ndarray:
            return False
    return True


_SCALAR_NAMES = {"float64": "Double", "float32": "Float", "float16": "Half", "int64": "Long",
                 "int32": "Int", "bool": "Bool"}


def _dt(d):
    """torch's scalar-type name of a NumPy dtype (its error messages say Float, Double)."""
    return _SCALAR_NAMES.get(np.dtype(d).name, np.dtype(d).name)


@structural("linear", "AddmmBackward0")
class _Linear:
    """``input @ weight.T + bias`` for a 2-D input, as torch's ``addmm``: one node whose inputs
    are (bias, input, weight) in torch's order. Forward: one BLAS product into a fresh array and
    one bias epilogue. Backward: dX = g @ W, dW = g.T @ X (in the weight's own layout, so a
    transposed-view weight gets a gradient without a copy), db = column sums of g."""

    def forward(ctx, b, x, w):
        out = np.matmul(x, w.T)
        if b.shape == out.shape[1:] and b.flags.c_contiguous:
            if out.size:
                cpu_nn.add_rows(out, b)
        else:
            np.add(out, b, out=out)
        return out

    def vjp(V, ctx, g):
        x, w = V.saved(ctx)  # (like torch's addmm: mat1 and mat2, not the bias)
        nb, nx, nw = ctx.needs_input_grad
        gb = V.sum_to(g, ctx.shapes[0]) if nb else None
        gx = V.matmul(g, w) if nx else None
        gw = V.matmul_as(V.mT(g), x, w) if nw else None
        return gb, gx, gw


def _linear_fused(input, weight, bias):
    """``_Linear`` when the operands fit it (None otherwise), after torch's checks."""
    if not (isinstance(bias, Tensor) and isinstance(input, Tensor) and isinstance(weight, Tensor)):
        return None
    (xs, xd), (ws, wd), (bs, bd) = input._meta, weight._meta, bias._meta
    if len(xs) != 2 or len(ws) != 2 or xd.kind != "f" or not _on_cpu(input, weight, bias):
        return None
    if xd != wd:
        raise RuntimeError(f"mat1 and mat2 must have the same dtype, but got {_dt(xd)} and "
                           f"{_dt(wd)}")
    if bd != wd:
        raise RuntimeError(f"self and mat2 must have the same dtype, but got {_dt(bd)} and "
                           f"{_dt(wd)}")
    if xs[1] != ws[1]:
        raise RuntimeError(f"mat1 and mat2 shapes cannot be multiplied ({xs[0]}x{xs[1]} and "
                           f"{ws[1]}x{ws[0]})")
    oshape = (xs[0], ws[0])
    ok = bs == oshape[1:] or bs == oshape
    if not ok:
        try:
            ok = broadcast_shapes(bs, oshape) == oshape
        except (RuntimeError, ValueError):
            ok = False
    if not ok:
        raise RuntimeError(f"linear: bias of shape {list(bs)} cannot be broadcast to the "
                           f"output shape {list(oshape)} (input {list(xs)}, weight {list(ws)})")
    ctx = Ctx()
    out = apply_fn(_Linear, (bias, input, weight), ctx=ctx)
    node = out.grad_fn
    if node is not None and getattr(node, "ctx", None) is ctx:
        # like torch's addmm: save mat1 and mat2 (version-checked at backward), not the bias
        ctx.saved_tensors = (input, weight)
        node.saved_versions = ((input._vc, input._vc[0], input),
                               (weight._vc, weight._vc[0], weight))
    return out


def linear(input, weight, bias=None):
    """torch.nn.functional.linear: ``input @ weight.T + bias``. A 2-D input with a 2-D weight
    and a bias is one fused node, ``AddmmBackward0`` like torch (its next_functions are the
    bias's, input's and weight's own nodes: no ``TBackward0`` between); other shapes are
    composed from ``matmul`` and ``+`` (torch's ``MmBackward0``, ``ViewBackward0``, ...)."""
    out = _linear_fused(input, weight, bias)
    if out is not None:
        return out
    out = F.matmul(input, weight.t() if weight.dim() == 2 else weight)
    return out if bias is None else out + bias


@structural("nll_loss", "NllLossBackward0")
class _NllLoss:
    """-input[n, target[n]] * w[target[n]], summed or averaged over non-ignored rows."""

    def forward(ctx, x, target, weight, ignore_index, reduction):
        n, c = x.shape[0], x.shape[1]
        t = target
        valid = t != ignore_index
        tt = np.where(valid, t, 0)
        w = np.ones(c, x.dtype) if weight is None else weight.astype(x.dtype)
        wt = np.where(valid, w[tt], 0).astype(x.dtype)
        # gather input[n, t, ...] along dim 1
        picked = np.take_along_axis(x, tt[:, None, ...], axis=1)[:, 0, ...]
        losses = np.where(valid, -picked * wt, 0).astype(x.dtype)  # ignored rows: 0, even NaN
        denom = wt.sum(dtype=np.float64)
        coef = wt.copy()
        if reduction == "none":
            out = losses
        elif reduction == "sum":
            out = np.asarray(losses.sum(dtype=np.float64), x.dtype)
        else:  # a zero weight total: NaN loss; like torch the gradient is w/0 (NaN) for
            # rows that count and 0 for ignored rows (all zeros when every row is ignored)
            with np.errstate(divide="ignore", invalid="ignore"):
                out = np.asarray(losses.sum(dtype=np.float64) / denom, x.dtype)
                coef = np.where(valid, wt / denom, 0).astype(x.dtype)
        onehot = np.zeros(x.shape, x.dtype)
        # (ignored rows get +0 like torch, not -0)
        np.put_along_axis(onehot, tt[:, None, ...], np.where(valid, -coef, 0)[:, None, ...],
                          axis=1)
        ctx.onehot = onehot
        return out

    def vjp(V, ctx, g):
        if ctx.reduction == "none":
            s = V.shape(g)
            g = V.reshape(g, s[:1] + (1,) + s[1:])
        return (g * V.const(ctx.onehot),)


def _nll_loss_masked(x, t, w, ignore_index, reduction):
    """nll_loss on the GPU as ``-(where(P, x, 0) * M).sum(...)``: P marks each row's target
    class (not in ignored rows) and M holds its weight (divided by the weight total for
    'mean'), both built on the host from the (host) targets; the GPU runs one fused kernel each
    way. ``where`` keeps an inf/NaN logit elsewhere in a row out of the loss (0 * inf is NaN)."""
    from ..functional_ops import where
    c = x.shape[1]
    dt = x._meta[1]
    valid = t != ignore_index
    tt = np.where(valid, t, 0)
    wv = np.ones(c) if w is None else np.asarray(w, np.float64)
    wt = np.where(valid, wv[tt], 0.0)
    # nothing to average: NaN loss; the gradient is w/0 (NaN) for counted rows, 0 for ignored
    nan = reduction == "mean" and not valid.any()
    if reduction == "mean":
        with np.errstate(divide="ignore", invalid="ignore"):
            wt = np.where(valid, wt / wt.sum(), 0.0)
    m = np.zeros(x.shape, dt)
    np.put_along_axis(m, tt[:, None, ...], wt.astype(dt)[:, None, ...], axis=1)
    pick = np.zeros(x.shape, np.bool_)
    np.put_along_axis(pick, tt[:, None, ...], valid[:, None, ...], axis=1)
    cb = _cuda_backend()
    prod = where(Tensor._make(cb.to_device(pick)), x, 0.0) * Tensor._make(cb.to_device(m))
    loss = -(prod.sum(dim=1) if reduction == "none" else prod.sum())
    return loss + float("nan") if nan else loss


def _cuda_backend():
    from ..backends import cuda
    return cuda


def nll_loss(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
             reduction="mean"):
    _check_reduction(reduction)
    x = input
    t = target._host if isinstance(target, Tensor) else np.asarray(target)
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
    w = None if weight is None else weight._host
    if w is not None and w.shape != (c,):
        raise ValueError(f"nll_loss: weight must have shape ({c},), got {list(w.shape)}")
    if x.is_cuda:
        out = _nll_loss_masked(x, t.astype(np.int64), w, ignore_index, reduction)
    else:
        out = apply_fn(_NllLoss, (x,), target=t.astype(np.int64), weight=w,
                       ignore_index=ignore_index, reduction=reduction)
    if unbatched and reduction == "none":
        out = out.reshape(())
    return out


def cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
                  reduction="mean", label_smoothing=0.0):
    if label_smoothing:
        raise NotImplementedError("cross_entropy(label_smoothing=...) is not supported yet")
    t = target._host if isinstance(target, Tensor) else np.asarray(target)
    if t.dtype.kind == "f":
        raise NotImplementedError("cross_entropy with class probabilities is not supported yet; "
                                  "pass class indices")
    if isinstance(input, Tensor) and input.dim() == 2 and input._meta[1].kind == "f" and \
            _on_cpu(input) and (weight is None or _on_cpu(weight)):
        return _cross_entropy_fused(input, t, weight, ignore_index, reduction)
    dim = 0 if input.dim() == 1 else 1
    return nll_loss(F.log_softmax(input, dim), target, weight, ignore_index=ignore_index,
                    reduction=reduction)


@structural("cross_entropy", "NllLossBackward0")
class _CrossEntropy:
    """Softmax cross-entropy of (N, C) logits against class indices as one node named like
    torch's ``NllLossBackward0``. Forward: one kernel computes the row log-sum-exps, the loss
    and softmax(x); backward: one kernel writes ``g * w[t] * (softmax - onehot)``.

    Like torch (whose log_softmax saves its output, not its input) first-order backward reads
    only what the forward computed, so writing into the logits afterwards is allowed; a
    ``create_graph`` backward recomputes softmax from the logits (differentiable again) and
    raises if they were modified in place."""

    def forward(ctx, x, target, weight, ignore_index, reduction):
        n, c = x.shape
        probs = np.empty((n, c), x.dtype)
        losses = np.empty(n, x.dtype)
        coef = np.empty(n, np.float64)
        has_w = weight is not None
        total, denom = cpu_nn.cross_entropy_fwd(x, target, weight if has_w else losses, has_w,
                                                ignore_index, probs, losses, coef)
        if reduction == "none":
            out = losses
        elif reduction == "sum":
            out = np.asarray(total, x.dtype)
        elif denom:
            out = np.asarray(total / denom, x.dtype)
            coef /= denom
        else:  # like torch: loss total/0 (NaN); gradient w/0 (NaN) for rows that count, but
            # 0 for ignored rows (so with every row ignored the gradient is all zeros)
            with np.errstate(divide="ignore", invalid="ignore"):
                out = np.asarray(np.float64(total) / np.float64(denom), x.dtype)
                coef = np.where(target == ignore_index, 0.0, coef / denom)
        ctx.probs, ctx.coef = probs, coef
        return out

    def vjp(V, ctx, g):
        return (V.xent_vjp(ctx, g),)


def _cross_entropy_fused(x, t, weight, ignore_index, reduction):
    _check_reduction(reduction)
    if t.dtype.kind not in "iu":
        raise RuntimeError(f"cross_entropy: expected target of integer dtype (class indices), "
                           f"got {t.dtype}")
    n, c = x._meta[0]
    if t.shape != (n,):
        raise ValueError(f"cross_entropy: expected input of shape (N, C) and target (N,); got "
                         f"input {[n, c]} and target {list(t.shape)}")
    if t.dtype != np.int64:
        t = t.astype(np.int64)
    ignore_index = int(ignore_index)
    bad = cpu_nn.first_bad_target(t, ignore_index, c) if n else -1
    if bad >= 0:
        raise IndexError(f"cross_entropy: target {int(t[bad])} is out of bounds for {c} classes")
    w = None
    if weight is not None:
        w = weight._data if isinstance(weight, Tensor) else np.asarray(weight)
        if w.shape != (c,):
            raise ValueError(f"cross_entropy: weight must have shape ({c},), got "
                             f"{list(w.shape)}")
        w = np.ascontiguousarray(w, x._meta[1])
    ctx = Ctx()
    out = apply_fn(_CrossEntropy, (x,), ctx=ctx, target=t, weight=w,
                   ignore_index=ignore_index, reduction=reduction)
    node = out.grad_fn
    if node is not None and getattr(node, "ctx", None) is ctx:
        ctx.x, ctx.x_version = x, x._vc[0]
        node.saved_versions = ()  # nothing version-checked; freed after backward like torch
    return out
