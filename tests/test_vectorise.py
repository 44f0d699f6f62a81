"""Generated CPU kernels keep their hot loops in packed SIMD arithmetic at the dtype's width.

A change to codegen, vmath or the compile options can silently drop a kernel family back to
a scalar loop (W1 float32 once ran 5.5x slower in some processes because LLVM guarded the vector
loop with runtime overlap checks; a float64 constant turns float32 arithmetic into float64).
Each family is compiled afresh in memory (no disk cache: Numba cannot show the assembly of
cached code) and its assembly must hold packed single (float32) or packed double (float64)
arithmetic on ymm/zmm registers; the float32 elementwise kernels none in double.
x86-64 with AVX2 only (the assertions read x86 assembly). Nine small kernels per dtype: flat,
broadcast (N-d), vmath calls, constants, and sums over all, the last and a leading axis.
"""
import os
import re

import numpy as np
import pytest

import jitgrad as jg
from jitgrad import lazy
from jitgrad.backends import cpu

llvm = pytest.importorskip("llvmlite.binding")
_FEATURES = llvm.get_host_cpu_features()
pytestmark = pytest.mark.skipif(
    not _FEATURES.get("avx2", False) or not _FEATURES.get("fma", False),
    reason="the checks read x86-64 AVX2 assembly")

_ARITH = re.compile(r"\bv(?:add|sub|mul|div|fmadd\d+|fmsub\d+|fnmadd\d+|fnmsub\d+)(ps|pd)\s"
                    r"[^\n]*%([yz])mm")


def _packed(asm):
    """{'ps': n, 'pd': n}: packed arithmetic instructions on 256/512-bit registers."""
    c = {"ps": 0, "pd": 0}
    for m in _ARITH.finditer(asm):
        c[m.group(1)] += 1
    return c


@pytest.fixture
def fresh_kernels(monkeypatch):
    """Every kernel is built anew, in memory, with fusion on for every op."""
    monkeypatch.setenv("JITGRAD_CACHE", "0")
    monkeypatch.setattr(cpu, "_kernels", cpu.KernelCache(0))
    prev, prev_min = lazy.is_fusion_enabled(), lazy.FUSE_MIN
    lazy.set_fusion(True, 0)
    try:
        yield
    finally:
        lazy.set_fusion(prev, prev_min)


def _asm_of(fn):
    """Run ``fn`` (which launches exactly one new generated kernel) and return its assembly,
    after checking that its vector loop is not guarded by runtime overlap checks (they fail,
    and the scalar loop runs, whenever two arrays happen to lie close together in memory)."""
    before = set(cpu._kernels.keys())
    fn()
    new = [cpu._kernels[k] for k in cpu._kernels.keys() if k not in before]
    assert len(new) == 1, f"expected one new kernel, got {len(new)}"
    disp = getattr(new[0], "dispatcher", new[0])
    (ir,) = disp.inspect_llvm().values()
    assert "vector.memcheck" not in ir, "the vector loop runs only if a runtime overlap check passes"
    (asm,) = disp.inspect_asm().values()
    body = _kernel_body(asm)
    # every operand here is read and written contiguously: a gather or scatter means an index
    # LLVM could not prove non-negative (Numba wraps negative indices around), which kept the
    # blocked and chunk loops at a third to a ninth of their speed (codegen._UIDX)
    assert not re.search(r"\bv(gather|scatter)\w+", body), "gather/scatter in the loop"
    return body


def _kernel_body(asm):
    """The kernel function's own assembly: the module also holds out-of-line helpers (sin/cos/
    tan's masked-vector call for rare large arguments works in float64 on purpose)."""
    m = re.search(r"^(_ZN(?!7cpython)[\w$]*fused_fwd[\w$]*):[^\n]*\n", asm, re.M)
    assert m, "kernel function not found in the assembly"
    end = asm.find(".Lfunc_end", m.end())
    return asm[m.end():end if end > 0 else len(asm)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_chunk_form_vectorises(fresh_kernels, monkeypatch, dtype):
    """The chunk form (parallel flat loops, backends/cpu.ChunkedKernel) of a plain and a summed
    body: packed arithmetic, no gather/scatter (its loop starts at the chunk's offset)."""
    monkeypatch.setattr(lazy, "PAR_MIN", 0)
    monkeypatch.setattr(lazy, "PAR_MIN_WORK", 0)
    a, b = (np.random.default_rng(1).standard_normal(40000).astype(dtype) for _ in range(2))
    ta, tb = jg.tensor(a), jg.tensor(b)
    res = {}
    own = "ps" if dtype == np.float32 else "pd"
    for name, f in (("flat", lambda: res.__setitem__("flat", (ta * tb + 1.5).numpy())),
                    ("flat_sum", lambda: res.__setitem__("flat_sum", (ta * tb).sum().item()))):
        before = set(cpu._kernels.keys())
        assert _packed(_asm_of(f))[own] > 0, name
        (k,) = [k for k in cpu._kernels.keys() if k not in before]
        assert isinstance(cpu._kernels[k], cpu.ChunkedKernel), name  # (the chunk form ran)
    tol = dict(rtol=1e-5 if dtype == np.float32 else 1e-12)
    np.testing.assert_allclose(res["flat"], a * b + dtype(1.5), **tol)
    np.testing.assert_allclose(res["flat_sum"], np.sum(a.astype(np.float64) * b), **tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kernel_families_vectorise(fresh_kernels, dtype):
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal(3000).astype(dtype) for _ in range(2))
    A = rng.standard_normal((40, 72)).astype(dtype)
    B = rng.standard_normal(72).astype(dtype)
    C = rng.standard_normal((40, 1)).astype(dtype)
    ta, tb, tA, tB, tC = (jg.tensor(v) for v in (a, b, A, B, C))
    tol = dict(rtol=1e-5 if dtype == np.float32 else 1e-12)
    res = {}

    def flat():
        res["flat"] = (ta * tb + 1.5).numpy()

    def flat_sum():  # the blocked loop: per-block buffer and vector lane sums
        res["flat_sum"] = (ta * tb).sum().item()

    def bcast():     # N-d loop, broadcast operands
        res["bcast"] = (tA * tB - tC).numpy()

    def flat_exp():  # a vmath call inlined in the loop
        res["flat_exp"] = jg.exp(ta).numpy()

    def flat_const():  # a constant in a rule (1 / x): typed, or float32 math turns float64
        res["flat_const"] = jg.reciprocal(ta * ta + 1.0).numpy()

    def flat_trig():  # sin/cos reduce at the dtype's width (float32: in float32)
        res["flat_trig"] = (jg.sin(ta) * jg.cos(tb)).numpy()

    def row_sum():   # N-d sum over the last axis: blocked like the flat sum, lane sums
        res["row_sum"] = (tA * tB - tC).sum(dim=1).numpy()

    def col_sum():   # N-d sum over a leading axis: o[0, i1] += v across the inner loop
        res["col_sum"] = (tA * tB - tC).sum(dim=0).numpy()

    def bcast_sum():  # N-d sum over every axis (a broadcast operand: not flat)
        res["bcast_sum"] = (tA * tB - tC).sum().item()

    fam = {name: _packed(_asm_of(f)) for name, f in
           (("flat", flat), ("flat_sum", flat_sum), ("bcast", bcast), ("flat_exp", flat_exp),
            ("flat_const", flat_const), ("flat_trig", flat_trig), ("row_sum", row_sum),
            ("col_sum", col_sum), ("bcast_sum", bcast_sum))}
    ref = A.astype(np.float64) * B - C
    np.testing.assert_allclose(res["flat_trig"], np.sin(a) * np.cos(b), **tol)
    np.testing.assert_allclose(res["row_sum"], ref.sum(1), **tol)
    np.testing.assert_allclose(res["col_sum"], ref.sum(0), **tol)
    np.testing.assert_allclose(res["bcast_sum"], ref.sum(), **tol)
    np.testing.assert_allclose(res["flat"], a * b + dtype(1.5), **tol)
    np.testing.assert_allclose(res["flat_sum"], np.sum(a.astype(np.float64) * b), **tol)
    np.testing.assert_allclose(res["bcast"], A * B - C, **tol)
    np.testing.assert_allclose(res["flat_exp"], np.exp(a), **tol)
    np.testing.assert_allclose(res["flat_const"], 1 / (a * a + dtype(1)), **tol)
    own = "ps" if dtype == np.float32 else "pd"
    for name, c in fam.items():
        assert c[own] > 0, f"{name} {np.dtype(dtype).name}: no packed {own} arithmetic ({c})"
    if dtype == np.float32:  # elementwise float32 stays float32 (no float64 promotion)
        for name in ("flat", "bcast", "flat_exp", "flat_const", "flat_trig"):
            assert fam[name]["pd"] == 0, f"{name} float32 computes in float64 ({fam[name]})"
    for name in ("flat_sum", "row_sum", "bcast_sum", "col_sum"):  # float64 accumulation
        assert fam[name]["pd"] > 0, f"{name}: the sum is not vectorised ({fam[name]})"


def _spy_renders(monkeypatch):
    """[(plan key, kernel source)] of every CPU or GPU kernel rendered from now on."""
    srcs = []
    render = lazy._render

    def spy(plan):
        srcs.append((plan.key, render(plan)))
        return srcs[-1][1]
    monkeypatch.setattr(lazy, "_render", spy)
    return srcs


def _chain_step(dtype, xv=None):
    """A body whose vmath calls chain (staged), with a bool crossing a stage, a full value, a
    folded sum and the backward (recomputing the chain) in one or two kernels."""
    xv = np.linspace(-3, 3, 3000) if xv is None else xv
    x = jg.tensor(xv.astype(dtype), requires_grad=True)
    y = jg.sin(x * 1.3)
    y = jg.sin(y * 1.1 + 0.5)
    m = y > 0.1
    y = jg.where(m, jg.sin(y * 2.0), jg.cos(y))
    y = jg.tanh(jg.exp(y) - 1.0)
    s = (y * y).sum()
    s.backward()
    return y.detach().numpy().copy(), s.item(), x.grad.numpy().copy()


@pytest.mark.parametrize("parallel", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_staged_chains(fresh_kernels, monkeypatch, dtype, parallel):
    """A long chain of vmath calls is rendered as one loop per stage over a block (its rows
    would otherwise run at the chain's latency, W5): the same values, bit for bit, as the
    unstaged loop (the serial and the parallel chunk form), with vectorised stages."""
    from jitgrad import codegen
    if parallel:  # the chunk form on a small array
        monkeypatch.setattr(lazy, "PAR_MIN", 0)
        monkeypatch.setattr(lazy, "PAR_MIN_WORK", 0)
    srcs = _spy_renders(monkeypatch)
    staged = _chain_step(dtype)
    keys = [k for k, s in srcs
            if len(re.findall(r"for j_blk\w* in range\(m_blk\):", s)) >= 3 and "sb_" in s]
    assert keys, [s for _, s in srcs]
    for k in keys:  # each stage loop vectorised (no scalar-only kernel)
        disp = cpu._kernels[k]
        disp = getattr(disp, "dispatcher", disp)
        (asm,) = disp.inspect_asm().values()
        assert _packed(_kernel_body(asm))["ps" if dtype == np.float32 else "pd"] > 0
    # with large arguments in a few blocks: their (guarded) rerun gives the same values too
    xl = np.linspace(-3, 3, 3000)
    xl[[5, 1200, 2999]] = [1e20, -3e7, np.inf]  # (far beyond either fast path's bound)
    staged_large = _chain_step(dtype, xl)
    monkeypatch.setattr(codegen, "STAGE_MIN_CHAIN", 10 ** 9)
    monkeypatch.setattr(cpu, "_kernels", cpu.KernelCache(0))
    srcs.clear()
    plain = _chain_step(dtype)
    assert not any("sb_" in s for _, s in srcs)
    for a, b in zip(staged, plain):
        np.testing.assert_array_equal(a, b)
    monkeypatch.setattr(codegen, "GUARD_TRIG", False)
    monkeypatch.setattr(cpu, "_kernels", cpu.KernelCache(0))
    for a, b in zip(staged_large, _chain_step(dtype, xl)):
        np.testing.assert_array_equal(a, b)
    xd = np.linspace(-3, 3, 3000)
    y = np.sin(np.sin(xd * 1.3) * 1.1 + 0.5)
    y = np.tanh(np.exp(np.where(y > 0.1, np.sin(y * 2.0), np.cos(y))) - 1.0)
    np.testing.assert_allclose(staged[0], y, rtol=1e-5 if dtype == np.float32 else 1e-12,
                               atol=1e-6 if dtype == np.float32 else 1e-13)


def test_stage_split_modes():
    """Where stage_split cuts: a dependent chain of at least STAGE_MIN_CALLS calls after every
    call (and its last one); a shorter chain, or a wide body of independent calls, not at all
    (staging those measured slower: see the comment at STAGE_MIN_CALLS); a cut whose live value
    has no known dtype moves to the next call."""
    from jitgrad import codegen
    wide = [f"t{j} = vm_exp(x0 * {j}.0)" for j in range(9)] + ["r = t0 + t1 + t8"]
    assert codegen.stage_split(wide, ["r"], {f"t{j}": "float32" for j in range(9)}) is None
    chain = []
    for j in range(7):
        chain += [f"u{j} = {'x0' if j == 0 else f'y{j - 1}'} * 1.01", f"y{j} = vm_sin(u{j})"]
    kc = {v.partition(" = ")[0]: "float32" for v in chain}
    assert codegen.stage_split(chain, ["y6"], kc) is None
    chain += ["u7 = y6 * 1.01", "y7 = vm_sin(u7)", "r = y7 * 2.0"]
    kc.update(u7="float32", y7="float32")
    assert codegen.stage_split(chain, ["r"], kc) == [2 * j + 2 for j in range(8)] + [17]
    del kc["y2"]  # (live across the cut after call 3 only)
    assert codegen.stage_split(chain, ["r"], kc) == [2, 4, 8, 10, 12, 14, 16, 17]


def test_loop_interleave_rule():
    """How many vector iterations a flat kernel's loops interleave: none forced without a
    vmath call, INTERLEAVE up to INTERLEAVE_WIDE_CALLS calls and in a staged body (one call
    per stage loop), INTERLEAVE_WIDE for a wider unstaged body; a call on loop-invariant
    scalars (hoisted before the loop) does not count; an N-d kernel: none forced."""
    from jitgrad import codegen
    loads = [codegen.Load("a0", "x0", "a"), codegen.Load("a1", "x1", "c")]
    res = [("full", "r", None, "float32")]

    def ic(body, dts=None):
        return codegen.loop_interleave(loads, body, res, None, dts)
    assert ic(["r = x0 * 2.0"]) == 0
    assert ic(["s = vm_exp(x1)", "r = x0 * s"]) == 0
    four = [f"t{j} = vm_exp(x0 * {j}.0)" for j in range(4)]
    assert ic(four + ["r = t0 + t3"]) == codegen.INTERLEAVE
    five = four + ["t4 = vm_sin(x0)"]
    assert ic(five + ["r = t0 + t4"]) == codegen.INTERLEAVE_WIDE
    chain = ["y0 = vm_sin(x0)"] + [f"y{j} = vm_sin(y{j - 1} * 1.01)" for j in range(1, 9)]
    dts = {f"y{j}": "float32" for j in range(9)}
    assert ic(chain + ["r = y8"], dts) == codegen.INTERLEAVE
    assert ic(chain + ["r = y8"], None) == codegen.INTERLEAVE_WIDE
    # N-d kernels keep LLVM's choice (their inner loop can be shorter than 4 vectors)
    assert codegen.loop_interleave(loads, four + ["r = t0"], res, 2, dts) == 0


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_vmath_loops_interleave(fresh_kernels, monkeypatch, dtype):
    """A kernel with a vmath call is compiled with its vector loop interleaved INTERLEAVE
    times (backends/cpu._interleaved): several copies of the packed arithmetic, against
    LLVM's own choice; and the LLVM option is reset after each such compile (a kernel built
    afterwards with interleaving off is the same as before)."""
    from jitgrad import codegen
    x = jg.tensor(np.linspace(-3, 3, 1000).astype(dtype))
    counts = []
    for ic in (0, 4, 0):
        monkeypatch.setattr(codegen, "INTERLEAVE", ic)
        monkeypatch.setattr(cpu, "_kernels", cpu.KernelCache(0))
        counts.append(sum(_packed(_asm_of(lambda: jg.sigmoid(x * 2).numpy())).values()))
        y = jg.sigmoid(x * 2).numpy()
        want = 1 / (1 + np.exp(-2 * np.linspace(-3, 3, 1000)))
        np.testing.assert_allclose(y, want, rtol=2e-6 if dtype == "float32" else 1e-14)
    assert counts[1] >= 3 * counts[0], counts
    assert counts[2] == counts[0], counts


_ORDER = """
import os, sys
os.environ["JITGRAD_CACHE"] = "0"
import numba, numpy as np
import jitgrad as jg
from jitgrad import lazy
from jitgrad.vmath import VMATH_FUNCS
lazy.set_fusion(True, 0)
if sys.argv[1] == "kernel_first":   # an interleaved kernel (with the float32 trig helpers)
    x = jg.tensor(np.linspace(-3, 3, 1000).astype(np.float32))
    jg.sin(x * 2).numpy()
vsin = VMATH_FUNCS["sin"]
def short(a, b, o):
    for i in range(o.size):
        o[i] = a[i] * 2.0 + b[i]
def trig(a, o):
    for i in range(o.size):
        o[i] = vsin(a[i])
a = np.ones(64, np.float32)
f, g = numba.njit(short), numba.njit(trig)
f(a, a, a.copy()), g(a, a.copy())
def shape(asm):  # instructions and vector-register operands (names differ between runs)
    ins = [ln.split()[0] for ln in asm.splitlines() if ln.startswith("\t") and
           not ln.startswith("\t.")]
    return f"{len(ins)}/{sum(('mm' in ln) for ln in asm.splitlines())}"
print(shape(f.inspect_asm(f.signatures[0])), shape(g.inspect_asm(g.signatures[0])))
"""


def test_interleave_does_not_leak():
    """An interleaved kernel's compile leaves the rest of the process as it was: plain njit
    code compiled after it (a short loop LLVM interleaves itself; a loop over vmath's float32
    sin, whose large-argument helpers Numba compiles once and shares) gets the same machine
    code as in a process that built no kernel."""
    import subprocess
    import sys
    env = dict(os.environ, NUMBA_CACHE_DIR=os.path.join(os.environ.get("TMPDIR", "/tmp"),
                                                        "jitgrad_test_order"))
    sizes = [subprocess.run([sys.executable, "-c", _ORDER, mode], env=env, capture_output=True,
                            text=True, check=True).stdout.split()
             for mode in ("plain", "kernel_first")]
    assert sizes[0] == sizes[1], sizes


_RENDER_STAGED = """
import hashlib
from jitgrad import codegen
body = [f"a{j} = x0 * {j}.0" for j in range(1, 9)] + ["c0 = vm_sin(a1)"]
body += [f"c{j} = vm_sin(c{j - 1})" for j in range(1, 10)]
body += ["r = c9 + " + " + ".join(f"a{j}" for j in range(2, 9))]
dts = {line.partition(" = ")[0]: "float64" for line in body}
src = codegen.render_fused("k", [codegen.Load("a0", "x0", "a")], body,
                           [("full", "r", None, "float64")], None, var_dtypes=dts)
print(src.count("sb_a"), hashlib.sha256(src.encode()).hexdigest())
"""


def test_staged_source_is_the_same_in_every_process():
    """A staged body whose values crossing a stage were defined in the same stage (a2..a8, all
    read by the last one) renders the same source whatever the string hash seed: the source's
    hash keys the disk cache, so a set-ordered rendering made every new process compile its
    staged kernels again (W5 k=100: 7 s per process)."""
    import subprocess
    import sys
    outs = set()
    for seed in ("1", "2", "3"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        r = subprocess.run([sys.executable, "-c", _RENDER_STAGED], env=env, capture_output=True,
                           text=True, check=True)
        n, digest = r.stdout.split()
        assert int(n) >= 7 * 2, r.stdout  # (each crossing value: its stack array and its reads)
        outs.add(digest)
    assert len(outs) == 1, outs


def _trig_step(x, dtype):
    """sin/cos/tan in one flat body with a full value and a sum, forward and backward."""
    t = jg.tensor(x, requires_grad=True)
    y = jg.sin(t * 1.5) * jg.cos(t) + jg.tan(t * 0.25)
    s = (y * jg.sin(y)).sum()
    s.backward()
    return y.detach().numpy().copy(), s.item(), t.grad.numpy().copy()


@pytest.mark.parametrize("rerun", ["vector", "lane"])
@pytest.mark.parametrize("parallel", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_trig_blocks_rerun_where_large(fresh_kernels, monkeypatch, dtype, parallel, rerun):
    """Flat bodies run sin/cos/tan without their large-argument call and run a block again
    (with it) only where some argument was beyond its bound (codegen._guard_trig): the same
    values, bit for bit, as the unguarded kernels, with large lanes, +-inf and NaN in a few
    blocks among ordinary ones, whether the rerun is vectorised or scalar (``vm_<f>_lane``: no
    masked vector call left in the kernel)."""
    from jitgrad import codegen
    monkeypatch.setattr(codegen, "GUARD_VECTOR_RERUN_MAX", 100 if rerun == "vector" else 0)
    n = 40000 if parallel else 3000
    if parallel:
        monkeypatch.setattr(lazy, "PAR_MIN", 0)
        monkeypatch.setattr(lazy, "PAR_MIN_WORK", 0)
    x = np.random.default_rng(3).uniform(-4, 4, n).astype(dtype)
    big = {np.float32: 2e5, np.float64: 3e8}[dtype]  # beyond the fast bound (1e5 / 1e8)
    for at, v in ((7, big), (8, -big * 1e3), (1500, np.inf), (1501, np.nan), (n - 1, -big)):
        x[at] = v
    srcs = _spy_renders(monkeypatch)
    guarded = _trig_step(x, dtype)
    keys = [k for k, src in srcs if "if g_big:" in src]
    assert keys and all("vm_sin_fast(" in src and ("vm_sin_lane(" in src) == (rerun == "lane")
                        for k, src in srcs if k in keys), srcs
    for k in keys:  # a scalar rerun: no masked vector variant in the kernel
        disp = getattr(cpu._kernels[k], "dispatcher", cpu._kernels[k])
        (asm,) = disp.inspect_asm().values()
        body = _kernel_body(asm)
        masked = re.search(r"jitgrad_vm_\w+_m\d+", body)
        assert (masked is None) == (rerun == "lane"), masked
        assert _packed(body)["ps" if dtype == np.float32 else "pd"] > 0
    monkeypatch.setattr(codegen, "GUARD_TRIG", False)
    monkeypatch.setattr(cpu, "_kernels", cpu.KernelCache(0))
    srcs.clear()
    plain = _trig_step(x, dtype)
    assert srcs and not any("g_big" in src for _, src in srcs)
    for a, b in zip(guarded, plain):
        np.testing.assert_array_equal(a, b)
    ok = np.isfinite(x) & (np.abs(x) < 10)  # and against NumPy where float64 libm is exact
    xd = x.astype(np.float64)
    with np.errstate(invalid="ignore"):  # (sin(inf))
        y = np.sin(xd * 1.5) * np.cos(xd) + np.tan(xd * 0.25)
    np.testing.assert_allclose(guarded[0][ok], y[ok], rtol=1e-4 if dtype == np.float32
                               else 1e-12, atol=1e-5 if dtype == np.float32 else 1e-13)
    assert np.isnan(guarded[0][1500]) and np.isnan(guarded[0][1501])


def test_trig_in_place_is_not_guarded(fresh_kernels, monkeypatch):
    """An in-place update (codegen ``alias``) reads what it writes: its block could not be run
    twice, so its sin stays the checked call, and large lanes are right."""
    x = np.array([0.5, 3e8, -2.0, 1e20, 7.0] * 100)
    t, g = jg.tensor(x.copy()), jg.tensor(x[::-1].copy())
    srcs = _spy_renders(monkeypatch)
    t -= jg.sin(g) * 2.0       # (t - 2 sin(g) written into t: one kernel, in place)
    got = t.numpy()
    assert len(srcs) == 1, srcs
    src = srcs[0][1]
    assert "g_big" not in src and "vm_sin(" in src and "o0 = a" in src, src  # (alias form)
    np.testing.assert_allclose(got, x - np.sin(x[::-1]) * 2.0, rtol=1e-14)
