"""Shared fixtures: a seeded NumPy generator and ``torch`` (skipped, with the reason shown,
when torch is not installed)."""
import numpy as np
import pytest


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
