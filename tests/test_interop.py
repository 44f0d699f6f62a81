"""jitgrad.interop: DLPack export/import (NumPy and PyTorch as the real peers that validate our
ctypes struct layout) and __cuda_array_interface__.

Without a GPU the CUDA paths are exercised with "device" pointers that are host pointers: the
capsule parser is device-agnostic, and under Numba's simulator (conftest) a CUDA import wraps
the memory zero-copy in a simulator array. The tests at the end run on a real GPU only."""
import ctypes
import gc
import os
import subprocess
import sys
import weakref

import numpy as np
import pytest

from jitgrad import interop as I

DTYPES = [np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.float16, np.float32,
          np.float64]


def _sample(dtype, shape=(3, 4)):
    a = np.arange(int(np.prod(shape))).reshape(shape)
    if np.dtype(dtype) == np.bool_:
        return a % 3 == 0
    return a.astype(dtype)


def _ptr(a):
    return a.__array_interface__["data"][0]


def _collect():
    gc.collect(0)   # nothing here makes reference cycles: a young-generation pass is enough


class Exporter:
    """A DLPack producer built on to_dlpack (what Tensor.__dlpack__ does)."""

    def __init__(self, array, device=("cpu", 0)):
        self.array, self.device, self.calls = array, device, []

    def __dlpack__(self, stream=None, max_version=None, dl_device=None, copy=None):
        self.calls.append(dict(stream=stream, max_version=max_version))
        return I.to_dlpack(self.array, device=self.device, stream=stream,
                           max_version=max_version, dl_device=dl_device, copy=copy)

    def __dlpack_device__(self):
        return I.dlpack_device(self.array, self.device)


class HostCAI:
    """A CUDA-array-interface producer whose "device pointer" is host memory."""

    def __init__(self, array, stream=None):
        self.array, self.stream = array, stream

    @property
    def __cuda_array_interface__(self):
        ai = self.array.__array_interface__
        return {"shape": self.array.shape, "typestr": ai["typestr"], "data": ai["data"],
                "strides": ai["strides"], "version": 3, "stream": self.stream}


@pytest.fixture
def sim():
    import numba
    if not numba.config.ENABLE_CUDASIM:
        pytest.skip("host pointers stand in for device pointers only on Numba's CUDA simulator "
                    "(a real GPU runs the test_gpu_* tests instead)")
    from numba import cuda
    return cuda


def _hand_capsule(data, shape, strides, dtype=(2, 32, 1), device=(1, 0), byte_offset=0,
                  versioned=False, version=(1, 0), flags=0):
    """A capsule built from the raw structs (no deleter, no destructor): independent of
    to_dlpack. Returns (capsule, keepalive)."""
    nd = len(shape)
    sh = (ctypes.c_int64 * max(nd, 1))(*shape)
    st = None if strides is None else (ctypes.c_int64 * max(nd, 1))(*strides)
    m = I.DLManagedTensorVersioned() if versioned else I.DLManagedTensor()
    if versioned:
        m.version.major, m.version.minor = version
        m.flags = flags
    t = m.dl_tensor
    t.data = data
    t.device.device_type, t.device.device_id = device
    t.ndim = nd
    t.dtype.code, t.dtype.bits, t.dtype.lanes = dtype
    t.shape = ctypes.cast(sh, ctypes.POINTER(ctypes.c_int64))
    if st is not None:
        t.strides = ctypes.cast(st, ctypes.POINTER(ctypes.c_int64))
    t.byte_offset = byte_offset
    name = I._NAME_PTR[I._N_DLTENSOR_V if versioned else I._N_DLTENSOR]
    cap = I._Capsule_New(ctypes.addressof(m), name, None)
    return cap, (m, sh, st)


# ------------------------------------------------------------------------------------------
# struct layout
# ------------------------------------------------------------------------------------------

def test_struct_layout_matches_dlpack_h():
    assert ctypes.sizeof(I.DLDevice) == 8 and ctypes.sizeof(I.DLDataType) == 4
    assert ctypes.sizeof(I.DLTensor) == 48
    assert I.DLTensor.shape.offset == 24 and I.DLTensor.byte_offset.offset == 40
    assert ctypes.sizeof(I.DLManagedTensor) == 64 and I.DLManagedTensor.deleter.offset == 56
    assert ctypes.sizeof(I.DLManagedTensorVersioned) == 80
    assert I.DLManagedTensorVersioned.flags.offset == 24
    assert I.DLManagedTensorVersioned.dl_tensor.offset == 32


# ------------------------------------------------------------------------------------------
# export, consumed by NumPy and PyTorch
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_numpy_consumes_every_dtype(dtype):
    a = _sample(dtype)
    b = np.from_dlpack(Exporter(a))                 # versioned: NumPy asks for max_version
    assert b.dtype == a.dtype and b.shape == a.shape
    np.testing.assert_array_equal(b, a)
    assert _ptr(b) == _ptr(a)
    kind, d = I.from_dlpack(I.to_dlpack(a))          # the unversioned capsule, our parser
    assert kind == "cpu" and d.dtype == a.dtype and _ptr(d) == _ptr(a)
    np.testing.assert_array_equal(d, a)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_torch_consumes_every_dtype(dtype, torch):
    a = _sample(dtype)
    for t in (torch.from_dlpack(Exporter(a)),                       # versioned
              torch.utils.dlpack.from_dlpack(I.to_dlpack(a))):      # raw unversioned capsule
        assert str(t.dtype) == "torch." + {"bool": "bool"}.get(a.dtype.name, a.dtype.name)
        np.testing.assert_array_equal(t.numpy(), a)
        assert t.data_ptr() == _ptr(a)


def test_export_is_zero_copy_both_ways(torch):
    a = np.zeros((2, 3), np.float32)
    b = np.from_dlpack(Exporter(a))
    t = torch.from_dlpack(Exporter(a))
    b[0, 1] = 5.0
    t[1, 2] = 7.0
    a[0, 0] = -1.0
    assert a[0, 1] == 5.0 and a[1, 2] == 7.0
    assert b[1, 2] == 7.0 and t[0, 0].item() == -1.0 and t[0, 1].item() == 5.0


@pytest.mark.parametrize("view", ["transposed", "step", "step2d", "negative"])
def test_export_non_contiguous(view, torch):
    base = np.arange(60, dtype=np.float64).reshape(6, 10)
    a = {"transposed": base.T, "step": base[1, 1::3], "step2d": base[::2, 7:1:-2][:, ::-1],
         "negative": base[::-1, ::-2]}[view]
    cap_info = I.describe_capsule(I.to_dlpack(a))
    assert cap_info.strides == tuple(s // 8 for s in a.strides)
    assert cap_info.data == _ptr(a) and cap_info.shape == a.shape
    b = np.from_dlpack(Exporter(a))
    np.testing.assert_array_equal(b, a)
    assert b.strides == a.strides and _ptr(b) == _ptr(a)
    kind, c = I.from_dlpack(Exporter(a))
    np.testing.assert_array_equal(c, a)
    assert c.strides == a.strides and _ptr(c) == _ptr(a)
    c[0, ...] = -3.0                                   # writes land in the producer's memory
    assert np.all(a[0, ...] == -3.0)
    if min(a.strides) > 0:                           # torch has no negative strides
        t = torch.from_dlpack(Exporter(a))
        assert t.stride() == tuple(s // 8 for s in a.strides)
        np.testing.assert_array_equal(t.numpy(), a)


@pytest.mark.parametrize("shape", [(), (0,), (2, 0, 3)])
def test_export_zero_dim_and_empty(shape, torch):
    a = np.full(shape, 2.5, np.float32)
    for b in (np.from_dlpack(Exporter(a)), I.from_dlpack(I.to_dlpack(a))[1],
              torch.from_dlpack(Exporter(a)).numpy(),
              torch.utils.dlpack.from_dlpack(I.to_dlpack(a)).numpy()):
        assert b.shape == shape and b.dtype == np.float32
        np.testing.assert_array_equal(b, a)
    info = I.describe_capsule(I.to_dlpack(a))
    assert info.shape == shape
    assert (info.data == 0) == (a.size == 0)        # NULL data for size zero, as dlpack.h asks


def test_readonly_export():
    a = np.arange(4.0)
    a.flags.writeable = False
    with pytest.raises(BufferError, match="read-only"):
        I.to_dlpack(a)                                # unversioned cannot say read-only
    info = I.describe_capsule(I.to_dlpack(a, max_version=(1, 0)))
    assert info.readonly and info.versioned and info.version == I.DLPACK_VERSION
    b = np.from_dlpack(Exporter(a))
    assert not b.flags.writeable and _ptr(b) == _ptr(a)
    kind, c = I.from_dlpack(Exporter(a))
    assert not c.flags.writeable
    np.testing.assert_array_equal(c, a)


def test_export_protocol_arguments():
    a = np.arange(6.0)
    info = I.describe_capsule(I.to_dlpack(a, max_version=(0, 8)))
    assert not info.versioned                         # major < 1: legacy capsule
    b = np.from_dlpack(Exporter(a), copy=True)        # NumPy forwards copy=True
    c = I.from_dlpack(I.to_dlpack(a, copy=True, max_version=(1, 0)))[1]
    for x in (b, c):
        np.testing.assert_array_equal(x, a)
        assert _ptr(x) != _ptr(a)
    cap = I.to_dlpack(a, copy=True, max_version=(1, 0))
    m = I.DLManagedTensorVersioned.from_address(I._Capsule_GetPointer(cap, b"dltensor_versioned"))
    assert m.flags & I.DLPACK_FLAG_BITMASK_IS_COPIED
    with pytest.raises(BufferError, match="cannot export a CPU"):
        I.to_dlpack(a, dl_device=(2, 0))
    assert I.describe_capsule(I.to_dlpack(a, dl_device=(1, 0))).device_type == 1
    with pytest.raises(BufferError, match="stream must be None"):
        I.to_dlpack(a, stream=1)
    with pytest.raises(BufferError, match="unsupported device 'rocm'"):
        I.to_dlpack(a, device=("rocm", 0))
    with pytest.raises(BufferError, match="ROCM"):
        I.to_dlpack(a, device=(10, 0))
    assert I.describe_capsule(I.to_dlpack(a, device="cpu")).device_type == 1


# ------------------------------------------------------------------------------------------
# lifetimes
# ------------------------------------------------------------------------------------------

def test_unconsumed_capsule_releases_producer():
    n = len(I._live)
    a = np.arange(5.0)
    w = weakref.ref(a)
    cap = I.to_dlpack(a)
    del a
    _collect()
    assert w() is not None and len(I._live) == n + 1
    del cap
    _collect()
    assert w() is None and len(I._live) == n


@pytest.mark.parametrize("consumer", ["numpy", "torch", "ours", "ours_versioned"])
def test_consumer_keeps_producer_alive(consumer, request):
    n = len(I._live)
    a = np.arange(5.0)
    w = weakref.ref(a)
    if consumer == "numpy":
        view = np.from_dlpack(Exporter(a))
    elif consumer == "torch":
        view = request.getfixturevalue("torch").from_dlpack(Exporter(a))
    else:
        versioned = consumer == "ours_versioned"
        view = I.from_dlpack(I.to_dlpack(a, max_version=(1, 0) if versioned else None))[1]
    del a
    _collect()
    assert w() is not None and len(I._live) == n + 1
    assert float(view[3]) == 3.0
    del view
    _collect()
    assert w() is None and len(I._live) == n


def test_import_calls_producer_deleter_when_view_dies():
    a = np.arange(4.0)
    w = weakref.ref(a)
    kind, v = I.from_dlpack(a)                        # NumPy's own versioned capsule
    assert kind == "cpu" and _ptr(v) == _ptr(a)
    d = v[1:]                                         # a view of the view keeps it alive too
    del a, v
    _collect()
    assert w() is not None
    np.testing.assert_array_equal(d, [1.0, 2.0, 3.0])
    del d
    _collect()
    assert w() is None


def test_rejected_capsule_still_frees_itself():
    a = np.zeros(3, np.complex64)
    w = weakref.ref(a)
    cap = a.__dlpack__()
    del a
    with pytest.raises(TypeError, match="complex64"):
        I.from_dlpack(cap)
    assert I._Capsule_GetName(cap) == b"dltensor"     # not consumed
    del cap
    _collect()
    assert w() is None


def test_foreign_consumer_rejecting_our_capsule_with_error_set(monkeypatch):
    """np.from_dlpack of a CUDA-device capsule: NumPy drops our capsule while its error is set.
    The record is still freed; the original error goes to sys.unraisablehook."""
    seen = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: seen.append(u.exc_value))
    n = len(I._live)
    a = np.arange(3.0)
    w = weakref.ref(a)
    with pytest.raises(Exception):
        np.from_dlpack(_CudaCapsuleProducer(a))
    del a
    _collect()
    assert w() is None and len(I._live) == n
    assert all("device" in str(e).lower() for e in seen)   # NumPy's own error, if reported


class _CudaCapsuleProducer:
    """Claims to be on the CPU but hands NumPy a CUDA capsule (NumPy rejects it)."""

    def __init__(self, a):
        self.a = a

    def __dlpack__(self, **kw):
        return I.to_dlpack(HostCAI(self.a), device=("cuda", 0), stream=-1)

    def __dlpack_device__(self):
        return (1, 0)


# ------------------------------------------------------------------------------------------
# import from NumPy / PyTorch producers
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["bool", "int8", "int16", "int32", "int64", "uint8",
                                   "float16", "float32", "float64"])
def test_torch_producer_every_dtype(dtype, torch):
    t = torch.arange(12).reshape(3, 4)
    t = (t % 3 == 0) if dtype == "bool" else t.to(getattr(torch, dtype))
    for src in (t, torch.utils.dlpack.to_dlpack(t)):  # protocol (versioned) and raw capsule
        kind, a = I.from_dlpack(src)
        assert kind == "cpu" and a.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(a, t.numpy())
        assert _ptr(a) == t.data_ptr()


def test_torch_producer_zero_copy_strides_and_lifetime(torch):
    t = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    view = t.t()[::2]                                  # strides (1, 12) in elements
    kind, a = I.from_dlpack(view)
    assert a.shape == (3, 4) and a.strides == (8, 24)
    np.testing.assert_array_equal(a, view.numpy())
    t[0, 2] = 100.0
    assert a[1, 0] == 100.0                            # torch write seen by us
    a[2, 3] = -1.0
    assert t[3, 4].item() == -1.0                      # our write seen by torch
    expected = view.numpy().copy()
    del t, view
    _collect()                                         # our view keeps torch's storage alive
    np.testing.assert_array_equal(a, expected)
    kind, s = I.from_dlpack(torch.tensor(3.5, dtype=torch.float64))
    assert s.shape == () and s[()] == 3.5
    kind, e = I.from_dlpack(torch.empty(0, 5))
    assert e.shape == (0, 5)


def test_numpy_producer_versioned_and_legacy():
    a = np.arange(10, dtype=np.int16)[::3]
    for cap in (a.__dlpack__(), a.__dlpack__(max_version=(1, 0))):
        info = I.describe_capsule(cap)
        assert info.versioned == (I._Capsule_GetName(cap) == b"dltensor_versioned")
        kind, b = I.from_dlpack(cap)
        np.testing.assert_array_equal(b, a)
        assert b.strides == a.strides and _ptr(b) == _ptr(a)
        assert I._Capsule_GetName(cap).startswith(b"used_")
        with pytest.raises(BufferError, match="already consumed"):
            I.from_dlpack(cap)
    r = np.arange(3.0)
    r.flags.writeable = False
    assert not I.from_dlpack(r)[1].flags.writeable


def test_from_dlpack_falls_back_for_old_producers():
    class Old:
        def __init__(self, a):
            self.a = a

        def __dlpack__(self, stream=None):           # no max_version
            return I.to_dlpack(self.a)

        def __dlpack_device__(self):
            return (1, 0)

    a = np.arange(3.0)
    kind, b = I.from_dlpack(Old(a))
    assert _ptr(b) == _ptr(a)


# ------------------------------------------------------------------------------------------
# the parser, on hand-built capsules (the CUDA import path without a GPU)
# ------------------------------------------------------------------------------------------

def test_parser_on_hand_built_cuda_capsule():
    host = np.arange(24, dtype=np.float32)
    cap, keep = _hand_capsule(_ptr(host), (2, 3), (8, 2), device=(I.kDLCUDA, 3),
                              byte_offset=8)
    info = I.describe_capsule(cap)
    assert info.kind == "cuda" and (info.device_type, info.device_id) == (2, 3)
    assert info.data == _ptr(host) + 8 and info.shape == (2, 3) and info.strides == (8, 2)
    assert info.strides_bytes == (32, 8) and info.dtype == np.float32
    assert not info.readonly and not info.versioned
    cai = I.interface_from_info(info)
    assert cai == {"data": (_ptr(host) + 8, False), "shape": (2, 3), "strides": (32, 8),
                   "typestr": "<f4", "version": 3, "stream": None}
    assert I._Capsule_GetName(cap) == b"dltensor"     # describing does not consume


def test_parser_null_strides_versioned_flags_and_host_devices():
    host = np.arange(6, dtype=np.int64)
    cap, keep = _hand_capsule(_ptr(host), (2, 3), None, dtype=(0, 64, 1), versioned=True,
                              version=(1, 3), flags=I.DLPACK_FLAG_BITMASK_READ_ONLY)
    info = I.describe_capsule(cap)
    assert info.strides == (3, 1) and info.version == (1, 3) and info.readonly
    assert info.kind == "cpu" and info.dtype == np.int64
    assert I.interface_from_info(info)["data"] == (_ptr(host), True)
    cap, keep = _hand_capsule(_ptr(host), (6,), (1,), dtype=(0, 64, 1),
                              device=(I.kDLCUDAHost, 0))
    kind, a = I.from_dlpack(cap)                       # pinned host memory: a NumPy view
    assert kind == "cpu" and _ptr(a) == _ptr(host)
    np.testing.assert_array_equal(a, host)
    cap, keep = _hand_capsule(_ptr(host), (6,), (1,), device=(I.kDLCUDAManaged, 0))
    assert I.describe_capsule(cap).kind == "cuda"


def test_parser_rejects_other_major_versions_without_consuming():
    host = np.zeros(2, np.float32)
    cap, keep = _hand_capsule(_ptr(host), (2,), (1,), versioned=True, version=(2, 0))
    with pytest.raises(BufferError, match="version 2.0"):
        I.describe_capsule(cap)
    assert I._Capsule_GetName(cap) == b"dltensor_versioned"


@pytest.mark.parametrize("dtype,name", [((5, 64, 1), "complex64"), ((5, 128, 1), "complex128"),
                                        ((4, 16, 1), "bfloat16"), ((1, 16, 1), "uint16"),
                                        ((1, 64, 1), "uint64"), ((10, 8, 1), "float8_e4m3fn"),
                                        ((2, 32, 4), "float32 x4 lanes"),
                                        ((3, 64, 1), "opaque_handle"),
                                        ((99, 8, 1), "unknown type code 99")])
def test_unsupported_dtype_on_import(dtype, name):
    host = np.zeros(8, np.uint8)
    cap, keep = _hand_capsule(_ptr(host), (1,), (1,), dtype=dtype)
    with pytest.raises(TypeError, match="unsupported dtype " + name):
        I.from_dlpack(cap)
    assert I._Capsule_GetName(cap) == b"dltensor"


@pytest.mark.parametrize("device,name", [(10, "ROCM"), (8, "Metal"), (4, "OpenCL"),
                                         (14, "OneAPI"), (99, "unknown device type 99")])
def test_unsupported_device_on_import(device, name):
    host = np.zeros(2, np.float32)
    cap, keep = _hand_capsule(_ptr(host), (2,), (1,), device=(device, 0))
    with pytest.raises(BufferError, match="unsupported device " + name):
        I.from_dlpack(cap)

    class Producer:
        def __dlpack__(self, **kw):
            raise AssertionError("must not be asked for a capsule")

        def __dlpack_device__(self):
            return (device, 0)

    with pytest.raises(BufferError, match=name):
        I.from_dlpack(Producer())


def test_unsupported_dtypes_from_real_producers(torch):
    with pytest.raises(TypeError, match="complex64"):
        I.from_dlpack(torch.zeros(2, dtype=torch.complex64))
    with pytest.raises(TypeError, match="bfloat16"):
        I.from_dlpack(torch.zeros(2, dtype=torch.bfloat16))
    with pytest.raises(TypeError, match="uint32"):
        I.from_dlpack(np.zeros(2, np.uint32))
    with pytest.raises(TypeError, match="from_dlpack: a int"):
        I.from_dlpack(3)
    with pytest.raises(TypeError, match="not a DLPack capsule"):
        I.from_dlpack(I._Capsule_New(8, I._static_name(b"other")[1], None))


@pytest.mark.parametrize("dtype,text", [(np.complex64, "complex64"), (np.uint16, "uint16"),
                                        (np.dtype(">f4"), "non-native byte order"),
                                        (np.dtype("U3"), "<U3")])
def test_unsupported_dtype_on_export(dtype, text):
    with pytest.raises(TypeError, match="to_dlpack: dtype .*" + text):
        I.to_dlpack(np.zeros(2, dtype))


def test_export_rejects_strides_that_are_not_whole_elements():
    rec = np.zeros(4, dtype=[("a", np.float32), ("b", np.int8)])["a"]
    with pytest.raises(BufferError, match="multiple of the item size 4"):
        I.to_dlpack(rec)


# ------------------------------------------------------------------------------------------
# CUDA export (host pointers standing in), streams
# ------------------------------------------------------------------------------------------

def test_cuda_export_from_cai_object(monkeypatch):
    synced = []
    monkeypatch.setattr(I, "_synchronize_stream", lambda h, d=None: synced.append((h, d)))
    host = np.arange(12, dtype=np.int32).reshape(3, 4)[:, 1:]
    src = HostCAI(host)
    cap = I.to_dlpack(src, device=("cuda", 1), stream=-1)
    info = I.describe_capsule(cap)
    assert (info.kind, info.device_type, info.device_id) == ("cuda", 2, 1)
    assert info.data == _ptr(host) and info.shape == (3, 3) and info.strides == (4, 1)
    assert info.dtype == np.int32 and synced == []
    I.to_dlpack(src, device=("cuda", 1))               # consumer on the legacy default stream
    I.to_dlpack(src, device=("cuda", 1), stream=1)     # == producer (numba default): no sync
    assert synced == []
    I.to_dlpack(src, device=("cuda", 1), stream=77)    # another stream: sync the producer's
    I.to_dlpack(HostCAI(host, stream=55), device=("cuda", 1))
    assert synced == [(1, 1), (55, 1)]
    contiguous = HostCAI(np.zeros((2, 3), np.float16))
    assert I.describe_capsule(I.to_dlpack(contiguous, device="cuda", stream=-1)).strides == (3, 1)
    with pytest.raises(BufferError, match="copy=True"):
        I.to_dlpack(src, device=("cuda", 0), copy=True)
    with pytest.raises(ValueError, match="stream=0"):
        I.to_dlpack(src, device=("cuda", 0), stream=0)
    with pytest.raises(TypeError, match="does not expose __cuda_array_interface__"):
        I.to_dlpack(np.zeros(2), device=("cuda", 0))


@pytest.mark.parametrize("stream,producer,default,expected", [
    (-1, None, 1, None), (-1, 9, 1, None),
    (None, None, 1, None), (1, None, 1, None), (1, 0, 1, None),   # both legacy default stream
    (None, None, 2, 2), (2, None, 2, 2), (2, None, 1, 1),         # per-thread: never assumed
    (7, None, 1, 1), (None, 9, 1, 9), (9, 9, 1, None), (8, 9, 1, 9),
])
def test_export_sync_plan(stream, producer, default, expected):
    assert I.export_sync_plan(stream, producer, default) == expected


@pytest.mark.parametrize("stream,exc", [(0, ValueError), (-2, ValueError), ("1", TypeError),
                                        (True, TypeError)])
def test_export_sync_plan_rejects_bad_streams(stream, exc):
    with pytest.raises(exc):
        I.export_sync_plan(stream, None)


def test_cuda_import_on_simulator(sim, monkeypatch):
    host = np.arange(12, dtype=np.float64).reshape(3, 4).copy()   # owns its memory
    w = weakref.ref(host)
    n = len(I._live)
    prod = Exporter(HostCAI(host[:, ::2]), ("cuda", 0))
    kind, d = I.from_dlpack(prod)
    assert kind == "cuda" and isinstance(d, sim.devicearray.FakeCUDAArray)
    assert prod.calls == [dict(stream=1, max_version=I.DLPACK_VERSION)]   # numba default
    np.testing.assert_array_equal(d.copy_to_host(), host[:, ::2])
    d[2, 1] = -5.0                                     # zero copy: lands in the producer
    assert host[2, 2] == -5.0
    I.from_dlpack(prod, stream=99)
    assert prod.calls[-1]["stream"] == 99
    del host, prod
    _collect()
    assert w() is not None and len(I._live) == n + 1
    del d
    _collect()
    assert w() is None and len(I._live) == n


def test_simulator_arrays(sim):
    dev = sim.to_device(np.arange(6.0))
    assert I.dlpack_device(dev) == (2, 0)
    assert I.from_dlpack(dev) == ("cuda", dev)
    assert I.as_cuda_array(dev) is dev
    kind, d = I.from_dlpack(Exporter(dev, ("cuda", 0)))  # the Tensor.__dlpack__ path
    d[1] = 42.0
    assert dev.copy_to_host()[1] == 42.0
    cai = I.cuda_array_interface(dev, (2,), np.float64, (16,), offset_bytes=8)
    assert cai == {"shape": (2,), "typestr": "<f8", "data": (_ptr(dev._ary) + 8, False),
                   "strides": (16,), "version": 3, "stream": None}
    view = I.as_cuda_array(HostCAI(np.asarray(I._SimHostAlias(cai, dev))))
    np.testing.assert_array_equal(view.copy_to_host(), [42.0, 3.0])


def test_as_cuda_array_on_simulator(sim):
    host = np.arange(8, dtype=np.int8).reshape(2, 4)[:, 1::2]
    obj = HostCAI(host)
    d = I.as_cuda_array(obj)
    np.testing.assert_array_equal(d.copy_to_host(), host)
    d[0, 0] = 99
    assert host[0, 0] == 99
    assert I.from_dlpack(obj)[0] == "cuda"             # CAI-only objects go through it too
    with pytest.raises(TypeError, match="complex128"):
        I.as_cuda_array(HostCAI(np.zeros(2, np.complex128)))
    with pytest.raises(ValueError, match="0 is disallowed"):
        I.as_cuda_array(HostCAI(host, stream=0))
    masked = HostCAI(host)
    masked.__class__ = type("Masked", (HostCAI,), {"__cuda_array_interface__": property(
        lambda s: dict(HostCAI.__cuda_array_interface__.fget(s), mask=object()))})
    with pytest.raises(BufferError, match="masked"):
        I.as_cuda_array(masked)
    with pytest.raises(TypeError, match="does not expose"):
        I.as_cuda_array(np.zeros(2))


def test_cuda_array_interface_dict():
    host = np.zeros(16, np.float32)
    p = _ptr(host)
    cai = I.cuda_array_interface(p, (2, 3), np.float32, (12, 4))
    assert cai == {"shape": (2, 3), "typestr": "<f4", "data": (p, False), "strides": None,
                   "version": 3, "stream": 1}          # C-contiguous: strides None
    cai = I.cuda_array_interface(HostCAI(host), (3, 2), "float32", (4, 12), readonly=True,
                                 offset_bytes=4, stream=None)
    assert cai["strides"] == (4, 12) and cai["data"] == (p + 4, True) and cai["stream"] is None
    assert I.cuda_array_interface(p, (0, 3), np.float32, stream=5)["data"] == (0, False)
    assert I.cuda_array_interface(p, (4,), np.float32, stream=5)["stream"] == 5

    class Bound:                                       # a numba array bound to a stream
        stream = 1234
        __cuda_array_interface__ = {"data": (p, False)}

    assert I.cuda_array_interface(Bound(), (4,), np.float32)["stream"] == 1234
    with pytest.raises(ValueError):
        I.cuda_array_interface(p, (4,), np.float32, stream=0)
    with pytest.raises(TypeError, match="complex64"):
        I.cuda_array_interface(p, (4,), np.complex64)


def test_dlpack_device(torch):
    assert I.dlpack_device(np.zeros(2)) == (1, 0)
    assert I.dlpack_device(torch.zeros(2)) == (1, 0)
    assert I.dlpack_device(np.zeros(2), ("cuda", 2)) == (2, 2)
    assert I.dlpack_device(None, "cuda:1") == (2, 1)
    with pytest.raises(TypeError):
        I.dlpack_device(object())


def test_cpu_paths_import_nothing_cuda():
    code = (
        "import importlib.util, sys, numpy as np\n"
        f"spec = importlib.util.spec_from_file_location('interop', {I.__file__!r})\n"
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
        "a = np.arange(6.0).reshape(2, 3)\n"
        "b = np.from_dlpack(type('E', (), {'__dlpack__': lambda s, **k: m.to_dlpack(a, **k),"
        " '__dlpack_device__': lambda s: m.dlpack_device(a)})())\n"
        "k, c = m.from_dlpack(a.T)\n"
        "assert (b == a).all() and (c == a.T).all() and k == 'cpu'\n"
        "print(sorted(n for n in sys.modules if n.startswith('numba')))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, env=dict(os.environ, PYTHONPATH=""))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


# ------------------------------------------------------------------------------------------
# real GPU only (skipped without one)
# ------------------------------------------------------------------------------------------

@pytest.fixture
def gpu():
    import numba
    if numba.config.ENABLE_CUDASIM:
        pytest.skip("needs a real GPU (running on Numba's CUDA simulator)")
    from numba import cuda
    if not cuda.is_available():
        pytest.skip("no CUDA GPU available")
    return cuda


def test_gpu_dlpack_round_trip(gpu):
    host = np.arange(24, dtype=np.float32).reshape(4, 6)
    dev = gpu.to_device(host)
    view = dev[:, ::2]
    n = len(I._live)
    cap = I.to_dlpack(view, device=("cuda", dev.gpu_data.context.device.id))
    info = I.describe_capsule(cap)
    assert info.kind == "cuda" and info.strides == (6, 2) and info.shape == (4, 3)
    assert info.data == view.__cuda_array_interface__["data"][0]
    kind, d = I.from_dlpack(cap)
    assert kind == "cuda"
    np.testing.assert_array_equal(d.copy_to_host(), host[:, ::2])
    d[0, 1] = -1.0
    gpu.synchronize()
    assert dev.copy_to_host()[0, 2] == -1.0
    del d, cap
    _collect()
    assert len(I._live) == n


def test_gpu_as_cuda_array_and_interface(gpu):
    dev = gpu.to_device(np.arange(10, dtype=np.int64))
    assert I.as_cuda_array(dev) is dev
    cai = I.cuda_array_interface(dev, (4,), np.int64, (16,), offset_bytes=8)
    assert cai["data"][0] == dev.__cuda_array_interface__["data"][0] + 8
    holder = type("H", (), {"__cuda_array_interface__": cai})()
    v = I.as_cuda_array(holder)
    np.testing.assert_array_equal(v.copy_to_host(), [1, 3, 5, 7])
    assert I.dlpack_device(dev)[0] == 2
