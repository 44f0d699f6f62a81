"""A/B timing of workloads W1-W5 between two source trees (e.g. a `git worktree` of an older
commit and the working tree), in alternating subprocesses so that machine drift hits both.

usage: python bench/ab_trees.py ROOT_A ROOT_B [rounds] [w1_f32_1e5,w3,...]

Each value is the best of 5 timed batches in one fresh process (warm disk cache per tree);
prints the median per workload and B/A. Run with ``env -u OPENBLAS_CORETYPE -u
OPENBLAS_L2_SIZE``. Not a pytest suite: the peer comparisons live in bench_*.py."""
import json, os, subprocess, sys, statistics, time

WORKLOADS = ["w1_f32_1e5", "w1_f32_1e6", "w1_f64_1e5", "w2", "w3", "w4_rev", "w4_fwd",
             "w5_k10", "w5_k100", "small_ops"]

CHILD = r'''
import sys, time, json, functools
root, name = sys.argv[1], sys.argv[2]
sys.path.insert(0, root)
import numpy as np
import jitgrad
assert jitgrad.__file__.startswith(root), jitgrad.__file__
from bench import workloads as W
def make():
    if name.startswith("w1"):
        dt = np.float32 if "f32" in name else np.float64
        n = int(float(name.split("_")[-1]))
        xv, av, bv = W.w1_inputs(dt, n)
        x = jitgrad.tensor(xv, requires_grad=True); a = jitgrad.tensor(av, requires_grad=True); b = jitgrad.tensor(bv, requires_grad=True)
        def step():
            x.grad = a.grad = b.grad = None
            l = W.w1(jitgrad, x, a, b); l.backward(); return l.item()
        return step
    if name == "w2":
        from bench import bench_mlp
        step, first, state = bench_mlp._eager_step(jitgrad)
        return first
    if name == "w3":
        x, y, w, b = W.tutorial_inputs()
        step, res = W.tutorial_eager_step(jitgrad, jitgrad.tensor(w, requires_grad=True), jitgrad.tensor(b, requires_grad=True))
        return lambda: step().item()
    if name.startswith("w4"):
        from bench import bench_functional as BF
        A, c, x = BF._data("mlp", 10)
        call, _ = BF._make("jitgrad_fwd" if name.endswith("fwd") else "jitgrad", "mlp", A, c, x)
        return call
    if name.startswith("w5"):
        from bench import bench_fusion as BFu
        k = int(name.split("k")[-1])
        step, _ = BFu._w5_step("jitgrad", k)
        return step
    if name == "small_ops":
        rng = np.random.default_rng(0)
        a, b, c = (jitgrad.tensor(rng.standard_normal(100).astype(np.float32), requires_grad=True) for _ in range(3))
        def step():
            a.grad = b.grad = c.grad = None
            l = (a * b + c).sum(); l.backward(); return l.item()
        return step
f = make()
for _ in range(5): f()
t0 = time.perf_counter(); n = 0
while time.perf_counter() - t0 < 0.3: f(); n += 1
reps = max(1, n // 3)
res = []
for _ in range(5):
    t0 = time.perf_counter()
    for _ in range(reps): f()
    res.append((time.perf_counter() - t0) / reps * 1e6)
print(json.dumps(min(res)))
'''

def run(root, name):
    env = dict(os.environ); env.pop("OPENBLAS_CORETYPE", None); env.pop("OPENBLAS_L2_SIZE", None)
    env["JITGRAD_CACHE_DIR"] = f"/tmp/jgc_ab_{os.path.basename(root.rstrip('/'))}"
    env["PYTHONPATH"] = root
    out = subprocess.run([sys.executable, "-c", CHILD, root, name], capture_output=True, text=True, env=env, cwd="/tmp")
    if out.returncode:
        return None, out.stderr[-400:]
    return json.loads(out.stdout.strip().splitlines()[-1]), None

if __name__ == "__main__":
    A, B = sys.argv[1], sys.argv[2]
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    only = sys.argv[4].split(",") if len(sys.argv) > 4 else WORKLOADS
    for name in only:
        ra, rb = [], []
        for r in range(rounds):
            for root, acc in ((A, ra), (B, rb)) if r % 2 == 0 else ((B, rb), (A, ra)):
                v, err = run(root, name)
                if err: print(name, root, "ERROR", err); break
                acc.append(v)
        if ra and rb:
            ma, mb = statistics.median(ra), statistics.median(rb)
            print(f"{name:12} A {ma:10.1f} us   B {mb:10.1f} us   B/A {mb/ma:5.2f}   A{[round(v,1) for v in ra]} B{[round(v,1) for v in rb]}", flush=True)
