"""jitgrad.linalg: torch.linalg's names (norms, inverses, determinants, solvers and
decompositions), implemented in jitgrad/ops_api/linalg.py and re-exported here.

The decompositions run NumPy/LAPACK on the host; a CUDA tensor is copied to the host, computed
and copied back. Their gradients are written with jitgrad's own ops (differentiable again).
"""
from .ops_api.linalg import cross_linalg as cross  # noqa: F401
from .ops_api.linalg import linalg_norm as norm  # noqa: F401
from .ops_api.linalg import diagonal, matrix_norm, multi_dot, vecdot, vector_norm  # noqa: F401

__all__ = ["cross", "diagonal", "matrix_norm", "multi_dot", "norm", "vecdot", "vector_norm"]
from .ops_api.linalg import LinAlgError, det, inv, matrix_power, slogdet, solve  # noqa: F401,E402

__all__ += ["LinAlgError", "det", "inv", "matrix_power", "slogdet", "solve"]
from .ops_api.linalg import linalg_cholesky as cholesky  # noqa: E402
from .ops_api.linalg import linalg_qr as qr  # noqa: E402
from .ops_api.linalg import linalg_svd as svd  # noqa: E402
from .ops_api.linalg import eigh, eigvalsh, pinv, svdvals  # noqa: F401,E402

__all__ += ["cholesky", "qr", "svd", "eigh", "eigvalsh", "pinv", "svdvals"]
