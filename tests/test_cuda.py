"""The CUDA backend against the CPU backend, driven by the op-registry test table
(jitgrad.testing.opinfo): every row that runs on the GPU gives the CPU's values and gradients;
every row that does not yet raises a clear NotImplementedError.

Without a GPU these run on Numba's simulator (tests/conftest.py sets NUMBA_ENABLE_CUDASIM=1),
so tensors stay tiny; on a GPU machine ``pytest -m cuda`` runs the same tests on the device.
Generated kernels are also compiled to real PTX (test_generated_kernels_compile_to_ptx)."""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import jitgrad
from jitgrad import ops
from jitgrad.testing.opinfo import ALL_INFOS

pytestmark = pytest.mark.cuda
if not jitgrad.cuda.is_available():
    pytest.skip("numba.cuda is not available (no GPU, and NUMBA_ENABLE_CUDASIM is not set)",
                allow_module_level=True)

# Structural rows with a GPU forward (the rest raise NotImplementedError on CUDA tensors).
CUDA_STRUCTURAL = {"sum", "mean", "reshape", "permute", "expand", "matmul", "amax", "max_dim",
                   "softmax", "log_softmax", "logsumexp", "getitem", "index_backward", "cat",
                   "stack", "setitem", "var", "prod", "prod_others", "nll_loss"}
# OpInfo rows (by name) of a supported primitive that use a feature not on the GPU yet.
NOT_ON_GPU_YET: set = set()


def _on_gpu(info):
    return (info.row in ops.ELEMENTWISE or info.row in CUDA_STRUCTURAL) and \
        info.name not in NOT_ON_GPU_YET


def _inputs(info, arrays, dtype, cuda, requires_grad):
    ts = []
    for a, kind, d in zip(arrays, info.kinds, info.diff):
        t = jitgrad.tensor(a if kind == "bool" else a.astype(dtype),
                           device="cuda" if cuda else "cpu")
        ts.append(t.requires_grad_(True) if requires_grad and d else t)
    return ts


def _run(info, arrays, dtype, cuda):
    """Forward, then the gradient of sum(out * w) for a fixed random w."""
    xs = _inputs(info, arrays, dtype, cuda, requires_grad=True)
    out = info.op(*xs)
    outs = out if isinstance(out, tuple) else (out,)
    vals = [o.detach().cpu().numpy() for o in outs]
    grads = []
    first = outs[0]
    if first.requires_grad and first.dtype.is_floating_point:
        w = np.random.default_rng(7).uniform(0.5, 1.5, tuple(first.shape)).astype(dtype)
        (first * jitgrad.tensor(w, device=first.device)).sum().backward()
        grads = [None if x.grad is None else x.grad.cpu().numpy()
                 for x in xs if x.requires_grad]
        for x in xs:
            if x.grad is not None:
                assert x.grad.device == x.device, "gradients stay on the input's device"
    return outs, vals, grads


GPU_ROWS = [info for info in ALL_INFOS if _on_gpu(info)]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("info", GPU_ROWS, ids=lambda i: i.name)
def test_row_matches_cpu(info, dtype):
    if dtype == "float32" and info.row not in ops.ELEMENTWISE and info.row != "matmul":
        pytest.skip("float32 is covered for elementwise rows and matmul (simulator time)")
    rng = np.random.default_rng(20240607)
    arrays = info.arrays(info.shapes[0], rng)
    outs, got, got_g = _run(info, arrays, dtype, cuda=True)
    _, want, want_g = _run(info, arrays, dtype, cuda=False)
    assert all(o.device.type == "cuda" for o in outs)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == "float32" else dict(rtol=1e-11, atol=1e-12)
    for g, w in zip(got, want):
        assert g.dtype == w.dtype and g.shape == w.shape
        np.testing.assert_allclose(g, w, equal_nan=True, **tol)
    assert len(got_g) == len(want_g)
    for g, w in zip(got_g, want_g):
        assert (g is None) == (w is None)
        if g is not None:
            np.testing.assert_allclose(g, w, equal_nan=True, **tol)


def test_everyday_ops_on_cuda_tensors():
    """Ops outside the row table: the results stay on the GPU and match the CPU."""
    xv = np.array([[1.0, -2.0, 3.0], [0.5, np.inf, -1.0]])
    cases = {
        "argmax": lambda x: jitgrad.argmax(x, dim=1), "argmin": lambda x: jitgrad.argmin(x),
        "nonzero": lambda x: jitgrad.nonzero(x > 0), "isfinite": lambda x: jitgrad.isfinite(x),
        "isnan": lambda x: jitgrad.isnan(x), "where1": lambda x: jitgrad.where(x > 0)[1],
        "masked": lambda x: x[x > 0], "chunk": lambda x: jitgrad.chunk(x, 3, 1)[2],
        "unbind": lambda x: jitgrad.unbind(x)[1], "new_zeros": lambda x: x.new_zeros(2),
        "relu_mean": lambda x: jitgrad.relu(x).mean(1, keepdim=True),
    }
    for name, f in cases.items():
        got = f(jitgrad.tensor(xv, device="cuda"))
        want = f(jitgrad.tensor(xv))
        assert got.is_cuda, name
        np.testing.assert_array_equal(got.cpu().numpy(), want.numpy(), err_msg=name)
    a = jitgrad.tensor(xv, device="cuda")
    assert jitgrad.equal(a, a) and not jitgrad.allclose(a, a + 1)
    assert [r.sum().item() for r in a] == [2.0, np.inf]


# libdevice's sinf/cosf/tanf use float64 in their large-argument reduction (not our constants)
LIBDEVICE_F64 = ("sin", "cos", "tan")


def test_generated_kernels_compile_to_ptx():
    """Every generated kernel family compiles to real PTX for sm_90 (a process without the
    simulator), and float32 kernels have no float64 arithmetic outside the sum accumulators."""
    script = textwrap.dedent(f"""
        import json
        from jitgrad.backends import cuda, cuda_kernels
        res = {{}}
        for dt in ("float32", "float64"):
            for name, ptx in cuda.ptx_check_generated(dtype=dt).items():
                res[dt + ":" + name] = ".entry" in ptx
        f32 = cuda.ptx_check_generated(dtype="float32", skip_rows={LIBDEVICE_F64!r})
        res["f64_in_f32"] = {{k: cuda_kernels.f64_ops(v) for k, v in f32.items()}}
        print("RESULT" + json.dumps(res))
    """)
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="0")
    env["PYTHONPATH"] = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + \
        os.pathsep + env.get("PYTHONPATH", "")
    p = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                       timeout=600)
    if p.returncode and ("NVVM" in p.stderr or "libnvvm" in p.stderr.lower()):
        pytest.skip(f"compile_ptx is unavailable here (no CUDA toolkit/NVVM): "
                    f"{p.stderr.strip().splitlines()[-1]}")
    assert p.returncode == 0, p.stderr[-3000:]
    import json
    res = json.loads(p.stdout.split("RESULT", 1)[1])
    f64 = res.pop("f64_in_f32")
    assert res and all(res.values()), res
    assert not f64["rows_fwd"] and not f64["rows_vjp"], f64
    allowed = {"add.f64", "cvt.f64.f32", "cvt.rn.f32.f64", "ld.global.f64", "st.global.f64",
               "ld.param.f64", "ld.shared.f64", "st.shared.f64", "mov.f64", "mov.b64",
               "ld.f64", "st.f64"}  # generic-address loads/stores (numba-cuda's PTX)
    for fam in ("nd_broadcast_partial_sum", "flat_full_sum"):  # float64 accumulators only
        assert set(f64[fam]) <= allowed, (fam, f64[fam])


def _mlp_step(dev, params, x, y, lr=0.1):
    """A tiny training step written as a PyTorch user would: matmul + bias + tanh, MSE loss,
    backward, an SGD update in place under no_grad, then .grad.zero_()."""
    w1, b1, w2 = params
    h = (x @ w1 + b1).tanh()
    loss = ((h @ w2 - y) ** 2).mean()
    loss.backward()
    with jitgrad.no_grad():
        for p in params:
            p -= lr * p.grad
            p.grad.zero_()
    return loss.item()


def test_training_steps_match_cpu():
    rng = np.random.default_rng(3)
    init = [rng.standard_normal(s) * 0.5 for s in ((4, 6), (6,), (6, 2))]
    xs, ys = rng.standard_normal((5, 4)), rng.standard_normal((5, 2))
    runs = {}
    for dev in ("cpu", "cuda"):
        params = [jitgrad.tensor(a, dtype=jitgrad.float64, device=dev, requires_grad=True)
                  for a in init]
        x = jitgrad.tensor(xs, device=dev)
        y = jitgrad.tensor(ys, device=dev)
        losses = [_mlp_step(dev, params, x, y) for _ in range(3)]
        assert all(p.device.type == dev and p.grad.device.type == dev for p in params)
        runs[dev] = (losses, [p.detach().cpu().numpy() for p in params])
    np.testing.assert_allclose(runs["cuda"][0], runs["cpu"][0], rtol=1e-12)
    assert runs["cpu"][0][2] < runs["cpu"][0][0]  # it trains
    for a, b in zip(runs["cuda"][1], runs["cpu"][1]):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_caching_allocator_reuses_blocks():
    """After warm-up, further identical steps get every device block from the pool. (Two
    warm-up steps: the first step's outputs are still alive while the second allocates, so
    the pool only reaches its steady size after the second; run alone, one was not enough.)"""
    rng = np.random.default_rng(4)
    params = [jitgrad.tensor(rng.standard_normal(s), device="cuda", requires_grad=True)
              for s in ((4, 6), (6,), (6, 2))]
    x = jitgrad.tensor(rng.standard_normal((5, 4)), device="cuda")
    y = jitgrad.tensor(rng.standard_normal((5, 2)), device="cuda")
    _mlp_step("cuda", params, x, y)
    _mlp_step("cuda", params, x, y)
    before = jitgrad.cuda.allocator_stats()
    _mlp_step("cuda", params, x, y)
    after = jitgrad.cuda.allocator_stats()
    assert after["allocs"] == before["allocs"], (before, after)
    assert after["reuses"] > before["reuses"]
    assert jitgrad.cuda.memory_reserved() >= jitgrad.cuda.memory_allocated() > 0


def test_tensor_collected_in_a_cycle_gives_back_a_live_block():
    """A tensor that dies inside a reference cycle returns a usable block to the pool. On a GPU
    the cycle collector used to run numba's finalizer of the block (freeing its memory) before
    the tensor's __del__ pooled it, and the next allocation of that size got freed memory."""
    import gc

    class Holder:
        pass
    for k in range(3):
        h = Holder()
        h.t, h.me = jitgrad.tensor(np.arange(1000.0), device="cuda"), h
        del h
        gc.collect()
        t = jitgrad.tensor(np.arange(1000.0) * k, device="cuda")
        np.testing.assert_array_equal((t + 1).cpu().numpy(), np.arange(1000.0) * k + 1)


def test_transfers_and_gradients_across_devices():
    a = jitgrad.tensor([[1.0, -2.0, 3.0]], requires_grad=True)  # a CPU leaf
    g = a.cuda()
    assert g.is_cuda and g.grad_fn.name() == "ToCopyBackward0" and str(g.device) == "cuda:0"
    out = (g.exp() * 2).sum()
    assert out.device == jitgrad.device("cuda:0")
    out.backward()
    assert a.grad.device.type == "cpu"  # the gradient comes back to the leaf's device
    np.testing.assert_allclose(a.grad.numpy(), 2 * np.exp([[1.0, -2.0, 3.0]]), rtol=1e-6)
    t = jitgrad.zeros(2, 3, device="cuda", dtype=jitgrad.float64)
    assert t.to("cpu").device.type == "cpu" and t.to("cuda") is t
    assert t.to(jitgrad.float32).dtype == jitgrad.float32 and t.to(jitgrad.float32).is_cuda
    assert jitgrad.ones_like(t).is_cuda and jitgrad.randn(3, device="cuda").is_cuda
    assert "device='cuda:0'" in repr(jitgrad.tensor([1.0], device="cuda"))
    assert jitgrad.tensor([1.5], device="cuda").item() == 1.5
    assert jitgrad.tensor([[1.0, 2.0]], device="cuda").tolist() == [[1.0, 2.0]]


def test_fused_chain_runs_as_one_kernel_each_way():
    x = jitgrad.tensor(np.linspace(-1, 1, 40).reshape(5, 8), device="cuda",
                       requires_grad=True)
    c0 = jitgrad.explain_kernels().get("kernel_launches", 0)
    loss = ((x * 1.5 + 0.25).tanh().exp() * x).sum()
    loss.backward()
    got = x.grad.cpu().numpy()
    launches = jitgrad.explain_kernels()["kernel_launches"] - c0
    xv = np.linspace(-1, 1, 40).reshape(5, 8)
    t = np.tanh(xv * 1.5 + 0.25)
    want = np.exp(t) * (1 + xv * 1.5 * (1 - t * t))
    np.testing.assert_allclose(got, want, rtol=1e-12)
    np.testing.assert_allclose(loss.item(), (np.exp(t) * xv).sum(), rtol=1e-12)
    # forward + backward: fused kernels plus the sums' second passes, not one kernel per op
    assert launches <= 6, launches


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_full_sums_of_one_group_finish_in_one_launch(dtype):
    """W1's shape of step on the GPU: the loss and both 0-d gradients are full sums of one fused
    kernel; their per-block partials finish in one launch (a mean's division included), so the
    step is two launches. Values against NumPy in float64."""
    xv = np.linspace(-2, 2, 300)
    x = jitgrad.tensor(xv.astype(dtype), device="cuda")
    a = jitgrad.tensor(dtype(0.7), device="cuda", requires_grad=True)
    b = jitgrad.tensor(dtype(-0.3), device="cuda", requires_grad=True)
    c0 = jitgrad.explain_kernels().get("kernel_launches", 0)
    y = (a * x + b).tanh() * x
    loss, m = y.sum(), (y * 2).mean()
    loss.backward()
    assert jitgrad.explain_kernels()["kernel_launches"] - c0 == 2
    t = np.tanh(0.7 * xv - 0.3)
    du = (1 - t * t) * xv
    tol = dict(rtol=1e-12) if dtype == np.float64 else dict(rtol=2e-5, atol=1e-5)
    for got, want in ((loss, (t * xv).sum()), (m, 2 * (t * xv).mean()),
                      (a.grad, (du * xv).sum()), (b.grad, du.sum())):
        assert got.dtype == jitgrad.tensor(dtype(0)).dtype and got.shape == ()
        np.testing.assert_allclose(got.item(), want, **tol)


def test_many_full_sums_finish_in_chunks():
    """More full sums than one finish launch takes (FINISH_CHUNK) finish in several launches,
    each value right."""
    from jitgrad.backends import cuda as cb
    xv = np.linspace(-1, 1, 40)
    x = jitgrad.tensor(xv, device="cuda")
    n = cb.FINISH_CHUNK + 4
    sums = [(x * float(k)).sum() for k in range(1, n + 1)]
    c0 = jitgrad.explain_kernels().get("kernel_launches", 0)
    jitgrad.lazy.realize_many(sums)
    assert jitgrad.explain_kernels()["kernel_launches"] - c0 == 3  # one fused kernel, 2 finishes
    for k, s in enumerate(sums, start=1):
        np.testing.assert_allclose(s.item(), (xv * k).sum(), rtol=1e-12, atol=1e-12)


def test_explain_shows_the_cuda_kernel():
    x = jitgrad.tensor(np.linspace(-1, 1, 6), device="cuda")
    y = (x * 2).tanh()
    groups = jitgrad.explain(y).groups
    assert len(groups) == 1 and "cuda.grid" in groups[0].source and "math.tanh" in groups[0].source
    np.testing.assert_allclose(y.cpu().numpy(), np.tanh(2 * np.linspace(-1, 1, 6)), rtol=1e-12)


def test_review_regressions():
    """Bugs a review found (each was a silent wrong value or a wrong shape/dtype)."""
    import pickle
    # matmul where both operands need a temporary contiguous copy (a pooled block was reused)
    A = np.arange(6.0).reshape(3, 2)
    B = np.arange(12.0).reshape(4, 3)
    a, b = jitgrad.tensor(A, device="cuda"), jitgrad.tensor(B, device="cuda")
    np.testing.assert_allclose((a.t() @ b.t()).cpu().numpy(), A.T @ B.T)
    X, Y = np.arange(6.0).reshape(2, 1, 1, 3), np.arange(18.0).reshape(3, 3, 2)
    np.testing.assert_allclose((jitgrad.tensor(X, device="cuda") @
                                jitgrad.tensor(Y, device="cuda")).cpu().numpy(), X @ Y)
    # 0-d tensors stay 0-d on the GPU (and do not promote a float32 tensor)
    assert jitgrad.tensor(3.0, device="cuda").shape == () == jitgrad.tensor(3.0).cuda().shape
    ones = jitgrad.ones(2, 3, device="cuda")
    assert (ones * jitgrad.tensor(2.0, dtype=jitgrad.float64, device="cuda")).dtype == \
        jitgrad.float32
    w = jitgrad.tensor(2.0, requires_grad=True)
    (ones * w).sum().backward()
    assert w.grad.shape == () and w.grad.item() == 6.0
    # basic indexing gives views: writes through them reach the base (as on the CPU)
    outs = []
    for dev in ("cpu", "cuda"):
        x = jitgrad.tensor(np.arange(12.0).reshape(3, 4), device=dev)
        x[:, 2].zero_()
        x[0][1] = 50
        v = x[1]
        v += 100
        x.t()[3] = -1
        x[[0, 2], 0] = jitgrad.tensor([7.0, 8.0], device=dev)
        outs.append(x.cpu().numpy())
    np.testing.assert_array_equal(outs[0], outs[1])
    # a pickled CUDA leaf comes back a leaf on the GPU
    p = pickle.loads(pickle.dumps(jitgrad.tensor([1.0], device="cuda", requires_grad=True)))
    assert p.is_leaf and p.requires_grad and p.is_cuda
    # sum(dtype=int64) casts each element first, like torch
    F = np.array([[0.5, 0.5, 1.7], [2.2, -0.5, 3.9]], np.float32)
    for dev in ("cpu", "cuda"):
        t = jitgrad.tensor(F, device=dev)
        assert t.sum(0, dtype=jitgrad.int64).tolist() == [2, 0, 4]
        assert t.sum(dtype=jitgrad.int64).item() == 6
    assert jitgrad.tensor(jitgrad.tensor([1.0], device="cuda")).is_cuda
    with pytest.raises(NotImplementedError, match="CUDA"):
        jitgrad.autograd.functional.hessian(lambda t: (t * t).sum(),
                                            jitgrad.tensor([1.0, 2.0], device="cuda"))
    with pytest.raises(NotImplementedError, match="CUDA"):
        jitgrad.tensor([[1, 2]], device="cuda") @ jitgrad.tensor([[1], [2]], device="cuda")


def test_second_review_regressions():
    # views of non-contiguous views (the simulator view lost its offset)
    x = jitgrad.arange(12.0).reshape(3, 4).to("cuda")
    assert x[:, 1:3][1].tolist() == [5.0, 6.0] and x.t()[1:][0].tolist() == [1.0, 5.0, 9.0]
    assert x[::2][1].tolist() == [8.0, 9.0, 10.0, 11.0]
    assert jitgrad.arange(6.0).cuda()[::2][1].item() == 2.0
    outs = []
    for dev in ("cpu", "cuda"):
        y = jitgrad.arange(12.0).reshape(3, 4).to(dev)
        v = y.t()[1:]
        v += 100
        v[0] = -1.0
        outs.append(y.cpu().numpy())
    np.testing.assert_array_equal(outs[0], outs[1])
    # a value must broadcast *to* the indexed target
    for dev in ("cpu", "cuda"):
        z = jitgrad.zeros(4, 1, device=dev)
        with pytest.raises(RuntimeError, match="shape mismatch"):
            z[:] = jitgrad.tensor([[1.0, 2, 3, 4, 5]], device=dev)
    # nll_loss: an inf elsewhere in a row, every row ignored, an empty batch, a NaN ignored row
    X, T = [[-0.5, -np.inf, -1.0], [-2.0, -0.1, -np.inf]], [0, 1]
    for dev in ("cpu", "cuda"):
        F = jitgrad.nn.functional
        xx = jitgrad.tensor(X, device=dev, requires_grad=True)
        loss = F.nll_loss(xx, jitgrad.tensor(T, device=dev))
        loss.backward()
        assert abs(loss.item() - 0.3) < 1e-6
        np.testing.assert_array_equal(xx.grad.cpu().numpy(), [[-0.5, 0, 0], [0, -0.5, 0]])
        xx = jitgrad.tensor([[1.0, 2, 3], [4, 5, 6]], device=dev, requires_grad=True)
        loss = F.nll_loss(xx, jitgrad.tensor([-100, -100], device=dev))
        loss.backward()
        assert np.isnan(loss.item()) and not xx.grad.cpu().numpy().any()  # torch: zero grad
        empty = F.cross_entropy(jitgrad.zeros(0, 3, device=dev),
                                jitgrad.zeros(0, dtype=jitgrad.int64, device=dev))
        assert np.isnan(empty.item())
        nan_row = F.nll_loss(jitgrad.tensor([[-0.5, -1, -1], [np.nan] * 3], device=dev),
                             jitgrad.tensor([0, -100], device=dev))
        assert nan_row.item() == 0.5
    assert jitgrad.argmax(jitgrad.tensor(5.0, device="cuda"), 0).is_cuda


def test_inplace_update_computes_into_its_target_on_the_gpu():
    """As on the CPU (tests/test_fusion.py): ``p -= lr * g`` under no_grad is one fused kernel
    writing p's own memory; a pending value that reads p is computed first."""
    p = jitgrad.tensor(np.arange(6.0), device="cuda")
    g = jitgrad.tensor(np.ones(6), device="cuda")
    storage = p._arr
    d = p * 2
    c0 = jitgrad.explain_kernels().get("kernel_launches", 0)
    with jitgrad.no_grad():
        p -= 0.5 * g
    assert jitgrad.explain_kernels()["kernel_launches"] - c0 == 2 and p._arr is storage
    np.testing.assert_array_equal(p.cpu().numpy(), np.arange(6.0) - 0.5)
    np.testing.assert_array_equal(d.cpu().numpy(), 2 * np.arange(6.0))
    q = jitgrad.tensor(np.arange(6.0), device="cuda")
    with jitgrad.no_grad():
        q[1:] += q[:-1] * 1  # overlapping views of one root: the copying path
    np.testing.assert_array_equal(q.cpu().numpy(), [0, 1, 3, 5, 7, 9])
