"""_tensor: the Tensor class (its op methods declared in _methods.TensorMethods), elementwise
op application (kernels generated from ops.ELEMENTWISE) and the generic application of
structural records (ops.Structural: array forward, one VJP run on arrays or Tensors); the
``jitgrad.tensor`` factory (the module is ``_tensor`` so that name is only the function)."""
from __future__ import annotations

import functools
from math import prod
import numbers
import re
import weakref

import numpy as np

from . import _engine, codegen, dtypes, interop, lazy
from . import _state as grad_mode
from ._engine import Node, grad_edge, hooks_of, node_class, run_backward
from ._format import format_tensor
from ._methods import IMPL, TensorMethods, implement
from ._state import enable_grad
from .backends import ARRAY_TYPES, BACKENDS, backend_of, cpu, device_of
from .backends import cuda as cb  # (numba.cuda itself is imported only when a GPU op runs)
from .backends.cuda import DeviceArray
from .utils.hooks import RemovableHandle
from . import structural as _V
from .ops import ELEMENTWISE, FLOAT_MATH, Elementwise, structural

_STATE = grad_mode.STATE


class Size(tuple):
    """Shape tuple that prints like torch.Size."""

    def __repr__(self):
        return f"jitgrad.Size({list(self)})"

    def numel(self):
        n = 1
        for s in self:
            n *= s
        return n


class device:
    """A device handle like torch.device: ``cpu`` or ``cuda`` / ``cuda:0`` (one GPU: index 0)."""

    __slots__ = ("type", "index")

    def __init__(self, spec="cpu", index=None):
        if isinstance(spec, device):
            kind, index = spec.type, spec.index if index is None else index
        elif isinstance(spec, int) and not isinstance(spec, bool):
            kind, index = "cuda", spec
        else:
            text = str(spec)
            kind, _, idx = text.partition(":")
            if idx:
                if not idx.isdigit():
                    raise RuntimeError(f"Invalid device string: {text!r}")
                index = int(idx)
        if kind not in BACKENDS:
            raise RuntimeError(f"jitgrad: unknown device {spec!r}; expected one of "
                               f"{', '.join(repr(k) for k in BACKENDS)}")
        if kind != "cpu" and index not in (None, 0):
            raise RuntimeError(f"jitgrad: {kind.upper()} device {index} is not available "
                               f"(jitgrad uses one device of each kind, {kind}:0)")
        self.type = kind
        self.index = index if kind != "cpu" else None

    def __repr__(self):
        if self.index is None:
            return f"device(type='{self.type}')"
        return f"device(type='{self.type}', index={self.index})"

    def __str__(self):
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __eq__(self, other):
        if isinstance(other, str):
            try:
                other = device(other)
            except RuntimeError:
                return False
        return isinstance(other, device) and (other.type, other.index) == (self.type, self.index)

    def __hash__(self):
        return hash((self.type, self.index))


_DEVICES = {k: device(k, None if k == "cpu" else 0) for k in BACKENDS}  # key -> Tensor.device


def check_device(dev) -> str:
    """Validate a ``device=`` argument (None: the CPU); its key in ``backends.BACKENDS``. The
    device must be usable (the backend's ``require`` raises a clear error otherwise)."""
    if dev is None:
        dev = _STATE.default_device  # (set_default_device; thread-local, like torch's)
        if dev is None:
            return "cpu"
    key = device(dev).type
    BACKENDS[key].require()
    return key


_is_cuda = _engine._is_cuda
device_key = _engine.device_key


def _common_device(ops, name) -> str:
    """The device key of the Tensor operands; a 0-d CPU tensor may join tensors on another
    device (like torch); any other mix raises torch's error."""
    dev = None
    for o in ops:
        if isinstance(o, Tensor):
            k = device_key(o)
            if k == "cpu" and o._meta[0] == ():
                continue
            if dev is None:
                dev = k
            elif k != dev:
                a, b = [d if d == "cpu" else f"{d}:0"  # (one device of each kind: index 0)
                        for d in sorted((dev, k), key=lambda d: d == "cpu")]
                raise RuntimeError(f"{name}: Expected all tensors to be on the same device, but "
                                   f"found at least two devices, {a} and {b}!")
    return dev or "cpu"


def _to_device_operands(ops, dev):
    """Move the 0-d CPU tensors among ops that meet tensors on device ``dev`` there."""
    return tuple(o.to(dev) if isinstance(o, Tensor) and device_key(o) != dev else o
                 for o in ops)


class Tensor(TensorMethods):
    """A NumPy array with autograd metadata; ``_data`` is always an ``np.ndarray``."""

    __slots__ = ("_arr", "_lazy", "_rg", "grad", "grad_fn", "_vc", "_base", "_accum",
                 "_views", "__weakref__")
    __array_priority__ = 1000  # make ndarray <op> Tensor defer to Tensor's reflected operators

    def __init__(self, data, dtype=None, requires_grad=False):
        t = tensor(data, dtype=dtype, requires_grad=requires_grad)
        self._arr, self._lazy, self._rg, self.grad, self.grad_fn = t._arr, None, t._rg, None, None
        self._vc, self._base, self._accum, self._views = [0], None, None, None

    @classmethod
    def _make(cls, data: np.ndarray, rg: bool = False, fn=None, base=None):
        t = object.__new__(cls)
        t._arr = data
        t._lazy = None
        t._rg = rg
        t.grad = None
        t.grad_fn = fn
        if base is None:
            t._vc = [0]
            t._base = None
        else:  # a view shares the version counter of the tensor it looks into
            t._vc = base._vc
            t._base = base if base._base is None else base._base
        t._accum = None
        t._views = None
        return t

    @property
    def _data(self) -> np.ndarray:
        """The values as an ndarray; a lazy (fused, not yet computed) tensor is realised here."""
        a = self._arr
        if a is None:
            a = lazy.realize(self)
        return a

    # --- metadata (never realises a lazy tensor) ------------------------------------------
    @property
    def _meta(self):
        """(shape, numpy dtype) without computing anything."""
        a = self._arr
        if a is None:
            lz = self._lazy
            if lz is not None:
                return lz.shape, lz.dtype
            a = self._arr  # (settled by another thread just now: _arr is set before _lazy goes)
        return a.shape, a.dtype

    @property
    def shape(self) -> Size:
        return Size(self._meta[0])

    def size(self, dim=None):
        shape = self._meta[0]
        if dim is None:
            return Size(shape)
        return shape[_norm_dim(dim, len(shape))]

    def dim(self) -> int:
        return len(self._meta[0])

    ndim = property(dim)

    def numel(self) -> int:
        n = 1
        for s in self._meta[0]:
            n *= s
        return n

    nelement = numel

    @property
    def dtype(self) -> dtypes.DType:
        return dtypes.from_numpy(self._meta[1])

    @property
    def device(self):
        return _DEVICES[device_key(self)]

    @property
    def is_cuda(self):
        return _is_cuda(self)

    @property
    def _host(self) -> np.ndarray:
        """The values as a host ndarray (a copy from the device for a GPU tensor)."""
        a = self._data
        return a if type(a) is np.ndarray else backend_of(a).to_host(a)

    @property
    def __cuda_array_interface__(self):
        if not _is_cuda(self):
            raise AttributeError("__cuda_array_interface__ is only defined for CUDA tensors; "
                                 "this one is on the cpu")
        if self._rg:
            raise RuntimeError("Can't export a tensor that requires grad through "
                               "__cuda_array_interface__; use tensor.detach() first")
        return self._data.__cuda_array_interface__

    def is_floating_point(self):
        return self._meta[1].kind == "f"

    def element_size(self):
        return self._meta[1].itemsize

    @property
    def requires_grad(self) -> bool:
        return self._rg

    @requires_grad.setter
    def requires_grad(self, value):
        self.requires_grad_(value)

    def requires_grad_(self, requires_grad=True):
        requires_grad = bool(requires_grad)
        if self.grad_fn is not None and not requires_grad:
            raise RuntimeError("you can only change requires_grad flags of leaf variables. If you "
                               "want to use a computed variable in a subgraph that doesn't require "
                               "differentiation use var_no_grad = var.detach().")
        if requires_grad and self._meta[1].kind != "f":
            raise RuntimeError("only Tensors of floating point dtype can require gradients "
                               f"(got {self.dtype})")
        self._rg = requires_grad
        return self

    @property
    def is_leaf(self) -> bool:
        return self.grad_fn is None

    @property
    def _version(self) -> int:
        return self._vc[0]

    @property
    def data(self) -> "Tensor":
        """A detached tensor sharing storage (like torch's ``.data``)."""
        return Tensor._make(self._data, base=self)

    @data.setter
    def data(self, value):
        lazy.flush()
        self._arr = value._data if isinstance(value, Tensor) else np.asarray(value)
        self._lazy = None

    def retain_grad(self):
        """Keep this non-leaf's gradient in ``.grad`` (a leaf's is kept anyway). Filled after
        the tensor's hooks ran, so it holds what they returned, like torch."""
        if not self._rg:
            raise RuntimeError("can't retain_grad on Tensor that has requires_grad=False")
        if self.grad_fn is not None:
            hooks_of(self.grad_fn).retain = weakref.ref(self)

    @property
    def retains_grad(self):
        fn = self.grad_fn
        return fn is not None and fn.retained is not None and fn.retained.retain is not None

    def _hooks(self, what):
        if not self._rg:
            raise RuntimeError("cannot register a hook on a tensor that doesn't require "
                               "gradient")
        fn = self.grad_fn
        if fn is None:  # a leaf: the hooks live on its AccumulateGrad, which it now holds
            fn = grad_edge(self)
            self._accum = fn
        elif what == "post":
            raise RuntimeError("post accumulate grad hooks cannot be registered on non-leaf "
                               "tensors")
        return hooks_of(fn)

    def register_hook(self, hook):
        """``hook(grad)`` runs when the gradient with respect to this tensor is computed,
        before it is accumulated into a leaf's ``.grad`` or passed on; a returned Tensor (same
        shape, dtype and device) replaces the gradient. Hooks run in registration order.
        Returns a handle whose ``remove()`` takes the hook out."""
        hs = self._hooks("pre")
        h = RemovableHandle(hs.pre)
        hs.pre[h.id] = hook
        return h

    def register_post_accumulate_grad_hook(self, hook):
        """``hook(tensor)`` runs after backward has updated this leaf's ``.grad`` (not for
        ``autograd.grad``, which leaves ``.grad`` alone). Returns a removable handle."""
        hs = self._hooks("post")
        h = RemovableHandle(hs.post)
        hs.post[h.id] = hook
        return h

    # --- conversion ------------------------------------------------------------------------
    def _no_host_view(self):
        if device_key(self) != "cpu":
            raise TypeError(f"can't convert {self.device} device type tensor to numpy. Use "
                            "Tensor.cpu() to copy the tensor to host memory first.")

    def numpy(self, force=False):
        if _STATE.recorder is not None:  # (jitgrad.compile: a graph break)
            _STATE.recorder.observe("numpy()")
        if self._rg and not force:
            raise RuntimeError("Can't call numpy() on Tensor that requires grad. Use "
                               "tensor.detach().numpy() instead.")
        if force and device_key(self) != "cpu":
            return self._host
        self._no_host_view()
        return self._data

    def __array__(self, dtype=None, copy=None):
        """NumPy's view of the tensor (shared memory, like torch). Refused for a tensor that
        requires grad, like torch: a writable alias would let NumPy change values autograd has
        saved, corrupting gradients without any error."""
        if _STATE.recorder is not None:  # (jitgrad.compile: a graph break)
            _STATE.recorder.observe("__array__")
        if self._rg:
            raise RuntimeError("Can't call numpy() on Tensor that requires grad. Use "
                               "tensor.detach().numpy() instead.")
        self._no_host_view()
        if dtype is not None and np.dtype(dtype) != self._data.dtype:
            return self._data.astype(dtype)
        return self._data.copy() if copy else self._data

    def item(self):
        if _STATE.recorder is not None:  # (jitgrad.compile: a graph break)
            _STATE.recorder.observe("item()")
        if self.numel() != 1:
            raise RuntimeError(f"a Tensor with {self.numel()} elements cannot be converted "
                               "to Scalar")
        return self._host.reshape(-1)[0].item()

    def tolist(self):
        if _STATE.recorder is not None:  # (jitgrad.compile: a graph break)
            _STATE.recorder.observe("tolist()")
        return self._host.tolist()

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __bool__(self):
        if _STATE.recorder is not None:  # (jitgrad.compile: a graph break)
            _STATE.recorder.observe("bool()")
        if self.numel() != 1:
            raise RuntimeError(f"Boolean value of Tensor with {self.numel()} elements is "
                               "ambiguous")
        return bool(self._host.reshape(-1)[0])

    def __index__(self):
        if self._meta[1].kind not in "iub" or self.numel() != 1:
            raise TypeError("only integer tensors of a single element can be converted to an "
                            "index")
        return int(self.item())

    def __len__(self):
        shape = self._meta[0]
        if not shape:
            raise TypeError("len() of a 0-d tensor")
        return shape[0]

    def __iter__(self):
        if self._data.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self._data.shape[0]))

    def __hash__(self):
        return id(self)

    def __repr__(self):
        if _STATE.recorder is not None:  # (jitgrad.compile: a graph break)
            _STATE.recorder.observe("printing")
        return format_tensor(self)

    def __format__(self, spec):
        if self._data.ndim == 0 and spec:
            return format(self.item(), spec)
        return repr(self)

    def __reduce_ex__(self, proto):
        return (_rebuild, (self._host, self._rg, str(self.device)))

    def detach(self) -> "Tensor":
        lz = self._lazy  # (read first: another thread may settle self meanwhile)
        if lz is not None and lz.value is None and self._arr is None:  # stays pending
            t = lazy.make_lazy(Tensor, lz)
            t._vc, t._base = self._vc, self if self._base is None else self._base
            return t
        return Tensor._make(self._data, base=self)

    def detach_(self):
        self.grad_fn = None
        self._rg = False
        return self

    def to(self, *args, dtype=None, device=None, copy=False, non_blocking=False, **kwargs):
        for a in args:
            if isinstance(a, (dtypes.DType, dtypes.UnsupportedDType, type, np.dtype)) or \
                    (isinstance(a, str) and (a.split(".")[-1] in dtypes._BY_NAME or
                                             a.split(".")[-1] in dtypes._UNSUPPORTED)) or \
                    (type(a).__name__ == "dtype" and str(a).startswith("torch.")):
                dtype = a
            elif isinstance(a, Tensor):
                dtype = a.dtype
                device = a.device
            else:
                device = a
        t = self
        if device is not None:
            dev = check_device(device)
            if dev != device_key(self):
                t = apply_fn(_ToDevice, (self,), device=dev)
                copy = False
        if dtype is None:
            return t.clone() if copy else t
        d = dtypes.from_any(dtype)
        if d.np == t._meta[1] and not copy:
            return t
        return apply_fn(_ToCopy, (t,), dtype=d)

    def cpu(self):
        return self.to("cpu")

    def cuda(self, device=None, non_blocking=False, **kwargs):
        return self.to("cuda" if device is None else device)

    def type(self, dtype=None):
        if dtype is None:
            return f"jitgrad.{type(self).__name__}"
        return self.to(dtype)

    def float(self):
        return self.to(dtypes.float32)

    def double(self):
        return self.to(dtypes.float64)

    def long(self):
        return self.to(dtypes.int64)

    def int(self):
        return self.to(dtypes.int32)

    def bool(self):
        return self.to(dtypes.bool_)

    def half(self):
        return self.to(dtypes.float16)  # (raises: no float16 in jitgrad, see dtypes)

    def bfloat16(self):
        return self.to(dtypes.bfloat16)  # (raises)

    def clone(self) -> "Tensor":
        return apply_fn(_Clone, (self,), order="K")  # torch's preserve_format: same strides

    def contiguous(self) -> "Tensor":
        if self._data.flags.c_contiguous:
            return self
        return apply_fn(_Clone, (self,), order="C")

    def is_contiguous(self):
        return self._data.flags.c_contiguous

    def __dlpack__(self, stream=None, max_version=None, dl_device=None, copy=None):
        if self._rg:
            raise RuntimeError("Can't export tensors that require gradient, use "
                               "tensor.detach()")
        a = self._data
        dev = ("cuda", 0) if type(a) is DeviceArray else ("cpu", 0)
        if type(a) is DeviceArray:
            # the capsule must keep the DeviceArray (the pool block's owner) alive, not only the
            # numba array: the simulator's arrays have no __cuda_array_interface__ to read
            a = a.dev if cb.simulated() else a
        return interop.to_dlpack(a, device=dev,
                                 stream=stream, max_version=max_version, dl_device=dl_device,
                                 copy=copy)

    def __dlpack_device__(self):
        return (2, 0) if _is_cuda(self) else (1, 0)

    def backward(self, gradient=None, retain_graph=None, create_graph=False, inputs=None):
        """Accumulate d(self)/d(leaf) into the leaves' ``.grad`` (``autograd.backward``)."""
        IMPL.backward(self, gradient, retain_graph, create_graph, inputs=inputs)

    # -- operators: implementations in functional_ops (through _methods.IMPL); an operand
    # of another type gives NotImplemented, so Python tries its reflected operator
    def __add__(self, other):
        t = type(other)
        if t is Tensor or t is float or t is int or isinstance(other, _OPERANDS):
            return IMPL.add(self, other)
        return NotImplemented

    __radd__ = __add__

    def __sub__(self, other):
        t = type(other)
        if t is Tensor or t is float or t is int or isinstance(other, _OPERANDS):
            return IMPL.sub(self, other)
        return NotImplemented

    def __rsub__(self, other):
        t = type(other)
        if t is Tensor or t is float or t is int or isinstance(other, _OPERANDS):
            return IMPL.sub(other, self)
        return NotImplemented

    def __mul__(self, other):
        t = type(other)
        if t is Tensor or t is float or t is int or isinstance(other, _OPERANDS):
            return IMPL.mul(self, other)
        return NotImplemented

    __rmul__ = __mul__

    def __truediv__(self, other):
        t = type(other)
        if t is Tensor or t is float or t is int or isinstance(other, _OPERANDS):
            return IMPL.div(self, other)
        return NotImplemented

    def __rtruediv__(self, other):
        t = type(other)
        if t is Tensor or t is float or t is int or isinstance(other, _OPERANDS):
            return IMPL.div(other, self)
        return NotImplemented

    def __pow__(self, other):
        t = type(other)
        if t is Tensor or t is float or t is int or isinstance(other, _OPERANDS):
            return IMPL.pow(self, other)
        return NotImplemented

    def __rpow__(self, other):
        t = type(other)
        if t is Tensor or t is float or t is int or isinstance(other, _OPERANDS):
            return IMPL.pow(other, self)
        return NotImplemented

    def __matmul__(self, other):
        t = type(other)
        if t is Tensor or t is float or t is int or isinstance(other, _OPERANDS):
            return IMPL.matmul(self, other)
        return NotImplemented

    def __rmatmul__(self, other):
        t = type(other)
        if t is Tensor or t is float or t is int or isinstance(other, _OPERANDS):
            return IMPL.matmul(other, self)
        return NotImplemented

    def __lt__(self, other):
        t = type(other)
        if t is Tensor or t is float or t is int or isinstance(other, _OPERANDS):
            return IMPL.lt(self, other)
        return NotImplemented

    def __le__(self, other):
        t = type(other)
        if t is Tensor or t is float or t is int or isinstance(other, _OPERANDS):
            return IMPL.le(self, other)
        return NotImplemented

    def __gt__(self, other):
        t = type(other)
        if t is Tensor or t is float or t is int or isinstance(other, _OPERANDS):
            return IMPL.gt(self, other)
        return NotImplemented

    def __ge__(self, other):
        t = type(other)
        if t is Tensor or t is float or t is int or isinstance(other, _OPERANDS):
            return IMPL.ge(self, other)
        return NotImplemented

    def __eq__(self, other):
        t = type(other)
        if t is Tensor or t is float or t is int or isinstance(other, _OPERANDS):
            return IMPL.eq(self, other)
        return NotImplemented

    def __ne__(self, other):
        t = type(other)
        if t is Tensor or t is float or t is int or isinstance(other, _OPERANDS):
            return IMPL.ne(self, other)
        return NotImplemented

    def __iadd__(self, other):
        return IMPL.add_(self, other)

    def __isub__(self, other):
        return IMPL.sub_(self, other)

    def __imul__(self, other):
        return IMPL.mul_(self, other)

    def __itruediv__(self, other):
        return IMPL.div_(self, other)

    def __neg__(self):
        return IMPL.neg(self)

    def __pos__(self):
        return self

    def __abs__(self):
        return IMPL.abs(self)

    # % // & | ^ << >> (integer semantics as torch's: see functional_ops.remainder, ...)
    def __mod__(self, other):
        if isinstance(other, _OPERANDS):
            return IMPL.remainder(self, other)
        return NotImplemented

    def __rmod__(self, other):
        if isinstance(other, _OPERANDS):
            return IMPL.remainder(other, self)
        return NotImplemented

    def __imod__(self, other):
        return IMPL.remainder_(self, other)

    def __floordiv__(self, other):
        if isinstance(other, _OPERANDS):
            return IMPL.floor_divide(self, other)
        return NotImplemented

    def __rfloordiv__(self, other):
        if isinstance(other, _OPERANDS):
            return IMPL.floor_divide(other, self)
        return NotImplemented

    def __ifloordiv__(self, other):
        return IMPL.floor_divide_(self, other)

    def __and__(self, other):
        if isinstance(other, _OPERANDS):
            return IMPL.bitwise_and(self, other)
        return NotImplemented

    def __rand__(self, other):
        if isinstance(other, _OPERANDS):
            return IMPL.bitwise_and(other, self)
        return NotImplemented

    def __iand__(self, other):
        return IMPL.bitwise_and_(self, other)

    def __or__(self, other):
        if isinstance(other, _OPERANDS):
            return IMPL.bitwise_or(self, other)
        return NotImplemented

    def __ror__(self, other):
        if isinstance(other, _OPERANDS):
            return IMPL.bitwise_or(other, self)
        return NotImplemented

    def __ior__(self, other):
        return IMPL.bitwise_or_(self, other)

    def __xor__(self, other):
        if isinstance(other, _OPERANDS):
            return IMPL.bitwise_xor(self, other)
        return NotImplemented

    def __rxor__(self, other):
        if isinstance(other, _OPERANDS):
            return IMPL.bitwise_xor(other, self)
        return NotImplemented

    def __ixor__(self, other):
        return IMPL.bitwise_xor_(self, other)

    def __lshift__(self, other):
        if isinstance(other, _OPERANDS):
            return IMPL.bitwise_left_shift(self, other)
        return NotImplemented

    def __rlshift__(self, other):
        if isinstance(other, _OPERANDS):
            return IMPL.bitwise_left_shift(other, self)
        return NotImplemented

    def __ilshift__(self, other):
        return IMPL.bitwise_left_shift_(self, other)

    def __rshift__(self, other):
        if isinstance(other, _OPERANDS):
            return IMPL.bitwise_right_shift(self, other)
        return NotImplemented

    def __rrshift__(self, other):
        if isinstance(other, _OPERANDS):
            return IMPL.bitwise_right_shift(other, self)
        return NotImplemented

    def __irshift__(self, other):
        return IMPL.bitwise_right_shift_(self, other)

    def __rdiv__(self, other):  # (torch keeps the Python 2 name)
        return self.__rtruediv__(other)

    def __invert__(self):
        return IMPL._invert(self)

    def __getitem__(self, index):
        return IMPL.getitem(self, index)

    def __setitem__(self, index, value):
        return IMPL.setitem(self, index, value)


_OPERANDS = (Tensor, numbers.Number, np.ndarray, np.generic)  # what the operators accept
_engine.register_tensor_class(Tensor)


def _rebuild(data, rg, dev="cpu"):
    arr = np.array(data)
    if dev != "cpu":  # uploaded before requires_grad is set: the result is a leaf, like torch
        arr = cb.to_device(arr)
    return Tensor._make(arr, rg)


def _norm_dim(dim, ndim, op="dim"):
    n = max(ndim, 1)
    if not -n <= dim < n:
        raise IndexError(f"Dimension out of range (expected to be in range of [{-n}, {n - 1}], "
                         f"but got {dim})")
    return dim % n if ndim else 0


_BROADCAST_CACHE: dict = {}


def broadcast_shapes(*shapes):
    """torch's broadcast of shapes (tuples); recent results are cached, since eager code
    broadcasts the same few shapes again and again."""
    try:
        return _BROADCAST_CACHE[shapes]
    except KeyError:
        pass
    except TypeError:  # an unhashable shape (a list): not cached
        return _broadcast_shapes(shapes)
    res = _broadcast_shapes(shapes)
    if len(_BROADCAST_CACHE) >= 1024:
        _BROADCAST_CACHE.clear()
    _BROADCAST_CACHE[shapes] = res
    return res


def _broadcast_shapes(shapes):
    nd = max((len(s) for s in shapes), default=0)
    out = []
    for d in range(nd):
        size = 1
        for s in shapes:
            k = d - (nd - len(s))
            if k < 0:
                continue
            v = s[k]
            if v != 1:
                if size != 1 and size != v:
                    raise RuntimeError(
                        "The size of tensor a must match the size of tensor b at non-singleton "
                        f"dimension {d}: shapes {' and '.join(str(tuple(x)) for x in shapes)} "
                        "cannot be broadcast together")
                size = v
        out.append(size)
    return tuple(out)


# =============================================================================================
# Elementwise application


class ElementwiseNode(Node):
    """Backward of one elementwise primitive: one generated VJP kernel computes the gradients of
    all inputs that need one; broadcast inputs are then summed back to their shapes.

    ``operands`` keeps only what the VJP rules read (other Tensor slots are None); ``metas``
    keeps every operand's (shape, dtype) for the un-broadcast."""

    __slots__ = ("row", "operands", "metas", "out_data", "out_shadow", "need", "out_shape",
                 "cdt", "reduce", "n_red")

    def apply(self, g, create_graph):
        self.check_saved()
        f = _STATE.fusion  # (this thread's fusion switch; None: the process-wide one)
        fused = (lazy.ENABLED if f is None else f) and (self.n_red >= lazy.FUSE_MIN or
                                                        g._arr is None or f is lazy.FUSE_ALL)
        if create_graph or fused or device_key(g) != "cpu":
            # rules on (lazy) Tensors: differentiable, and with fusion the backward chain fuses
            return self._apply_tensor(g, create_graph)
        row, ops, cdt, out_shape = self.row, self.operands, self.cdt, self.out_shape
        gd = g._arr
        if gd is None:
            gd = g._data
        if self.reduce == "mean":  # g is the gradient of the mean of the elementwise result
            with np.errstate(invalid="ignore", divide="ignore"):
                gd = gd / self.n_red
        rows, xs, reads_out = _vjp_rows(row, self.need)
        vals = [ops[p] for p in xs] if xs else []
        if reads_out:
            outd = self.out_data
            if outd is None:
                # the op was recorded lazily (an operand was pending) but its gradient arrived
                # concrete and small: the rules read the output, so compute it now
                outd = self.out_shadow._data
            vals.append(outd)
        vals.append(gd)  # (a sum/mean's scalar gradient is read as a size-1 leaf)
        outs = lazy.run_now(rows, vals, out_shape, self.n_red, cdt.np, cdt.np)
        res = [None] * len(ops)
        for o, i in zip(outs, self.need):
            shape, dt = self.metas[i]
            if shape != out_shape:
                o = _sum_to_array(o, shape)
            if o.dtype != dt:
                o = o.astype(dt)
            res[i] = Tensor._make(o)
        return res

    def _apply_tensor(self, g, create_graph=True):
        """The same rules evaluated on Tensors: differentiable again under create_graph, and
        recorded lazily (fused into one backward kernel) when fusion is on."""
        row, ops = self.row, self.operands
        if self.reduce is not None:
            g = (g / self.n_red if self.reduce == "mean" else g).expand(self.out_shape)
        out = None
        if self.out_data is not None or self.out_shadow is not None:
            # like torch's saved ``result``: the output rebuilt around its own grad_fn (this
            # node), so a double backward flows through it without a reference cycle at rest
            if self.out_shadow is not None and not create_graph:
                out = self.out_shadow
            else:
                arr = self.out_data if self.out_data is not None else self.out_shadow._data
                out = Tensor._make(arr, True, self) if create_graph else Tensor._make(arr)
        res = [None] * len(ops)
        for i in self.need:
            gi = row.vjps[i](TENSOR_MATH, *ops, out, g)
            shape, dt = self.metas[i]
            if not isinstance(gi, Tensor):
                gi = full(self.out_shape, float(gi), dtypes.from_numpy(dt), device=g.device)
            gi = sum_to(gi, shape)
            if gi._meta[1] != dt:
                gi = gi.to(dtypes.from_numpy(dt))
            res[i] = gi
        return res

    def release(self):
        self.chain = None
        if self.saved_versions is not None or self.out_shadow is not None:
            self.released = True
            self.saved_versions = None
            self.out_data = self.out_shadow = None
            self.operands = tuple(None if isinstance(o, Tensor) else o for o in self.operands)


class _VjpRow:
    """The VJP of input ``i`` of an elementwise row, as a row of its own: a record that reads
    the operands a node saved (``reads``: positions among x0.., out) and g, planned and
    rendered like any forward row. A node's first-order backward is these records realised
    at once (lazy.run_now), one kernel for all inputs that need a gradient."""

    __slots__ = ("name", "arity", "fwd", "bool_inputs")

    def __init__(self, row, i, reads):
        vjp, n = row.vjps[i], row.arity
        self.name = f"{row.name}_vjp{i}_" + "".join(f"x{p}" if p < n else "out" for p in reads)
        self.arity = len(reads) + 1
        self.bool_inputs = tuple([j for j, p in enumerate(reads) if p in row.bool_inputs])

        def fwd(m, *args):
            full = [None] * (n + 1)
            for p, v in zip(reads, args):
                full[p] = v
            return vjp(m, *full, args[-1])
        self.fwd = fwd


_VJP_ROWS: dict = {}


def _vjp_rows(row, need):
    """(VJP rows of the inputs ``need``, the operands they read, whether they read out)."""
    r = _VJP_ROWS.get((row, need))
    if r is None:
        keep, keep_out = _save_plan(row, need)
        xs = tuple([k for k in range(row.arity) if keep[k]])
        rows = tuple([_VjpRow(row, i, xs + ((row.arity,) if keep_out else ())) for i in need])
        r = _VJP_ROWS[(row, need)] = (rows, xs, keep_out)
    return r


def _result_dtype(row, ops):
    dims, zero, scalars = [], [], []
    for k, o in enumerate(ops):
        if k in row.bool_inputs:
            continue
        if isinstance(o, Tensor):
            shape, dt = o._meta
            (dims if shape else zero).append(dtypes.from_numpy(dt))
        else:
            scalars.append(o)
    cdt = dtypes.result_type(dims, zero, scalars)
    if cdt is None:  # every operand is a bool input (logical ops)
        cdt = dtypes.bool_
    if row.dtype_rule == "float" and not cdt.is_floating_point:
        cdt = dtypes.get_default_dtype()
    return cdt


def _save_plan(row: Elementwise, need: tuple):
    """(keep operand k?, save out?) for the VJPs of ``need``, cached on the row."""
    plan = row._saves.get(need)
    if plan is None:
        names = set()
        for i in need:
            names |= row.saves(i)
        plan = (tuple(f"x{k}" in names for k in range(row.arity)), "out" in names)
        row._saves[need] = plan
    return plan


def apply_elementwise(row: Elementwise, ops: tuple, grad_fn: str | None = None,
                      reduce: str | None = None, out: np.ndarray | None = None,
                      into: np.ndarray | None = None) -> Tensor:
    """Run one elementwise primitive on Tensors/Python scalars (broadcasting) and record it.

    With fusion on the op is only recorded (a lazy tensor, see lazy.py); otherwise its kernel
    runs now. reduce='sum'|'mean' folds a full reduction into the same node (losses).
    ``into``: an in-place op's target, written by the kernel when the op runs now and the
    result has its shape and dtype (the caller checked that no other operand overlaps it)."""
    st = _STATE  # (this thread's runtime state: tracer, fusion switch)
    if st.tracer is not None:  # autograd.functional is tracing: it runs and records the op
        return st.tracer.elementwise(row, ops, grad_fn, reduce, out)
    cdt = None
    if len(ops) == 1 and type(ops[0]) is Tensor and not row.bool_inputs:  # unary: its dtype
        cdt = dtypes.from_numpy(ops[0]._meta[1])
        if row.dtype_rule == "float" and cdt.category != 2:
            cdt = dtypes.get_default_dtype()
    elif len(ops) == 2 and not row.bool_inputs:  # fast paths of the promotion rule
        t0, t1 = type(ops[0]), type(ops[1])
        if t0 is Tensor and t1 is Tensor:
            if ops[0]._meta[1] is ops[1]._meta[1]:
                cdt = dtypes.from_numpy(ops[0]._meta[1])
                if row.dtype_rule == "float" and cdt.category != 2:
                    cdt = dtypes.get_default_dtype()
        elif (t0 is Tensor and (t1 is float or t1 is int)) or \
                (t1 is Tensor and (t0 is float or t0 is int)):
            d = (ops[0] if t0 is Tensor else ops[1])._meta[1]
            if d.kind == "f":  # a float tensor with a Python number keeps its dtype
                cdt = dtypes.from_numpy(d)
    if cdt is None:
        for o in ops:
            if not isinstance(o, (Tensor, numbers.Number)):
                raise TypeError(f"{row.name}(): expected Tensor or number operands, got "
                                f"{type(o).__name__}")
        cdt = _result_dtype(row, ops)
    pending = False
    for o in ops:  # a pending or device operand: check where the op runs
        if isinstance(o, Tensor) and (o._arr is None or type(o._arr) is not np.ndarray):
            dev = _common_device(ops, row.name)
            if dev != "cpu":
                return _apply_elementwise_device(row, ops, cdt, grad_fn, reduce, out, dev)
            pending = True  # (a CPU operand still to be computed)
            break
    out_shape = None
    for o in ops:
        if isinstance(o, Tensor):
            s = o._meta[0]
            if out_shape is None:
                out_shape = s
            elif s != out_shape:
                out_shape = broadcast_shapes(*[o._meta[0] for o in ops
                                               if isinstance(o, Tensor)])
                break
    n = prod(out_shape)
    fusion = st.fusion  # (None: the process-wide switch)
    # recorded lazily when the result is large enough to pay for planning, or when an operand
    # is pending anyway (so a chain never breaks at a small op). Not an in-place op over
    # computed operands (``into``): it is computed at once either way, and the eager kernel
    # skips the fused planning (p -= g on 65,536 floats: 8 us against 24); jitgrad.compile's
    # recording (FUSE_ALL) keeps it a fused group.
    if (lazy.ENABLED if fusion is None else fusion) and out is None and \
            (into is None or fusion is lazy.FUSE_ALL) and \
            (n >= lazy.FUSE_MIN or pending or fusion is lazy.FUSE_ALL):
        res, full_lz = _record_lazy(row, ops, cdt, out_shape, n, reduce)
        return _record_node(row, ops, res, None, full_lz, out_shape, n, cdt, grad_fn, reduce)
    # eager: the op is a record realised at once (lazy.run_now: the fused path's planner and
    # codegen, its plan cached by signature)
    odt = np.dtype(np.bool_) if row.dtype_rule == "compare" else cdt.np
    if out is None and into is not None and (reduce is not None or into.shape != out_shape
                                             or into.dtype != odt):
        into = None  # the caller copies the result into its target
    elif out is not None:
        into = out
    keep_full = reduce is None or out is not None
    if not keep_full and _STATE.enabled and row.dtype_rule != "compare":
        need = tuple([k for k, o in enumerate(ops) if isinstance(o, Tensor) and o._rg])
        keep_full = bool(need) and _save_plan(row, need)[1]  # the VJPs read the output
    res = lazy.run_now((row,), ops, out_shape, n, odt, cdt.np, reduce, keep_full, into)
    full_out = res[0] if keep_full else None
    res = Tensor._make(res[-1])
    return _record_node(row, ops, res, full_out, None, out_shape, n, cdt, grad_fn, reduce)


def _apply_elementwise_device(row, ops, cdt, grad_fn, reduce, out, dev):
    """On an accelerator every elementwise op is recorded (lazy.py) and runs as a generated
    kernel of that backend when a value is needed: fusion is what makes small GPU ops cheap.
    With fusion off, each op runs at once (one kernel per op)."""
    if out is not None:
        raise NotImplementedError(f"{row.name}: out= is not supported for {dev} tensors yet")
    ops = _to_device_operands(ops, dev)
    out_shape = broadcast_shapes(*[o._meta[0] for o in ops if isinstance(o, Tensor)])
    n = prod(out_shape)
    res, full_lz = _record_lazy(row, ops, cdt, out_shape, n, reduce)
    if not lazy.is_fusion_enabled():
        lazy.realize_many([res])
    return _record_node(row, ops, res, None, full_lz, out_shape, n, cdt, grad_fn, reduce)


def _record_lazy(row, ops, cdt, out_shape, n, reduce):
    """Record the op as a lazy tensor (plus a lazy sum/mean when ``reduce``)."""
    first = None
    for o in ops:
        lz = lazy._pending_node(o)
        # a pending reduction is a group boundary; a deep operand ends a segment
        if lz is not None and (lz.row is None or lz.depth >= lazy.current_depth_limit()):
            first = [o] if first is None else first + [o]
    if first is not None:
        if _STATE.enabled and lazy.CHAIN_DERIVATIVES:
            first = first + _chain_derivatives(first)
        lazy.realize_many(first)
    out_np = np.dtype(np.bool_) if row.dtype_rule == "compare" else cdt.np
    lz = lazy.Lazy(row, ops, out_shape, out_np, cdt.np)
    res = lazy.make_lazy(Tensor, lz)
    if reduce is None:
        return res, lz
    red = lazy.Lazy(None, (res,), (), out_np, cdt.np, axes=tuple(range(len(out_shape))),
                    scale=n if reduce == "mean" else None)
    return lazy.make_lazy(Tensor, red), lz


_OPND = r"(\w+|T\([^()]*\))"  # (a name, or a typed constant such as T(0.5))
_LIN_FORMS = re.compile(rf"{_OPND} \* {_OPND}|{_OPND} / {_OPND}|-(\w+)")


@functools.cache
def _vjp_scales_g(row, i) -> bool:
    """Whether input ``i``'s VJP rule is ``g`` times a factor that does not read ``g`` (``g``
    flows only through ``*``, a numerator of ``/`` and unary ``-``): then a chain of such rules
    is ``g`` times the product of their factors, whatever ``g`` is. A rule that selects on
    ``g`` or its operands (relu, abs, clamp, maximum, pow at 0, xlogy) gives 0 where the
    product would give ``inf * 0``: it is not a link."""
    try:
        em, res = codegen.render_body(row.vjps[i], row.arity, True)
    except Exception:  # (a rule the symbolic renderer cannot follow)
        return False
    lin = {"g"}
    for line in em.lines:
        target, _, expr = line.partition(" = ")
        if not lin.intersection(codegen._NAME.findall(expr)):
            continue
        m = _LIN_FORMS.fullmatch(expr)
        if m is None or not (
                (m.group(1) is not None and (m.group(1) in lin) != (m.group(2) in lin)) or
                (m.group(3) is not None and m.group(3) in lin and m.group(4) not in lin) or
                m.group(5) is not None):
            return False
        lin.add(target)
    return isinstance(res, codegen.Sym) and res.name in lin


def _chain_derivatives(roots) -> list:
    """At a depth cut (the roots are about to be computed and stored), each root that tops a
    unary elementwise chain -- every node's one differentiable operand the previous node's
    output, same shape and dtype, no reduction, no hooks -- gets the chain's derivative
    d(root)/d(start) as a pending value computed by the same kernel: the nodes' VJPs run now
    on a seed of ones, top down, so the kernel evaluates each sin and the cos its VJP needs
    together. Returns those values (to compute with the roots); the top node keeps them
    (_engine.ChainDerivative) and the sweep multiplies instead of recomputing the segment
    (W5, a chain of k ops: per op at k = 1000 no slower than at k = 100)."""
    out = []
    for o in roots:
        lz = o._lazy
        if lz.row is None or lz.device != "cpu" or (o.grad_fn is not None and
                                                    o.grad_fn.chain is not None):
            continue  # (a sum; a GPU value; a root listed twice, y * y)
        nodes, t = [], o
        while True:
            n = t.grad_fn
            if not isinstance(n, ElementwiseNode) or n.reduce is not None or \
                    len(n.need) != 1 or n.retained is not None or n.released:
                break
            p = n.need[0]
            shape, dt = n.metas[p]
            tl = t._lazy
            if shape != n.out_shape or dt != n.cdt.np or tl is None or tl.dtype != dt or \
                    not _vjp_scales_g(n.row, p):
                break
            nodes.append(n)
            u = tl.operands[p]
            if u._arr is not None or u._lazy is None or u._lazy.value is not None or \
                    u.grad_fn is not n.next_edges[p]:
                break  # (a computed operand: the chain's start)
            t = u
        if len(nodes) < 2:
            continue
        # (no cut inside the chain's VJPs)
        with grad_mode.no_grad(), lazy.backward_depth(lazy.MAX_GROUP):
            g = Tensor._make(np.broadcast_to(np.ones((), lz.dtype), lz.shape))
            if _STATE.recorder is not None:  # (jitgrad.compile: a constant of the program)
                _STATE.recorder.const(g._arr)
            for n in nodes:
                g = n._apply_tensor(g, False)[n.need[0]]
        bottom = nodes[-1]
        nodes[0].chain = _engine.ChainDerivative(g, bottom.next_edges[bottom.need[0]],
                                                  tuple(nodes[1:]))
        out.append(g)
    return out


def _record_node(row, ops, res, full_out, full_lz, out_shape, n, cdt, grad_fn, reduce):
    """Attach the elementwise node (saving what the VJPs read) when grad is being recorded."""
    if not _STATE.enabled or row.dtype_rule == "compare":
        return res
    # (one pass over the operands: this runs for every recorded op, ~1/3 of its Python time)
    need, edges, metas = [], [], []
    for k, o in enumerate(ops):
        if type(o) is Tensor or isinstance(o, Tensor):
            if o._rg:
                need.append(k)
                edges.append(o.grad_fn or grad_edge(o))
            else:
                edges.append(None)
            metas.append(o._meta)
        else:
            edges.append(None)
            metas.append(None)
    if not need:
        return res
    need = tuple(need)
    name = grad_fn or row.grad_fn
    cls = row._node_cls.get(name)
    if cls is None:
        cls = row._node_cls[name] = node_class(ElementwiseNode, name)
    node = cls(tuple(edges))
    node.row, node.need, node.out_shape, node.cdt = row, need, out_shape, cdt
    node.reduce = reduce
    node.n_red = n
    keep, keep_out = _save_plan(row, need)
    node.out_data = full_out if keep_out else None
    # lazy: a second tensor on the same record stands for the output (no cycle through res)
    node.out_shadow = lazy.make_lazy(Tensor, full_lz) if keep_out and full_lz is not None \
        else None
    node.metas = tuple(metas)
    operands, sv = [], []
    for o, k, m in zip(ops, keep, metas):
        if m is None:
            operands.append(o)
        elif k:
            operands.append(o)
            sv.append((o._vc, o._vc[0], o))
        else:
            operands.append(None)
    node.operands = tuple(operands)
    if keep_out and reduce is None:  # the output is saved too: version-check it like torch
        sv.append((res._vc, 0, node.out_shadow if full_out is None else Tensor._make(full_out)))
    node.saved_versions = tuple(sv) if sv else None
    res._rg = True
    res.grad_fn = node
    return res


def ew(name, *ops, grad_fn=None):
    return apply_elementwise(ELEMENTWISE[name], ops, grad_fn)


# =============================================================================================
# Structural primitives: array forward, Tensor-level backward (so higher order comes free)


class Ctx:
    """What a structural op's forward leaves for its backward."""

    def save_for_backward(self, *tensors):
        self.saved_tensors = tensors


class FunctionNode(Node):
    """Backward of one structural primitive: its record's ``vjp`` on arrays (plain first-order
    backward on the CPU) or on Tensors (``create_graph``, GPU)."""
    __slots__ = ("fn", "ctx", "inputs")

    def apply(self, g, create_graph):
        if self.saved_versions is not None or self.released:
            self.check_saved()
        fn = self.fn
        if not create_graph and fn.arrays and type(g._data) is np.ndarray:
            return [None if a is None else Tensor._make(
                        a if isinstance(a, ARRAY_TYPES) else np.asarray(a))
                    for a in fn.vjp(_V.ARRAYS, self.ctx, g._arr)]
        grads = fn.vjp(_V.TENSORS, self.ctx, g)
        if not isinstance(grads, tuple):
            grads = (grads,)
        return grads

    def release(self):
        if self.saved_versions is not None:
            self.released = True
            self.saved_versions = None
            self.ctx = None


def apply_fn(fn, inputs: tuple, grad_fn: str | None = None, view_of=None, save=False, ctx=None,
             **params):
    """Run structural primitive ``fn`` (an ops.Structural record): its forward on the inputs'
    arrays, and a ``FunctionNode`` whose backward is the record's ``vjp``. ``save`` keeps the
    inputs for backward (version-checked); ``view_of`` marks the result as a view sharing that
    tensor's version counter. The params are left on ``ctx`` by name for the rules."""
    if _STATE.tracer is not None:  # autograd.functional is tracing: it runs and records the op
        return _STATE.tracer.function(fn, inputs, grad_fn, view_of, save, ctx, params)
    if _STATE.recorder is not None:  # jitgrad.compile is recording: it runs and logs the op
        return _STATE.recorder.function(fn, inputs, grad_fn, view_of, save, ctx, params)
    if ctx is None:
        ctx = Ctx()
    ctx.__dict__.update(params)
    dev = "cpu"
    for t in inputs:
        if device_key(t) != "cpu":
            dev = _common_device(inputs, fn.grad_fn)
            break
    if dev != "cpu":
        forward = fn.forwards.get(dev)
        if forward is None:
            raise NotImplementedError(
                f"jitgrad: {fn.name} ({fn.grad_fn}) is not implemented for "
                f"{dev} tensors yet; move the tensor to the CPU with .cpu() first")
        inputs = _to_device_operands(inputs, dev)
    if fn.lazy_forward is not None and lazy.is_fusion_enabled() and \
            any(t._arr is None for t in inputs):
        ctx.shapes = [t._meta[0] for t in inputs]
        res = fn.lazy_forward(ctx, *inputs, **params)
    elif dev != "cpu":
        ctx.shapes = [t._meta[0] for t in inputs]
        res = Tensor._make(forward(ctx, *[t._data for t in inputs], **params), base=view_of)
    else:
        ctx.shapes = [t._data.shape for t in inputs]
        out = fn.forward(ctx, *[t._data for t in inputs], **params)
        if type(out) is not np.ndarray and type(out) is not DeviceArray:  # NumPy: 0-d scalars
            out = np.asarray(out)
        res = Tensor._make(out, base=view_of)
    if view_of is not None:
        _register_view(res)
    if _STATE.enabled and fn.differentiable:
        for t in inputs:
            if t._rg:
                break
        else:
            return res
        node = node_class(FunctionNode, grad_fn or fn.grad_fn)(
            tuple([grad_edge(t) for t in inputs]))
        node.fn, node.ctx = fn, ctx
        ctx.node = weakref.ref(node)  # (V.result: the saved output rebuilt around its node)
        ctx.needs_input_grad = tuple([t._rg for t in inputs])
        if save:
            ctx.saved_tensors = inputs
            node.saved_versions = tuple((t._vc, t._vc[0], t) for t in inputs)
        res._rg = True
        res.grad_fn = node
    return res


def _register_view(v) -> None:
    """Remember a differentiable view on its root tensor, so that a recorded in-place write into
    the root can rebase the view's graph (``rebase_views``). Dead entries are dropped whenever
    the list doubles, so a root viewed anew every step keeps a short list."""
    root = v._base
    views = root._views
    if views is None:
        root._views = [weakref.ref(v), 8]  # (the last item: the size that triggers a sweep)
        return
    views.insert(-1, weakref.ref(v))
    if len(views) > views[-1]:
        live = [r for r in views[:-1] if r() is not None]
        root._views = live + [max(8, 2 * len(live))]


def rebase_views(root) -> None:
    """``root`` was just written in place by a recorded op (its grad_fn is new): every live
    view taken from it earlier now reads the new values, so its gradient must flow through the
    root's new graph, not the one it was taken from (torch regenerates such a view's grad_fn the
    same way). Each view becomes a differentiable gather of the root's elements it looks at
    (``AsStridedBackward0``)."""
    views = root._views
    if not views:
        return
    live = [v for r in views[:-1] if (v := r()) is not None]
    root._views = None
    with enable_grad():
        flat = root.reshape(-1)
        for v in live:
            g = IMPL.getitem(flat, _positions_in_root(v, root), grad_fn="AsStridedBackward0")
            v.grad_fn, v._rg = g.grad_fn, True
    for v in live:  # (re-registered: a later in-place write rebases them again)
        if v._base is root:
            _register_view(v)


def _positions_in_root(v, root) -> np.ndarray:
    """For each element of the view ``v``, the C-order flat index of the element of ``root``
    it shares memory with (any strides, found from the two arrays' addresses)."""
    va, ra = v._data, root._data
    try:
        vp, rp = _address(va), _address(ra)
    except (AttributeError, KeyError, TypeError):
        vp = rp = None
    item = ra.dtype.itemsize
    if vp is None or va.dtype.itemsize != item or \
            any(s % item for s in tuple(va.strides) + tuple(ra.strides)) or (vp - rp) % item:
        raise NotImplementedError(
            f"jitgrad: a view (shape {tuple(va.shape)}, dtype {va.dtype}) of a tensor written in "
            f"place (shape {tuple(ra.shape)}, dtype {ra.dtype}) cannot be rebased onto its new "
            "graph; clone() the view before the in-place write")
    roff = _element_offsets(ra, item, 0)
    lo = int(roff.min()) if roff.size else 0
    marker = np.full(int(roff.max()) - lo + 1 if roff.size else 1, -1, np.int64)
    marker[roff.reshape(-1) - lo] = np.arange(ra.size, dtype=np.int64)
    voff = _element_offsets(va, item, (vp - rp) // item - lo)
    if voff.size and (voff.min() < 0 or voff.max() >= marker.size or
                      (marker[voff] < 0).any()):
        raise NotImplementedError(f"jitgrad: a view of shape {tuple(va.shape)} does not lie "
                                  f"inside its base of shape {tuple(ra.shape)}")
    return marker[voff]


def _element_offsets(a, item: int, start: int) -> np.ndarray:
    """For each element of ``a``, its memory offset in elements of ``item`` bytes, plus
    ``start``."""
    off = np.full(a.shape, start, np.int64)
    for d, (n, st) in enumerate(zip(a.shape, a.strides)):
        off += (np.arange(n, dtype=np.int64) * (st // item)).reshape(
            (1,) * d + (n,) + (1,) * (a.ndim - d - 1))
    return off


def _address(a) -> int:
    """The address of an array's first element (host or device)."""
    if type(a) is DeviceArray:
        return a.dev.__cuda_array_interface__["data"][0]
    return a.__array_interface__["data"][0]


@structural("to_copy", "ToCopyBackward0", linear="all", batch=_V.same_params, index_map="gather",
            gpu=True)
class _ToCopy:
    """A dtype cast (``.to(dtype)``, ``.float()``...); the gradient is cast back."""

    def forward(ctx, x, dtype):
        ctx.in_dtype = x.dtype
        return backend_of(x).contiguous(x, dtype.np)

    def vjp(V, ctx, g):
        return (V.astype(g, ctx.in_dtype),)


@structural("to_device", "ToCopyBackward0", linear="all", batch=_V.same_params, gpu=True)
class _ToDevice:
    """A copy between devices (``.cuda()``, ``.cpu()``, ``.to(device)``) through host memory;
    the gradient goes back to the device the input came from."""

    def forward(ctx, x, device):
        ctx.source = device_of(x)
        return BACKENDS[device].from_host(backend_of(x).to_host(x))

    def vjp(V, ctx, g):
        return (V.to_device(g, ctx.source),)


@structural("clone", "CloneBackward0", linear="all", batch=_V.same_params,
            index_map="gather")
class _Clone:
    def forward(ctx, x, order):
        """order 'K' keeps a dense layout (a transposed array stays transposed, like torch's
        clone), 'C' makes it C-contiguous (``contiguous()``; a GPU copy is always C)."""
        return np.array(x, order=order, copy=True)

    def cuda_forward(ctx, x, order):
        return cb.contiguous(x)

    def vjp(V, ctx, g):
        return (g,)


def sum_to(t: Tensor, shape) -> Tensor:
    """Sum ``t`` down to a shape it was broadcast from (the one place broadcasting is undone
    for Tensor-level backward rules)."""
    shape = tuple(shape)
    tshape = t._meta[0]
    if tshape == shape:
        return t
    lead = len(tshape) - len(shape)
    axes = tuple(range(lead)) + tuple(lead + k for k, s in enumerate(shape)
                                      if s == 1 and tshape[lead + k] != 1)
    r = t.sum(dim=axes, keepdim=True) if axes else t
    if r is not t and r._arr is None and r.grad_fn is None:
        lz = r._lazy
        # a fresh pending sum no realisation has claimed yet (another thread's flush may):
        # computed into this shape (check and store with no call between: atomic under the GIL)
        if lz.row is None and lz.value is None and lz.claim is None:
            lz.shape = shape
            return r
    return r.reshape(shape)


def _sum_to_array(a: np.ndarray, shape) -> np.ndarray:
    shape = tuple(shape)
    lead = a.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + k for k, s in enumerate(shape)
                                      if s == 1 and a.shape[lead + k] != 1)
    if not axes:
        return a.reshape(shape)
    return cpu.reduce_sum(a, axes, a.dtype).reshape(shape)


# =============================================================================================
# Creation (needed by the rules above; the public set is in creation.py)


def set_default_device(dev) -> None:
    """torch.set_default_device: factories (zeros, randn, tensor, ...) called without
    ``device=`` put their tensors on ``dev`` (None: back to the CPU). Per thread, like torch."""
    if dev is not None:
        dev = _DEVICES[device(dev).type]  # (cuda -> cuda:0, as torch reports it)
        BACKENDS[dev.type].require()
    _STATE.default_device = dev


def get_default_device() -> device:
    """torch.get_default_device: where factories without ``device=`` put tensors."""
    return _STATE.default_device or device("cpu")


def tensor(data, dtype=None, device=None, requires_grad=False) -> Tensor:
    dev = check_device(device) if device is not None or not isinstance(data, Tensor) else \
        device_key(data)  # a copy of a tensor stays on its device
    if isinstance(data, Tensor):
        arr = data._host.copy()
    else:
        arr = _to_array(data)
    if dtype is not None:
        arr = arr.astype(dtypes.from_any(dtype).np, copy=False)
    else:
        d = dtypes.from_numpy(arr.dtype)
        if d.np != arr.dtype:
            arr = arr.astype(d.np)
        elif arr.dtype.kind == "f" and not isinstance(data, np.ndarray) and \
                not _has_float64_leaf(data):
            arr = arr.astype(dtypes.get_default_dtype().np, copy=False)
    arr = np.array(arr, copy=True, order="C") if arr.base is not None or \
        isinstance(data, np.ndarray) else arr
    if dev != "cpu":
        arr = BACKENDS[dev].from_host(arr)
    t = Tensor._make(arr)
    if requires_grad:
        t.requires_grad_(True)
    return t


def _has_float64_leaf(data):
    if isinstance(data, (np.floating, np.ndarray)):
        return np.asarray(data).dtype == np.float64
    if isinstance(data, Tensor):
        return data._data.dtype == np.float64
    if isinstance(data, (list, tuple)) and data:
        return _has_float64_leaf(data[0])
    return False


def _to_array(data):
    if isinstance(data, np.ndarray):
        return data
    arr = _to_array_inner(data)
    if arr.dtype == np.uint64 or arr.dtype == object:
        raise RuntimeError("Overflow when unpacking long: integer values must fit in int64")
    return arr


def _to_array_inner(data):
    if isinstance(data, (list, tuple)):
        if any(isinstance(x, Tensor) for x in data):
            return np.stack([_to_array(x) for x in data]) if data else np.array([])
        arr = np.array(data)
        if arr.dtype == object:
            raise TypeError(f"could not build a tensor from {type(data).__name__} of ragged or "
                            "non-numeric items")
        return arr
    if isinstance(data, Tensor):
        return data._data
    if isinstance(data, (numbers.Number, np.generic)):
        return np.array(data)
    raise TypeError(f"tensor(): could not infer dtype of {type(data).__name__}")


def zeros(*size, dtype=None, device=None, requires_grad=False):
    return _filled(size, 0, dtype, device, requires_grad)


def full(size, fill_value, dtype=None, device=None, requires_grad=False):
    if dtype is None:
        dtype = dtypes.result_type((), (), (fill_value,))
    return _filled((size,), fill_value, dtype, device, requires_grad)


def _filled(size, value, dtype, device, requires_grad):
    be = BACKENDS[check_device(device)]
    shape = _shape_arg(size)
    d = dtypes.from_any(dtype) if dtype is not None else dtypes.get_default_dtype()
    t = Tensor._make(be.full(shape, value, d.np))
    if _STATE.recorder is not None:  # (jitgrad.compile: a constant of the recorded program)
        _STATE.recorder.const(t._arr)
    if requires_grad:
        t.requires_grad_(True)
    return t


def _shape_arg(size) -> tuple:
    if len(size) == 1 and isinstance(size[0], (tuple, list, Size)):
        size = tuple(size[0])
    out = []
    for s in size:
        if isinstance(s, Tensor):
            s = int(s)
        if not isinstance(s, (int, np.integer)) or isinstance(s, bool):
            raise TypeError(f"size must be a sequence of ints, got {size!r}")
        if s < 0:
            raise RuntimeError(f"Trying to create tensor with negative dimension {s}: {size}")
        out.append(int(s))
    return tuple(out)


class _TensorMath:
    """The rule vocabulary on Tensors (differentiable backward for create_graph). A function
    of Python numbers only (``m.log(base)`` for ``2.0 ** x``) stays a Python float, in double
    precision, as the kernels compute it."""

    def __getattr__(self, name):
        tensor_fn, float_fn = getattr(IMPL, name), getattr(FLOAT_MATH, name)

        def call(*args):
            if any(isinstance(a, Tensor) for a in args):
                return tensor_fn(*args)
            return float_fn(*args)
        call.__name__ = name
        setattr(self, name, call)  # __getattr__ runs once per name
        return call


TENSOR_MATH = _TensorMath()


# The tensor core's names the structural vocabulary (structural.TENSORS, below this module) uses.
implement(Tensor=Tensor, apply_fn=apply_fn, Ctx=Ctx, sum_to=sum_to)
