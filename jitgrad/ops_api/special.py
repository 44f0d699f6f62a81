"""jitgrad.special: the torch.special names jitgrad has, i.e. functional_ops' elementwise ops
under torch.special's names (``xlog1py`` is a registry row of its own), and the composites
ndtr, ndtri, log_ndtr, entr, erfcx of ops_api.misc."""
from .misc import entr, erfcx, log_ndtr, ndtr, ndtri
from ..functional_ops import (digamma, erf, erfc, erfinv, exp2, expm1, lgamma, log1p, logit,
                             polygamma, round, sigmoid, sinc, xlog1py, xlogy)

psi = digamma
gammaln = lgamma
expit = sigmoid

__all__ = ["digamma", "erf", "erfc", "erfinv", "exp2", "expit", "expm1", "gammaln", "log1p",
           "logit", "polygamma", "psi", "round", "sinc", "xlog1py", "xlogy",
           "ndtr", "ndtri", "log_ndtr", "entr", "erfcx"]
