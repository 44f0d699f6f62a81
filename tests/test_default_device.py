"""jitgrad.set_default_device / get_default_device (torch's semantics: factories without
``device=`` use it, an explicit device wins, a copy of a tensor stays on its device, per thread).
CUDA runs on Numba's simulator here (tests/conftest.py)."""
import threading

import numpy as np
import pytest

import jitgrad


@pytest.fixture
def restore_default():
    yield
    jitgrad.set_default_device(None)


def test_default_device_cpu_roundtrip(restore_default):
    assert jitgrad.get_default_device() == jitgrad.device("cpu")
    jitgrad.set_default_device("cpu")
    assert jitgrad.zeros(2).device == jitgrad.device("cpu")
    with pytest.raises(RuntimeError, match="unknown device"):
        jitgrad.set_default_device("tpu")


def test_default_device_cuda_factories(restore_default):
    if not jitgrad.cuda.is_available():
        pytest.skip("numba.cuda is not available")
    jitgrad.set_default_device("cuda")
    assert jitgrad.get_default_device() == jitgrad.device("cuda:0")
    for t in (jitgrad.zeros(2, 3), jitgrad.ones(2), jitgrad.randn(3), jitgrad.arange(4),
              jitgrad.tensor([1.0, 2.0]), jitgrad.full((2,), 7.0), jitgrad.eye(2)):
        assert t.device == jitgrad.device("cuda:0"), t
    np.testing.assert_array_equal(jitgrad.tensor([1.0, 2.0]).cpu().numpy(), [1.0, 2.0])
    assert jitgrad.zeros(2, device="cpu").device == jitgrad.device("cpu")  # explicit wins
    c = jitgrad.zeros(2, device="cpu")
    assert jitgrad.tensor(c).device == jitgrad.device("cpu")  # a copy stays on its device
    seen = []
    th = threading.Thread(target=lambda: seen.append(jitgrad.zeros(1).device))
    th.start()
    th.join()
    assert seen == [jitgrad.device("cpu")]  # per thread, like torch
    jitgrad.set_default_device(None)
    assert jitgrad.zeros(2).device == jitgrad.device("cpu")
