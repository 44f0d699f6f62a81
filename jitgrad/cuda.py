"""``jitgrad.cuda``: torch.cuda's everyday functions for jitgrad's CUDA backend.

Nothing here imports numba.cuda until called (``import jitgrad`` stays fast)."""
from __future__ import annotations

from .backends import cuda as _cb


def is_available() -> bool:
    """True when numba.cuda can run kernels: a GPU with a driver, or NUMBA_ENABLE_CUDASIM=1."""
    return _cb.is_available()


def device_count() -> int:
    return _cb.device_count()


def current_device() -> int:
    _cb.require()
    return 0


def get_device_name(device=None) -> str:
    _cb.require()
    if _cb.simulated():
        return "numba.cuda simulator"
    name = _cb.cu().get_current_device().name
    return name.decode() if isinstance(name, bytes) else str(name)


def synchronize(device=None) -> None:
    """Wait for every queued kernel (kernels run asynchronously; reading a value waits too)."""
    _cb.synchronize()


def memory_allocated(device=None) -> int:
    """Bytes of device memory held by live tensors (rounded to the allocator's block sizes)."""
    return _cb.STATS["bytes_in_use"]


def memory_reserved(device=None) -> int:
    """Bytes held by the caching allocator: live tensors plus cached free blocks."""
    return _cb.STATS["bytes_reserved"]


def empty_cache() -> None:
    """Return the cached free blocks to the driver."""
    _cb.empty_cache()


def allocator_stats() -> dict:
    """Caching allocator counters: ``allocs`` (real cudaMalloc calls), ``reuses`` (blocks handed
    out again), bytes in use and reserved."""
    return dict(_cb.STATS)
