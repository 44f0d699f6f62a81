"""backends: one module per device behind one interface; the device type is the key.

``BACKENDS["cpu"]`` is :mod:`.cpu` (NumPy arrays, @njit kernels) and ``BACKENDS["cuda"]`` is
:mod:`.cuda` (DeviceArray storage, numba.cuda kernels, imported only on the first GPU op).
Each provides every name in :data:`INTERFACE` (tests/test_backends.py checks it), so the layers
above ask ``backend_of(array)`` or ``BACKENDS[device]`` for an operation instead of testing
which device they are on: a structural op's forward is written once against these names.
A new device is one module providing INTERFACE, plus its entry in ``BACKENDS`` and its array
type in ``_DEVICE_OF_TYPE`` (and a kernel renderer in codegen if it fuses elementwise chains).
"""
from __future__ import annotations

import numpy as np

from . import cpu, cuda
from .cuda import DeviceArray

BACKENDS = {"cpu": cpu, "cuda": cuda}

# storage type -> device key (every array a Tensor holds is one of these)
_DEVICE_OF_TYPE = {np.ndarray: "cpu", DeviceArray: "cuda"}
ARRAY_TYPES = tuple(_DEVICE_OF_TYPE)

# What every backend module provides (name -> what it does). Arrays are the backend's own
# storage type; ``shape``/``dtype`` are tuples/NumPy dtypes; ``axes`` are sorted and unique.
INTERFACE = {
    "DEVICE": "its key in BACKENDS",
    "ARRAY_TYPE": "the array class of its storage",
    "is_available": "() -> bool: the device can be used in this process",
    "require": "() -> None: raise a clear RuntimeError when it cannot",
    "empty": "(shape, dtype) -> an uninitialised C-contiguous array",
    "full": "(shape, value, dtype) -> a filled array",
    "from_host": "(numpy array) -> a copy in this backend's storage (the array itself on cpu)",
    "to_host": "(array) -> a NumPy array (the array itself on cpu)",
    "contiguous": "(array, dtype=None) -> a C-contiguous copy, optionally cast",
    "concatenate": "(arrays, axis, dtype) -> np.concatenate, inputs cast to dtype",
    "matmul": "(a, b) -> np.matmul (float dtypes; batch dims broadcast)",
    "basic_view": "(array, basic index) -> a view",
    "getitem": "(array, index tuple) -> array[index]: a view if basic, else a copy",
    "broadcast_to": "(array, shape) -> a stride-0 view",
    "flip": "(array, dims) -> a C-contiguous copy with dims reversed",
    "gather": "(array, any NumPy index, out_dtype=None) -> a copy of array[index]",
    "index_add": "(shape, index, g) -> zeros(shape) with g scatter-added at index",
    "reduce_sum": "(array, axes, acc dtype) -> the sum over axes, kept dims only",
    "arb_view": "(array, axes) -> (x3, kept shape): x as a contiguous (A, R, B) array",
    "argmax_arb": "(x3, out, idx, sign) -> None: max (sign 1) / min (-1) and argmax over R",
    "logsumexp_arb": "(x3, out) -> None",
    "softmax_arb": "(x3, out, log) -> None",
    "prod_arb": "(x3, out) -> None",
    "prod_others_arb": "(x3, out) -> None: for each element, the product of the others",
    "compile_source": "(key, source, name, compute dtype, ...) -> a compiled generated kernel",
}


def device_of(a) -> str:
    """The device key of an array (anything that is not a backend array is host data)."""
    return _DEVICE_OF_TYPE.get(type(a), "cpu")


def backend_of(a):
    """The backend module that owns array ``a``."""
    return BACKENDS[_DEVICE_OF_TYPE.get(type(a), "cpu")]
