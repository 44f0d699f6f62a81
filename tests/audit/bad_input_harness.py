"""Bad-input audit: every case of bad_input_cases.py under torch and under jitgrad, compared.

Not a pytest file (it takes ~30 s warm, minutes cold): run it by hand,
``JITGRAD_CACHE_DIR=/tmp/jgcache_x .venv/bin/python tests/audit/bad_input_harness.py``.
Each library runs in subprocess workers executing cases in order, one JSON line per case; a
worker that dies (a segfault: negative return code) or stalls past the timeout gets that case
recorded as CRASH/HANG and a fresh worker resumes at the next case. Printed: CRASH, HANG,
SILENT (torch raised, jitgrad returned), RAISES (torch returned, jitgrad raised), DIFF (values,
shapes or dtypes differ) and [msg?] (both raised, jitgrad with a bare NumPy/Numba/Python error
class worth a look).
"""
import json, os, subprocess, sys, time, select

HERE = os.path.dirname(os.path.abspath(__file__))

WORKER = r'''
import json, sys, traceback, warnings
warnings.filterwarnings("ignore")
import numpy as np
lib = sys.argv[1]; start = int(sys.argv[2])
sys.path.insert(0, sys.argv[3])
from bad_input_cases import CASES
if lib == "torch":
    import torch as M
    import torch.nn.functional as F
    def T(a, **k):
        return torch_tensor(a, **k)
    def torch_tensor(a, **k):
        a = np.asarray(a)
        return M.from_numpy(a.copy()) if not k else M.tensor(a.tolist() if a.ndim else a.item(), **k)
    LA = M.linalg
else:
    import jitgrad as M
    import jitgrad.nn.functional as F
    def T(a, **k):
        return M.tensor(np.asarray(a).copy(), **k)
    LA = M.linalg
def norm(r):
    if isinstance(r, (tuple, list)) or type(r).__name__.endswith("_return_types") or hasattr(r, "_fields"):
        return [norm(x) for x in r]
    if hasattr(r, "detach") and hasattr(r, "shape"):
        a = r.detach().cpu().numpy() if lib == "torch" else r.detach().numpy()
        return {"t": "tensor", "shape": list(a.shape), "dtype": str(a.dtype),
                "v": np.asarray(a, dtype=np.float64 if a.dtype.kind != "c" else np.complex128).ravel().tolist()[:400] if a.dtype.kind != "c" else None}
    if isinstance(r, (int, float, bool, str)) or r is None:
        return {"t": "py", "v": r}
    return {"t": type(r).__name__, "v": repr(r)[:200]}
for i in range(start, len(CASES)):
    name, code = CASES[i]
    print(json.dumps({"i": i, "start": True}), flush=True)
    g = dict(M=M, F=F, T=T, np=np, LA=LA)
    try:
        exec(code, g)
        out = {"ok": norm(g.get("r"))}
    except BaseException as e:
        tb = traceback.extract_tb(e.__traceback__)
        out = {"exc": type(e).__name__, "msg": str(e)[:400], "where": f"{tb[-1].filename}:{tb[-1].lineno}" if tb else ""}
    out["i"] = i
    print(json.dumps(out, default=str), flush=True)
'''

def run(lib, ncases, timeout):
    res = {}
    start = 0
    wpath = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"_bad_input_worker_{os.getpid()}.py")
    open(wpath, "w").write(WORKER)
    while start < ncases:
        p = subprocess.Popen([sys.executable, wpath, lib, str(start), HERE], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        cur = None; last = time.time(); buf = ""
        while True:
            r, _, _ = select.select([p.stdout], [], [], 1.0)
            if r:
                line = p.stdout.readline()
                if not line:
                    p.wait(); break
                d = json.loads(line)
                if d.get("start"):
                    cur = d["i"]; last = time.time()
                else:
                    res[d["i"]] = d; cur = None
            elif time.time() - last > timeout and cur is not None:
                p.kill(); p.wait()
                res[cur] = {"hang": True}
                break
            elif p.poll() is not None and not r:
                break
        rc = p.wait()
        if cur is not None and cur not in res:
            res[cur] = {"crash": rc, "stderr": p.stderr.read()[-600:]}
        if cur is None:
            break
        start = cur + 1
    return res

if __name__ == "__main__":
    sys.path.insert(0, HERE)
    from bad_input_cases import CASES
    n = len(CASES)
    t = run("torch", n, 60)
    j = run("jitgrad", n, float(os.environ.get("JG_TIMEOUT", 90)))
    json.dump({"torch": t, "jitgrad": j}, open(os.environ.get("AUDIT_RESULTS", "/tmp/bad_input_audit.json"), "w"))
    import numpy as np
    def same(a, b):
        if isinstance(a, list) and isinstance(b, list):
            return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
        if isinstance(a, dict) and isinstance(b, dict):
            if a.get("t") != b.get("t"): return False
            if a["t"] == "tensor":
                if a["shape"] != b["shape"] or a["dtype"] != b["dtype"]: return False
                if a["v"] is None or b["v"] is None: return True
                return np.allclose(np.array(a["v"], float), np.array(b["v"], float), rtol=1e-4, atol=1e-5, equal_nan=True)
            return a["v"] == b["v"]
        return False
    bad = 0
    for i, (name, code) in enumerate(CASES):
        tr, jr = t.get(i, {"missing": 1}), j.get(i, {"missing": 1})
        if "crash" in jr or "hang" in jr or "missing" in jr:
            st = "CRASH" if "crash" in jr else ("HANG" if "hang" in jr else "MISSING")
            print(f"[{st}] {name}: {code!r} {jr}"); bad += 1; continue
        if "exc" in tr:
            if "exc" in jr:
                if os.environ.get("SHOWMSG") or jr["exc"] in ("IndexError", "ValueError", "TypeError", "ZeroDivisionError", "AssertionError", "KeyError", "OverflowError", "MemoryError", "AttributeError", "NameError", "UnboundLocalError", "TypingError", "NumbaError", "LinAlgError", "FloatingPointError") or "numba" in jr.get("where", "") or "numpy" in jr.get("where", ""):
                    print(f"[msg?] {name}: torch {tr['exc']}: {tr['msg'][:120]!r} | jg {jr['exc']}: {jr['msg'][:160]!r} @ {jr['where']}")
            else:
                print(f"[SILENT] {name}: {code!r} torch raised {tr['exc']}: {tr['msg'][:150]!r}; jg returned {str(jr['ok'])[:200]}"); bad += 1
        else:
            if "exc" in jr:
                print(f"[RAISES] {name}: {code!r} torch ok {str(tr['ok'])[:150]}; jg {jr['exc']}: {jr['msg'][:200]} @ {jr['where']}"); bad += 1
            elif not same(tr["ok"], jr["ok"]):
                print(f"[DIFF] {name}: {code!r}\n    torch {str(tr['ok'])[:300]}\n    jg    {str(jr['ok'])[:300]}"); bad += 1
    print(f"{n} cases, {bad} problems")
