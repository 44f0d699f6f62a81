"""Thread-local runtime state (``STATE``): grad mode (no_grad / enable_grad / set_grad_enabled,
context managers and decorators like torch), the active tracer, and lazy fusion's per-thread
state (pending records, fusion and depth-limit overrides, realisations in progress). See the
README's "Threading model"."""
from __future__ import annotations

import functools
import threading


class _State(threading.local):
    """One per thread. Class attributes are the defaults every thread starts with (immutable
    values only: a thread's own objects are made on first use, e.g. ``lazy._thread_pending``)."""
    enabled = True
    tracer = None  # the innermost active autograd.trace.Tracer (records primitives), or None
    # lazy.py: this thread's pending records (a lazy._Pending, made on first record), its
    # fusion switch (None: the process-wide lazy.ENABLED; the tracer and recording_only set
    # it), its depth limit (None: lazy.depth_limit; backward sweeps raise it) and the claim
    # of the realisation it is running (lazy._Claim; a thread holding one never waits)
    pending = None
    fusion = None
    depth_limit = None
    claim = None
    draws = 0      # random draws made by this thread (the tracer notices them)
    recorder = None  # the capture.Recorder logging this thread's array ops (jitgrad.compile)
    default_device = None  # set_default_device: where factories put tensors (None: the CPU)


STATE = _State()


def is_grad_enabled() -> bool:
    return STATE.enabled


class _GradModeContext:
    """Base of no_grad / enable_grad: a context manager, and a decorator with or without
    parentheses (``@no_grad`` and ``@no_grad()``), like torch."""
    _target: bool

    def __new__(cls, orig_func=None):
        self = super().__new__(cls)
        if orig_func is not None and callable(orig_func):
            return self(orig_func)
        return self

    def __init__(self, orig_func=None):
        pass

    def __enter__(self):
        self._prev = STATE.enabled
        STATE.enabled = self._target
        return self

    def __exit__(self, *exc):
        STATE.enabled = self._prev
        return False

    def _fresh(self):
        return type(self)()

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with self._fresh():
                return fn(*args, **kwargs)
        return wrapper


class no_grad(_GradModeContext):
    """Disable gradient recording inside the block (or the decorated function)."""
    _target = False


class enable_grad(_GradModeContext):
    """Enable gradient recording inside the block (or the decorated function)."""
    _target = True


class set_grad_enabled(_GradModeContext):
    """``set_grad_enabled(False)`` takes effect at once (like torch) and also works as a
    context manager that restores the previous mode on exit, or as a decorator (which restores
    the mode at decoration time and applies it on each call)."""

    def __new__(cls, mode):
        return object.__new__(cls)

    def __init__(self, mode: bool):
        self._target = bool(mode)
        self._prev = STATE.enabled
        STATE.enabled = self._target

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        STATE.enabled = self._prev
        return False

    def _fresh(self):
        return set_grad_enabled(self._target)

    def __call__(self, fn):
        STATE.enabled = self._prev
        return super().__call__(fn)
