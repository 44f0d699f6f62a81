"""ops_api.shape: the shape family of public ops added for PyTorch breadth (issue 16).

Each public function is exported through __all__ (jitgrad.<name>) and registered with
_methods.implement when its Tensor method exists (declared in _methods.TensorMethods).
"""
from __future__ import annotations

__all__: list = []
