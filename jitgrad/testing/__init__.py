"""jitgrad.testing: gradient checks and the per-op test table (``opinfo.OPINFOS``)."""
from ..autograd.gradcheck import GradcheckError, gradcheck, gradgradcheck

__all__ = ["GradcheckError", "gradcheck", "gradgradcheck"]
