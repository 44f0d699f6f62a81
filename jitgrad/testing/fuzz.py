"""fuzz: a differential fuzzer that checks jitgrad's values and gradients against torch.

A *program* is a short list of Python statements over leaf tensors (elementwise ops with
broadcasting, reductions, views, basic and advanced indexing, setitem, in-place ops on non-leaf
tensors and under ``no_grad``, matmul, cat/stack, losses), written against a module ``M`` and
``F = M.nn.functional``, so the same text runs on jitgrad and on torch. :func:`generate` builds
one from a seed, evaluating every candidate step on torch while it goes (torch is the shape and
domain oracle), so only well-defined, well-conditioned steps are kept:

* domains: log/sqrt/pow bases see values >= 0.1 (or a smooth positive transform of them),
  exp/expm1 arguments stay small, denominators away from 0;
* kinks: relu/abs/sign/clamp/maximum/where/comparisons/masks/max/amax only run where every
  element is clearly away from the kink (else a float32 rounding could flip a branch);
* magnitudes stay below 1e4, and a step whose float32 torch result is already far from its
  float64 one (catastrophic cancellation) is dropped.

:func:`check` runs the program on jitgrad (in the program's dtype, under one of three fusion
:data:`MODES`) and on torch in float64 (the truth) and float32 (an estimate of how much rounding
this program amplifies), calls backward with a fixed random cotangent, and compares every
output and the gradient of every leaf (and of a retained intermediate). A float32 element may
differ from the truth by ``1e-4 * |x| + 1e-5 * max|x| + 10 * e + 2 * max(e)`` where ``e`` is
``|torch32 - torch64|`` elementwise; float64 by ``1e-8 * |x| + 1e-9 * max|x| + 1e-6 * e +
1e-7 * max(e)`` (``e`` covers ill-conditioned elements), plus 1e-6 (float64: 1e-12) of the
largest magnitude the program computed (for values that cancel to ~0), so the checks are tight
where the math is and loose only where float32 itself is.

Run it long: ``python -m jitgrad.testing.fuzz --programs 10000 --mode fuse_all``; reproduce
one: ``python -m jitgrad.testing.fuzz --seed S --mode large --show`` (prints the program and
its comparison; ``--minimize`` shrinks a failing one to the steps it needs).
"""
from __future__ import annotations

import argparse
import contextlib
import math
import re
import sys
import time
import traceback
import warnings
from dataclasses import dataclass, field, replace

import numpy as np

MODES = ("default", "fuse_all", "large")
ALIASES = {"eager": "default", "fused": "fuse_all", "small": "default"}
DEFAULT_FUSE_MIN = 1 << 16   # the library default (lazy.FUSE_MIN without JITGRAD_FUSE_MIN)
BOUND = 1e4                  # largest |value| a step may produce
MAX_NUMEL = {"default": 2048, "fuse_all": 2048, "large": 400_000}
# (large) shapes of >= 65,536 elements: the fused path really runs at the default FUSE_MIN
LARGE_BASES = [(300, 256), (256, 300), (70_000,), (4, 150, 120), (2, 180, 200), (400, 384)]
SMALL_DIMS = (2, 3, 4, 5, 6)


# --- modes ------------------------------------------------------------------------------------

@contextlib.contextmanager
def fusion_mode(mode: str):
    """Set lazy fusion for ``mode`` and restore the previous settings: 'default' and 'large'
    use the library defaults (fusion on from DEFAULT_FUSE_MIN elements), 'fuse_all' records
    every op lazily (min_size 0)."""
    from jitgrad import lazy
    mode = ALIASES.get(mode, mode)
    prev, prev_min = lazy.is_fusion_enabled(), lazy.FUSE_MIN
    lazy.set_fusion(True, 0 if mode == "fuse_all" else DEFAULT_FUSE_MIN)
    try:
        yield
    finally:
        try:
            lazy.set_fusion(prev, prev_min)  # (realises what is still pending: may raise)
        finally:
            lazy.ENABLED, lazy.FUSE_MIN = prev, prev_min


# --- programs ---------------------------------------------------------------------------------

@dataclass
class Leaf:
    name: str
    shape: tuple
    lo: float
    hi: float
    requires_grad: bool


@dataclass
class Step:
    code: str     # statement(s) over M, F and earlier names
    label: str    # what kind of step (coverage statistics)
    out: str | None = None      # the name it defines (None: it only writes an existing one)


@dataclass
class Program:
    seed: int
    mode: str
    dtype: str                  # 'float32' | 'float64'
    leaves: list
    arrays: list                # float64 values of the leaves (already rounded to dtype)
    steps: list
    outputs: list               # names compared (values) and weighted into the loss
    cotangents: list            # float64 arrays, one per output (rounded to dtype)
    backward: str = "sum"       # 'sum': loss = sum((o * u).sum()), loss.backward(); 'twice': so,
                                # twice (accumulating); 'each': one backward per output;
                                # 'autograd': M.autograd.backward(outs, us)
    observe: str = "before"     # read output values before or after backward
    retain: list = field(default_factory=list)  # intermediates whose .grad is compared too
    source: str = "seed"        # 'seed' (generate) or 'code' (from_code)
    tol: str = ""               # tolerance class: the dtype, or float32 if a float32 value
                                # entered a float64 program (default: dtype)

    def code(self) -> str:
        """The program as readable Python (M is jitgrad or torch, F = M.nn.functional)."""
        if self.source == "seed":
            lines = [f"# jitgrad.testing.fuzz program: seed {self.seed}, mode {self.mode!r}, "
                     f"{self.dtype}",
                     f"#   python -m jitgrad.testing.fuzz --seed {self.seed} --mode {self.mode} "
                     "--show"]
        else:
            lines = [f"# jitgrad.testing.fuzz.from_code program: mode {self.mode!r}, "
                     f"{self.dtype}, values from seed {self.seed}"]
        lines.append("# leaf(shape, lo, hi): uniform values drawn from the seed, in the dtype")
        for lf in self.leaves:
            rg = ", requires_grad=True" if lf.requires_grad else ""
            lines.append(f"{lf.name} = leaf({lf.shape}, {lf.lo}, {lf.hi}{rg})")
        for s in self.steps:
            lines.append(s.code)
        for r in self.retain:
            lines.append(f"{r}.retain_grad()")
        lines.append(f"outputs = [{', '.join(self.outputs)}]")
        us = ", ".join(f"u{k}" for k in range(len(self.outputs)))
        lines.append(f"# {us}: standard normal cotangents shaped like the outputs")
        lines.append("# (outputs that do not require grad are left out of the backward)")
        if self.backward in ("sum", "twice"):
            lines.append(f"loss = sum((o * u).sum() for o, u in zip(outputs, [{us}]))")
            if self.backward == "twice":
                lines.append("loss.backward(retain_graph=True)  # gradients accumulate")
            lines.append("loss.backward()")
        elif self.backward == "each":
            lines.append(f"for o, u in zip(outputs, [{us}]): (o * u).sum().backward("
                         "retain_graph=True)  # (not for the last)")
        else:
            lines.append(f"M.autograd.backward(outputs, [{us}])")
        lines.append(f"# compared: outputs (read {self.observe} backward), .grad of "
                     + ", ".join([lf.name for lf in self.leaves if lf.requires_grad]
                                 + self.retain))
        return "\n".join(lines)


# --- the torch oracle -------------------------------------------------------------------------

def _torch():
    try:
        import torch
    except ImportError as e:  # pragma: no cover
        raise ImportError("jitgrad.testing.fuzz compares against torch: pip install torch") from e
    return torch


def _gap(t, dims=None):
    """Distance between the largest two and the smallest two elements along ``dims`` (all
    dims: None): max/amax/min route their gradient by these, so they must not nearly tie."""
    torch = _torch()
    t = t.detach()
    nd = t.dim()
    if nd == 0:
        return torch.ones(1, dtype=t.dtype)
    if dims is None:
        dims = tuple(range(nd))
    elif isinstance(dims, int):
        dims = (dims,)
    dims = sorted({d % nd for d in dims})
    keep = [d for d in range(nd) if d not in dims]
    n = int(np.prod([t.shape[d] for d in dims]))
    if n < 2:
        return torch.ones(1, dtype=t.dtype)
    flat = t.permute(keep + dims).reshape(-1, n)
    hi = flat.topk(2, dim=1).values
    lo = (-flat).topk(2, dim=1).values
    return torch.cat([hi[:, 0] - hi[:, 1], lo[:, 0] - lo[:, 1]])


def _namespace(M):
    return {"M": M, "F": M.nn.functional}


# --- generation -------------------------------------------------------------------------------

class _Reject(Exception):
    pass


@dataclass
class _Var:
    name: str
    shape: tuple
    kind: str          # 'float' | 'bool'
    leaf: bool = False

    @property
    def numel(self):
        return math.prod(self.shape)


def _fmt(c: float) -> str:
    return repr(float(c))


class _Gen:
    """Builds one program: candidate steps are run on torch float64 and float32 side by side
    and kept only when well defined, away from kinks and well conditioned."""

    def __init__(self, seed: int, mode: str, n_steps: int | None = None, attempt: int = 0,
                 without=()):
        self.torch = _torch()
        self.seed, self.mode = seed, mode
        self.rng = np.random.default_rng([seed, MODES.index(mode), attempt])
        self.large = mode == "large"
        self.dtype = "float32" if self.rng.random() < 0.5 else "float64"
        lo, hi = (3, 7) if self.large else (3, 11)
        self.n_steps = n_steps or int(self.rng.integers(lo, hi))
        self.vars: dict[str, _Var] = {}
        self.steps: list[Step] = []
        self.leaves: list[Leaf] = []
        self.arrays: list[np.ndarray] = []
        self.mutated: set = set()
        self.focus: list = []    # names the next steps should read (after an aliasing write)
        self.mixed = False       # a float32 value entered a float64 program
        self.new_leaves: list = []  # x.detach().requires_grad_() values (gradients compared)
        self.count = 0
        self.without = set(without)

    # -- helpers --
    def r(self):
        return self.rng.random()

    def choice(self, seq):
        return seq[int(self.rng.integers(0, len(seq)))]

    def const(self, lo=0.5, hi=2.0, neg=False):
        c = round(float(self.rng.uniform(lo, hi)), 2)
        return -c if neg and self.r() < 0.5 else c

    def t64(self, name):
        return self.ns64[name].detach()

    def floats(self, pred=None, big=None):
        out = [v for v in self.vars.values() if v.kind == "float" and (pred is None or pred(v))]
        if big is not None and self.large:
            pref = [v for v in out if (v.numel >= DEFAULT_FUSE_MIN) == big]
            if pref and self.r() < 0.8:
                out = pref
        return out

    def pick(self, pool):
        """A variable, recent ones more likely (programs become chains, not fans)."""
        if not pool:
            raise _Reject("no operand")
        focus = [v for v in pool if v.name in self.focus]
        if focus and self.r() < 0.6:
            return self.choice(focus)
        order = {n: k for k, n in enumerate(self.vars)}
        w = np.array([1.0 + order[v.name] for v in pool]) ** 1.5
        return pool[int(self.rng.choice(len(pool), p=w / w.sum()))]

    def stats(self, name):
        a = self.t64(name)
        if a.numel() == 0:
            raise _Reject("empty")
        a = a.double()
        return float(a.min()), float(a.max()), float(a.abs().min())

    # -- domain fixers: return (expression, kinks) --
    def positive(self, x):
        """An expression >= ~0.1 built from variable x (raw when x already is)."""
        mn, mx, _ = self.stats(x)
        if mn >= 0.1 and mx <= 1e3 and self.r() < 0.7:
            return x, []
        k = int(self.rng.integers(0, 7))
        if k == 0:
            return f"({x} * {x} + 0.5)", []
        if k == 1:
            return f"(M.sigmoid({x}) + 0.1)", []
        if k == 2:
            return f"M.exp(M.tanh({x}))", []
        if k == 3:
            return f"({x}.abs() + 0.25)", [x]
        if k == 4:
            return f"(M.tanh({x}) + 1.25)", []
        if k == 5 and mx - mn < 50:
            return f"({x} + {_fmt(round(-mn + 0.3, 2))})", []
        return f"({x}.clamp(min=0.1) + 0.1)", [f"{x} - 0.1"]

    def bounded(self, x, lim):
        """An expression with |value| <= lim built from x."""
        _, mx, _ = self.stats(x)
        mn = self.stats(x)[0]
        m = max(abs(mn), abs(mx))
        if m <= lim and self.r() < 0.8:
            return x, []
        k = int(self.rng.integers(0, 3))
        if k == 0:
            return f"(M.tanh({x}) * {_fmt(round(lim / 2, 2))})", []
        if k == 1 and m > 0:
            return f"({x} * {_fmt(round(lim / m * 0.9, 4))})", []
        return f"(M.sin({x}) * {_fmt(round(lim / 2, 2))})", []

    def nonzero(self, x):
        _, _, amin = self.stats(x)
        mx = max(abs(v) for v in self.stats(x)[:2])
        if amin >= 0.2 and mx <= 1e3 and self.r() < 0.7:
            return x, []
        e, k = self.positive(x)
        return (f"(-{e})" if self.r() < 0.3 else e), k

    def domain(self, x, dom):
        if dom is None:
            return x, []
        if dom == "positive":
            return self.positive(x)
        if dom == "nonzero":
            return self.nonzero(x)
        if dom == "kink":
            return x, [x]
        return self.bounded(x, float(dom))

    def broadcastable(self, shape, pool):
        out = []
        for v in pool:
            try:
                s = np.broadcast_shapes(shape, v.shape)
            except ValueError:
                continue
            if math.prod(s) <= MAX_NUMEL[self.mode]:
                out.append(v)
        return out

    # -- running candidates on torch --
    def new_name(self):
        self.count += 1
        return f"v{len(self.leaves) + self.count - 1}"

    def _kink_ok(self, kinks):
        torch = self.torch
        eps = 1e-6 if self.dtype == "float32" else 1e-12
        ns64 = dict(self.ns64, _gap=_gap)
        ns32 = dict(self.ns32, _gap=_gap)
        for k in kinks:
            with torch.no_grad(), _quiet_ctx():
                a = eval(k, ns64).detach().double()
                b = eval(k, ns32).detach()
            if a.numel() == 0:
                continue
            err = float((a - b.double()).abs().max())
            margin = float(a.abs().min())
            scale = max(1.0, float(a.abs().max()))
            if not margin > 50 * err + eps * scale:
                raise _Reject(f"near kink {k}: margin {margin:.3g}")

    def _check_value(self, name):
        a, b = self.ns64.get(name), self.ns32.get(name)
        torch = self.torch
        if not isinstance(a, torch.Tensor):
            raise _Reject("not a tensor")
        if a.dtype == torch.bool:
            return "bool"
        if not a.is_floating_point():
            raise _Reject("integer")
        if a.numel() == 0 or a.numel() > MAX_NUMEL[self.mode]:
            raise _Reject("size")
        a, b = a.detach(), b.detach().double()
        if not bool(torch.isfinite(a).all()) or float(a.abs().max()) > BOUND:
            raise _Reject("magnitude")
        scale = max(float(a.abs().max()), 1e-3)
        if float((a - b).abs().max()) > 1e-3 * scale:
            raise _Reject("ill-conditioned")
        return "float"

    def run(self, code, label, kinks=(), mutates=None):
        """Try one candidate; on success record it as a step (returns its new name)."""
        self._kink_ok(kinks)
        out = None
        if "@o" in code:
            out = self.new_name()
            code = code.replace("@o", out)
        try:
            with _quiet_ctx():
                exec(code, self.ns64)
                exec(code, self.ns32)
            names = [out] if out else []
            if mutates:
                names.append(mutates)
            kinds = [self._check_value(n) for n in names]
        except (_Reject, RuntimeError, IndexError, ValueError, TypeError) as e:
            if out:
                self.ns64.pop(out, None)
                self.ns32.pop(out, None)
                self.count -= 1
            if mutates:
                self._rebuild()
            raise _Reject(str(e)) from None
        if out:
            self.vars[out] = _Var(out, tuple(self.ns64[out].shape), kinds[0])
        if mutates:
            self.mutated.add(mutates)
            self.vars[mutates].shape = tuple(self.ns64[mutates].shape)
        self.steps.append(Step(code, label, out))
        return out

    def _rebuild(self):
        """Re-run the accepted steps from the leaves (after a rejected in-place step)."""
        self.ns64, self.ns32 = _namespace(self.torch), _namespace(self.torch)
        self._make_leaves()
        with _quiet_ctx():
            for s in self.steps:
                exec(s.code, self.ns64)
                exec(s.code, self.ns32)

    def _make_leaves(self):
        torch = self.torch
        for lf, arr in zip(self.leaves, self.arrays):
            for ns, dt in ((self.ns64, torch.float64), (self.ns32, torch.float32)):
                ns[lf.name] = torch.tensor(arr, dtype=dt, requires_grad=lf.requires_grad)

    # -- leaves --
    def make_leaves(self):
        rng = self.rng
        if self.large:
            base = self.choice(LARGE_BASES)
        else:
            nd = int(rng.choice([1, 2, 2, 3, 3]))
            base = tuple(int(d) for d in rng.choice(SMALL_DIMS, nd, replace=False))
            if self.r() < 0.15:  # some bigger small shapes (still < FUSE_MIN)
                base = (base[0] * 7,) + base[1:]
        shapes = [base]
        n_more = int(rng.integers(0, 3))
        for _ in range(n_more):
            k = int(rng.integers(0, 6))
            nd = len(base)
            if k == 0:
                s = base[1:] if nd > 1 else (1,)
            elif k == 1:
                s = base
            elif k == 2 and nd >= 2:
                s = base[:-1] + (1,)
            elif k == 3:
                s = ()
            elif k == 4:
                s = (base[-1],)
            else:
                s = tuple(1 if rng.random() < 0.5 else d for d in base)
            shapes.append(tuple(s))
        dt = np.float32 if self.dtype == "float32" else np.float64
        for k, s in enumerate(shapes):
            lo, hi = self.choice([(-2.0, 2.0), (-2.0, 2.0), (-1.0, 1.0), (0.1, 3.0), (-3.0, 1.0)])
            rg = k == 0 or self.r() < 0.75
            name = f"x{k}"
            arr = rng.uniform(lo, hi, s).astype(dt).astype(np.float64)
            self.leaves.append(Leaf(name, s, lo, hi, rg))
            self.arrays.append(np.asarray(arr))
            self.vars[name] = _Var(name, s, "float", leaf=True)
        self.ns64, self.ns32 = _namespace(self.torch), _namespace(self.torch)
        self._make_leaves()

    # -- step kinds (each either records one or more steps or raises _Reject) --
    UNARY = [
        ("exp", ["M.exp({x})", "{x}.exp()"], 4.0),
        ("log", ["M.log({x})", "{x}.log()"], "positive"),
        ("log1p", ["M.log1p({x})"], "positive"),
        ("expm1", ["M.expm1({x})", "{x}.expm1()"], 4.0),
        ("sqrt", ["M.sqrt({x})", "{x}.sqrt()"], "positive"),
        ("rsqrt", ["M.rsqrt({x})", "{x}.rsqrt()"], "positive"),
        ("reciprocal", ["M.reciprocal({x})", "{x}.reciprocal()", "1.0 / {x}"], "nonzero"),
        ("sin", ["M.sin({x})", "{x}.sin()"], 20.0),
        ("cos", ["M.cos({x})", "{x}.cos()"], 20.0),
        ("tan", ["M.tan({x})"], 1.2),
        ("tanh", ["M.tanh({x})", "{x}.tanh()"], 20.0),
        ("sigmoid", ["M.sigmoid({x})", "{x}.sigmoid()"], 30.0),
        ("erf", ["M.erf({x})", "{x}.erf()"], 10.0),
        ("gelu", ["F.gelu({x})", "F.gelu({x}, approximate='tanh')"], 20.0),
        ("silu", ["F.silu({x})"], 20.0),
        ("abs", ["{x}.abs()", "M.abs({x})", "abs({x})"], "kink"),
        ("relu", ["M.relu({x})", "F.relu({x})", "{x}.relu()"], "kink"),
        ("sign", ["M.sign({x})", "{x}.sign() * {x}"], "kink"),
        ("neg", ["-{x}", "M.neg({x})"], None),
        ("square", ["M.square({x})", "{x} ** 2", "{x} * {x}"], 100.0),
        ("cube", ["{x} ** 3"], 20.0),
        ("pow_scalar", ["{x} ** 0.5", "{x} ** 1.5", "{x} ** -0.5", "M.pow({x}, 2.5)",
                        "{x} ** -1.0"], "positive"),
        ("rpow", ["2.0 ** {x}", "0.5 ** {x}", "M.pow(1.5, {x})"], 8.0),
        ("affine", ["{x} * {c}", "{c} * {x}", "{x} + {c}", "{c} - {x}", "{x} - {c}",
                    "{x} / {c}"], None),
        ("rdiv", ["{c} / {x}"], "nonzero"),
    ]
    # ops whose VJP reads their own output (the bug class of lazy reductions feeding them)
    OUT_READERS = ["exp", "sqrt", "tanh", "sigmoid", "reciprocal", "expm1", "pow_scalar",
                   "rsqrt", "tan", "pow_tensor"]

    def unary(self, x=None, name=None, label="unary"):
        if x is None:
            x = self.pick(self.floats(big=True)).name
        ops = self.UNARY if name is None else [u for u in self.UNARY if u[0] == name]
        if name == "pow_tensor":
            return self.binary(x=x, name="pow", label=label)
        op, forms, dom = self.choice(ops)
        e, kinks = self.domain(x, dom)
        c = _fmt(self.const(0.5, 2.0, neg=op == "affine"))
        code = "@o = " + self.choice(forms).format(x=e, c=c)
        return self.run(code, f"{label}:{op}", kinks)

    def clamp(self):
        x = self.pick(self.floats(big=True)).name
        a = self.t64(x).double().flatten()
        q = a.quantile(self.torch.tensor([0.3, 0.7], dtype=a.dtype)) if a.numel() < 16_000_000 \
            else a[:2]
        lo, hi = sorted((round(float(q[0]), 2), round(float(q[1]), 2)))
        if lo == hi:
            hi = lo + 0.1
        k = int(self.rng.integers(0, 5))
        if k == 0:
            code, kinks = f"@o = {x}.clamp({_fmt(lo)}, {_fmt(hi)})", [f"{x} - {lo}", f"{x} - {hi}"]
        elif k == 1:
            code, kinks = f"@o = M.clamp({x}, min={_fmt(lo)})", [f"{x} - {lo}"]
        elif k == 2:
            code, kinks = f"@o = {x}.clamp(max={_fmt(hi)})", [f"{x} - {hi}"]
        elif k == 3:
            code, kinks = f"@o = M.clip({x}, {_fmt(lo)}, {_fmt(hi)})", [f"{x} - {lo}",
                                                                         f"{x} - {hi}"]
        else:  # tensor bounds (x keeps the broadcast shape: torch's clamp backward needs it)
            s = self.vars[x].shape
            pool = [v for v in self.floats() if v.name != x and
                    _bshape(v.shape, s) == s]
            if not pool:
                raise _Reject("no bound")
            b = self.pick(pool).name
            lo_e, hi_e = f"({b} - 0.5)", f"({b} + 0.5)"
            if self.r() < 0.3:
                lo_e, hi_e = hi_e, lo_e  # min > max: torch gives max everywhere
            code = f"@o = M.clamp({x}, {lo_e}, {hi_e})"
            kinks = [f"{x} - {lo_e}", f"{x} - {hi_e}"]
        return self.run(code, "unary:clamp", kinks)

    def binary(self, x=None, name=None, label="binary"):
        if x is None:
            x = self.pick(self.floats(big=True)).name
        s = self.vars[x].shape
        pool = self.broadcastable(s, self.floats())
        y = self.pick(pool).name if pool and self.r() < 0.85 else None
        if y is None:  # a function of x itself
            y_expr = self.choice([f"M.cos({x})", f"({x} * 0.5)", f"M.sigmoid({x})"])
        else:
            y_expr = y
        op = name or self.choice(["add", "add", "sub", "mul", "mul", "div", "pow", "maximum",
                                  "minimum", "where", "where"])
        kinks = []
        if op == "add":
            code = self.choice(["{a} + {b}", "M.add({a}, {b})", "{a}.add({b}, alpha={c})"])
        elif op == "sub":
            code = self.choice(["{a} - {b}", "M.sub({a}, {b}, alpha={c})", "{a}.sub({b})"])
        elif op == "mul":
            code = self.choice(["{a} * {b}", "M.mul({a}, {b})"])
        elif op == "div":
            if y is None:
                raise _Reject("div by self")
            y_expr, kinks = self.nonzero(y)
            code = self.choice(["{a} / {b}", "M.div({a}, {b})", "{a}.div({b})"])
        elif op == "pow":  # tensor exponent
            base, kinks = self.positive(x)
            if y is None:
                expo = f"M.tanh({x})"
            else:
                expo, k2 = self.bounded(y, 2.0)
                kinks = kinks + k2
            code = self.choice(["{a} ** {b}", "M.pow({a}, {b})", "{a}.pow({b})"])
            code = "@o = " + code.format(a=base, b=expo, c="")
            return self.run(code, f"{label}:pow_tensor", kinks)
        elif op in ("maximum", "minimum"):
            kinks = [f"{x} - {y_expr}"]
            code = f"M.{op}({{a}}, {{b}})" if self.r() < 0.7 else f"{{a}}.{op}({{b}})"
        else:  # where
            kinks = [f"{x} - {y_expr}"]
            cmp = self.choice([">", "<", ">=", "<="])
            code = self.choice([f"M.where({{a}} {cmp} {{b}}, {{a}}, {{b}})",
                                f"M.where({{a}} {cmp} {{b}}, {{a}} * {{c}}, {{b}} - 1.0)",
                                f"M.where({{a}} {cmp} {{b}}, {{a}}, 0.0)",
                                f"M.where({{a}} {cmp} {{b}}, 1.5, {{b}})"])
            if self.r() < 0.3:  # a stored boolean variable as the condition
                bools = [v for v in self.vars.values() if v.kind == "bool" and
                         self.broadcastable(s, [v])]
                if bools:
                    c = self.pick(bools).name
                    code = f"M.where({c}, {{a}}, {{b}})"
                    kinks = []
        c = _fmt(self.const())
        code = "@o = " + code.format(a=x, b=y_expr, c=c)
        return self.run(code, f"{label}:{op}", kinks)

    def compare(self):
        bools = [v for v in self.vars.values() if v.kind == "bool"]
        if len(bools) >= 2 and self.r() < 0.3:
            p, q = self.pick(bools).name, self.pick(bools).name
            code = self.choice([f"@o = M.logical_and({p}, {q})", f"@o = {p} & {q}",
                                f"@o = ~{p}", f"@o = M.logical_not({p})"])
            return self.run(code, "compare:logical")
        x = self.pick(self.floats(big=True)).name
        pool = self.broadcastable(self.vars[x].shape, self.floats())
        if self.r() < 0.5 and pool:
            y = self.pick(pool).name
        else:
            y = _fmt(round(float(self.t64(x).double().median()), 2))
        op = self.choice([">", "<", ">=", "<=", "!="])
        fn = {">": "gt", "<": "lt", ">=": "ge", "<=": "le", "!=": "ne"}[op]
        code = self.choice([f"@o = {x} {op} {y}", f"@o = M.{fn}({x}, {y})"])
        return self.run(code, "compare:" + fn, [f"{x} - {y}"])

    def _dims(self, nd):
        d = int(self.rng.integers(-nd, nd))
        keep = self.r() < 0.4
        return d, keep

    REDUCTIONS = ["sum", "sum", "mean", "mean", "amax", "max_all", "max_dim", "prod", "var", "std",
                  "logsumexp", "softmax", "log_softmax"]

    def reduce(self, x=None, op=None, label="reduce"):
        if x is None:
            x = self.pick(self.floats(lambda v: len(v.shape) >= 1, big=True)).name
        nd = len(self.vars[x].shape)
        op = op or self.choice(self.REDUCTIONS)
        d, keep = self._dims(max(nd, 1))
        k = _kw(keep)
        dims = None
        if nd >= 2 and self.r() < 0.25:
            dims = tuple(sorted(int(v) for v in self.rng.choice(nd, 2, replace=False)))
        kinks = []
        if op in ("sum", "mean"):
            forms = [f"{x}.{op}()", f"{x}.{op}({d})", f"{x}.{op}(dim={d}{k})",
                     f"M.{op}({x}, {d}{k})", f"M.{op}({x})"]
            if dims:
                forms += [f"{x}.{op}(dim={dims}{k})", f"M.{op}({x}, {dims})"]
            code = self.choice(forms)
        elif op == "amax":
            fn = self.choice(["amax", "amin"])
            dd = dims if dims and self.r() < 0.5 else d
            code = self.choice([f"{x}.{fn}({dd})", f"M.{fn}({x}, dim={dd}{k})"])
            kinks = [f"_gap({x}, {dd})"]
        elif op == "max_all":
            code = self.choice([f"{x}.max()", f"M.min({x})", f"{x}.min()", f"M.max({x})"])
            kinks = [f"_gap({x})"]
        elif op == "max_dim":
            fn = self.choice(["max", "min"])
            code = self.choice([f"{x}.{fn}(dim={d}{k}).values", f"M.{fn}({x}, {d})[0]",
                                f"{x}.{fn}({d}, keepdim={keep}).values"])
            kinks = [f"_gap({x}, {d})"]
        elif op == "prod":
            mn, mx, _ = self.stats(x)
            n = self.vars[x].numel
            if mn >= 0.6 and mx <= 1.5 and n <= 64:
                p = x
            else:
                w = 0.25 if n <= 64 else 0.01
                p = f"(M.tanh({x}) * {w} + 1.0)"
            code = self.choice([f"{p}.prod({d})", f"M.prod({p}, dim={d}{k})", f"{p}.prod()"])
        elif op in ("var", "std"):
            unb = self.choice(["", ", unbiased=False", ", correction=0"])
            forms = [f"{x}.{op}({d}{unb}{k})", f"M.{op}({x}, {d}{k})", f"{x}.{op}()"]
            if dims:
                forms.append(f"{x}.{op}(dim={dims}{k})")
            code = self.choice(forms)
            if op == "std":
                kinks = [code.replace(".std", ".var").replace("M.var", "M.var")]
        elif op == "logsumexp":
            dd = dims if dims and self.r() < 0.4 else d
            code = self.choice([f"M.logsumexp({x}, {dd}{k})", f"{x}.logsumexp({dd})"])
        else:  # softmax, log_softmax
            code = self.choice([f"M.{op}({x}, {d})", f"{x}.{op}({d})", f"F.{op}({x}, dim={d})"])
        return self.run("@o = " + code, f"{label}:{op}", kinks)

    def reduce_then_unary(self):
        """A reduction of a (large) tensor feeding an op whose VJP reads its own output."""
        big = self.floats(lambda v: len(v.shape) >= 1, big=True)
        x = self.pick(big).name
        nd = len(self.vars[x].shape)
        d = int(self.rng.integers(-nd, nd))
        red = self.choice([f"{x}.sum()", f"{x}.mean()", f"{x}.sum({d})", f"{x}.mean({d})",
                           f"{x}.sum({d}, keepdim=True)", f"({x} * {x}).sum()",
                           f"({x} * {x}).mean({d})", f"{x}.amax({d})",
                           f"{x}.mean(dim={d}, keepdim=True)"])
        kinks = [f"_gap({x}, {d})"] if "amax" in red else []
        r = self.run("@o = " + red, "reduce_then:" + red.split(".")[-1].split("(")[0], kinks)
        op = self.choice(self.OUT_READERS)
        return self.unary(x=r, name=op, label="of_reduction")

    def view(self, x=None):
        if x is None:
            x = self.pick(self.floats(big=True)).name
        s = self.vars[x].shape
        nd = len(s)
        k = self.choice(["reshape", "transpose", "permute", "expand", "unsqueeze", "squeeze",
                         "slice", "select", "split", "contiguous", "flatten"])
        if k == "reshape" and nd >= 1:
            if nd >= 2 and self.r() < 0.5:
                i = int(self.rng.integers(0, nd - 1))
                new = s[:i] + (s[i] * s[i + 1],) + s[i + 2:]
            else:
                i = int(self.rng.integers(0, nd))
                divs = [p for p in range(2, s[i]) if s[i] % p == 0]
                if not divs:
                    new = (1,) + s
                else:
                    p = self.choice(divs)
                    new = s[:i] + (p, s[i] // p) + s[i + 1:]
            code = self.choice([f"{x}.reshape{new}" if len(new) > 1 else f"{x}.reshape({new})",
                                f"M.reshape({x}, {new})", f"{x}.view({new})",
                                f"{x}.reshape(-1)"])
        elif k == "flatten":
            code = self.choice([f"{x}.flatten()", f"{x}.flatten({int(nd > 1)})"])
        elif k == "transpose" and nd >= 2:
            d0, d1 = (int(v) for v in self.rng.choice(nd, 2, replace=False))
            forms = [f"{x}.transpose({d0}, {d1})", f"M.transpose({x}, {d0}, {-nd + d1})",
                     f"{x}.mT"]
            if nd == 2:
                forms += [f"{x}.t()", f"{x}.T"]
            code = self.choice(forms)
        elif k == "permute" and nd >= 2:
            p = tuple(int(v) for v in self.rng.permutation(nd))
            code = self.choice([f"{x}.permute{p}", f"M.permute({x}, {p})"])
        elif k == "expand":
            n = int(self.rng.integers(2, 4))
            if 1 in s:
                new = tuple(n if v == 1 else v for v in s)
            else:
                new = (n,) + s
            if math.prod(new) > MAX_NUMEL[self.mode]:
                raise _Reject("expand size")
            code = self.choice([f"{x}.expand{new}" if len(new) > 1 else f"{x}.expand({new})",
                                f"M.broadcast_to({x}, {new})"])
        elif k == "unsqueeze":
            d = int(self.rng.integers(-nd - 1, nd + 1))
            code = self.choice([f"{x}.unsqueeze({d})", f"{x}[None]", f"M.unsqueeze({x}, {d})"])
        elif k == "squeeze" and 1 in s:
            d = s.index(1)
            code = self.choice([f"{x}.squeeze({d})", f"{x}.squeeze()"])
        elif k == "slice" and nd >= 1:
            d = int(self.rng.integers(0, nd))
            n = s[d]
            start = int(self.rng.integers(-n, n))
            stop = self.choice([None, int(self.rng.integers(-n, n + 1))])
            step = self.choice([None, None, 2, 3])
            sl = f"{start}:{'' if stop is None else stop}" + (f":{step}" if step else "")
            idx = ", ".join([":"] * d + [sl]) if self.r() < 0.7 else "..., " + ", ".join(
                [sl] + [":"] * (nd - d - 1))
            code = f"{x}[{idx}]"
        elif k == "select" and nd >= 1:
            d = int(self.rng.integers(0, nd))
            i = int(self.rng.integers(-s[d], s[d]))
            code = self.choice([f"{x}.select({d}, {i})", f"M.select({x}, {d}, {i})",
                                f"{x}[{', '.join([':'] * d + [str(i)])}]"])
        elif k == "split" and nd >= 1:
            d = int(self.rng.integers(0, nd))
            n = s[d]
            if n < 2:
                raise _Reject("split")
            c = int(self.rng.integers(1, n))
            j = int(self.rng.integers(0, -(-n // c)))
            code = self.choice([f"{x}.split({c}, dim={d})[{j}]",
                                f"{x}.chunk({min(n, 3)}, {d})[{min(j, min(n, 3) - 1)}]",
                                f"{x}.unbind({d})[{min(j, n - 1)}]"])
        elif k == "contiguous" and nd >= 2:
            code = f"{x}.transpose(0, 1).contiguous()"
        else:
            raise _Reject("view n/a")
        return self.run("@o = " + code, f"view:{k}")

    def index(self):
        x = self.pick(self.floats(lambda v: len(v.shape) >= 1, big=True)).name
        s = self.vars[x].shape
        nd = len(s)
        n0 = s[0]
        k = self.choice(["tensor", "tensor_dim1", "two", "list", "mask", "bool_dim0",
                         "mixed", "bool_var"])
        kinks = []
        m = int(self.rng.integers(1, 6))
        idx = [int(v) for v in self.rng.integers(-n0, n0, m)]
        if k == "tensor":
            code = f"{x}[M.tensor({idx})]"
        elif k == "tensor_dim1" and nd >= 2:
            j = [int(v) for v in self.rng.integers(-s[1], s[1], m)]
            code = self.choice([f"{x}[:, M.tensor({j})]", f"{x}[..., M.tensor({j})]"
                                if nd == 2 else f"{x}[:, M.tensor({j})]"])
        elif k == "two" and nd >= 2:
            j = [int(v) for v in self.rng.integers(-s[1], s[1], m)]
            code = f"{x}[M.tensor({idx}), M.tensor({j})]"
        elif k == "list":
            code = f"{x}[{idx}]"
        elif k == "mask":
            c = round(float(self.t64(x).double().median()), 2)
            code = f"{x}[{x} > {_fmt(c)}]"
            kinks = [f"{x} - {c}"]
        elif k == "bool_dim0":
            b = [bool(v) for v in self.rng.random(n0) < 0.5]
            if not any(b) or n0 > 64:
                raise _Reject("bool index")
            code = f"{x}[M.tensor({b})]"
        elif k == "mixed" and nd >= 2:
            code = f"{x}[M.tensor({idx}), 1:]"
        elif k == "bool_var":
            bools = [v for v in self.vars.values() if v.kind == "bool" and v.shape == s]
            if not bools:
                raise _Reject("no mask")
            code = f"{x}[{self.pick(bools).name}]"
        else:
            raise _Reject("index n/a")
        return self.run("@o = " + code, f"index:{k}", kinks)

    def _copy(self, x):
        return self.choice([f"{x}.clone()", f"{x} * 1.0", f"{x} + 0.0",
                            f"{x} * {_fmt(self.const())}"])

    def _index_for(self, x, unique=True):
        """(index code, kinks) for a write into variable x."""
        s = self.vars[x].shape
        nd = len(s)
        if nd == 0:
            return "...", []
        k = self.choice(["slice", "slice", "int", "tensor", "mask", "bool_var"])
        n0 = s[0]
        if k == "slice":
            d = int(self.rng.integers(0, nd))
            a = int(self.rng.integers(0, s[d]))
            b = int(self.rng.integers(a + 1, s[d] + 1))
            st = self.choice(["", ":2"])
            return ", ".join([":"] * d + [f"{a}:{b}{st}"]), []
        if k == "int":
            return str(int(self.rng.integers(-n0, n0))), []
        if k == "tensor":
            m = int(self.rng.integers(1, min(n0, 4) + 1))
            idx = sorted(int(v) for v in self.rng.choice(n0, m, replace=False))
            return f"M.tensor({idx})", []
        if k == "bool_var":
            bools = [v for v in self.vars.values() if v.kind == "bool" and v.shape == s]
            if bools:
                return self.pick(bools).name, []
        c = round(float(self.t64(x).double().median()), 2)
        return f"{x} > {_fmt(c)}", [f"{x} - {c}"]

    def setitem(self):
        x = self.pick(self.floats(big=True)).name
        s = self.vars[x].shape
        idx, kinks = self._index_for(x)
        idx_src = idx
        k = int(self.rng.integers(0, 4))
        same = [v for v in self.floats() if v.shape == s and v.name != x]
        if k == 0 or (k == 3 and not same):
            val = _fmt(self.const(-1.0, 1.0))
        elif k == 1:
            val = f"M.sin({x}[{idx_src}]) * 2.0"
        elif k == 2:
            pool = [v for v in self.floats() if len(v.shape) <= 1 and v.numel <= 8]
            val = self.pick(pool).name if pool else "0.5"
        else:
            val = f"{self.pick(same).name}[{idx_src}] * 0.5"
        tgt = "@o"
        code = f"@o = {self._copy(x)}\n{tgt}[{idx}] = {val}"
        if self.r() < 0.2:
            code = f"@o = M.zeros_like({x})\n@o[{idx}] = {val}\n@o = @o + {x}"
        return self.run(code, "setitem", kinks)

    INPLACE = ["add_({b})", "add_({b}, alpha={c})", "sub_({b})", "mul_({b})", "mul_({c})",
               "div_({B})", "clamp_({lo}, {hi})", "neg_()", "pow_(2.0)", "copy_({b})",
               "+= {b}", "*= {b}", "-= {c}", "/= {c}", "fill_({c})", "zero_()"]

    def _inplace_line(self, t, s, src):
        """One in-place op on t (shape s); clamp_ bounds come from src's values (t's copy)."""
        op = self.choice(self.INPLACE)
        pool = [v for v in self.floats() if _bshape(v.shape, s) == s and v.name != t]
        b = self.pick(pool).name if pool else _fmt(self.const())
        kinks = []
        B = b
        if "{B}" in op:
            if not pool:
                raise _Reject("no divisor")
            B, kinks = self.nonzero(b)
        lo = hi = 0.0
        if "clamp_" in op:
            a = self.t64(src).double().flatten()
            q = a.quantile(self.torch.tensor([0.25, 0.75], dtype=a.dtype)) \
                if a.numel() < 16_000_000 else a[:2]
            lo, hi = sorted((round(float(q[0]), 2), round(float(q[1]), 2)))
            kinks = [f"{src} - {lo}", f"{src} - {hi}"]
        line = op.format(b=b, B=B, c=_fmt(self.const()), lo=_fmt(lo), hi=_fmt(hi))
        code = f"{t} {line}" if line[0] in "+-*/" else f"{t}.{line}"
        return code, kinks, op.split("(")[0].split(" {")[0]

    def inplace(self):
        """y = copy(x); y.op_(...): in-place ops on a fresh non-leaf, maybe under no_grad."""
        x = self.pick(self.floats(big=True)).name
        s = self.vars[x].shape
        lines = [f"@o = {self._copy(x)}"]
        kinks_all = []
        ops = []
        for _ in range(int(self.rng.integers(1, 3))):
            line, kinks, op = self._inplace_line("@o", s, x)
            lines.append(line)
            ops.append(op)
            kinks_all += kinks
        if "clamp_" in ops and not lines[0].endswith(("clone()", "* 1.0", "+ 0.0")):
            raise _Reject("clamp_ kinks on a scaled copy")
        if "clamp_" in ops[1:]:
            raise _Reject("clamp_ after another op (its kinks are on x's values)")
        nograd = self.r() < 0.25
        if nograd:
            body = lines[1:]
            if self.r() < 0.4 and len(s) >= 1 and s[0] >= 2:  # a view written under no_grad
                body = [f"@o[1:].mul_({_fmt(self.const())})"]
                ops = ["view.mul_"]
            lines = [lines[0], "with M.no_grad():"] + ["    " + b for b in body]
        label = "inplace" + ("_nograd" if nograd else "") + ":" + "+".join(ops)
        return self.run("\n".join(lines), label, kinks_all)

    def mutate(self, t=None):
        """An in-place write into an existing non-leaf variable (its views and later readers
        must see it; values saved for backward must not)."""
        if t is None:
            pool = [v for v in self.floats(lambda v: not v.leaf)
                    if self.ns64[v.name]._base is None and self.ns64[v.name].requires_grad]
            t = self.pick(pool).name
        s = self.vars[t].shape
        ptr = self.ns64[t].untyped_storage().data_ptr()
        others = [v for v in self.floats() if _bshape(v.shape, s) == s and
                  self.ns64[v.name].untyped_storage().data_ptr() != ptr]
        k = int(self.rng.integers(0, 4))
        kinks = []
        if k == 0:
            code = f"{t}.mul_({_fmt(self.const())})"
        elif k == 1 and others:
            code = f"{t}.add_({self.pick(others).name})"
        elif k == 2 and len(s) >= 1:
            idx, kinks = self._index_for(t)
            code = f"{t}[{idx}] = {_fmt(self.const(-1.0, 1.0))}"
        else:
            code = f"with M.no_grad():\n    {t}.mul_({_fmt(self.const())})"
        return self.run(code, "mutate", kinks, mutates=t)

    def alias(self):
        """y = copy(x); w = view of y; write into y; later steps read w (and y): a view must
        see its base's in-place writes, in value and in gradient."""
        x = self.pick(self.floats(big=True)).name
        y = self.run(f"@o = {self._copy(x)}", "alias:copy")
        w = None
        for _ in range(4):
            try:
                w = self.view(x=y)
                break
            except _Reject:
                continue
        if w is None or self.ns64[w]._base is None:
            raise _Reject("no view")
        self.mutate(t=y)
        self.focus = [w, y]
        return w

    def cast(self):
        """dtype casts and promotion (int, bool, the other float), detach and no_grad values,
        and new leaves made from intermediates."""
        x = self.pick(self.floats(big=True)).name
        s = self.vars[x].shape
        k = self.choice(["float", "double", "to", "int", "int0d", "bool", "detach", "no_grad",
                         "new_leaf"])
        kinks = []
        if k == "float":
            code = f"@o = {x}.float() * {_fmt(self.const())}"
        elif k == "double":
            code = f"@o = {x}.double() + {_fmt(self.const())}"
        elif k == "to":
            other = "float64" if self.dtype == "float32" else "float32"
            code = f"@o = {x}.to(M.{other}) * {x}.to(M.{other})"
        elif k == "int" and s:
            code = f"@o = {x} * M.arange({s[-1]}) / {s[-1]}"
        elif k == "int0d":
            code = f"@o = {x} + M.tensor(2)"
        elif k == "bool":
            c = round(float(self.t64(x).double().median()), 2)
            code = f"@o = {x} * ({x} > {_fmt(c)})"
            kinks = [f"{x} - {c}"]
        elif k == "detach":
            pool = self.broadcastable(s, self.floats())
            y = self.pick(pool).name
            code = f"@o = {x}.detach() * {y}"
        elif k == "no_grad":
            code = f"with M.no_grad():\n    @o = {x} * 2.0"
        elif k == "new_leaf":
            code = f"@o = {x}.detach().requires_grad_()"
        else:
            raise _Reject("cast n/a")
        out = self.run(code, f"cast:{k}", kinks)
        if k in ("float", "to") and (k == "float" and self.dtype == "float64" or k == "to"):
            self.mixed = True
        if k == "new_leaf":
            self.vars[out].leaf = True
            self.new_leaves.append(out)
        return out

    def sync(self):
        """Observe a value mid-program (float(...)): pending lazy work is realised here rather
        than at the end, which changes how the fused groups are cut."""
        x = self.pick(self.floats(big=True)).name
        self.run(f"_ = float({x}.detach().sum())", "sync")

    def matmul(self):
        pool = self.floats(lambda v: len(v.shape) >= 1)
        for _ in range(8):
            a = self.pick(pool).name
            b = self.pick(pool).name
            na, nb = len(self.vars[a].shape), len(self.vars[b].shape)
            forms = ["{a} @ {b}", "M.matmul({a}, {b})"]
            if na >= 2:
                forms += ["{a} @ {a}.mT", "{a}.mT @ {a}"]
            if na >= 2 and nb >= 2:
                forms += ["{a} @ {b}.mT", "{a}.mT @ {b}"]
            if na == 2 and nb == 2:
                forms += ["M.mm({a}, {b})", "F.linear({a}, {b})", "{a}.mm({b}.t())"]
            if na == 2 and nb == 1:
                forms += ["M.mv({a}, {b})"]
            if na == 1 and nb == 1:
                forms += ["M.dot({a}, {b})", "M.outer({a}, {b})"]
            if na == 3 and nb == 3:
                forms += ["M.bmm({a}, {b}.mT)"]
            code = "@o = " + self.choice(forms).format(a=a, b=b)
            try:
                return self.run(code, "matmul:" + code.split("=", 1)[1].strip()
                                .replace(a, "a").replace(b, "b"))
            except _Reject:
                continue
        raise _Reject("no matmul")

    def cat(self):
        x = self.pick(self.floats(lambda v: len(v.shape) >= 1, big=True)).name
        s = self.vars[x].shape
        nd = len(s)
        d = int(self.rng.integers(-nd, nd))
        same = [v for v in self.floats() if v.shape == s]
        y = self.pick(same).name if same and self.r() < 0.7 else f"M.tanh({x})"
        fn = self.choice(["cat", "cat", "stack"])
        if fn == "stack":
            d = int(self.rng.integers(-nd - 1, nd + 1))
        code = self.choice([f"@o = M.{fn}([{x}, {y}], dim={d})", f"@o = M.{fn}(({y}, {x}), {d})"])
        return self.run(code, f"cat:{fn}")

    def loss(self):
        k = self.choice(["ce", "ce", "mse", "l1", "bce_logits", "bce"])
        red = self.choice(["", "", ", reduction='sum'", ", reduction='none'"])
        if k == "ce":
            x = self.pick(self.floats(lambda v: len(v.shape) in (1, 2, 3) and v.shape[-1 if
                                      len(v.shape) == 1 else 1] >= 2, big=True)).name
            s = self.vars[x].shape
            c = s[0] if len(s) == 1 else s[1]
            if len(s) == 1:
                tgt = f"M.tensor({int(self.rng.integers(0, c))})"
            elif len(s) == 2 and s[0] <= 32:
                tgt = f"M.tensor({[int(v) for v in self.rng.integers(0, c, s[0])]})"
            elif len(s) == 2:
                tgt = f"M.arange({s[0]}).clamp(0, {c - 1})"
            else:
                tgt = f"M.tensor({self.rng.integers(0, c, (s[0],) + s[2:]).tolist()})"
                if s[0] * math.prod(s[2:]) > 64:
                    raise _Reject("target size")
            ign = f", ignore_index={int(self.rng.integers(0, c))}" if self.r() < 0.2 else ""
            lx, kinks = self.bounded(x, 30.0)
            code = self.choice([f"F.cross_entropy({lx}, {tgt}{red}{ign})",
                                f"F.nll_loss(M.log_softmax({lx}, {0 if len(s) == 1 else 1}), "
                                f"{tgt}{red})"])
            return self.run("@o = " + code, "loss:" + code.split("(")[0][2:], kinks)
        x = self.pick(self.floats(big=True)).name
        s = self.vars[x].shape
        same = [v for v in self.floats() if v.shape == s and v.name != x]
        y = self.pick(same).name if same else f"M.cos({x})"
        kinks = []
        if k == "mse":
            code = f"F.mse_loss({x}, {y}{red})"
        elif k == "l1":
            code = f"F.l1_loss({x}, {y}{red})"
            kinks = [f"{x} - {y}"]
        elif k == "bce_logits":
            lx, kinks = self.bounded(x, 20.0)
            code = f"F.binary_cross_entropy_with_logits({lx}, M.sigmoid({y}){red})"
        else:
            lx, kinks = self.bounded(x, 4.0)
            code = f"F.binary_cross_entropy(M.sigmoid({lx}), M.sigmoid({y}){red})"
        return self.run("@o = " + code, "loss:" + k, kinks)

    WEIGHTS = {
        "small": {"unary": 22, "clamp": 3, "binary": 18, "compare": 5, "reduce": 14,
                  "reduce_then_unary": 3, "view": 10, "index": 6, "setitem": 5, "inplace": 6,
                  "mutate": 2, "alias": 3, "matmul": 4, "cat": 2, "loss": 4, "cast": 3,
                  "sync": 2},
        "large": {"unary": 16, "clamp": 2, "binary": 16, "compare": 3, "reduce": 16,
                  "reduce_then_unary": 14, "view": 6, "index": 4, "setitem": 4, "inplace": 6,
                  "mutate": 2, "alias": 3, "matmul": 3, "cat": 2, "loss": 5, "cast": 2,
                  "sync": 3},
    }

    def build(self) -> Program:
        self.make_leaves()
        weights = {k: w for k, w in self.WEIGHTS["large" if self.large else "small"].items()
                   if k not in self.without}
        kinds = list(weights)
        p = np.array([weights[k] for k in kinds], float)
        p /= p.sum()
        tries = 0
        while len(self.steps) < self.n_steps and tries < 30 * self.n_steps:
            tries += 1
            kind = kinds[int(self.rng.choice(len(kinds), p=p))]
            try:
                getattr(self, kind)()
            except _Reject:
                continue
        return self.finish()

    def finish(self) -> Program:
        torch = self.torch
        floats = [v for v in self.vars.values() if v.kind == "float" and not v.leaf
                  and self.ns64[v.name].requires_grad]
        if not floats:
            raise _Reject("nothing differentiable")
        last = floats[-1]
        outs = [last.name]
        rest = [v.name for v in floats[:-1]]
        n_more = int(self.rng.integers(0, 3))
        if rest and n_more:
            outs += [str(v) for v in self.rng.choice(rest, min(n_more, len(rest)),
                                                     replace=False)]
        retain = list(self.new_leaves)
        ids = {}
        for n in self.vars:
            ids[id(self.ns64[n])] = ids.get(id(self.ns64[n]), 0) + 1
        # (not a name torch binds to the same object as another: x.flatten(1) of a 2-d x is x)
        cands = [v.name for v in floats if v.name not in self.mutated and
                 self.ns64[v.name]._base is None and v.name not in outs and
                 ids[id(self.ns64[v.name])] == 1]
        if cands and self.r() < 0.3:
            retain.append(self.choice(cands))
        dt = np.float32 if self.dtype == "float32" else np.float64
        cot = [self.rng.standard_normal(tuple(self.ns64[o].shape)).astype(dt).astype(np.float64)
               for o in outs]
        prog = Program(self.seed, self.mode, self.dtype, self.leaves, self.arrays, self.steps,
                       outs, cot, backward=self.choice(["sum", "sum", "autograd", "twice",
                                                        "each"]),
                       observe=self.choice(["before", "after"]), retain=retain,
                       tol="float32" if self.mixed else self.dtype)
        return prog


def _kw(keep):
    return ", keepdim=True" if keep else ""


def _bshape(a, b):
    try:
        return tuple(np.broadcast_shapes(a, b))
    except ValueError:
        return None


@contextlib.contextmanager
def _quiet_ctx():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with np.errstate(all="ignore"):
            yield


def from_code(text: str, mode: str = "default", dtype: str = "float64", seed: int = 0,
              backward: str = "sum", observe: str = "before") -> Program:
    """A Program from the text :meth:`Program.code` prints (or one written by hand, e.g. a
    regression test): ``xK = leaf(shape, lo, hi[, requires_grad=True])`` lines, statements
    over M/F, ``vK.retain_grad()`` lines and ``outputs = [...]``. Leaf values and cotangents
    are drawn from ``seed``."""
    import ast
    mode = ALIASES.get(mode, mode)
    tree = ast.parse(text)
    rng = np.random.default_rng([seed, 7])
    dt = np.float32 if dtype == "float32" else np.float64
    leaves, arrays, steps, outputs, retain = [], [], [], [], []
    for node in tree.body:
        src = ast.get_source_segment(text, node)
        if outputs:
            break  # what follows the outputs line describes the backward, which check() does
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call) and \
                getattr(node.value.func, "id", None) == "leaf":
            args = [ast.literal_eval(a) for a in node.value.args]
            kw = {k.arg: ast.literal_eval(k.value) for k in node.value.keywords}
            shape, lo, hi = tuple(args[0]), float(args[1]), float(args[2])
            leaves.append(Leaf(node.targets[0].id, shape, lo, hi,
                               bool(kw.get("requires_grad", False))))
            arrays.append(rng.uniform(lo, hi, shape).astype(dt).astype(np.float64))
        elif isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "outputs":
            outputs = [e.id for e in node.value.elts]
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Call) and \
                getattr(node.value.func, "attr", None) == "retain_grad":
            retain.append(node.value.func.value.id)
        else:
            out = node.targets[0].id if isinstance(node, ast.Assign) and \
                isinstance(node.targets[0], ast.Name) else None
            steps.append(Step(src, "code", out))
    prog = Program(seed, mode, dtype, leaves, arrays, steps, outputs, [], backward=backward,
                   observe=observe, retain=retain, source="code")
    probe = replace(prog, outputs=[], retain=[])
    torch = _torch()
    ns = _namespace(torch)
    with _quiet_ctx():
        for lf, a in zip(leaves, arrays):
            ns[lf.name] = torch.tensor(a, requires_grad=lf.requires_grad)
        for st in probe.steps:
            exec(st.code, ns)
    prog.cotangents = [rng.standard_normal(tuple(ns[o].shape)).astype(dt).astype(np.float64)
                       for o in outputs]
    return prog


def generate(seed: int, mode: str = "default", n_steps: int | None = None,
             without=()) -> Program:
    """The program for (seed, mode): deterministic for a given torch version. ``without``:
    step kinds (keys of _Gen.WEIGHTS, e.g. 'alias', 'mutate') not to generate."""
    mode = ALIASES.get(mode, mode)
    if mode not in MODES:
        raise ValueError(f"unknown fuzz mode {mode!r}; expected one of {MODES}")
    last = None
    for attempt in range(30):
        try:
            prog = _Gen(seed, mode, n_steps, attempt, without).build()
            ref = (_run(prog, "torch", "float64"), _run(prog, "torch", "float32"))
        except _Reject as e:
            last = e
            continue
        if isinstance(ref[0], _Failure) or isinstance(ref[1], _Failure):
            last = ref[0] if isinstance(ref[0], _Failure) else ref[1]
            continue  # torch refuses it (e.g. a value saved for backward was overwritten)
        prog._torch_ref = ref  # (check() reuses these runs)
        return prog
    raise RuntimeError(f"could not generate a program for seed {seed} ({mode}): {last}")


# --- running and comparing --------------------------------------------------------------------

@dataclass
class _Failure:
    where: str
    error: str


@dataclass
class _Outcome:
    outputs: list     # numpy arrays (float64 or bool)
    dtypes: list      # dtype names of the outputs
    grads: dict       # name -> numpy array or None
    scale: float = 0.0  # (torch) largest |value| of any float tensor the program computed


def _dtype_name(d) -> str:
    return str(d).split(".")[-1]


def _run(prog: Program, lib: str, dtype: str):
    """Run prog on 'torch' or 'jitgrad' in dtype: outputs, output dtypes, gradients."""
    if lib == "torch":
        M = _torch()
    else:
        import jitgrad as M
    ns = _namespace(M)
    mdt = getattr(M, dtype)
    stage = "leaves"
    try:
        with _quiet_ctx():
            leaves = []
            for lf, arr in zip(prog.leaves, prog.arrays):
                t = M.tensor(arr, dtype=mdt)
                if lf.requires_grad:
                    t.requires_grad_(True)
                ns[lf.name] = t
                leaves.append(t)
            for k, s in enumerate(prog.steps):
                stage = f"step {k} ({s.label})"
                exec(s.code, ns)
            for r in prog.retain:
                ns[r].retain_grad()
            outs = [ns[o] for o in prog.outputs]
            stage = "outputs"
            vals = [_np(o) for o in outs] if prog.observe == "before" else None
            stage = "backward"
            diff = [(o, u) for o, u in zip(outs, prog.cotangents) if o.requires_grad]
            us = [M.tensor(u, dtype=mdt) for _, u in diff]
            if prog.backward in ("sum", "twice"):
                loss = None
                for (o, _), u in zip(diff, us):
                    term = (o * u).sum()
                    loss = term if loss is None else loss + term
                if prog.backward == "twice":
                    loss.backward(retain_graph=True)
                loss.backward()
            elif prog.backward == "each":
                for k, ((o, _), u) in enumerate(zip(diff, us)):
                    (o * u).sum().backward(retain_graph=k + 1 < len(diff))
            else:
                M.autograd.backward([o for o, _ in diff], us)
            stage = "outputs after backward"
            if vals is None:
                vals = [_np(o) for o in outs]
            grads = {}
            for lf in prog.leaves:
                if lf.requires_grad:
                    g = ns[lf.name].grad
                    grads[lf.name] = None if g is None else _np(g)
            for r in prog.retain:
                g = ns[r].grad
                grads[r] = None if g is None else _np(g)
    except Exception as e:  # noqa: BLE001 (any failure is a finding)
        tb = traceback.extract_tb(e.__traceback__)
        at = f" at {tb[-1].filename.split('/')[-1]}:{tb[-1].lineno}" if tb else ""
        return _Failure(stage, f"{type(e).__name__}: {e}{at}")
    scale = 0.0
    if lib == "torch":  # (not on jitgrad: reading every value would change what gets fused)
        for v in ns.values():
            if isinstance(v, M.Tensor) and v.is_floating_point() and v.numel():
                scale = max(scale, float(v.detach().abs().max()))
    return _Outcome(vals, [_dtype_name(o.dtype) for o in outs], grads, scale)


def _np(t):
    a = np.array(t.detach().numpy(), copy=True)
    return a if a.dtype == np.bool_ else a.astype(np.float64)


def _compare(what, got, want, low, dtype, floor=0.0):
    """None when got (jitgrad) matches want (torch float64) within the program's tolerance;
    else a line saying where and by how much. ``low`` is torch's float32 result: how far it is
    from ``want`` measures the rounding this element amplifies. ``floor``: an absolute
    tolerance from the magnitudes the whole program handled (a gradient that cancels to ~0,
    like that of sum(softmax(x)), keeps rounding noise of the size of its terms)."""
    got, want, low = np.asarray(got), np.asarray(want), np.asarray(low)
    if got.shape != want.shape:
        return f"{what}: shape {got.shape} != torch {want.shape}"
    if want.dtype == np.bool_ or got.dtype == np.bool_:
        bad = np.asarray(got != want)
        if bad.any():
            i = np.unravel_index(int(np.argmax(bad)), bad.shape) if bad.ndim else ()
            return f"{what}: {int(bad.sum())}/{bad.size} booleans differ (first at {i})"
        return None
    if want.size == 0:
        return None
    err = np.abs(low.astype(np.float64) - want)
    err = np.where(np.isfinite(err), err, 0.0)
    aw = np.abs(want)
    scale = float(np.max(aw[np.isfinite(aw)])) if np.isfinite(aw).any() else 0.0
    # the float32 error of an element is a noisy sample (another summation order rounds
    # differently), so the tensor's largest float32 error counts too
    emax = float(np.max(err))
    if dtype == "float32":
        tol = 1e-4 * aw + 1e-5 * scale + 10 * err + 2 * emax + floor + 1e-30
    else:
        tol = 1e-8 * aw + 1e-9 * scale + 1e-6 * err + 1e-7 * emax + floor + 1e-300
    with np.errstate(invalid="ignore"):
        diff = np.abs(got - want)
        bad = ~(diff <= tol)
    both_nan = np.isnan(got) & np.isnan(want)
    same_inf = np.isinf(want) & (got == want)
    bad &= ~(both_nan | same_inf)
    if not bad.any():
        return None
    d = np.where(bad, np.nan_to_num(diff, nan=np.inf), -1.0)
    i = np.unravel_index(int(np.argmax(d)), d.shape) if d.ndim else ()
    return (f"{what}: {int(bad.sum())}/{bad.size} elements off; worst at {tuple(map(int, i))}: "
            f"jitgrad {got[i]!r} vs torch {want[i]!r} (|diff| {diff[i]:.3g}, tol "
            f"{tol[i]:.3g}; max|torch| {scale:.3g})")


@dataclass
class Result:
    program: Program
    problems: list    # one line per mismatch; empty: the program passed
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems

    def report(self) -> str:
        head = "OK" if self.ok else f"{len(self.problems)} mismatch(es)"
        return "\n".join([f"{head} (seed {self.program.seed}, mode {self.program.mode})"]
                         + ["  " + p for p in self.problems] + ["", self.program.code()])


def check(prog: Program) -> Result:
    """Run prog on jitgrad under its mode's fusion settings and compare with torch."""
    t0 = time.perf_counter()
    ref = getattr(prog, "_torch_ref", None)
    r64, r32 = ref or (_run(prog, "torch", "float64"), _run(prog, "torch", "float32"))
    problems = []
    if isinstance(r64, _Failure) or isinstance(r32, _Failure):
        f = r64 if isinstance(r64, _Failure) else r32
        return Result(prog, [f"torch failed at {f.where}: {f.error}"], time.perf_counter() - t0)
    try:
        with fusion_mode(prog.mode):
            got = _run(prog, "jitgrad", prog.dtype)
    except Exception as e:  # noqa: BLE001 (realising leftover pending values failed)
        got = _Failure("the end of the mode (flushing pending values)",
                       f"{type(e).__name__}: {e}")
    if isinstance(got, _Failure):
        return Result(prog, [f"jitgrad raised at {got.where}: {got.error}"],
                      time.perf_counter() - t0)
    want_dt = r64.dtypes if prog.dtype == "float64" else r32.dtypes
    tol = prog.tol or prog.dtype
    big = max([r64.scale] + [float(np.max(np.abs(a))) for a in
                             list(r64.outputs) + list(r64.grads.values())
                             if a is not None and a.size and a.dtype != np.bool_])
    floor = (1e-6 if tol == "float32" else 1e-12) * big
    for k, name in enumerate(prog.outputs):
        if got.dtypes[k] != want_dt[k]:
            problems.append(f"output {name}: dtype {got.dtypes[k]} != torch {want_dt[k]}")
        p = _compare(f"output {name}", got.outputs[k], r64.outputs[k], r32.outputs[k], tol,
                     floor)
        if p:
            problems.append(p)
    for name, want in r64.grads.items():
        g = got.grads.get(name)
        if want is None:
            if g is not None and np.any(g):
                problems.append(f"grad of {name}: jitgrad has a nonzero gradient, torch None")
            continue
        if g is None:
            problems.append(f"grad of {name}: jitgrad None, torch has one "
                            f"(max |g| {np.max(np.abs(want)):.3g})")
            continue
        p = _compare(f"grad of {name}", g, want, r32.grads[name], tol, floor)
        if p:
            problems.append(p)
    return Result(prog, problems, time.perf_counter() - t0)


# --- shrinking a failing program --------------------------------------------------------------

def _uses(code: str, name: str) -> bool:
    return re.search(rf"\b{re.escape(name)}\b", code) is not None


def minimize(prog: Program, max_checks: int = 60) -> Program:
    """A smaller program that still fails: one failing output, no dead steps, no unneeded
    gradients or retained values (greedy; each candidate is re-checked against torch)."""
    budget = [max_checks]

    def fails(p):
        if budget[0] <= 0:
            return False
        budget[0] -= 1
        try:
            ref = (_run(p, "torch", "float64"), _run(p, "torch", "float32"))
        except Exception:  # noqa: BLE001
            return False
        if any(isinstance(r, _Failure) for r in ref):
            return False
        p._torch_ref = ref
        return not check(p).ok

    best = prog
    if len(best.outputs) > 1:
        for k in range(len(best.outputs)):
            cand = replace(best, outputs=[best.outputs[k]], cotangents=[best.cotangents[k]])
            if fails(cand):
                best = cand
                break
    if best.retain:
        cand = replace(best, retain=[])
        if fails(cand):
            best = cand
    changed = True
    while changed:
        changed = False
        for i in range(len(best.steps) - 1, -1, -1):
            s = best.steps[i]
            later = [t.code for t in best.steps[i + 1:]] + best.outputs + best.retain
            if s.out is not None and any(_uses(c, s.out) for c in later):
                continue
            cand = replace(best, steps=best.steps[:i] + best.steps[i + 1:])
            if fails(cand):
                best, changed = cand, True
    for k, lf in enumerate(best.leaves):
        used = any(_uses(s.code, lf.name) for s in best.steps) or lf.name in best.outputs
        if not used or lf.requires_grad:
            leaves = list(best.leaves)
            leaves[k] = replace(lf, requires_grad=False)
            cand = replace(best, leaves=leaves)
            if any(x.requires_grad for x in leaves) and fails(cand):
                best = cand
    return best


def classify(res: Result) -> str:
    """A coarse name for a failure, to group a long run's mismatches: a jitgrad exception by
    its type and message; 'view/in-place' when the program passes once its writes into
    existing variables (step kind 'mutate') are dropped; else output/gradient mismatch."""
    first = res.problems[0]
    if first.startswith("jitgrad raised"):
        return "error: " + first.split(": ", 1)[1].split(" at ")[0][:90]
    prog = res.program
    muts = [s for s in prog.steps if s.label == "mutate"]
    if muts:
        cand = replace(prog, steps=[s for s in prog.steps if s.label != "mutate"])
        try:
            if check(cand).ok:
                return "view/in-place: a view read after an in-place write into its base"
        except Exception:  # noqa: BLE001
            pass
    kinds = sorted({p.split(":")[0].split(" ")[0] for p in res.problems})
    return "mismatch: " + "+".join(kinds)


# --- command line -----------------------------------------------------------------------------

def _main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m jitgrad.testing.fuzz",
                                 description="Differential fuzzing of jitgrad against torch.")
    ap.add_argument("--programs", type=int, default=100, help="how many programs (per mode)")
    ap.add_argument("--start", type=int, default=0, help="first seed")
    ap.add_argument("--mode", default="all",
                    help="default | fuse_all (alias fused) | large | all (each in turn)")
    ap.add_argument("--seed", type=int, help="run (or --show) just this seed")
    ap.add_argument("--show", action="store_true", help="print the program and its comparison")
    ap.add_argument("--minimize", action="store_true", help="shrink failing programs")
    ap.add_argument("--steps", type=int, help="steps per program (default: random)")
    ap.add_argument("--without", default="",
                    help="comma-separated step kinds not to generate (e.g. alias,mutate: "
                         "skip a known bug class to look for others)")
    ap.add_argument("--chunk", type=int, default=200,
                    help="run at most this many seeds per process (0: all in this one): Numba "
                         "keeps the machine code of every kernel it loads until the process "
                         "exits (~0.5 MB each), so a long run recycles its process")
    args = ap.parse_args(argv)
    modes = MODES if args.mode == "all" else (ALIASES.get(args.mode, args.mode),)
    without = tuple(w for w in args.without.split(",") if w)
    if args.seed is None and 0 < args.chunk < args.programs:
        return _run_chunks(args, argv if argv is not None else sys.argv[1:])
    if args.seed is not None:
        rc = 0
        for m in modes:
            prog = generate(args.seed, m, args.steps, without)
            if args.show:
                print(prog.code())
                print()
            res = check(prog)
            print(res.report() if not args.show else "\n".join(
                [("OK" if res.ok else "MISMATCH") + f" ({res.seconds:.2f} s)"] + res.problems))
            if not res.ok and args.minimize:
                print("\n# minimized:\n" + check(minimize(prog)).report())
            rc |= not res.ok
        return int(rc)
    total = failed = 0
    bad = []
    labels: dict = {}
    t0 = time.perf_counter()
    for k in range(args.programs):
        seed = args.start + k
        for m in modes:
            try:
                prog = generate(seed, m, args.steps, without)
            except Exception as e:  # noqa: BLE001 (a generator bug must not end a long run)
                print(f"[seed {seed} {m}] generation failed: {e}", flush=True)
                continue
            res = check(prog)
            total += 1
            for s in prog.steps:
                labels[s.label.split(":")[0]] = labels.get(s.label.split(":")[0], 0) + 1
            if not res.ok:
                failed += 1
                bad.append(res)
                print(f"MISMATCH seed {seed} mode {m}: {res.problems[0]}", flush=True)
        if (k + 1) % 25 == 0 or k + 1 == args.programs:
            el = time.perf_counter() - t0
            print(f"[{k + 1}/{args.programs} seeds, {total} programs, {failed} mismatches, "
                  f"{el:.0f} s]", flush=True)
    print()
    print("step kinds:", ", ".join(f"{k} {v}" for k, v in sorted(labels.items())))
    classes: dict = {}
    for res in bad:
        classes.setdefault(classify(res), []).append(res)
    for res in bad:
        print("\n" + "=" * 78)
        if args.minimize:
            res = check(minimize(res.program))
        print(res.report())
    print("\nmismatch classes:")
    for c, rs in classes.items():
        print(f"  {len(rs):5d}  {c}: " + ", ".join(f"{r.program.mode}/{r.program.seed}"
                                                  for r in rs[:12])
              + (" ..." if len(rs) > 12 else ""))
    print(f"\n{total} programs, {failed} mismatches")
    return int(failed > 0)


def _run_chunks(args, argv):
    """Run the seeds in child processes of args.chunk seeds each; stream their output and add
    up their summaries."""
    import subprocess
    base = []
    skip = False
    for a in argv:  # the arguments without --programs/--start/--chunk (given per child)
        if skip:
            skip = False
            continue
        if a in ("--programs", "--start", "--chunk"):
            skip = True
            continue
        if a.split("=")[0] in ("--programs", "--start", "--chunk"):
            continue
        base.append(a)
    total = failed = 0
    classes: dict = {}
    rc = 0
    for s in range(args.start, args.start + args.programs, args.chunk):
        n = min(args.chunk, args.start + args.programs - s)
        cmd = [sys.executable, "-m", "jitgrad.testing.fuzz", *base, "--start", str(s),
               "--programs", str(n), "--chunk", "0"]
        print(f"# seeds {s}..{s + n - 1} in a fresh process", flush=True)
        section = False
        with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True) as p:
            for line in p.stdout:
                m = re.match(r"^(\d+) programs, (\d+) mismatches$", line.strip())
                if m:
                    total += int(m.group(1))
                    failed += int(m.group(2))
                    section = False
                    continue
                if line.startswith("mismatch classes:"):
                    section = True
                    continue
                c = re.match(r"^\s+(\d+)\s+(.+?): (\S+/\d+.*)$", line) if section else None
                if c:
                    k = classes.setdefault(c.group(2), [0, []])
                    k[0] += int(c.group(1))
                    k[1].append(c.group(3))
                    continue
                print(line, end="", flush=True)
        rc |= p.returncode
    print("\nmismatch classes:")
    for c, (n, where) in classes.items():
        print(f"  {n:5d}  {c}: " + ", ".join(where))
    print(f"\n{total} programs, {failed} mismatches")
    return int(rc != 0 or failed > 0)


if __name__ == "__main__":
    sys.exit(_main())
