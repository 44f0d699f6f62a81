"""creation: tensor factories and the random number generator (``manual_seed``)."""
from __future__ import annotations

import numpy as np

from . import dtypes
from .tensor import Tensor, _filled, _shape_arg, check_device, full, tensor, zeros

_rng = np.random.default_rng()


def manual_seed(seed: int):
    """Seed jitgrad's generator (NumPy PCG64; sequences differ from torch's Mersenne Twister)."""
    global _rng
    _rng = np.random.default_rng(int(seed))
    return _rng


def seed():
    global _rng
    _rng = np.random.default_rng()


def _finish(arr, dtype, requires_grad, device=None):
    gpu = check_device(device)
    d = dtypes.from_any(dtype) if dtype is not None else dtypes.get_default_dtype()
    arr = np.asarray(arr, dtype=d.np, order="C")  # (ascontiguousarray makes 0-d arrays 1-d)
    if gpu:  # made on the host, then uploaded (random numbers match the CPU stream)
        from .backends import cuda as cb
        arr = cb.to_device(arr)
    t = Tensor._make(arr)
    if requires_grad:
        t.requires_grad_(True)
    return t


def ones(*size, dtype=None, device=None, requires_grad=False):
    return _filled(size, 1, dtype, device, requires_grad)


def empty(*size, dtype=None, device=None, requires_grad=False):
    d = dtypes.from_any(dtype) if dtype is not None else dtypes.get_default_dtype()
    return _finish(np.empty(_shape_arg(size), d.np), d, requires_grad, device)


def eye(n, m=None, dtype=None, device=None, requires_grad=False):
    return _finish(np.eye(n, m if m is not None else n), dtype, requires_grad, device)


def arange(start, end=None, step=1, dtype=None, device=None, requires_grad=False):
    if end is None:
        start, end = 0, start
    if step == 0:
        raise RuntimeError("arange: step must be nonzero")
    vals = (start, end, step)
    if dtype is None:
        is_float = any(isinstance(v, float) or (isinstance(v, Tensor) and v.is_floating_point())
                       for v in vals)
        dtype = dtypes.get_default_dtype() if is_float else dtypes.int64
    d = dtypes.from_any(dtype)
    start, end, step = (float(v) if d.is_floating_point else v for v in vals)
    return _finish(np.arange(start, end, step, dtype=np.float64 if d.is_floating_point
                             else np.int64), d, requires_grad, device)


def linspace(start, end, steps, dtype=None, device=None, requires_grad=False):
    return _finish(np.linspace(float(start), float(end), int(steps)), dtype, requires_grad, device)


def rand(*size, dtype=None, device=None, requires_grad=False, generator=None):
    d = dtypes.from_any(dtype) if dtype is not None else dtypes.get_default_dtype()
    return _finish(_rng.random(_shape_arg(size), dtype=d.np), d, requires_grad, device)


def randn(*size, dtype=None, device=None, requires_grad=False, generator=None):
    d = dtypes.from_any(dtype) if dtype is not None else dtypes.get_default_dtype()
    return _finish(_rng.standard_normal(_shape_arg(size), dtype=d.np), d, requires_grad, device)


def randint(low, high=None, size=(), dtype=None, device=None, requires_grad=False):
    if high is None:
        low, high = 0, low
    return _finish(_rng.integers(low, high, size=tuple(size)), dtype or dtypes.int64,
                   requires_grad, device)


def randperm(n, dtype=None, device=None):
    return _finish(_rng.permutation(n), dtype or dtypes.int64, False, device)


def _like(x, dtype):
    return dtype if dtype is not None else x.dtype


def _dev(x, device):
    """``*_like`` keep the device of ``x`` unless told otherwise (like torch)."""
    return device if device is not None else (x.device if isinstance(x, Tensor) else None)


def zeros_like(x, dtype=None, device=None, requires_grad=False):
    return zeros(x.shape, dtype=_like(x, dtype), device=_dev(x, device),
                 requires_grad=requires_grad)


def ones_like(x, dtype=None, device=None, requires_grad=False):
    return ones(x.shape, dtype=_like(x, dtype), device=_dev(x, device),
                requires_grad=requires_grad)


def empty_like(x, dtype=None, device=None, requires_grad=False):
    return empty(x.shape, dtype=_like(x, dtype), device=_dev(x, device),
                 requires_grad=requires_grad)


def full_like(x, fill_value, dtype=None, device=None, requires_grad=False):
    return full(x.shape, fill_value, dtype=_like(x, dtype), device=_dev(x, device),
                requires_grad=requires_grad)


def rand_like(x, dtype=None, device=None, requires_grad=False):
    return rand(x.shape, dtype=_like(x, dtype), device=_dev(x, device),
                requires_grad=requires_grad)


def randn_like(x, dtype=None, device=None, requires_grad=False):
    return randn(x.shape, dtype=_like(x, dtype), device=_dev(x, device),
                 requires_grad=requires_grad)


def from_numpy(a: np.ndarray) -> Tensor:
    """Zero-copy: the tensor and the array share memory."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"expected np.ndarray (got {type(a).__name__})")
    dtypes.from_numpy(a.dtype)  # validates
    if a.dtype not in tuple(d.np for d in dtypes.ALL):
        raise TypeError(f"can't convert np.ndarray of type {a.dtype} without a copy; supported: "
                        "float64, float32, int64, int32, bool")
    return Tensor._make(a)


def as_tensor(data, dtype=None, device=None):
    """Like torch.as_tensor: no copy when ``data`` already has the dtype and device — a NumPy
    array, or a GPU array exposing ``__cuda_array_interface__`` (CuPy, torch.cuda, numba)."""
    check_device(device)
    if isinstance(data, Tensor):
        t = data
    elif hasattr(data, "__cuda_array_interface__"):
        t = _from_cuda_array(data)
    elif isinstance(data, np.ndarray) and (dtype is None or
                                           dtypes.from_any(dtype).np == data.dtype):
        t = from_numpy(data)
    else:
        t = tensor(data, dtype=dtype)
    return t.to(dtype=dtype, device=device)


def _from_cuda_array(obj) -> Tensor:
    from . import interop
    from .backends import cuda as cb
    cb.require()
    dev = interop.as_cuda_array(obj)
    dtypes.from_numpy(np.dtype(dev.dtype))  # validates (a clear error for unsupported dtypes)
    return Tensor._make(cb.DeviceArray(dev))


def from_dlpack(obj) -> Tensor:
    """Zero-copy import of a DLPack producer (torch, CuPy, NumPy, JAX) on the CPU or the GPU."""
    from . import interop
    from .backends import cuda as cb
    kind, arr = interop.from_dlpack(obj)
    dtypes.from_numpy(np.dtype(arr.dtype))
    if kind == "cuda":
        return Tensor._make(cb.DeviceArray(arr))
    return Tensor._make(arr)


__all__ = ["manual_seed", "seed", "ones", "empty", "eye", "arange", "linspace", "rand", "randn",
           "randint", "randperm", "zeros_like", "ones_like", "empty_like", "full_like",
           "rand_like", "randn_like", "from_numpy", "as_tensor", "from_dlpack"]
