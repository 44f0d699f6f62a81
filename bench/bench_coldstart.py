"""W6 cold start: a fresh interpreter, from its start to the first W3 backward finished.

W3 is the first seed tutorial's tiny example (``bench/workloads.py``: ``x = ones(5)``,
``z = x @ w + b``, BCE-with-logits against ``zeros(3)``, ``backward()``), with fixed ``w``,
``b`` so every peer's loss and gradients can be checked against torch / float64 NumPy.

Group ``coldstart``, case ``W3 first backward, fresh process``; peers:

* ``jitgrad`` -- warm kernel cache: ``JITGRAD_CACHE_DIR`` is a directory an untimed warm-up
  round filled (under ``--quick``: no warm-up round, and the session's own cache directory,
  which earlier runs -- in CI the test suite -- usually filled);
* ``jitgrad_cold`` -- an empty kernel cache (a new ``JITGRAD_CACHE_DIR`` every round), so every
  kernel W3 needs is generated and compiled (skipped under ``--quick``: it takes seconds);
* ``torch`` -- the same tutorial in PyTorch eager;
* ``jax`` -- ``jax.jit(jax.value_and_grad(loss))``, first call (trace + compile + run);
* ``python`` -- ``python -c`` start-up alone, the floor.

The timed quantity is the whole child process; the child leaves with ``os._exit`` right after
printing, so interpreter teardown is not counted. ``extra_info`` also holds the child's own
figures (medians over rounds): ``import_s`` (``import jitgrad`` / ``torch`` / ``jax``),
``first_call_s`` (the first forward+backward, compile or cache loads included) and
``to_backward_s`` (spawn to the end of the first backward, by the monotonic clock).
``import jitgrad`` alone, in a fresh process, is bench_core.py's ``import`` group.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time

import pytest

from bench import workloads as W

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEERS = ["jitgrad", "jitgrad_cold", "torch", "jax", "python"]

_CHILD = textwrap.dedent("""
    import json, os, sys, time
    t0 = time.perf_counter()
    peer = sys.argv[1]
    if peer.startswith("jitgrad"):
        import jitgrad as lib
    elif peer == "torch":
        import torch as lib
    else:
        import jax
    t1 = time.perf_counter()
    from bench import workloads as W
    if peer == "jax":
        step, result = W.tutorial_jax_step(jax)
        out = step()
        t2 = time.perf_counter()
        loss, (gw, gb) = out
    else:
        _, _, w, b = W.tutorial_inputs()
        w = lib.tensor(w, requires_grad=True)
        b = lib.tensor(b, requires_grad=True)
        step, result = W.tutorial_eager_step(lib, w, b)
        loss = step()
        t2 = time.perf_counter()
        gw, gb = w.grad, b.grad
    res = [float(loss), W.to_numpy(gw).tolist(), W.to_numpy(gb).tolist()]
    sys.stdout.write(json.dumps(dict(done=t2, import_s=t1 - t0, first_call_s=t2 - t1, res=res)))
    sys.stdout.flush()
    os._exit(0)
""")


def _env(cache_dir):
    env = dict(os.environ)
    env.pop("JITGRAD_CACHE", None)
    if cache_dir is not None:
        env["JITGRAD_CACHE_DIR"] = cache_dir
    env["PYTHONPATH"] = os.pathsep.join(p for p in (REPO_ROOT, env.get("PYTHONPATH")) if p)
    return env


def _run_child(peer, cache_dir):
    """Run one fresh process; returns the child's figures plus ``to_backward_s``."""
    cmd = [sys.executable, "-c", "pass"] if peer == "python" else \
        [sys.executable, "-c", _CHILD, peer]
    env = _env(cache_dir)
    t_spawn = time.perf_counter()
    out = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"{peer} child failed:\n{out.stderr[-3000:]}")
    if peer == "python":
        return {}
    r = json.loads(out.stdout)
    r["to_backward_s"] = r.pop("done") - t_spawn
    return r


@pytest.mark.benchmark(group="coldstart")
@pytest.mark.parametrize("peer", PEERS)
def bench_coldstart(benchmark, peer, quick, tmp_path, assert_close):
    benchmark.extra_info.update(peer=peer, case="W3 first backward, fresh process")
    if peer == "jitgrad":
        W.import_jitgrad()
    elif peer == "jitgrad_cold":
        W.import_jitgrad()
        if quick:
            pytest.skip("--quick: the empty-kernel-cache variant compiles every W3 kernel "
                        "(seconds); run without --quick to measure it")
    elif peer == "torch":
        W.import_torch()
    elif peer == "jax":
        W.import_jax()

    if peer == "jitgrad":
        # warm cache: a fresh directory filled by the untimed warm-up round; under --quick the
        # session's own cache directory (usually warm already), no warm-up
        cache = None if quick else str(tmp_path / "warm")
        kw = dict(rounds=1, warmup_rounds=0) if quick else dict(rounds=5, warmup_rounds=1)
    else:
        cache = None
        kw = dict(rounds=1 if quick else (3 if peer == "jitgrad_cold" else 5), warmup_rounds=0)
    runs = []

    def run():
        d = tempfile.mkdtemp(dir=tmp_path) if peer == "jitgrad_cold" else cache
        runs.append(_run_child(peer, d))

    benchmark.pedantic(run, iterations=1, **kw)
    runs = runs[kw["warmup_rounds"]:]
    if peer == "python":
        return
    for key in ("to_backward_s", "import_s", "first_call_s"):
        benchmark.extra_info[key] = statistics.median(r[key] for r in runs)
    want = W.tutorial_reference()
    for r in runs:
        for name, g, w in zip(("loss", "w.grad", "b.grad"), r["res"], want):
            assert_close(f"{peer} {name}", g, w)
