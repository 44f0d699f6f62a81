"""Thread-local grad mode: no_grad / enable_grad / set_grad_enabled (context managers and
decorators, like torch)."""
from __future__ import annotations

import functools
import threading


class _State(threading.local):
    enabled = True


STATE = _State()


def is_grad_enabled() -> bool:
    return STATE.enabled


class _GradModeContext:
    _target: bool

    def __enter__(self):
        self._prev = STATE.enabled
        STATE.enabled = self._target
        return self

    def __exit__(self, *exc):
        STATE.enabled = self._prev
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with self.__class__() if not isinstance(self, set_grad_enabled) \
                    else set_grad_enabled(self._target):
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
    context manager that restores the previous mode on exit."""

    def __init__(self, mode: bool):
        self._target = bool(mode)
        self._prev = STATE.enabled
        STATE.enabled = self._target

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        STATE.enabled = self._prev
        return False
