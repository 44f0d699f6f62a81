"""Zero-copy interop: DLPack (CPU and CUDA) and ``__cuda_array_interface__`` (CAI).

What is supported
-----------------
* **DLPack export** -- :func:`to_dlpack` turns a NumPy array (CPU) or any object exposing
  ``__cuda_array_interface__`` (CUDA: a numba device array, a CuPy array, ...) into a PyCapsule.
  Unversioned capsules (``"dltensor"``, ``DLManagedTensor``) by default; versioned ones
  (``"dltensor_versioned"``, ``DLManagedTensorVersioned``, DLPack >= 1.0, with the read-only and
  is-copied flags) when the consumer asks with ``max_version=(1, x)``, as NumPy and PyTorch do.
  :func:`dlpack_device` answers ``__dlpack_device__``.
* **DLPack import** -- :func:`from_dlpack` takes a producer (anything with ``__dlpack__``:
  NumPy, PyTorch, CuPy, JAX, jitgrad) or a raw capsule and returns ``("cpu", ndarray)`` or
  ``("cuda", numba device array)``, both views of the producer's memory. The parsing step
  (capsule -> device, pointer, shape, strides, dtype) is :func:`describe_capsule`; it knows
  nothing of the device, so the CUDA import path is the CPU one up to the final wrap.
* **CAI** -- :func:`as_cuda_array` wraps any CAI v2/v3 object as a numba device array;
  :func:`cuda_array_interface` builds the v3 dict a CUDA tensor exports.
* dtypes: bool, int8, int16, int32, int64, uint8, float16, float32, float64 (native byte
  order, one lane). Anything else (complex, bfloat16, float8, uint16..64, vector lanes) raises
  ``TypeError`` naming the dtype. Devices: kDLCPU (and kDLCUDAHost, pinned host memory, which
  is ordinary host memory to NumPy) and kDLCUDA (and kDLCUDAManaged, imported as a device
  array); anything else (ROCm, Metal, OpenCL, ...) raises ``BufferError`` naming the device.

Why ctypes
----------
jitgrad depends on NumPy and Numba only and ships no compiled extension, so the DLPack structs
are ``ctypes.Structure`` mirrors of ``dlpack.h`` and the capsules are made and read through
``ctypes.pythonapi`` (``PyCapsule_New``/``GetPointer``/``IsValid``/``SetName``). The C callbacks
DLPack needs (the ``DLManagedTensor`` deleter and the capsule destructor) are ctypes callbacks,
which take the GIL themselves, so a consumer may call the deleter from any thread. This module
imports nothing but NumPy and ctypes: ``numba.cuda`` is imported inside the CUDA paths only.

Lifetime rules
--------------
* Export: each capsule owns a record (the ctypes ``DLManagedTensor``, its shape/strides arrays
  and a reference to the producer's array) held in a module table until the deleter runs. A
  consumer renames the capsule ``"used_dltensor"`` and calls the deleter when it is done (NumPy:
  when its view dies); a capsule that is never consumed calls the deleter from its destructor
  when it is garbage-collected. Either way the producer's array is released exactly once.
* Import: the capsule is renamed ``"used_dltensor[_versioned]"`` (so the producer's destructor
  no longer frees it) and its ``DLManagedTensor`` is handed to a small owner object that calls
  the producer's deleter in ``__del__``. The returned ndarray has that owner as its ``base``;
  the returned numba device array holds it through its memory pointer (``owner=``). The
  producer's memory therefore lives exactly as long as the view and every view derived from it.
  Unsupported dtypes/devices are rejected *before* the capsule is consumed, so a rejected
  capsule still frees itself.
* A C consumer that rejects one of our capsules and drops it while its own exception is set
  (e.g. ``np.from_dlpack`` of a CUDA tensor) makes our destructor run with that exception
  pending. The destructor saves it, still frees the record, and puts it back, which ctypes then
  reports through ``sys.unraisablehook``; the consumer itself then raises ``SystemError``. A C
  destructor could restore the exception silently; ctypes callbacks cannot.

CUDA streams
------------
* Export (``to_dlpack(..., stream=s)``, the consumer's stream as in the DLPack protocol; ``None``
  means the legacy default stream, 1 legacy default, 2 per-thread default, -1 "do not
  synchronise", 0 is rejected as ambiguous): the producer's stream is the CAI ``stream`` of the
  exported array, or Numba's default stream when that is ``None`` (Numba reports ``None`` for
  arrays on its default stream even though kernels may still be queued on it). Unless the two
  are the same stream (both the legacy default stream, or the same handle) or ``s == -1``, the
  producer's stream is *synchronised* before the pointer is handed out: simple and always
  correct, at the cost of a host wait; an event-based wait would avoid it
  (:func:`export_sync_plan` is the decision, separately testable).
* Import: :func:`from_dlpack` passes Numba's default stream (1, or 2 with
  ``NUMBA_CUDA_PER_THREAD_DEFAULT_STREAM=1``) as ``stream=`` so that the producer orders its
  work before ours; the imported array carries no stream. :func:`as_cuda_array` synchronises
  the CAI v3 ``stream`` before returning (Numba's ``from_cuda_array_interface(sync=True)``,
  which honours ``NUMBA_CUDA_ARRAY_INTERFACE_SYNC=0``).
* :func:`cuda_array_interface` reports the stream that holds pending work on the array (by
  default Numba's default stream, 1 or 2; a bound stream's handle if the array has one), as the
  CAI v3 spec asks, so consumers synchronise on it; pass ``stream=None`` only after
  synchronising.
* Without a GPU, Numba's simulator (``NUMBA_ENABLE_CUDASIM=1``) stands in: its "device arrays"
  wrap host NumPy arrays and its "device pointers" are host pointers, so the CUDA import paths
  wrap the memory zero-copy in a simulator array and stream synchronisation is a no-op.
"""
from __future__ import annotations

import contextlib
import ctypes
from typing import NamedTuple

import numpy as np

__all__ = [
    "to_dlpack", "from_dlpack", "dlpack_device", "describe_capsule", "interface_from_info",
    "as_cuda_array", "cuda_array_interface", "export_sync_plan", "DLTensorInfo",
    "DLDevice", "DLDataType", "DLTensor", "DLManagedTensor", "DLPackVersion",
    "DLManagedTensorVersioned", "DLPACK_VERSION", "kDLCPU", "kDLCUDA", "kDLCUDAHost",
    "kDLCUDAManaged", "SUPPORTED_DTYPES",
]

# ------------------------------------------------------------------------------------------
# dlpack.h, as ctypes
# ------------------------------------------------------------------------------------------

DLPACK_VERSION = (1, 0)   # what we produce; we read any 1.x (minor versions keep the ABI)

kDLCPU, kDLCUDA, kDLCUDAHost, kDLCUDAManaged = 1, 2, 3, 13
DEVICE_NAMES = {1: "CPU", 2: "CUDA", 3: "CUDAHost", 4: "OpenCL", 7: "Vulkan", 8: "Metal",
                9: "VPI", 10: "ROCM", 11: "ROCMHost", 12: "ExtDev", 13: "CUDAManaged",
                14: "OneAPI", 15: "WebGPU", 16: "Hexagon", 17: "MAIA", 18: "Trn"}
_HOST_DEVICES = (kDLCPU, kDLCUDAHost)          # imported as NumPy arrays
_CUDA_DEVICES = (kDLCUDA, kDLCUDAManaged)      # imported as numba device arrays

kDLInt, kDLUInt, kDLFloat, kDLOpaqueHandle, kDLBfloat, kDLComplex, kDLBool = range(7)
_CODE_NAMES = {0: "int", 1: "uint", 2: "float", 3: "opaque_handle", 4: "bfloat", 5: "complex",
               6: "bool", 7: "float8_e3m4", 8: "float8_e4m3", 9: "float8_e4m3b11fnuz",
               10: "float8_e4m3fn", 11: "float8_e4m3fnuz", 12: "float8_e5m2",
               13: "float8_e5m2fnuz", 14: "float8_e8m0fnu", 15: "float6_e2m3fn",
               16: "float6_e3m2fn", 17: "float4_e2m1fn"}

DLPACK_FLAG_BITMASK_READ_ONLY = 1 << 0
DLPACK_FLAG_BITMASK_IS_COPIED = 1 << 1

# (code, bits) <-> NumPy dtype, for the dtypes jitgrad stores
_NP_TO_DL = {
    np.dtype(np.bool_): (kDLBool, 8),
    np.dtype(np.int8): (kDLInt, 8), np.dtype(np.int16): (kDLInt, 16),
    np.dtype(np.int32): (kDLInt, 32), np.dtype(np.int64): (kDLInt, 64),
    np.dtype(np.uint8): (kDLUInt, 8),
    np.dtype(np.float16): (kDLFloat, 16), np.dtype(np.float32): (kDLFloat, 32),
    np.dtype(np.float64): (kDLFloat, 64),
}
_DL_TO_NP = {v: k for k, v in _NP_TO_DL.items()}
SUPPORTED_DTYPES = tuple(_NP_TO_DL)
_SUPPORTED_TEXT = ", ".join(str(d) for d in SUPPORTED_DTYPES)


class DLDevice(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int32),  # DLDeviceType (a C enum: int)
                ("device_id", ctypes.c_int32)]


class DLDataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class DLTensor(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p),
                ("device", DLDevice),
                ("ndim", ctypes.c_int32),
                ("dtype", DLDataType),
                ("shape", ctypes.POINTER(ctypes.c_int64)),
                ("strides", ctypes.POINTER(ctypes.c_int64)),   # elements, not bytes
                ("byte_offset", ctypes.c_uint64)]


_DELETER = ctypes.CFUNCTYPE(None, ctypes.c_void_p)   # void (*)(DLManagedTensor[Versioned] *)


class DLManagedTensor(ctypes.Structure):
    _fields_ = [("dl_tensor", DLTensor),
                ("manager_ctx", ctypes.c_void_p),
                ("deleter", ctypes.c_void_p)]    # a function pointer, kept as an address


class DLPackVersion(ctypes.Structure):
    _fields_ = [("major", ctypes.c_uint32), ("minor", ctypes.c_uint32)]


class DLManagedTensorVersioned(ctypes.Structure):
    _fields_ = [("version", DLPackVersion),
                ("manager_ctx", ctypes.c_void_p),
                ("deleter", ctypes.c_void_p),
                ("flags", ctypes.c_uint64),
                ("dl_tensor", DLTensor)]


# ------------------------------------------------------------------------------------------
# PyCapsule through ctypes.pythonapi (private prototypes: the shared ctypes.pythonapi
# attributes are left untouched, other libraries set their own argtypes on them)
# ------------------------------------------------------------------------------------------

_api = ctypes.pythonapi
_P = ctypes.PYFUNCTYPE   # keeps the GIL and raises a Python error the function set
_vp, _cp, _obj = ctypes.c_void_p, ctypes.c_char_p, ctypes.py_object

_Capsule_New = _P(_obj, _vp, _vp, _vp)(("PyCapsule_New", _api))
_Capsule_GetPointer = _P(_vp, _obj, _cp)(("PyCapsule_GetPointer", _api))
_Capsule_IsValid = _P(ctypes.c_int, _obj, _cp)(("PyCapsule_IsValid", _api))
_Capsule_SetName = _P(ctypes.c_int, _obj, _vp)(("PyCapsule_SetName", _api))
_Capsule_GetName = _P(_cp, _obj)(("PyCapsule_GetName", _api))
# the destructor gets a PyObject* whose refcount is already 0: never wrap it as an object
_Capsule_GetNameRaw = _P(_cp, _vp)(("PyCapsule_GetName", _api))
_Capsule_GetPointerRaw = _P(_vp, _vp, _cp)(("PyCapsule_GetPointer", _api))
_Py_IncRef = _P(None, _obj)(("Py_IncRef", _api))
_PyErr_Restore = _P(None, _vp, _vp, _vp)(("PyErr_Restore", _api))
# PyErr_Fetch is called without argtypes (no Python-level argument conversion, which would
# fail while an exception is pending) through a private PyDLL handle.
_PyErr_Fetch = ctypes.PyDLL(_api._name, handle=_api._handle).PyErr_Fetch
_PyErr_Fetch.restype = None
_CALL_DELETER = _P(None, _vp)   # calls a producer's deleter with the GIL held


def _static_name(s: bytes):
    """A char* that lives until the process ends: a capsule keeps the name pointer, not a copy,
    and may outlive this module at interpreter shutdown."""
    buf = ctypes.create_string_buffer(s)
    _Py_IncRef(buf)   # deliberately leaked
    return buf, ctypes.addressof(buf)


_N_DLTENSOR = b"dltensor"
_N_DLTENSOR_V = b"dltensor_versioned"
_N_USED = b"used_dltensor"
_N_USED_V = b"used_dltensor_versioned"
_NAME_PTR = {n: _static_name(n)[1] for n in (_N_DLTENSOR, _N_DLTENSOR_V, _N_USED, _N_USED_V)}


def _is_capsule(obj) -> bool:
    return type(obj).__name__ == "PyCapsule" and type(obj).__module__ == "builtins"


def _c_callback(impl):
    """Wrap ``impl(address)`` as a ``void (*)(void *)`` C callback that survives being called
    while an exception is pending (a C caller dropping a capsule on its error path): the pending
    exception is fetched first, then put back (see the module docstring)."""
    bufs = (ctypes.c_void_p(), ctypes.c_void_p(), ctypes.c_void_p())
    r0, r1, r2 = (ctypes.byref(b) for b in bufs)
    b0, b1, b2 = bufs
    fetch, restore = _PyErr_Fetch, _PyErr_Restore

    def callback(address):
        # First statement: nothing that checks for errors may run before it. The buffers are
        # shared; they only carry something when an exception was pending, and are read at once.
        fetch(r0, r1, r2)
        t, v, tb = b0.value, b1.value, b2.value
        b0.value = b1.value = b2.value = None
        try:
            impl(address)
        finally:
            if t is not None:
                restore(t, v, tb)   # raises it here: ctypes reports it as unraisable

    cb = _DELETER(callback)
    _Py_IncRef(cb)   # the thunk must outlive any capsule, even past module teardown
    return cb


# ------------------------------------------------------------------------------------------
# Export
# ------------------------------------------------------------------------------------------

class _Export:
    """Everything one exported DLManagedTensor needs alive: the struct, its shape/strides
    arrays and the producer's array (``owner``)."""
    __slots__ = ("managed", "shape", "strides", "owner")


_live: dict = {}   # struct address -> _Export, until the deleter runs


def _release_export(address, _live=_live):
    _live.pop(address, None)


def _capsule_destructor_impl(capsule, _get_name=_Capsule_GetNameRaw,
                             _get_ptr=_Capsule_GetPointerRaw, _release=_release_export):
    name = _get_name(capsule)
    if name == _N_DLTENSOR or name == _N_DLTENSOR_V:   # never consumed: we still own it
        _release(_get_ptr(capsule, name))


_deleter_cb = _c_callback(_release_export)
_destructor_cb = _c_callback(_capsule_destructor_impl)
_DELETER_ADDR = ctypes.cast(_deleter_cb, ctypes.c_void_p).value
_DESTRUCTOR_ADDR = ctypes.cast(_destructor_cb, ctypes.c_void_p).value


def _new_capsule(owner, data, shape, strides, dl_dtype, device, versioned=False, flags=0):
    """A capsule around a fresh DLManagedTensor[Versioned] describing ``data`` (an address) with
    ``shape``/``strides`` (elements), ``dl_dtype`` = (code, bits, lanes), ``device`` = (type, id).
    ``owner`` is kept alive until the consumer calls the deleter (or the capsule dies unused)."""
    ndim = len(shape)
    rec = _Export()
    rec.owner = owner
    rec.shape = (ctypes.c_int64 * max(ndim, 1))(*shape)
    rec.strides = (ctypes.c_int64 * max(ndim, 1))(*strides)
    if versioned:
        m = DLManagedTensorVersioned()
        m.version.major, m.version.minor = DLPACK_VERSION
        m.flags = flags
    else:
        m = DLManagedTensor()
    m.deleter = _DELETER_ADDR
    m.manager_ctx = None
    t = m.dl_tensor
    t.data = data or None
    t.device.device_type, t.device.device_id = device
    t.ndim = ndim
    t.dtype.code, t.dtype.bits, t.dtype.lanes = dl_dtype
    t.shape = ctypes.cast(rec.shape, ctypes.POINTER(ctypes.c_int64))
    t.strides = ctypes.cast(rec.strides, ctypes.POINTER(ctypes.c_int64))
    t.byte_offset = 0
    rec.managed = m
    address = ctypes.addressof(m)
    _live[address] = rec
    try:
        return _Capsule_New(address, _NAME_PTR[_N_DLTENSOR_V if versioned else _N_DLTENSOR],
                            _DESTRUCTOR_ADDR)
    except BaseException:
        _live.pop(address, None)
        raise


def _parse_device(device):
    """("cpu", 0) / ("cuda", 1) / (1, 0) / "cpu" / "cuda:1" -> (DLDeviceType, id)."""
    if isinstance(device, str):
        name, _, idx = device.partition(":")
        device = (name, int(idx) if idx else 0)
    name, idx = device
    if isinstance(name, str):
        types = {"cpu": kDLCPU, "cuda": kDLCUDA}
        if name not in types:
            raise BufferError(f"DLPack: unsupported device {name!r} (only 'cpu' and 'cuda')")
        return types[name], int(idx)
    if int(name) not in (kDLCPU, kDLCUDA):
        raise BufferError(f"DLPack: unsupported device {_device_name(int(name))}")
    return int(name), int(idx)


def _device_name(device_type: int) -> str:
    return DEVICE_NAMES.get(device_type, f"unknown device type {device_type}") + \
        f" (DLDeviceType {device_type})"


def _dl_dtype(dtype: np.dtype, where: str):
    dtype = np.dtype(dtype)
    try:
        return _NP_TO_DL[dtype] + (1,)
    except KeyError:
        order = " (non-native byte order)" if not dtype.isnative else ""
        raise TypeError(f"{where}: dtype {dtype}{order} is not supported "
                        f"(supported: {_SUPPORTED_TEXT})") from None


def _element_strides(strides_bytes, itemsize, where):
    out = []
    for s in strides_bytes:
        if s % itemsize:
            raise BufferError(f"{where}: byte strides {tuple(strides_bytes)} are not a multiple "
                              f"of the item size {itemsize}; DLPack counts strides in elements")
        out.append(s // itemsize)
    return tuple(out)


def _c_strides_bytes(shape, itemsize):
    out, acc = [], itemsize
    for n in reversed(shape):
        out.append(acc)
        acc *= max(int(n), 1)
    return tuple(reversed(out))


def _check_stream_arg(stream):
    if stream is None:
        return
    if isinstance(stream, bool) or not isinstance(stream, int):
        raise TypeError(f"DLPack: stream must be None or an int, got {type(stream).__name__}")
    if stream == 0:
        raise ValueError("DLPack: stream=0 is ambiguous on CUDA and disallowed by the protocol "
                         "(1 = legacy default stream, 2 = per-thread default stream)")
    if stream < -1:
        raise ValueError(f"DLPack: invalid stream {stream} (must be >= -1)")


def _numba_default_stream_handle() -> int:
    """The DLPack/CAI value of Numba's default stream: 2 with per-thread default streams."""
    from numba.core import config
    return 2 if getattr(config, "CUDA_PER_THREAD_DEFAULT_STREAM", 0) else 1


def export_sync_plan(stream, producer_stream, default_handle=1):
    """Which producer stream must be synchronised before a CUDA array goes to a consumer that
    will use ``stream`` (the DLPack ``__dlpack__(stream=...)`` value): ``None`` when nothing is
    needed, else the producer stream's handle (1 legacy default, 2 per-thread default, or a
    ``cudaStream_t``). ``producer_stream`` is the exported array's CAI ``stream`` (``None`` or 0:
    the producer's default stream, ``default_handle``)."""
    _check_stream_arg(stream)
    if stream == -1:
        return None
    consumer = 1 if stream is None else stream      # DLPack: None = legacy default stream
    producer = default_handle if not producer_stream else int(producer_stream)
    if consumer == producer and consumer != 2:
        # same stream: CUDA orders the consumer's work after ours. Not for 2: the per-thread
        # default stream of the consumer's thread may not be the producer's.
        return None
    return producer


def _synchronize_stream(handle, device_id=None):
    from numba import config, cuda
    if config.ENABLE_CUDASIM:    # simulator: kernels run synchronously, nothing is pending
        return
    with cuda.gpus[device_id] if device_id is not None else contextlib.nullcontext():
        if handle == 1:
            cuda.legacy_default_stream().synchronize()
        elif handle == 2:
            cuda.per_thread_default_stream().synchronize()
        else:
            cuda.external_stream(handle).synchronize()


def _is_sim_array(obj) -> bool:
    return type(obj).__module__.startswith("numba.cuda.simulator") and hasattr(obj, "_ary")


def _cai_of(obj) -> dict:
    """The object's CAI dict; for a Numba-simulator array (no CAI of its own) a v3 dict built
    from the host array it wraps (the simulator's device pointers are host pointers)."""
    cai = getattr(obj, "__cuda_array_interface__", None)
    if cai is not None:
        return cai
    if _is_sim_array(obj):
        ai = obj._ary.__array_interface__
        return {"shape": ai["shape"], "typestr": ai["typestr"], "data": ai["data"],
                "strides": ai.get("strides"), "version": 3, "stream": None}
    raise TypeError(f"object of type {type(obj).__name__} does not expose "
                    "__cuda_array_interface__")


def to_dlpack(array, device=("cpu", 0), stream=None, max_version=None, dl_device=None,
              copy=None):
    """Export ``array`` as a DLPack PyCapsule (the body of a ``__dlpack__`` method).

    ``device``: ("cpu", 0) for a NumPy array (or anything ``np.asarray`` takes), ("cuda", id)
    for an object exposing ``__cuda_array_interface__`` (or a Numba-simulator array).
    ``stream``, ``max_version``, ``dl_device``, ``copy``: the ``__dlpack__`` arguments.
    ``max_version`` >= (1, 0) gives a versioned capsule (read-only arrays can only go that
    way); ``dl_device`` must be the array's own device; ``copy=True`` copies on the CPU (the
    versioned flag IS_COPIED says so) and is refused on CUDA; ``copy=False`` is always honoured.
    On CUDA the producer's stream is synchronised first unless :func:`export_sync_plan` says
    the consumer's ``stream`` is already ordered after it (or ``stream == -1``)."""
    dev = _parse_device(device)
    versioned = max_version is not None and int(max_version[0]) >= 1
    if dl_device is not None and tuple(int(x) for x in dl_device) != dev:
        raise BufferError(f"to_dlpack: cannot export a {_device_name(dev[0])} array to "
                          f"{_device_name(int(dl_device[0]))} (no cross-device export)")
    flags = 0
    if dev[0] == kDLCPU:
        if stream is not None:
            raise BufferError(f"to_dlpack: stream must be None for CPU arrays, got {stream!r}")
        arr = array if isinstance(array, np.ndarray) else np.asarray(array)
        if copy:
            arr = np.array(arr, copy=True)
            flags |= DLPACK_FLAG_BITMASK_IS_COPIED
        ai = arr.__array_interface__
        data, readonly = ai["data"]
        shape, strides_b, dtype = arr.shape, arr.strides, arr.dtype
        owner = arr
    else:
        if copy:
            raise BufferError("to_dlpack: copy=True is not supported for CUDA arrays "
                              "(copy the tensor first, e.g. .clone())")
        _check_stream_arg(stream)
        cai = _cai_of(array)
        if cai.get("mask") is not None:
            raise BufferError("to_dlpack: masked CUDA arrays are not supported")
        data, readonly = cai["data"]
        shape, dtype = tuple(cai["shape"]), np.dtype(cai["typestr"])
        strides_b = cai.get("strides") or _c_strides_bytes(shape, dtype.itemsize)
        owner = array
        if stream != -1:
            handle = export_sync_plan(stream, cai.get("stream"),
                                      _numba_default_stream_handle())
            if handle is not None:
                _synchronize_stream(handle, dev[1])
    dl_dtype = _dl_dtype(dtype, "to_dlpack")
    strides = _element_strides(strides_b, dtype.itemsize, "to_dlpack")
    if readonly:
        if not versioned:
            raise BufferError("to_dlpack: cannot export a read-only array as an unversioned "
                              "DLPack capsule (it cannot say read-only); ask for "
                              "max_version=(1, 0) or copy the array")
        flags |= DLPACK_FLAG_BITMASK_READ_ONLY
    if int(np.prod(shape, dtype=np.int64)) == 0:
        data = 0   # dlpack.h: the data pointer of a size-zero tensor should be NULL
    return _new_capsule(owner, data, shape, strides, dl_dtype, dev, versioned, flags)


def dlpack_device(array, device=None):
    """``__dlpack_device__``: (DLDeviceType, device id). ``device`` (e.g. ("cuda", 1)) when the
    caller knows it; else NumPy arrays are (1, 0), producers answer for themselves, and CUDA
    arrays report their context's device (Numba) or the current device."""
    if device is not None:
        return _parse_device(device)
    if isinstance(array, np.ndarray):
        return (kDLCPU, 0)
    if _is_sim_array(array):   # before __dlpack_device__, which it forwards to its host array
        return (kDLCUDA, 0)
    f = getattr(array, "__dlpack_device__", None)
    if f is not None:
        t, i = f()
        return (int(t), int(i))
    if hasattr(array, "__cuda_array_interface__"):
        return (kDLCUDA, _cuda_device_id(array))
    raise TypeError(f"dlpack_device: cannot tell the device of a {type(array).__name__}")


def _cuda_device_id(array) -> int:
    try:
        return int(array.gpu_data.context.device.id)   # numba DeviceNDArray
    except AttributeError:
        pass
    from numba import cuda
    return int(cuda.get_current_device().id)


# ------------------------------------------------------------------------------------------
# Import
# ------------------------------------------------------------------------------------------

class DLTensorInfo(NamedTuple):
    """A parsed DLTensor: ``data`` includes ``byte_offset``; ``strides`` in elements."""
    kind: str              # "cpu" or "cuda": how it will be imported
    device_type: int
    device_id: int
    data: int
    shape: tuple
    strides: tuple
    dtype: np.dtype
    readonly: bool
    versioned: bool
    version: tuple         # (major, minor); (0, 0) for an unversioned capsule

    @property
    def strides_bytes(self) -> tuple:
        return tuple(s * self.dtype.itemsize for s in self.strides)


def _dl_dtype_name(code, bits, lanes) -> str:
    base = _CODE_NAMES.get(code)
    if base is None:
        name = f"unknown type code {code} ({bits} bits)"
    elif code <= kDLBool:
        name = f"{base}{bits}" if code != kDLBool else f"bool ({bits} bits)"
    else:
        name = base
    return name if lanes == 1 else f"{name} x{lanes} lanes"


def _describe_dltensor(t: DLTensor, readonly, versioned, version) -> DLTensorInfo:
    dev_type, dev_id = int(t.device.device_type), int(t.device.device_id)
    if dev_type in _HOST_DEVICES:
        kind = "cpu"
    elif dev_type in _CUDA_DEVICES:
        kind = "cuda"
    else:
        raise BufferError(f"from_dlpack: unsupported device {_device_name(dev_type)}: only "
                          "CPU and CUDA tensors can be imported")
    code, bits, lanes = int(t.dtype.code), int(t.dtype.bits), int(t.dtype.lanes)
    dtype = _DL_TO_NP.get((code, bits)) if lanes == 1 else None
    if dtype is None:
        raise TypeError(f"from_dlpack: unsupported dtype {_dl_dtype_name(code, bits, lanes)} "
                        f"(DLDataType code={code}, bits={bits}, lanes={lanes}); "
                        f"supported: {_SUPPORTED_TEXT}")
    ndim = int(t.ndim)
    if ndim < 0:
        raise BufferError(f"from_dlpack: invalid ndim {ndim}")
    if ndim and not t.shape:
        raise BufferError("from_dlpack: NULL shape with ndim > 0")
    shape = tuple(int(t.shape[i]) for i in range(ndim))
    if ndim and t.strides:
        strides = tuple(int(t.strides[i]) for i in range(ndim))
    else:   # NULL strides (allowed before DLPack 1.2): compact row-major
        strides = tuple(s // dtype.itemsize for s in _c_strides_bytes(shape, dtype.itemsize))
    data = (t.data or 0) + int(t.byte_offset)
    return DLTensorInfo(kind, dev_type, dev_id, data, shape, strides, dtype, bool(readonly),
                        versioned, version)


def _capsule_kind(capsule):
    """(versioned, managed address) of an unconsumed DLPack capsule."""
    if not _is_capsule(capsule):
        raise TypeError(f"expected a DLPack PyCapsule, got {type(capsule).__name__}")
    name = _Capsule_GetName(capsule)
    if name in (_N_USED, _N_USED_V):
        raise BufferError("from_dlpack: this DLPack capsule was already consumed "
                          f"(its name is {name.decode()!r})")
    if name not in (_N_DLTENSOR, _N_DLTENSOR_V):
        raise TypeError(f"from_dlpack: not a DLPack capsule (its name is {name!r})")
    return name == _N_DLTENSOR_V, _Capsule_GetPointer(capsule, name)


def describe_capsule(capsule) -> DLTensorInfo:
    """Parse an unconsumed DLPack capsule (versioned or not) without consuming it: device,
    pointer, shape, strides (elements), dtype, read-only flag. Raises ``TypeError`` for
    unsupported dtypes and ``BufferError`` for unsupported devices, consumed capsules and
    DLPack major versions other than 1 (the capsule is left to free itself)."""
    versioned, address = _capsule_kind(capsule)
    if versioned:
        m = DLManagedTensorVersioned.from_address(address)
        version = (int(m.version.major), int(m.version.minor))
        if version[0] != DLPACK_VERSION[0]:
            raise BufferError(f"from_dlpack: DLPack version {version[0]}.{version[1]} is not "
                              f"supported (major version {DLPACK_VERSION[0]} only)")
        readonly = bool(m.flags & DLPACK_FLAG_BITMASK_READ_ONLY)
    else:
        m = DLManagedTensor.from_address(address)
        version, readonly = (0, 0), False
    return _describe_dltensor(m.dl_tensor, readonly, versioned, version)


def interface_from_info(info: DLTensorInfo) -> dict:
    """The version-3 array-interface dict for a parsed DLTensor: ``__array_interface__`` for a
    CPU tensor, ``__cuda_array_interface__`` (with ``stream: None``: the producer has already
    ordered its work before ours in ``__dlpack__(stream=...)``) for a CUDA one."""
    d = {"data": (info.data, info.readonly), "shape": info.shape,
         "strides": info.strides_bytes, "typestr": info.dtype.str, "version": 3}
    if info.kind == "cuda":
        d["stream"] = None
    return d


class _Managed:
    """Owns one consumed DLManagedTensor[Versioned]: calls the producer's deleter when the
    last view of the memory dies."""
    __slots__ = ("_address", "_deleter", "_iface", "__weakref__")

    def __init__(self, address, iface):
        self._address = address
        self._deleter = None   # set once the capsule is consumed
        self._iface = iface

    def release(self, _ours=_DELETER_ADDR, _release=_release_export, _call=_CALL_DELETER):
        address, deleter = self._address, self._deleter
        self._address = self._deleter = None
        if address and deleter:
            if deleter == _ours:   # one of ours: no need to go through C
                _release(address)
            else:
                _call(deleter)(address)

    def __del__(self):
        self.release()


class _HostView(_Managed):
    __slots__ = ()

    @property
    def __array_interface__(self):
        return self._iface


class _DeviceView(_Managed):
    __slots__ = ()

    @property
    def __cuda_array_interface__(self):
        return self._iface


class _SimHostAlias:
    """Simulator only: the host view of a 'device' pointer (simulator pointers are host)."""
    __slots__ = ("__array_interface__", "owner")

    def __init__(self, iface, owner):
        self.__array_interface__ = {k: v for k, v in iface.items() if k != "stream"}
        self.owner = owner


def _consume(capsule, info: DLTensorInfo) -> _Managed:
    versioned, address = _capsule_kind(capsule)
    owner = (_HostView if info.kind == "cpu" else _DeviceView)(address, interface_from_info(info))
    _Capsule_SetName(capsule, _NAME_PTR[_N_USED_V if versioned else _N_USED])
    # from here on the capsule no longer frees the tensor: the owner does
    m = (DLManagedTensorVersioned if versioned else DLManagedTensor).from_address(address)
    owner._deleter = m.deleter
    return owner


def _numba_from_cai(desc, owner, device_id=None, sync=True):
    """A numba device array viewing the memory ``desc`` describes, holding ``owner``."""
    from numba import config, cuda
    shape = tuple(desc["shape"])
    dtype = np.dtype(desc["typestr"])
    if config.ENABLE_CUDASIM:
        host = np.asarray(_SimHostAlias(desc, owner))
        return cuda.devicearray.FakeCUDAArray(host)
    if int(np.prod(shape, dtype=np.int64)) == 0:
        return cuda.device_array(shape, dtype)   # nothing to share (pointer may be NULL)
    if device_id is not None and device_id != cuda.get_current_device().id:
        with cuda.gpus[device_id]:
            return cuda.from_cuda_array_interface(desc, owner=owner, sync=sync)
    return cuda.from_cuda_array_interface(desc, owner=owner, sync=sync)


def from_dlpack(obj, *, stream=None):
    """Import a DLPack producer (``__dlpack__``/``__dlpack_device__``) or a raw capsule, zero
    copy. Returns ``("cpu", np.ndarray)`` or ``("cuda", numba device array)``; either view keeps
    the producer's memory alive and calls its deleter when it dies. Numba device arrays come
    back as they are, and other objects with only ``__cuda_array_interface__`` go through
    :func:`as_cuda_array`.

    ``stream``: for a CUDA producer, the stream our work will run on (passed to
    ``__dlpack__``); default Numba's default stream (1, or 2 with per-thread default streams).
    Asks for a versioned capsule (``max_version``), falling back for older producers."""
    if _is_capsule(obj):
        capsule = obj
    elif _is_sim_array(obj) or getattr(type(obj), "__cuda_ndarray__", False):
        return "cuda", obj    # already a numba (or simulator) device array
    else:
        dlpack = getattr(obj, "__dlpack__", None)
        if dlpack is None:
            if hasattr(obj, "__cuda_array_interface__"):
                return "cuda", as_cuda_array(obj)
            raise TypeError(f"from_dlpack: a {type(obj).__name__} is neither a DLPack "
                            "producer (__dlpack__), a DLPack capsule nor a CUDA array")
        kw = {}
        get_device = getattr(obj, "__dlpack_device__", None)
        if get_device is not None:
            dev_type = int(get_device()[0])
            if dev_type in _CUDA_DEVICES:
                kw["stream"] = stream if stream is not None else _numba_default_stream_handle()
            elif dev_type not in _HOST_DEVICES:
                raise BufferError(f"from_dlpack: unsupported device {_device_name(dev_type)}: "
                                  "only CPU and CUDA tensors can be imported")
        try:
            capsule = dlpack(max_version=DLPACK_VERSION, **kw)
        except TypeError:     # a producer from before DLPack 1.0
            capsule = dlpack(**kw)
    info = describe_capsule(capsule)
    owner = _consume(capsule, info)
    if info.kind == "cpu":
        return "cpu", np.asarray(owner)
    return "cuda", _numba_from_cai(owner._iface, owner, info.device_id, sync=False)


# ------------------------------------------------------------------------------------------
# __cuda_array_interface__
# ------------------------------------------------------------------------------------------

def as_cuda_array(obj, sync=True):
    """Zero-copy numba device array over any CAI (v2/v3) object: CuPy, torch.cuda, Numba.
    Numba device arrays (and simulator arrays) come back as they are. With ``sync`` the v3
    ``stream`` field is synchronised before returning (unless
    ``NUMBA_CUDA_ARRAY_INTERFACE_SYNC=0``). The result holds a reference to ``obj``."""
    if getattr(type(obj), "__cuda_ndarray__", False):
        return obj
    desc = _cai_of(obj)
    if desc.get("mask") is not None:
        raise BufferError("as_cuda_array: masked arrays are not supported")
    _dl_dtype(np.dtype(desc["typestr"]), "as_cuda_array")
    s = desc.get("stream")
    if s is not None and (isinstance(s, bool) or not isinstance(s, int) or s < 1):
        raise ValueError(f"as_cuda_array: invalid __cuda_array_interface__ stream {s!r} "
                         "(None, 1, 2 or a stream handle; 0 is disallowed)")
    return _numba_from_cai(desc, obj, None, sync=sync)


def _device_pointer(dev_array) -> int:
    if isinstance(dev_array, int):
        return dev_array
    if _is_sim_array(dev_array):
        return int(dev_array._ary.__array_interface__["data"][0])
    cai = getattr(dev_array, "__cuda_array_interface__", None)
    if cai is None:
        raise TypeError(f"cuda_array_interface: cannot get a device pointer from a "
                        f"{type(dev_array).__name__}")
    return int(cai["data"][0])


_AUTO = "auto"


def cuda_array_interface(dev_array, shape, dtype, strides_bytes=None, readonly=False, *,
                         offset_bytes=0, stream=_AUTO) -> dict:
    """A ``__cuda_array_interface__`` v3 dict for the view (``shape``, ``dtype``,
    ``strides_bytes``, starting ``offset_bytes`` into ``dev_array``, a numba device array, a
    simulator array, any CAI object or a raw device pointer).

    ``stream``: "auto" (default) reports the stream that may hold pending work on the array --
    its bound stream if it has one, else Numba's default stream (1, or 2 with per-thread
    default streams) -- so that consumers synchronise as CAI v3 asks; ``None`` says no
    synchronisation is needed (only after synchronising); an int is passed through (0 is
    disallowed by the spec). ``strides`` is ``None`` for C-contiguous views, as the spec
    prefers."""
    dtype = np.dtype(dtype)
    _dl_dtype(dtype, "cuda_array_interface")
    shape = tuple(int(n) for n in shape)
    if strides_bytes is not None:
        strides_bytes = tuple(int(s) for s in strides_bytes)
        if strides_bytes == _c_strides_bytes(shape, dtype.itemsize):
            strides_bytes = None
    ptr = _device_pointer(dev_array) + int(offset_bytes)
    if int(np.prod(shape, dtype=np.int64)) == 0:
        ptr = 0   # CAI: "data ... 0 for a zero-size array"
    if stream == _AUTO:
        bound = getattr(dev_array, "stream", 0)
        if _is_sim_array(dev_array):
            stream = None             # the simulator has no asynchronous work
        elif bound:
            stream = int(bound)       # a numba Stream converts to its handle
        else:
            stream = _numba_default_stream_handle()
    elif stream is not None:
        _check_stream_arg(stream)
        if stream == -1:
            raise ValueError("cuda_array_interface: stream=-1 has no meaning in CAI")
    return {"shape": shape, "typestr": dtype.str, "data": (ptr, bool(readonly)),
            "strides": strides_bytes, "version": 3, "stream": stream}
