"""Half dtypes are refused wherever they can enter (jitgrad has no float16 kernels and NumPy no
bfloat16): no path may silently turn float16 into float32. Also: zero-copy imports keep the
producer's dtype or refuse (an int8 buffer must not pass as int32)."""
from __future__ import annotations

import numpy as np
import pytest

import jitgrad

HALF = "does not support dtype (float16|bfloat16)"


def test_every_dtype_spelling_is_refused():
    torch = pytest.importorskip("torch")
    spellings = [jitgrad.half, jitgrad.float16, jitgrad.bfloat16, "float16", "half",
                 "torch.float16", "bfloat16", np.float16, np.dtype("float16"), torch.float16,
                 torch.half, torch.bfloat16]
    x = jitgrad.ones(2)
    makers = [lambda d: jitgrad.empty(2, dtype=d), lambda d: jitgrad.eye(2, dtype=d),
              lambda d: jitgrad.linspace(0, 1, 3, dtype=d), lambda d: jitgrad.rand(2, dtype=d),
              lambda d: jitgrad.ones_like(x, dtype=d), lambda d: jitgrad.as_tensor([1.0], d),
              lambda d: x.to(d), lambda d: x.type(d), lambda d: x.new_zeros(2, dtype=d),
              lambda d: x.cumsum(0, dtype=d)]
    for d in spellings:
        for make in makers:
            with pytest.raises(TypeError, match=HALF):
                make(d)
    for conv in (lambda t: t.half(), lambda t: t.bfloat16(), lambda m: m.half()):
        with pytest.raises(TypeError, match=HALF):
            conv(x)
    with pytest.raises(TypeError, match=HALF):
        jitgrad.nn.Linear(2, 2).half()


def test_float16_data_is_refused_not_converted():
    a = np.array([1.5, -2.0], np.float16)
    makers = [jitgrad.tensor, jitgrad.from_numpy, jitgrad.as_tensor, jitgrad.from_dlpack,
              lambda a: jitgrad.tensor(list(a)), lambda a: jitgrad.tensor(a[0]),
              lambda a: jitgrad.ones(2) + a, lambda a: jitgrad.ones(2) * a]
    for make in makers:
        with pytest.raises(TypeError, match="float16 .got float16 data: convert it first"):
            make(a)
    # an explicit dtype is a conversion the user asked for
    t = jitgrad.tensor(a, dtype=jitgrad.float32)
    assert t.dtype == jitgrad.float32 and t.tolist() == [1.5, -2.0]
    t = jitgrad.as_tensor(a, dtype=jitgrad.float64)
    assert t.dtype == jitgrad.float64 and t.tolist() == [1.5, -2.0]


def test_zero_copy_imports_keep_the_dtype_or_refuse():
    b = np.arange(3, dtype=np.int8)
    with pytest.raises(TypeError, match="from_dlpack: can't import data of dtype int8 without "
                                        "a copy"):
        jitgrad.from_dlpack(b)
    with pytest.raises(TypeError, match="can't convert np.ndarray of type int8 without a copy"):
        jitgrad.from_numpy(b)
    c = np.arange(3, dtype=np.int32)
    t = jitgrad.from_dlpack(c)
    assert t.dtype == jitgrad.int32 and np.shares_memory(t.numpy(), c)
    assert jitgrad.tensor(b).dtype == jitgrad.int32  # a copy converts (documented)


@pytest.mark.parametrize("scalar", [np.float16(2.5), np.float32(0.5), np.float64(1.5),
                                    np.int8(3), np.int64(-2)])
def test_numpy_scalars_are_python_numbers_like_torch(scalar, torch):
    """A NumPy scalar operand is a number (torch's rule): it does not promote the tensor and a
    float16 scalar works (it was passed to the kernel as float16 and Numba failed)."""
    for dt in (np.float32, np.float64, np.int64):
        a = np.arange(1, 5).astype(dt)
        for f in (lambda x: x * scalar, lambda x: x + scalar, lambda x: x / scalar,
                  lambda x: jitgrad.mul(x, scalar) if isinstance(x, jitgrad.Tensor)
                  else torch.mul(x, scalar)):
            j, t = f(jitgrad.tensor(a)), f(torch.tensor(a))
            assert j.dtype.name == str(t.dtype).split(".")[-1], (scalar, dt)
            np.testing.assert_allclose(j.numpy(), t.numpy(), rtol=1e-6)
