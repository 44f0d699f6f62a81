"""The hand-written numba.cuda kernels (jitgrad/backends/cuda_kernels.py) against NumPy and the
CPU kernels, on a GPU or under the CUDA simulator (tiny shapes: it runs every thread as a
Python thread), plus a PTX check in a subprocess without the simulator (compile_ptx needs NVVM,
not a GPU)."""
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from numba import cuda  # noqa: E402  (tests/conftest.py picks the simulator when no GPU)

pytestmark = [pytest.mark.cuda,
              pytest.mark.filterwarnings("ignore::RuntimeWarning"),  # simulator: 0/0 in rows
              pytest.mark.filterwarnings("ignore:Grid size:Warning")]  # of all -inf; tiny grids


def _cuda_available() -> bool:
    try:
        return bool(cuda.is_available())
    except Exception:  # noqa: BLE001 - any driver problem means: no CUDA here
        return False


HAVE_CUDA = _cuda_available()
needs_cuda = pytest.mark.skipif(
    not HAVE_CUDA, reason="numba.cuda is not available (no GPU and NUMBA_ENABLE_CUDASIM unset)")

if HAVE_CUDA:
    from jitgrad.backends import cuda_kernels as ck
    SIM = ck.SIM
else:  # the PTX test still runs: it compiles in a subprocess
    ck = None
    SIM = False

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
F32, F64 = np.float32, np.float64


def dev(a):
    return cuda.to_device(np.array(a, order="C"))   # (ascontiguousarray makes 0-d 1-d)


def empty(shape, dtype):
    return cuda.device_array(shape, dtype=dtype)


def host(d):
    return d.copy_to_host()


def view(base, shape, strides, offset=0):
    """A strided device view of the 1-D device array ``base`` (strides and offset in elements),
    e.g. what a transpose / expand / slice of a CUDA tensor hands to the kernels."""
    it = np.dtype(base.dtype).itemsize
    bstr = tuple(s * it for s in strides)
    if SIM:
        from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray
        return FakeCUDAArray(np.lib.stride_tricks.as_strided(base._ary[offset:], shape, bstr))
    from numba.cuda.cudadrv.devicearray import DeviceNDArray
    data = base.gpu_data.view(offset * it) if offset else base.gpu_data
    return DeviceNDArray(shape, bstr, base.dtype, gpu_data=data)


def host_view(a, shape, strides, offset=0):
    it = a.dtype.itemsize
    return np.lib.stride_tricks.as_strided(a[offset:], shape, tuple(s * it for s in strides))


# ---------------------------------------------------------------------------------------------
# launch plans (pure Python)

@needs_cuda
def test_grid_and_reduce_plan():
    assert ck.grid_for(0, 256, 4096) == (1, 256)
    assert ck.grid_for(1000, 256, 4096) == (4, 256)
    assert ck.grid_for(10**9, 256, 4096) == (4096, 256)
    T = 256
    for A, R, B in [(1, 10**8, 1), (1, 5, 1), (10**5, 3, 1), (4, 1000, 64), (7, 100, 3),
                    (1, 1, 1), (10**6, 1000, 1), (1, 10**6, 1000), (3, 0, 5)]:
        bx, ry, n_tiles, C = ck.reduce_plan(A, R, B, T)
        assert bx * ry == T and ry & (ry - 1) == 0, (A, R, B)
        assert n_tiles == -(-A * B // bx) and 1 <= C <= ck.MAX_CHUNKS
    tb = ck.TARGET_BLOCKS
    # a full reduction: one output per block, 256 lanes, split into chunks (second pass)
    assert ck.reduce_plan(1, 10**8, 1, T) == (1, 256, 1, min(tb, ck.MAX_CHUNKS))
    assert ck.reduce_plan(10**5, 3, 1, T)[:2] == (256, 1)      # many short rows: thread each
    assert ck.reduce_plan(4, 1000, 64, T)[:2] == (32, 8)       # wide rows: 32 outputs side by side
    assert ck.reduce_plan(2, 3, 7, T, split=False)[3] == 1


# ---------------------------------------------------------------------------------------------
# sum

SUM_SHAPES = [(2, 3, 4), (3, 1, 5), (1, 1000, 1), (2, 150, 3), (40, 7, 1), (1, 40, 40),
              (5, 0, 3), (0, 4, 2), (3, 4, 0)]


@needs_cuda
@pytest.mark.parametrize("dt", [F32, F64])
def test_sum_arb_float(rng, dt):
    for shp in SUM_SHAPES:
        x = (rng.standard_normal(shp) * 3 + 1).astype(dt)
        out = empty((shp[0], shp[2]), dt)
        ck.sum_arb(dev(x), out)
        ref = x.astype(F64).sum(axis=1).astype(dt)
        tol = dict(rtol=2e-7, atol=1e-6) if dt == F32 else dict(rtol=1e-13, atol=1e-12)
        np.testing.assert_allclose(host(out), ref, **tol, err_msg=str(shp))


@needs_cuda
def test_sum_arb_float32_accumulates_in_float64(rng, monkeypatch):
    # 2000 float32 values with a large common offset: a float32 accumulator is off by ~1e-4
    # relative; a float64 one matches the exact sum to ~1e-15
    x = (rng.standard_normal((2, 1000, 1)) + 1000).astype(F32)
    out = empty((2, 1), F64)
    scratch = []   # split reductions take their partials from the scratch hook when set
    monkeypatch.setattr(ck, "scratch_alloc", lambda shape, dtype, stream: (
        scratch.append((shape, dtype)), cuda.device_array(shape, dtype=dtype))[1])
    ck.sum_arb(dev(x), out)
    C = ck.reduce_plan(2, 1000, 1)[3]
    assert scratch == ([((2, C, 1), np.dtype(F64))] if C > 1 else [])
    exact = [[math.fsum(x[a, :, 0].astype(F64))] for a in range(2)]
    np.testing.assert_allclose(host(out), exact, rtol=1e-14)


@needs_cuda
def test_sum_arb_int_dtypes(rng):
    big = rng.integers(2**49, 2**50, (1, 1500, 1))   # sum ~ 2**60: exact only in int64
    out = empty((1, 1), np.int64)
    ck.sum_arb(dev(big), out)
    assert host(out)[0, 0] == int(big.sum())
    for dt, odt in [(np.int32, np.int64), (np.bool_, np.int64), (np.int64, F32)]:
        x = rng.integers(-50, 50, (3, 41, 2)).astype(dt)
        out = empty((3, 2), odt)
        ck.sum_arb(dev(x), out)
        np.testing.assert_array_equal(host(out), x.astype(np.int64).sum(axis=1).astype(odt))


@needs_cuda
def test_sum_arb_strided_input_is_deterministic(rng):
    base = rng.standard_normal(4 * 600).astype(F32)
    # x3[a, r, b] = base[a + 4 * r] viewed as (4, 600, 1): a non-contiguous (A, R, B)
    x3 = view(dev(base), (4, 600, 1), (1, 4, 1))
    out1, out2 = empty((4, 1), F32), empty((4, 1), F32)
    ck.sum_arb(x3, out1)
    ck.sum_arb(x3, out2)
    r1, r2 = host(out1), host(out2)
    assert r1.tobytes() == r2.tobytes()
    ref = base.astype(F64).reshape(600, 4).sum(axis=0).reshape(4, 1)
    np.testing.assert_allclose(r1, ref, rtol=2e-7, atol=1e-6)


@needs_cuda
def test_sum_arb_full_width_blocks(rng, monkeypatch):
    """The GPU's 256-thread blocks (a 256-lane tree, chunked, then a second pass)."""
    monkeypatch.setattr(ck, "THREADS", 256)
    monkeypatch.setattr(ck, "SPLIT_PER_LANE", 2)    # split this small R too
    x = rng.standard_normal((1, 1100, 1)).astype(F64)
    assert ck.reduce_plan(1, 1100, 1)[3] > 1
    out = empty((1, 1), F64)
    ck.sum_arb(dev(x), out)
    np.testing.assert_allclose(host(out)[0, 0], math.fsum(x.ravel()), rtol=1e-14)


# ---------------------------------------------------------------------------------------------
# max / min with indices

def ref_extreme(x, sign):
    A, R, B = x.shape
    out = np.empty((A, B), x.dtype)
    idx = np.empty((A, B), np.int64)
    for a in range(A):
        for b in range(B):
            col = x[a, :, b]
            nan = np.isnan(col) if col.dtype.kind == "f" else np.zeros(R, bool)
            i = int(np.argmax(nan)) if nan.any() else int(
                np.argmax(col) if sign > 0 else np.argmin(col))
            out[a, b], idx[a, b] = col[i], i
    return out, idx


def _extreme_input(rng, shp, dt):
    x = rng.integers(0, 4, shp).astype(dt)   # many ties: the first occurrence must win
    A, R, B = shp
    if A * B == 0:
        return x
    if R >= 100:   # the extreme late in one chunk and early in another: lowest index wins
        x[0, [R - 1, R // 2 + 3, 45], 0] = 9
        x[0, [R - 2, 46], -1] = -9
    if dt != np.int64 and R > 1:
        x[-1, [R - 1, min(R - 1, 37)], 0] = np.nan      # first NaN wins, over anything
        x[0, 0, -1] = np.inf
        x[-1, R // 2, -1] = -np.inf
        x[0, R - 1, -1] = -0.0
    return x


@needs_cuda
@pytest.mark.parametrize("dt", [F32, F64, np.int64])
def test_extreme_arb(rng, dt):
    shapes = [(2, 3, 4), (2, 600, 1), (4, 1, 3), (0, 3, 2)]
    if dt == F32:
        shapes += [(1, 120, 40)]
    for shp in shapes:
        x = _extreme_input(rng, shp, dt)
        for sign in ((1, -1) if shp in ((2, 3, 4), (2, 600, 1)) else (1,)):
            out, idx = empty((shp[0], shp[2]), dt), empty((shp[0], shp[2]), np.int64)
            ck.extreme_arb(dev(x), out, idx, sign)
            rv, ri = ref_extreme(x, sign)
            np.testing.assert_array_equal(host(out), rv, err_msg=f"{shp} sign={sign}")
            np.testing.assert_array_equal(host(idx), ri, err_msg=f"{shp} sign={sign}")


@needs_cuda
def test_extreme_arb_values_only_and_empty_axis(rng):
    x = _extreme_input(rng, (3, 50, 2), F64)
    out = empty((3, 2), F64)
    ck.extreme_arb(dev(x), out, None, -1)
    np.testing.assert_array_equal(host(out), ref_extreme(x, -1)[0])
    xb = rng.integers(0, 2, (2, 5, 3)).astype(np.bool_)     # bool max / min: first True / False
    for sign in (1, -1):
        out, idx = empty((2, 3), np.bool_), empty((2, 3), np.int64)
        ck.extreme_arb(dev(xb), out, idx, sign)
        rv, ri = ref_extreme(xb, sign)
        np.testing.assert_array_equal(host(out), rv)
        np.testing.assert_array_equal(host(idx), ri)
    with pytest.raises(ValueError, match="empty axis"):
        ck.extreme_arb(dev(np.zeros((2, 0, 3), F32)), empty((2, 3), F32), None, 1)
    with pytest.raises(ValueError, match="dtype"):
        ck.extreme_arb(dev(x), empty((3, 2), F32), None, 1)


# ---------------------------------------------------------------------------------------------
# softmax / log_softmax / logsumexp and the softmax VJP, against the CPU kernels

def _softmax_input(rng, shp, dt):
    x = (rng.standard_normal(shp) * 4).astype(dt)
    A, R, B = shp
    if R >= 3 and A * B >= 4:
        x[0, :, 0] = -np.inf                       # all -inf row
        x[0, 1, -1] = np.nan                       # NaN row
        x[-1, :2, 0] = -np.inf                     # some -inf entries
        x[-1, R - 1, -1] = np.inf                  # +inf entry
    return x


SOFTMAX_SHAPES = [(2, 3, 4), (1, 150, 1), (2, 20, 9), (3, 1, 5), (0, 3, 2), (2, 0, 3)]


@needs_cuda
@pytest.mark.parametrize("dt", [F32, F64])
def test_softmax_logsumexp(rng, dt):
    from jitgrad.backends import cpu
    tol = dict(rtol=1e-6, atol=1e-6) if dt == F32 else dict(rtol=1e-13, atol=1e-14)
    for shp in SOFTMAX_SHAPES:
        x = _softmax_input(rng, shp, dt)
        xd = dev(x)
        for log in (False, True):
            out = empty(shp, dt)
            ck.softmax_arb(xd, out, log)
            ref = np.empty(shp, dt)
            cpu.softmax_arb(x, ref, log)
            np.testing.assert_allclose(host(out), ref, **tol, err_msg=f"{shp} log={log}")
        out = empty((shp[0], shp[2]), dt)
        ck.logsumexp_arb(xd, out)
        ref = np.empty((shp[0], shp[2]), dt)
        cpu.logsumexp_arb(x, ref)
        np.testing.assert_allclose(host(out), ref, **tol, err_msg=f"{shp} logsumexp")
    if dt == F64:   # the special rows really are NaN / -inf like the CPU's
        x = np.array([[[-np.inf], [-np.inf]], [[np.nan], [1.0]], [[np.inf], [1.0]]])
        out = empty((3, 1), F64)
        ck.logsumexp_arb(dev(x), out)
        np.testing.assert_array_equal(host(out), [[-np.inf], [np.nan], [np.inf]])


@needs_cuda
@pytest.mark.parametrize("dt", [F32, F64])
def test_softmax_vjp(rng, dt):
    from jitgrad.backends import cpu
    tol = dict(rtol=1e-5, atol=2e-6) if dt == F32 else dict(rtol=1e-12, atol=1e-13)
    for shp in [(2, 3, 4), (1, 150, 1), (2, 20, 9), (3, 1, 5), (0, 2, 2)]:
        x = rng.standard_normal(shp).astype(dt)
        g = rng.standard_normal(shp).astype(dt)
        for log in (False, True):
            y = np.empty(shp, dt)
            cpu.softmax_arb(x, y, log)
            res = empty(shp, dt)
            ck.softmax_vjp_arb(dev(y), dev(g), res, log)
            ref = np.empty(shp, dt)
            cpu.softmax_vjp_arb(y, g, ref, log)
            np.testing.assert_allclose(host(res), ref, **tol, err_msg=f"{shp} log={log}")


# ---------------------------------------------------------------------------------------------
# matmul

MATMUL_SHAPES = [(1, 1, 1, 1), (2, 5, 7, 3), (1, 17, 9, 20), (1, 16, 16, 8), (2, 3, 4, 0),
                 (2, 0, 3, 4), (0, 2, 2, 2)]   # (Bt, M, N, K)


def _mm_check(a, b, got):
    ref = np.matmul(a.astype(F64), b.astype(F64))
    if a.dtype == F32:
        scale = np.matmul(np.abs(a).astype(F64), np.abs(b).astype(F64))
        assert np.all(np.abs(got - ref) <= 1e-6 * scale + 1e-7), np.abs(got - ref).max()
    else:
        np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)


@needs_cuda
@pytest.mark.parametrize("dt", [F32, F64])
def test_matmul(rng, dt):
    for Bt, M, N, K in MATMUL_SHAPES:
        a = rng.standard_normal((Bt, M, K)).astype(dt)
        b = rng.standard_normal((Bt, K, N)).astype(dt)
        out = dev(np.full((Bt, M, N), np.nan, dt))   # every element must be written (K=0: 0)
        ck.matmul(dev(a), dev(b), out)
        _mm_check(a, b, host(out))


@needs_cuda
def test_matmul_strided_operand_and_gpu_tile(rng, monkeypatch):
    # a non-contiguous a (every other column of a wider array), the simulator's tile
    wide = rng.standard_normal((1, 19, 26)).astype(F32)
    b = rng.standard_normal((1, 13, 11)).astype(F32)
    a_view = view(dev(wide.ravel()), (1, 19, 13), (19 * 26, 26, 2))
    out = empty((1, 19, 11), F32)
    ck.matmul(a_view, dev(b), out)
    _mm_check(wide[:, :, ::2], b, host(out))
    # the GPU's 64x64 tile (16x16 threads, 4x4 register blocks, k-tile 16); edges in M, N, K
    monkeypatch.setattr(ck, "MATMUL_TILE", (16, 4, 16))
    a = rng.standard_normal((1, 66, 17)).astype(F32)
    b = rng.standard_normal((1, 17, 5)).astype(F32)
    out = empty((1, 66, 5), F32)
    ck.matmul(dev(a), dev(b), out)
    _mm_check(a, b, host(out))


@needs_cuda
def test_matmul_bad_input():
    a, b = dev(np.zeros((1, 2, 3), F32)), dev(np.zeros((1, 4, 5), F32))
    with pytest.raises(ValueError, match=r"\(1, 2, 3\) and \(1, 4, 5\)"):
        ck.matmul(a, b, empty((1, 2, 5), F32))
    with pytest.raises(ValueError, match="float32 and float64"):
        ck.matmul(a, dev(np.zeros((1, 3, 5), F64)), empty((1, 2, 5), F32))
    with pytest.raises(ValueError, match="output has shape"):
        ck.matmul(a, dev(np.zeros((1, 3, 5), F32)), empty((1, 5, 2), F32))


# ---------------------------------------------------------------------------------------------
# scatter-add / gather

@needs_cuda
@pytest.mark.parametrize("dt", [F32, F64, np.int32, np.int64])
def test_scatter_add_flat(rng, dt):
    n, m = 37, 600
    out0 = (rng.standard_normal(n) * 10).astype(dt)
    idx = rng.integers(0, n, m)                  # many duplicates: atomics
    src = (rng.standard_normal(m) * 10).astype(dt)
    out = dev(out0)
    ck.scatter_add_flat(out, dev(idx), dev(src))
    ref = out0.copy()
    np.add.at(ref, idx, src)
    if dt in (F32, F64):
        np.testing.assert_allclose(host(out), ref, rtol=1e-5 if dt == F32 else 1e-12,
                                   atol=1e-4 if dt == F32 else 1e-11)
    else:
        np.testing.assert_array_equal(host(out), ref)


@needs_cuda
def test_gather_flat_and_bad_input(rng):
    src = rng.standard_normal(50)
    idx = rng.integers(0, 50, 300).astype(np.int32)
    for odt in (F64, F32):
        out = empty(300, odt)
        ck.gather_flat(dev(src), dev(idx), out)
        np.testing.assert_array_equal(host(out), src[idx].astype(odt))
    out = empty(0, F64)
    ck.gather_flat(dev(src), dev(np.zeros(0, np.int64)), out)
    with pytest.raises(ValueError, match="src dtype float32 != out float64"):
        ck.scatter_add_flat(dev(src), dev(idx), dev(src[:300 - 250].astype(F32)))
    with pytest.raises(ValueError, match="idx must be int32/int64"):
        ck.gather_flat(dev(src), dev(idx.astype(F32)), empty(300, F64))


# ---------------------------------------------------------------------------------------------
# strided copy and fill

COPY_CASES = [  # (shape, strides, offset), in elements
    ((), (), 0),                                 # 0-d
    ((10,), (3,), 2),                            # a step slice
    ((4, 3), (1, 4), 0),                         # a transpose
    ((4, 3), (0, 1), 0),                         # expand (broadcast row)
    ((4, 2, 3), (1, 12, 4), 0),                  # a permute
    ((3, 1, 4), (20, 7, 2), 5),                  # a size-1 dim with an odd stride, offset
    ((2, 3, 1, 2, 2, 1, 3, 2), (1, 8, 0, 4, 2, 0, 0, 12), 0),   # 8-d, two expands
    ((2, 0, 3), (3, 1, 1), 0),                   # empty
]


@needs_cuda
def test_strided_copy_views(rng):
    for shp, strides, off in COPY_CASES:
        size = off + 1 + sum((n - 1) * st for n, st in zip(shp, strides) if n)
        base = rng.standard_normal(size).astype(F32)
        src = view(dev(base), shp, strides, off)
        out = dev(np.full(shp, np.nan, F32))
        ck.strided_copy(src, out)
        np.testing.assert_array_equal(host(out), host_view(base, shp, strides, off),
                                      err_msg=str(shp))


@needs_cuda
def test_strided_copy_casts(rng):
    x = rng.standard_normal((3, 4)) * 5
    x[0, 0] = 0.0
    cases = [(x, F32), (x.astype(F32), F64), (np.round(x).astype(np.int64), F64),
             (np.round(x).astype(F32), np.int64), (x.astype(F32), np.bool_),
             (x > 0, F32), (x.astype(F64), np.int32)]
    for src, odt in cases:
        out = empty((4, 3), odt)
        ck.strided_copy(view(dev(src.ravel()), (4, 3), (1, 4)), out)   # transposed + cast
        np.testing.assert_array_equal(host(out), src.T.astype(odt), err_msg=f"{src.dtype}->{odt}")
        out = empty((3, 4), odt)
        ck.strided_copy(dev(src), out)                                  # contiguous + cast
        np.testing.assert_array_equal(host(out), src.astype(odt))
    with pytest.raises(ValueError, match="output has shape"):
        ck.strided_copy(dev(x), empty((4, 3), F64))
    with pytest.raises(ValueError, match="C-contiguous"):
        ck.strided_copy(dev(x[:2]), view(dev(np.zeros(12)), (2, 4), (1, 2)))


@needs_cuda
def test_fill():
    for shp, dt, value, want in [((5, 7), F32, np.nan, np.nan), ((40,), np.int64, 3.7, 3),
                                 ((), F64, -2.5, -2.5), ((3,), np.bool_, 2, True),
                                 ((2, 0), F32, 1.0, 1.0), ((9,), np.int32, -4, -4)]:
        out = empty(shp, dt)
        ck.fill(out, value)
        np.testing.assert_array_equal(host(out), np.full(shp, want, dt))


# ---------------------------------------------------------------------------------------------
# PTX: every family compiles for the real target (no simulator, no GPU needed)

_PTX_SCRIPT = r"""
import json, sys
import jitgrad  # must not import numba.cuda
cuda_imported = "numba.cuda" in sys.modules
import numba
from jitgrad.backends.cuda import cu
cuda = cu()  # numba.cuda as jitgrad imports it (with its compatibility shims)
def probe(x):
    x[0] = 1
try:
    cuda.compile_ptx(probe, (numba.float32[::1],), cc=(9, 0))
except Exception as e:  # no NVVM / toolkit
    print("NO_PTX " + repr(e)[:300])
    sys.exit(3)
from jitgrad.backends import cuda_kernels as ck
ptx = ck.ptx_check(cc=(9, 0))
def leak(x):          # negative control: a Python float literal in a float32 kernel
    x[0] = x[0] * 0.1
control = ck.f64_ops(cuda.compile_ptx(leak, (numba.float32[::1],), cc=(9, 0))[0])
print("RESULT " + json.dumps({
    "cuda_imported_by_jitgrad": cuda_imported,
    "entries": {k: (".version" in v and ".entry" in v) for k, v in ptx.items()},
    "f64": ck.ptx_f64_report(ptx=ptx), "control": control}))
"""

_ptx_result: dict = {}


def _start_ptx(session_items):
    if not any("ptx" in it.name for it in session_items):
        return None
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="0",
               PYTHONPATH=os.pathsep.join([REPO, os.environ.get("PYTHONPATH", "")]))
    return subprocess.Popen([sys.executable, "-c", _PTX_SCRIPT], env=env, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="module", autouse=True)
def _ptx_proc(request):
    """Compile the PTX (~10 s) in a subprocess while the simulator tests run."""
    proc = _start_ptx(request.session.items)
    yield proc
    if proc is not None and proc.poll() is None:
        proc.kill()
        proc.communicate()


@pytest.fixture
def ptx_result(_ptx_proc):
    if not _ptx_result:
        if _ptx_proc is None:
            pytest.skip("PTX subprocess not started")
        out, err = _ptx_proc.communicate(timeout=600)
        if _ptx_proc.returncode == 3 and "NO_PTX" in out:
            _ptx_result["skip"] = out.strip()
        else:
            assert _ptx_proc.returncode == 0, f"PTX subprocess failed:\n{out}\n{err[-4000:]}"
            line = [ln for ln in out.splitlines() if ln.startswith("RESULT ")][-1]
            _ptx_result.update(json.loads(line[len("RESULT "):]))
    if "skip" in _ptx_result:
        pytest.skip(f"numba.cuda.compile_ptx is unavailable here: {_ptx_result['skip']}")
    return _ptx_result


def test_ptx_every_family_compiles(ptx_result):
    entries = ptx_result["entries"]
    for fam in ("sum_arb", "extreme_arb", "softmax_arb[softmax", "softmax_arb[log_softmax",
                "logsumexp_arb", "softmax_vjp_arb", "matmul", "scatter_add_flat", "gather_flat",
                "strided_copy[flat", "strided_copy[8d", "fill"):
        for dt in ("float32", "float64"):
            assert any(k.startswith(fam) and dt in k for k in entries), (fam, dt)
    bad = [k for k, ok in entries.items() if not ok]
    assert not bad, f"no .version/.entry in the PTX of {bad}"


def test_ptx_float32_kernels_have_no_stray_f64(ptx_result):
    assert ptx_result["control"], "the f64 detector misses a float literal (negative control)"
    stray = {k: v for k, v in ptx_result["f64"].items() if v}
    assert not stray, f"float32 kernels with unexpected f64 instructions: {stray}"


def test_ptx_import_jitgrad_does_not_import_numba_cuda(ptx_result):
    assert not ptx_result["cuda_imported_by_jitgrad"]
