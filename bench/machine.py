"""What machine a benchmark ran on, and its measured floors.

Used by ``bench/conftest.py`` (a session fixture and the ``pytest_benchmark_update_machine_info``
hook, so every ``--benchmark-json`` file carries it under ``machine_info["jitgrad"]``) and by
``bench/report.py`` (which reads it back, or measures this machine when a JSON file lacks it).

``python -m bench.machine`` prints it as JSON.

The floors:

* ``copy_gbps`` -- ``np.copyto`` of a float32 array far larger than the last-level cache,
  counted STREAM-style as read + write bytes (2 x nbytes) per copy; best of several copies.
  A workload that must move B bytes cannot take less than ``B / copy_gbps``.
* ``sgemm_gflops`` -- float32 ``a @ b`` on square matrices through NumPy's BLAS with its default
  thread count, 2 n^3 flops per product; best of several. A workload of F flops of gemm cannot
  take less than ``F / sgemm_gflops``.
"""
from __future__ import annotations

import json
import os
import platform
import sys
import time
from importlib import metadata

import numpy as np

DISTS = ("jitgrad", "numpy", "numba", "llvmlite", "scipy", "torch", "jax", "jaxlib",
         "pytest-benchmark", "threadpoolctl", "matplotlib")

# (flag in /proc/cpuinfo, name), best first
_SIMD_LEVELS = (
    ("avx512f", "AVX-512"),
    ("avx2", "AVX2"),
    ("avx", "AVX"),
    ("sse4_2", "SSE4.2"),
    ("sse2", "SSE2"),
    ("sve", "SVE"),
    ("asimd", "NEON"),
)
_AVX512_SUBSETS = ("avx512dq", "avx512cd", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16",
                   "avx512_fp16", "amx_tile")


def versions() -> dict:
    out = {"python": platform.python_version()}
    for d in DISTS:
        try:
            out[d] = metadata.version(d)
        except metadata.PackageNotFoundError:
            out[d] = None
    return out


def _cpuinfo_fields(path="/proc/cpuinfo") -> dict:
    """The first processor block of /proc/cpuinfo as a dict (empty off Linux)."""
    fields: dict = {}
    try:
        with open(path) as f:
            for line in f:
                if not line.strip():
                    if fields:
                        break
                    continue
                key, _, val = line.partition(":")
                fields.setdefault(key.strip(), val.strip())
    except OSError:
        pass
    return fields


def simd_level(flags) -> str:
    """Highest SIMD extension named in ``flags`` (a /proc/cpuinfo flags list), e.g.
    ``"AVX-512 (dq, cd, bw, vl, vnni)"``; ``"unknown"`` when there are no flags."""
    flags = set(flags)
    for flag, name in _SIMD_LEVELS:
        if flag in flags:
            if flag == "avx512f":
                subs = [s.replace("avx512_", "").replace("avx512", "")
                        for s in _AVX512_SUBSETS if s in flags]
                if subs:
                    name += f" ({', '.join(subs)})"
            if flag in ("avx2", "avx512f") and "fma" in flags:
                name += " + FMA"
            return name
    return "unknown"


def cpu() -> dict:
    f = _cpuinfo_fields()
    flags = f.get("flags", f.get("Features", "")).split()
    model = f.get("model name") or f.get("Hardware") or platform.processor() or platform.machine()
    try:
        affinity = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        affinity = None
    return {
        "model": model,
        "arch": platform.machine(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": affinity,
        "cores_per_socket": int(f["cpu cores"]) if f.get("cpu cores", "").isdigit() else None,
        "simd": simd_level(flags),
        "flags": [fl for fl in flags if fl.startswith(("sse", "avx", "fma", "amx", "asimd", "sve"))],
    }


def blas() -> list | None:
    """threadpoolctl's view of the BLAS/OpenMP pools loaded in this process (None when
    threadpoolctl is missing)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    return [{k: i.get(k) for k in ("user_api", "internal_api", "version", "num_threads",
                                   "architecture", "threading_layer")}
            | {"library": os.path.basename(i.get("filepath") or "")}
            for i in threadpool_info()]


def env() -> dict:
    return {k: v for k, v in os.environ.items()
            if k.startswith(("NUMBA_", "OMP_", "OPENBLAS_", "MKL_", "JAX_", "XLA_", "JITGRAD_"))}


def _best(fn, repeat: int, budget_s: float) -> float:
    fn()  # warm: page in, spin up BLAS threads
    best = float("inf")
    t_end = time.perf_counter() + budget_s
    for i in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
        if i >= 2 and time.perf_counter() > t_end:
            break
    return best


def copy_bandwidth(nbytes: int = 256 << 20, repeat: int = 10, budget_s: float = 2.0) -> float:
    """Copy bandwidth in GB/s (1e9 bytes/s), read + write counted."""
    n = nbytes // 4
    src = np.ones(n, np.float32)
    dst = np.empty_like(src)
    t = _best(lambda: np.copyto(dst, src), repeat, budget_s)
    return 2 * src.nbytes / t / 1e9


def sgemm_rate(n: int = 1024, repeat: int = 10, budget_s: float = 2.0) -> float:
    """float32 n x n @ n x n through NumPy's BLAS, in GFLOP/s."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    out = np.empty((n, n), np.float32)
    t = _best(lambda: np.matmul(a, b, out=out), repeat, budget_s)
    return 2 * n**3 / t / 1e9


def floors(quick: bool = False) -> dict:
    """Measure the copy bandwidth and the sgemm rate (smaller and cruder with ``quick``)."""
    if quick:
        nbytes, n, repeat, budget = 64 << 20, 512, 3, 0.3
    else:
        nbytes, n, repeat, budget = 256 << 20, 1024, 10, 2.0
    return {
        "copy_gbps": copy_bandwidth(nbytes, repeat, budget),
        "copy_bytes": nbytes,
        "sgemm_gflops": sgemm_rate(n, repeat, budget),
        "sgemm_n": n,
        "quick": quick,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def loadavg():
    try:
        return list(os.getloadavg())
    except (AttributeError, OSError):
        return None


def describe(measure: bool = True, quick: bool = False) -> dict:
    """Everything the report header shows, as a JSON-able dict."""
    info = {
        "cpu": cpu(),
        "blas": blas(),
        "versions": versions(),
        "platform": platform.platform(),
        "python_implementation": platform.python_implementation(),
        "env": env(),
        "loadavg": loadavg(),
    }
    if measure:
        info["floors"] = floors(quick)
    return info


if __name__ == "__main__":
    json.dump(describe(quick="--quick" in sys.argv), sys.stdout, indent=2)
    sys.stdout.write("\n")
