"""_methods: ``TensorMethods``, the Tensor methods whose implementations live in a higher layer.

Every public op method of ``Tensor`` is declared here, with its signature (the operators are
in ``Tensor``'s own body), so readers, IDEs and type checkers see the whole class. Each one
delegates to ``IMPL``, the one table the layers above fill when they are imported:
``functional_ops`` registers the public functions (``x.sum(1)`` runs
``functional_ops.sum(x, 1)``), ``autograd`` registers ``backward`` and ``_tensor`` the core
names the structural vocabulary uses. That table is the only way a lower module reaches a
higher one (see README, "How it is built"); ``import jitgrad`` fills it before any Tensor can
be made.
"""
from __future__ import annotations

__all__ = ["IMPL", "TensorMethods", "implement"]


class _Impl:
    """The implementations ``TensorMethods`` delegates to, by name (``IMPL.sum``)."""

    def __getattr__(self, name):  # only reached for a name nobody registered
        raise RuntimeError(f"Tensor method implementation {name!r} is not registered: import "
                           "jitgrad (functional_ops and autograd fill jitgrad._methods.IMPL)")


IMPL = _Impl()


def implement(**fns) -> None:
    """Register the implementations of Tensor methods (called by the layers above at import)."""
    for name, fn in fns.items():
        setattr(IMPL, name, fn)


class TensorMethods:
    """Mixin of ``Tensor``: its op methods (implementations in functional_ops). The operators
    are in ``Tensor``'s own body (they check the operand type against ``Tensor`` itself)."""

    __slots__ = ()

    @property
    def T(self):
        """All dimensions reversed (``permute(n-1, ..., 0)``)."""
        return IMPL._T(self)

    @property
    def mT(self):
        """The last two dimensions swapped (batches of matrices)."""
        return IMPL._mT(self)

    # -- elementwise, reductions, movement, matmul, softmax, in-place: see functional_ops for
    # each one's documentation (same name, except max/min/flip/new_*: _max_method, ...)
    def exp(self):
        return IMPL.exp(self)

    def log(self):
        return IMPL.log(self)

    def log1p(self):
        return IMPL.log1p(self)

    def expm1(self):
        return IMPL.expm1(self)

    def sqrt(self):
        return IMPL.sqrt(self)

    def rsqrt(self):
        return IMPL.rsqrt(self)

    def sin(self):
        return IMPL.sin(self)

    def cos(self):
        return IMPL.cos(self)

    def tan(self):
        return IMPL.tan(self)

    def tanh(self):
        return IMPL.tanh(self)

    def sigmoid(self):
        return IMPL.sigmoid(self)

    def relu(self):
        return IMPL.relu(self)

    def square(self):
        return IMPL.square(self)

    def reciprocal(self):
        return IMPL.reciprocal(self)

    def neg(self):
        return IMPL.neg(self)

    def negative(self):
        return IMPL.negative(self)

    def abs(self):
        return IMPL.abs(self)

    def sign(self):
        return IMPL.sign(self)

    def erf(self):
        return IMPL.erf(self)

    def erfc(self):
        return IMPL.erfc(self)

    def log2(self):
        return IMPL.log2(self)

    def log10(self):
        return IMPL.log10(self)

    def exp2(self):
        return IMPL.exp2(self)

    def sinh(self):
        return IMPL.sinh(self)

    def cosh(self):
        return IMPL.cosh(self)

    def asinh(self):
        return IMPL.asinh(self)

    def acosh(self):
        return IMPL.acosh(self)

    def atanh(self):
        return IMPL.atanh(self)

    def asin(self):
        return IMPL.asin(self)

    def acos(self):
        return IMPL.acos(self)

    def atan(self):
        return IMPL.atan(self)

    def arcsinh(self):
        return IMPL.arcsinh(self)

    def arccosh(self):
        return IMPL.arccosh(self)

    def arctanh(self):
        return IMPL.arctanh(self)

    def arcsin(self):
        return IMPL.arcsin(self)

    def arccos(self):
        return IMPL.arccos(self)

    def arctan(self):
        return IMPL.arctan(self)

    def deg2rad(self):
        return IMPL.deg2rad(self)

    def rad2deg(self):
        return IMPL.rad2deg(self)

    def floor(self):
        return IMPL.floor(self)

    def ceil(self):
        return IMPL.ceil(self)

    def trunc(self):
        return IMPL.trunc(self)

    def fix(self):
        return IMPL.fix(self)

    def frac(self):
        return IMPL.frac(self)

    def round(self, *, decimals=0):
        return IMPL.round(self, decimals=decimals)

    def atan2(self, other):
        return IMPL.atan2(self, other)

    def arctan2(self, other):
        return IMPL.arctan2(self, other)

    def hypot(self, other):
        return IMPL.hypot(self, other)

    def logaddexp(self, other):
        return IMPL.logaddexp(self, other)

    def maximum(self, y):
        return IMPL.maximum(self, y)

    def minimum(self, y):
        return IMPL.minimum(self, y)

    def clamp(self, min=None, max=None):
        return IMPL.clamp(self, min, max)

    def clip(self, min=None, max=None):
        return IMPL.clip(self, min, max)

    def add(self, y, alpha=1):
        return IMPL.add(self, y, alpha)

    def sub(self, y, alpha=1):
        return IMPL.sub(self, y, alpha)

    def mul(self, y):
        return IMPL.mul(self, y)

    def div(self, y, rounding_mode=None):
        return IMPL.div(self, y, rounding_mode)

    def pow(self, y):
        return IMPL.pow(self, y)

    def eq(self, y):
        return IMPL.eq(self, y)

    def ne(self, y):
        return IMPL.ne(self, y)

    def lt(self, y):
        return IMPL.lt(self, y)

    def le(self, y):
        return IMPL.le(self, y)

    def gt(self, y):
        return IMPL.gt(self, y)

    def ge(self, y):
        return IMPL.ge(self, y)

    def sum(self, dim=None, keepdim=False, dtype=None):
        return IMPL.sum(self, dim, keepdim, dtype)

    def mean(self, dim=None, keepdim=False, dtype=None):
        return IMPL.mean(self, dim, keepdim, dtype)

    def prod(self, dim=None, keepdim=False, dtype=None):
        return IMPL.prod(self, dim, keepdim, dtype)

    def argmax(self, dim=None, keepdim=False):
        return IMPL.argmax(self, dim, keepdim)

    def argmin(self, dim=None, keepdim=False):
        return IMPL.argmin(self, dim, keepdim)

    def amax(self, dim=None, keepdim=False):
        return IMPL.amax(self, dim, keepdim)

    def amin(self, dim=None, keepdim=False):
        return IMPL.amin(self, dim, keepdim)

    def logsumexp(self, dim, keepdim=False):
        return IMPL.logsumexp(self, dim, keepdim)

    def var(self, dim=None, unbiased=None, keepdim=False, *, correction=None):
        return IMPL.var(self, dim, unbiased, keepdim, correction=correction)

    def std(self, dim=None, unbiased=None, keepdim=False, *, correction=None):
        return IMPL.std(self, dim, unbiased, keepdim, correction=correction)

    def reshape(self, *shape, grad_fn=None):
        if grad_fn is None:  # (the common call: no keyword to pass on)
            return IMPL.reshape(self, *shape)
        return IMPL.reshape(self, *shape, grad_fn=grad_fn)

    def view(self, *shape):
        return IMPL.view(self, *shape)

    def flatten(self, start_dim=0, end_dim=-1):
        return IMPL.flatten(self, start_dim, end_dim)

    def squeeze(self, dim=None):
        return IMPL.squeeze(self, dim)

    def unsqueeze(self, dim):
        return IMPL.unsqueeze(self, dim)

    def t(self):
        return IMPL.t(self)

    def transpose(self, dim0, dim1):
        return IMPL.transpose(self, dim0, dim1)

    def swapaxes(self, dim0, dim1):
        return IMPL.swapaxes(self, dim0, dim1)

    def permute(self, *dims, grad_fn=None):
        if grad_fn is None:  # (the common call: no keyword to pass on)
            return IMPL.permute(self, *dims)
        return IMPL.permute(self, *dims, grad_fn=grad_fn)

    def expand(self, *sizes):
        return IMPL.expand(self, *sizes)

    def expand_as(self, other):
        return IMPL.expand_as(self, other)

    def split(self, split_size_or_sections, dim=0):
        return IMPL.split(self, split_size_or_sections, dim)

    def chunk(self, chunks, dim=0):
        return IMPL.chunk(self, chunks, dim)

    def unbind(self, dim=0):
        return IMPL.unbind(self, dim)

    def select(self, dim, index):
        return IMPL.select(self, dim, index)

    def matmul(self, b):
        return IMPL.matmul(self, b)

    def mm(self, b):
        return IMPL.mm(self, b)

    def bmm(self, b):
        return IMPL.bmm(self, b)

    def mv(self, b):
        return IMPL.mv(self, b)

    def dot(self, b):
        return IMPL.dot(self, b)

    def inner(self, b):
        return IMPL.inner(self, b)

    def outer(self, b):
        return IMPL.outer(self, b)

    def softmax(self, dim=None, dtype=None):
        return IMPL.softmax(self, dim, dtype)

    def log_softmax(self, dim=None, dtype=None):
        return IMPL.log_softmax(self, dim, dtype)

    def add_(self, y, alpha=1):
        return IMPL.add_(self, y, alpha)

    def sub_(self, y, alpha=1):
        return IMPL.sub_(self, y, alpha)

    def mul_(self, y):
        return IMPL.mul_(self, y)

    def div_(self, y, *, rounding_mode=None):
        return IMPL.div_(self, y, rounding_mode=rounding_mode)

    def pow_(self, y):
        return IMPL.pow_(self, y)

    def clamp_(self, min=None, max=None):
        return IMPL.clamp_(self, min, max)

    def neg_(self):
        return IMPL.neg_(self)

    def erfc_(self):
        return IMPL.erfc_(self)

    def log2_(self):
        return IMPL.log2_(self)

    def log10_(self):
        return IMPL.log10_(self)

    def exp2_(self):
        return IMPL.exp2_(self)

    def sinh_(self):
        return IMPL.sinh_(self)

    def cosh_(self):
        return IMPL.cosh_(self)

    def asinh_(self):
        return IMPL.asinh_(self)

    def acosh_(self):
        return IMPL.acosh_(self)

    def atanh_(self):
        return IMPL.atanh_(self)

    def asin_(self):
        return IMPL.asin_(self)

    def acos_(self):
        return IMPL.acos_(self)

    def atan_(self):
        return IMPL.atan_(self)

    def deg2rad_(self):
        return IMPL.deg2rad_(self)

    def rad2deg_(self):
        return IMPL.rad2deg_(self)

    def frac_(self):
        return IMPL.frac_(self)

    def floor_(self):
        return IMPL.floor_(self)

    def ceil_(self):
        return IMPL.ceil_(self)

    def trunc_(self):
        return IMPL.trunc_(self)

    def fix_(self):
        return IMPL.fix_(self)

    def arcsinh_(self):
        return IMPL.arcsinh_(self)

    def arccosh_(self):
        return IMPL.arccosh_(self)

    def arctanh_(self):
        return IMPL.arctanh_(self)

    def arcsin_(self):
        return IMPL.arcsin_(self)

    def arccos_(self):
        return IMPL.arccos_(self)

    def arctan_(self):
        return IMPL.arctan_(self)

    def round_(self, *, decimals=0):
        return IMPL.round_(self, decimals=decimals)

    def atan2_(self, other):
        return IMPL.atan2_(self, other)

    def hypot_(self, other):
        return IMPL.hypot_(self, other)

    def arctan2_(self, other):
        return IMPL.arctan2_(self, other)

    def zero_(self):
        return IMPL.zero_(self)

    def fill_(self, value):
        return IMPL.fill_(self, value)

    def copy_(self, src, non_blocking=False):
        return IMPL.copy_(self, src, non_blocking)

    def logical_and(self, b):
        return IMPL.logical_and(self, b)

    def logical_not(self):
        return IMPL.logical_not(self)

    def isnan(self):
        return IMPL.isnan(self)

    def isfinite(self):
        return IMPL.isfinite(self)

    def nonzero(self, as_tuple=False):
        return IMPL.nonzero(self, as_tuple)

    def equal(self, b):
        return IMPL.equal(self, b)

    def allclose(self, b, rtol=1e-05, atol=1e-08, equal_nan=False):
        return IMPL.allclose(self, b, rtol, atol, equal_nan)

    def broadcast_to(self, shape):
        return IMPL.broadcast_to(self, shape)

    def where(self, condition, other):
        """torch's Tensor.where: ``where(condition, self, other)``."""
        return IMPL.where(condition, self, other)

    def cumsum(self, dim, *, dtype=None):
        return IMPL.cumsum(self, dim, dtype=dtype)

    def max(self, dim=None, keepdim=False):
        return IMPL._max_method(self, dim, keepdim)

    def flip(self, *dims, **kwargs):
        if kwargs:  # x.flip(dims=...)
            return IMPL.flip(self, **kwargs)
        return IMPL._flip_method(self, *dims)

    def min(self, dim=None, keepdim=False):
        return IMPL._min_method(self, dim, keepdim)

    def multiply(self, y):
        return IMPL.mul(self, y)

    def divide(self, y, rounding_mode=None):
        return IMPL.div(self, y, rounding_mode)

    def subtract(self, y, alpha=1):
        return IMPL.sub(self, y, alpha)

    def new_tensor(self, data, dtype=None, device=None, requires_grad=False):
        return IMPL._new_tensor(self, data, dtype, device, requires_grad)

    def new_zeros(self, *size, dtype=None, device=None, requires_grad=False):
        return IMPL._new_zeros(self, *size, dtype=dtype, device=device, requires_grad=requires_grad)

    def new_ones(self, *size, dtype=None, device=None, requires_grad=False):
        return IMPL._new_ones(self, *size, dtype=dtype, device=device, requires_grad=requires_grad)

    def new_full(self, size, fill_value, dtype=None, device=None, requires_grad=False):
        return IMPL._new_full(self, size, fill_value, dtype, device, requires_grad)

    # -- elementwise, issue 16 breadth (implementations in functional_ops) --
    def fmod(self, other):
        return IMPL.fmod(self, other)

    def fmod_(self, other):
        return IMPL.fmod_(self, other)

    def remainder(self, other):
        return IMPL.remainder(self, other)

    def remainder_(self, other):
        return IMPL.remainder_(self, other)

    def floor_divide(self, other):
        return IMPL.floor_divide(self, other)

    def floor_divide_(self, other):
        return IMPL.floor_divide_(self, other)

    def true_divide(self, other):
        return IMPL.true_divide(self, other)

    def true_divide_(self, other):
        return IMPL.true_divide_(self, other)

    def xlogy(self, other):
        return IMPL.xlogy(self, other)

    def xlogy_(self, other):
        return IMPL.xlogy_(self, other)

    def copysign(self, other):
        return IMPL.copysign(self, other)

    def copysign_(self, other):
        return IMPL.copysign_(self, other)

    def fmax(self, other):
        return IMPL.fmax(self, other)

    def fmin(self, other):
        return IMPL.fmin(self, other)

    def bitwise_and(self, other):
        return IMPL.bitwise_and(self, other)

    def bitwise_and_(self, other):
        return IMPL.bitwise_and_(self, other)

    def bitwise_or(self, other):
        return IMPL.bitwise_or(self, other)

    def bitwise_or_(self, other):
        return IMPL.bitwise_or_(self, other)

    def bitwise_xor(self, other):
        return IMPL.bitwise_xor(self, other)

    def bitwise_xor_(self, other):
        return IMPL.bitwise_xor_(self, other)

    def bitwise_left_shift(self, other):
        return IMPL.bitwise_left_shift(self, other)

    def bitwise_left_shift_(self, other):
        return IMPL.bitwise_left_shift_(self, other)

    def bitwise_right_shift(self, other):
        return IMPL.bitwise_right_shift(self, other)

    def bitwise_right_shift_(self, other):
        return IMPL.bitwise_right_shift_(self, other)

    def logical_or(self, other):
        return IMPL.logical_or(self, other)

    def logical_or_(self, other):
        return IMPL.logical_or_(self, other)

    def logical_xor(self, other):
        return IMPL.logical_xor(self, other)

    def logical_xor_(self, other):
        return IMPL.logical_xor_(self, other)

    def logical_and_(self, other):
        return IMPL.logical_and_(self, other)

    def logical_not_(self):
        return IMPL.logical_not_(self)

    def divide_(self, other, *, rounding_mode=None):
        return IMPL.div_(self, other, rounding_mode=rounding_mode)

    def sinc(self):
        return IMPL.sinc(self)

    def sinc_(self):
        return IMPL.sinc_(self)

    def lgamma(self):
        return IMPL.lgamma(self)

    def lgamma_(self):
        return IMPL.lgamma_(self)

    def digamma(self):
        return IMPL.digamma(self)

    def digamma_(self):
        return IMPL.digamma_(self)

    def erfinv(self):
        return IMPL.erfinv(self)

    def erfinv_(self):
        return IMPL.erfinv_(self)

    def bitwise_not(self):
        return IMPL.bitwise_not(self)

    def bitwise_not_(self):
        return IMPL.bitwise_not_(self)

    def isinf(self):
        return IMPL.isinf(self)

    def isposinf(self):
        return IMPL.isposinf(self)

    def isneginf(self):
        return IMPL.isneginf(self)

    def isreal(self):
        return IMPL.isreal(self)

    def signbit(self):
        return IMPL.signbit(self)

    def sgn(self):
        return IMPL.sgn(self)

    def lerp(self, end, weight):
        return IMPL.lerp(self, end, weight)

    def lerp_(self, end, weight):
        return IMPL.lerp_(self, end, weight)

    def addcmul(self, tensor1, tensor2, *, value=1):
        return IMPL.addcmul(self, tensor1, tensor2, value=value)

    def addcmul_(self, tensor1, tensor2, *, value=1):
        return IMPL.addcmul_(self, tensor1, tensor2, value=value)

    def addcdiv(self, tensor1, tensor2, *, value=1):
        return IMPL.addcdiv(self, tensor1, tensor2, value=value)

    def addcdiv_(self, tensor1, tensor2, *, value=1):
        return IMPL.addcdiv_(self, tensor1, tensor2, value=value)

    def logit(self, eps=None):
        return IMPL.logit(self, eps)

    def logit_(self, eps=None):
        return IMPL.logit_(self, eps)

    def nan_to_num(self, nan=0.0, posinf=None, neginf=None):
        return IMPL.nan_to_num(self, nan, posinf, neginf)

    def nan_to_num_(self, nan=0.0, posinf=None, neginf=None):
        return IMPL.nan_to_num_(self, nan, posinf, neginf)

    def clamp_min(self, min):
        return IMPL.clamp_min(self, min)

    def clamp_min_(self, min):
        return IMPL.clamp_min_(self, min)

    def clamp_max(self, max):
        return IMPL.clamp_max(self, max)

    def clamp_max_(self, max):
        return IMPL.clamp_max_(self, max)

    def heaviside(self, values):
        return IMPL.heaviside(self, values)

    def heaviside_(self, values):
        return IMPL.heaviside_(self, values)

    def float_power(self, exponent):
        return IMPL.float_power(self, exponent)

    def float_power_(self, exponent):
        return IMPL.float_power_(self, exponent)

    def polygamma(self, n):
        return IMPL.polygamma(n, self)

    def polygamma_(self, n):
        return IMPL.polygamma_(self, n)

    # -- ops_api.reductions (implementations in jitgrad/ops_api/reductions.py) --
    def sort(self, dim=-1, descending=False, stable=False):
        return IMPL.sort(self, dim, descending, stable)

    def argsort(self, dim=-1, descending=False, stable=False):
        return IMPL.argsort(self, dim, descending, stable)

    def msort(self):
        return IMPL.msort(self)

    def topk(self, k, dim=-1, largest=True, sorted=True):
        return IMPL.topk(self, k, dim, largest, sorted)

    def kthvalue(self, k, dim=-1, keepdim=False):
        return IMPL.kthvalue(self, k, dim, keepdim)

    def any(self, dim=None, keepdim=False):
        return IMPL.any(self, dim, keepdim)

    def all(self, dim=None, keepdim=False):
        return IMPL.all(self, dim, keepdim)

    def count_nonzero(self, dim=None):
        return IMPL.count_nonzero(self, dim)

    def cumprod(self, dim, dtype=None):
        return IMPL.cumprod(self, dim, dtype=dtype)

    def cumprod_(self, dim, dtype=None):
        return IMPL.cumprod_(self, dim, dtype=dtype)

    def cummax(self, dim):
        return IMPL.cummax(self, dim)

    def cummin(self, dim):
        return IMPL.cummin(self, dim)

    def logcumsumexp(self, dim):
        return IMPL.logcumsumexp(self, dim)

    def median(self, dim=None, keepdim=False):
        return IMPL.median(self, dim, keepdim)

    def nanmedian(self, dim=None, keepdim=False):
        return IMPL.nanmedian(self, dim, keepdim)

    def mode(self, dim=-1, keepdim=False):
        return IMPL.mode(self, dim, keepdim)

    def nansum(self, dim=None, keepdim=False, dtype=None):
        return IMPL.nansum(self, dim, keepdim, dtype=dtype)

    def nanmean(self, dim=None, keepdim=False, dtype=None):
        return IMPL.nanmean(self, dim, keepdim, dtype=dtype)

    def aminmax(self, *, dim=None, keepdim=False):
        return IMPL.aminmax(self, dim=dim, keepdim=keepdim)

    def quantile(self, q, dim=None, keepdim=False, *, interpolation="linear"):
        return IMPL.quantile(self, q, dim, keepdim, interpolation=interpolation)

    def nanquantile(self, q, dim=None, keepdim=False, *, interpolation="linear"):
        return IMPL.nanquantile(self, q, dim, keepdim, interpolation=interpolation)

    def unique(self, sorted=True, return_inverse=False, return_counts=False, dim=None):
        return IMPL.unique(self, sorted, return_inverse, return_counts, dim)

    def unique_consecutive(self, return_inverse=False, return_counts=False, dim=None):
        return IMPL.unique_consecutive(self, return_inverse, return_counts, dim)

    # -- ops_api.indexing (implementations in jitgrad/ops_api/indexing.py) --
    def gather(self, dim, index, *, sparse_grad=False):
        return IMPL.gather(self, dim, index, sparse_grad=sparse_grad)

    def scatter(self, dim, index, src=None, value=None, *, reduce=None):
        return IMPL.scatter(self, dim, index, src, value, reduce=reduce)

    def scatter_(self, dim, index, src=None, value=None, *, reduce=None):
        return IMPL.scatter_(self, dim, index, src, value, reduce=reduce)

    def scatter_add(self, dim, index, src):
        return IMPL.scatter_add(self, dim, index, src)

    def scatter_add_(self, dim, index, src):
        return IMPL.scatter_add_(self, dim, index, src)

    def scatter_reduce(self, dim, index, src, reduce, *, include_self=True):
        return IMPL.scatter_reduce(self, dim, index, src, reduce, include_self=include_self)

    def scatter_reduce_(self, dim, index, src, reduce, *, include_self=True):
        return IMPL.scatter_reduce_(self, dim, index, src, reduce, include_self=include_self)

    def index_select(self, dim, index):
        return IMPL.index_select(self, dim, index)

    def index_add(self, dim, index, source, *, alpha=1):
        return IMPL.index_add(self, dim, index, source, alpha=alpha)

    def index_add_(self, dim, index, source, *, alpha=1):
        return IMPL.index_add_(self, dim, index, source, alpha=alpha)

    def index_copy(self, dim, index, source):
        return IMPL.index_copy(self, dim, index, source)

    def index_copy_(self, dim, index, source):
        return IMPL.index_copy_(self, dim, index, source)

    def index_fill(self, dim, index, value):
        return IMPL.index_fill(self, dim, index, value)

    def index_fill_(self, dim, index, value):
        return IMPL.index_fill_(self, dim, index, value)

    def index_reduce(self, dim, index, source, reduce, *, include_self=True):
        return IMPL.index_reduce(self, dim, index, source, reduce, include_self=include_self)

    def index_reduce_(self, dim, index, source, reduce, *, include_self=True):
        return IMPL.index_reduce_(self, dim, index, source, reduce, include_self=include_self)

    def index_put(self, indices, values, accumulate=False):
        return IMPL.index_put(self, indices, values, accumulate)

    def index_put_(self, indices, values, accumulate=False):
        return IMPL.index_put_(self, indices, values, accumulate)

    def masked_fill(self, mask, value):
        return IMPL.masked_fill(self, mask, value)

    def masked_fill_(self, mask, value):
        return IMPL.masked_fill_(self, mask, value)

    def masked_select(self, mask):
        return IMPL.masked_select(self, mask)

    def masked_scatter(self, mask, source):
        return IMPL.masked_scatter(self, mask, source)

    def masked_scatter_(self, mask, source):
        return IMPL.masked_scatter_(self, mask, source)

    def take(self, index):
        return IMPL.take(self, index)

    def take_along_dim(self, indices, dim=None):
        return IMPL.take_along_dim(self, indices, dim)

    def argwhere(self):
        return IMPL.argwhere(self)

    def nonzero_static(self, *, size, fill_value=-1):
        return IMPL.nonzero_static(self, size=size, fill_value=fill_value)


    # -- random fills and creation (implementations in jitgrad/creation.py) --
    def normal_(self, mean=0.0, std=1.0, *, generator=None):
        return IMPL.normal_(self, mean, std, generator=generator)

    def uniform_(self, *args, generator=None, **kwargs):  # (from, to): `from` is a keyword
        return IMPL.uniform_(self, *args, generator=generator, **kwargs)

    def exponential_(self, lambd=1.0, *, generator=None):
        return IMPL.exponential_(self, lambd, generator=generator)

    def geometric_(self, p, *, generator=None):
        return IMPL.geometric_(self, p, generator=generator)

    def cauchy_(self, median=0.0, sigma=1.0, *, generator=None):
        return IMPL.cauchy_(self, median, sigma, generator=generator)

    def log_normal_(self, mean=1.0, std=2.0, *, generator=None):
        return IMPL.log_normal_(self, mean, std, generator=generator)

    def bernoulli(self, p=None, *, generator=None):
        return IMPL.bernoulli(self, p, generator=generator)

    def bernoulli_(self, p=0.5, *, generator=None):
        return IMPL.bernoulli_(self, p, generator=generator)

    def multinomial(self, num_samples, replacement=False, *, generator=None):
        return IMPL.multinomial(self, num_samples, replacement, generator=generator)

    def new_empty(self, *size, dtype=None, device=None, requires_grad=False, **kwargs):
        return IMPL._new_empty(self, *size, dtype=dtype, device=device,
                               requires_grad=requires_grad)

    def new_empty_strided(self, size, stride, dtype=None, device=None, requires_grad=False,
                          **kwargs):
        return IMPL._new_empty_strided(self, size, stride, dtype, device, requires_grad)

    def type_as(self, other):
        """This tensor cast to ``other``'s dtype (itself when it already has it)."""
        return self.to(other.dtype)

    # -- ops_api.shape (implementations in jitgrad/ops_api/shape.py) --
    def fliplr(self):
        return IMPL.fliplr(self)

    def flipud(self):
        return IMPL.flipud(self)

    def roll(self, shifts, dims=None):
        return IMPL.roll(self, shifts, dims)

    def rot90(self, k=1, dims=(0, 1)):
        return IMPL.rot90(self, k, dims)

    def repeat(self, *sizes):
        return IMPL.repeat(self, *sizes)

    def tile(self, *dims):
        return IMPL.tile(self, dims[0] if len(dims) == 1 and isinstance(dims[0], (list, tuple))
                         else dims)

    def repeat_interleave(self, repeats=None, dim=None, *, output_size=None):
        return IMPL.repeat_interleave(self, repeats, dim, output_size=output_size)

    def narrow(self, dim, start, length):
        return IMPL.narrow(self, dim, start, length)

    def narrow_copy(self, dim, start, length):
        return IMPL.narrow_copy(self, dim, start, length)

    def movedim(self, source, destination):
        return IMPL.movedim(self, source, destination)

    def moveaxis(self, source, destination):
        return IMPL.moveaxis(self, source, destination)

    def swapdims(self, dim0, dim1):
        return IMPL.swapdims(self, dim0, dim1)

    def unflatten(self, dim, sizes):
        return IMPL.unflatten(self, dim, sizes)

    def unfold(self, dimension, size, step):
        return IMPL.unfold(self, dimension, size, step)

    def ravel(self):
        return IMPL.ravel(self)

    def view_as(self, other):
        return IMPL.view_as(self, other)

    def reshape_as(self, other):
        return IMPL.reshape_as(self, other)

    def sum_to_size(self, *size):
        return IMPL.sum_to_size(self, *size)

    def diagonal(self, offset=0, dim1=0, dim2=1):
        return IMPL.diagonal(self, offset, dim1, dim2)

    def diag(self, diagonal=0):
        return IMPL.diag(self, diagonal)

    def diag_embed(self, offset=0, dim1=-2, dim2=-1):
        return IMPL.diag_embed(self, offset, dim1, dim2)

    def diagflat(self, offset=0):
        return IMPL.diagflat(self, offset)

    def tril(self, diagonal=0):
        return IMPL.tril(self, diagonal)

    def triu(self, diagonal=0):
        return IMPL.triu(self, diagonal)

    def tril_(self, diagonal=0):
        return IMPL.tril_(self, diagonal)

    def triu_(self, diagonal=0):
        return IMPL.triu_(self, diagonal)

    def tensor_split(self, indices_or_sections, dim=0):
        return IMPL.tensor_split(self, indices_or_sections, dim)

    def hsplit(self, indices_or_sections):
        return IMPL.hsplit(self, indices_or_sections)

    def vsplit(self, indices_or_sections):
        return IMPL.vsplit(self, indices_or_sections)

    def dsplit(self, indices_or_sections):
        return IMPL.dsplit(self, indices_or_sections)

    def split_with_sizes(self, split_sizes, dim=0):
        return IMPL.split_with_sizes(self, split_sizes, dim)

    def unsafe_split(self, split_size, dim=0):
        return IMPL.unsafe_split(self, split_size, dim)

    def unsafe_chunk(self, chunks, dim=0):
        return IMPL.unsafe_chunk(self, chunks, dim)

    def select_scatter(self, src, dim, index):
        return IMPL.select_scatter(self, src, dim, index)

    def slice_scatter(self, src, dim=0, start=None, end=None, step=1):
        return IMPL.slice_scatter(self, src, dim, start, end, step)

    def diagonal_scatter(self, src, offset=0, dim1=0, dim2=1):
        return IMPL.diagonal_scatter(self, src, offset, dim1, dim2)

    def positive(self):
        return IMPL.positive(self)

    def conj(self):
        return IMPL.conj(self)

    def resolve_conj(self):
        return IMPL.resolve_conj(self)

    def resolve_neg(self):
        return IMPL.resolve_neg(self)

    def as_strided(self, size, stride, storage_offset=None):
        return IMPL.as_strided(self, size, stride, storage_offset)

    # -- ops_api.linalg (implementations in jitgrad/ops_api/linalg.py) --

    def vdot(self, other):
        return IMPL.vdot(self, other)

    def kron(self, other):
        return IMPL.kron(self, other)

    def trace(self):
        return IMPL.trace(self)

    def cross(self, other, dim=None):
        return IMPL.cross(self, other, dim)

    def addmm(self, mat1, mat2, *, beta=1, alpha=1):
        return IMPL.addmm(self, mat1, mat2, beta=beta, alpha=alpha)

    def addmm_(self, mat1, mat2, *, beta=1, alpha=1):
        return IMPL.addmm_(self, mat1, mat2, beta=beta, alpha=alpha)

    def addmv(self, mat, vec, *, beta=1, alpha=1):
        return IMPL.addmv(self, mat, vec, beta=beta, alpha=alpha)

    def addmv_(self, mat, vec, *, beta=1, alpha=1):
        return IMPL.addmv_(self, mat, vec, beta=beta, alpha=alpha)

    def addr(self, vec1, vec2, *, beta=1, alpha=1):
        return IMPL.addr(self, vec1, vec2, beta=beta, alpha=alpha)

    def addr_(self, vec1, vec2, *, beta=1, alpha=1):
        return IMPL.addr_(self, vec1, vec2, beta=beta, alpha=alpha)

    def baddbmm(self, batch1, batch2, *, beta=1, alpha=1):
        return IMPL.baddbmm(self, batch1, batch2, beta=beta, alpha=alpha)

    def baddbmm_(self, batch1, batch2, *, beta=1, alpha=1):
        return IMPL.baddbmm_(self, batch1, batch2, beta=beta, alpha=alpha)

    def addbmm(self, batch1, batch2, *, beta=1, alpha=1):
        return IMPL.addbmm(self, batch1, batch2, beta=beta, alpha=alpha)

    def addbmm_(self, batch1, batch2, *, beta=1, alpha=1):
        return IMPL.addbmm_(self, batch1, batch2, beta=beta, alpha=alpha)

    def norm(self, p="fro", dim=None, keepdim=False, dtype=None):
        return IMPL.norm(self, p, dim, keepdim, dtype=dtype)

    def dist(self, other, p=2):
        return IMPL.dist(self, other, p)

    def renorm(self, p, dim, maxnorm):
        return IMPL.renorm(self, p, dim, maxnorm)

    def renorm_(self, p, dim, maxnorm):
        return IMPL.renorm_(self, p, dim, maxnorm)

    def matrix_power(self, n):
        return IMPL.matrix_power(self, n)

    def det(self):
        return IMPL.det(self)

    def logdet(self):
        return IMPL.logdet(self)

    def slogdet(self):
        return IMPL.slogdet(self)

    def inverse(self):
        return IMPL.inverse(self)

    def cholesky(self, upper=False):
        return IMPL.cholesky(self, upper)

    def qr(self, some=True):
        return IMPL.qr(self, some)

    def svd(self, some=True, compute_uv=True):
        return IMPL.svd(self, some, compute_uv)

    @property
    def mH(self):
        """The conjugate transpose of the last two dims (real tensors: mT)."""
        return IMPL._mT(self)

    @property
    def H(self):
        """The conjugate transpose of a matrix (real tensors: T of a 2-D tensor)."""
        if self.dim() != 2:
            raise RuntimeError("tensor.H is only supported on matrices (2-D tensors). Got "
                               f"{self.dim()}-D tensor.")
        return IMPL._T(self)

    def adjoint(self):
        return IMPL._mT(self)

    # -- ops_api.misc (implementations in jitgrad/ops_api/misc.py) --

    def logaddexp2(self, other):
        return IMPL.logaddexp2(self, other)

    def ldexp(self, other):
        return IMPL.ldexp(self, other)

    def ldexp_(self, other):
        return IMPL.ldexp_(self, other)

    def nextafter(self, other):
        return IMPL.nextafter(self, other)

    def nextafter_(self, other):
        return IMPL.nextafter_(self, other)

    def angle(self):
        return IMPL.angle(self)

    def frexp(self):
        return IMPL.frexp(self)

    def mvlgamma(self, p):
        return IMPL.mvlgamma(self, p)

    def mvlgamma_(self, p):
        return IMPL.mvlgamma_(self, p)

    def isclose(self, other, rtol=1e-05, atol=1e-08, equal_nan=False):
        return IMPL.isclose(self, other, rtol, atol, equal_nan)

    def diff(self, n=1, dim=-1, prepend=None, append=None):
        return IMPL.diff(self, n, dim, prepend, append)

    def cov(self, *, correction=1, fweights=None, aweights=None):
        return IMPL.cov(self, correction=correction, fweights=fweights, aweights=aweights)

    def corrcoef(self):
        return IMPL.corrcoef(self)

    def bincount(self, weights=None, minlength=0):
        return IMPL.bincount(self, weights, minlength)

    def histc(self, bins=100, min=0, max=0):
        return IMPL.histc(self, bins, min, max)

    def gcd(self, other):
        return IMPL.gcd(self, other)

    def gcd_(self, other):
        return IMPL.gcd_(self, other)

    def lcm(self, other):
        return IMPL.lcm(self, other)

    def lcm_(self, other):
        return IMPL.lcm_(self, other)

    def put(self, index, source, accumulate=False):
        return IMPL.put(self, index, source, accumulate)

    def put_(self, index, source, accumulate=False):
        return IMPL.put_(self, index, source, accumulate)
