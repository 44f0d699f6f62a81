"""Kernel efficiency: each fused benchmark kernel's time per element against the sum of its
rows' standalone vectorised rates and against the copy bandwidth, all measured in this run.

``python -m bench.bench_efficiency [--quick]`` prints one line per generated kernel of W1
(float32/float64, N = 1e5 and 1e6) and W5 (k = 10, 100; float32, N = 1e5); under pytest
(``bench_kernel_efficiency``) the same rows go to the benchmark JSON, and ``bench/report.py``
shows them with issue 17's target (per core, >= 70% of the parts' rate):

* ``ns/el`` -- the kernel's median time per element (its launches timed inside the workload's
  forward+backward steps, so with the real operands, outputs and caches);
* ``parts`` -- the sum over the kernel's rows (forward rows and VJP rows) of each row alone in
  an njit loop over L1-resident float arrays (load, the row's scalar code, store): the
  compute roofline of a kernel that runs those rows one after the other (each loop
  interleaved as codegen.loop_interleave would interleave a kernel of that row alone);
* ``mem`` -- the bytes the kernel must move (its array operands read once, its full outputs
  written once) at ``np.copyto``'s bandwidth (bench.machine.copy_bandwidth);
* ``eff`` -- max(parts, mem) / ns/el: 100% = at the rate of its parts (fusion saves the
  loads and stores between rows, so a kernel can exceed it);
* ``1 thr`` -- ns/el of the same launches on the calling thread alone (cpu.POOL.size = 1:
  the chunk form, serially), ``scale`` -- 1 thr / ns/el (the parallel speed-up) and
  ``/core`` -- max(parts, mem) / 1 thr (the efficiency of one core).

Nothing asserts on time. Run it alone on the machine (other processes skew every rate).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np


def _rows_of(plan):
    return [(lz.row, tuple(plan.nodes[r[1]][0].dtype if r[0] == "n" else
                           getattr(plan.args[r[1]], "dtype", np.dtype(np.float64))
                           for r in refs), lz.cdt) for lz, refs in plan.nodes]


_PART_CACHE: dict = {}


def _part_rate(row, in_dtypes, cdt, n=4096, reps=200) -> float:
    """ns per element of one row alone: out[i] = row(x0[i], x1[i], ...) over L1-resident
    arrays, rendered through the row's own rule like the fused kernels."""
    key = (row.name, tuple(in_dtypes), cdt)
    if key in _PART_CACHE:
        return _PART_CACHE[key]
    from jitgrad import codegen
    from jitgrad.backends import cpu
    em = codegen.Emitter()
    em.T = f"np.{np.dtype(cdt).name}"
    syms, loads = [], []
    rng = np.random.default_rng(0)
    arrays = []
    for j, dt in enumerate(in_dtypes):
        name = f"x{j}"
        if j in row.bool_inputs:
            arrays.append(rng.uniform(-1, 1, n) > 0)
            syms.append(codegen.Sym(em, name))
        else:
            arrays.append(rng.uniform(0.1, 2.0, n).astype(cdt))
            syms.append(codegen.Sym(em, name))
        loads.append(f"            {name} = a{j}[i]")
    res = row.fwd(codegen.SYM_MATH, *syms)
    out_var = res.name if isinstance(res, codegen.Sym) else em.operand(res)
    params = ", ".join(f"a{j}" for j in range(len(arrays)))
    src = (f"def part({params}, out, reps):\n"
           f"    for r in range(reps):\n"
           f"        for i in range(out.size):\n" +
           "\n".join(loads) + "\n" +
           "\n".join(f"            {ln}" for ln in em.lines) + "\n"
           f"            out[i] = {out_var}\n")
    # (interleaved as a fused kernel with this one row would be: codegen.loop_interleave)
    ic = codegen.loop_interleave([codegen.Load(f"a{j}", f"x{j}", "a") for j in
                                  range(len(arrays))], em.lines, [("full", out_var, None)], None)
    disp, _ = cpu.load_generated(cpu.module_source(src, "part", "float64", interleave=ic),
                                 "part", "k", False)
    out = np.empty(n, cdt if np.dtype(cdt).kind == "f" else np.float64)
    disp(*arrays, out, 1)
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        disp(*arrays, out, reps)
        best = min(best, (time.perf_counter() - t0) / (reps * n) * 1e9)
    _PART_CACHE[key] = best
    return best


class _Timed:
    """A kernel wrapper recording each launch's wall time (its element count from the plan)."""

    def __init__(self, kern):
        self.kern, self.times = kern, []

    def __call__(self, *args):
        t0 = time.perf_counter()
        r = self.kern(*args)
        self.times.append(time.perf_counter() - t0)
        return r

    def __getattr__(self, name):
        return getattr(self.kern, name)


def _workloads(quick):
    from bench import workloads as W
    import jitgrad
    cases = []
    for dt in (np.float32, np.float64):
        for n in ((10**5,) if quick else (10**5, 10**6)):
            def make(dt=dt, n=n):
                xv, av, bv = W.w1_inputs(dt, n)
                x, a, b = (jitgrad.tensor(v, requires_grad=True) for v in (xv, av, bv))

                def step():
                    x.grad = a.grad = b.grad = None
                    loss = W.w1(jitgrad, x, a, b)
                    loss.backward()
                    return loss.item()
                return step
            cases.append((f"W1 {np.dtype(dt).name} N={n:.0e}", make))
    for k in ((10,) if quick else (10, 100)):
        def make(k=k):
            from bench import bench_fusion as BF
            return BF._w5_step("jitgrad", k)[0]
        cases.append((f"W5 k={k} float32 N=1e5", make))
    return cases


def run(quick=False, steps=None):
    from jitgrad import lazy
    from jitgrad.backends import cpu
    from bench import machine
    gbps = machine.copy_bandwidth(64 << 20 if quick else 256 << 20)
    plans = {}
    render = lazy._render

    def capture(plan):
        plans[plan.key] = plan
        return render(plan)
    lazy._render = capture
    rows_out = []
    reps = steps or (3 if quick else 10)

    def launch_times(step):
        """{plan key: each launch's wall time} over ``reps`` steps."""
        timed = {}
        for key in plans:
            k = cpu._kernels.get(key)
            if k is not None and not isinstance(k, _Timed):
                timed[key] = cpu._kernels[key] = _Timed(k)
        try:
            for _ in range(reps):
                step()
        finally:
            for key, t in timed.items():
                cpu._kernels[key] = t.kern
        return {key: t.times for key, t in timed.items() if t.times}
    try:
        for name, make in _workloads(quick):
            step = make()
            step()  # compile (plans captured), then time every kernel's launches
            step()
            times = launch_times(step)
            threads, cpu.POOL.size = cpu.POOL.size, 1  # the same launches on this thread only
            try:
                times_one = launch_times(step)
            finally:
                cpu.POOL.size = threads
            for key, t in times.items():
                plan = plans[key]
                n = plan.size
                ns = statistics.median(t) / n * 1e9
                ns_one = statistics.median(times_one.get(key, t)) / n * 1e9
                parts = sum(_part_rate(r, d, c) for r, d, c in _rows_of(plan))
                nbytes = sum(a.nbytes for a, kind in zip(plan.args, plan.kinds) if kind == "a")
                nbytes += sum(n * np.dtype(lz.dtype).itemsize for (kind, ref, _), lz in
                              zip(plan.outs, [plan.nodes[o[1][1]][0] if o[1][0] == "n"
                                              else None for o in plan.outs])
                              if kind == "full" and lz is not None)
                mem = nbytes / n / gbps  # GB/s = bytes/ns
                rows_out.append((name, len(plan.nodes), len(t) // reps, ns, ns_one, parts, mem,
                                 "par" if plan.par else "ser"))
            plans.clear()
    finally:
        lazy._render = render
    return gbps, rows_out


FIELDS = ("workload", "rows", "calls", "ns_el", "ns_el_1thr", "parts", "mem", "loop")


def bench_kernel_efficiency(benchmark, quick):
    """The same measurement as a pytest-benchmark entry, for ``bench/report.py``'s "Kernel
    efficiency" section: one round of ``run`` (its time is the whole measurement's, not a
    figure), each kernel's row in ``extra_info["kernel_efficiency"]`` (dicts of FIELDS, ns per
    element), the copy bandwidth in ``extra_info["copy_gbps"]``."""
    from jitgrad.backends import cpu
    benchmark.group = "kernel-efficiency"
    gbps, rows = benchmark.pedantic(run, kwargs=dict(quick=quick, steps=2 if quick else None),
                                    rounds=1, iterations=1)
    assert gbps > 0 and rows, "no kernel was timed"
    for r in rows:  # (a kernel per workload at least; every rate measured)
        assert all(v > 0 for v in r[3:7]), r
    assert {r[0] for r in rows} == {name for name, _ in _workloads(quick)}
    benchmark.extra_info.update(peer="jitgrad", case="fused kernels against their parts",
                                copy_gbps=gbps, threads=cpu.POOL.size,
                                kernel_efficiency=[dict(zip(FIELDS, r)) for r in rows])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="N=1e5 and W5 k=10 only")
    args = ap.parse_args(argv)
    gbps, rows = run(args.quick)
    print(f"copy bandwidth {gbps:.1f} GB/s (read+write)")
    from jitgrad.backends import cpu
    print(f"{'workload':24} {'rows':>4} {'calls':>5} {'ns/el':>7} {'1 thr':>7} {'scale':>5} "
          f"{'parts':>7} {'mem':>6} {'eff':>5} {'/core':>5}  loop ({cpu.POOL.size} threads)")
    for name, nrows, calls, ns, ns_one, parts, mem, par in rows:
        roof = max(parts, mem)
        print(f"{name:24} {nrows:4d} {calls:5d} {ns:7.2f} {ns_one:7.2f} {ns_one / ns:5.2f} "
              f"{parts:7.2f} {mem:6.2f} {roof / ns:5.0%} {roof / ns_one:5.0%}  {par}")


if __name__ == "__main__":
    sys.exit(main())
