"""Shared setup for the pytest-benchmark suites in bench/.

Run:  python -m pytest bench                 # full timings
      python -m pytest -q bench --quick      # smoke: 1 round each, checks values only

Conventions for bench files:
* every benchmark sets ``benchmark.extra_info["peer"]`` (jitgrad, torch, jax,
  njit_floor, ...) and ``benchmark.extra_info["case"]`` (what is measured);
  the summary printed at the end puts the peers of one case side by side with
  their ratio to jitgrad;
* ``benchmark.extra_info["ops"] = n`` makes the summary print time per op;
* peers' values are checked against a reference *outside* the timed part;
  benchmarks never assert on times.
"""
from __future__ import annotations

import os
import platform
from collections import defaultdict

import numpy as np
import pytest

from bench import machine

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Numba's "omp" threading layer (its default when the system libgomp is found) and torch's own
# bundled OpenMP runtime interfere badly in one process: once torch runs with fewer threads than
# cores (bench_fusion's default torch.set_num_threads(1), or OMP_NUM_THREADS=1), every parallel
# jitgrad kernel and every later torch op slow down 10-20x (W2 step: jitgrad 11 -> 87 ms, torch
# 3.5 -> 45 ms). Benchmark sessions therefore use the "workqueue" layer unless the caller chose
# one; the report's machine header shows it. (workqueue is not threadsafe: two threads in
# parallel kernels at once abort the process. jitgrad serialises its own parallel launches under
# it, backends/cpu.py ParallelKernel; a peer's own Numba parallel code is not covered.)
os.environ.setdefault("NUMBA_THREADING_LAYER", "workqueue")


def pytest_addoption(parser):
    parser.addoption(
        "--quick", action="store_true", default=False,
        help="bench smoke test: run each benchmark once (1 round, 1 iteration) and "
             "only check that every peer computes the same values as jitgrad.")


def pytest_configure(config):
    # Runs before pytest-benchmark's own (trylast) pytest_configure, which reads
    # these options into the BenchmarkSession defaults.
    if config.getoption("--quick", default=False):
        opt = config.option
        opt.benchmark_min_rounds = 1
        opt.benchmark_max_time = 0.0
        opt.benchmark_min_time = 0.0
        opt.benchmark_warmup = False
        opt.benchmark_calibration_precision = 1


@pytest.fixture(scope="session")
def quick(request) -> bool:
    return bool(request.config.getoption("--quick"))


@pytest.fixture(scope="session")
def pedantic_kwargs(quick):
    """kwargs for ``benchmark.pedantic`` (slow, few-round benchmarks)."""
    if quick:
        return dict(rounds=1, iterations=1, warmup_rounds=0)
    return dict(rounds=5, iterations=1, warmup_rounds=1)


def _assert_close(name, got, want, rtol=1e-5, atol=1e-6):
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"{name}: shape {got.shape} != {want.shape}"
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, err_msg=name)


@pytest.fixture(scope="session")
def assert_close():
    """``assert_close(name, got, want, rtol=1e-5, atol=1e-6)`` on array-likes."""
    return _assert_close


def pytest_sessionstart(session):
    session.config._jitgrad_loadavg_start = machine.loadavg()


def _machine(config) -> dict:
    """``bench.machine.describe()`` measured once per session (floors included; smaller
    measurements under --quick)."""
    info = getattr(config, "_jitgrad_machine", None)
    if info is None:
        info = machine.describe(measure=True, quick=bool(config.getoption("--quick")))
        config._jitgrad_machine = info
    return info


@pytest.fixture(scope="session")
def machine_info(request) -> dict:
    """The machine and its floors (copy GB/s, sgemm GFLOP/s); also stored in the
    --benchmark-json file as ``machine_info["jitgrad"]``."""
    return _machine(request.config)


def pytest_report_header(config):
    v = {k: val for k, val in machine.versions().items() if k != "python"}
    vs = ", ".join(f"{k} {val}" for k, val in v.items() if val)
    missing = [k for k, val in v.items() if not val]
    lines = [f"bench: {platform.python_implementation()} {platform.python_version()}, "
             f"{os.cpu_count()} cpus, {vs}"]
    if missing:
        lines.append(f"bench: not installed: {', '.join(missing)}")
    if config.getoption("--quick"):
        lines.append("bench: --quick: 1 round per benchmark, timings are not meaningful")
    return lines


def pytest_benchmark_update_machine_info(config, machine_info):
    info = _machine(config)
    info["blas"] = machine.blas()  # now: after the benchmarks loaded torch/jax's pools too
    info["loadavg_start"] = getattr(config, "_jitgrad_loadavg_start", None)
    info["loadavg_end"] = machine.loadavg()
    machine_info["jitgrad"] = info
    machine_info["versions"] = info["versions"]
    machine_info["cpu_count"] = os.cpu_count()
    machine_info["blas"] = info["blas"]
    machine_info["env"] = info["env"]
    machine_info["quick"] = bool(config.getoption("--quick"))


def _fmt(t):
    if t is None:
        return "-"
    for unit, f in (("s", 1.0), ("ms", 1e3), ("us", 1e6), ("ns", 1e9)):
        if t * f >= 1.0:
            return f"{t * f:.3g} {unit}"
    return f"{t * 1e9:.3g} ns"


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    bs = getattr(config, "_benchmarksession", None)
    if bs is None or not bs.benchmarks:
        return
    cases = defaultdict(dict)
    for b in bs.benchmarks:
        if not b or "peer" not in b.extra_info:
            continue
        cases[(b.group, b.extra_info.get("case", b.name))][b.extra_info["peer"]] = b
    if not cases:
        return
    tr = terminalreporter
    tr.write_sep("-", "jitgrad vs peers (min time; ratio = peer / jitgrad, <1 means peer faster)")
    baseline = {}
    for (group, case), peers in cases.items():
        if "python" in peers:  # import group: interpreter start-up baseline
            baseline[group] = peers["python"].stats.min
    gw = max(len(str(g)) for g, _ in cases)
    cw = max(len(str(c)) for _, c in cases)
    pw = max(len(str(p)) for peers in cases.values() for p in peers)
    for (group, case), peers in sorted(cases.items(), key=lambda kv: (str(kv[0][0]), kv[0][1])):
        ref = peers.get("jitgrad")
        for peer, b in sorted(peers.items(), key=lambda kv: kv[1].stats.min):
            t = b.stats.min
            ops = b.extra_info.get("ops")
            extra = []
            if ops:
                extra.append(f"{_fmt(t / ops)}/op")
            if group in baseline and peer != "python":
                extra.append(f"net of python start-up {_fmt(t - baseline[group])}")
            if "in_process_s" in b.extra_info:
                extra.append(f"in-process {_fmt(b.extra_info['in_process_s'])}")
            ratio = f"x{t / ref.stats.min:.3g}" if ref is not None and ref.stats.min else ""
            tr.write_line(f"{str(group):<{gw}} {str(case):<{cw}} {peer:<{pw}} min {_fmt(t):>9} "
                          f"median {_fmt(b.stats.median):>9} {ratio:>8}  {'; '.join(extra)}".rstrip())
