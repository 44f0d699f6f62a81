"""jitgrad.vmath transcendental functions in an njit loop vs NumPy ufuncs vs
``math.*`` in the same njit loop (scalar libm calls: no SVML here).

Groups ``vmath-<fn>-<dtype>``, N = 1e6 contiguous elements, peers:

* ``jitgrad`` -- ``@njit(error_model='numpy')`` loop calling ``jitgrad.vmath.<fn>``
* ``numpy``   -- the ufunc with ``out=`` (sigmoid: negative/exp/add/reciprocal)
* ``math``    -- the same njit loop calling ``math.<fn>`` (sigmoid: 1/(1+exp(-x)))

Compilation happens before timing; values are checked against numpy outside
the timed part.  Nothing asserts on times.

Note: on Intel AVX-512 hosts LLVM prefers 256-bit vectors for Numba loops
while NumPy's ufuncs use 512-bit ones; ``NUMBA_CPU_FEATURES=<host
features>,-prefer-256-bit`` lets the vmath loops use zmm too.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from numba import njit

import jitgrad.vmath as vm

N = 1_000_000
NAMES = ["exp", "expm1", "log", "log1p", "tanh", "sigmoid", "sin", "cos", "tan"]
DOMAIN = {"exp": (-80, 80), "expm1": (-80, 80), "log": (1e-3, 100),
          "log1p": (-0.9, 100), "sigmoid": (-50, 50)}   # others: (-10, 10)


def _loop(f):
    @njit(error_model="numpy")
    def loop(a, out):
        for i in range(a.size):
            out[i] = f(a[i])
    return loop


_ONE32 = np.float32(1.0)


@njit(inline="always")
def _math_sigmoid64(x):
    return 1.0 / (1.0 + math.exp(-x))


@njit(inline="always")
def _math_sigmoid32(x):
    return _ONE32 / (_ONE32 + math.exp(-x))


_MATH = {"exp": math.exp, "expm1": math.expm1, "log": math.log,
         "log1p": math.log1p, "tanh": math.tanh, "sin": math.sin,
         "cos": math.cos, "tan": math.tan}


def _np_sigmoid(a, out):
    np.negative(a, out=out)
    np.exp(out, out=out)
    np.add(out, 1, out=out)
    np.reciprocal(out, out=out)


def _np_fn(name):
    if name == "sigmoid":
        return _np_sigmoid
    uf = getattr(np, name)
    return lambda a, out: uf(a, out=out)


_CACHE = {}


def _runner(peer, name, dtype):
    key = (peer, name, dtype)
    if key not in _CACHE:
        if peer == "jitgrad":
            _CACHE[key] = _loop(vm.VMATH_FUNCS[name])
        elif peer == "math":
            f = _MATH.get(name) or (_math_sigmoid32 if dtype == "float32"
                                    else _math_sigmoid64)
            _CACHE[key] = _loop(f)
        else:
            _CACHE[key] = _np_fn(name)
    return _CACHE[key]


@pytest.mark.parametrize("peer", ["jitgrad", "numpy", "math"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", NAMES)
def bench_vmath(benchmark, name, dtype, peer):
    lo, hi = DOMAIN.get(name, (-10, 10))
    a = np.random.default_rng(0).uniform(lo, hi, N).astype(dtype)
    out = np.empty_like(a)
    run = _runner(peer, name, dtype)
    run(a, out)                      # compile outside the timed part
    want = np.empty_like(a)
    with np.errstate(over="ignore"):
        _np_fn(name)(a, want)
    rtol = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(out, want, rtol=rtol, atol=0, err_msg=f"{peer} {name}")

    benchmark.group = f"vmath-{name}-{dtype}"
    benchmark.extra_info["peer"] = peer
    benchmark.extra_info["case"] = f"{name} {dtype} N=1e6"
    benchmark(run, a, out)
