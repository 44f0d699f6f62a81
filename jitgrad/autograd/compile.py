"""compile: a traced record -> ONE Numba kernel computing the whole Jacobian; cached replay.

The kernel is straight-line code over flat buffers with static shapes: the primal forward
(elementwise rows rendered through codegen, gathers for movement/indexing, scatter-adds for
sums, loops for matmul), then the tangents — forward mode over the input basis or reverse mode
over the output basis. A tangent is tracked statically as one of

* ``Z``: zero (no dependence);
* ``H``: "one-hot": every element depends on at most one basis vector ``src[i]`` (a static
  index map) with coefficient ``d[i]`` — the identity seed, elementwise images of it, its
  gathers and broadcasts. Elementwise chains on the seed therefore cost O(n), not O(n²);
* ``D``: dense ``(n, NB)`` (value-major), e.g. after a sum or a matmul.

Elementwise tangent rules come from the registry VJP rules: they are linear in ``g``, so the
kernel evaluates ``c_k = vjps[k](m, *xs, out, 1)`` once per element and uses it both ways
(forward: ``t_out += c_k t_k``; reverse: ``g_k += c_k g_out``).

Cache (:func:`lookup`): per function object, keyed by (strategy, strict, input shapes and
dtypes). Tensors the function reads that are not inputs ("constants") are passed to the kernel
on every call, so in-place updates of them are seen; a constant found in the function's
closure cells or globals is re-checked by identity on every call, so rebinding that name to
another tensor retraces. What invalidates an entry: other input shapes/dtypes, a rebound
closure/global tensor, a constant whose shape/dtype changed. Functions whose trace observed a
tensor value (data-dependent control flow), drew random numbers, or used a
primitive the compiler does not know are never cached: they run the eager batched path.
"""
from __future__ import annotations

import hashlib
import threading
import weakref

import numpy as np

from .. import codegen
from .._state import STATE
from .._tensor import Ctx, Tensor, _result_dtype
from ..backends import cpu

__all__ = ["lookup", "replay", "build", "clear_cache", "set_enabled", "STATS"]

_ENABLED = True
_CACHE: dict = {}        # id(func) -> _FuncCache
_LOCK = threading.RLock()  # changes to _CACHE and its entries (lookups read without it)
MAX_RETRACES = 8
STATS = {"compiled": 0, "replayed": 0, "not_compiled": 0}
_LAST_REASON = [None]


def set_enabled(enabled: bool) -> None:
    """Turn the compiled replay on or off (off: every call traces and interprets)."""
    global _ENABLED
    _ENABLED = bool(enabled)


def clear_cache() -> None:
    _CACHE.clear()


class Unsupported(Exception):
    pass


# ============================================================================================
# static analysis of the record


class _Edge:
    """A linear map from the tangent of ``s`` to (part of) the tangent of ``t``.

    kind 'pairs': element pairs (ti[k], si[k]) with coefficient ``coef`` (None = 1, a float,
    or 'ew' = the elementwise coefficient of input ``k`` computed in the op's loop);
    kind 'mm': matmul (see _render_mm)."""

    __slots__ = ("kind", "t", "s", "ti", "si", "coef", "op", "k")

    def __init__(self, kind, t, s, ti=None, si=None, coef=None, op=None, k=None):
        self.kind, self.t, self.s, self.ti, self.si, self.coef, self.op, self.k = \
            kind, t, s, ti, si, coef, op, k


def _keep_shape(shape, axes):
    return tuple(1 if d in axes else s for d, s in enumerate(shape))


def _size(shape):
    n = 1
    for s in shape:
        n *= s
    return n


class _Gen:
    def __init__(self, tr, outs_t, mode):
        self.Tensor = Tensor
        self.tr, self.mode = tr, mode
        self.P = tr.values
        self.shape = [tuple(t._meta[0]) for t in self.P]
        self.size = [_size(s) for s in self.shape]
        self.dtype = [t._meta[1] for t in self.P]
        self.outs = [tr.ref(o) for o in outs_t]
        self.consts = []          # (value index, tensor)
        self.statics = []         # module-level int arrays
        self.lines = []
        self.n = 0

    # --- helpers --------------------------------------------------------------------------
    def static(self, arr):
        arr = np.ascontiguousarray(arr, dtype=np.int64).reshape(-1)
        name = f"_S{len(self.statics)}"
        self.statics.append((name, arr))
        return name

    def dt(self, v):
        d = np.dtype(self.dtype[v])
        return "np.bool_" if d.kind == "b" else f"np.{d.name}"

    def emit(self, line, depth=1):
        self.lines.append("    " * depth + line)

    def fresh(self, prefix):
        self.n += 1
        return f"{prefix}{self.n}"

    # --- the op set -----------------------------------------------------------------------
    def edges_of(self, op):
        """(primal renderer, tangent edges in forward orientation: target = op.out), from the
        structural record's ``index_map``: "gather" ops are run on flat index arrays (each
        output element's source), "reduce" ops map each input element to its output element
        (divided by ``divisor``), "bilinear" is matmul's loops; anything else is not compiled."""
        fn, p, o = op.prim, op.params, op.out
        if op.kind == "ew":
            return "ew", [_Edge("pairs", o, a, coef="ew", op=op, k=k)
                          for k, a in enumerate(op.args)
                          if isinstance(a, int) and k not in op.prim.bool_inputs
                          and op.prim.vjps[k] is not None and op.prim.dtype_rule != "compare"]
        im = fn.index_map
        if im is not None and any(np.dtype(self.dtype[v]).kind != "f" for v in op.args + (o,)):
            raise Unsupported(f"{op.name} of integer values")
        if im == "gather":
            return "gather", self._gather_edges(op)
        if im == "reduce":
            if p.get("dtype") is not None:
                raise Unsupported(f"{op.name}(dtype=)")
            a = op.args[0]
            ks = _keep_shape(self.shape[a], p["axes"])
            seg = np.broadcast_to(np.arange(_size(ks)).reshape(ks), self.shape[a]).reshape(-1)
            n = fn.divisor(p, self.shape[a]) if fn.divisor is not None else None
            coef = None if n is None else 1.0 / n
            return ("sum", n), [_Edge("pairs", o, a, seg, np.arange(seg.size), coef)]
        if im == "bilinear":
            a, b = op.args
            if len(self.shape[a]) > 2 or len(self.shape[b]) > 2:
                raise Unsupported("batched matmul")
            return "mm", [_Edge("mm", o, a, op=op, k=0), _Edge("mm", o, b, op=op, k=1)]
        raise Unsupported(op.name)

    def _gather_edges(self, op):
        """Run the op's forward on index arrays (input k holds offset_k + arange(size_k)): each
        output element names the input element it copies."""
        ins, off = [], 0
        for a in op.args:
            ins.append((np.arange(self.size[a], dtype=np.int64) + off).reshape(self.shape[a]))
            off += self.size[a]
        src = np.asarray(op.prim.forward(Ctx(), *ins, **op.params)).astype(np.int64).reshape(-1)
        if src.size != self.size[op.out]:
            raise Unsupported(f"{op.name}: index map of the wrong size")
        edges, off = [], 0
        for a in op.args:
            pos = np.flatnonzero((src >= off) & (src < off + self.size[a]))
            edges.append(_Edge("pairs", op.out, a, pos, src[pos] - off))
            off += self.size[a]
        return edges

    # --- kind inference ---------------------------------------------------------------------
    def analyse(self):
        tr = self.tr
        ins = tr.inputs
        dep_in = set(ins)
        for op in tr.ops:
            if any(isinstance(a, int) and a in dep_in for a in op.args):
                dep_in.add(op.out)
        anc = set(self.outs)
        for op in reversed(tr.ops):
            if op.out in anc:
                anc.update(a for a in op.args if isinstance(a, int))
        self.prim_ops = [op for op in tr.ops if op.out in anc]
        self.info = {op.out: self.edges_of(op) for op in self.prim_ops}
        self.live = dep_in & anc   # values whose tangent matters
        for k, kind in enumerate(tr.kinds):
            if kind == "const" and k in anc:
                if not isinstance(self.P[k], self.Tensor):
                    raise Unsupported("constant")
                self.consts.append(k)
        for k in anc:
            if np.dtype(self.dtype[k]).kind not in "fb" and k not in self.consts \
                    and tr.kinds[k] != "const":
                raise Unsupported("integer intermediate")
        # edges oriented for the mode: (target, source) of the propagation
        edges = []
        for op in self.prim_ops:
            _, es = self.info[op.out]
            for e in es:
                if e.s in self.live and e.t in self.live:
                    edges.append(e)
        self.edges = edges
        if self.mode == "forward-mode":
            self.NB = sum(self.size[k] for k in ins)
            src, off = {}, 0
            for k in ins:
                src[k] = np.arange(off, off + self.size[k])
                off += self.size[k]
            order = [(op.out, [e for e in edges if e.t == op.out]) for op in self.prim_ops]
            get_t, get_s = (lambda e: e.t), (lambda e: e.s)
        else:
            self.NB = sum(self.size[k] for k in self.outs)
            src, off = {}, 0
            for k in self.outs:
                if k in self.live:
                    s = np.arange(off, off + self.size[k])
                    src[k] = self._merge(src.get(k), s) if k in src else s
                off += self.size[k]
            order = None
            get_t, get_s = (lambda e: e.s), (lambda e: e.t)
        self.kind = dict(src)     # value -> src array (H) or "D"
        if self.mode == "forward-mode":
            for v, es in order:
                for e in es:
                    self._propagate(e, get_t(e), get_s(e))
        else:
            for op in reversed(self.prim_ops):
                for e in [e for e in edges if e.t == op.out]:
                    self._propagate(e, get_t(e), get_s(e))
        return self

    def _merge(self, cur, new):
        if cur is None:
            return new
        if isinstance(cur, str) or isinstance(new, str):
            return "D"
        both = (cur >= 0) & (new >= 0)
        if np.any(cur[both] != new[both]):
            return "D"
        return np.where(cur >= 0, cur, new)

    def _propagate(self, e, tgt, srcv):
        ks = self.kind.get(srcv)
        if ks is None:
            return
        if e.kind == "mm" or isinstance(ks, str):
            self.kind[tgt] = "D"
            return
        if self.mode == "forward-mode":
            ti, si = e.ti, e.si
        else:
            ti, si = e.si, e.ti
        if e.coef == "ew":
            ti, si = self._ew_pairs(e)
            if self.mode != "forward-mode":
                ti, si = si, ti
        n_t = self.size[tgt]
        res = np.full(n_t, -1, np.int64)
        s = ks[si]
        ok = s >= 0
        ti, s = ti[ok], s[ok]
        order = np.argsort(ti, kind="stable")
        ti, s = ti[order], s[order]
        dup = ti[1:] == ti[:-1]
        if np.any(s[1:][dup] != s[:-1][dup]):
            self.kind[tgt] = "D"
            return
        res[ti] = s
        self.kind[tgt] = self._merge(self.kind.get(tgt), res)

    def _bmap(self, a, o):
        """Flat index of operand ``a`` for each flat element of broadcast result ``o``."""
        if self.size[a] == self.size[o] and self.shape[a] == self.shape[o]:
            return np.arange(self.size[o])
        if self.size[a] == 1:
            return np.zeros(self.size[o], np.int64)
        sa = self.shape[a]
        so = self.shape[o]
        sa = (1,) * (len(so) - len(sa)) + tuple(sa)
        return np.broadcast_to(np.arange(self.size[a]).reshape(sa), so).reshape(-1)

    def _ew_pairs(self, e):
        """(target indices, source indices) of an elementwise edge, forward orientation."""
        op = e.op
        full = self._ew_shape(op)
        n = _size(full)
        ti = np.zeros(n, np.int64) if op.params["reduce"] else np.arange(n)
        return ti, self._bmap_shape(e.s, full)

    def _ew_shape(self, op):
        shapes = [self.shape[a] for a in op.args if isinstance(a, int)]
        return tuple(np.broadcast_shapes(*shapes)) if shapes else ()

    def _bmap_shape(self, a, so):
        sa = self.shape[a]
        if tuple(sa) == tuple(so):
            return np.arange(_size(so))
        if self.size[a] == 1:
            return np.zeros(_size(so), np.int64)
        sa = (1,) * (len(so) - len(sa)) + tuple(sa)
        return np.broadcast_to(np.arange(self.size[a]).reshape(sa), so).reshape(-1)

    # --- rendering --------------------------------------------------------------------------
    def ix(self, v, so, i="i"):
        """Source expression index of operand v inside a loop over broadcast shape so."""
        if tuple(self.shape[v]) == tuple(so):
            return i
        if self.size[v] == 1:
            return "0"
        return f"{self.static(self._bmap_shape(v, so))}[{i}]"

    def render(self, final_shapes):
        tr = self.tr
        ins = tr.inputs
        args = [f"x{j}" for j in range(len(ins))] + [f"c{j}" for j in range(len(self.consts))]
        self.lines = []
        for j, k in enumerate(ins):
            self.emit(f"p{k} = x{j}.reshape({self.size[k]})")
        for j, k in enumerate(self.consts):
            self.emit(f"p{k} = c{j}.reshape({self.size[k]})")
        for op in self.prim_ops:
            self.render_primal(op)
        NB = self.NB
        fwd = self.mode == "forward-mode"
        # tangent buffers (dense: (n, NB) value-major in forward mode, (NB, n) batch-major in
        # reverse mode: either way the Jacobian is the buffer itself)
        for v in sorted(self.kind):
            kd = self.kind[v]
            if isinstance(kd, str):
                shp = (self.size[v], NB) if fwd else (NB, self.size[v])
                self.emit(f"T{v} = np.zeros({shp!r}, {self.dt(v)})")
            else:
                self.emit(f"d{v} = np.zeros({self.size[v]}, {self.dt(v)})")
        fwd = self.mode == "forward-mode"
        seeds = ins if fwd else [k for k in dict.fromkeys(self.outs) if k in self.live]
        for k in seeds:
            kd = self.kind[k]
            if isinstance(kd, str):
                raise Unsupported("dense seed")
            mult = self.outs.count(k) if not fwd else 1
            self.emit(f"d{k}[:] = {mult}")
        ops = self.prim_ops if fwd else list(reversed(self.prim_ops))
        for op in ops:
            es = [e for e in self.edges if e.t == op.out]
            if not es:
                continue
            self.render_tangent(op, es)
        # outputs: J[i][j] as (n_out_i, n_in_j) arrays
        rets = []
        offs_in, off = [], 0
        for k in ins:
            offs_in.append(off)
            off += self.size[k]
        offs_out, off = [], 0
        for k in self.outs:
            offs_out.append(off)
            off += self.size[k]
        for i, ko in enumerate(self.outs):
            for j, ki in enumerate(ins):
                name = f"J{i}_{j}"
                rets.append(f"{name}.reshape({tuple(final_shapes[len(rets)])!r})")
                no, ni = self.size[ko], self.size[ki]
                dtv = ko if fwd else ki
                v, boff = (ko, offs_in[j]) if fwd else (ki, offs_out[i])
                nb = ni if fwd else no
                kd = self.kind.get(v)
                if isinstance(kd, str) and np.dtype(self.dtype[ko]).kind == "f" and (
                        (fwd and len(ins) == 1 and self.outs.count(ko) == 1) or
                        (not fwd and len(self.outs) == 1 and ins.count(ki) == 1)):
                    self.emit(f"{name} = T{v}")  # (n_out, n_in) already: no copy
                    continue
                self.emit(f"{name} = np.zeros(({no}, {ni}), {self.dt(dtv)})")
                if kd is None or np.dtype(self.dtype[ko]).kind != "f":
                    continue
                if isinstance(kd, str):
                    if fwd:
                        self.emit(f"for r in range({no}):")
                        self.emit(f"for q in range({ni}):", 2)
                        self.emit(f"{name}[r, q] = T{v}[r, {boff} + q]", 3)
                    else:
                        self.emit(f"for q in range({ni}):")
                        self.emit(f"for r in range({no}):", 2)
                        self.emit(f"{name}[r, q] = T{v}[{boff} + r, q]", 3)
                else:
                    sv = self.static(kd)
                    self.emit(f"for e in range({self.size[v]}):")
                    self.emit(f"s = {sv}[e] - {boff}", 2)
                    self.emit(f"if s >= 0 and s < {nb}:", 2)
                    if fwd:
                        self.emit(f"{name}[e, s] = d{v}[e]", 3)
                    else:
                        self.emit(f"{name}[s, e] = d{v}[e]", 3)
        self.emit(f"return ({', '.join(rets)},)")
        body = "\n".join(self.lines)
        statics = "\n".join(f"{n} = np.array({a.tolist()!r}, dtype=np.int64)"
                            for n, a in self.statics)
        key = hashlib.sha256(body.encode() + statics.encode()).hexdigest()[:16]
        name = f"jac_{key}"
        src = f"{statics}\n\n\ndef {name}({', '.join(args)}):\n{body}\n"
        return name, src

    def render_primal(self, op):
        kind, _ = self.info[op.out]
        o = op.out
        n = self.size[o]
        if kind == "ew":
            self.emit(f"p{o} = np.empty({n}, {self.dt(o)})")
            full = self._ew_shape(op)
            red = op.params["reduce"]
            if red is not None:
                self.emit(f"acc{o} = 0.0")
            self.emit(f"for i in range({_size(full)}):")
            em, res = self.render_ew_body(op, full)
            for ln in em.lines:
                self.emit(ln, 2)
            if red is None:
                self.emit(f"p{o}[i] = {em.operand(res)}", 2)
            else:
                self.emit(f"acc{o} += {em.operand(res)}", 2)
                div = f" / {_size(full)}" if red == "mean" else ""
                self.emit(f"p{o}[0] = acc{o}{div}")
            return
        if kind == "mm":
            a, b = op.args
            m, kk, nn = self._mm_dims(op)
            self.emit(f"p{o} = np.zeros({n}, {self.dt(o)})")
            self.emit(f"for i in range({m}):")
            self.emit(f"for l in range({kk}):", 2)
            self.emit(f"av = p{a}[i * {kk} + l]", 3)
            self.emit(f"for j in range({nn}):", 3)
            self.emit(f"p{o}[i * {nn} + j] += av * p{b}[l * {nn} + j]", 4)
            return
        _, es = self.info[o]
        if isinstance(kind, tuple):  # sum / mean: float64 accumulators
            e = es[0]
            seg = self.static(e.ti)
            self.emit(f"acc{o} = np.zeros({n}, np.float64)")
            self.emit(f"for j in range({e.ti.size}):")
            self.emit(f"acc{o}[{seg}[j]] += p{e.s}[j]", 2)
            scale = f" / {kind[1]}" if kind[1] is not None else ""
            self.emit(f"p{o} = np.empty({n}, {self.dt(o)})")
            self.emit(f"for j in range({n}):")
            self.emit(f"p{o}[j] = acc{o}[j]{scale}", 2)
            return
        self.emit(f"p{o} = np.empty({n}, {self.dt(o)})")
        for e in es:
            if self.size[e.s] == n and np.array_equal(e.ti, np.arange(n)) \
                    and np.array_equal(e.si, np.arange(n)):
                self.emit(f"p{o}[:] = p{e.s}")
                continue
            ti, si = self.static(e.ti), self.static(e.si)
            self.emit(f"for j in range({e.ti.size}):")
            self.emit(f"p{o}[{ti}[j]] = p{e.s}[{si}[j]]", 2)

    def _mm_dims(self, op):
        a, b = op.args
        sa, sb = self.shape[a], self.shape[b]
        m, kk = (1, sa[0]) if len(sa) == 1 else sa
        nn = 1 if len(sb) == 1 else sb[1]
        return m, kk, nn

    def render_ew_body(self, op, full, coefs=()):
        """Emitter lines computing the row at element i (+ VJP coefficients for ``coefs``)."""
        row = op.prim
        o = op.out
        pre = self.fresh("v")
        em = _PrefixEmitter(pre)
        em.T = f"np.{np.dtype(self.ew_cdt(op)).name}"
        xs = []
        for k, a in enumerate(op.args):
            if isinstance(a, int):
                cast = "" if k in row.bool_inputs else em.T
                em.lines.append(f"{pre}x{k} = {cast}(p{a}[{self.ix(a, full)}])")
                xs.append(codegen.Sym(em, f"{pre}x{k}"))
            else:
                v = a[0]
                xs.append(v if isinstance(v, bool) else float(v)
                          if not isinstance(v, (int, np.integer)) else v)
        res = row.fwd(codegen.SYM_MATH, *xs)
        if not coefs:
            return em, res
        outn = f"{pre}out"
        if op.params["reduce"] is None:
            em.lines = [ln for ln in em.lines if ln.startswith(f"{pre}x")]
            em.lines.append(f"{outn} = p{o}[i]")
        else:
            em.lines.append(f"{outn} = {em.operand(res)}")
        out = codegen.Sym(em, outn)
        cs = []
        for k in coefs:
            c = row.vjps[k](codegen.SYM_MATH, *xs, out, 1.0)
            cs.append(c)
        return em, cs

    def ew_cdt(self, op):
        ops = [self.P[a] if isinstance(a, int) else a[0] for a in op.args]
        return _result_dtype(op.prim, ops).np

    def render_tangent(self, op, es):
        fwd = self.mode == "forward-mode"
        kind, _ = self.info[op.out]
        live = [e for e in es if e.s in self.live and e.t in self.live]
        if fwd:
            live = [e for e in live if e.s in self.kind]
        else:
            if op.out not in self.kind:
                return
        if not live:
            return
        if kind == "ew":
            full = self._ew_shape(op)
            em, cs = self.render_ew_body(op, full, [e.k for e in live])
            self.emit(f"for i in range({_size(full)}):")
            for ln in em.lines:
                self.emit(ln, 2)
            red = op.params["reduce"]
            for e, c in zip(live, cs):
                if not isinstance(c, codegen.Sym) and c == 0:
                    continue
                cexp = em.operand(c)
                if red == "mean":
                    cexp = f"({cexp} / {_size(full)})"
                si = self.ix(e.s, full)
                oi = "0" if red is not None else "i"
                if fwd:
                    self.acc(e.t, oi, e.s, si, cexp, 2)
                else:
                    self.acc(e.s, si, e.t, oi, cexp, 2)
            return
        if kind == "mm":
            self.render_mm(op, live)
            return
        for e in live:
            coef = "" if e.coef is None else f" * {e.coef!r}"
            ti, si = self.static(e.ti), self.static(e.si)
            self.emit(f"for j in range({e.ti.size}):")
            if fwd:
                self.acc(e.t, f"{ti}[j]", e.s, f"{si}[j]", coef[3:] if coef else None, 2)
            else:
                self.acc(e.s, f"{si}[j]", e.t, f"{ti}[j]", coef[3:] if coef else None, 2)

    def Tix(self, v, i, b):
        """Element (value index i, basis b) of v's dense tangent."""
        return f"T{v}[{i}, {b}]" if self.mode == "forward-mode" else f"T{v}[{b}, {i}]"

    def acc(self, tv, ti, sv, si, coef, depth):
        """tangent[tv][ti] += coef * tangent[sv][si] (kinds known statically)."""
        kt, ks = self.kind.get(tv), self.kind.get(sv)
        if ks is None or kt is None:
            return
        c = f"{coef} * " if coef else ""
        if not isinstance(kt, str):          # H <- H (same basis vector, checked statically)
            self.emit(f"d{tv}[{ti}] += {c}d{sv}[{si}]", depth)
        elif not isinstance(ks, str):        # D <- H
            ss = self.static(ks)
            self.emit(f"s = {ss}[{si}]", depth)
            self.emit(f"if s >= 0:", depth)
            self.emit(f"{self.Tix(tv, ti, 's')} += {c}d{sv}[{si}]", depth + 1)
        else:                                # D <- D
            self.emit(f"cc = {coef}" if coef else "cc = 1.0", depth)
            self.emit(f"ti_ = {ti}", depth)
            self.emit(f"si_ = {si}", depth)
            self.emit(f"for b in range({self.NB}):", depth)
            self.emit(f"{self.Tix(tv, 'ti_', 'b')} += cc * {self.Tix(sv, 'si_', 'b')}",
                      depth + 1)

    def render_mm(self, op, live):
        fwd = self.mode == "forward-mode"
        a, b = op.args
        o = op.out
        m, kk, nn = self._mm_dims(op)
        for e in live:
            other = b if e.s == a else a
            # out[i, j] += A[i, l] B[l, j]: index of the differentiated operand / the other
            if e.s == a:
                sidx, oidx = f"i * {kk} + l", f"l * {nn} + j"
            else:
                sidx, oidx = f"l * {nn} + j", f"i * {kk} + l"
            self.emit(f"for i in range({m}):")
            self.emit(f"for l in range({kk}):", 2)
            self.emit(f"for j in range({nn}):", 3)
            self.emit(f"w = p{other}[{oidx}]", 4)
            if fwd:
                self.acc(o, f"i * {nn} + j", e.s, sidx, "w", 4)
            else:
                self.acc(e.s, sidx, o, f"i * {nn} + j", "w", 4)


class _PrefixEmitter(codegen.Emitter):
    def __init__(self, prefix):
        super().__init__()
        self.prefix = prefix

    def let(self, expr):
        name = f"{self.prefix}t{self.n}"
        self.n += 1
        self.lines.append(f"{name} = {expr}")
        return codegen.Sym(self, name)


# ============================================================================================
# cache and replay

SKIP = object()   # cache marker: this signature runs the eager path
MISS = object()   # a replayer's "not mine": take the general path


class _FuncCache:
    """Everything cached for one function object (dropped when the function dies)."""
    __slots__ = ("ref", "entries", "fast", "retraces")

    def __init__(self, func, fid):
        self.ref = weakref.ref(func, lambda _r, fid=fid, cache=_CACHE: cache.pop(fid, None))
        self.entries = {}   # sig -> _Entry | SKIP
        self.fast = {}      # mode -> [replayer]
        self.retraces = 0


class _Entry:
    __slots__ = ("kernel", "consts", "guards", "out_tuple", "shapes", "in_tuple")


def _func_cache(func, create):
    fc = _CACHE.get(id(func))
    if fc is not None and fc.ref() is not func:
        fc = None
    if fc is None and create:
        with _LOCK:
            fc = _CACHE.get(id(func))
            if fc is not None and fc.ref() is func:
                return fc
            try:
                fc = _FuncCache(func, id(func))
            except TypeError:
                return None
            _CACHE[id(func)] = fc
    return fc


def _guards(func, consts):
    """(cell or globals dict, name or None, tensor) for constants found in func's closure
    cells or globals: rebinding one of those names invalidates the entry."""
    f = getattr(func, "__func__", func)
    code = getattr(f, "__code__", None)
    res = []
    if code is None:
        return res
    cells = list(f.__closure__ or ())
    glb = getattr(f, "__globals__", {})
    for t in consts:
        for cell in cells:
            try:
                if cell.cell_contents is t:
                    res.append((cell, None, t))
            except ValueError:
                pass
        for name in code.co_names:
            if glb.get(name) is t:
                res.append((glb, name, t))
    return res


def _usable():
    return _ENABLED and STATE.tracer is None


def _sig(strategy, strict, extra, xs):
    return (strategy, strict, extra, tuple([x._meta for x in xs]))


def lookup(func, xs, strategy, strict, extra=None):
    """The cached kernel's result for this call (rows, out_tuple), SKIP, or None."""
    if not _ENABLED or STATE.tracer is not None:
        return None
    fc = _func_cache(func, False)
    if fc is None:
        return None
    sig = _sig(strategy, strict, extra, xs)
    ent = fc.entries.get(sig)
    if ent is None or ent is SKIP:
        return ent
    for holder, name, t in ent.guards:
        cur = holder.cell_contents if name is None else holder.get(name)
        if cur is not t:
            _drop(fc, sig)
            return None
    args = [np.ascontiguousarray(x._data) for x in xs]
    for t, shape, dt in ent.consts:
        a = t._data
        if a.shape != shape or a.dtype != dt:
            _drop(fc, sig)
            return None
        args.append(np.ascontiguousarray(a))
    STATS["replayed"] += 1
    return _wrap(ent, ent.kernel(*args))


def _drop(fc, sig):
    with _LOCK:
        fc.entries.pop(sig, None)
        fc.fast.clear()
        for k, e in fc.entries.items():
            if e is not SKIP:
                _install_fast(fc, k, e)


def _wrap(ent, arrays):
    rows, k = [], 0
    for shapes in ent.shapes:
        rows.append([Tensor._make(arrays[k + j]) for j in range(len(shapes))])
        k += len(shapes)
    return rows, ent.out_tuple


def _install_fast(fc, sig, ent):
    """Generate the replayer of one entry: straight-line checks, one kernel call, wrapping."""
    strategy, strict, extra, metas = sig
    if strict:
        return
    in_tuple = ent.in_tuple
    ns = {"Tensor": Tensor, "MK": Tensor._make, "MISS": MISS, "kernel": ent.kernel,
          "STATE": STATE, "ref": fc.ref}
    L = ["def replay(func, inputs):",
         "    if ref() is not func:",
         "        return MISS"]
    names = []
    if len(metas) == 1 and not in_tuple:
        L += ["    if type(inputs) is not Tensor:", "        return MISS",
              "    xs0 = inputs"]
    else:
        L += ["    if type(inputs) is not tuple or len(inputs) != %d:" % len(metas),
              "        return MISS"]
        for j in range(len(metas)):
            L += [f"    xs{j} = inputs[{j}]", f"    if type(xs{j}) is not Tensor:",
                  "        return MISS"]
    for j, (shape, dt) in enumerate(metas):
        st = np.empty(shape, dt).strides if 0 not in shape else None
        ns[f"S{j}"], ns[f"D{j}"], ns[f"ST{j}"] = shape, dt, st
        L += [f"    a{j} = xs{j}._arr",
              f"    if a{j} is None or a{j}.shape != S{j} or a{j}.dtype != D{j} or "
              f"a{j}.strides != ST{j}:",
              "        return MISS"]
        if extra is not None:
            L += [f"    if xs{j}._rg and STATE.enabled:", "        return MISS"]
        names.append(f"a{j}")
    for g, (holder, name, t) in enumerate(ent.guards):
        ns[f"H{g}"], ns[f"G{g}"] = holder, t
        if name is None:
            L += [f"    if H{g}.cell_contents is not G{g}:", "        return MISS"]
        else:
            ns[f"N{g}"] = name
            L += [f"    if H{g}.get(N{g}) is not G{g}:", "        return MISS"]
    for c, (t, shape, dt) in enumerate(ent.consts):
        st = np.empty(shape, dt).strides if 0 not in shape else None
        ns[f"K{c}"], ns[f"CS{c}"], ns[f"CD{c}"], ns[f"CST{c}"] = t, shape, dt, st
        L += [f"    b{c} = K{c}._arr",
              f"    if b{c} is None or b{c}.shape != CS{c} or b{c}.dtype != CD{c} or "
              f"b{c}.strides != CST{c}:",
              "        return MISS"]
        names.append(f"b{c}")
    L.append(f"    r = kernel({', '.join(names)})")
    k = 0
    rows = []
    for shapes in ent.shapes:
        cells = []
        for _ in shapes:
            cells.append(f"MK(r[{k}])")
            k += 1
        rows.append(cells)
    if extra is not None:
        res = rows[0][0]
    else:
        n_in = len(metas)
        it = [("(" + ", ".join(r) + ",)") if in_tuple else r[0] for r in rows]
        res = ("(" + ", ".join(it) + ",)") if ent.out_tuple else it[0]
        del n_in
    L.append(f"    return {res}")
    exec(compile("\n".join(L) + "\n", "<jitgrad replay>", "exec"), ns)
    fc.fast.setdefault((strategy, extra), []).append(ns["replay"])


def replay(func, inputs, strategy, extra=None):
    """Fast path: the result of a cached kernel for this call, or MISS."""
    if not _ENABLED or STATE.tracer is not None:
        return MISS
    fc = _CACHE.get(id(func))
    if fc is None:
        return MISS
    for rp in fc.fast.get((strategy, extra), ()):
        r = rp(func, inputs)
        if r is not MISS:
            STATS["replayed"] += 1
            return r
    return MISS


def build(func, xs, strategy, strict, tr, outs_t, out_tuple, extra=None, in_tuple=False):
    """Compile the record of this call (when it is replayable) and run it; None otherwise."""
    if not _usable():
        return None
    why = tr.observed or tr.inexact
    if why is None and any(tr.ref(o) not in tr.producer and tr.kinds[tr.ref(o)] != "in"
                           for o in outs_t):
        why = "an output is a constant"
    fc = _func_cache(func, True)
    if fc is None:
        why = why or "the function cannot be weak-referenced"
    elif why is None:
        fc.retraces += 1
        if fc.retraces > MAX_RETRACES:
            why = f"retraced {fc.retraces - 1} times"
    sig = _sig(strategy, strict, extra, xs)
    if why is None:
        try:
            if strict:
                raise Unsupported("strict=True (checked by the interpreter)")
            gen = _Gen(tr, outs_t, strategy).analyse()
            name, src = gen.render([tuple(o.shape) + tuple(x.shape)
                                    for o in outs_t for x in xs])
        except Unsupported as e:
            why = f"unsupported: {e}"
    if why is not None:
        STATS["not_compiled"] += 1
        _LAST_REASON[0] = why
        if fc is not None:
            with _LOCK:
                fc.entries[sig] = SKIP
        return None
    kernel = cpu.compile_source(("functional", name), src, name, "float64")
    ent = _Entry()
    ent.kernel = kernel
    ctensors = [tr.values[k] for k in gen.consts]
    ent.consts = [(t, tuple(t._meta[0]), t._meta[1]) for t in ctensors]
    ent.guards = _guards(func, ctensors)
    ent.out_tuple = out_tuple
    ent.shapes = [[tuple(o.shape) + tuple(x.shape) for x in xs] for o in outs_t]
    ent.in_tuple = in_tuple
    with _LOCK:
        fc.entries[sig] = ent
        _install_fast(fc, sig, ent)
    STATS["compiled"] += 1
    _LAST_REASON[0] = None
    args = [np.ascontiguousarray(tr.values[k]._data) for k in tr.inputs] + \
        [np.ascontiguousarray(t._data) for t in ctensors]
    return _wrap(ent, kernel(*args))[0]
