"""W2 peers interleaved: ``python -m bench.mlp_interleaved [--rounds N] [--threads N]``.

pytest-benchmark times one peer after another, a second or more each; on a shared VM whose
speed drifts by 1.5x from one second to the next (and from one process to the next), the
ratios between peers then measure the drift as much as the peers. This runs the same steps
as ``bench_mlp.py`` (same peers, same checked values) round-robin, one step of each peer per
round, in one process, and prints each peer's minimum and median and their ratios to
jitgrad's. Use it for A/B comparisons; the pytest suite stays the report's source.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from bench import bench_mlp as M
from bench import workloads as W


def _peers(names):
    """{peer: step}; each peer's first step (from the same initial state) must give jitgrad's
    loss, as in bench_mlp.py."""
    out, losses = {}, {}
    for name in names:
        if name == "gemm_floor":
            step, check = M._gemm_floor_step()
            if check() >= 1e-5:
                raise AssertionError("gemm floor products differ from float64 NumPy")
            out[name] = step
            continue
        try:
            step, first, _ = M._peer_step(name)
        except BaseException as e:  # noqa: BLE001 - a missing peer (pytest's skip) is reported
            print(f"{name}: skipped ({type(e).__name__}: {e})")
            continue
        losses[name] = first()
        out[name] = step
    ref = losses.get("jitgrad")
    for name, loss in losses.items():
        if ref is not None and not np.isclose(loss, ref, rtol=1e-5):
            raise AssertionError(f"{name}'s first-step loss {loss} differs from jitgrad's {ref}")
    return out


def main(argv=None) -> dict:
    """Run the rounds; returns {peer: [seconds per step, ...]}."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=300)
    ap.add_argument("--threads", type=int, default=None,
                    help="limit NumPy's BLAS and torch's intra-op pool to N threads")
    ap.add_argument("--peers", default=",".join(M.PEERS))
    args = ap.parse_args(argv)
    if args.threads:
        from threadpoolctl import threadpool_limits
        threadpool_limits(args.threads, user_api="blas")
        try:
            W.import_torch().set_num_threads(args.threads)
        except BaseException:  # noqa: BLE001 - torch is optional
            pass
    steps = _peers(args.peers.split(","))
    for f in steps.values():
        for _ in range(5):
            f()
    times = {k: [] for k in steps}
    for _ in range(args.rounds):
        for k, f in steps.items():
            t0 = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t0)
    base = times.get("jitgrad")
    print(f"{'peer':12s} {'min':>9s} {'median':>9s}   ÷ jitgrad (min, median)")
    for k, v in times.items():
        lo, med = min(v), float(np.median(v))
        rel = f"{lo / min(base):.2f}, {med / np.median(base):.2f}" if base else "-"
        print(f"{k:12s} {lo * 1e3:7.3f}ms {med * 1e3:7.3f}ms   {rel}")
    return times


if __name__ == "__main__":
    main()
