"""Differential tests: seeded random composite programs (DAGs of elementwise ops with
broadcasting, reductions, shape ops, matmul, indexing, setitem, cat) run through jitgrad and
torch on identical float64 inputs; values and gradients must agree to ~1e-9 relative.

Each program is generated with torch as the shape oracle (every step is evaluated on torch while
generating, so only well-defined ops are emitted) and then replayed on both libraries."""
import warnings

import numpy as np
import pytest

import jitgrad

torch = pytest.importorskip("torch")

RTOL = 1e-9
N_PROGRAMS = 24
BASE_SHAPES = [(3, 4), (4,), (3, 1), (2, 3, 4)]


# --- op vocabulary: each entry builds step(M, *tensors) from the generator's choices -----------

def _unary(rng, x):
    name = rng.choice(["sin", "cos", "tanh", "sigmoid", "exp_t", "log1", "sqrt1", "leaky",
                       "abs", "neg", "recip1", "square", "scale", "shift", "rsub", "rdiv",
                       "pow"])
    c = float(np.round(rng.uniform(0.5, 2.0), 3))
    return name, {
        "sin": lambda M, a: a.sin(),
        "cos": lambda M, a: M.cos(a),
        "tanh": lambda M, a: a.tanh(),
        "sigmoid": lambda M, a: M.sigmoid(a),
        "exp_t": lambda M, a: a.tanh().exp(),
        "log1": lambda M, a: (a * a + 1.0).log(),
        "sqrt1": lambda M, a: (a * a + 1.0).sqrt(),
        "leaky": lambda M, a: a.relu() + 0.1 * a,
        "abs": lambda M, a: a.abs(),
        "neg": lambda M, a: -a,
        "recip1": lambda M, a: 1.0 / (a * a + 1.0),
        "square": lambda M, a: a.tanh() ** 2,
        "scale": lambda M, a: a * c,
        "shift": lambda M, a: a + c,
        "rsub": lambda M, a: c - a,
        "rdiv": lambda M, a: a / c,
        "pow": lambda M, a: (a * a + 0.5) ** c,
    }[name]


def _binary(rng):
    name = rng.choice(["add", "sub", "mul", "div", "maximum", "minimum", "where", "lin"])
    return name, {
        "add": lambda M, a, b: a + b,
        "sub": lambda M, a, b: M.sub(a, b),
        "mul": lambda M, a, b: a * b,
        "div": lambda M, a, b: a / (b * b + 1.0),
        "maximum": lambda M, a, b: M.maximum(a, b),
        "minimum": lambda M, a, b: M.minimum(a, b),
        "where": lambda M, a, b: M.where(a > b, a * 2.0, b),
        "lin": lambda M, a, b: 0.5 * a - b * 1.5,
    }[name]


def _reduce(rng, nd):
    names = ["sum", "mean", "amax", "logsumexp", "var", "softmax", "log_softmax", "prod",
             "max_values", "min_values", "std", "sum_all", "mean_all"]
    name = rng.choice(names)
    dim = int(rng.integers(-nd, nd))
    keep = bool(rng.integers(0, 2))
    return f"{name}({dim},{keep})", {
        "sum": lambda M, a: a.sum(dim=dim, keepdim=keep),
        "sum_all": lambda M, a: a.sum(),
        "mean_all": lambda M, a: M.mean(a),
        "mean": lambda M, a: a.mean(dim, keepdim=keep),
        "amax": lambda M, a: M.amax(a, dim=dim, keepdim=keep),
        "logsumexp": lambda M, a: M.logsumexp(a, dim, keepdim=keep),
        "var": lambda M, a: a.var(dim=dim, keepdim=keep),
        "std": lambda M, a: a.std(dim=dim, keepdim=keep),
        "softmax": lambda M, a: a.softmax(dim),
        "log_softmax": lambda M, a: M.log_softmax(a, dim=dim),
        "prod": lambda M, a: (a.tanh() + 1.5).prod(dim, keepdim=keep),
        "max_values": lambda M, a: a.max(dim=dim, keepdim=keep).values,
        "min_values": lambda M, a: M.min(a, dim, keep)[0],
    }[name]


def _shape_op(rng, shape):
    nd = len(shape)
    opts = ["flatten", "unsqueeze"]
    if nd >= 2:
        opts += ["transpose", "permute", "T_contig", "reshape_split"]
    if 1 in shape:
        opts += ["expand", "squeeze"]
    name = rng.choice(opts)
    if name == "flatten":
        return name, lambda M, a: a.reshape(-1)
    if name == "unsqueeze":
        d = int(rng.integers(-nd - 1, nd + 1))
        return f"unsqueeze({d})", lambda M, a: a.unsqueeze(d)
    if name == "transpose":
        d0, d1 = (int(v) for v in rng.choice(nd, 2, replace=False))
        return f"transpose({d0},{d1})", lambda M, a: a.transpose(d0, d1)
    if name == "permute":
        perm = tuple(int(v) for v in rng.permutation(nd))
        return f"permute{perm}", lambda M, a: a.permute(*perm)
    if name == "T_contig":
        return name, lambda M, a: a.transpose(-1, -2).contiguous() * 1.0
    if name == "reshape_split":
        return name, lambda M, a: a.reshape(a.shape[0], -1)
    if name == "expand":
        new = tuple(4 if s == 1 else s for s in shape)
        return f"expand{new}", lambda M, a: a.expand(*new)
    return name, lambda M, a: a.squeeze()


def _index_op(rng, shape):
    nd = len(shape)
    n0 = shape[0]
    kind = rng.choice(["slice", "int", "tensor", "mask", "ellipsis", "setitem", "setitem_mask"])
    if kind == "slice":
        start = int(rng.integers(0, n0))
        return f"[{start}::2]", lambda M, a: a[start::2]
    if kind == "int" and nd >= 2:
        i = int(rng.integers(-n0, n0))
        return f"[{i}]", lambda M, a: a[i]
    if kind == "tensor":
        idx = [int(v) for v in rng.integers(-n0, n0, size=int(rng.integers(1, 5)))]
        return f"[tensor{idx}]", lambda M, a: a[M.tensor(idx)]
    if kind == "mask":
        return "[a>0]", lambda M, a: a[a > 0] * 1.0
    if kind == "ellipsis" and nd >= 2:
        j = int(rng.integers(0, shape[-1]))
        return f"[..., {j}, None]", lambda M, a: a[..., j, None]
    if kind == "setitem" and n0 >= 2:
        i = int(rng.integers(0, n0))

        def f(M, a):
            y = a.clone()
            y[i] = a[(i + 1) % a.shape[0]].sin() * 2.0
            return y
        return f"setitem[{i}]", f

    def g(M, a):
        y = a * 1.0
        y[a < 0] = 0.5
        return y + a[0:1] * 0.25
    return "setitem_mask", g


def _matmul_op(rng, sa, sb):
    if len(sa) == 1 and len(sb) == 1 and sa == sb:
        return "dot", lambda M, a, b: a @ b, True
    if len(sa) >= 2 and len(sb) >= 2 and sa[-1] == sb[-2]:
        return "a@b", lambda M, a, b: a @ b, True
    if len(sa) >= 2 and len(sb) >= 1 and sa[-1] == sb[-1]:
        return "a@b.mT", lambda M, a, b: M.matmul(a, b.unsqueeze(-1) if b.dim() == 1 else
                                                   b.transpose(-1, -2)), True
    if len(sa) >= 2:
        return "a@a.mT", lambda M, a, b: a @ a.transpose(-1, -2), False
    return "outer", lambda M, a, b: M.outer(a.reshape(-1), a.reshape(-1)[:2]), False


# --- generation and replay --------------------------------------------------------------------

def _generate(seed):
    rng = np.random.default_rng(seed)
    n_in = int(rng.integers(2, 4))
    shapes = [BASE_SHAPES[int(k)] for k in rng.choice(len(BASE_SHAPES), n_in)]
    inputs = [np.round(rng.standard_normal(s), 6) + 0.0 for s in shapes]
    pool = [torch.tensor(a, dtype=torch.float64) for a in inputs]
    steps = []  # (label, fn, operand positions)
    n_steps = int(rng.integers(5, 11))
    while len(steps) < n_steps:
        r = rng.random()
        i = int(rng.integers(0, len(pool)))
        j = int(rng.integers(0, len(pool)))
        a, b = pool[i], pool[j]
        if r < 0.28:
            label, fn = _unary(rng, a)
            args = (i,)
        elif r < 0.55:
            label, fn = _binary(rng)
            args = (i, j)
        elif r < 0.68:
            if a.dim() == 0:
                continue
            label, fn = _reduce(rng, a.dim())
            args = (i,)
        elif r < 0.78:
            if a.dim() == 0:
                continue
            label, fn = _shape_op(rng, tuple(a.shape))
            args = (i,)
        elif r < 0.88:
            if a.dim() == 0 or a.shape[0] == 0:
                continue
            label, fn = _index_op(rng, tuple(a.shape))
            args = (i,)
        elif r < 0.95:
            if a.dim() == 0 or b.dim() == 0:
                continue
            label, fn, two = _matmul_op(rng, tuple(a.shape), tuple(b.shape))
            args = (i, j)
        else:
            if a.dim() == 0:
                continue
            d = int(rng.integers(-a.dim(), a.dim()))
            label = f"cat({d})"

            def fn(M, x, y, d=d):
                return M.cat([x, (y * 0.5).expand_as(x) if y.shape != x.shape else y], dim=d)
            args = (i, j) if b.dim() <= a.dim() else (i, i)
        try:
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # std/var over one element: filtered below
                out = fn(torch, *[pool[k] for k in args])
        except RuntimeError:  # e.g. incompatible broadcast: pick another step
            continue
        if out.numel() == 0 or out.numel() > 400 or not torch.isfinite(out).all() or \
                out.abs().max() > 1e4:
            continue
        pool.append(out)
        steps.append((label, fn, args))
    n_out = min(len(steps), int(rng.integers(1, 4)))
    outputs = [len(pool) - 1] + [int(k) for k in rng.choice(
        range(n_in, len(pool) - 1), n_out - 1, replace=False)] if len(pool) - 1 > n_in else \
        [len(pool) - 1]
    return inputs, steps, outputs


def _replay(M, inputs, steps, outputs):
    pool = [M.tensor(a, dtype=M.float64, requires_grad=True) for a in inputs]
    for _, fn, args in steps:
        pool.append(fn(M, *[pool[k] for k in args]))
    return pool[:len(inputs)], [pool[k] for k in outputs]


def _describe(steps, outputs):
    return "; ".join(f"v{k}={lab}{args}" for k, (lab, _, args) in enumerate(steps)) + \
        f" -> outputs {outputs}"


def _assert_close(a, b, what):
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape, (what, a.shape, b.shape)
    scale = max(1.0, float(np.max(np.abs(b)))) if b.size else 1.0
    np.testing.assert_allclose(a, b, rtol=RTOL, atol=RTOL * scale, err_msg=what)


@pytest.mark.parametrize("seed", range(N_PROGRAMS))
def test_random_program(seed):
    inputs, steps, outputs = _generate(seed)
    desc = _describe(steps, outputs)
    jin, jout = _replay(jitgrad, inputs, steps, outputs)
    tin, tout = _replay(torch, inputs, steps, outputs)
    rng = np.random.default_rng(10_000 + seed)
    jl = tl = 0
    for k, (a, b) in enumerate(zip(jout, tout)):
        assert str(a.dtype).split(".")[-1] == "float64", desc
        _assert_close(a.detach().numpy(), b.detach().numpy(), f"output {k}: {desc}")
        u = rng.standard_normal(tuple(b.shape))
        jl = jl + (a * jitgrad.tensor(u)).sum()
        tl = tl + (b * torch.tensor(u)).sum()
    _assert_close(jl.detach().numpy(), tl.detach().numpy(), f"loss: {desc}")
    tl.backward()
    jl.backward()
    for k, (a, b) in enumerate(zip(jin, tin)):
        if b.grad is None:
            assert a.grad is None or not np.any(a.grad.numpy()), f"input {k}: {desc}"
            continue
        assert a.grad is not None, f"input {k} has no grad: {desc}"
        _assert_close(a.grad.numpy(), b.grad.numpy(), f"grad of input {k}: {desc}")


# --- a few hand-written composites (fixed structure, random values) ----------------------------

def _both(fn, *arrays):
    res = []
    for M in (jitgrad, torch):
        xs = [M.tensor(a, dtype=M.float64, requires_grad=True) for a in arrays]
        out = fn(M, *xs)
        out.backward(M.tensor(np.ones(tuple(out.shape))))
        res.append((out.detach().numpy(), [x.grad.numpy() for x in xs]))
    (jo, jg), (to, tg) = res
    _assert_close(jo, to, "value")
    for k, (a, b) in enumerate(zip(jg, tg)):
        _assert_close(a, b, f"grad {k}")


def test_attention_block():
    rng = np.random.default_rng(1)

    def f(M, q, k, v, w):
        s = (q @ k.transpose(-1, -2)) / 2.0
        p = s.softmax(dim=-1)
        o = (p @ v) @ w
        return M.nn.functional.gelu(o).sum(dim=(0, 1), keepdim=True) + o.mean(dim=1,
                                                                              keepdim=True)
    _both(f, rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 5, 4)),
          rng.standard_normal((2, 5, 4)), rng.standard_normal((4, 3)))


def test_layernorm_like():
    rng = np.random.default_rng(2)

    def f(M, x, g, b):
        mu = x.mean(dim=-1, keepdim=True)
        var = ((x - mu) ** 2).mean(dim=-1, keepdim=True)
        y = (x - mu) / (var + 1e-5).sqrt() * g + b
        return M.log_softmax(y, dim=-1)[:, 1:] * y.var(dim=0, keepdim=True)[..., 1:]
    _both(f, rng.standard_normal((4, 5)), rng.standard_normal(5), rng.standard_normal(5))


def test_gather_scatter_heavy():
    rng = np.random.default_rng(3)

    def f(M, x, w):
        idx = M.tensor([0, 2, 2, 1, 0])
        y = x[idx] * w[:, None]
        z = M.zeros(5, 3, dtype=M.float64)
        z[1:4] = y[1:4].tanh()
        z[M.tensor([0, 4])] = x[0] + y[M.tensor([0, 4])]
        return M.stack([z, y], dim=1).sum(1) @ x.t()
    _both(f, rng.standard_normal((3, 3)), rng.standard_normal(5))


def test_inplace_chain():
    rng = np.random.default_rng(4)

    def f(M, x, w):
        a = x * w
        a.add_(1.0)
        a.mul_(w)
        a.clamp_(-1.5, 1.5)
        b = a.exp() + 0.0  # exp saves its output: modify a copy
        b.sub_(x)
        b.div_(2.0)
        return b * a.sum()
    _both(f, rng.standard_normal((3, 4)), rng.standard_normal((3, 4)))


# --- the same programs with lazy fusion forced on for every size ---------------------------------

@pytest.fixture
def fusion():
    from jitgrad import lazy
    prev, prev_min = lazy.is_fusion_enabled(), lazy.FUSE_MIN
    lazy.set_fusion(True, 0)
    yield
    lazy.set_fusion(prev, prev_min)


@pytest.mark.parametrize("seed", [3])
def test_random_program_fused(seed, fusion):
    test_random_program(seed)


def test_fused_group_of_zero_dim_tensors(fusion):
    # regression: a fused group whose loads were all 0-d had no array operand to size the loop
    # (codegen.render_kernel raised StopIteration)
    x = jitgrad.ones(3, requires_grad=True)
    out = (x.sum() * jitgrad.tensor(2.0)).sum()
    assert out.item() == 6.0


def test_fused_rpow_grad_float64_precision(fusion):
    x = jitgrad.tensor([1.0, 0.5], dtype=jitgrad.float64, requires_grad=True)
    (2.0 ** x).backward(jitgrad.ones(2, dtype=jitgrad.float64))
    np.testing.assert_allclose(x.grad.numpy(), 2.0 ** np.array([1.0, 0.5]) * np.log(2.0),
                               rtol=1e-14)
