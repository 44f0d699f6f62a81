"""torch_conformance: jitgrad measured against PyTorch's own operator database (OpInfo).

Why: jitgrad's registry table (``jitgrad.testing.opinfo``) checks the ops jitgrad has; this module
checks jitgrad against the ops *users* expect, i.e. ``torch.testing._internal.
common_methods_invocations.op_db`` (702 entries in torch 2.13.0). For every entry in scope it
generates torch's own sample inputs (``op.sample_inputs('cpu', dtype, requires_grad=...)``), runs
them through torch and through the jitgrad callable of the same name, and compares outputs
(values, dtypes, shapes) and, where the op supports autograd, gradients for a fixed random
cotangent.

Outcome of one sample:

* ``pass`` -- forward (and gradients, for float dtypes of differentiable entries) match torch;
* ``unsupported`` -- jitgrad rejected the call with a clear exception (TypeError, ValueError,
  NotImplementedError, RuntimeError, IndexError) or the sample uses something jitgrad has no
  counterpart for (an int8 tensor, a memory format, ...). Not a pass;
* ``fail`` -- a wrong value, dtype or shape, or any other exception (a Numba typing error, an
  AttributeError from inside jitgrad, ...). Never hidden.

Outcome of one entry: ``missing`` (no jitgrad name), ``pass`` (every sample passes),
``fail`` (at least one sample fails; the first failure is kept), ``unsupported`` (no failure,
but at least one sample unsupported), or ``out of scope`` (with the reason).

Entry resolution: ``op.name`` (then ``op.aten_name``) as a function under ``jitgrad`` (dotted
names such as ``nn.functional.relu`` or ``linalg.norm`` walk submodules), else as a
``jitgrad.Tensor`` method. Entries whose torch callable is a lambda (``lambda x: x.T``,
``lambda tensors, equation: torch.einsum(equation, tensors)``) run that lambda with its global
``torch`` bound to ``jitgrad``, so the argument reordering torch's table does is reproduced
exactly; an AttributeError naming a jitgrad module or ``Tensor`` then means "missing". Besides
the main call, torch's method variant and in-place ``<name>_`` variant are run (forward only)
where jitgrad has them, and reported as missing variants where it does not.

CLI::

    python -m jitgrad.testing.torch_conformance [--report FILE] [--ops a,b]
        [--dtypes float32,float64,int64,bool] [--max-samples N] [--json FILE]
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import math
import sys
import time
import types
import warnings
import zlib
from collections import Counter, defaultdict

import numpy as np

import jitgrad

# ----------------------------------------------------------------------------------------------
# scope

#: names (op.name) out of scope and why; prefixes are handled in :func:`out_of_scope`
_OUT_OF_SCOPE_NAMES = {
    # complex numbers
    "view_as_real": "complex", "view_as_complex": "complex", "complex": "complex",
    "polar": "complex", "cfloat": "complex", "cdouble": "complex", "chalf": "complex",
    "real": "complex", "imag": "complex", "H": "complex (conjugate transpose)",
    "mH": "complex (conjugate transpose)", "conj_physical": "complex", "vdot": "complex",
    "nn.functional.silu.complex": "complex",
    # sparse / quantised / fp8
    "to_sparse": "sparse", "torch._scaled_mm": "float8 scaled matmul",
    "torch._scaled_mm_v2": "float8 scaled matmul",
    # fft family
    "stft": "fft", "istft": "fft",
    # linalg beyond issue 16's list (decompositions and solvers without a jitgrad counterpart)
    "cholesky_inverse": "linalg (beyond issue 16)", "cholesky_solve": "linalg (beyond issue 16)",
    "geqrf": "linalg (beyond issue 16)", "ormqr": "linalg (beyond issue 16)",
    "lu": "linalg (beyond issue 16)", "lu_unpack": "linalg (beyond issue 16)",
    "lu_solve": "linalg (beyond issue 16)", "triangular_solve": "linalg (beyond issue 16)",
    "svd_lowrank": "linalg (beyond issue 16)", "pca_lowrank": "linalg (beyond issue 16)",
    "pinverse": "linalg (beyond issue 16)", "matrix_exp": "linalg (beyond issue 16)",
    # private aten / backward / CUDA-only entries (not public Python API)
    "_softmax_backward_data": "private aten op", "_native_batch_norm_legit": "private aten op",
    "_batch_norm_with_update": "private aten op", "_upsample_bilinear2d_aa": "private aten op",
    "_unsafe_masked_index": "private aten op",
    "_unsafe_masked_index_put_accumulate": "private aten op",
    "_segment_reduce": "private aten op", "_chunk_cat": "private aten op",
    "native_group_norm": "private aten op", "native_layer_norm": "private aten op",
    "native_batch_norm": "private aten op", "native_dropout_backward": "private aten op",
    "max_pool2d_with_indices_backward": "private aten op",
    "grid_sampler_2d": "private aten op", "grid_sampler_3d": "private aten op",
    "torch.ops.aten._safe_softmax.default": "private aten op",
    "torch.ops.aten._flash_attention_forward": "CUDA-only attention kernel",
    "torch.ops.aten._efficient_attention_forward": "CUDA-only attention kernel",
    "bmm.triton_optimized": "CUDA/triton variant", "hash_tensor": "private aten op",
}

_OUT_OF_SCOPE_PREFIXES = (
    ("fft.", "fft"), ("sparse.", "sparse"), ("jiterator_", "jiterator (CUDA-only)"),
    ("signal.", "signal windows"), ("masked.", "torch.masked (prototype masked reductions)"),
)

#: the few linalg.* / special.* entries in scope (issue 16's list); the rest are out of scope
LINALG_IN_SCOPE = {
    "linalg.norm", "linalg.vector_norm", "linalg.matrix_norm", "linalg.inv", "linalg.det",
    "linalg.slogdet", "linalg.solve", "linalg.cholesky", "linalg.qr", "linalg.eigh",
    "linalg.eigvalsh", "linalg.svd", "linalg.svdvals", "linalg.cross", "linalg.vecdot",
    "linalg.diagonal", "linalg.multi_dot", "linalg.matrix_power",
}
SPECIAL_IN_SCOPE = {"special.ndtr", "special.ndtri", "special.log_ndtr", "special.entr",
                    "special.xlog1py", "special.erfcx"}

#: entries whose values are random or uninitialised: only shapes and dtypes are compared
NONDETERMINISTIC = {
    "cauchy", "exponential", "geometric", "log_normal", "normal", "uniform", "bernoulli",
    "multinomial", "randn", "randn_like", "rand_like", "randint", "randint_like",
    "nn.functional.dropout", "nn.functional.dropout2d", "nn.functional.dropout3d",
    "nn.functional.alpha_dropout", "nn.functional.feature_alpha_dropout",
    "nn.functional.rrelu", "nn.functional.fractional_max_pool2d",
    "nn.functional.fractional_max_pool3d", "empty", "empty_like", "new_empty",
    "new_empty_strided", "empty_strided", "empty_permuted",
}

#: torch's default ``assert_close`` tolerances (rtol, atol) per dtype; gradients in float32 get
#: 10x (a reduction's summation order differs between the two libraries)
TOLERANCES = {"float32": (1.3e-6, 1e-5), "float64": (1e-7, 1e-7)}
GRAD_TOL_FACTOR = {"float32": 10.0, "float64": 1.0}

DEFAULT_DTYPES = ("float32", "float64", "int64", "bool")
CLEAR_ERRORS = (TypeError, ValueError, NotImplementedError, RuntimeError, IndexError)


def entry_id(op) -> str:
    return op.name + (f".{op.variant_test_name}" if op.variant_test_name else "")


def load_op_db():
    """torch's OpInfo list (imports torch's test internals, which need ``expecttest``)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from torch.testing._internal.common_methods_invocations import op_db
    return op_db


def out_of_scope(op) -> str | None:
    """The reason an entry is out of scope, or None."""
    import torch
    eid = entry_id(op)
    for key in (eid, op.name):
        if key in _OUT_OF_SCOPE_NAMES:
            return _OUT_OF_SCOPE_NAMES[key]
    for prefix, why in _OUT_OF_SCOPE_PREFIXES:
        if op.name.startswith(prefix):
            return why
    if op.name.startswith("linalg.") and op.name not in LINALG_IN_SCOPE:
        return "linalg (beyond issue 16)"
    if op.name.startswith("special.") and op.name not in SPECIAL_IN_SCOPE:
        return "special function (beyond the few in scope)"
    dts = op.supported_dtypes("cpu")
    if not any(getattr(torch, d) in dts for d in ("float32", "float64", "int32", "int64",
                                                    "bool")):
        return "no float32/float64/int/bool dtype on CPU"
    return None


_SHAPE = {"broadcast_to", "broadcast_shapes", "broadcast_tensors", "block_diag", "chunk",
          "unsafe_chunk", "clone", "contiguous", "sum_to_size", "expand", "expand_as",
          "expand_copy", "diag", "diag_embed", "diagonal", "diagonal_copy", "diagonal_scatter",
          "alias_copy", "flip", "fliplr", "flipud", "meshgrid", "narrow", "narrow_copy",
          "view_copy", "permute", "permute_copy", "roll", "rot90", "split", "unsafe_split",
          "split_with_sizes", "split_with_sizes_copy", "select", "select_scatter", "slice",
          "slice_scatter", "tensor_split", "hsplit", "vsplit", "dsplit", "ravel", "reshape",
          "reshape_as", "view", "view_as", "atleast_1d", "atleast_2d", "atleast_3d", "flatten",
          "unflatten", "column_stack", "stack", "hstack", "vstack", "dstack", "cat", "unbind",
          "unbind_copy", "unfold", "unfold_copy", "movedim", "repeat", "squeeze",
          "squeeze_copy", "unsqueeze", "unsqueeze_copy", "tile", "transpose", "transpose_copy",
          "T", "mT", "t", "t_copy", "tril", "triu", "diagflat", "as_strided", "as_strided_copy",
          "as_strided_scatter", "resize_", "resize_as_", "combinations", "cartesian_prod",
          "repeat_interleave", "conj", "resolve_conj", "resolve_neg", "positive", "to",
          "bfloat16", "bool", "byte", "char", "double", "float", "half", "int", "long", "short",
          "item", "fill", "zero_", "constant_pad_nd"}
_INDEXING = {"gather", "scatter", "scatter_add", "scatter_reduce", "index_fill", "index_copy",
             "index_select", "index_add", "index_reduce", "index_put", "masked_fill",
             "masked_scatter", "masked_select", "take", "take_along_dim", "put", "__getitem__",
             "nonzero", "nonzero_static", "argwhere", "where", "searchsorted", "bucketize",
             "isin", "unique", "unique_consecutive", "histc", "histogram", "histogramdd",
             "bincount"}
_REDUCTION = {"cumsum", "cumprod", "cummax", "cummin", "logcumsumexp", "max", "min", "median",
              "nanmedian", "var_mean", "std_mean", "quantile", "nanquantile", "aminmax",
              "kthvalue", "mode", "sort", "argsort", "msort", "topk", "logsumexp", "norm",
              "dist", "softmax", "log_softmax", "cov", "corrcoef", "diff", "gradient", "trapz",
              "trapezoid", "cumulative_trapezoid", "renorm", "equal", "allclose", "isclose"}
_LINALG = {"addmm", "addmv", "addbmm", "baddbmm", "dot", "bmm", "mv", "addr", "matmul", "mm",
           "outer", "inner", "kron", "tensordot", "einsum", "trace", "cross", "cdist",
           "cholesky", "qr", "svd", "logdet", "__rmatmul__", "chain_matmul"}
_CREATION = {"arange", "linspace", "logspace", "zeros_like", "ones_like", "full_like",
             "empty_like", "randn", "randn_like", "rand_like", "randint", "randint_like",
             "new_zeros", "new_ones", "new_full", "new_empty", "new_empty_strided",
             "empty_strided", "empty", "empty_permuted", "ones", "zeros", "full", "eye",
             "scalar_tensor", "multinomial", "normal", "bernoulli", "cauchy", "exponential",
             "geometric", "log_normal", "uniform", "tril_indices", "triu_indices"}


def family(op) -> str:
    """A coarse grouping for the report."""
    kind = type(op).__name__
    name = op.name
    if name.startswith("nn.functional."):
        return "nn.functional"
    if name.startswith("linalg.") or name in _LINALG:
        return "linalg"
    if name.startswith("special."):
        return "special"
    if name in _CREATION:
        return "creation & random"
    if name in _INDEXING:
        return "indexing & scatter"
    if kind == "ShapeFuncInfo" or name in _SHAPE:
        return "shape & view"
    if kind == "ReductionOpInfo" or name in _REDUCTION:
        return "reductions & scans"
    if kind == "UnaryUfuncInfo":
        return "elementwise unary"
    if kind == "BinaryUfuncInfo" or name.startswith("__r"):
        return "elementwise binary"
    return "other"


# ----------------------------------------------------------------------------------------------
# resolution

class Unsupported(Exception):
    """A sample uses something jitgrad has no counterpart for (raised by the harness)."""


def _walk(root, dotted: str):
    obj = root
    for part in dotted.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


def _jg_wrapper_set_seed(fn, *args, **kwargs):
    jitgrad.manual_seed(42)
    return fn(*args, **kwargs)


def _rebind(fn):
    """``fn`` (a lambda from torch's table) with its global ``torch`` bound to jitgrad."""
    g = dict(fn.__globals__)
    g["torch"] = jitgrad
    g["wrapper_set_seed"] = _jg_wrapper_set_seed
    new = types.FunctionType(fn.__code__, g, fn.__name__, fn.__defaults__, fn.__closure__)
    new.__kwdefaults__ = fn.__kwdefaults__
    return new


@dataclasses.dataclass
class Resolved:
    how: str                    # 'function' | 'method' | 'lambda'
    call: object                # jitgrad callable taking (input, *args, **kwargs)
    label: str                  # what it resolved to, e.g. 'jitgrad.add' or 'Tensor.add'
    method: str | None = None   # torch method name to also test on jitgrad.Tensor
    inplace: str | None = None  # torch in-place method name to also test
    missing_variants: tuple = ()


def _tensor_has(name: str) -> bool:
    """``jitgrad.Tensor`` defines ``name`` (the class's own MRO, not its metaclass: ``type``
    has ``__or__``/``__ror__`` for ``X | Y`` unions)."""
    return any(name in vars(k) for k in jitgrad.Tensor.__mro__ if k is not object) \
        and callable(getattr(jitgrad.Tensor, name, None))


def _method_caller(name):
    def call(x, *args, **kwargs):
        return getattr(x, name)(*args, **kwargs)
    call.__name__ = name
    return call


def resolve(op) -> Resolved | None:
    """The jitgrad callable for ``op``, or None when jitgrad has no such name."""
    fn = op.op
    torch_method = getattr(op.method_variant, "__name__", None)
    torch_inplace = getattr(op.inplace_variant, "__name__", None)
    if torch_inplace == "<lambda>":     # nn.functional's inplace=True form, not a method
        torch_inplace = None
    missing = []
    if getattr(fn, "__name__", "") == "<lambda>":
        absent = _lambda_missing_names(fn)
        if absent:
            return None
        res = Resolved("lambda", _rebind(fn), f"torch's lambda for {op.name}")
    else:
        res = None
        for name in dict.fromkeys((op.name, op.aten_name)):
            if not name:
                continue
            if name.startswith("__"):
                if _tensor_has(name):
                    res = Resolved("method", _method_caller(name), f"Tensor.{name}")
                break
            f = _walk(jitgrad, name)
            if callable(f) and not isinstance(f, type(jitgrad)):
                res = Resolved("function", f, f"jitgrad.{name}")
                break
            if "." not in name and _tensor_has(name):
                res = Resolved("method", _method_caller(name), f"Tensor.{name}")
                break
        if res is None:
            return None
    # extra variants torch has: the method (when the main call was a function) and in-place
    if torch_method and res.how == "function":
        if _tensor_has(torch_method):
            res.method = torch_method
        else:
            missing.append(f"Tensor.{torch_method}")
    if torch_inplace and res.how != "lambda":
        if _tensor_has(torch_inplace):
            res.inplace = torch_inplace
        else:
            missing.append(f"Tensor.{torch_inplace}")
    res.missing_variants = tuple(missing)
    return res


_LAMBDA_PLUMBING = {"torch", "wrapper_set_seed", "Tensor", "nn", "functional", "linalg",
                    "special"}


def _lambda_missing_names(fn) -> list:
    """Attribute names a table lambda uses that jitgrad has nowhere (module, ``nn.functional``,
    ``Tensor``): a static "missing" before any sample runs. Names the lambda's own module
    defines (helpers) are not jitgrad's to have."""
    g = fn.__globals__
    out = []
    for name in fn.__code__.co_names:
        if name in _LAMBDA_PLUMBING or (name in g and name != "torch"):
            continue
        if hasattr(jitgrad, name) or hasattr(jitgrad.nn.functional, name) or \
                any(name in vars(k) for k in jitgrad.Tensor.__mro__ if k is not object):
            continue
        out.append(name)
    return out


def _missing_name_error(e: BaseException) -> bool:
    """An AttributeError that says jitgrad (a module or Tensor) lacks a name."""
    if not isinstance(e, AttributeError):
        return False
    msg = str(e)
    return msg.startswith("module 'jitgrad") or "'Tensor' object has no attribute" in msg \
        or "type object 'Tensor' has no attribute" in msg


# ----------------------------------------------------------------------------------------------
# conversion

def _jg_dtype(td):
    import torch
    name = str(td).replace("torch.", "")
    if name in ("float32", "float64", "int32", "int64", "bool"):
        return getattr(jitgrad, "bool" if name == "bool" else name)
    raise Unsupported(f"dtype {td}")


class Converter:
    """torch objects -> jitgrad objects, keeping tensor identity (the same torch tensor twice
    becomes the same jitgrad tensor), so gradients can be paired up afterwards."""

    def __init__(self):
        self.memo = {}     # id(torch tensor) -> (torch tensor, jitgrad tensor)

    def __call__(self, x):
        import torch
        if isinstance(x, torch.Tensor):
            hit = self.memo.get(id(x))
            if hit is not None:
                return hit[1]
            if x.is_complex() or x.layout != torch.strided or x.is_quantized:
                raise Unsupported(f"tensor of dtype {x.dtype} / layout {x.layout}")
            dt = _jg_dtype(x.dtype)
            arr = x.detach().resolve_conj().resolve_neg().numpy().copy()
            j = jitgrad.tensor(arr, dtype=dt, requires_grad=bool(x.requires_grad))
            self.memo[id(x)] = (x, j)
            return j
        if isinstance(x, torch.dtype):
            return _jg_dtype(x)
        if isinstance(x, torch.Size):
            return tuple(x)
        if isinstance(x, torch.device):
            if x.type != "cpu":
                raise Unsupported(f"device {x}")
            return "cpu"
        if isinstance(x, (torch.memory_format, torch.layout, torch.Generator)):
            raise Unsupported(f"argument {x!r}")
        if isinstance(x, tuple) and hasattr(x, "_fields"):
            return type(x)(*(self(v) for v in x))
        if isinstance(x, (list, tuple)):
            return type(x)(self(v) for v in x)
        if isinstance(x, dict):
            return {k: self(v) for k, v in x.items()}
        if isinstance(x, (bool, int, float, str, slice, type(None), type(Ellipsis),
                          np.generic)):
            return x
        if isinstance(x, complex):
            raise Unsupported("complex scalar")
        if callable(x):
            return x
        raise Unsupported(f"argument of type {type(x).__name__}")

    def torch_leaves(self):
        """(torch tensor, jitgrad tensor) pairs that require grad, in first-seen order."""
        return [(t, j) for t, j in self.memo.values() if t.requires_grad]


# ----------------------------------------------------------------------------------------------
# comparison

def _dtype_name(d) -> str:
    return str(d).replace("torch.", "").replace("jitgrad.", "")


def _flatten(x, out):
    import torch
    if isinstance(x, (torch.Tensor, jitgrad.Tensor)):
        out.append(x)
    elif isinstance(x, (list, tuple)):
        for v in x:
            _flatten(v, out)
    return out


def compare(expected, got, dtype_name: str, *, values: bool = True, factor: float = 1.0,
            path: str = "out") -> str | None:
    """None when ``got`` (jitgrad) matches ``expected`` (torch), else what differs."""
    import torch
    if isinstance(expected, torch.Tensor):
        if not isinstance(got, jitgrad.Tensor):
            return f"{path}: expected a Tensor, got {type(got).__name__}"
        if tuple(expected.shape) != tuple(got.shape):
            return f"{path}: shape {tuple(got.shape)} != torch's {tuple(expected.shape)}"
        edt, gdt = _dtype_name(expected.dtype), _dtype_name(got.dtype)
        if edt != gdt:
            return f"{path}: dtype {gdt} != torch's {edt}"
        if not values:
            return None
        e = expected.detach().resolve_neg().resolve_conj().numpy()
        g = got.detach().numpy()
        return _compare_arrays(e, g, edt, factor, path)
    if isinstance(expected, (tuple, list)):
        if not isinstance(got, (tuple, list)):
            return f"{path}: expected a {type(expected).__name__}, got {type(got).__name__}"
        if len(got) != len(expected):
            return f"{path}: {len(got)} outputs != torch's {len(expected)}"
        for i, (e, g) in enumerate(zip(expected, got)):
            r = compare(e, g, dtype_name, values=values, factor=factor, path=f"{path}[{i}]")
            if r:
                return r
        return None
    if isinstance(expected, torch.dtype):
        return None if _dtype_name(got) == _dtype_name(expected) else \
            f"{path}: dtype {got} != torch's {expected}"
    if isinstance(expected, (bool, int, float)):
        if isinstance(got, jitgrad.Tensor):
            return f"{path}: a Tensor where torch returns a Python {type(expected).__name__}"
        if type(got) is not type(expected) and not (
                isinstance(expected, float) and isinstance(got, (int, float))):
            return f"{path}: {type(got).__name__} {got!r} != torch's " \
                   f"{type(expected).__name__} {expected!r}"
        return _compare_arrays(np.asarray(expected), np.asarray(got), dtype_name, factor, path)
    if expected is None:
        return None if got is None else f"{path}: {type(got).__name__} where torch gives None"
    return None if expected == got else f"{path}: {got!r} != torch's {expected!r}"


def _compare_arrays(e, g, dtype_name, factor, path):
    if e.dtype.kind in "fc" or g.dtype.kind in "fc":
        rtol, atol = TOLERANCES.get(dtype_name if dtype_name in TOLERANCES else "float32")
        if e.dtype == np.float64 and g.dtype == np.float64 and dtype_name not in TOLERANCES:
            rtol, atol = TOLERANCES["float64"]
        rtol, atol = rtol * factor, atol * factor
        e64, g64 = e.astype(np.float64), g.astype(np.float64)
        ok = np.isclose(g64, e64, rtol=rtol, atol=atol, equal_nan=True)
        if ok.all():
            return None
        bad = np.argwhere(~ok.reshape(e.shape) if e.shape else ~ok.reshape(()))
        idx = tuple(bad[0]) if e.shape else ()
        n = int((~ok).sum())
        return (f"{path}: {n}/{ok.size} values differ (rtol={rtol:g}, atol={atol:g}); "
                f"at {idx}: got {g64[idx]!r}, torch {e64[idx]!r}")
    if not np.array_equal(e, g):
        diff = np.argwhere(np.asarray(e != g).reshape(e.shape)) if e.shape else [()]
        idx = tuple(diff[0]) if len(diff) else ()
        return f"{path}: values differ; at {idx}: got {g[idx]!r}, torch {e[idx]!r}"
    return None


# ----------------------------------------------------------------------------------------------
# running

@dataclasses.dataclass
class SampleResult:
    status: str        # 'pass' | 'unsupported' | 'fail'
    detail: str = ""


@dataclasses.dataclass
class EntryResult:
    entry: str
    family: str
    status: str                  # 'pass' | 'fail' | 'unsupported' | 'missing' | 'out of scope'
    resolved: str = ""
    reason: str = ""             # out of scope reason / first failure / first unsupported
    samples: int = 0
    passed: int = 0
    unsupported: int = 0
    failed: int = 0
    missing_variants: tuple = ()
    seconds: float = 0.0


def _describe(sample) -> str:
    def d(x):
        import torch
        if isinstance(x, torch.Tensor):
            return f"Tensor{tuple(x.shape)}:{_dtype_name(x.dtype)}"
        if isinstance(x, (list, tuple)):
            inner = ", ".join(d(v) for v in x)
            return f"[{inner}]" if isinstance(x, list) else f"({inner})"
        if isinstance(x, dict):
            return "{" + ", ".join(f"{k}={d(v)}" for k, v in x.items()) + "}"
        r = repr(x)
        return r if len(r) < 40 else r[:37] + "..."
    s = f"input={d(sample.input)}"
    if sample.args:
        s += f", args={d(tuple(sample.args))}"
    if sample.kwargs:
        s += f", kwargs={d(sample.kwargs)}"
    return s


def _classify_error(e: BaseException, where: str) -> SampleResult:
    msg = f"{where}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:300]
    if isinstance(e, Unsupported):
        return SampleResult("unsupported", f"{where}: {e}")
    mod = type(e).__module__ or ""
    if isinstance(e, CLEAR_ERRORS) and not mod.startswith("numba"):
        return SampleResult("unsupported", msg)
    return SampleResult("fail", msg)


def _cotangents(outs, seed):
    import torch
    rng = np.random.default_rng(seed)
    return [torch.from_numpy(rng.standard_normal(tuple(o.shape))).to(o.dtype) for o in outs]


def run_sample(op, res: Resolved, sample, dtype_name: str, grad: bool, seed: int,
               values: bool) -> SampleResult:
    """One sample through torch and jitgrad: forward, then gradients when ``grad``."""
    import torch
    conv = Converter()
    try:
        j_in = conv(sample.input)
        j_args = conv(tuple(sample.args))
        j_kwargs = conv(dict(sample.kwargs))
    except Unsupported as e:
        return SampleResult("unsupported", f"argument: {e}")
    # torch first (on its own tensors; jitgrad's copies were taken before any in-place write)
    t_out = op.op(sample.input, *sample.args, **sample.kwargs)
    try:
        j_out = res.call(j_in, *j_args, **j_kwargs)
    except Exception as e:          # noqa: BLE001 -- every exception is classified, none hidden
        if res.how == "lambda" and _missing_name_error(e):
            return SampleResult("missing", str(e))
        return _classify_error(e, "forward")
    bad = compare(t_out, j_out, dtype_name, values=values)
    if bad:
        return SampleResult("fail", f"forward {bad}")
    if not grad:
        return SampleResult("pass")
    # gradients: torch's output_process_fn_grad picks the differentiable part of the output
    proc = sample.output_process_fn_grad
    t_sel = proc(t_out)
    try:
        j_sel = (_rebind(proc) if getattr(proc, "__name__", "") == "<lambda>" else proc)(j_out)
    except Exception as e:          # noqa: BLE001
        return _classify_error(e, "output_process_fn_grad")
    t_flat, j_flat = _flatten(t_sel, []), _flatten(j_sel, [])
    if len(t_flat) != len(j_flat):
        return SampleResult("fail", f"grad outputs: {len(j_flat)} tensors != torch's "
                                    f"{len(t_flat)}")
    pairs = [(t, j) for t, j in zip(t_flat, j_flat) if t.requires_grad]
    leaves = conv.torch_leaves()
    if not pairs or not leaves or not values:
        return SampleResult("pass")
    t_outs = [t for t, _ in pairs]
    cots = _cotangents(t_outs, seed)
    t_grads = torch.autograd.grad(t_outs, [t for t, _ in leaves], cots, allow_unused=True)
    try:
        j_outs = [j for _, j in pairs]
        for k, j in enumerate(j_outs):
            if not j.requires_grad:
                return SampleResult("fail", f"grad: output {k} does not require grad "
                                            f"(torch's does)")
        j_cots = [jitgrad.tensor(c.numpy(), dtype=_jg_dtype(c.dtype)) for c in cots]
        j_grads = jitgrad.autograd.grad(j_outs, [j for _, j in leaves], j_cots,
                                        allow_unused=True)
    except Exception as e:          # noqa: BLE001
        return _classify_error(e, "backward")
    for k, ((t, _), tg, jg) in enumerate(zip(leaves, t_grads, j_grads)):
        if tg is None:
            tg = torch.zeros_like(t)
        if jg is None:
            jg = jitgrad.zeros(*t.shape, dtype=_jg_dtype(t.dtype))
        bad = compare(tg, jg, dtype_name, factor=GRAD_TOL_FACTOR.get(dtype_name, 1.0),
                      path=f"grad[{k}]")
        if bad:
            return SampleResult("fail", bad)
    return SampleResult("pass")


def run_variant(op, method_name: str, sample, dtype_name: str, inplace: bool) -> SampleResult:
    """Forward only: ``Tensor.<method_name>`` on jitgrad vs torch (in-place on copies)."""
    import torch
    t_in = sample.input
    if not isinstance(t_in, torch.Tensor):
        return SampleResult("pass")
    conv = Converter()
    try:
        j_in = conv(t_in.detach().clone())
        j_args = conv(tuple(_detach(a) for a in sample.args))
        j_kwargs = conv({k: _detach(v) for k, v in sample.kwargs.items()})
    except Unsupported as e:
        return SampleResult("unsupported", f"argument: {e}")
    t_self = t_in.detach().clone()
    try:
        with torch.no_grad():
            t_out = getattr(t_self, method_name)(*[_detach(a) for a in sample.args],
                                                 **{k: _detach(v)
                                                    for k, v in sample.kwargs.items()})
    except Exception:               # noqa: BLE001 -- torch rejects it (in-place broadcasting)
        return SampleResult("pass")
    try:
        j_out = getattr(j_in, method_name)(*j_args, **j_kwargs)
    except Exception as e:          # noqa: BLE001
        return _classify_error(e, f"Tensor.{method_name}")
    bad = compare(t_out, j_out, dtype_name, values=op.name not in NONDETERMINISTIC,
                  path=f"Tensor.{method_name}")
    if bad is None and inplace:
        if j_out is not j_in:
            return SampleResult("fail", f"Tensor.{method_name} did not return self")
        bad = compare(t_self, j_in, dtype_name, values=op.name not in NONDETERMINISTIC,
                      path=f"Tensor.{method_name} self")
    return SampleResult("fail", bad) if bad else SampleResult("pass")


def _detach(x):
    import torch
    if isinstance(x, torch.Tensor):
        return x.detach().clone()
    if isinstance(x, (list, tuple)) and not hasattr(x, "_fields"):
        return type(x)(_detach(v) for v in x)
    return x


def _dtypes_for(op, dtypes):
    import torch
    sup = op.supported_dtypes("cpu")
    return [d for d in dtypes if getattr(torch, d) in sup]


def samples_for(op, dtype_name: str, requires_grad: bool, max_samples: int | None):
    """torch's sample inputs for one dtype, generated under a fixed seed (reproducible)."""
    import torch
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        it = op.sample_inputs("cpu", getattr(torch, dtype_name), requires_grad=requires_grad)
        out = []
        for s in it:
            out.append(s)
            if max_samples is not None and len(out) >= max_samples:
                break
    return out


def run_entry(op, dtypes=DEFAULT_DTYPES, max_samples: int | None = None,
              variants: bool = True) -> EntryResult:
    """Every sample of one OpInfo entry, in each of ``dtypes`` that it supports on CPU."""
    import torch
    t0 = time.perf_counter()
    eid, fam = entry_id(op), family(op)
    why = out_of_scope(op)
    if why:
        return EntryResult(eid, fam, "out of scope", reason=why)
    res = resolve(op)
    if res is None:
        return EntryResult(eid, fam, "missing", reason=f"no jitgrad.{op.name} / Tensor method")
    r = EntryResult(eid, fam, "pass", resolved=res.label, missing_variants=res.missing_variants)
    values = op.name not in NONDETERMINISTIC
    first_fail = first_unsup = None
    seed_base = zlib.crc32(eid.encode())
    for dt in _dtypes_for(op, dtypes):
        floating = dt in ("float32", "float64")
        grad = floating and op.supports_autograd
        try:
            samples = samples_for(op, dt, grad, max_samples)
        except Exception as e:      # noqa: BLE001 -- torch's own generator failed: report it
            first_unsup = first_unsup or f"[{dt}] torch sample generation: {e!r}"[:300]
            continue
        for i, s in enumerate(samples):
            with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
                warnings.simplefilter("ignore")
                try:
                    sr = run_sample(op, res, s, dt, grad, seed_base + i, values)
                except Exception as e:  # noqa: BLE001 -- torch itself rejected the sample
                    sr = SampleResult("skip", f"torch raised {e!r}")
                if sr.status == "missing":
                    return EntryResult(eid, fam, "missing", reason=sr.detail[:200])
                if sr.status == "pass" and variants and dt != "float32":
                    for name, inpl in ((res.method, False), (res.inplace, True)):
                        if name and sr.status == "pass":
                            sr = run_variant(op, name, s, dt, inpl)
            if sr.status == "skip":
                continue
            r.samples += 1
            where = f"[{dt}] sample {i} ({_describe(s)}): {sr.detail}"
            if sr.status == "pass":
                r.passed += 1
            elif sr.status == "unsupported":
                r.unsupported += 1
                first_unsup = first_unsup or where
            else:
                r.failed += 1
                first_fail = first_fail or where
    if r.failed:
        r.status, r.reason = "fail", first_fail
    elif r.unsupported or not r.samples:
        r.status, r.reason = "unsupported", first_unsup or "no sample ran"
    r.seconds = time.perf_counter() - t0
    return r


def select_ops(op_db, names=None):
    """Entries whose name or entry id is in ``names`` (all when None)."""
    if not names:
        return list(op_db)
    want = set(names)
    return [op for op in op_db if op.name in want or entry_id(op) in want]


# ----------------------------------------------------------------------------------------------
# report

STATUSES = ("pass", "fail", "unsupported", "missing", "out of scope")


def summary_table(results) -> str:
    """Counts per family: in scope, resolved, passing every sample, failing, unsupported."""
    fams = defaultdict(Counter)
    for r in results:
        fams[r.family][r.status] += 1
    head = f"{'family':22} {'entries':>7} {'in scope':>8} {'resolved':>8} {'pass':>5} " \
           f"{'fail':>5} {'unsup':>5} {'missing':>7} {'out':>5}"
    lines = [head, "-" * len(head)]
    tot = Counter()

    def row(name, c):
        in_scope = sum(c[s] for s in STATUSES[:4])
        resolved = sum(c[s] for s in STATUSES[:3])
        return (f"{name:22} {sum(c.values()):7d} {in_scope:8d} {resolved:8d} {c['pass']:5d} "
                f"{c['fail']:5d} {c['unsupported']:5d} {c['missing']:7d} "
                f"{c['out of scope']:5d}")
    for fam in sorted(fams):
        lines.append(row(fam, fams[fam]))
        tot.update(fams[fam])
    lines.append("-" * len(head))
    lines.append(row("total", tot))
    return "\n".join(lines)


def write_report(results, fh, header: str = ""):
    w = fh.write
    w("# jitgrad vs PyTorch OpInfo (torch.testing._internal.common_methods_invocations.op_db)\n\n")
    if header:
        w(header + "\n\n")
    w("```\n" + summary_table(results) + "\n```\n\n")
    for status in ("fail", "unsupported", "missing", "out of scope"):
        rs = [r for r in results if r.status == status]
        if not rs:
            continue
        w(f"## {status} ({len(rs)})\n\n")
        for r in sorted(rs, key=lambda r: (r.family, r.entry)):
            counts = f" [{r.passed}/{r.samples} samples pass]" if r.samples else ""
            w(f"- `{r.entry}` ({r.family}){counts}: {r.reason}\n")
        w("\n")
    passing = sorted(r.entry for r in results if r.status == "pass")
    w(f"## pass ({len(passing)})\n\n" + ", ".join(f"`{e}`" for e in passing) + "\n\n")
    mv = [(r.entry, r.missing_variants) for r in results if r.missing_variants]
    if mv:
        w(f"## resolved entries lacking torch's method / in-place variants ({len(mv)})\n\n")
        for e, v in sorted(mv):
            w(f"- `{e}`: {', '.join(v)}\n")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m jitgrad.testing.torch_conformance",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--report", help="write a Markdown coverage report to this file")
    p.add_argument("--json", help="write per-entry results as JSON to this file")
    p.add_argument("--ops", help="comma-separated entry names or ids (default: all)")
    p.add_argument("--dtypes", default=",".join(DEFAULT_DTYPES),
                   help="comma-separated dtypes (default: %(default)s)")
    p.add_argument("--max-samples", type=int, default=None,
                   help="at most this many samples per entry and dtype (default: all)")
    p.add_argument("--no-variants", action="store_true",
                   help="skip the method / in-place variants")
    p.add_argument("-v", "--verbose", action="store_true", help="one line per entry")
    a = p.parse_args(argv)
    dtypes = tuple(d.strip() for d in a.dtypes.split(",") if d.strip())
    for d in dtypes:
        if d not in ("float32", "float64", "int32", "int64", "bool"):
            p.error(f"unsupported dtype {d!r}")
    names = [n.strip() for n in a.ops.split(",")] if a.ops else None
    op_db = load_op_db()
    ops = select_ops(op_db, names)
    if names and not ops:
        p.error(f"no op_db entry named {a.ops}")
    t0 = time.perf_counter()
    results = []
    for op in ops:
        r = run_entry(op, dtypes, a.max_samples, variants=not a.no_variants)
        results.append(r)
        if a.verbose:
            print(f"{r.entry:40} {r.status:12} {r.passed}/{r.samples} {r.seconds:6.1f}s "
                  f"{r.reason[:150]}", flush=True)
    elapsed = time.perf_counter() - t0
    cap = f", at most {a.max_samples} samples per entry and dtype" if a.max_samples else ""
    header = (f"torch {__import__('torch').__version__}, {len(op_db)} op_db entries; dtypes "
              f"{', '.join(dtypes)}{cap}; {elapsed:.0f} s.\nCommand: `python -m "
              f"jitgrad.testing.torch_conformance {' '.join(argv if argv is not None else sys.argv[1:])}`")
    print(summary_table(results))
    print(header.splitlines()[0])
    if a.report:
        with open(a.report, "w") as fh:
            write_report(results, fh, header)
    if a.json:
        import json
        with open(a.json, "w") as fh:
            json.dump([dataclasses.asdict(r) for r in results], fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
