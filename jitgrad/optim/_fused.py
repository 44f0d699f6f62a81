"""Fused optimizer updates: each optimizer's rule is written once, as scalar expressions in the
registry vocabulary (``m.sqrt``, ``m.where``, ``m.maximum``, ``+ - * /``), and rendered two ways:

* CPU, the fast path: into one generated njit kernel (jitgrad's codegen :class:`Emitter`/
  :class:`Sym`, compiled and disk-cached by ``backends.cpu.compile_source``) that updates every
  parameter of a bucket -- same rule flags and dtype -- in one call. The kernel takes tuples of
  flat arrays (params, grads, one tuple per state buffer) and a (K, H) float64 table of
  per-parameter scalars (learning rate, bias corrections...), so a new learning rate or step
  never recompiles: one kernel per (rule, flags, dtype), specialised by Numba per K, on disk.
  Param and state arrays are updated in place, each named once inside the loop (a second
  name for the same memory would defeat LLVM's overlap check and the loop would not
  vectorise).
* Everywhere else (CUDA params, ``fused=False``): the same rule called with jitgrad Tensors and
  Python floats under ``no_grad`` -- ordinary elementwise ops (fused by the lazy engine on the
  GPU), whose results are copied into the param and state tensors.

A non-contiguous CPU param goes through the kernel too: it is copied into a contiguous scratch
array, updated there and copied back.
"""
from __future__ import annotations

import numpy as np

from .. import functional_ops as F
from .. import lazy
from .._state import no_grad
from .._tensor import Tensor
from ..backends import cpu
from ..codegen import SYM_MATH, Emitter, Sym, split_invariant


class Rule:
    """One optimizer's update.

    ``update(m, f, x) -> {name: new value}``: ``m`` is the math vocabulary, ``f`` the rule's
    flags (a dict of booleans fixed per kernel), ``x`` a namespace holding ``p`` (the param),
    ``g`` (its gradient), every state buffer by name and every scalar by name. The result
    names ``"param"`` and each buffer of ``states(f)``.
    ``states(f)``: the state buffers the kernel reads and writes, in order.
    ``scalars``: the per-parameter scalars, in the order of the rows of the scalar table."""

    def __init__(self, name: str, update, states, scalars: tuple):
        self.name = name
        self.update = update
        self.states = states
        self.scalars = tuple(scalars)


class _NS:
    """Attribute namespace handed to a rule."""

    def __init__(self, **kw):
        self.__dict__.update(kw)


# ---------------------------------------------------------------------------------------------
# Rendering


def render(rule: Rule, flags: dict, fn_name: str) -> str:
    """Source of ``fn_name(P, G, S0.., H)``: for each k, update P[k] (and the S[k] buffers) in
    place from G[k] with the scalars H[k, :]; all arrays flat and C-contiguous."""
    states = list(rule.states(flags))
    em = Emitter()
    x = _NS(p=Sym(em, "x_p"), g=Sym(em, "x_g"),
            **{s: Sym(em, f"x_s{i}") for i, s in enumerate(states)},
            **{c: Sym(em, f"c{j}") for j, c in enumerate(rule.scalars)})
    out = rule.update(SYM_MATH, flags, x)
    if set(out) != {"param", *states}:
        raise AssertionError(f"{rule.name}: rule returned {sorted(out)}, expected param and "
                             f"{states}")
    variant = ["x_p", "x_g"] + [f"x_s{i}" for i in range(len(states))]
    hoisted, body = split_invariant(em.lines, variant)
    used = "\n".join(em.lines + [em.operand(v) for v in out.values()])
    arrs = ["p", "g"] + [f"s{i}" for i in range(len(states))]
    one = f"{fn_name}_one"
    ind = "    "
    lines = ["@njit_cached(error_model='numpy', nogil=True)",
             f"def {one}({', '.join(arrs)}, h):"]
    for j in range(len(rule.scalars)):
        if f"c{j}" in used:
            lines.append(f"{ind}c{j} = T(h[{j}])")
    lines += [ind + ln for ln in hoisted]
    lines.append(f"{ind}for i in range(p.size):")
    for a in arrs:
        if f"x_{a}" in used:
            lines.append(f"{ind * 2}x_{a} = {a}[i]")
    lines += [ind * 2 + ln for ln in body]
    lines.append(f"{ind * 2}p[i] = {em.operand(out['param'])}")
    for i, s in enumerate(states):
        lines.append(f"{ind * 2}s{i}[i] = {em.operand(out[s])}")
    tup = ["P", "G"] + [f"S{i}" for i in range(len(states))]
    lines += ["", "", f"def {fn_name}({', '.join(tup)}, H):",
              f"{ind}for k in range(len(P)):",
              f"{ind * 2}{one}({', '.join(t + '[k]' for t in tup)}, H[k])", ""]
    return "\n".join(lines)


def kernel(rule: Rule, flags: dict, dtype: np.dtype):
    """The compiled kernel for (rule, flags, dtype): built once, then from memory/disk."""
    fkey = tuple(flags.items())
    k = _KERNELS.get((rule.name, fkey, dtype))
    if k is None:
        key = ("optim", rule.name, fkey, dtype.name)
        tag = "".join(n[:2] for n, v in fkey if v) or "plain"
        fn_name = f"optim_{rule.name}_{tag}_{dtype.name}"
        k = cpu.compile_source(key, render(rule, flags, fn_name), fn_name, dtype.name)
        _KERNELS[(rule.name, fkey, dtype)] = k
    return k


# the dispatcher per (rule, flags, np.dtype): skips compile_source's LRU bookkeeping per step,
# and ``dtype.name`` (1.6 us of Python in NumPy) is only read on a miss
_KERNELS: dict = {}


# ---------------------------------------------------------------------------------------------
# Launching


class Bucket:
    """The parameters one launch updates (same rule flags, dtype and path): per parameter its
    tensor, param and grad arrays, state tensors (in the rule's order, one list per state
    buffer) and scalars (a row of the scalar table)."""

    __slots__ = ("flags", "ps", "pas", "gas", "sts", "scalars")

    def __init__(self, flags: dict, n_states: int):
        self.flags = flags
        self.ps, self.pas, self.gas, self.scalars = [], [], [], []
        self.sts = [[] for _ in range(n_states)]


def run_cpu(rule: Rule, dtype: np.dtype, b: Bucket) -> None:
    """Update every param and state array of the bucket in place with one kernel call. (The
    param arrays were checked writeable and matched by their gradients.) Arrays that are not
    C-contiguous are updated in a contiguous copy and written back."""
    P, back = [], []
    for a in b.pas:
        lazy.realize_readers(a)  # pending values that read the param see its old contents
        if a.flags.c_contiguous:
            P.append(a.reshape(-1))
        else:
            flat = np.ascontiguousarray(a).reshape(-1)
            P.append(flat)
            back.append((a, flat))
    S = []
    for col in b.sts:
        arrs = []
        for t, pa in zip(col, b.pas):
            a = t._data
            if a.shape != pa.shape or a.dtype != dtype or type(a) is not np.ndarray:
                raise RuntimeError(
                    f"{rule.name}: a state buffer of shape {list(a.shape)}, dtype {a.dtype} "
                    f"does not fit its parameter (shape {list(pa.shape)}, dtype {dtype})")
            lazy.realize_readers(a)
            if a.flags.c_contiguous:
                arrs.append(a.reshape(-1))
            else:
                flat = np.ascontiguousarray(a).reshape(-1)
                arrs.append(flat)
                back.append((a, flat))
        S.append(tuple(arrs))
    G = tuple([g.reshape(-1) if g.flags.c_contiguous else np.ascontiguousarray(g).reshape(-1)
               for g in b.gas])
    H = np.array(b.scalars, dtype=np.float64).reshape(len(b.ps), -1)
    kernel(rule, b.flags, dtype)(tuple(P), G, *S, H)
    for a, flat in back:
        a[...] = flat.reshape(a.shape)
    for p in b.ps:
        p._vc[0] += 1  # an in-place write, like torch's param.add_()


class _TensorMath:
    """The rule vocabulary on jitgrad Tensors and Python floats (the unfused path)."""

    @staticmethod
    def sqrt(x):
        return F.sqrt(x)

    @staticmethod
    def maximum(a, b):
        return F.maximum(a, b)

    @staticmethod
    def where(c, a, b):
        if isinstance(c, (bool, np.bool_)):
            return a if c else b
        return F.where(c, a, b)


TENSOR_MATH = _TensorMath()


def run_tensor_ops(rule: Rule, b: Bucket) -> None:
    """Update each param of the bucket with jitgrad elementwise ops (CUDA params, non-fused
    optimizers): every new value is computed from the old ones before any is written back."""
    states = list(rule.states(b.flags))
    with no_grad():
        for k, p in enumerate(b.ps):
            sts = [col[k] for col in b.sts]
            x = _NS(p=p.detach(), g=Tensor._make(b.gas[k]),
                    **dict(zip(states, [s.detach() for s in sts])),
                    **{n: float(v) for n, v in zip(rule.scalars, b.scalars[k])})
            out = rule.update(TENSOR_MATH, b.flags, x)
            new = [out["param"]] + [out[s] for s in states]
            lazy.realize_many([v for v in new if v._arr is None])
            vals = [v._data for v in new]  # (computed: the writes below cannot change them)
            for t, v in zip([p] + sts, vals):
                if v is t._data:  # (a rule may return an input unchanged)
                    continue
                t.copy_(Tensor._make(v))
