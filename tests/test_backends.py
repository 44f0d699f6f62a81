"""Every backend provides the one interface (jitgrad.backends.INTERFACE), and the operations a
structural forward asks of a backend agree with NumPy on the CPU and (simulator, tiny arrays)
on CUDA."""
import inspect

import numpy as np
import pytest

from jitgrad import backends
from jitgrad.backends import BACKENDS, INTERFACE


@pytest.mark.parametrize("device", sorted(BACKENDS))
def test_backend_provides_interface(device):
    be = BACKENDS[device]
    missing = [n for n in INTERFACE if not hasattr(be, n)]
    assert not missing, f"backend {device!r} lacks {missing}"
    assert be.DEVICE == device
    assert backends._DEVICE_OF_TYPE[be.ARRAY_TYPE] == device


def test_interface_signatures_agree():
    """A name takes the same number of required parameters on every backend (so one forward
    serves all; interface calls pass them positionally)."""
    for name, doc in INTERFACE.items():
        sigs = set()
        for be in BACKENDS.values():
            f = getattr(be, name)
            if callable(f) and not isinstance(f, type):
                try:
                    sigs.add(sum(p.default is inspect.Parameter.empty
                                 for p in inspect.signature(f).parameters.values()))
                except (TypeError, ValueError):  # a builtin (np.empty): no signature to read
                    continue
        assert len(sigs) <= 1, f"{name}: backends disagree on the required parameters {sigs}"


def test_cpu_backend_ops_match_numpy():
    be = BACKENDS["cpu"]
    rng = np.random.default_rng(0)
    a = rng.standard_normal((3, 4))
    b = rng.standard_normal((4, 2))
    np.testing.assert_array_equal(be.concatenate([a, a[:1]], 0, np.float32),
                                  np.concatenate([a, a[:1]]).astype(np.float32))
    np.testing.assert_allclose(be.matmul(a, b), a @ b)
    idx = (np.array([0, 2, 0]), slice(None))
    np.testing.assert_array_equal(be.gather(a, idx), a[idx])
    want = np.zeros((3, 4))
    np.add.at(want, idx, np.ones((3, 4)))
    np.testing.assert_array_equal(be.index_add((3, 4), idx, np.ones((3, 4))), want)
    np.testing.assert_array_equal(be.full((2,), 7, np.int64), [7, 7])
    c = be.contiguous(a.T, np.float32)
    assert c.flags.c_contiguous and c.dtype == np.float32
    np.testing.assert_array_equal(c, a.T.astype(np.float32))
    assert be.to_host(be.from_host(a)) is a
    assert backends.device_of(a) == "cpu" and backends.backend_of(a) is be
