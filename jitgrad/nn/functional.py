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

from .. import batching as _batching
from .. import functional_ops as F
from .._engine import all_on_cpu
from .._state import no_grad
from .._tensor import Ctx, Tensor, apply_elementwise, apply_fn, broadcast_shapes, full
from ..backends import cpu, cpu_nn
from ..backends import cuda  # (numba.cuda itself is imported only when a GPU op runs)
from ..creation import default_generator
from ..functional_ops import where
from ..ops import ELEMENTWISE
from ..ops import structural

tanh = F.tanh
sigmoid = F.sigmoid
softmax = F.softmax
log_softmax = F.log_softmax


def _inplace(x, out, inplace):
    """``inplace=True``: write ``out`` into ``x`` (recorded like torch's in-place op: a leaf
    that requires grad refuses it) and return ``x``."""
    if not inplace:
        return out
    return x.copy_(out)


def relu(input, inplace=False):
    return _inplace(input, F.relu(input), inplace)


def silu(input, inplace=False):
    return _inplace(input, F.silu(input), inplace)


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


_SCALAR_NAMES = {"float64": "Double", "float32": "Float", "float16": "Half", "int64": "Long",
                 "int32": "Int", "bool": "Bool"}


def _dt(d):
    """torch's scalar-type name of a NumPy dtype (its error messages say Float, Double)."""
    return _SCALAR_NAMES.get(np.dtype(d).name, np.dtype(d).name)


@structural("linear", "AddmmBackward0")
class _Linear:
    """``input @ weight.T + bias`` for a 2-D input, as torch's ``addmm``: one node whose inputs
    are (bias, input, weight) in torch's order. Forward: one BLAS product into a fresh array and
    one bias epilogue (for wide float32 layers the product ``weight @ input.T``, transposed in
    the epilogue: ``backends.cpu.prefers_transposed``). Backward: dX = g @ W, dW = g.T @ X (in the
    weight's own layout, so a transposed-view weight gets a gradient without a copy), db =
    column sums of g."""

    def forward(ctx, b, x, w):
        row_bias = b.shape == w.shape[:1] and b.flags.c_contiguous  # (one per output feature)
        if row_bias and cpu.prefers_transposed(x, w):
            return cpu.product_t(x, w, b)
        out = np.matmul(x, w.T)
        if row_bias:
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
    if _batching.is_batched(bias, input, weight):  # inside vmap: matmul + add batch (and JVP)
        return None
    (xs, xd), (ws, wd), (bs, bd) = input._meta, weight._meta, bias._meta
    if len(xs) != 2 or len(ws) != 2 or xd.kind != "f" or not all_on_cpu(input, weight, bias):
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
    return cuda


def nll_loss(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
             reduction="mean"):
    _check_reduction(reduction)
    if _batching.is_batched(input, target, weight):  # inside vmap: composed, target as operand
        return _batching.nll_loss(input, target, weight, ignore_index, reduction)
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
    _check_reduction(reduction)
    label_smoothing = float(label_smoothing)
    if not 0.0 <= label_smoothing <= 1.0:
        raise RuntimeError(f"label_smoothing must be between 0.0 and 1.0. Got: "
                           f"{label_smoothing}")
    if _batching.is_batched(input, target, weight):  # inside vmap: composed, target as operand
        return _batching.cross_entropy(input, F._tt(target), weight, ignore_index, reduction,
                                       label_smoothing)
    t = target._host if isinstance(target, Tensor) else np.asarray(target)
    if t.dtype.kind == "f":
        return _cross_entropy_probs(input, target, weight, reduction, label_smoothing)
    if label_smoothing:
        return _cross_entropy_smoothed(input, target, t, weight, ignore_index, reduction,
                                       label_smoothing)
    if isinstance(input, Tensor) and input.dim() == 2 and input._meta[1].kind == "f" and \
            all_on_cpu(input) and (weight is None or all_on_cpu(weight)):
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


# ============================================================================================
# Composed entries (issue 15): each is a few registry ops (fused into one kernel when the
# tensors are large enough for lazy fusion), written so that no branch that ``where`` discards
# can put inf/NaN into the gradient.


def _class_shape(x, dim):
    """Shape that broadcasts a per-class (C,) vector against ``x`` along ``dim``."""
    s = [1] * x.dim()
    s[dim] = x.shape[dim]
    return s


def _cross_entropy_probs(input, target, weight, reduction, label_smoothing):
    """torch's probability-target branch: ``-sum_c w_c t_nc log_softmax(x)_nc``; 'mean'
    divides by the number of rows (not by weights)."""
    if not isinstance(target, Tensor):
        target = F._tt(target)
    if tuple(target.shape) != tuple(input.shape):
        raise RuntimeError(f"cross_entropy: expected target of the input's shape "
                           f"{list(input.shape)} for class probabilities, got "
                           f"{list(target.shape)}")
    cdim = 0 if input.dim() == 1 else 1
    c = input.shape[cdim]
    if label_smoothing > 0:
        target = target * (1 - label_smoothing) + label_smoothing / c
    logp = F.log_softmax(input, cdim)
    loss = logp * target
    if weight is not None:
        loss = loss * weight.reshape(_class_shape(input, cdim))
    if reduction == "none":
        return -loss.sum(cdim)
    if reduction == "sum":
        return -loss.sum()
    n = input.numel() // c if c else 0
    if n == 0:
        return -loss.sum() * float("nan")
    return -loss.sum() / n


def _cross_entropy_smoothed(input, target, t, weight, ignore_index, reduction, ls):
    """torch's label-smoothing branch: ``(1 - ls) * nll + ls / C * smooth`` where ``smooth``
    is ``-sum_c w_c log_softmax(x)_nc`` (0 on ignored rows), averaged like nll_loss."""
    cdim = 0 if input.dim() == 1 else 1
    c = input.shape[cdim]
    nll = cross_entropy(input, target, weight, ignore_index=ignore_index, reduction=reduction)
    logp = F.log_softmax(input, cdim)
    if weight is not None:
        logp = logp * weight.reshape(_class_shape(input, cdim))
    smooth = -logp.sum(cdim)
    ignored = t == ignore_index
    if ignored.any():
        smooth = F.where(Tensor._make(ignored).to(smooth.device), 0.0, smooth)
    if reduction == "mean":
        keep = t[~ignored].astype(np.int64)
        if weight is not None:
            denom = float(np.asarray(weight._host, np.float64)[keep].sum())
        else:
            denom = float(keep.size)
        smooth = smooth.sum() / denom if denom else smooth.sum() * float("nan")
    elif reduction == "sum":
        smooth = smooth.sum()
    return (1 - ls) * nll + smooth * (ls / c)


def bilinear(input1, input2, weight, bias=None):
    """torch.nn.functional.bilinear for inputs (*, in1) and (*, in2)."""
    o, i1, i2 = weight.shape
    if tuple(input1.shape[:-1]) != tuple(input2.shape[:-1]) or input1.shape[-1] != i1 or \
            input2.shape[-1] != i2:
        raise RuntimeError(f"bilinear: inputs of shapes {list(input1.shape)} and "
                           f"{list(input2.shape)} do not fit a weight of shape "
                           f"{list(weight.shape)} (expected (*, {i1}) and (*, {i2}))")
    lead = tuple(input1.shape[:-1])
    x1 = input1.reshape(-1, i1)
    x2 = input2.reshape(-1, i2)
    w = weight.permute(1, 0, 2).reshape(i1, o * i2)
    y = (F.matmul(x1, w).reshape(-1, o, i2) * x2.unsqueeze(1)).sum(-1)
    if bias is not None:
        y = y + bias
    return y.reshape(lead + (o,))


def dropout(input, p=0.5, training=True, inplace=False):
    """Zero each element with probability ``p`` and scale the rest by ``1/(1-p)``; the mask is
    drawn from jitgrad's generator (``jitgrad.manual_seed``) as one scaled array, so the op is
    one multiply (its gradient ``g * mask``)."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if not training or p == 0.0:
        return input
    shape, dt = input._meta
    if p == 1.0:
        m = np.zeros(shape, dt)
    else:
        u = default_generator._draw("random", shape)
        m = np.where(u < 1.0 - p, 1.0 / (1.0 - p), 0.0).astype(dt)
    mask = Tensor._make(m)
    if input.is_cuda:
        mask = mask.cuda()
    if inplace:
        return input.mul_(mask)
    return input * mask


def one_hot(tensor, num_classes=-1):
    """Class indices (int64) to one-hot rows: shape ``(*, num_classes)``, int64."""
    if not isinstance(tensor, Tensor) or tensor._meta[1] != np.int64:
        raise RuntimeError("one_hot is only applicable to index tensor of type LongTensor.")
    t = tensor._host
    if t.size and t.min() < 0:
        raise RuntimeError("Class values must be non-negative.")
    if num_classes == -1:
        if t.size == 0:
            raise RuntimeError("Can not infer total number of classes from empty tensor.")
        num_classes = int(t.max()) + 1
    elif t.size and t.max() >= num_classes:
        raise RuntimeError("Class values must be smaller than num_classes.")
    out = np.zeros(t.shape + (int(num_classes),), np.int64)
    np.put_along_axis(out, t[..., None], 1, axis=-1)
    res = Tensor._make(out)
    return res.cuda() if tensor.is_cuda else res


def embedding(input, weight, padding_idx=None, max_norm=None, norm_type=2.0,
              scale_grad_by_freq=False, sparse=False):
    """Rows of ``weight`` picked by integer ``input``: one gather, whose gradient adds rows back
    (index_add). The ``padding_idx`` row gets no gradient; ``max_norm`` renormalises the rows
    it looks up, in place, like torch."""
    if scale_grad_by_freq:
        raise NotImplementedError("embedding(scale_grad_by_freq=True) is not supported")
    if sparse:
        raise NotImplementedError("embedding(sparse=True) is not supported: jitgrad has no "
                                  "sparse gradients")
    idx = input._host if isinstance(input, Tensor) else np.asarray(input)
    if idx.dtype.kind not in "iu":
        raise RuntimeError("Expected tensor for argument #1 'indices' to have one of the "
                           "following scalar types: Long, Int; but got "
                           f"{dtypes_name(idx.dtype)} instead (while checking arguments for "
                           "embedding)")
    if weight.dim() != 2:
        raise RuntimeError(f"'weight' must be 2-D, got a {weight.dim()}-D tensor of shape "
                           f"{list(weight.shape)}")
    n = weight.shape[0]
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise IndexError("index out of range in self")
    if padding_idx is not None:
        if padding_idx < 0:
            padding_idx += n
        if not 0 <= padding_idx < n:
            raise AssertionError("Padding_idx must be within num_embeddings")
    if max_norm is not None:
        _embedding_renorm(weight, idx, float(max_norm), float(norm_type))
    it = Tensor._make(np.asarray(idx, np.int64, order="C"))  # (ascontiguousarray: 0-d -> 1-d)
    out = weight[it]
    if padding_idx is not None and weight.requires_grad and (idx == padding_idx).any():
        pad = Tensor._make((idx != padding_idx)[..., None])
        if weight.is_cuda:
            pad = pad.cuda()
        out = F.where(pad, out, weight.detach()[it])
    return out


def _embedding_renorm(weight, idx, max_norm, norm_type):
    rows = np.unique(idx)
    with no_grad():
        w = weight.detach()[Tensor._make(rows)]
        a = np.asarray(w._host, np.float64)
        norms = np.linalg.norm(a, ord=norm_type, axis=1)
        scale = np.where(norms > max_norm, max_norm / (norms + 1e-7), 1.0)
        if (scale != 1.0).any():
            weight[Tensor._make(rows)] = w * Tensor._make(scale[:, None].astype(a.dtype)
                                                          .astype(weight._meta[1]))


def dtypes_name(d):
    return _dt(d)


def _norm_shape(normalized_shape):
    if isinstance(normalized_shape, int):
        return (normalized_shape,)
    return tuple(int(s) for s in normalized_shape)


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    """``(x - mean) / sqrt(var + eps) * weight + bias`` over the trailing ``normalized_shape``
    dims (biased variance, like torch)."""
    ns = _norm_shape(normalized_shape)
    shape = tuple(input.shape)
    if not ns or shape[len(shape) - len(ns):] != ns or len(ns) > len(shape):
        raise RuntimeError(f"Given normalized_shape={list(ns)}, expected input with shape "
                           f"[*, {', '.join(str(s) for s in ns)}], but got input of size"
                           f"{list(shape)}")
    for name, p in (("weight", weight), ("bias", bias)):
        if p is not None and tuple(p.shape) != ns:
            raise RuntimeError(f"layer_norm: {name} of shape {list(p.shape)} does not match "
                               f"normalized_shape {list(ns)}")
    dims = tuple(range(len(shape) - len(ns), len(shape)))
    mu = F.mean(input, dims, keepdim=True)
    var = F.var(input, dims, keepdim=True, correction=0)
    y = (input - mu) * F.rsqrt(var + eps)
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-5):
    """Normalise each channel (dim 1) over the batch and the remaining dims. Training uses the
    batch's mean and biased variance and, when given, updates the running stats in place
    (``(1 - momentum) * running + momentum * batch``, unbiased variance); eval uses the running
    stats."""
    if input.dim() < 2:
        raise ValueError(f"batch_norm: expected an input of shape (N, C, *), got "
                         f"{list(input.shape)}")
    c = input.shape[1]
    bshape = _class_shape(input, 1)
    for name, p in (("running_mean", running_mean), ("running_var", running_var),
                    ("weight", weight), ("bias", bias)):
        if p is not None and tuple(p.shape) != (c,):
            raise RuntimeError(f"batch_norm: {name} should have shape [{c}] for an input of "
                               f"shape {list(input.shape)}, got {list(p.shape)}")
    if training:
        dims = (0,) + tuple(range(2, input.dim()))
        n = input.numel() // c if c else 0
        if n <= 1:
            raise ValueError(f"Expected more than 1 value per channel when training, got "
                             f"input size {input.shape}")
        mean = F.mean(input, dims, keepdim=True)
        var = F.var(input, dims, keepdim=True, correction=0)
        if running_mean is not None or running_var is not None:
            with no_grad():
                if running_mean is not None:
                    running_mean.mul_(1 - momentum).add_(
                        mean.detach().reshape(c).to(running_mean.dtype) * momentum)
                if running_var is not None:
                    running_var.mul_(1 - momentum).add_(
                        var.detach().reshape(c).to(running_var.dtype) * (momentum * n / (n - 1)))
    else:
        if running_mean is None or running_var is None:
            raise RuntimeError("batch_norm: running_mean and running_var must be defined in "
                               "evaluation mode")
        mean = running_mean.reshape(bshape)
        var = running_var.reshape(bshape)
    return _normalize_affine(input, mean, var, eps, weight, bias, bshape)


def leaky_relu(input, negative_slope=0.01, inplace=False):
    """``x`` where ``x > 0`` else ``negative_slope * x`` (gradient ``negative_slope`` at 0, like
    torch)."""
    return _inplace(input, F.where(input > 0, input, input * negative_slope), inplace)


def elu(input, alpha=1.0, inplace=False):
    """``x`` where ``x > 0`` else ``alpha * (exp(x) - 1)``; the exp reads ``min(x, 0)`` so that a
    large positive ``x`` cannot turn the discarded branch's gradient into NaN."""
    neg = alpha * F.expm1(F.clamp(input, max=0.0))
    return _inplace(input, F.where(input > 0, input, neg), inplace)


def softplus(input, beta=1.0, threshold=20.0):
    """``log(1 + exp(beta x)) / beta``, and ``x`` itself where ``beta x > threshold`` (torch's
    linear regime; the exp reads a clamped value so the discarded branch stays finite)."""
    bx = input * beta if beta != 1 else input
    soft = F.log1p(F.exp(F.clamp(bx, max=float(threshold))))
    if beta != 1:
        soft = soft / beta
    return F.where(bx > threshold, input, soft)


def _reduce(loss, reduction):
    _check_reduction(reduction)
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def smooth_l1_loss(input, target, size_average=None, reduce=None, reduction="mean", beta=1.0):
    """``0.5 d^2 / beta`` where ``|d| < beta`` else ``|d| - 0.5 beta`` (``d = input - target``);
    ``beta = 0`` is the L1 loss."""
    _check_reduction(reduction)
    if beta < 0:
        raise RuntimeError("smooth_l1_loss does not support negative values for beta.")
    if beta == 0:
        return l1_loss(input, target, reduction=reduction)
    d = input - target
    ad = F.abs(d)
    return _reduce(F.where(ad < beta, (0.5 / beta) * d * d, ad - 0.5 * beta), reduction)


def huber_loss(input, target, reduction="mean", delta=1.0):
    """``0.5 d^2`` where ``|d| < delta`` else ``delta (|d| - 0.5 delta)``."""
    _check_reduction(reduction)
    if delta <= 0:
        raise RuntimeError("huber_loss does not support non-positive values for delta.")
    d = input - target
    ad = F.abs(d)
    return _reduce(F.where(ad < delta, 0.5 * d * d, delta * (ad - 0.5 * delta)), reduction)


def normalize(input, p=2.0, dim=1, eps=1e-12, out=None):
    """``x / max(||x||_p, eps)`` along ``dim``. The norm is taken as ``(max(sum |x|^p,
    eps^p))^(1/p)``, the same value, so an all-zero slice gets a zero (not NaN) gradient."""
    if out is not None:
        raise NotImplementedError("normalize(out=...) is not supported")
    p = float(p)
    if p == float("inf"):
        norm = F.clamp(F.amax(F.abs(input), dim, keepdim=True), min=eps)
    elif p == 1.0:
        norm = F.clamp(F.abs(input).sum(dim, keepdim=True), min=eps)
    elif p == 2.0:
        norm = F.sqrt(F.clamp((input * input).sum(dim, keepdim=True), min=eps * eps))
    elif p > 0:
        s = F.pow(F.abs(input), p).sum(dim, keepdim=True)
        norm = F.pow(F.clamp(s, min=eps ** p), 1.0 / p)
    else:
        raise NotImplementedError(f"normalize: p={p} is not supported (p > 0 or inf)")
    return input / norm


def pad(input, pad, mode="constant", value=None):
    """torch's ``F.pad``: ``pad`` lists (left, right) widths from the last dim backwards.
    'constant' (negative widths crop) writes the input into a filled tensor (one copy, its
    gradient a slice); 'reflect', 'replicate' and 'circular' gather along each padded dim with
    an index array (gradient: index_add)."""
    pad = tuple(int(v) for v in pad)
    nd = input.dim()
    if len(pad) % 2 or len(pad) // 2 > nd:
        raise ValueError(f"Padding length must be divisible by 2 and at most twice the number "
                         f"of dims ({nd}), got {len(pad)}")
    shape = list(input.shape)
    widths = {nd - 1 - i: (pad[2 * i], pad[2 * i + 1]) for i in range(len(pad) // 2)}
    if mode == "constant":
        out_shape = list(shape)
        src, dst = [slice(None)] * nd, [slice(None)] * nd
        for d, (lo, hi) in widths.items():
            out_shape[d] = shape[d] + lo + hi
            if out_shape[d] < 0:
                raise RuntimeError(f"The input size {shape[d]}, plus negative padding {lo} and "
                                   f"{hi} resulted in a negative output size, which is invalid. "
                                   f"Check dimension {d} of your input.")
            src[d] = slice(max(-lo, 0), shape[d] - max(-hi, 0))
            dst[d] = slice(max(lo, 0), out_shape[d] - max(hi, 0))
        x = input[tuple(src)] if any(s != slice(None) for s in src) else input
        if not any(lo or hi for lo, hi in widths.values()):
            return x.clone()
        res = full(out_shape, 0.0 if value is None else value, dtype=input.dtype,
                   device=input.device)
        res[tuple(dst)] = x
        return res
    if value is not None and value != 0:
        raise ValueError(f'Padding mode "{mode}" doesn\'t take in value argument')
    out = input
    for d, (lo, hi) in widths.items():
        n = shape[d]
        pos = np.arange(-lo, n + hi)
        if mode == "reflect":
            if lo >= n or hi >= n:
                raise RuntimeError(f"Argument #4: Padding size should be less than the "
                                   f"corresponding input dimension, but got: padding ({lo}, "
                                   f"{hi}) at dimension {d} of input {shape}")
            period = 2 * (n - 1) if n > 1 else 1
            q = np.mod(pos, period)
            idx = np.where(q < n, q, period - q)
        elif mode == "replicate":
            if n == 0:
                raise RuntimeError("padding of an empty dimension is not possible in "
                                   "'replicate' mode")
            idx = np.clip(pos, 0, n - 1)
        elif mode == "circular":
            if lo > n or hi > n:
                raise ValueError("Padding value causes wrapping around more than once.")
            # torch crops negative widths first, then wraps around what is left
            start, m = max(-lo, 0), n - max(-lo, 0) - max(-hi, 0)
            pos = np.arange(-max(lo, 0), m + max(hi, 0))
            idx = start + np.mod(pos, m) if m > 0 else pos[:0]
        else:
            raise NotImplementedError(f"pad: mode {mode!r} is not supported (constant, reflect, "
                                      "replicate, circular)")
        it = Tensor._make(idx.astype(np.int64))  # (indices are read on the host anyway)
        out = out[(slice(None),) * d + (it,)]
    return out


# ============================================================================================
# issue 16, nn.functional breadth: convolution, pooling, resampling, more activations, losses,
# normalisations and dropout variants live in _functional_extra (composed from jitgrad ops)
from ._functional_extra import *  # noqa: E402,F401,F403
from ._functional_extra import __all__ as _extra_all  # noqa: E402,F401
from ._functional_extra import _normalize_affine  # noqa: E402  (batch_norm's tail)
