"""Faults in the kernel caches (backends/cpu.py) and concurrent parallel launches.

Each disk-cache scenario runs in fresh subprocesses against its own cache directory, so that
Numba really reads (and jitgrad really repairs) the files on disk: a first process fills the
cache, the files are damaged (truncated, garbled, a flipped byte, emptied), a second process
must compute the right values (reporting each damaged file once under JITGRAD_DEBUG) and a
third must load everything from the repaired cache without compiling.
"""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import jitgrad as jg
from jitgrad.backends import cpu

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Two generated kernels (a fused forward/backward, and an eager op), three hand-written
# reductions called directly, and vmath's tanh (a hand-written kernel the fused one calls).
_WORK = textwrap.dedent("""
    import json, sys, warnings, numpy as np
    from numba.core import event
    caught = warnings.catch_warnings(record=True)
    wlist = caught.__enter__()
    warnings.simplefilter("always")
    {prelude}
    with event.install_recorder("numba:compile") as rec:
        import jitgrad as jg
        from jitgrad.backends import cpu
        xs = np.linspace(-2, 2, 301)
        x = jg.tensor(xs, requires_grad=True)
        loss = (jg.tanh(x * 1.5 + 0.5) * x).sum()
        loss.backward()
        e = (jg.tensor(xs) * 3.0).numpy()
        a = np.arange(24.0).reshape(2, 3, 4) / 7
        o1, o2, o3 = np.empty((2, 4)), np.empty((2, 4)), np.empty((2, 4))
        cpu.sum_arb(a, o1)
        cpu.prod_arb(a, o2)
        cpu.var_arb(a, o3, 1)
    gen = [d.py_func.__code__.co_filename for d in cpu._kernels.values()]
    print(json.dumps(dict(
        loss=loss.item(), grad=x.grad.numpy().tolist(), e=e.tolist(),
        red=[o1.tolist(), o2.tolist(), o3.tolist()],
        compiles=sum(1 for _, ev in rec.buffer if ev.is_start),
        counters=jg._debug.COUNTERS, generated=gen,
        paths=[cpu.sum_arb.stats.cache_path, cpu.var_arb.stats.cache_path,
               sys.modules["jitgrad.vmath"].VMATH_FUNCS["tanh"].stats.cache_path],
        warnings=[str(w.message) for w in wlist if "jitgrad" in str(w.message)])))
""")


def _run(cache_dir, prelude="", **env_extra):
    env = dict(os.environ)
    for k in ("JITGRAD_CACHE", "JITGRAD_DEBUG", "JITGRAD_FUSION", "JITGRAD_FUSE_MIN"):
        env.pop(k, None)
    env.update(JITGRAD_CACHE_DIR=str(cache_dir), JITGRAD_FUSE_MIN="0",
               PYTHONPATH=os.pathsep.join(p for p in (REPO_ROOT, env.get("PYTHONPATH")) if p))
    env.update(env_extra)
    p = subprocess.run([sys.executable, "-c", _WORK.format(prelude=prelude)], env=env,
                       cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, f"child failed ({p.returncode}):\n{p.stderr[-4000:]}"
    return json.loads(p.stdout.strip().splitlines()[-1]), p.stderr


def _check_values(r):
    xs = np.linspace(-2, 2, 301)
    t = np.tanh(xs * 1.5 + 0.5)
    np.testing.assert_allclose(r["loss"], np.sum(t * xs), rtol=1e-12)
    np.testing.assert_allclose(r["grad"], t + xs * 1.5 * (1 - t * t), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(r["e"], xs * 3.0, rtol=1e-15)
    a = np.arange(24.0).reshape(2, 3, 4) / 7
    np.testing.assert_allclose(r["red"][0], a.sum(1), rtol=1e-14)
    np.testing.assert_allclose(r["red"][1], a.prod(1), rtol=1e-14)
    np.testing.assert_allclose(r["red"][2], a.var(1, ddof=1), rtol=1e-12)


def _one(pattern_dir, prefix, suffix):
    got = sorted(f for f in os.listdir(pattern_dir) if f.startswith(prefix) and f.endswith(suffix))
    assert got, f"no {prefix}*{suffix} in {pattern_dir}: {sorted(os.listdir(pattern_dir))}"
    return os.path.join(pattern_dir, got[0])


def test_corrupt_cache_files_are_detected_reported_and_rebuilt(tmp_path):
    first, _ = _run(tmp_path)
    _check_values(first)
    assert first["compiles"] > 0
    gen = sorted(first["generated"])
    assert len(gen) >= 2 and all(g.startswith(str(tmp_path)) and g.endswith(".py") for g in gen)
    d = os.path.dirname(gen[0])
    pyc = os.path.join(d, "__pycache__")
    lib = os.path.dirname(first["paths"][0])
    assert lib.startswith(str(tmp_path)) and first["paths"][0] == first["paths"][1]
    vm_dir = first["paths"][2]
    assert vm_dir.startswith(lib) and vm_dir != first["paths"][0]
    stem = [os.path.basename(g)[:-3] for g in gen]

    def garble(path, data):
        with open(path, "wb") as f:
            f.write(data)

    def read(path):
        with open(path, "rb") as f:
            return f.read()

    damaged = {}
    # kernel 0: its module is not valid UTF-8 any more, and one byte of its machine code flipped
    p = os.path.join(d, stem[0] + ".py")
    garble(p, b"\xff\xfe\x00garbage" + read(p)[5:])
    damaged[p] = "garbled"
    p = _one(pyc, stem[0], ".nbc")
    b = bytearray(read(p))
    b[len(b) // 2] ^= 0x40
    garble(p, bytes(b))
    damaged[p] = "flipped"
    for st in stem[1:]:                      # the others: index truncated
        p = _one(pyc, st, ".nbi")
        garble(p, read(p)[:len(read(p)) // 2])
        damaged[p] = "truncated"
    p = _one(first["paths"][0], "cpu.sum_arb", ".nbc")     # emptied
    garble(p, b"")
    damaged[p] = "empty"
    p = _one(first["paths"][0], "cpu.prod_arb", ".nbc")    # truncated
    garble(p, read(p)[:100])
    damaged[p] = "truncated"
    p = _one(first["paths"][0], "cpu.var_arb", ".nbi")     # random bytes
    garble(p, np.random.default_rng(0).bytes(len(read(p))))
    damaged[p] = "garbled"
    p = _one(vm_dir, "vmath.tanh", ".nbi")                  # one byte flipped
    b = bytearray(read(p))
    b[-3] ^= 0x01
    garble(p, bytes(b))
    damaged[p] = "flipped"

    second, err = _run(tmp_path, JITGRAD_DEBUG="1")
    _check_values(second)
    reports = [ln for ln in err.splitlines() if "disk cache: corrupt" in ln]
    for path, kind in damaged.items():
        n = sum(path in ln for ln in reports)
        assert n == 1, f"{kind} {path} reported {n} times:\n" + "\n".join(reports)
    assert len(reports) == len(damaged), "\n".join(reports)
    assert second["counters"]["cache_corrupt"] == len(damaged)
    assert second["compiles"] > 0 and not second["warnings"]

    third, err = _run(tmp_path, JITGRAD_DEBUG="1")  # the repaired cache: nothing compiles
    _check_values(third)
    assert third["compiles"] == 0 and "disk cache: corrupt" not in err
    assert third["counters"].get("cache_corrupt", 0) == 0
    assert third["loss"] == first["loss"] and third["grad"] == first["grad"]


def test_cache_dir_under_a_regular_file_compiles_in_memory_with_one_warning(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    r, _ = _run(blocker / "cache")
    _check_values(r)
    assert len(r["warnings"]) == 1 and "not writable" in r["warnings"][0], r["warnings"]
    assert r["paths"][0].startswith(str(blocker))  # (where it would have been)
    assert blocker.read_text() == "not a directory"


_DENY_WRITES = """
import builtins, os, tempfile
D = os.environ["JITGRAD_CACHE_DIR"]
def _denied(path):
    return os.path.abspath(os.fspath(path)).startswith(D)
def _deny(path):
    raise PermissionError(13, "Permission denied", os.fspath(path))
_open, _makedirs = builtins.open, os.makedirs
_mkstemp, _tfile = tempfile.mkstemp, tempfile.TemporaryFile
def _open_w(file, mode="r", *a, **k):
    if isinstance(file, (str, os.PathLike)) and _denied(file) and set(mode) & set("wax+"):
        _deny(file)
    return _open(file, mode, *a, **k)
def _makedirs_w(name, *a, **k):
    if _denied(name) and not os.path.isdir(name):
        _deny(name)
    return _makedirs(name, *a, **k)
def _mkstemp_w(*a, dir=None, **k):
    if dir is not None and _denied(dir):
        _deny(dir)
    return _mkstemp(*a, dir=dir, **k)
def _tfile_w(*a, dir=None, **k):
    if dir is not None and _denied(dir):
        _deny(dir)
    return _tfile(*a, dir=dir, **k)
builtins.open, os.makedirs, tempfile.mkstemp, tempfile.TemporaryFile = \\
    _open_w, _makedirs_w, _mkstemp_w, _tfile_w
"""


def test_unwritable_cache_dir_compiles_in_memory_with_one_warning(tmp_path):
    # (root ignores chmod, so the child's writes under the directory are refused by patching
    # the functions the cache writes through, as a read-only directory would refuse them)
    r, _ = _run(tmp_path, prelude=_DENY_WRITES)
    _check_values(r)
    assert len(r["warnings"]) == 1 and "PermissionError" in r["warnings"][0], r["warnings"]
    assert list(tmp_path.iterdir()) == []


def test_cache_off_writes_nothing_anywhere(tmp_path):
    r, _ = _run(tmp_path, JITGRAD_CACHE="0")
    _check_values(r)
    # no disk cache for the hand-written kernels either (they used to cache into the package)
    assert r["paths"] == [None, None, None] and not r["warnings"]
    assert list(tmp_path.iterdir()) == []


def test_kernel_table_is_a_bounded_lru(monkeypatch):
    import types

    def fake(name):
        mod = types.ModuleType(name)
        monkeypatch.setitem(sys.modules, name, mod)
        return types.SimpleNamespace(py_func=types.SimpleNamespace(__module__=name))

    t = cpu.KernelCache(2)
    a, b, c = (fake(f"jitgrad_kernels.test_lru_{k}") for k in "abc")
    t["a"], t["b"] = a, b
    assert t.get("a") is a          # a is now the most recent
    t["c"] = c                      # b goes, and its module with it
    assert list(t) == ["a", "c"] and "jitgrad_kernels.test_lru_b" not in sys.modules
    assert "jitgrad_kernels.test_lru_a" in sys.modules and t.get("b") is None


def test_evicted_kernels_are_rebuilt_with_right_values(monkeypatch):
    monkeypatch.setattr(cpu._kernels, "maxsize", 1)
    x = np.linspace(-1, 1, 7)
    t = jg.tensor(x)
    ev0 = jg._debug.COUNTERS.get("kernels_evicted", 0)
    for _ in range(2):
        np.testing.assert_allclose((t * 2.5).numpy(), x * 2.5, rtol=1e-15)
        np.testing.assert_allclose((t - 0.5).numpy(), x - 0.5, rtol=1e-15)
    assert jg._debug.COUNTERS["kernels_evicted"] - ev0 >= 3 and len(cpu._kernels) == 1


_THREADS = textwrap.dedent("""
    import threading, numba, numpy as np
    import jitgrad as jg
    from jitgrad import lazy
    from jitgrad.backends import cpu
    lazy.PAR_MIN = lazy.PAR_MIN_WORK = 0   # a parallel kernel for a modest tensor
    n = 1 << 17
    xs = [np.linspace(-1, 1, n) * (k + 1) for k in range(2)]
    ref = [np.tanh(x * 1.5 + 0.5) * x for x in xs]
    f = lambda x: (jg.tanh(jg.tensor(x) * 1.5 + 0.5) * x).numpy()
    np.testing.assert_allclose(f(xs[0]), ref[0], rtol=1e-12)   # compiled once, up front
    assert any(isinstance(k, cpu.ChunkedKernel) for k in cpu._kernels.values())
    bad = []
    def work(k):
        try:
            for _ in range(40):
                np.testing.assert_allclose(f(xs[k]), ref[k], rtol=1e-12)
        except BaseException as e:
            bad.append(repr(e))
    ts = [threading.Thread(target=work, args=(k,)) for k in range(2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not bad, bad
    print("ok")
""")


def test_parallel_kernels_from_two_threads_under_workqueue(tmp_path):
    """Two threads launching large (chunked, cpu.POOL) kernels at once get their own results.
    (Generated kernels no longer use Numba's threading layers, whose workqueue layer aborted
    the process on concurrent parallel launches; the layer stays set here to show it.)"""
    env = dict(os.environ)
    env.update(NUMBA_THREADING_LAYER="workqueue", JITGRAD_FUSE_MIN="0",
               JITGRAD_CACHE_DIR=str(tmp_path),
               PYTHONPATH=os.pathsep.join(p for p in (REPO_ROOT, env.get("PYTHONPATH")) if p))
    env.pop("JITGRAD_PARALLEL", None)
    p = subprocess.run([sys.executable, "-c", _THREADS], env=env, cwd=REPO_ROOT,
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0 and p.stdout.strip().endswith("ok"), \
        f"child failed ({p.returncode}):\n{p.stderr[-4000:]}"


@pytest.mark.parametrize("layer", ["workqueue", None])
def test_parallel_kernel_lock_follows_the_active_layer(monkeypatch, layer):
    """Serialised until the layer is known; unlocked once it is known to be threadsafe."""
    calls = []

    class Disp:
        def __call__(self, *a):
            calls.append(cpu._PAR_LOCK.locked())
            return sum(a)
        stats = "forwarded"

    monkeypatch.setattr(cpu, "_par_threadsafe", None)
    if layer is None:
        monkeypatch.setattr(cpu.numba, "threading_layer", lambda: "omp")
    else:
        monkeypatch.setattr(cpu.numba, "threading_layer", lambda: layer)
    k = cpu.ParallelKernel(Disp())
    assert k(1, 2) == 3 and k(3, 4) == 7 and k.stats == "forwarded"
    assert calls == ([True, True] if layer == "workqueue" else [True, False])


_VMATH_CALLER = textwrap.dedent("""
    import json, numpy as np
    {prelude}
    from jitgrad.backends import cpu_nn
    x = np.array([[1.0, 2.0, 3.0], [0.0, -1.0, 5.0]], np.float32)
    t = np.array([2, 0])
    p, l, c = np.empty_like(x), np.empty(2, np.float32), np.empty(2)
    total, _ = cpu_nn.cross_entropy_fwd(x, t, l, False, -100, p, l, c)
    st = cpu_nn.cross_entropy_fwd.stats
    print(json.dumps(dict(total=total, hits=sum(st.cache_hits.values()),
                          misses=sum(st.cache_misses.values()))))
""")


def test_kernels_calling_vmath_are_recompiled_when_vmath_changes(tmp_path):
    """A hand-written kernel that calls vmath (cpu_vm, ``calls_vmath=True``) caches under a
    stamp that covers vmath's source: another vmath (here: another prelude hash) is a miss,
    never the machine code of the old one; the same vmath is a hit."""
    env = dict(os.environ, JITGRAD_CACHE_DIR=str(tmp_path),
               PYTHONPATH=os.pathsep.join(p for p in (REPO_ROOT, os.environ.get("PYTHONPATH"))
                                          if p))

    def run(prelude=""):
        p = subprocess.run([sys.executable, "-c", _VMATH_CALLER.format(prelude=prelude)],
                           env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
        assert p.returncode == 0, p.stderr[-4000:]
        return json.loads(p.stdout.strip().splitlines()[-1])
    x = np.array([[1.0, 2.0, 3.0], [0.0, -1.0, 5.0]])
    want = (np.log(np.exp(x).sum(1)) - x[[0, 1], [2, 0]]).sum()
    other = "import jitgrad.backends.cpu as _c; _c._PRELUDE_HASH = '0' * 16"
    runs = [run(), run(), run(other), run(other), run()]
    for r in runs:
        np.testing.assert_allclose(r["total"], want, rtol=1e-6)
    assert [(r["hits"], r["misses"]) for r in runs] == [(0, 1), (1, 0), (0, 1), (1, 0), (0, 1)]
