"""gradcheck / gradgradcheck (torch's signatures); they live in jitgrad.autograd.gradcheck, as
torch.autograd.gradcheck does (``testing`` is the top layer: nothing in the package imports it)."""
from ..autograd.gradcheck import GradcheckError, gradcheck, gradgradcheck  # noqa: F401
