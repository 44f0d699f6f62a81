"""Shared fixtures: a seeded NumPy generator and ``torch`` (skipped, with the reason shown,
when torch is not installed).

CUDA: without a GPU (no /dev/nvidiactl) the CUDA tests run on Numba's simulator, which must be
chosen before numba is imported; ``JITGRAD_TEST_CUDA=gpu`` or ``=sim`` forces either. On a GPU
machine ``pytest -m cuda`` runs the same CUDA tests on the device."""
import os

_cuda_mode = os.environ.get("JITGRAD_TEST_CUDA") or (
    "gpu" if os.path.exists("/dev/nvidiactl") else "sim")
if _cuda_mode == "sim":
    os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture
def rng():
    return np.random.default_rng(20240607)


@pytest.fixture(scope="session")
def torch():
    try:
        import torch as _torch
    except ImportError:
        pytest.skip("torch is not installed: comparisons against torch are skipped "
                    "(pip install -e .[test])")
    return _torch


def pytest_addoption(parser):
    parser.addoption("--long", action="store_true", default=False,
                     help="long runs: tests/test_fuzz.py checks 10,000 random programs per "
                          "fusion mode instead of the CI slice")
