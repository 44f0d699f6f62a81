"""creation: tensor factories and the random number generators (``Generator``,
``manual_seed``)."""
from __future__ import annotations

import functools
import math
import threading

import numpy as np

from . import dtypes, interop
from ._state import STATE
from ._tensor import Tensor, _filled, _shape_arg, check_device, full, tensor, zeros
from ._methods import IMPL, implement
from .backends import BACKENDS
from .backends import cuda as cb  # (numba.cuda itself is imported only when a GPU op runs)


class Generator:
    """A random number generator like ``torch.Generator``: ``manual_seed``, ``seed``,
    ``initial_seed``, ``get_state``/``set_state``, and ``generator=`` of rand, randn, randint
    and randperm. NumPy's PCG64 underneath, so the numbers differ from torch's Mersenne
    Twister. Thread-safe: one draw at a time takes a contiguous piece of the stream, so
    threads sharing a generator never get the same numbers (which thread gets which piece
    depends on timing, as in torch)."""

    def __init__(self, device="cpu"):
        check_device(device)  # (numbers are drawn on the host for every device, then copied)
        self.device = device
        self._lock = threading.Lock()
        self._seed = int(np.random.SeedSequence().entropy % (1 << 63))
        self._np = np.random.Generator(np.random.PCG64(self._seed))

    def manual_seed(self, seed) -> "Generator":
        """Restart the stream from ``seed`` (an int; torch's range: -2**63 .. 2**64 - 1)."""
        if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
            raise TypeError(f"manual_seed expected an int, got {type(seed).__name__}")
        seed = int(seed)
        if not -(1 << 63) <= seed < (1 << 64):
            raise RuntimeError(f"Overflow when unpacking long: seed {seed} is outside "
                               "[-2**63, 2**64)")
        seed %= 1 << 64  # (torch keeps a negative seed as its uint64 bit pattern)
        with self._lock:
            self._seed = seed
            self._np = np.random.Generator(np.random.PCG64(seed))
        STATE.draws += 1  # (a tracer treats a re-seed like a draw: not replayable)
        return self

    def seed(self) -> int:
        """Seed from fresh OS entropy; returns the seed (like torch)."""
        s = int(np.random.SeedSequence().entropy % (1 << 63))
        self.manual_seed(s)
        return s

    def initial_seed(self) -> int:
        """The seed the stream was last started from."""
        return self._seed

    def get_state(self) -> Tensor:
        """The generator's state as an int64 tensor (pass it to ``set_state``)."""
        with self._lock:
            st = self._np.bit_generator.state
        s, inc = st["state"]["state"], st["state"]["inc"]
        words = [s & _M64, s >> 64, inc & _M64, inc >> 64, st["has_uint32"], st["uinteger"],
                 self._seed]
        return Tensor._make(np.array(words, np.uint64).view(np.int64))

    def set_state(self, new_state) -> "Generator":
        """Restore a state from ``get_state``."""
        a = new_state.numpy() if isinstance(new_state, Tensor) else None
        if a is None or a.dtype != np.int64 or a.shape != (7,):
            raise TypeError("set_state expects the int64 tensor of 7 values that get_state "
                            f"returns, got {type(new_state).__name__}"
                            + (f" {a.dtype} {list(a.shape)}" if a is not None else ""))
        w = [int(v) for v in a.view(np.uint64)]
        bg = np.random.PCG64()
        bg.state = {"bit_generator": "PCG64",
                    "state": {"state": w[0] | (w[1] << 64), "inc": w[2] | (w[3] << 64)},
                    "has_uint32": w[4], "uinteger": w[5]}
        with self._lock:
            self._np = np.random.Generator(bg)
            self._seed = w[6]
        STATE.draws += 1
        return self

    def _draw(self, method: str, *args, **kwargs):
        """One draw (``numpy.random.Generator.<method>``) under the generator's lock."""
        STATE.draws += 1
        with self._lock:
            return getattr(self._np, method)(*args, **kwargs)

    def __repr__(self):
        return f"<jitgrad.Generator object at {id(self):#x}>"


_M64 = (1 << 64) - 1

# the global generator (torch.default_generator): every draw without ``generator=``
default_generator = Generator()


def _gen(generator) -> Generator:
    if generator is None:
        return default_generator
    if not isinstance(generator, Generator):
        raise TypeError(f"generator must be a jitgrad.Generator, got "
                        f"{type(generator).__module__}.{type(generator).__name__}")
    return generator


def manual_seed(seed) -> Generator:
    """Seed the global generator (NumPy PCG64; sequences differ from torch's Mersenne
    Twister); returns it, like torch."""
    return default_generator.manual_seed(seed)


def seed() -> int:
    """Seed the global generator from OS entropy; returns the seed."""
    return default_generator.seed()


def initial_seed() -> int:
    return default_generator.initial_seed()


def get_rng_state() -> Tensor:
    return default_generator.get_state()


def set_rng_state(new_state) -> None:
    default_generator.set_state(new_state)


def _finish(arr, dtype, requires_grad, device=None):
    be = BACKENDS[check_device(device)]
    d = dtypes.from_any(dtype) if dtype is not None else dtypes.get_default_dtype()
    arr = np.asarray(arr, dtype=d.np, order="C")  # (ascontiguousarray makes 0-d arrays 1-d)
    # made on the host, then copied to the device (random numbers match the CPU stream)
    arr = be.from_host(arr)
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
    for name, v in (("n", n), ("m", m)):
        if v is not None and v < 0:  # NumPy's message names neither eye nor the argument
            raise RuntimeError(f"{name} must be greater or equal to 0, got {v}")
    return _finish(np.eye(n, m if m is not None else n), dtype, requires_grad, device)


_I64_MIN, _I64_MAX = -2 ** 63, 2 ** 63 - 1


def _arange_number(v, what):
    """An arange bound as a Python int or float (a one-element tensor gives its value)."""
    if isinstance(v, Tensor) or (isinstance(v, np.ndarray) and v.ndim == 0):
        v = v.item()
    if isinstance(v, (bool, np.bool_)):
        return int(v)
    if isinstance(v, (int, np.integer)):
        v = int(v)
        if not _I64_MIN <= v < 2 ** 64:  # torch's argument parser: no int64 or uint64
            raise OverflowError(f"arange: {what}={v} is too big to convert to an integer")
        if v > _I64_MAX:  # torch: the argument itself cannot be an int64
            raise RuntimeError(f"arange: {what}={v} cannot be converted to int64 without "
                               "overflow")
        return v
    if isinstance(v, (float, np.floating)):
        return float(v)
    raise TypeError(f"arange: {what} must be a number, got {type(v).__name__}")


def _to_int64(v, what, dtype):
    """torch casts the bounds to the integer accumulator type (truncating toward zero)."""
    if isinstance(v, float) and not -2.0 ** 63 <= v < 2.0 ** 63:
        raise RuntimeError(f"arange: {what}={v} cannot be converted to int64 without overflow "
                           f"(arange computes {dtype} values in int64)")
    return int(v)


def arange(start, end=None, step=1, dtype=None, device=None, requires_grad=False):
    """torch.arange: ``ceil((end - start) / step)`` values ``start + i * step``. Like torch, the
    length and the values follow the dtype: int64 truncates start/end/step to integers first
    and counts exactly; int32 and float dtypes count in double precision from the given
    bounds (int32 then steps by the truncated integer step, wrapping like torch)."""
    if end is None:
        start, end = 0, start
    start = _arange_number(start, "start")
    end = _arange_number(end, "end")
    step = _arange_number(step, "step")
    if dtype is None:
        is_float = any(isinstance(v, float) for v in (start, end, step))
        dtype = dtypes.get_default_dtype() if is_float else dtypes.int64
    d = dtypes.from_any(dtype)
    if d is dtypes.bool_:
        raise NotImplementedError('"arange" is not implemented for dtype bool')
    fs, fe, fst = float(start), float(end), float(step)
    if fst == 0:
        raise RuntimeError("arange: step must be nonzero")
    if not (np.isfinite(fs) and np.isfinite(fe)):
        raise RuntimeError(f"arange: unsupported range: {start} -> {end}")
    if not ((fst > 0 and fe >= fs) or (fst < 0 and fe <= fs)):
        raise RuntimeError(f"arange: upper bound and lower bound inconsistent with step sign "
                           f"(start={start}, end={end}, step={step})")
    if d is dtypes.int64:  # exact integer arithmetic (Python ints: no wrap-around)
        s, e, st = (_to_int64(v, w, d) for v, w in ((start, "start"), (end, "end"),
                                                     (step, "step")))
        if st == 0:  # torch raises ValueError here (a float step truncated to 0)
            raise ValueError(f"arange: step={step} truncates to 0 for dtype int64; step must "
                             "be nonzero")
        n = -((s - e) // st)  # ceil((e - s) / st); >= 0 since truncation keeps the order
        # modular uint64 arithmetic: every value lies between start and end, so fits int64
        vals = (np.arange(n, dtype=np.uint64) * np.uint64(st % 2 ** 64)
                + np.uint64(s % 2 ** 64)).view(np.int64)
    else:
        n = np.ceil((fe - fs) / fst)
        if not 0 <= n <= _I64_MAX:
            raise RuntimeError(f"arange: invalid size {n} (start={start}, end={end}, "
                               f"step={step}), possible overflow?")
        n = int(n)
        if d.is_floating_point:  # start + i * step in double, then rounded to the dtype
            vals = fs + np.arange(n, dtype=np.float64) * fst
        else:  # int32: integer start/step, computed in int64, then wrapped to int32 (torch)
            s, st = _to_int64(start, "start", d), _to_int64(step, "step", d)
            vals = (np.arange(n, dtype=np.uint64) * np.uint64(st % 2 ** 64)
                    + np.uint64(s % 2 ** 64)).view(np.int64)
    return _finish(vals.astype(d.np), d, requires_grad, device)


def linspace(start, end, steps, dtype=None, device=None, requires_grad=False):
    """torch.linspace; for an integer dtype the end points are truncated to integers first,
    then the float steps are truncated (torch's rule: linspace(4.3, -3, 50, dtype=int64)
    starts 4, 3, 3, ...)."""
    d = dtypes.from_any(dtype) if dtype is not None else dtypes.get_default_dtype()
    start, end = float(start), float(end)
    if not d.is_floating_point and d is not dtypes.bool_:
        start, end = float(math.trunc(start)), float(math.trunc(end))
    if steps < 0:
        raise RuntimeError(f"linspace: number of steps must be non-negative, got {steps}")
    return _finish(np.linspace(start, end, int(steps)), d, requires_grad, device)


def _vmap_layer():
    """The innermost active jitgrad.vmap layer (batching.py), or None: under vmap it decides what
    a random draw is (its ``randomness=``: an error, one draw for all samples, or one each)."""
    tr = STATE.tracer
    while tr is not None and not getattr(tr, "batches", False):
        tr = tr.parent
    return tr


def _size(args, size, fn):
    """The shape of ``fn(*args)`` or ``fn(size=...)`` (torch accepts both)."""
    if size is not None:
        if args:
            raise TypeError(f"{fn}() got the size both positionally and as size=")
        return _shape_arg((size,))
    return _shape_arg(args)


def rand(*args, size=None, generator=None, dtype=None, device=None, requires_grad=False):
    size = _size(args, size, "rand")
    if STATE.tracer is not None and _vmap_layer() is not None:
        return _vmap_layer().random(lambda s: rand(s, generator=generator, dtype=dtype,
                                                   device=device, requires_grad=requires_grad),
                                    _shape_arg(size))
    g = _gen(generator)
    d = dtypes.from_any(dtype) if dtype is not None else dtypes.get_default_dtype()
    return _finish(g._draw("random", _shape_arg(size), dtype=d.np), d, requires_grad, device)


def randn(*args, size=None, generator=None, dtype=None, device=None, requires_grad=False):
    size = _size(args, size, "randn")
    if STATE.tracer is not None and _vmap_layer() is not None:
        return _vmap_layer().random(lambda s: randn(s, generator=generator, dtype=dtype,
                                                    device=device, requires_grad=requires_grad),
                                    _shape_arg(size))
    g = _gen(generator)
    d = dtypes.from_any(dtype) if dtype is not None else dtypes.get_default_dtype()
    return _finish(g._draw("standard_normal", _shape_arg(size), dtype=d.np), d, requires_grad,
                   device)


def randint(low=None, high=None, size=None, *, generator=None, dtype=None, device=None,
            requires_grad=False):
    """torch.randint: ``randint(high, size)`` or ``randint(low, high, size)``; integers drawn
    uniformly from [low, high), int64 unless ``dtype`` says otherwise."""
    if size is None and isinstance(high, (tuple, list)):  # randint(high, size)
        low, high, size = 0, low, high
    elif high is None:  # randint(high, size=...)
        low, high = 0, low
    elif low is None:  # randint(high=..., size=...)
        low = 0
    if high is None:
        raise TypeError("randint() missing required argument 'high'")
    if size is None:
        raise TypeError("randint() missing required argument 'size' (a tuple of ints)")
    if not isinstance(size, (tuple, list)):
        raise TypeError(f"randint(): argument 'size' must be tuple of ints, not "
                        f"{type(size).__name__}")
    shape = _shape_arg((size,))
    if STATE.tracer is not None and _vmap_layer() is not None:
        return _vmap_layer().random(lambda s: randint(low, high, s, generator=generator,
                                                      dtype=dtype, device=device,
                                                      requires_grad=requires_grad), shape)
    g = _gen(generator)
    for name, v in (("low", low), ("high", high)):
        if isinstance(v, Tensor):
            v = v.item()
        if not isinstance(v, (int, np.integer)) or isinstance(v, (bool, np.bool_)):
            raise TypeError(f"randint(): argument '{name}' must be int, not {type(v).__name__}")
    low, high = int(low), int(high)
    if low >= high:
        raise RuntimeError(f"random_ expects 'from' to be less than 'to', but got from={low} "
                           f">= to={high}")
    d = dtypes.from_any(dtype) if dtype is not None else dtypes.int64
    if d.category == 1:
        info = np.iinfo(d.np)
        if low < info.min or high - 1 > info.max:
            raise RuntimeError(f"randint: [{low}, {high}) is out of bounds for dtype {d}")
    elif d is dtypes.bool_ and (low < 0 or high > 2):
        raise RuntimeError(f"randint: [{low}, {high}) is out of bounds for dtype bool")
    for name, v in (("low", low), ("high", high)):
        if not _I64_MIN <= v <= _I64_MAX:  # (torch: the arguments are int64)
            raise RuntimeError(f"randint: {name}={v} does not fit in int64")
    return _finish(g._draw("integers", low, high, size=shape, dtype=np.int64), d,
                   requires_grad, device)


def randperm(n, dtype=None, device=None, *, generator=None, requires_grad=False):
    if n < 0:  # NumPy's permutation(-1) is an empty array
        raise RuntimeError(f"Trying to create tensor with negative dimension {n}: [{n}]")
    g = _gen(generator)
    return _finish(g._draw("permutation", int(n)), dtype or dtypes.int64, requires_grad, device)


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
    cb.require()
    dev = interop.as_cuda_array(obj)
    _exact_dtype(np.dtype(dev.dtype), "as_tensor")
    return Tensor._make(cb.DeviceArray(dev))


def _exact_dtype(npd, fn):
    """A zero-copy import keeps the producer's dtype: it must be one of jitgrad's (an int8
    array must not pass as int32, a float16 one as float32)."""
    dtypes.from_numpy(npd)  # (float16 and other unsupported dtypes raise here, clearly)
    if npd not in tuple(d.np for d in dtypes.ALL):
        raise TypeError(f"{fn}: can't import data of dtype {npd} without a copy; supported: "
                        f"{', '.join(d.name for d in dtypes.ALL)} (copy with "
                        "jitgrad.tensor(np.asarray(x)) to convert)")


def from_dlpack(obj) -> Tensor:
    """Zero-copy import of a DLPack producer (torch, CuPy, NumPy, JAX) on the CPU or the GPU."""
    kind, arr = interop.from_dlpack(obj)
    _exact_dtype(np.dtype(arr.dtype), "from_dlpack")
    if kind == "cuda":
        return Tensor._make(cb.DeviceArray(arr))
    return Tensor._make(arr)


# ============================================================================================
# issue 16: random draws (normal, bernoulli, multinomial, the in-place fills) and creation
# breadth (tril/triu_indices, logspace, randint_like, scalar_tensor, new_empty, ...). Every draw
# goes through ``generator=`` (or the global generator); none of them is differentiable (torch
# gives zero gradients through normal/bernoulli: the outputs here do not require grad).


def _result_device(*ts):
    for t in ts:
        if isinstance(t, Tensor):
            return t.device
    return None


def normal(mean=0.0, std=1.0, size=None, *, generator=None, out=None, dtype=None,
           layout=None, device=None, pin_memory=False, requires_grad=False):
    """torch.normal: tensor mean and/or std (broadcast; the result has their dtype), or float
    mean and std with ``size``."""
    mt, st = isinstance(mean, Tensor), isinstance(std, Tensor)
    if mt or st:
        if size is not None:
            raise TypeError("normal(): size= is only accepted with float mean and std")
        shapes = [tuple(t.shape) for t in (mean, std) if isinstance(t, Tensor)]
        try:
            shape = tuple(np.broadcast_shapes(*shapes))
        except ValueError:
            raise RuntimeError(f"normal: mean of shape {list(shapes[0])} and std of shape "
                               f"{list(shapes[-1])} cannot be broadcast together") from None
        d = mean.dtype if mt else std.dtype
        if mt and st and mean.dtype != std.dtype:
            d = dtypes.from_numpy(np.promote_types(mean._meta[1], std._meta[1]))
        if not d.is_floating_point:
            raise RuntimeError(f"normal expects floating point mean and std, got {d}")
        if st and STATE.tracer is None and not bool((std.detach() >= 0).all()):  # NaN too
            raise RuntimeError("normal expects all elements of std >= 0.0")
        z = randn(shape, generator=generator, dtype=d, device=_result_device(mean, std))
        m = mean.detach() if mt else mean
        sd = std.detach() if st else std
        r = z * sd + m
        r = r if r.dtype == d else r.to(d)
    else:
        if size is None:
            raise TypeError("normal() with float mean and std needs size= (a tuple of ints)")
        if not std >= 0:  # NaN too
            raise RuntimeError(f"normal expects std >= 0.0, but found std {std}")
        r = randn(size, generator=generator, dtype=dtype, device=device) * float(std) + \
            float(mean)
    if out is not None:
        IMPL.copy_(out, r)
        return out
    return r.requires_grad_(True) if requires_grad else r


def _check_leaf_inplace(x, name):
    if STATE.enabled and x.requires_grad and x.grad_fn is None:
        raise RuntimeError(f"a leaf Variable that requires grad is being used in an in-place "
                           f"operation ({name}).")


def _fill_with(x, name, arr):
    """x's values replaced by host array ``arr`` (cast to x's dtype), in place."""
    _check_leaf_inplace(x, name)
    IMPL.copy_(x, _finish(arr, x.dtype, False, x.device))
    return x


def _floating_inplace(x, name):
    if not x.dtype.is_floating_point:
        raise RuntimeError(f"{name} expects a floating point tensor, got {x.dtype}")


def normal_(x, mean=0.0, std=1.0, *, generator=None):
    _floating_inplace(x, "normal_")
    if std < 0:
        raise RuntimeError(f"normal_ expects std >= 0.0, but found std {std}")
    z = _gen(generator)._draw("standard_normal", tuple(x.shape))
    return _fill_with(x, "normal_", z * float(std) + float(mean))


def uniform_(x, a=0.0, b=1.0, *, generator=None, **kw):
    a, b = kw.pop("from", a), kw.pop("to", b)
    if kw:
        raise TypeError(f"uniform_() got unexpected keyword arguments {sorted(kw)}")
    _floating_inplace(x, "uniform_")
    if a > b:
        raise RuntimeError(f"uniform_ expects to return a [from, to) range, but found "
                           f"from={a} > to={b}")
    u = _gen(generator)._draw("random", tuple(x.shape))
    return _fill_with(x, "uniform_", u * (float(b) - float(a)) + float(a))


def exponential_(x, lambd=1.0, *, generator=None):
    _floating_inplace(x, "exponential_")
    if not lambd > 0:
        raise RuntimeError(f"exponential_ expects lambda > 0.0, but found lambda={lambd}")
    e = _gen(generator)._draw("exponential", 1.0 / float(lambd), tuple(x.shape))
    return _fill_with(x, "exponential_", e)


def geometric_(x, p, *, generator=None):
    if not 0 < p < 1:
        raise RuntimeError(f"geometric_ expects p to be in (0, 1), but got p={p}")
    return _fill_with(x, "geometric_", _gen(generator)._draw("geometric", float(p),
                                                              tuple(x.shape)))


def cauchy_(x, median=0.0, sigma=1.0, *, generator=None):
    _floating_inplace(x, "cauchy_")
    if not sigma > 0:
        raise RuntimeError(f"cauchy_ expects sigma > 0.0, but found sigma={sigma}")
    c = _gen(generator)._draw("standard_cauchy", tuple(x.shape))
    return _fill_with(x, "cauchy_", c * float(sigma) + float(median))


def log_normal_(x, mean=1.0, std=2.0, *, generator=None):
    _floating_inplace(x, "log_normal_")
    if not std > 0:
        raise RuntimeError(f"log_normal_ expects std > 0.0, but found std={std}")
    return _fill_with(x, "log_normal_", _gen(generator)._draw("lognormal", float(mean),
                                                               float(std), tuple(x.shape)))


def _probabilities(p, name):
    a = np.asarray(p._host if isinstance(p, Tensor) else p, dtype=np.float64)
    if a.size and not ((a >= 0) & (a <= 1)).all():
        raise RuntimeError(f"{name}: expected all probabilities in [0, 1] (p_in >= 0 && "
                           "p_in <= 1)")
    return a


def bernoulli(input, p=None, *, generator=None, out=None):
    """torch.bernoulli: 1 with probability ``input`` (or the float ``p``) per element, in the
    input's dtype."""
    x = input if isinstance(input, Tensor) else tensor(input)
    if p is None and not x.dtype.is_floating_point:  # torch has no integer/bool probabilities
        raise NotImplementedError(f"bernoulli: probabilities of dtype {x.dtype} are not "
                                  "supported (a floating point input is required)")
    probs = _probabilities(x if p is None else p, "bernoulli")
    u = _gen(generator)._draw("random", tuple(x.shape))
    r = _finish(u < probs, x.dtype, False, x.device)
    if out is not None:
        IMPL.copy_(out, r)
        return out
    return r


def bernoulli_(x, p=0.5, *, generator=None):
    probs = _probabilities(p, "bernoulli_")
    if isinstance(p, Tensor) and p.shape != x.shape:
        probs = np.broadcast_to(probs, tuple(x.shape))
    u = _gen(generator)._draw("random", tuple(x.shape))
    return _fill_with(x, "bernoulli_", u < probs)


def multinomial(input, num_samples, replacement=False, *, generator=None, out=None):
    """torch.multinomial: ``num_samples`` category indices per row of (1-D or 2-D)
    non-negative weights; without replacement each category at most once."""
    x = input if isinstance(input, Tensor) else tensor(input)
    if x.dim() not in (1, 2):
        raise RuntimeError(f"prob_dist must be 1 or 2 dim, got {x.dim()}")
    if not x.dtype.is_floating_point:
        raise RuntimeError(f"multinomial only supports floating-point dtypes for input, got: "
                           f"{x.dtype}")
    if not isinstance(num_samples, (int, np.integer)) or isinstance(num_samples, bool):
        raise TypeError(f"multinomial(): argument 'num_samples' must be int, not "
                        f"{type(num_samples).__name__}")
    n = int(num_samples)
    if n <= 0:
        raise RuntimeError("cannot sample n_sample <= 0 samples")
    w = np.atleast_2d(np.asarray(x._host, np.float64))
    k = w.shape[1]
    if not replacement and n > k:
        raise RuntimeError("cannot sample n_sample > prob_dist.size(-1) samples without "
                           "replacement")
    if not np.isfinite(w).all() or (w < 0).any():
        raise RuntimeError("probability tensor contains either `inf`, `nan` or element < 0")
    g = _gen(generator)
    res = np.empty((w.shape[0], n), np.int64)
    for r in range(w.shape[0]):
        tot = w[r].sum()
        if tot <= 0:
            raise RuntimeError("invalid multinomial distribution (sum of probabilities <= 0)")
        if not replacement and np.count_nonzero(w[r]) < n:
            raise RuntimeError("invalid multinomial distribution (with replacement=False, not "
                               "enough non-negative category to sample)")
        res[r] = g._draw("choice", k, size=n, replace=bool(replacement), p=w[r] / tot)
    r = _finish(res if x.dim() == 2 else res[0], dtypes.int64, False, x.device)
    if out is not None:
        IMPL.copy_(out, r)
        return out
    return r


def _tri_indices(fn, row, col, offset, dtype, device):
    d = dtypes.from_any(dtype) if dtype is not None else dtypes.int64
    if d not in (dtypes.int64, dtypes.int32):
        raise RuntimeError(f"{fn}: dtype must be int64 or int32, got {d}")
    for v in (row, col):
        if not isinstance(v, (int, np.integer)) or v < 0:
            raise RuntimeError(f"{fn}: row and col must be non-negative ints, got {row}, {col}")
    r, c = (np.tril_indices if fn == "tril_indices" else np.triu_indices)(int(row), int(offset),
                                                                           int(col))
    return _finish(np.stack([r, c]).reshape(2, -1), d, False, device)


def tril_indices(row, col, offset=0, *, dtype=None, device=None, layout=None):
    """The (2, N) coordinates of the lower triangle of a row x col matrix (row-major order)."""
    return _tri_indices("tril_indices", row, col, offset, dtype, device)


def triu_indices(row, col, offset=0, *, dtype=None, device=None, layout=None):
    """The (2, N) coordinates of the upper triangle of a row x col matrix (row-major order)."""
    return _tri_indices("triu_indices", row, col, offset, dtype, device)


def logspace(start, end, steps, base=10.0, *, dtype=None, layout=None, device=None,
             requires_grad=False):
    """``base ** linspace(start, end, steps)``, computed in double precision."""
    start = start.item() if isinstance(start, Tensor) else start
    end = end.item() if isinstance(end, Tensor) else end
    if steps < 0:
        raise RuntimeError("number of steps must be non-negative")
    d = dtypes.from_any(dtype) if dtype is not None else dtypes.get_default_dtype()
    start, end = float(start), float(end)
    integral = not d.is_floating_point and d is not dtypes.bool_
    if integral:  # torch truncates start and end first (as linspace does), then the powers
        start, end = float(math.trunc(start)), float(math.trunc(end))
    with np.errstate(invalid="ignore"):
        v = np.power(float(base), np.linspace(start, end, int(steps)))
    if integral:
        v = np.trunc(v)
    return _finish(v, d, requires_grad, device)


def randint_like(input, low=0, high=None, *, dtype=None, device=None, requires_grad=False,
                 generator=None, memory_format=None):
    """randint with input's shape (and dtype and device unless given): ``randint_like(x,
    high)`` or ``randint_like(x, low, high)``."""
    if high is None:
        low, high = 0, low
    return randint(low, high, tuple(input.shape), generator=generator,
                   dtype=_like(input, dtype), device=_dev(input, device),
                   requires_grad=requires_grad)


def scalar_tensor(s, *, dtype=None, layout=None, device=None, pin_memory=None,
                  requires_grad=False):
    """A 0-d tensor of ``s`` (the default float dtype unless given)."""
    return _finish(np.asarray(s), dtype, requires_grad, device)


def empty_strided(size, stride, *, dtype=None, layout=None, device=None,
                  requires_grad=False, pin_memory=False):
    """An uninitialised tensor of ``size`` (jitgrad lays it out C-contiguously: ``stride``
    is checked for length only)."""
    if len(stride) != len(size):
        raise RuntimeError(f"mismatch in length of strides and shape ({len(stride)} vs "
                           f"{len(size)})")
    if any(s < 0 for s in stride):
        raise RuntimeError(f"Storage size calculation overflowed with sizes={list(size)} and "
                           f"strides={list(stride)} (negative strides are not supported)")
    return empty(tuple(size), dtype=dtype, device=device, requires_grad=requires_grad)


def empty_permuted(size, physical_layout, *, dtype=None, layout=None, device=None,
                   requires_grad=False, pin_memory=False):
    """An uninitialised tensor of ``size`` (C-contiguous; ``physical_layout`` is checked to
    be a permutation)."""
    if sorted(physical_layout) != list(range(len(size))):
        raise RuntimeError(f"physical_layout {list(physical_layout)} is not a permutation of "
                           f"the {len(size)} dims")
    return empty(tuple(size), dtype=dtype, device=device, requires_grad=requires_grad)


def _new_empty(x, *size, dtype=None, device=None, requires_grad=False, **kw):
    return empty(_shape_arg(size), dtype=dtype or x.dtype, device=device or x.device,
                 requires_grad=requires_grad)


def _new_empty_strided(x, size, stride, dtype=None, device=None, requires_grad=False, **kw):
    return empty_strided(size, stride, dtype=dtype or x.dtype, device=device or x.device,
                         requires_grad=requires_grad)


class inference_mode:
    """torch.inference_mode: no gradient recording inside the block or decorated function
    (``inference_mode(False)`` records as usual). jitgrad has no separate inference tensors:
    this is ``no_grad`` (what it saves torch, jitgrad's no_grad already skips)."""

    def __new__(cls, mode=True):
        self = super().__new__(cls)
        if callable(mode) and not isinstance(mode, bool):  # @inference_mode without ()
            self.__init__(True)
            return self(mode)
        return self

    def __init__(self, mode=True):
        self.mode = bool(mode)

    def __enter__(self):
        self._prev = STATE.enabled, getattr(STATE, "inference", False)
        if self.mode:
            STATE.enabled = False
        STATE.inference = self.mode
        return self

    def __exit__(self, *exc):
        STATE.enabled, STATE.inference = self._prev
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with inference_mode(self.mode):
                return fn(*args, **kwargs)
        return wrapper


def is_inference_mode_enabled() -> bool:
    return bool(getattr(STATE, "inference", False))


implement(normal_=normal_, uniform_=uniform_, exponential_=exponential_,
          geometric_=geometric_, cauchy_=cauchy_, log_normal_=log_normal_, bernoulli=bernoulli,
          bernoulli_=bernoulli_, multinomial=multinomial, _new_empty=_new_empty,
          _new_empty_strided=_new_empty_strided)


__all__ = ["Generator", "default_generator", "manual_seed", "seed", "initial_seed",
           "get_rng_state", "set_rng_state", "ones", "empty", "eye", "arange", "linspace",
           "rand", "randn", "randint", "randperm", "zeros_like", "ones_like", "empty_like",
           "full_like", "rand_like", "randn_like", "from_numpy", "as_tensor", "from_dlpack",
           "normal", "bernoulli", "multinomial", "tril_indices", "triu_indices", "logspace",
           "randint_like", "scalar_tensor", "empty_strided", "empty_permuted", "inference_mode",
           "is_inference_mode_enabled"]
