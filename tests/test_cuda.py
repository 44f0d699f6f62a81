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
                   "softmax", "log_softmax", "logsumexp"}
# OpInfo rows (by name) of a supported primitive that use a feature not on the GPU yet.
NOT_ON_GPU_YET = {"getitem_mask"}


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


UNSUPPORTED = [info for info in ALL_INFOS if info.row in ops.STRUCTURAL and not _on_gpu(info)]


@pytest.mark.parametrize("info", UNSUPPORTED, ids=lambda i: i.name)
def test_rows_not_on_gpu_raise_clearly(info):
    rng = np.random.default_rng(0)
    xs = _inputs(info, info.arrays(info.shapes[0], rng), "float64", True, False)
    with pytest.raises((NotImplementedError, RuntimeError, TypeError), match="CUDA|cuda"):
        info.op(*xs)
