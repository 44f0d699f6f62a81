"""codegen: render registry rules (called with symbolic values) into Numba kernel source.

A rule such as ``lambda m, x, out, g: g * (1 - out * out)`` is called with :class:`Sym` arguments
and ``m = SYM_MATH``; every operation appends one ``tN = ...`` line, so a value used twice is
computed once. :func:`render_fused` wraps such a body in a flat or an N-d broadcasting loop (the
one CPU kernel form: an eager op is a fused group of one record, see lazy.run_now), and
:func:`render_cuda` in a numba.cuda grid-stride loop.
"""
from __future__ import annotations

import contextlib
import math
import re

import numpy as np

# Scalar functions available in generated modules (see backends/cpu.py for the prelude).
FUNC_SRC = {
    "exp": "vm_exp", "log": "vm_log", "log1p": "vm_log1p", "expm1": "vm_expm1",
    "sin": "vm_sin", "cos": "vm_cos", "tan": "vm_tan", "tanh": "vm_tanh",
    "sigmoid": "vm_sigmoid", "sqrt": "math.sqrt", "erf": "math.erf", "abs": "abs",
    "sign": "np.sign", "erfc": "math.erfc",
    # scalar NumPy ufuncs: keep float32 as float32 (numba's math.floor would return int64)
    "floor": "np.floor", "ceil": "np.ceil", "round": "np.rint", "trunc": "np.trunc",
    "log2": "np.log2", "log10": "np.log10", "exp2": "np.exp2", "sinh": "np.sinh",
    "cosh": "np.cosh", "asinh": "np.arcsinh", "acosh": "np.arccosh", "atanh": "np.arctanh",
    "asin": "np.arcsin", "acos": "np.arccos", "atan": "np.arctan", "atan2": "np.arctan2",
    "hypot": "np.hypot", "logaddexp": "np.logaddexp",
}

# The same vocabulary in numba.cuda kernels: CUDA's libdevice ``math`` functions. An entry may be
# a function (emitter, operand) -> source, to keep constants typed (a bare ``1`` would turn a
# float32 expression into float64 instructions on the GPU).
FUNC_SRC_CUDA = {
    "exp": "math.exp", "log": "math.log", "log1p": "math.log1p", "expm1": "math.expm1",
    "sin": "math.sin", "cos": "math.cos", "tan": "math.tan", "tanh": "math.tanh",
    "sqrt": "math.sqrt", "erf": "math.erf", "abs": "abs",
    "sigmoid": lambda em, x: f"{em.operand(1.0)} / ({em.operand(1.0)} + math.exp(-{x}))",
    "sign": lambda em, x: (f"{em.operand(1.0)} if {x} > 0 else ({em.operand(-1.0)} if {x} < 0 "
                           f"else {x} - {x})"),
    "erfc": "math.erfc", "floor": "math.floor", "ceil": "math.ceil",
    # not math.trunc: Numba's CUDA simulator runs Python's, which a float32 scalar lacks
    "trunc": lambda em, x: f"math.floor({x}) if {x} >= {em.operand(0.0)} else math.ceil({x})",
    "round": lambda em, x: _cuda_round(em, x),
    "log2": "math.log2", "log10": "math.log10",
    "exp2": lambda em, x: f"math.pow({em.operand(2.0)}, {x})",
    "sinh": "math.sinh", "cosh": "math.cosh", "asinh": "math.asinh", "acosh": "math.acosh",
    "atanh": "math.atanh", "asin": "math.asin", "acos": "math.acos", "atan": "math.atan",
    "atan2": "math.atan2", "hypot": "math.hypot",
    "logaddexp": lambda em, a, b: _cuda_logaddexp(em, a, b),
}


def _cuda_round(em, x):
    """Half to even (torch.round) from floor: libdevice's rint is not in ``math``."""
    f = em.let(f"math.floor({x})").name
    d = em.let(f"{x} - {f}").name
    half, one, two = em.operand(0.5), em.operand(1.0), em.operand(2.0)
    return (f"{f} + {one} if ({d} > {half} or ({d} == {half} and "
            f"math.fmod({f}, {two}) != 0)) else {f}")


def _cuda_logaddexp(em, a, b):
    """max + log1p(exp(-|a - b|)); equal infinities give themselves (not NaN)."""
    hi = em.let(f"{a} if {a} > {b} else {b}").name
    return (f"{a} if ({a} == {b} and math.isinf({a})) else "
            f"{hi} + math.log1p(math.exp(-abs({a} - {b})))")


def _is_float(em):
    """True in a floating-point kernel, False in an integer one (T(0.5) truncates to 0; LLVM
    folds the test). Rows whose integer form differs from the floating one (C-style fmod,
    exact integer division) pick with it; both branches are cast to T so neither promotes."""
    return f"{em.operand(0.5)} != {em.operand(0.0)}"


def _int_fmod(a, b):
    """C's integer remainder (sign of the dividend) from Python's floor modulo."""
    r = f"({a} % {b})"
    return f"({r} - {b} if ({r} != 0 and (({a} < 0) != ({b} < 0))) else {r})"


def _fmod(fn):
    def src(em, a, b):
        return f"{em.T}({fn}({a}, {b})) if {_is_float(em)} else {_int_fmod(a, b)}"
    return src


def _rule(rule):
    """A compound vocabulary function (see "Compound functions" below): the rule expanded into
    the body."""
    def src(em, *args):
        return em.operand(rule(SYM_MATH, *[Sym(em, a) for a in args]))
    return src


def _floor_divide(em, a, b):
    """torch's floating floor division (:func:`floor_divide`); integers: Python's exact //,
    wrapping like NumPy where the quotient overflows (the minimum integer // -1 is itself;
    Numba's // gave 0 there, torch's CPU kernel dies of SIGFPE)."""
    fl = _rule(floor_divide)(em, a, b)
    return f"{em.T}({fl}) if {_is_float(em)} else (-{a} if {b} == -1 else {a} // {b})"


def _div_trunc(em, a, b):
    """trunc(a / b) for floats (torch); integers: C division, exact (from // and %), wrapping
    like :func:`_floor_divide` at the minimum integer / -1."""
    t = em.let(em.funcs["trunc"](em, f"({a} / {b})") if callable(em.funcs["trunc"])
               else f"{em.funcs['trunc']}({a} / {b})").name
    q = (f"(-{a} if {b} == -1 else {a} // {b} + "
         f"(1 if (({a} % {b}) != 0 and (({a} < 0) != ({b} < 0))) else 0))")
    return f"{em.T}({t}) if {_is_float(em)} else {q}"


def _in_float64(em, x, rule):
    """A compound rule evaluated in float64 and cast back to T (CPU kernels)."""
    xd = em.let(f"np.float64({x})").name
    return f"{em.T}({_rule(rule)(em, xd)})"


# Bitwise ops: integer and bool tensors only (the public functions refuse floats). Through
# np.int64() so that the row also compiles in a floating kernel (the PTX check builds every row
# with a float T); T(-1) is True for bool, so xor with it is logical not there, ~x for ints.
# Shifts as torch: a count < 0 or >= 64 gives 0 (<<) or the sign fill (>>); an int32 result
# is the low half of the int64 shift, which is torch's int32 answer for counts 32..63 too.
_BITWISE = {
    "bitwise_and": lambda em, a, b: f"{em.T}(np.int64({a}) & np.int64({b}))",
    "bitwise_or": lambda em, a, b: f"{em.T}(np.int64({a}) | np.int64({b}))",
    "bitwise_xor": lambda em, a, b: f"{em.T}(np.int64({a}) ^ np.int64({b}))",
    "bitwise_not": lambda em, a: f"{em.T}(np.int64({a}) ^ np.int64({em.operand(-1.0)}))",
    "bitwise_left_shift": lambda em, a, b: (
        f"{em.T}(np.int64({a}) << np.int64({b})) if ({b} >= {em.operand(0.0)} and "
        f"{b} < {em.operand(64.0)}) else {em.operand(0.0)}"),
    "bitwise_right_shift": lambda em, a, b: (
        f"{em.T}(np.int64({a}) >> (np.int64({b}) if ({b} >= {em.operand(0.0)} and "
        f"{b} < {em.operand(64.0)}) else np.int64(63)))"),
}

FUNC_SRC.update({
    "fmod": _fmod("np.fmod"), "floor_divide": _floor_divide, "div_trunc": _div_trunc,
    "copysign": "np.copysign", "lgamma": "math.lgamma",
    # in float64 on the CPU (a float32 digamma loses digits to cancellation in its shift)
    "digamma": lambda em, x: _in_float64(em, x, digamma),
    "erfinv": lambda em, x: _in_float64(em, x, erfinv),
    # a loop over the runtime order n (backends/_prelude.polygamma_py), in float64
    "polygamma": lambda em, n, x: f"{em.T}(vm_polygamma({n}, {x}))",
    # sin/cos of x * pi with the product rounded, as torch's sinc computes them
    "sinpi": lambda em, x: f"vm_sin({x} * {em.operand(math.pi)})",
    "cospi": lambda em, x: f"vm_cos({x} * {em.operand(math.pi)})",
    **_BITWISE,
})
FUNC_SRC_CUDA.update({
    "fmod": _fmod("math.fmod"), "floor_divide": _floor_divide, "div_trunc": _div_trunc,
    "copysign": "math.copysign", "lgamma": "math.lgamma",
    "digamma": lambda em, x: _rule(digamma)(em, x),
    "erfinv": lambda em, x: _rule(erfinv)(em, x),
    "polygamma": lambda em, n, x: _rule(polygamma_cuda)(em, n, x),
    # from the exactly reduced argument: libdevice's float32 sin/cos compute in float64
    "sinpi": lambda em, x: _rule(sinpi)(em, x),
    "cospi": lambda em, x: _rule(cospi)(em, x),
    **_BITWISE,
})


class Emitter:
    """Collects the straight-line body of one kernel."""

    def __init__(self, funcs=None):
        self.lines: list[str] = []
        self.n = 0
        self.T = "T"  # the constructor typed constants are rendered with (the compute dtype)
        self.funcs = FUNC_SRC if funcs is None else funcs  # the target's scalar functions

    def let(self, expr: str) -> "Sym":
        name = f"t{self.n}"
        self.n += 1
        self.lines.append(f"{name} = {expr}")
        return Sym(self, name)

    def operand(self, v) -> str:
        if isinstance(v, Sym):
            return v.name
        if isinstance(v, bool):
            return repr(v)
        if isinstance(v, (int, float)):
            if math.isnan(v):
                return f"{self.T}(np.nan)"
            if math.isinf(v):
                return f"{self.T}(np.inf)" if v > 0 else f"{self.T}(-np.inf)"
            return f"{self.T}({float(v)!r})"  # typed: a bare float literal would promote f32
        raise TypeError(f"cannot render {v!r} in a kernel")


class Sym:
    """A named scalar inside a kernel being generated."""

    __slots__ = ("em", "name")
    __hash__ = None

    def __init__(self, em: Emitter, name: str):
        self.em = em
        self.name = name

    def _bin(self, op, a, b):
        em = self.em
        return em.let(f"{em.operand(a)} {op} {em.operand(b)}")

    def __add__(self, o): return self._bin("+", self, o)
    def __radd__(self, o): return self._bin("+", o, self)
    def __sub__(self, o): return self._bin("-", self, o)
    def __rsub__(self, o): return self._bin("-", o, self)
    def __mul__(self, o): return self._bin("*", self, o)
    def __rmul__(self, o): return self._bin("*", o, self)
    def __truediv__(self, o): return self._bin("/", self, o)
    def __rtruediv__(self, o): return self._bin("/", o, self)
    def __pow__(self, o): return self._bin("**", self, o)
    def __rpow__(self, o): return self._bin("**", o, self)
    def __neg__(self): return self.em.let(f"-{self.name}")
    def __gt__(self, o): return self._bin(">", self, o)
    def __ge__(self, o): return self._bin(">=", self, o)
    def __lt__(self, o): return self._bin("<", self, o)
    def __le__(self, o): return self._bin("<=", self, o)
    def __eq__(self, o): return self._bin("==", self, o)
    def __ne__(self, o): return self._bin("!=", self, o)


class _SymMath:
    """The rule vocabulary rendered as kernel source."""

    def __getattr__(self, fname):
        if fname not in FUNC_SRC:
            raise AttributeError(fname)

        def call(*xs):  # unary, or binary (atan2, hypot, logaddexp)
            em = next(v.em for v in xs if isinstance(v, Sym))
            src, args = em.funcs[fname], [em.operand(v) for v in xs]
            if callable(src):
                return em.let(src(em, *args))
            return em.let(f"{src}({', '.join(args)})")
        return call

    @staticmethod
    def where(c, a, b):
        em = next(v.em for v in (c, a, b) if isinstance(v, Sym))
        return em.let(f"{em.operand(a)} if {em.operand(c)} else {em.operand(b)}")

    @staticmethod
    def and_(a, b):
        return a.em.let(f"{a.name} and {b.name}")

    @staticmethod
    def or_(a, b):
        return a.em.let(f"{a.name} or {b.name}")

    @staticmethod
    def maximum(a, b):  # NaN-propagating like torch.maximum
        em = a.em if isinstance(a, Sym) else b.em
        x, y = em.operand(a), em.operand(b)
        return em.let(f"{x} if ({x} > {y} or {x} != {x}) else {y}")

    @staticmethod
    def minimum(a, b):
        em = a.em if isinstance(a, Sym) else b.em
        x, y = em.operand(a), em.operand(b)
        return em.let(f"{x} if ({x} < {y} or {x} != {x}) else {y}")


SYM_MATH = _SymMath()


def render_body(rule, n_in: int, with_out_and_g: bool = False, n_g: int = 0):
    """Call ``rule(SYM_MATH, x0, x1, ...[, out, g])`` with symbols; return (emitter, result)."""
    em = Emitter()
    args = [Sym(em, f"x{i}") for i in range(n_in)]
    if with_out_and_g:
        args += [Sym(em, "out"), Sym(em, "g")]
    return em, rule(SYM_MATH, *args)


def used_names(lines, names):
    """Which of ``names`` the rendered lines read (decides what a node must save)."""
    text = "\n".join(lines)
    return {n for n in names if re.search(rf"\b{n}\b", text)}


_NAME = re.compile(r"[A-Za-z_]\w*")


def split_invariant(body_lines, variant):
    """(rows computed once before the loop, rows computed per element): a row is loop-invariant
    when it reads only scalar operands and other invariant rows. Hoisting them saves work
    and keeps LLVM's loop optimiser away from chains of vmath calls on a loop-invariant value
    (with sin/cos/tan's large-argument call, such a chain made a compile take minutes)."""
    var = set(variant)
    hoisted, kept = [], []
    for line in body_lines:
        target, _, expr = line.partition(" = ")
        if not _NAME.fullmatch(target) or any(n in var for n in _NAME.findall(expr)):
            var.add(target)
            kept.append(line)
        else:
            hoisted.append(line)
    return hoisted, kept


class Load:
    """One kernel operand: parameter name, the body's variable name, and how it is read.

    kind: 'a' array indexed per element, 's' size-1 array read once, 'c' scalar argument.
    mask: in an N-d kernel, per dimension True where the operand is broadcast (index 0).
    cast: whether the value is converted to the compute dtype ``T`` on load."""

    __slots__ = ("param", "var", "kind", "cast", "mask")

    def __init__(self, param, var, kind, cast=True, mask=None):
        self.param, self.var, self.kind, self.cast, self.mask = param, var, kind, cast, mask


MAX_NESTED_LOOPS = 16  # deeper N-d loops are rendered as one loop (see render_fused)
STAGE_MIN_CHAIN = 3  # stage a flat body whose longest chain of vmath calls is at least this
# ... and that holds at least this many calls: a shorter body fits the CPU's reorder window
# often enough to overlap iterations anyway (W5 k=100's 7-call tail kernel ran 3.8 -> 4.3
# ns/element staged; k=10's 10-call kernel 6.4 -> 4.8)
STAGE_MIN_CALLS = 8
# ... into at most this many stages (evenly spaced cuts). Each stage is a loop LLVM vectorises
# on its own, ~0.045 s of compile time per stage: W5 k=100's three kernels (8, 32 and 95
# stages) take 17.5 s cold instead of 3.6 (once: the disk cache keeps them). Grouping calls
# into fewer stages brings the latency back: W5 k=100's 237-row backward capped at 32 stages
# ran at 98 ns/element, slower than unstaged (68; 41 with its 95 stages), so the cap is only
# a bound on pathological bodies (MAX_GROUP rows give at most a few hundred calls).
STAGE_MAX = 128
# (Tried: cutting a wide body -- 4+ independent calls, no chain -- after every second call,
# against its register spills. W1's kernel gained 2-5.5% replayed (1e5-1e7, both dtypes), but
# W1 with x.grad (5 calls, 6-9 values crossing each cut) lost 12-25% and other wide bodies
# 3-12% (exp/sin/tanh/sigmoid of x with x.grad; 6-7 calls with log1p and cos), and limiting
# cuts to <= 4 crossing values did not rescue them. Not kept.)


# Loop interleaving (backends/cpu._interleaved): a flat loop with a vmath call runs this many
# vector iterations side by side (LLVM's cost model picks 1 for any such body, which then runs
# at the latency of its call chains). njit loops over 4096 elements, one thread, Zen 4, ns per
# element at interleave 1 / 2 / 4 (float32; float64):
#   sigmoid(x)                    0.35 / 0.28 / 0.26;  0.77 / 0.64 / 0.57
#   exp(x) * sin(y) + tanh(x * y) 0.86 / 0.67 / 0.62;  2.19 / 1.90 / 1.87
#   log(sigmoid(x) + y)           0.90 / 0.73 / 0.54;  1.92 / 1.73 / 1.22
#   W1's kernel (4 calls)         1.39 / 1.30 / 1.31;  3.02 / 2.67 / 2.69
# Beyond INTERLEAVE_WIDE_CALLS calls the registers run out: W1 with x.grad (5 calls) ran 3.42
# ns/element at 2 and 3.59 at 4, so such bodies get INTERLEAVE_WIDE. A staged body's loops are
# one call each (INTERLEAVE). Loops without a call keep LLVM's choice (it interleaves short
# bodies itself). Compile time did not change measurably (W1: 0.40-0.58 s either way). Flat
# loops only: an N-d kernel's inner loop runs over the last axis, and with fewer than VF x 4
# elements there (64 float32 lanes on AVX-512) the vector loop never runs and every element
# takes the scalar remainder. sigmoid(x + b), x (rows, K), 4e5 elements, us at 1 / 4: float32
# K = 12 568 / 931, K = 100 189 / 269; float64 K = 24 364 / 693 (given up: float32 K = 256
# 169 / 130).
INTERLEAVE = 4
INTERLEAVE_WIDE = 2
INTERLEAVE_WIDE_CALLS = 4
_INTERLEAVE_SET = [0]   # the value this process last gave LLVM's option (0: its cost model)


@contextlib.contextmanager
def llvm_interleave(count: int):
    """LLVM's ``-force-vector-interleave`` at ``count`` (0: the cost model's choice) for the
    compiles run inside, then the value before; nothing is set when it is already ``count``,
    so a process that builds no interleaved kernel never touches the option. The option is
    process-wide: the caller holds Numba's compiler lock. (Once given, LLVM counts the option
    as set for the rest of the process, so 0 also overrides a loop's own
    ``llvm.loop.interleave.count`` metadata, which Numba never emits, and a value set through
    llvmlite by the user.)"""
    prev = _INTERLEAVE_SET[0]
    if count == prev:
        yield
        return
    import llvmlite.binding as llvm
    llvm.set_option("", f"-force-vector-interleave={count}")
    _INTERLEAVE_SET[0] = count
    try:
        yield
    finally:
        llvm.set_option("", f"-force-vector-interleave={prev}")
        _INTERLEAVE_SET[0] = prev


def loop_interleave(loads, body_lines, results, ndim, var_dtypes=None) -> int:
    """How many vector iterations the loops of render_fused's kernel (the same arguments)
    interleave (0: LLVM's own choice); see INTERLEAVE."""
    if ndim is not None:
        return 0
    variant = split_invariant(body_lines, _loop_vars(loads, ndim))[1]
    calls = sum("vm_" in line for line in variant)
    if not calls:
        return 0
    if calls <= INTERLEAVE_WIDE_CALLS or (var_dtypes is not None and stage_split(
            variant, [r[1] for r in results], var_dtypes)):
        return INTERLEAVE
    return INTERLEAVE_WIDE


def _loop_vars(loads, ndim):
    """The names a body line varies with (loaded per element, or a loop index)."""
    return [ld.var for ld in loads if ld.kind == "a"] + ["i", "j_blk", "i_all"] + \
        [f"i{d}" for d in range(ndim or 0)]


# The element index of a loop that does not run over range(0, n) (blocked, chunked): cast to
# unsigned, because Numba wraps a negative signed index around (``a[i]`` is ``a[i + n]`` for i
# < 0) and LLVM cannot prove ``i_blk + j_blk`` or ``lo + j`` non-negative, so every load and
# store kept a select and a memory-light loop ran 3-9x slower: ``o = x * 0.99`` on 2^22
# float32 took 1846 us in the blocked form and 4000 us in the chunk form, 500 us with this.
_UIDX = "np.uint64"


def stage_split(body_lines, result_vars, known):
    """Where to cut a flat loop body into stages (line indices, each the end of a stage), or
    None. A body whose vmath calls form a long dependency chain (sin(sin(...)) with a few rows
    between, W5) runs at the latency of that chain: the vector loop's body is too long for the
    CPU to overlap iterations, so each call waits for the one before (W5 k=100's forward:
    36 ns/element against its rows' standalone 13). Cut after each vmath call, where every
    value live across the cut has a known dtype (``known``: name -> dtype name) to be kept in
    a stack array for the block; each stage is then a short loop over the block whose
    iterations are independent."""
    defs, last, chain = {}, {}, {}
    for j, line in enumerate(body_lines):
        tgt, _, expr = line.partition(" = ")
        names = _NAME.findall(expr)
        for n in names:
            if n in defs:
                last[n] = j
        if _NAME.fullmatch(tgt):
            defs[tgt] = j
            chain[tgt] = max([chain.get(n, 0) for n in names] or [0]) + ("vm_" in expr)
    if max(chain.values(), default=0) < STAGE_MIN_CHAIN or \
            sum("vm_" in line for line in body_lines) < STAGE_MIN_CALLS:
        return None
    n = len(body_lines)
    for v in result_vars:
        if v in defs:
            last[v] = n
    dies = {}
    for v, j in last.items():
        dies.setdefault(j, []).append(v)
    live, ends = set(), []
    for j, line in enumerate(body_lines):
        tgt = line.partition(" = ")[0]
        if defs.get(tgt) == j and last.get(tgt, -1) > j:
            live.add(tgt)
        for v in dies.get(j, ()):
            live.discard(v)
        if "vm_" in line and j < n - 1 and all(v in known for v in live):
            ends.append(j + 1)
    if len(ends) >= STAGE_MAX:
        step = len(ends) / STAGE_MAX
        ends = sorted({ends[int((k + 1) * step) - 1] for k in range(STAGE_MAX - 1)})
    return ends + [n] if ends else None


def render_fused(name: str, loads: list, body_lines: list, results: list,
                 ndim: int | None, parallel: bool = False, alias: dict | None = None,
                 var_dtypes: dict | None = None) -> str:
    """Source of ``def name(<load params>, o0, o1, ...)`` computing ``body_lines`` per element
    in a flat loop (ndim None: every 'a' operand C-contiguous with the iteration space's size)
    or an ndim-deep loop with broadcast masks, with results ``(kind, var, axes[, dtype
    name])``: kind 'full' stores the value per element; 'sum' accumulates it over ``axes``
    (all dims: a float64 accumulator stored in ``o[0]``; some dims: ``o[...] +=`` into a
    keepdim-shaped output, which needs the N-d loop).

    Flat full sums go through a block buffer of the value's own dtype (a float64 buffer would
    halve the SIMD width of a float32 loop) added up with float64 lanes (``block_sum``).
    N-d sums over the last axis (partial, or over all axes) block that axis's loop the same
    way, one lane sum per block and row, so their loops vectorise as well.
    ``parallel`` (flat loops only) renders the chunk form run by backends/cpu.ChunkedKernel:
    three more parameters ``ctl, pool, lead``; every thread of a launch calls the kernel, which
    claims runs of PAR_BLOCK-element chunks from ``ctl`` atomically until none is left (guided:
    each run a share of the chunks left, so threads stream long contiguous ranges and finish
    within a chunk of each other; the launching thread, ``lead``, then waits for the others'
    last chunks). Each 'sum' output is an array with one slot per chunk (``o[p] = `` that
    chunk's sum), which the launcher adds up in a fixed order (deterministic whichever thread
    ran which chunk).

    ``alias`` {result index: load param}: that full result is written into the operand array
    itself (an in-place update), which is then not a parameter of its own. Said inside the
    kernel, LLVM sees one pointer and vectorises the loop; passed as a second argument, its
    runtime overlap check fails (the arrays are the same) and the scalar loop runs instead,
    2-3x slower.

    ``var_dtypes`` {body variable: dtype name} (CPU kernels): a flat body with a long chain
    of vmath calls is staged (``stage_split``): per SUM_BLOCK block, one loop per stage, the
    values crossing a stage kept in stack arrays. Same operations on the same values (and
    the same blocks for the sums): the results are bitwise those of the unstaged loop.

    A flat body with sin/cos/tan (not in place) is blocked the same way and runs them without
    their large-argument call, each block again with it where some argument was large
    (``_guard_trig``; ``GUARD_TRIG`` off: as written). The same values, bit for bit."""
    results = [r if len(r) == 4 else (*r, "float64") for r in results]
    alias = alias or {}
    outs = [f"o{j}" for j in range(len(results))]
    params = [ld.param for ld in loads] + [o for j, o in enumerate(outs) if j not in alias]
    lines = [f"def {name}({', '.join(params)}):"]
    ind = "    "
    inner = []
    full_params = [ld.param for ld in loads if ld.kind == "a"] + \
        [o for j, (o, r) in enumerate(zip(outs, results)) if r[0] == "full" and j not in alias]
    if ndim is None:  # flat loop: view every full operand as 1-D (free for C-contiguous arrays;
        for p in full_params:  # flat_view, not reshape: LLVM must see the pointers' origin)
            lines.append(f"{ind}{p} = flat_view({p})")
    for j, src in sorted(alias.items()):
        lines.append(f"{ind}{outs[j]} = {src}")
    for ld in loads:
        cast = "T" if ld.cast else ""
        if ld.kind == "c":
            lines.append(f"{ind}{ld.var} = {cast}({ld.param})")
        elif ld.kind == "s":
            lines.append(f"{ind}{ld.var} = {cast}({ld.param}.flat[0])")
        else:
            if ndim is None:
                ix = "i"
            else:
                ix = ", ".join("0" if (ld.mask and ld.mask[d]) else f"i{d}"
                               for d in range(ndim)) or "()"
            inner.append(f"{ld.var} = {cast}({ld.param}[{ix}])")
    accs = []
    for j, (kind, var, axes, _) in enumerate(results):
        if kind == "sum" and (ndim is None or len(axes) == ndim):
            if not (parallel and ndim is None):  # (the chunk form stores per-chunk sums)
                lines.append(f"{ind}acc{j} = {outs[j]}[0]")
            accs.append(j)
    first = next(o for o, r in zip(outs, results) if r[0] == "full") if \
        any(r[0] == "full" for r in results) else None
    blocked = ndim is None and accs
    row_sums = []  # N-d: the sums over the last axis (blocked below)
    stages = None
    loop_vars = _loop_vars(loads, ndim)
    guard = False
    if ndim is None:
        variant = split_invariant(body_lines, loop_vars)[1]
        if var_dtypes is not None:
            stages = stage_split(variant, [r[1] for r in results], var_dtypes)
        # a body with sin/cos/tan runs them without their large-argument call, per block, and
        # runs the block again with it only where some lane was large (_guard_trig)
        guard = GUARD_TRIG and not alias and any(map(_trig_call, variant))
        array_loads = [ld for ld in loads if ld.kind == "a"]
        size = f"{first}.size" if first else \
            (f"{array_loads[0].param}.size" if array_loads else "n_iter")
        lines.append(f"{ind}n_all = {size}")
        depth = 1
        if parallel:  # (claims: see backends/_atomics and cpu.ChunkedKernel)
            lines.append(f"{ind}n_par = (n_all + PAR_BLOCK - 1) // PAR_BLOCK")
            lines.append(f"{ind}chunk_enter(ctl, pool, lead)")
            lines.append(f"{ind}for p_seq in range(n_par):")
            lines.append(f"{ind * 2}p_lo, p_hi = chunk_claim(ctl, n_par)")
            lines.append(f"{ind * 2}if p_lo >= n_par:")
            lines.append(f"{ind * 3}break")
            lines.append(f"{ind * 2}for p_blk in range(p_lo, p_hi):")
            lines.append(f"{ind * 3}lo = p_blk * PAR_BLOCK")
            lines.append(f"{ind * 3}hi = min(lo + PAR_BLOCK, n_all)")
            lo, hi, depth = "lo", "hi", 3
            for j in accs:
                lines.append(f"{ind * 3}s{j} = 0.0")
        else:
            lo, hi = "0", "n_all"
        pad0 = ind * depth
        if blocked or stages or guard:
            # sums: values go to a block buffer (the loop stays vectorisable), each block is
            # added with several float64 lanes (block_sum) — no loop-carried dependency
            for j in accs:
                lines.append(f"{pad0}buf{j} = stack_empty(SUM_BLOCK, np.{results[j][3]})")
            lines.append(f"{pad0}for i_blk in range({lo}, {hi}, SUM_BLOCK):")
            lines.append(f"{pad0}{ind}m_blk = min(SUM_BLOCK, {hi} - i_blk)")
            if guard:  # (the block's loops follow it: _guard_trig)
                lines.append(_GUARD_MARK)
            if not stages:  # (staged: one such loop per stage, below)
                lines.append(f"{pad0}{ind}for j_blk in range(m_blk):")
                lines.append(f"{pad0}{ind * 2}i = {_UIDX}(i_blk + j_blk)")
            depth, oix = depth + 2, "i"
        else:
            if parallel:  # (a range from lo: its index is of unknown sign, see _UIDX)
                lines.append(f"{pad0}for j_blk in range({hi} - {lo}):")
                lines.append(f"{pad0}{ind}i = {_UIDX}({lo} + j_blk)")
            else:
                lines.append(f"{pad0}for i in range({lo}, {hi}):")
            depth, oix = depth + 1, "i"
    elif ndim == 0:
        depth, oix = 1, "()"
    else:
        dims = ", ".join(f"n{d}" for d in range(ndim))
        lines.append(f"{ind}{dims}, = {first + '.shape' if first else 'shape'}")
        if ndim <= MAX_NESTED_LOOPS:
            # sums over the last axis: its loop is blocked as the flat one (values to a
            # stack buffer, each block added with lane_sum), so it vectorises; a float sum
            # carried through o[...] += v would keep it scalar (no reassociation)
            last = ndim - 1
            row_sums = [j for j, r in enumerate(results) if r[0] == "sum" and last in r[2]]
            for j in row_sums:
                lines.append(f"{ind}buf{j} = stack_empty(SUM_BLOCK, np.{results[j][3]})")
            for d in range(ndim if not row_sums else last):
                lines.append(ind * (d + 1) + f"for i{d} in range(n{d}):")
            depth = ndim + 1
            if row_sums:
                pl = ind * (last + 1)
                lines += [f"{pl}for i_blk in range(0, n{last}, SUM_BLOCK):",
                          f"{pl}{ind}m_blk = min(SUM_BLOCK, n{last} - i_blk)",
                          f"{pl}{ind}for j_blk in range(m_blk):",
                          f"{pl}{ind * 2}i{last} = {_UIDX}(i_blk + j_blk)"]
                depth = ndim + 2
        else:  # Python allows 20 nested blocks (NumPy 64 dims): one loop, indices unravelled
            lines.append(f"{ind}for i_all in range({' * '.join(f'n{d}' for d in range(ndim))}):")
            lines.append(f"{ind * 2}r_all = i_all")
            for d in reversed(range(ndim)):
                lines.append(f"{ind * 2}r_all, i{d} = divmod(r_all, n{d})")
            depth = 2
        oix = ", ".join(f"i{d}" for d in range(ndim))
    pad = ind * depth
    if ndim != 0:
        invariant, body_lines = split_invariant(body_lines, loop_vars)
        if invariant:  # before the outermost loop
            at = next(k for k, x in enumerate(lines) if x.startswith(f"{ind}for "))
            lines[at:at] = [ind + x for x in invariant]
    tail = []
    for j, (kind, var, axes, _) in enumerate(results):
        if kind == "full":
            tail.append(f"{outs[j]}[{oix}] = {var}")
        elif j in row_sums or (j in accs and blocked):
            tail.append(f"buf{j}[j_blk] = {var}")
        elif j in accs:
            tail.append(f"acc{j} += {var}")
        else:
            rix = ", ".join("0" if d in axes else f"i{d}" for d in range(ndim))
            tail.append(f"{outs[j]}[{rix}] += {var}")
    if stages:
        lines += _staged(inner, body_lines, tail, stages, var_dtypes, pad[:-2 * len(ind)],
                         ind, lines)
    else:
        lines += [pad + x for x in inner]
        lines += [pad + x for x in body_lines]
        lines += [pad + x for x in tail]
    if guard:  # (the rerun as one loop, whether or not the block is staged)
        at = lines.index(_GUARD_MARK)
        loop = [f"{pad0}{ind}for j_blk in range(m_blk):", f"{pad}i = {_UIDX}(i_blk + j_blk)"]
        lines[at:] = _guard_trig(lines[at + 1:], loop + [pad + x for x in inner + body_lines +
                                                         tail], pad0 + ind, ind)
    for j in row_sums:  # after each block of the last axis
        fn = "lane_sum" if results[j][3] in ("float32", "float64") else "block_sum"
        tgt = f"acc{j}" if j in accs else \
            f"{outs[j]}[{', '.join('0' if d in results[j][2] else f'i{d}' for d in range(ndim))}]"
        lines.append(ind * (ndim + 1) + f"{tgt} += {fn}(buf{j}, m_blk)")
    if blocked:
        tgt, pad1 = ("s", ind * 4) if parallel else ("acc", ind * 2)
        for j in accs:  # (lane_sum: block_sum's lanes as one vector, floats only)
            fn = "lane_sum" if results[j][3] in ("float32", "float64") else "block_sum"
            lines.append(f"{pad1}{tgt}{j} += {fn}(buf{j}, m_blk)")
        if parallel:
            for j in accs:
                lines.append(f"{ind * 3}{outs[j]}[p_blk] = s{j}")
    if not (parallel and ndim is None):
        for j in accs:
            lines.append(f"{ind}{outs[j]}[0] = acc{j}")
    if ndim and first is None:  # no full output to take the iteration space from
        lines[0] = lines[0][:-2] + ", shape):"
    elif ndim is None and "n_iter" in "\n".join(lines):  # only scalars: pass the loop length
        lines[0] = lines[0][:-2] + ", n_iter):"
    if parallel and ndim is None:
        lines.append(f"{ind * 2}atomic_add(ctl, 1, p_hi - p_lo)")
        lines.append(f"{ind}chunk_finish(ctl, n_par, lead)")
        lines[0] = lines[0][:-2] + ", ctl, pool, lead):"
    return "\n".join(lines) + "\n"


GUARD_TRIG = True  # flat bodies run sin/cos/tan per guarded block (_guard_trig); off: as is
GUARD_VECTOR_RERUN_MAX = 8  # a body with at most this many sin/cos/tan reruns vectorised
_GUARD_MARK = "\0guard"
_TRIG_CALL = re.compile(r"(\s*)(\w+) = vm_(sin|cos|tan)\((.*)\)")


def _trig_call(line):
    """(indent, target, function, argument) of a line that is one sin/cos/tan call, or None."""
    m = _TRIG_CALL.fullmatch(line)
    if m is None:
        return None
    depth = 0
    for ch in m.group(4):  # (the argument's parentheses balance: one call, not two)
        depth += (ch == "(") - (ch == ")")
        if depth < 0:
            return None
    return m.groups() if depth == 0 else None


def _guard_trig(loops, rerun_loops, pad, ind):
    """A block's loops (at ``pad``) with sin/cos/tan run without their large-argument call.

    In a long fused body the masked call of vmath's large-argument path cost more than its
    compare: every vector register is live across it (W1 float64, one thread: 3.9 ns/element
    against 3.1 call-free). So the block runs ``vm_<f>_fast`` -- the same arithmetic, valid up to
    |x| = 1e5 float32 / 1e8 float64 -- ORs ``vm_trig_big`` of each argument, and where some
    lane was beyond, runs the block again (``rerun_loops``: its one unstaged loop) with the
    same values bit for bit: with the checked calls, vectorised (float32 lanes in 1e5..2.6e7 take
    a vector path there; a scalar rerun made W1 with such a lane in every block 9x slower),
    or, in a body with more than GUARD_VECTOR_RERUN_MAX of them, with ``vm_<f>_lane``: one
    call each, so that loop stays scalar, as a second vectorised copy of a long chain
    doubled its compile time (W5 k = 100: 10 -> 21 s). The rerun must read what the first
    run read, so kernels writing in place (``alias``) are not guarded."""
    parsed = [(line, _trig_call(line)) for line in rerun_loops]
    lane = "_lane" if sum(c is not None for _, c in parsed) > GUARD_VECTOR_RERUN_MAX else ""
    rerun = [ind + line if c is None else f"{ind}{c[0]}{c[1]} = vm_{c[2]}{lane}({c[3]})"
             for line, c in parsed]
    fast = []
    for line in loops:
        call = _trig_call(line)
        if call is None:
            fast.append(line)
            continue
        sp, tgt, fn, arg = call
        if not _NAME.fullmatch(arg):
            fast.append(f"{sp}u_{tgt} = {arg}")
            arg = f"u_{tgt}"
        fast += [f"{sp}{tgt} = vm_{fn}_fast({arg})", f"{sp}g_big = g_big | vm_trig_big({arg})"]
    # the rerun's own names: Numba's SSA reconstruction of names defined in both copies took
    # 9 s (of 20) to compile W5 k = 100's kernels
    names = set()
    for line in rerun:
        st = line.strip()
        tgt = st[4:].partition(" in ")[0] if st.startswith("for ") else st.partition(" = ")[0]
        names.update(n for n in (x.strip() for x in tgt.split(",")) if _NAME.fullmatch(n))
    return [f"{pad}g_big = False", *fast, f"{pad}if g_big:", *_renamed(rerun, names, "_r")]


def _renamed(lines, names, suffix):
    """``lines`` with every whole-word occurrence of ``names`` given ``suffix``."""
    if not names:
        return lines
    own = re.compile(r"\b(%s)\b" % "|".join(sorted(names, key=len, reverse=True)))
    return [own.sub(r"\1" + suffix, x) for x in lines]


def _staged(inner, body, tail, ends, var_dtypes, pad, ind, lines):
    """The stage loops of a staged flat body (see render_fused), at ``pad`` (the block loop's
    body); the stack arrays of the values crossing stages go before the first loop of
    ``lines``."""
    stages, start = [], 0
    for e in ends:
        stages.append(body[start:e])
        start = e
    stages[-1] = stages[-1] + tail
    defined = {}  # (insertion order: the body's order of definition)
    for s, st in enumerate(stages):
        for line in st:
            tgt = line.partition(" = ")[0]
            if _NAME.fullmatch(tgt):
                defined[tgt] = s
    uses = [set().union(*(_NAME.findall(line) for line in st)) for st in stages]
    # (in definition order, never a set's: the source must be the same in every process, or
    # its hash -- the disk cache's key -- differs and each process compiles it again)
    cross = [v for v in defined if any(v in u for u in uses[defined[v] + 1:])]
    at = next(k for k, x in enumerate(lines) if x.startswith(f"{ind}for "))
    lines[at:at] = [f"{ind}sb_{v} = stack_empty(SUM_BLOCK, np.{var_dtypes[v]})" for v in cross]
    out = []
    p2 = pad + ind * 2
    for s, st in enumerate(stages):
        seg = [f"{pad}{ind}for j_blk in range(m_blk):", f"{p2}i = {_UIDX}(i_blk + j_blk)"]
        loads = [x for x in inner if x.partition(" = ")[0] in uses[s]]
        back = [v for v in cross if v in uses[s] and defined[v] < s]
        seg += [p2 + x for x in loads]
        seg += [f"{p2}{v} = sb_{v}[j_blk]" for v in back]
        seg += [p2 + x for x in st]
        seg += [f"{p2}sb_{v}[j_blk] = {v}" for v in cross
                if defined[v] == s and any(v in u for u in uses[s + 1:])]
        if s:  # names of its own: Numba's SSA reconstruction of a name defined in several
            # loops costs (names x blocks): seconds for W5 k = 100's kernels
            seg = _renamed(seg, ["j_blk", "i"] + [x.partition(" = ")[0] for x in loads] + back,
                           "_s%d" % s)
        out += seg
    return out


def render_cuda(name: str, loads: list, body_lines: list, results: list,
                ndim: int | None) -> str:
    """The numba.cuda twin of :func:`render_fused`, from the same loads, body and results.

    Parameters: the loads, one output per result, then the loop extent (``n_all`` flat, or
    ``n0 .. n{ndim-1}``). Every thread walks a grid-stride range; nothing depends on the grid
    size except the per-block partial sums, so results are deterministic for a given launch.
    - 'full' results store per element (flat: 1-D outputs; N-d: outputs of the iteration shape).
    - 'sum' over every dim: each thread accumulates (float64, int64 for integers), the block adds
      its threads with a shared-memory tree and stores one partial per block in ``o[blockIdx]``
      (the launcher adds the partials in a second, fixed-order pass).
    - 'sum' over some dims (N-d only): the kept index space is split over threads and each thread
      loops over the reduced dims itself, so ``o[...] += v`` has no races and no atomics.
    Size-1 ('s') operands are passed as 1-element 1-D arrays."""
    results = [r if len(r) == 4 else (*r, "float64") for r in results]
    outs = [f"o{j}" for j in range(len(results))]
    nd = ndim or 0
    extent = ["n_all"] if ndim is None else [f"n{d}" for d in range(nd)]
    lines = [f"def {name}({', '.join([ld.param for ld in loads] + outs + extent)}):"]
    ind = "    "
    lines += [f"{ind}tx = cuda.threadIdx.x", f"{ind}first = cuda.grid(1)",
              f"{ind}step = cuda.gridsize(1)"]
    for ld in loads:
        cast = "T" if ld.cast else ""
        if ld.kind == "c":
            lines.append(f"{ind}{ld.var} = {cast}({ld.param})")
        elif ld.kind == "s":
            lines.append(f"{ind}{ld.var} = {cast}({ld.param}[0])")
    accs = [j for j, r in enumerate(results) if r[0] == "sum" and (ndim is None or
                                                                 len(r[2]) == nd)]
    for j in accs:
        acc_t = "float64" if results[j][3].startswith(("float", "f")) else "int64"
        lines.append(f"{ind}acc{j} = numba.{acc_t}(0)")
    red = sorted({d for r in results if r[0] == "sum" and ndim is not None and len(r[2]) != nd
                  for d in r[2]})
    kept = [d for d in range(nd) if d not in red]
    pad = ind * 2
    if ndim is None:
        lines.append(f"{ind}for i in range(first, n_all, step):")
        ix = {"out": "i"}
    else:
        nk = " * ".join(f"n{d}" for d in kept) or "1"
        lines.append(f"{ind}n_kept = {nk}")
        lines.append(f"{ind}for k_flat in range(first, n_kept, step):")
        lines.append(f"{pad}rem = k_flat")
        for d in reversed(kept):
            lines += [f"{pad}i{d} = rem % n{d}", f"{pad}rem //= n{d}"]
        if red:
            nr = " * ".join(f"n{d}" for d in red)
            lines.append(f"{pad}for r_flat in range({nr}):")
            pad = ind * 3
            lines.append(f"{pad}rem = r_flat")
            for d in reversed(red):
                lines += [f"{pad}i{d} = rem % n{d}", f"{pad}rem //= n{d}"]
    for ld in loads:
        if ld.kind != "a":
            continue
        cast = "T" if ld.cast else ""
        if ndim is None:
            ixs = "i"
        else:
            ixs = ", ".join("0" if (ld.mask and ld.mask[d]) else f"i{d}" for d in range(nd))
        lines.append(f"{pad}{ld.var} = {cast}({ld.param}[{ixs}])")
    lines += [pad + x for x in body_lines]
    oix = "i" if ndim is None else ", ".join(f"i{d}" for d in range(nd))
    for j, (kind, var, axes, _) in enumerate(results):
        if kind == "full":
            lines.append(f"{pad}{outs[j]}[{oix}] = {var}")
        elif j in accs:
            lines.append(f"{pad}acc{j} += {var}")
        else:
            rix = ", ".join("0" if d in axes else f"i{d}" for d in range(nd))
            lines.append(f"{pad}{outs[j]}[{rix}] += {var}")
    if accs:  # block tree over the threads' accumulators: one partial per block
        for j in accs:
            acc_t = "float64" if results[j][3].startswith(("float", "f")) else "int64"
            lines += [f"{ind}sh{j} = cuda.shared.array(THREADS, numba.{acc_t})",
                      f"{ind}sh{j}[tx] = acc{j}"]
        lines += [f"{ind}cuda.syncthreads()", f"{ind}w = THREADS // 2", f"{ind}while w > 0:",
                  f"{ind * 2}if tx < w:"]
        lines += [f"{ind * 3}sh{j}[tx] += sh{j}[tx + w]" for j in accs]
        lines += [f"{ind * 2}cuda.syncthreads()", f"{ind * 2}w //= 2", f"{ind}if tx == 0:"]
        lines += [f"{ind * 2}{outs[j]}[cuda.blockIdx.x] = sh{j}[0]" for j in accs]
    return "\n".join(lines) + "\n"


# =============================================================================================
# Compound functions of the vocabulary, written once as rules on ``m`` ("specfun").
#
# Division with rounding (torch's floating ``floor_divide``), ``digamma``, ``erfinv`` and sin/cos
# of pi x have no single CPU/CUDA library call with torch's semantics, so they are rules
# themselves: straight-line code (no loops) over the vocabulary (``m.where``, ``m.log``,
# ``m.fmod``, ...), expanded into the kernel body by the FUNC_SRC entries above (CPU and CUDA
# alike, constants typed ``T(...)`` so a float32 CUDA kernel stays float32) and evaluated on
# floats by ``ops.FLOAT_MATH``. Being part of the generated source (or of this file, which the
# disk cache hashes), a change to them never leaves a stale cached kernel.
#
# ``polygamma`` (a loop over a runtime order n) is :func:`polygamma_py` on the CPU (the
# prelude's ``vm_polygamma``); :func:`polygamma_cuda` is its straight-line CUDA form.

_PI = math.pi


def floor_divide(m, a, b):
    """torch's floating floor division (Python's float ``//``): from fmod, so the quotient is
    exact where a/b would round across an integer; b == 0 gives a / b (+-inf or NaN)."""
    mod = m.fmod(a, b)
    div = (a - mod) / b
    div = m.where(m.and_(mod != 0, (b < 0) != (mod < 0)), div - 1, div)
    fl = m.floor(div)
    fl = m.where(div - fl > 0.5, fl + 1, fl)
    return m.where(b == 0, a / b, m.where(div != 0, fl, m.copysign(0.0, a / b)))


def fmod(m, a, b):
    """torch.fmod on CPU tensors: C's fmod, except NaN where a / b overflows (torch's
    vectorised kernel, Sleef's fmod, is exact only while |a / b| is finite: fmod(1e170,
    1e-170) is NaN there). In an integer kernel the test is never true (the NaN constant is
    T-typed, so nothing promotes) and m.fmod is C's integer remainder."""
    q = m.abs(a / b)
    return m.where(m.and_(q == math.inf, m.abs(a) != math.inf), math.nan, m.fmod(a, b))


def remainder(m, a, b):
    """torch.remainder: fmod moved to the divisor's sign (integers too: fmod is exact there)."""
    mod = fmod(m, a, b)
    return m.where(m.and_(mod != 0, (b < 0) != (mod < 0)), mod + b, mod)


def _sincospi(m, t):
    """(sin(pi t), cos(pi t)) for |t| <= 0.5 by their Taylor series to u**21 / u**20 (error
    below 1e-17): no library sin/cos, whose float32 CUDA forms compute in float64."""
    u = t * _PI
    u2 = u * u
    s = 1 - u2 / 420
    for k in (342, 272, 210, 156, 110, 72, 42, 20, 6):
        s = 1 - u2 / k * s
    c = 1 - u2 / 380
    for k in (306, 240, 182, 132, 90, 56, 30, 12, 2):
        c = 1 - u2 / k * c
    return u * s, c


def _reduced(m, x):
    """(t, odd): x = k + t with k = round(x) (exact), |t| <= 1/2, odd = k is odd."""
    k = m.round(x)
    return x - k, m.fmod(k, 2.0) != 0


def sinpi(m, x):
    """sin(pi x) from the exactly reduced argument."""
    t, odd = _reduced(m, x)
    s, _ = _sincospi(m, t)
    return m.where(odd, -s, s)


def cospi(m, x):
    """cos(pi x) from the exactly reduced argument (0 at half-integers exactly)."""
    t, odd = _reduced(m, x)
    _, c = _sincospi(m, t)
    c = m.where(m.abs(t) == 0.5, 0.0, c)
    return m.where(odd, -c, c)


def sinc(m, x):
    """sin(pi x) / (pi x), 1 at 0 (torch.sinc). ``m.sinpi`` is sin(x * pi) as torch computes it
    on the CPU (the product rounded first) and :func:`sinpi` on CUDA (see codegen)."""
    return m.where(x == 0, 1.0, m.sinpi(x) / (x * _PI))


# psi(x) ~ log x - 1/(2x) - sum_k B_2k / (2k x^2k) for x >= 10 (Bernoulli numbers B2..B14)
_PSI_ASYMPT = (1 / 12, 1 / 120, 1 / 252, 1 / 240, 1 / 132, 691 / 32760, 1 / 12)


def digamma(m, x):
    """psi(x) with torch's edges: psi(+-0) = -+inf, NaN at negative integers and -inf.

    x < 0 reflects (psi(x) = psi(1 - x) - pi cot(pi x), cot from the reduced argument, so it
    is exact near the poles); the argument is then shifted to >= 10 in ten guarded steps
    (psi(y) = psi(y + 1) - 1/y) and the asymptotic series adds the rest."""
    neg = x < 0
    y = m.where(neg, 1 - x, x)
    acc = 0.0
    for _ in range(10):
        small = y < 10
        acc = acc - m.where(small, 1 / y, 0.0)
        y = m.where(small, y + 1, y)
    z = 1 / (y * y)
    c = _PSI_ASYMPT
    ser = c[5] - z * c[6]
    for k in (4, 3, 2, 1):
        ser = c[k] - z * ser
    ser = z * (c[0] - z * ser)
    psi = acc + m.log(y) - 0.5 / y - ser
    r = x - m.trunc(x)
    t = m.where(r < -0.5, r + 1, r)
    s, co = _sincospi(m, t)
    co = m.where(m.abs(t) == 0.5, 0.0, co)  # cot(pi/2) = 0 exactly
    res = m.where(neg, psi - _PI * co / s, psi)
    res = m.where(x == 0, m.copysign(math.inf, -x), res)
    return m.where(m.and_(neg, x == m.trunc(x)), math.nan, res)


_2_SQRTPI = 2 / math.sqrt(math.pi)
_WINITZKI = 0.147


def erfinv(m, y):
    """erf^-1(y): Winitzki's closed form (error < 2e-3) refined by three Halley steps on
    erf(x) - |y| (written (1 - |y|) - erfc(x) in the tail, where 1 - |y| is exact): cubic
    convergence reaches full precision in float32 and float64. +-1 -> +-inf, |y| > 1 -> NaN,
    the sign of zero kept."""
    a = m.abs(y)
    w = m.log((1 - a) * (1 + a))
    t = 2 / (_PI * _WINITZKI) + 0.5 * w
    x = m.sqrt(m.sqrt(t * t - w / _WINITZKI) - t)
    for _ in range(3):
        f = m.where(a > 0.5, (1 - a) - m.erfc(x), m.erf(x) - a)
        u = f / (_2_SQRTPI * m.exp(-x * x))
        x = x - u / (1 + x * u)
    x = m.where(a == 1, math.inf, m.where(a > 1, math.nan, x))
    return m.copysign(x, y)


# Euler-Maclaurin tail of sum_k (a + k)^-s: B_2j / (2j)! for j = 1..9
_EM = (1 / 6 / 2, -1 / 30 / 24, 1 / 42 / 720, -1 / 30 / 40320, 5 / 66 / 3628800,
       -691 / 2730 / 479001600, 7 / 6 / 87178291200, -3617 / 510 / 20922789888000,
       43867 / 798 / 6402373705728000)
CUDA_POLYGAMMA_STEPS = 48  # x >= n + 15 - 48 on the GPU (NaN below: see polygamma_cuda)


def polygamma_tail(m, a, s):
    """sum_{k>=0} (a + k)^-s for a >= s + 14 (Euler-Maclaurin, nine Bernoulli terms)."""
    p = a ** -s
    tot = a ** (1 - s) / (s - 1) + p / 2
    coef = s
    pw = p / a
    ia2 = 1 / (a * a)
    for j, b in enumerate(_EM):
        tot = tot + b * coef * pw
        coef = coef * (s + 2 * j + 1) * (s + 2 * j + 2)
        pw = pw * ia2
    return tot


def polygamma_cuda(m, n, x):
    """psi^(n)(x), n >= 1, straight-line: (-1)^(n+1) n! sum_k (x + k)^-(n+1), the first
    CUDA_POLYGAMMA_STEPS terms summed until x + k >= n + 15, the rest by polygamma_tail.
    When x is too negative for that many steps the result is NaN (the CPU form loops)."""
    s = n + 1
    lim = n + 15
    y = x
    acc = 0.0
    for _ in range(CUDA_POLYGAMMA_STEPS):
        small = y < lim
        acc = acc + m.where(small, y ** -s, 0.0)
        y = m.where(small, y + 1, y)
    fact = m.exp(m.lgamma(s))
    sign = m.where(m.fmod(n, 2.0) == 1, 1.0, -1.0)
    res = sign * fact * (acc + polygamma_tail(m, y, s))
    pole = m.and_(x <= 0, x == m.trunc(x))
    res = m.where(pole, sign * math.inf, res)
    return m.where(m.and_(y < lim, y == y), math.nan, res)


def polygamma_py(n, x):
    """psi^(n)(x) for an integer order n >= 1, in float64 (plain Python; njit-able):
    (-1)^(n+1) n! sum_k (x + k)^-(n+1), summed while x + k < n + 15, the rest by the
    Euler-Maclaurin series (nine Bernoulli terms). Below x = -64 the reflection formula
    psi^(n)(x) = (-1)^n psi^(n)(1 - x) - pi d^n/dx^n cot(pi x) keeps the work bounded (the
    n-th derivative of cot as a polynomial in cot, from its recurrence)."""
    n = int(n)
    x = float(x)
    sign = 1.0 if n % 2 == 1 else -1.0
    if x != x or x == -math.inf:
        return math.nan
    if x <= 0.0 and x == math.floor(x):
        return sign * math.inf
    if x == math.inf:
        return 0.0
    fact = 1.0
    for k in range(2, n + 1):
        fact *= k
    refl = 0.0
    if x < -64.0:
        t = x - math.floor(x + 0.5)  # exact, |t| <= 1/2: cot(pi x) = cot(pi t)
        c = math.cos(math.pi * t) / math.sin(math.pi * t)
        p = np.zeros(n + 2)
        q = np.zeros(n + 2)
        p[1] = 1.0  # P_0(c) = c; P_k+1(c) = -(1 + c^2) P_k'(c)
        for k in range(n):
            q[:] = 0.0
            for j in range(1, k + 2):
                d = j * p[j]
                q[j - 1] -= d
                q[j + 1] -= d
            p[:] = q
        pc = 0.0
        for j in range(n + 1, -1, -1):
            pc = pc * c + p[j]
        refl = -(math.pi ** (n + 1)) * pc
        x = 1.0 - x
        sign = sign * (1.0 if n % 2 == 0 else -1.0)
        # psi^(n)(x) = refl + (-1)^n psi^(n)(1 - x): fold (-1)^n into the sign below
    s = n + 1.0
    lim = n + 15.0
    acc = 0.0
    while x < lim:
        acc += x ** -s
        x += 1.0
    p0 = x ** -s
    tot = x ** (1.0 - s) / (s - 1.0) + p0 / 2.0  # (p0 * x would underflow first)
    coef = s
    pw = p0 / x
    ia2 = 1.0 / (x * x)
    for j in range(9):
        tot += _EM[j] * coef * pw
        coef *= (s + 2 * j + 1) * (s + 2 * j + 2)
        pw *= ia2
    return refl + sign * fact * (acc + tot)
