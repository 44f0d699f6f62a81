"""Markdown + plots from pytest-benchmark JSON files.

    python -m bench.report results.json [more.json ...] [-o bench/report]

writes ``<out>/report.md`` and its plots (PNG) next to it:

* a header with the machine: CPU model, cores, SIMD level, BLAS libraries and threads
  (threadpoolctl), versions, the measured copy bandwidth and sgemm rate (``bench/machine.py``;
  read from ``machine_info["jitgrad"]`` in the JSON, measured on this machine when absent);
* the targets the issues set, each met / missed / not measured;
* the fused kernels' efficiency against their parts (``bench/bench_efficiency.py``);
* one table per benchmark group (grouped by workload W1...W6): median, IQR, ratio to the best
  peer and to jitgrad, time per op, GB/s and GFLOP/s (``extra_info["bytes"]`` /
  ``["flops"]``) and the ratio to the floor they imply, peak memory (``["peak_bytes"]``), and
  every other ``*_s`` figure in ``extra_info`` (first call, import, compile...);
* plots: median time vs N (log-log, ``extra_info["n"]`` or a parameter ``n``) with the
  memory-bandwidth floor ``bytes / copy bandwidth`` drawn as a line; time per op vs chain length
  (``extra_info["ops"]``); bars for the other groups of 4 to 24 rows.

Benchmarks are read generically: ``extra_info["peer"]`` and ``["case"]`` (conftest.py's
convention), else the ``peer`` parameter and the test name. A benchmark may name its workload
with ``extra_info["workload"]`` ("W4") and declare a time target with ``extra_info["target_s"]``
(checked against its jitgrad row). Peers named ``*floor*``, ``*analytic*`` or ``python``, or with
``extra_info["floor"]`` set, are floors: shown, never "the best peer". This module only reads results; it runs no benchmark.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import re
import statistics
import sys
from dataclasses import dataclass, field

REF = "jitgrad"

# (workload id, title, group pattern); first match wins
WORKLOADS = [
    ("W1", "W1 fused elementwise chain, forward + backward", r"^fusion-w1|^w1\b|^fusion-compile"),
    ("W2", "W2 MLP training step", r"^mlp|^w2\b"),
    ("W3", "W3 tutorial and per-op overhead", r"^tutorial|^per-op|^w3\b"),
    ("W4", "W4 small-function Jacobians", r"w4|jac|functional|hessian|jvp|vjp"),
    ("W5", "W5 chain depth", r"^fusion-w5|^w5\b"),
    ("W6", "W6 cold start and import", r"^coldstart|^import|^w6\b"),
    ("K", "Kernels: vectorised transcendentals", r"^vmath"),
]


# --------------------------------------------------------------------------- loading

@dataclass
class Row:
    group: str
    case: str
    peer: str
    name: str
    median: float
    iqr: float
    q1: float
    q3: float
    min: float
    rounds: int
    params: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)
    source: str = ""

    @property
    def n(self):
        v = self.extra.get("n", self.params.get("n", self.params.get("N")))
        return v if isinstance(v, (int, float)) and not isinstance(v, bool) else None

    @property
    def ops(self):
        v = self.extra.get("ops")
        return v if isinstance(v, (int, float)) and v > 0 else None

    @property
    def per_op(self):
        return self.median / self.ops if self.ops else None

    @property
    def is_floor(self) -> bool:
        return bool(self.extra.get("floor")) or self.peer == "python" or \
            any(w in self.peer for w in ("floor", "analytic"))

    @property
    def workload(self) -> str:
        w = self.extra.get("workload")
        if w:
            return str(w)
        for wid, _, pat in WORKLOADS:
            if re.search(pat, self.group or "", re.I):
                return wid
        return "other"


def _row(b: dict, source: str) -> Row:
    ex = dict(b.get("extra_info") or {})
    params = dict(b.get("params") or {})
    name = b.get("name", "?")
    peer = str(ex.get("peer") or params.get("peer") or name)
    case = str(ex.get("case") or re.sub(r"\[.*\]$", "", name))
    s = b["stats"]
    return Row(group=str(b.get("group") or "(no group)"), case=case, peer=peer, name=name,
               median=s["median"], iqr=s.get("iqr", 0.0), q1=s.get("q1", s["median"]),
               q3=s.get("q3", s["median"]), min=s["min"], rounds=s.get("rounds", 0),
               params=params, extra=ex, source=source)


@dataclass
class Results:
    rows: list
    runs: list  # [{path, machine_info, datetime, commit_info, version}]
    notes: list = field(default_factory=list)

    def groups(self) -> dict:
        """group -> {case -> {peer -> Row}}, in first-seen order."""
        out: dict = {}
        for r in self.rows:
            out.setdefault(r.group, {}).setdefault(r.case, {})[r.peer] = r
        return out


def load(paths) -> Results:
    rows, runs, notes = {}, [], []
    for p in paths:
        with open(p) as f:
            d = json.load(f)
        runs.append({"path": p, "machine_info": d.get("machine_info") or {},
                     "datetime": d.get("datetime"), "commit_info": d.get("commit_info") or {},
                     "version": d.get("version")})
        for b in d.get("benchmarks", []):
            if not b.get("stats"):
                continue
            r = _row(b, p)
            key = (r.group, r.case, r.peer)
            if key in rows:
                notes.append(f"`{r.group}` / {r.case} / {r.peer}: {p} replaces "
                             f"{rows[key].source}")
            rows[key] = r
    return Results(rows=list(rows.values()), runs=runs, notes=notes)


# --------------------------------------------------------------------------- machine

def machine_of(res: Results, measure_if_missing: bool = True) -> dict:
    """The first run's ``machine_info["jitgrad"]``; else this machine, measured now."""
    for run in res.runs:
        info = run["machine_info"].get("jitgrad")
        if info:
            return dict(info, source=f"recorded by the benchmark run ({run['path']})")
    if not measure_if_missing:
        return {"source": "not recorded"}
    from bench import machine
    info = machine.describe(measure=True)
    info["source"] = "not in the JSON: measured on this machine at report time"
    return info


def floors(mach: dict) -> tuple:
    fl = mach.get("floors") or {}
    return fl.get("copy_gbps"), fl.get("sgemm_gflops")


def gpu_floors(res) -> tuple:
    """The GPU's floors, from the CUDA groups of the same run: the device-to-device copy's best
    GB/s and cuBLAS's best GFLOP/s (torch's matmul). The host floors say nothing of a GPU."""
    copy = [r.extra["bytes"] / r.median / 1e9 for r in res.rows
            if r.group == "cuda-copy-floor" and r.extra.get("bytes") and r.median]
    gemm = [r.extra["flops"] / r.median / 1e9 for r in res.rows
            if r.group == "cuda-matmul-float32" and r.peer == "torch" and r.extra.get("flops")
            and r.median]
    return (max(copy) if copy else None), (max(gemm) if gemm else None)


def floors_for(group: str, host: tuple, gpu: tuple) -> tuple:
    return gpu if group.startswith("cuda-") else host


def floor_time(row: Row, copy_gbps, sgemm_gflops):
    """Lower bound on the row's time from its bytes / flops and the measured floors."""
    t = []
    if row.extra.get("bytes") and copy_gbps:
        t.append(row.extra["bytes"] / (copy_gbps * 1e9))
    if row.extra.get("flops") and sgemm_gflops:
        t.append(row.extra["flops"] / (sgemm_gflops * 1e9))
    return max(t) if t else None


# --------------------------------------------------------------------------- formatting

def fmt_time(t) -> str:
    if t is None or (isinstance(t, float) and math.isnan(t)):
        return "-"
    if t == 0:
        return "0"
    for unit, f in (("s", 1.0), ("ms", 1e3), ("µs", 1e6), ("ns", 1e9)):
        if abs(float(f"{t * f:.3g}")) >= 1.0:  # 0.9996 ms is "1 ms", not "1e+03 µs"
            return f"{t * f:.3g} {unit}"
    return f"{t * 1e9:.3g} ns"


def fmt_ratio(x) -> str:
    if x is None or not math.isfinite(x):
        return "-"
    return f"{x:.3g}×" if x < 100 else f"{x:.0f}×"


def fmt_bytes(b) -> str:
    if b is None:
        return "-"
    for unit, f in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if b >= f:
            return f"{b / f:.3g} {unit}"
    return f"{b:.0f} B"


def _md_table(header, rows, left: int = 2) -> str:
    """A Markdown table; the first ``left`` columns left-aligned, the rest right-aligned."""
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---" if i < left else "--:" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _case_sort_key(peers: dict):
    r = next(iter(peers.values()))
    return (r.n if r.n is not None else -1, r.ops if r.ops is not None else -1)


def _peer_order(peers: dict) -> list:
    return sorted(peers.values(), key=lambda r: (r.peer != REF, not r.peer.startswith(REF),
                                                 r.is_floor, r.median))


def best_peer(peers: dict):
    cands = [r for r in peers.values() if not r.is_floor]
    return min(cands, key=lambda r: r.median) if cands else None


def _timing_keys(rows) -> list:
    """Other ``*_s`` figures in extra_info (first call, import, ...), in first-seen order."""
    keys = []
    for r in rows:
        for k, v in r.extra.items():
            if k.endswith("_s") and k != "target_s" and isinstance(v, (int, float)) \
                    and k not in keys:
                keys.append(k)
    return keys


def group_table(cases: dict, copy_gbps, sgemm_gflops) -> str:
    rows = [r for peers in cases.values() for r in peers.values()]
    has = {
        "per_op": any(r.ops for r in rows),
        "gbps": any(r.extra.get("bytes") for r in rows),
        "gflops": any(r.extra.get("flops") for r in rows),
        "peak": any(r.extra.get("peak_bytes") for r in rows),
    }
    has["floor"] = any(floor_time(r, copy_gbps, sgemm_gflops) for r in rows)
    tkeys = _timing_keys(rows)
    header = ["case", "peer", "median", "IQR", "÷ best", "÷ jitgrad"]
    header += ["per op"] if has["per_op"] else []
    header += ["GB/s"] if has["gbps"] else []
    header += ["GFLOP/s"] if has["gflops"] else []
    header += ["÷ floor"] if has["floor"] else []
    header += ["peak mem"] if has["peak"] else []
    header += [k[:-2].replace("_", " ") for k in tkeys]
    header += ["rounds"]
    out = []
    for case, peers in sorted(cases.items(), key=lambda kv: _case_sort_key(kv[1])):
        best = best_peer(peers)
        ref = peers.get(REF)
        for r in _peer_order(peers):
            line = [case, f"**{r.peer}**" if r.peer == REF else r.peer,
                    fmt_time(r.median), fmt_time(r.iqr),
                    "floor" if r.is_floor else (fmt_ratio(r.median / best.median)
                                                if best and best.median else "-"),
                    fmt_ratio(r.median / ref.median) if ref and ref.median else "-"]
            if has["per_op"]:
                line.append(fmt_time(r.per_op))
            if has["gbps"]:
                b = r.extra.get("bytes")
                line.append(f"{b / r.median / 1e9:.3g}" if b and r.median else "-")
            if has["gflops"]:
                fl = r.extra.get("flops")
                line.append(f"{fl / r.median / 1e9:.3g}" if fl and r.median else "-")
            if has["floor"]:
                ft = floor_time(r, copy_gbps, sgemm_gflops)
                line.append(fmt_ratio(r.median / ft) if ft else "-")
            if has["peak"]:
                line.append(fmt_bytes(r.extra.get("peak_bytes")))
            line += [fmt_time(r.extra.get(k)) for k in tkeys]
            line.append(r.rounds)
            out.append(line)
    return _md_table(header, out)


# --------------------------------------------------------------------------- targets

@dataclass
class Verdict:
    workload: str
    source: str   # which issue set it
    target: str
    figure: str
    status: str   # "met" | "missed" | "not measured"


def _status(ok) -> str:
    return "not measured" if ok is None else ("met" if ok else "missed")


def _cases(res_groups, group_pat):
    for g, cases in res_groups.items():
        if re.search(group_pat, g, re.I):
            for case, peers in cases.items():
                yield g, case, peers


def _t_abs(groups, wid, src, group_pat, limit, label, case_pred=lambda peers: True,
           per_op=False, value=None):
    out = []
    for g, case, peers in _cases(groups, group_pat):
        if not case_pred(peers):
            continue
        j = peers.get(REF)
        if j is None:
            out.append(Verdict(wid, src, f"{label} ({case})", "no jitgrad row", "not measured"))
            continue
        v = value(j, peers) if value else (j.per_op if per_op else j.median)
        fig = f"jitgrad {fmt_time(v)}{' per op' if per_op else ''}"
        out.append(Verdict(wid, src, f"{label} ({case})", fig,
                           _status(None if v is None else v <= limit)))
    return out


def _t_vs(groups, wid, src, group_pat, peer_pat, factor, label, case_pred=lambda peers: True,
          per_op=False):
    """peer / jitgrad >= factor, for the fastest peer matching peer_pat."""
    out = []
    for g, case, peers in _cases(groups, group_pat):
        if not case_pred(peers):
            continue
        j = peers.get(REF)
        others = [r for r in peers.values() if re.search(peer_pat, r.peer) and r.peer != REF]
        if j is None or not others:
            what = "no jitgrad row" if j is None else f"no {peer_pat} row (skipped?)"
            out.append(Verdict(wid, src, f"{label} ({case})", what, "not measured"))
            continue
        p = min(others, key=lambda r: r.median)
        ratio = p.median / j.median
        fig = f"{p.peer} ÷ jitgrad = {ratio:.3g} (jitgrad {fmt_time(j.median)}, " \
              f"{p.peer} {fmt_time(p.median)})"
        out.append(Verdict(wid, src, f"{label} ({case})", fig, _status(ratio >= factor)))
    return out


def _t_ahead(groups, wid, src, group_pat, label):
    out = []
    for g, case, peers in _cases(groups, group_pat):
        j = peers.get(REF)
        others = [r for r in peers.values() if not r.is_floor and not r.peer.startswith(REF)]
        if j is None or not others:
            out.append(Verdict(wid, src, f"{label} ({case})", "no rows", "not measured"))
            continue
        p = min(others, key=lambda r: r.median)
        fig = f"best peer {p.peer} {fmt_time(p.median)} vs jitgrad {fmt_time(j.median)} " \
              f"({p.median / j.median:.3g}×)"
        out.append(Verdict(wid, src, f"{label} ({case})", fig, _status(j.median < p.median)))
    return out


def _t_within(groups, wid, src, group_pat, peer, factor, label):
    """``peer`` (the same work written another way with jitgrad) takes <= factor x jitgrad's
    time. Only cases that have a ``peer`` row: results from before the peer existed lack it."""
    out = []
    for g, case, peers in _cases(groups, group_pat):
        j, p = peers.get(REF), peers.get(peer)
        if p is None:
            continue
        if j is None or not j.median:
            out.append(Verdict(wid, src, f"{label} ({case})", "no jitgrad row", "not measured"))
            continue
        ratio = p.median / j.median
        fig = f"{peer} ÷ jitgrad = {ratio:.3g} ({peer} {fmt_time(p.median)}, jitgrad " \
              f"{fmt_time(j.median)})"
        out.append(Verdict(wid, src, f"{label} ({case})", fig, _status(ratio <= factor)))
    return out


def _t_falls(groups, wid, src, group_pat, label):
    out = []
    for g, cases in groups.items():
        if not re.search(group_pat, g, re.I):
            continue
        pts = sorted((p[REF].ops, p[REF].per_op) for p in cases.values()
                     if REF in p and p[REF].ops)
        if len(pts) < 2:
            out.append(Verdict(wid, src, label, "fewer than 2 chain lengths", "not measured"))
            continue
        ok = all(b[1] < a[1] for a, b in zip(pts, pts[1:]))
        fig = ", ".join(f"k={k:g}: {fmt_time(t)}" for k, t in pts)
        out.append(Verdict(wid, src, label, f"jitgrad per op {fig}", _status(ok)))
    return out


def _t_mem(groups, wid, src, group_pat, factor, label, case_pred=lambda peers: True):
    out = []
    for g, cases in groups.items():
        if re.search(group_pat, g, re.I) and not any(
                r.extra.get("peak_bytes") for p in cases.values() for r in p.values()):
            out.append(Verdict(wid, src, f"{label} (`{g}`)", "peak memory not recorded",
                               "not measured"))
    for g, case, peers in _cases(groups, group_pat):
        if not case_pred(peers) or not any(r.extra.get("peak_bytes") for p in groups[g].values()
                                           for r in p.values()):
            continue
        j = peers.get(REF)
        pk = j.extra.get("peak_bytes") if j else None
        xb = j.extra.get("bytes") if j else None
        if not (pk and xb):
            out.append(Verdict(wid, src, f"{label} ({case})", "peak memory not recorded",
                               "not measured"))
            continue
        out.append(Verdict(wid, src, f"{label} ({case})",
                           f"jitgrad peak {fmt_bytes(pk)} = {pk / xb:.3g} × x.nbytes",
                           _status(pk <= factor * xb)))
    return out


def _n_is(pred):
    return lambda peers: next(iter(peers.values())).n is not None and \
        pred(next(iter(peers.values())).n)


def _case_matches(pat, exclude=None):
    def pred(peers):
        case = next(iter(peers.values())).case
        return re.search(pat, case, re.I) is not None and \
            (exclude is None or re.search(exclude, case, re.I) is None)
    return pred


def _import_time(j, peers):
    if "in_process_s" in j.extra:
        return j.extra["in_process_s"]
    py = peers.get("python")
    return j.median - py.median if py else j.median


def targets(res: Results) -> list:
    """Every target the issues set, evaluated on these results."""
    g = res.groups()
    v = []
    i2, i3, i4, i6 = "issue 2", "issue 3", "issue 4", "issue 6"
    w1 = r"^fusion-w1"
    v += _t_vs(g, "W1", i3, w1, r"^torch_compile$", 2.0, "N ≥ 1e5: ≥ 2× faster than torch.compile",
               _n_is(lambda n: n >= 1e5))
    v += _t_abs(g, "W1", i3, w1, 15e-6, "N = 1e3: ≤ 15 µs per forward+backward",
                _n_is(lambda n: n == 1e3))
    v += _t_mem(g, "W1", i3, w1, 3.0, "peak extra memory ≤ 3 × x.nbytes")
    v += _t_ahead(g, "W2", i6, r"^mlp", "ahead of every peer")
    v += _t_abs(g, "W2", i6, r"^mlp", 1.15e-3, "≤ 1.15 ms per step")
    v += _t_within(g, "W2", "issue 15", r"^mlp", "jitgrad_nn", 1.05,
                   "nn.Sequential + CrossEntropyLoss + optim.SGD within 5% of the tensor-level step")
    v += _t_abs(g, "W3", i2, r"^tutorial", 15e-6, "tutorial fwd+bwd ≤ 15 µs")
    v += _t_vs(g, "W3", i2, r"^tutorial", r"^torch$", 5.0, "tutorial ≥ 5× faster than torch eager")
    v += _t_abs(g, "W3", i2, r"^per-op", 1e-6, "per-op overhead ≤ 1 µs", per_op=True)
    w4 = r"^(?!.*first).*(w4|jac|functional|hessian)"  # steady state, not first-call groups
    v += _t_abs(g, "W4", i4, w4, 10e-6, "(a) exp_reducer Jacobian ≤ 10 µs",
                _case_matches(r"exp_reducer|\(a\)|^a\s"))
    v += _t_abs(g, "W4", i4, w4, 10e-6, "(b) 10→10 Jacobian ≤ 10 µs",
                _case_matches(r"(?<!\d)10(?!\d)|\(b\)|^b\s", exclude=r"exp_reducer|100"))
    v += _t_abs(g, "W4", i4, w4, 60e-6, "(c) 100→100 Jacobian ≤ 60 µs",
                _case_matches(r"(?<!\d)100(?!\d)|\(c\)|^c\s", exclude=r"exp_reducer"))
    v += _t_vs(g, "W4", i4, w4, r"^jax", 1.0 + 1e-12, "faster than JAX jit")
    v += _t_vs(g, "W5", i3, r"^fusion-w5", r"^torch_compile$", 1 / 0.7,
               "k ≥ 100: per-op time ≤ 0.7 × torch.compile's",
               lambda peers: (next(iter(peers.values())).ops or 0) >= 100)
    v += _t_falls(g, "W5", i3, r"^fusion-w5", "per-op time falls with k")
    v += _t_abs(g, "W6", i2, r"^import", 0.45, "`import jitgrad` ≤ 0.45 s (in process)",
                value=_import_time)
    # issue 17: each W1 / W5 fused kernel on one core at >= 70% of its rows' standalone rate
    for r, k in kernel_efficiency(res):
        if k["workload"][:2] in ("W1", "W5"):
            eff = max(k["parts"], k["mem"]) / k["ns_el_1thr"]
            v.append(Verdict(k["workload"][:2], "issue 17",
                             f"fused kernel ≥ 70% of its parts' rate, one core ({k['workload']}, "
                             f"{k['rows']} rows)", f"{eff:.0%}", _status(eff >= 0.7)))
    # targets a benchmark declares itself
    for r in res.rows:
        if r.peer == REF and isinstance(r.extra.get("target_s"), (int, float)):
            t = r.extra["target_s"]
            v.append(Verdict(r.workload, "extra_info", f"≤ {fmt_time(t)} ({r.group}: {r.case})",
                             f"jitgrad {fmt_time(r.median)}", _status(r.median <= t)))
    return v


def kernel_efficiency(res: Results) -> list:
    """(row, kernel dict) for every kernel that bench_efficiency.bench_kernel_efficiency
    recorded (``extra_info["kernel_efficiency"]``)."""
    return [(r, k) for r in res.rows for k in r.extra.get("kernel_efficiency") or ()
            if isinstance(k, dict)]


def efficiency_table(res: Results) -> list:
    """The "Kernel efficiency" section's lines (none without such rows)."""
    ks = kernel_efficiency(res)
    if not ks:
        return []
    rows = []
    for r, k in ks:
        roof = max(k["parts"], k["mem"])
        rows.append((k["workload"], str(k["rows"]), f"{k['ns_el']:.2f}", f"{k['ns_el_1thr']:.2f}",
                     f"{k['ns_el_1thr'] / k['ns_el']:.2f}", f"{k['parts']:.2f}",
                     f"{k['mem']:.2f}", f"{roof / k['ns_el']:.0%}",
                     f"{roof / k['ns_el_1thr']:.0%}", k["loop"]))
    threads = {r.extra.get("threads") for r, _ in ks}
    gbps = {round(r.extra.get("copy_gbps", 0), 1) for r, _ in ks}
    return ["## Kernel efficiency", "",
            "Each generated kernel of W1 and W5 (`bench/bench_efficiency.py`), timed inside its "
            "workload's steps, in ns per element: **parts** is the sum of its rows' rates, each "
            "row alone in an njit loop over L1-resident arrays on one core (the compute roofline "
            "of running them one after the other); **mem** the bytes it must move at the "
            f"measured copy bandwidth ({', '.join(map(str, sorted(gbps)))} GB/s); **eff** = "
            "max(parts, mem) ÷ its time (fusion saves the loads and stores between rows, so it "
            f"can exceed 100%), on {', '.join(map(str, sorted(threads, key=str)))} thread(s) "
            "and on one (**/core**: issue 17's ≥ 70%).", "",
            _md_table(["kernel", "rows", "ns/el", "1 thread", "scale", "parts", "mem", "eff",
                       "/core", "loop"], rows, left=1), ""]


# --------------------------------------------------------------------------- plots

def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", s).strip("_").lower() or "plot"


def _styles(peers):
    """One line style per peer, the same in every plot of a report."""
    import matplotlib.pyplot as plt
    cyc = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    others = sorted(p for p in peers if p != REF)
    st = {p: dict(color=cyc[i % len(cyc)], lw=1.3, marker="o", ms=4,
                  ls=":" if ("floor" in p or p == "python") else "-")
          for i, p in enumerate(others)}
    st[REF] = dict(color="black", lw=2.5, marker="o", ms=4, ls="-")
    return st


def _loglog(ax, xlabel, ylabel, title):
    ax.set(xscale="log", yscale="log", xlabel=xlabel, ylabel=ylabel, title=title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)


def _save(plt, fig, out_dir, name) -> str:
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, name), dpi=100)
    plt.close(fig)
    return name


def plot_groups(res: Results, out_dir: str, host_floors: tuple, gpu: tuple = (None, None)) -> dict:
    """group -> [plot file names]; empty when matplotlib is missing."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError:
        res.notes.append("plots skipped: matplotlib is not installed (pip install -e '.[bench]')")
        return {}
    made: dict = {}
    st = _styles({r.peer for r in res.rows})
    for group, cases in res.groups().items():
        copy_gbps = floors_for(group, host_floors, gpu)[0]
        rows = [r for peers in cases.values() for r in peers.values()]
        peers = sorted({r.peer for r in rows})
        ns = {r.n for r in rows if r.n is not None}
        ks = {r.ops for r in rows if r.ops is not None}
        files = []
        if len(ns) >= 3:
            fig, ax = plt.subplots(figsize=(7, 4.5))
            for p in peers:
                pts = sorted((r.n, r.median, r.q1, r.q3) for r in rows
                             if r.peer == p and r.n is not None)
                if pts:
                    x, y, lo, hi = zip(*pts)
                    ax.errorbar(x, y, yerr=[[a - b for a, b in zip(y, lo)],
                                            [b - a for a, b in zip(y, hi)]],
                                label=p, capsize=2, **st[p])
            fl = sorted({(r.n, r.extra["bytes"]) for r in rows
                         if r.n is not None and r.extra.get("bytes")})
            if fl and copy_gbps:
                x = [n for n, _ in fl]
                ax.plot(x, [b / (copy_gbps * 1e9) for _, b in fl], color="gray", lw=1.2,
                        ls="--", label=f"memory floor ({copy_gbps:.3g} GB/s copy)")
            _loglog(ax, "N", "median time [s]", f"{group}: time vs N")
            files.append(_save(plt, fig, out_dir, f"{_slug(group)}_time_vs_n.png"))
        if len(ks) >= 3:
            fig, ax = plt.subplots(figsize=(7, 4.5))
            for p in peers:
                pts = sorted((r.ops, r.per_op) for r in rows if r.peer == p and r.ops)
                if pts:
                    ax.plot(*zip(*pts), label=p, **st[p])
            fl = sorted({(r.ops, r.extra["bytes"]) for r in rows
                         if r.ops and r.extra.get("bytes")})
            if fl and copy_gbps:
                ax.plot([k for k, _ in fl], [b / (copy_gbps * 1e9) / k for k, b in fl],
                        color="gray", lw=1.2, ls="--", label="memory floor / k")
            _loglog(ax, "chain length k (ops)", "median time per op [s]",
                    f"{group}: time per op vs k")
            files.append(_save(plt, fig, out_dir, f"{_slug(group)}_per_op.png"))
        if not files and 4 <= len(rows) <= 24:  # fewer bars say nothing the table doesn't
            items = sorted(rows, key=lambda r: (r.case, r.peer != REF, r.median))
            fig, ax = plt.subplots(figsize=(7, 0.9 + 0.32 * len(items)))
            labels = [f"{r.case} · {r.peer}" if len(cases) > 1 else r.peer for r in items]
            ax.barh(range(len(items)), [r.median for r in items],
                    xerr=[[r.median - r.q1 for r in items], [r.q3 - r.median for r in items]],
                    color=["black" if r.peer == REF else ("lightgray" if r.is_floor
                                                          else "tab:blue") for r in items])
            ax.set_yticks(range(len(items)), labels, fontsize=8)
            ax.invert_yaxis()
            meds = [r.median for r in items if r.median > 0]
            wide = meds and max(meds) / min(meds) > 30
            ax.set(xscale="log" if wide else "linear", xlabel="median time (IQR bars)",
                   title=group)
            ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(
                lambda v, _: fmt_time(v)))
            if wide:
                ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
            ax.grid(True, axis="x", which="both", alpha=0.3)
            files.append(_save(plt, fig, out_dir, f"{_slug(group)}_bars.png"))
        made[group] = files
    return made


# --------------------------------------------------------------------------- report

def _header(res: Results, mach: dict) -> list:
    cpu = mach.get("cpu") or {}
    run0 = res.runs[0] if res.runs else {}
    mi = run0.get("machine_info", {}) if run0 else {}
    if not cpu and mi.get("cpu"):  # pytest-benchmark's own cpuinfo
        c = mi["cpu"]
        cpu = {"model": c.get("brand_raw"), "logical_cpus": c.get("count"),
               "simd": "unknown"}
        if c.get("flags"):
            from bench.machine import simd_level
            cpu["simd"] = simd_level(c["flags"])
    copy_gbps, sgemm = floors(mach)
    lines = ["## Machine", ""]
    rows = [
        ("CPU", f"{cpu.get('model', '?')} ({cpu.get('arch', mi.get('machine', '?'))})"),
        ("cores", f"{cpu.get('logical_cpus', '?')} logical, {cpu.get('usable_cpus', '?')} usable"
                  + (f", {cpu['cores_per_socket']} per socket" if cpu.get("cores_per_socket")
                     else "")),
        ("SIMD", cpu.get("simd", "?")),
    ]
    for b in mach.get("blas") or []:
        rows.append((f"{b.get('user_api', 'pool')} (threadpoolctl)",
                     f"{b.get('internal_api')} {b.get('version') or ''} "
                     f"{b.get('architecture') or ''}, {b.get('num_threads')} threads "
                     f"({b.get('library') or '?'})"))
    if not mach.get("blas"):
        rows.append(("BLAS", "not recorded (threadpoolctl missing)"))
    vers = mach.get("versions") or mi.get("versions") or {}
    rows.append(("versions", ", ".join(f"{k} {v}" for k, v in vers.items() if v)))
    missing = [k for k, v in vers.items() if not v]
    if missing:
        rows.append(("not installed", ", ".join(missing)))
    rows.append(("copy bandwidth (floor)",
                 f"{copy_gbps:.3g} GB/s (read + write)" if copy_gbps else "not measured"))
    rows.append(("sgemm rate (floor)",
                 f"{sgemm:.3g} GFLOP/s (float32, n = {mach['floors'].get('sgemm_n')})"
                 if sgemm else "not measured"))
    envs = mach.get("env") or mi.get("env") or {}
    rows.append(("environment", ", ".join(f"{k}={v}" for k, v in envs.items()) or "(none set)"))
    if mach.get("loadavg"):
        la = mach.get("loadavg_start") or mach["loadavg"]
        end = mach.get("loadavg_end")
        rows.append(("load average (1 min)", f"{la[0]:.2f} at start" +
                     (f", {end[0]:.2f} at end" if end else "") +
                     f" on {cpu.get('logical_cpus', '?')} cpus"))
    rows.append(("machine info", mach.get("source", "?")))
    lines.append(_md_table(["", ""], rows))
    lines.append("")
    for run in res.runs:
        ci = run.get("commit_info") or {}
        lines.append(f"- `{run['path']}`: run {run.get('datetime', '?')}, commit "
                     f"{(ci.get('id') or '?')[:10]}{' (dirty tree)' if ci.get('dirty') else ''}"
                     f", pytest-benchmark {run.get('version', '?')}"
                     + (" — **--quick run: 1 round, timings are not meaningful**"
                        if run["machine_info"].get("quick") else ""))
    return lines


def render(res: Results, out_dir: str, plots: bool = True, mach: dict | None = None,
           note: str | None = None) -> str:
    """Write report.md (and plots) into out_dir; returns the Markdown."""
    os.makedirs(out_dir, exist_ok=True)
    mach = mach if mach is not None else machine_of(res)
    copy_gbps, sgemm = floors(mach)
    gpu = gpu_floors(res)
    made = plot_groups(res, out_dir, (copy_gbps, sgemm), gpu) if plots else {}
    md = ["# jitgrad benchmark report", "",
          f"Generated {_dt.datetime.now().strftime('%Y-%m-%d %H:%M')} by `python -m bench.report "
          f"{' '.join(r['path'] for r in res.runs)}`.", ""]
    if note:
        md += [note, ""]
    md += ["Times are medians over rounds; IQR is the spread (q3 − q1). **÷ best**: median ÷ the "
           "fastest non-floor peer's median in the same case (1× = fastest). **÷ jitgrad**: "
           "median ÷ jitgrad's median (> 1: jitgrad is faster). **÷ floor**: median ÷ the time "
           "the measured floors allow for the benchmark's bytes (copy bandwidth) or flops "
           "(sgemm rate). Peers run in the same pytest session, so ratios within a case "
           "compare like with like; absolute times depend on the machine's load.", ""]
    md += _header(res, mach)
    if gpu[0] or gpu[1]:
        md += ["", "GPU groups (`cuda-*`) use the GPU's floors from the same run, not the host's: "
               f"device copy {gpu[0] or float('nan'):.4g} GB/s (read + write), "
               f"cuBLAS through torch {gpu[1] or float('nan'):.4g} GFLOP/s."]
    md += ["", "## Targets", ""]
    verdicts = targets(res)
    order = {w[0]: i for i, w in enumerate(WORKLOADS)}
    seen_w = {r.workload for r in res.rows}
    trows = [(f"{v.workload}", v.source, v.target, v.figure,
              {"met": "✅ met", "missed": "❌ missed"}.get(v.status, "— " + v.status))
             for v in sorted(verdicts, key=lambda v: order.get(v.workload, 99))
             if v.workload in seen_w or v.status != "not measured"]
    for wid, title, _ in WORKLOADS:
        if wid in ("W1", "W2", "W3", "W4", "W5", "W6") and wid not in seen_w:
            trows.append((wid, "-", title, "no benchmark of this workload in the input",
                          "— not measured"))
    if "W6" in seen_w:
        trows.append(("W6", "issue 6", "cold start (fresh process to first W3 backward)",
                      "no numeric target in the issues", "— informational"))
    if any(run["machine_info"].get("quick") for run in res.runs):
        md += ["**A --quick run is among the inputs: its timings (1 round, no warm-up) say "
               "nothing about these targets.**", ""]
    md.append(_md_table(["workload", "set by", "target", "figure", "status"], trows, left=5))
    n_met = sum(v.status == "met" for v in verdicts)
    n_missed = sum(v.status == "missed" for v in verdicts)
    md += ["", f"{n_met} met, {n_missed} missed.", ""]

    md += efficiency_table(res)
    groups = res.groups()
    by_w: dict = {}
    for g, cases in groups.items():
        if all("kernel_efficiency" in r.extra for c in cases.values() for r in c.values()):
            continue  # (its section above; the time is the measurement's, not a figure)
        w = next(iter(next(iter(cases.values())).values())).workload
        by_w.setdefault(w, []).append(g)
    titles = {w[0]: w[1] for w in WORKLOADS}
    for w in sorted(by_w, key=lambda w: order.get(w, 99)):
        md += [f"## {titles.get(w, 'Other benchmarks')}", ""]
        for g in by_w[w]:
            md += [f"### `{g}`", "",
                   group_table(groups[g], *floors_for(g, (copy_gbps, sgemm), gpu)), ""]
            for f in made.get(g, []):
                md += [f"![{g}]({f})", ""]
    if res.notes:
        md += ["## Notes", ""] + [f"- {n}" for n in res.notes] + [""]
    text = "\n".join(md)
    with open(os.path.join(out_dir, "report.md"), "w") as f:
        f.write(text)
    return text


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.report", description=__doc__.split("\n")[0])
    ap.add_argument("json", nargs="+", help="pytest-benchmark --benchmark-json files")
    ap.add_argument("-o", "--out", default="bench/report", help="output folder (default %(default)s)")
    ap.add_argument("--no-plots", action="store_true", help="Markdown only")
    ap.add_argument("--note", help="a paragraph for the top of the report (how the run was made)")
    a = ap.parse_args(argv)
    res = load(a.json)
    if not res.rows:
        print("no benchmarks with stats in " + ", ".join(a.json), file=sys.stderr)
        return 1
    render(res, a.out, plots=not a.no_plots, note=a.note)
    print(os.path.join(a.out, "report.md"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
