"""jitgrad: PyTorch-style reverse-mode autograd whose primitives and VJPs are Numba kernels
generated from one op registry. ``import jitgrad`` and write PyTorch code.

Nothing compiles at import: kernels are generated and compiled on first use, then cached in
memory and on disk (see jitgrad.backends.cpu).
"""
from . import dtypes as _dtypes
from .dtypes import (bool_ as bool, float32, float64, int32, int64, get_default_dtype,
                     set_default_dtype)
from ._tensor import (Size, Tensor, device, full, get_default_device, set_default_device, tensor,
                      zeros)
from .creation import (arange, as_tensor, empty, empty_like, eye, from_dlpack, from_numpy,
                       full_like,
                       linspace, manual_seed, ones, ones_like, rand, rand_like, randint, randn,
                       randn_like, randperm, seed, zeros_like)
from .creation import (Generator, default_generator, get_rng_state, initial_seed,
                       set_rng_state)
from .creation import (bernoulli, empty_permuted, empty_strided, inference_mode,  # issue 16
                       is_inference_mode_enabled, logspace, multinomial, normal, randint_like,
                       scalar_tensor, tril_indices, triu_indices)
from ._state import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from . import functional_ops as _F
from .functional_ops import (abs, add, allclose, amax, amin, argmax, argmin, bmm, broadcast_to,
                             cat, chunk, clamp, clip, concat, cos, cumsum, div, dot, eq, equal,
                             erf, exp, expm1, flatten, flip, ge, gt, inner, isfinite, isnan, le,
                             log, log1p, log_softmax, logical_and, logical_not, logsumexp, lt,
                             matmul, max, maximum, mean, min, minimum, mm, mul, mv, ne, neg,
                             negative, nonzero, outer, permute, pow, prod, reciprocal, relu,
                             reshape, rsqrt, select, sigmoid, sign, sin, softmax, split, sqrt,
                             square, squeeze, stack, std, sub, sum, t, tan, tanh, transpose,
                             unbind, unsqueeze, var, where)
from .functional_ops import (acos, acosh, arccos, arccosh, arcsin, arcsinh, arctan, arctan2,
                             arctanh, asin, asinh, atan, atan2, atanh, ceil, cosh, deg2rad, erfc,
                             exp2, fix, floor, frac, hypot, log10, log2, logaddexp, rad2deg,
                             round, sinh, trunc)
from .functional_ops import (  # issue 16's elementwise breadth
    addcdiv, addcmul, bitwise_and, bitwise_left_shift, bitwise_not, bitwise_or,
    bitwise_right_shift, bitwise_xor, clamp_max, clamp_min, copysign, digamma, erfinv,
    float_power, floor_divide, fmax, fmin, fmod, heaviside, isinf, isneginf, isposinf, isreal,
    lerp, lgamma, logical_or, logical_xor, logit, nan_to_num, polygamma, remainder, sgn,
    signbit, sinc, true_divide, xlogy)
from .ops_api import special  # noqa: E402  (torch.special's names)
from .ops_api import *  # noqa: E402,F401,F403  (families added for breadth)
from . import linalg  # noqa: E402  (torch.linalg's names)
from . import autograd, nn  # noqa: E402
from . import optim  # noqa: E402  (torch.optim: fused optimizers, lr schedulers)
from .autograd import functional as _autograd_functional  # noqa: E402,F401
from . import func  # noqa: E402  (torch.func-style transforms)
from .capture import compile, jit  # noqa: E402  (whole-step capture and replay)
from .batching import vmap  # noqa: E402  (torch.vmap, = jitgrad.func.vmap)
from .explain import explain  # noqa: E402
from . import utils  # noqa: E402
from .utils import data as _utils_data  # noqa: E402,F401  (jitgrad.utils.data: DataLoader)
from .serialization import load, save  # noqa: E402
from ._format import set_printoptions  # noqa: E402

float = float32
double = float64
long = int64
int = int32
# no float16 kernels: these names exist so that dtype=jitgrad.half raises a clear TypeError
float16 = half = _dtypes.float16
bfloat16 = _dtypes.bfloat16
multiply, divide, subtract = mul, div, sub
greater, less, greater_equal, less_equal, not_equal = gt, lt, ge, le, ne


def is_tensor(x) -> "bool":
    return isinstance(x, Tensor)


def numel(x) -> "int":
    return x.numel()


from . import cuda  # noqa: E402  (torch.cuda-style helpers; imports numba.cuda lazily)
from . import _debug  # noqa: E402


def explain_kernels():
    """Counters of generated kernels built and launched (see JITGRAD_DEBUG=1 for sources)."""
    return dict(_debug.COUNTERS)


__version__ = "0.1.0"


def _accept_torch_keywords():
    """torch's keyword names for the functions whose own parameters are named ``x, y`` or
    ``a, b`` (``jitgrad.matmul(input=a, other=b)``, ``jitgrad.add(x, other=y)``, ``jitgrad.
    sum(input=x, dim=1)``): the public functions of the jitgrad namespace are wrapped so that
    ``input`` fills the first parameter and ``other``/``mat2``/``vec``/``vec2``/``tensor``/
    ``exponent`` the second. Tensor methods call the functions directly (no wrapper)."""
    import functools
    import inspect
    second = ("other", "mat2", "vec", "vec2", "tensor", "exponent")
    g = globals()
    for name, f in list(g.items()):
        if name.startswith("_") or not inspect.isfunction(f) or \
                not f.__module__.startswith("jitgrad."):
            continue
        params = list(inspect.signature(f).parameters.values())
        if not params or params[0].name not in ("x", "a") or \
                params[0].kind is not inspect.Parameter.POSITIONAL_OR_KEYWORD:
            continue
        p1 = params[1].name if len(params) > 1 and params[1].name in ("y", "b") else None

        def make(f, p1):
            @functools.wraps(f)
            def call(*args, **kw):
                if kw:
                    if "input" in kw and not args:
                        args = (kw.pop("input"),)
                    if p1 is not None and len(args) == 1:
                        for k in second:
                            if k in kw:
                                args = args + (kw.pop(k),)
                                break
                return f(*args, **kw)
            return call
        g[name] = make(f, p1)


_accept_torch_keywords()
