"""Optimizer base: torch's param groups, per-parameter state and state_dict format, with each
step's updates done by the fused kernels of :mod:`jitgrad.optim._fused`."""
from __future__ import annotations

import copy
import warnings
from collections import defaultdict
from itertools import chain

import numpy as np

from .._state import STATE as _STATE, enable_grad
from .._tensor import Tensor, full
from . import _fused


class _Required:
    """Marks a hyper-parameter that every param group must give."""

    def __repr__(self):
        return "<required parameter>"


required = _Required()

def _is_cuda(t: Tensor) -> bool:
    return t.is_cuda


def _zeros_like_param(p: Tensor, fill: float = 0.0) -> Tensor:
    """A C-contiguous state buffer of p's shape, dtype and device (never requires grad)."""
    shape, dt = p._meta
    if _is_cuda(p):
        return full(tuple(shape), fill, dtype=p.dtype, device="cuda")
    return Tensor._make(np.full(shape, fill, dtype=dt) if fill else np.zeros(shape, dtype=dt))


def _step_tensor(value: float = 0.0) -> Tensor:
    """torch keeps each parameter's step count as a 0-d float32 tensor (on the CPU)."""
    return Tensor._make(np.array(value, dtype=np.float32))


def _to_numpy(v) -> np.ndarray:
    """A state value from a state dict (jitgrad Tensor, torch tensor, array-like) as a new
    host array."""
    if isinstance(v, Tensor):
        return np.array(v._host)
    if hasattr(v, "detach") and hasattr(v, "cpu"):  # a torch tensor
        return np.array(v.detach().cpu().numpy())
    return np.array(v)


def _typename(x) -> str:
    if isinstance(x, Tensor):
        return f"jitgrad.Tensor ({x.dtype})"
    return type(x).__name__


class Optimizer:
    """Base class of the optimizers (torch.optim.Optimizer's interface).

    ``params``: an iterable of Tensors, or of dicts (param groups: ``{"params": [...],
    "lr": ...}``; keys a group leaves out come from ``defaults``). ``state[p]`` holds each
    parameter's buffers as jitgrad Tensors. Subclasses give the fused rule and three hooks:
    ``_check(group)`` (hyper-parameter validation), ``_flags(group)`` (the kernel's
    compile-time switches) and ``_prepare(p, state, group, memo)`` (creates state when empty,
    advances step counters, returns the per-parameter scalars in ``_rule.scalars`` order)."""

    _rule: _fused.Rule = None

    def __init__(self, params, defaults: dict):
        self.defaults = defaults
        self.state = defaultdict(dict)
        self.param_groups = []
        if isinstance(params, Tensor):
            raise TypeError("params argument given to the optimizer should be an iterable of "
                            f"Tensors or dicts, but got {_typename(params)}")
        groups = list(params)
        if len(groups) == 0:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for g in groups:
            self.add_param_group(g)

    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for i, g in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for k in sorted(g):
                if k != "params":
                    lines.append(f"    {k}: {g[k]}")
        return "\n".join(lines) + "\n)"

    def __getstate__(self):
        return {"defaults": self.defaults, "state": self.state,
                "param_groups": self.param_groups}

    def __setstate__(self, state):
        self.__dict__.update(state)

    # --- param groups --------------------------------------------------------------------
    def add_param_group(self, param_group: dict) -> None:
        """Add a group of parameters (with its own hyper-parameters) to optimize."""
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, but got {type(param_group).__name__}")
        params = param_group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, (set, frozenset)):
            raise TypeError("optimizer parameters need to be organized in ordered collections, "
                            "but the ordering of tensors in sets will change between runs. "
                            "Please use a list instead.")
        else:
            params = list(params)
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError("optimizer can only optimize Tensors, but one of the params is "
                                f"{_typename(p)}")
            if not (p.is_leaf or p.retains_grad):
                raise ValueError("can't optimize a non-leaf Tensor")
        group = dict(param_group)
        group["params"] = params
        for name, default in self.defaults.items():
            if default is required and name not in group:
                raise ValueError("parameter group didn't specify a value of required "
                                 f"optimization parameter {name}")
            group.setdefault(name, default)
        if len({id(p) for p in params}) != len(params):
            warnings.warn("optimizer contains a parameter group with duplicate parameters; in "
                          "future, this will cause an error; see "
                          "github.com/pytorch/pytorch/issues/40967 for more information",
                          stacklevel=3)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in params):
            raise ValueError("some parameters appear in more than one parameter group")
        self._check(group)
        self.param_groups.append(group)

    def _check(self, group: dict) -> None:
        lr = group.get("lr")
        if isinstance(lr, Tensor):
            raise TypeError("a Tensor lr is not supported; give a Python float")
        if lr is not None and not lr >= 0.0:
            raise ValueError(f"Invalid learning rate: {lr}")
        for name, value in (("differentiable", False), ("capturable", False)):
            if group.get(name, False) != value:
                raise NotImplementedError(f"{type(self).__name__}: {name}={group[name]!r} is "
                                          "not supported by jitgrad")

    # --- gradients -----------------------------------------------------------------------
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset every parameter's gradient: to None (the default), or to zeros in place."""
        if set_to_none and _STATE.recorder is not None:  # (jitgrad.compile: None whatever
            _STATE.recorder.grads_assigned(self.param_groups)  # .grad was at entry)
        for group in self.param_groups:
            for p in group["params"]:
                g = p.grad
                if g is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    if g.grad_fn is not None:
                        g = p.grad = g.detach()
                    else:
                        g.requires_grad_(False)
                    g.zero_()

    # --- step ----------------------------------------------------------------------------
    def _cpu_kernel(self, flags: dict, dtype):
        """The fused CPU kernel of this optimizer's rule (jitgrad.compile calls it directly)."""
        return _fused.kernel(self._rule, flags, dtype)

    def _flags(self, group: dict) -> dict:
        raise NotImplementedError

    def _prepare(self, p: Tensor, state: dict, group: dict, memo: dict) -> tuple:
        """Create p's state if missing, advance its step, return its scalars (``memo``: a dict
        per group and step, for scalars that only depend on the step count)."""
        raise NotImplementedError

    def step(self, closure=None):
        """One update of every parameter that has a gradient (None gradients are skipped).
        ``closure``: re-evaluates the model and returns the loss (run with grad enabled)."""
        rec = _STATE.recorder
        if rec is not None:  # (jitgrad.compile: replayed as one op calling step() again)
            return rec.optimizer_step(self, closure)
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        work = []  # every parameter is checked before anything changes
        for group in self.param_groups:
            ps, pas, gas = [], [], []
            for p in group["params"]:
                gt = p.grad
                if gt is None:
                    continue
                pa = p._arr
                if pa is None:
                    pa = p._data
                ga = gt._arr
                if ga is None:
                    ga = gt._data
                if ga.shape != pa.shape or ga.dtype != pa.dtype or type(ga) is not type(pa) \
                        or pa.dtype.kind != "f":
                    self._bad_grad(p, gt)
                if type(pa) is np.ndarray and not pa.flags.writeable:
                    raise RuntimeError(
                        f"{type(self).__name__}.step(): a parameter of shape {list(pa.shape)} "
                        "is read-only (it shares a read-only NumPy array); copy it first")
                ps.append(p)
                pas.append(pa)
                gas.append(ga)
            if ps:
                work.append((group, ps, pas, gas))
        if not work:
            return loss
        rule = self._rule
        states = self.state
        buckets = {}
        for group, ps, pas, gas in work:
            flags = self._flags(group)
            fkey = tuple(flags.values())
            names = rule.states(flags)
            fused = group.get("fused") is not False
            memo = {}  # (per-step scalars shared by the group's parameters)
            for p, pa, ga in zip(ps, pas, gas):
                key = (fkey, pa.dtype, fused and type(pa) is np.ndarray)
                b = buckets.get(key)
                if b is None:
                    b = buckets[key] = _fused.Bucket(flags, len(names))
                state = states.get(p)
                if state is None:  # (torch keeps no entry for a param without state)
                    state = {}
                    sc = self._prepare(p, state, group, memo)
                    if state:
                        states[p] = state
                else:
                    sc = self._prepare(p, state, group, memo)
                b.ps.append(p)
                b.pas.append(pa)
                b.gas.append(ga)
                b.scalars.append(sc)
                for col, n in zip(b.sts, names):
                    col.append(state[n])
        for (_, dt, cpu_fused), b in buckets.items():
            if cpu_fused:
                _fused.run_cpu(rule, dt, b)
            else:
                _fused.run_tensor_ops(rule, b)
        return loss

    def _bad_grad(self, p, gt):
        name = type(self).__name__
        if p._meta[1].kind == "f":
            raise RuntimeError(
                f"{name}.step(): the gradient of a parameter of shape {list(p.shape)}, dtype "
                f"{p.dtype} on {p.device} has shape {list(gt.shape)}, dtype {gt.dtype} on "
                f"{gt.device}; they must match")
        raise RuntimeError(f"{name}.step(): parameters must be float32 or float64, got {p.dtype}")

    # --- state dict ----------------------------------------------------------------------
    def state_dict(self) -> dict:
        """torch's format: ``{"state": {index: {name: value}}, "param_groups": [{...,
        "params": [index, ...]}]}``, parameters numbered in group order. State values are the
        live tensors (save them, or ``copy.deepcopy`` the dict, to keep a snapshot)."""
        index = {}
        groups = []
        for g in self.param_groups:
            packed = {k: v for k, v in g.items() if k != "params"}
            for p in g["params"]:
                index.setdefault(id(p), len(index))
            packed["params"] = [index[id(p)] for p in g["params"]]
            groups.append(packed)
        state = {(index[id(k)] if isinstance(k, Tensor) else k): dict(v)
                 for k, v in self.state.items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        """Load a state dict from :meth:`state_dict` (or torch's optimizer of the same kind):
        hyper-parameters per group, and per-parameter state copied onto each parameter's
        dtype and device (``step`` stays a float32 count)."""
        groups = self.param_groups
        saved = copy.deepcopy(state_dict["param_groups"])
        if len(groups) != len(saved):
            raise ValueError("loaded state dict has a different number of parameter groups")
        if any(len(g["params"]) != len(s["params"]) for g, s in zip(groups, saved)):
            raise ValueError("loaded state dict contains a parameter group that doesn't match "
                             "the size of optimizer's group")
        id_map = dict(zip(chain.from_iterable(s["params"] for s in saved),
                          chain.from_iterable(g["params"] for g in groups)))
        state = defaultdict(dict)
        for k, v in state_dict["state"].items():
            p = id_map.get(k)
            if p is None:
                state[k] = copy.deepcopy(v)
                continue
            state[p] = {name: self._load_value(p, name, val) for name, val in v.items()}
        new_groups = []
        for g, s in zip(groups, saved):
            for name, default in self.defaults.items():
                s.setdefault(name, default)
            s["params"] = g["params"]
            self._check(s)
            new_groups.append(s)
        self.state = state
        self.param_groups = new_groups

    @staticmethod
    def _load_value(p: Tensor, name: str, v):
        if name == "step" and v is not None:
            a = _to_numpy(v)
            if a.size != 1:
                raise ValueError(f"loaded state 'step' must be one number, got shape "
                                 f"{list(a.shape)}")
            return _step_tensor(float(a.reshape(-1)[0]))
        if v is None or isinstance(v, (bool, int, float)):
            return v
        a = _to_numpy(v)
        shape, dt = p._meta
        if a.shape != tuple(shape):
            raise ValueError(f"loaded state {name!r} of shape {list(a.shape)} does not match "
                             f"its parameter's shape {list(shape)}")
        a = a.astype(dt if a.dtype.kind == "f" else a.dtype, order="C", copy=False)
        t = Tensor._make(a)
        return t.cuda() if _is_cuda(p) else t


def _step_scalar(state: dict) -> float:
    """Advance the param's step count (a 0-d float32 tensor, like torch's) and return it."""
    a = state["step"]._data
    v = float(a) + 1.0  # (exact in float32 up to 2**24 steps, as torch's count)
    a.fill(v)
    return v


def check_nonneg(group: dict, *names: str) -> None:
    """torch's messages: ``Invalid <name> value: <v>`` for a negative (or NaN) value."""
    for n in names:
        v = group[n]
        if isinstance(v, Tensor):
            raise TypeError(f"a Tensor {n} is not supported; give a Python float")
        if not v >= 0.0:
            label = {"eps": "epsilon"}.get(n, n)
            raise ValueError(f"Invalid {label} value: {v}")


def lerp(a, b, w, hi: bool):
    """torch's lerp: ``a + w (b - a)``, or ``b - (b - a)(1 - w)`` for weights >= 0.5 (exact
    at w = 1); ``hi`` is part of the kernel's flags."""
    return b - (b - a) * (1 - w) if hi else a + w * (b - a)
