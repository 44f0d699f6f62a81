"""dtypes: the torch-named dtype objects and torch's type-promotion rules."""
from __future__ import annotations

import numpy as np


class DType:
    """A torch-style dtype: prints as ``jitgrad.float32`` and wraps a NumPy dtype."""

    __slots__ = ("name", "np", "is_floating_point", "category", "itemsize")

    def __init__(self, name: str, np_dtype, category: int):
        self.name = name
        self.np = np.dtype(np_dtype)
        self.category = category  # 0 bool, 1 integer, 2 floating: torch's promotion categories
        self.is_floating_point = category == 2
        self.itemsize = self.np.itemsize

    def __repr__(self):
        return f"jitgrad.{self.name}"

    def __reduce__(self):
        return (from_any, (self.name,))


bool_ = DType("bool", np.bool_, 0)
int32 = DType("int32", np.int32, 1)
int64 = DType("int64", np.int64, 1)
float32 = DType("float32", np.float32, 2)
float64 = DType("float64", np.float64, 2)

ALL = (bool_, int32, int64, float32, float64)


class UnsupportedDType:
    """A torch dtype name jitgrad has no kernels for (``jitgrad.half``): it exists so that
    ``dtype=jitgrad.half`` raises a clear TypeError instead of meaning the default dtype.

    Why refused rather than stored as float16 and computed in float32 (CPU torch's way): every
    generated kernel (elementwise, fused, VJP, reductions, the optimizers' step) and the Numba
    scalar types would need a float16 load/store path, and NumPy has no bfloat16 at all. So
    float16 is refused wherever it can enter: ``dtype=`` arguments in any spelling (jitgrad,
    NumPy, torch, strings), ``.to``/``.half()``/``.type``, and float16 NumPy arrays given to
    ``tensor``/``from_numpy``/``as_tensor``/``from_dlpack``/elementwise ops (``from_numpy``
    below)."""

    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name

    def __repr__(self):
        return f"jitgrad.{self.name}"

    def error(self, what: str = "") -> TypeError:
        hint = "" if not what else \
            f" ({what}: convert it first, e.g. arr.astype(np.float32), or pass dtype=)"
        return TypeError(f"jitgrad does not support dtype {self.name}{hint}: its kernels compute "
                         f"in {', '.join(x.name for x in ALL)}; use jitgrad.float32 (or "
                         "float64)")


float16 = UnsupportedDType("float16")
bfloat16 = UnsupportedDType("bfloat16")
_UNSUPPORTED = {"float16": float16, "half": float16, "bfloat16": bfloat16}
_BY_NP = {d.np: d for d in ALL}
_BY_NAME = {d.name: d for d in ALL}
_BY_NAME.update({"float": float32, "double": float64, "long": int64, "int": int32, "bool_": bool_})
_ALIASES = {float: float32, int: int64, bool: bool_}

_default_float = float32


def get_default_dtype() -> DType:
    return _default_float


def set_default_dtype(d) -> None:
    global _default_float
    d = from_any(d)
    if not d.is_floating_point:
        raise TypeError(f"set_default_dtype only supports floating point dtypes, got {d}")
    _default_float = d


def from_any(d) -> DType:
    """Accept a DType, a NumPy dtype/type, a name ('float32'), a Python type or a torch dtype.
    None is refused (callers pass None for "the default"); so are float16/bfloat16 in any
    spelling (no float16 kernels: silently computing in float32 would mislead)."""
    if isinstance(d, DType):
        return d
    if isinstance(d, UnsupportedDType):
        raise d.error()
    if d is None:
        raise TypeError("dtype must be a jitgrad dtype, got None")
    if d in _ALIASES:
        if d is float:
            return _default_float
        return _ALIASES[d]
    if isinstance(d, str):
        key = d.rsplit(".", 1)[-1]
        if key in _BY_NAME:
            return _BY_NAME[key]
        if key in _UNSUPPORTED:
            raise _UNSUPPORTED[key].error()
        raise TypeError(f"unknown dtype {d!r}; supported: {', '.join(x.name for x in ALL)}")
    try:
        npd = np.dtype(d)
    except TypeError:
        s = str(d)  # e.g. torch.float32
        if s.startswith("torch."):
            return from_any(s)
        raise TypeError(f"unknown dtype {d!r}") from None
    if npd == np.float16:
        raise float16.error()
    return from_numpy(npd)


def from_numpy(npd) -> DType:
    """The jitgrad dtype that holds values of NumPy dtype ``npd`` (int8 -> int32...). float16
    raises: a float16 array becoming float32 silently would hide a dtype jitgrad lacks."""
    try:
        return _BY_NP[npd]
    except KeyError:
        pass
    npd = np.dtype(npd)
    if npd in _BY_NP:
        return _BY_NP[npd]
    if npd == np.float16:
        raise float16.error("got float16 data")
    if npd.kind == "f":
        return float64 if npd.itemsize >= 8 else float32
    if npd.kind in "iu":
        return int32 if (npd.kind == "i" and npd.itemsize <= 4) or npd.itemsize < 4 else int64
    if npd.kind == "b":
        return bool_
    raise TypeError(f"jitgrad has no dtype for NumPy dtype {npd}; supported: "
                    f"{', '.join(x.name for x in ALL)}")


def promote_types(a: DType, b: DType) -> DType:
    """Promotion of two dtypes of equal standing (both dimensioned tensors, say)."""
    if a is b:
        return a
    if a.category != b.category:
        return a if a.category > b.category else b
    return a if a.itemsize >= b.itemsize else b


def _scalar_category(x) -> int:
    if isinstance(x, (bool, np.bool_)):
        return 0
    if isinstance(x, (int, np.integer)):
        return 1
    return 2


def result_type(tensor_dtypes, zero_dim_dtypes=(), scalars=()) -> DType:
    """torch's rule: dimensioned tensors outrank 0-d tensors, which outrank Python scalars; a
    lower-ranked operand only matters when its category (bool < int < float) is higher."""
    res = None
    for d in tensor_dtypes:
        res = d if res is None else promote_types(res, d)
    zres = None
    for d in zero_dim_dtypes:
        zres = d if zres is None else promote_types(zres, d)
    if res is None:
        res = zres
    elif zres is not None and zres.category > res.category:
        res = zres
    if scalars:
        cat = max(_scalar_category(s) for s in scalars)
        if res is None:
            res = (bool_, int64, _default_float)[cat]
        elif cat > res.category:
            res = int64 if cat == 1 else _default_float
    return res
