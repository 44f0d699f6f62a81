"""jitgrad.explain: what the fusion scheduler would run for pending tensors, without running it.

``jitgrad.explain(loss)`` lists the fused groups that observing ``loss`` would launch: their
iteration space, rows, what each kernel reads and writes (bytes moved), whether the kernel is
already compiled, and its generated source. ``jitgrad.explain(loss, backward=True)`` does the
same for the gradients ``loss.backward()`` would produce (the backward graph is recorded with
``retain_graph=True``; nothing is accumulated into ``.grad``). Elementwise groups are only
planned, not run; a backward step of a structural op (matmul, a reduction, indexing) computes
its incoming gradient as a real backward would, and a pending loss may be computed with it.
``JITGRAD_DEBUG=1`` logs every compile as it happens.
"""
from __future__ import annotations

from collections import Counter

import numpy as np

from . import lazy
from ._engine import AccumulateGrad
from ._tensor import Tensor
from .autograd import grad
from .backends import BACKENDS


class Group:
    """One fused kernel: the plan's rows, operands, outputs and source."""

    def __init__(self, plan, role):
        self.role = role
        self.space = plan.space
        self.rows = [lz.row.name for lz, _ in plan.nodes]
        self.reads = [(k, tuple(a.shape), a.dtype.name) if isinstance(a, np.ndarray)
                      else (k, (), type(a).__name__) for k, a in zip(plan.kinds, plan.args)]
        self.writes = []
        for kind, ref, axes in plan.outs:
            dt = lazy._ref_dtype(plan, ref)
            shape = self.space if kind == "full" else \
                tuple(1 if d in axes else s for d, s in enumerate(self.space))
            self.writes.append((kind, shape, dt.name))
        self.bytes_read = sum(a.nbytes for a in plan.args if isinstance(a, np.ndarray))
        self.bytes_written = sum(int(np.prod(s)) * np.dtype(dt).itemsize
                                 for _, s, dt in self.writes)
        self.flat, self.parallel = plan.flat, plan.par
        self.compiled = plan.key in BACKENDS[plan.device]._kernels
        self.source = lazy._render(plan)
        self.interleave = getattr(plan, "interleave", 0)   # (set by rendering a CPU plan)

    @property
    def bytes_moved(self) -> int:
        return self.bytes_read + self.bytes_written

    def __str__(self):
        ops = ", ".join(f"{n}x{c}" if c > 1 else n for n, c in Counter(self.rows).items())
        loop = ("flat" if self.flat else f"{len(self.space)}-d") + \
            (" parallel" if self.parallel else "") + \
            (f" interleaved x{self.interleave}" if self.interleave > 1 else "")
        reads = "; ".join(f"{k} {s} {d}" for k, s, d in self.reads)
        writes = "; ".join(f"{k} {s} {d}" for k, s, d in self.writes)
        return (f"[{self.role}] space {self.space}, {len(self.rows)} rows ({ops}), {loop} loop, "
                f"{'compiled' if self.compiled else 'not compiled yet'}\n"
                f"  reads:  {reads}\n  writes: {writes}\n"
                f"  bytes moved: {self.bytes_moved:,} (read {self.bytes_read:,}, "
                f"written {self.bytes_written:,})")


class Explanation:
    """The groups (``.groups``) observing the explained tensors would launch, printable."""

    def __init__(self, groups):
        self.groups = groups

    def __str__(self):
        if not self.groups:
            return "jitgrad.explain: nothing pending (values already computed)"
        out = [f"jitgrad.explain: {len(self.groups)} fused kernel(s)"]
        for g in self.groups:
            out.append(str(g))
            out.append("  source:\n" + "\n".join("    " + ln for ln in g.source.splitlines()))
        return "\n".join(out)

    __repr__ = __str__


def _plans(tensors, role):
    """The laid-out plans realize_many would run for ``tensors`` (nothing is computed)."""
    groups: dict = {}
    for t in tensors:
        lz = t._lazy
        if t._arr is not None or lz is None or lz.value is not None:
            continue
        space = lazy._space(lz)
        if space is not None:  # (a sum of a computed array runs no generated kernel)
            groups.setdefault(space, []).append(t)
    out = []
    for space, roots in groups.items():
        plan = lazy._Plan(roots, space)
        lazy._finish_plan(plan, roots)
        out.append(Group(plan, role))
    return out


def explain(*tensors, backward: bool = False, inputs=None) -> Explanation:
    """Describe the fused kernels that computing ``tensors`` (or, with ``backward=True``, the
    gradients of the single tensor given with respect to ``inputs`` — default: every leaf that
    requires grad) would launch. Given a ``jitgrad.compile``d function: its recorded programs
    or its graph break."""
    if len(tensors) == 1 and hasattr(tensors[0], "_jitgrad_explain"):
        return tensors[0]._jitgrad_explain()
    for t in tensors:
        if not isinstance(t, Tensor):
            raise TypeError(f"explain() expects Tensors, got {type(t).__name__}")
    if not backward:
        return Explanation(_plans(tensors, "forward"))
    if len(tensors) != 1:
        raise ValueError(f"explain(backward=True) takes one output tensor, got {len(tensors)}")
    (out,) = tensors
    if not out.requires_grad:
        raise RuntimeError("explain(backward=True): the tensor does not require grad")
    if inputs is None:
        inputs = _leaves(out)
    with lazy.recording_only():
        grads = grad(out, tuple(inputs), retain_graph=True, allow_unused=True)
    return Explanation(_plans([g for g in grads if g is not None], "backward"))


def _leaves(out):
    """Leaf tensors requiring grad that ``out`` depends on, in first-seen order."""
    seen, found, stack = set(), [], [out.grad_fn]
    while stack:
        n = stack.pop()
        if n is None or id(n) in seen:
            continue
        seen.add(id(n))
        if isinstance(n, AccumulateGrad):
            found.append(n.variable)
        stack.extend(n.next_edges)
    return found
