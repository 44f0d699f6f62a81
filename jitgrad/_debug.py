"""Debug counters and logging (``JITGRAD_DEBUG=1`` prints every kernel compile)."""
import os
import sys

COUNTERS: dict = {"kernels_built": 0, "kernel_launches": 0}
ENABLED = os.environ.get("JITGRAD_DEBUG", "0") not in ("", "0")


def count(name: str, n: int = 1) -> None:
    COUNTERS[name] = COUNTERS.get(name, 0) + n


def log(msg: str) -> None:
    if ENABLED:
        print(f"[jitgrad] {msg}", file=sys.stderr)
