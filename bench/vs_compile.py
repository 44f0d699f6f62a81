"""W1 and W5 against torch.compile, interleaved in one process (issue 17's same-run ratios).

``python -m bench.vs_compile [rounds] [case,...]`` (cases: w1_{f32,f64}_{1e5,1e6,1e7}, w5_k10,
w5_k100). The steps are bench_fusion's (``_w1_step``: W1 forward+backward
with gradients of a and b; ``_w5_step``: the chain of k ops on 1e5 float32, ``sum().backward()``)
for jitgrad and torch.compile, torch on one thread. Each round times every step as the best of 5
batches, the peers of a case back to back; printed: medians over rounds, jitgrad / torch.compile,
and W5's time per op; where the tree has ``jitgrad.compile`` (issue 18), the same W1 (x without
gradient, as here) and W5 steps recorded once and replayed, as a third peer. To compare two
jitgrad trees run it once per tree (``PYTHONPATH=<tree>``) and compare the ratios, not the
absolute times. Nothing asserts on time.

torch runs on one thread by default (as in bench_capture: OPENBLAS_NUM_THREADS=1 for the NumPy
peers); jitgrad's large fused kernels use every core (cpu.POOL). ``TORCH_THREADS=2`` gives
torch.compile's generated kernels the same cores, for the like-for-like ratio."""
from __future__ import annotations

import os
import statistics
import sys
import time

CASES = ["w1_f32_1e5", "w1_f32_1e6", "w1_f32_1e7", "w1_f64_1e5", "w1_f64_1e6", "w1_f64_1e7",
         "w5_k10", "w5_k100"]


def _best(f, budget=0.25):
    f()
    t0, n = time.perf_counter(), 0
    while time.perf_counter() - t0 < budget / 5:
        f()
        n += 1
    n = max(1, n)
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(n):
            f()
        best = min(best, (time.perf_counter() - t0) / n)
    return best


def _steps(case):
    import jitgrad
    from bench import bench_fusion as BF
    if case.startswith("w1"):
        _, dt, n = case.split("_")
        dtype = {"f32": "float32", "f64": "float64"}[dt]
        out = {p: BF._w1_step(p, dtype, int(float(n)))[0] for p in ("jitgrad", "torch_compile")}
    else:
        k = int(case.split("k")[-1])
        out = {p: BF._w5_step(p, k)[0] for p in ("jitgrad", "torch_compile")}
    from bench import bench_capture as BC
    if hasattr(BC, "_w1"):
        # whole-step capture (issue 18): the same step recorded once and replayed
        c = jitgrad.compile(BC._w1(jitgrad, int(float(case.split("_")[-1])), dtype) if
                            case.startswith("w1") else BC._w5(jitgrad, int(case.split("k")[-1])))
        out["jitgrad_compiled"] = c
    return out


def main(rounds=3, cases=None):
    import torch
    torch.set_num_threads(int(os.environ.get("TORCH_THREADS", "1")))
    import jitgrad
    steps = {c: _steps(c) for c in cases or CASES}
    for ps in steps.values():  # compile everything before timing (dynamo resets per step)
        for f in ps.values():
            f(), f()
    res = {c: {p: [] for p in ps} for c, ps in steps.items()}
    for _ in range(rounds):
        for c, ps in steps.items():
            for p, f in ps.items():
                res[c][p].append(_best(f))
    print(f"jitgrad from {jitgrad.__file__}; torch on {torch.get_num_threads()} thread(s)")
    for c, r in res.items():
        j, t = (statistics.median(r[p]) * 1e6 for p in ("jitgrad", "torch_compile"))
        k = int(c.split("k")[-1]) if c.startswith("w5") else 0
        per = f", per op {j / k:.1f} vs {t / k:.1f} us" if k else ""
        line = f"{c:11} jitgrad {j:9.1f} us  torch.compile {t:9.1f} us  ratio {j / t:5.2f}{per}"
        if "jitgrad_compiled" in r:
            jc = statistics.median(r["jitgrad_compiled"]) * 1e6
            line += f"  | compiled {jc:9.1f} us ratio {jc / t:5.2f}"
        print(line)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3,
         sys.argv[2].split(",") if len(sys.argv) > 2 else None)
