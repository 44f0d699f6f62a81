"""jitgrad.nn modules against torch.nn: every layer's forward, input and parameter gradients
with the same weights (copied from the torch module through load_state_dict), state-dict round
trips, the Module bookkeeping (registration, iteration, train/eval, hooks, to(), errors and
reprs, which are compared with torch's own strings), loss modules in every reduction mode and
the new nn.functional entries."""
from __future__ import annotations

import copy

import numpy as np
import pytest

import jitgrad
import jitgrad.nn as nn
import jitgrad.nn.functional as F

torch = pytest.importorskip("torch")
TN = torch.nn
TF = torch.nn.functional


def J(t, rg=False):
    """A jitgrad tensor with a torch tensor's values."""
    return jitgrad.tensor(t.detach().numpy().copy(), requires_grad=rg)


def npy(t):
    return t.detach().numpy()


def close(a, b, rtol=1e-5, atol=1e-6):
    np.testing.assert_allclose(npy(a), npy(b), rtol=rtol, atol=atol)


def copy_from_torch(jm, tm):
    res = jm.load_state_dict({k: J(v) for k, v in tm.state_dict().items()})
    assert res.missing_keys == [] and res.unexpected_keys == []
    assert repr(res) == "<All keys matched successfully>"


def _randn(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(tuple(shape), generator=g)


# (name, build(nn_namespace), input shapes; an int dtype marks an index input)
MODULES = [
    ("linear", lambda n: n.Linear(4, 3), [(5, 4)]),
    ("linear_nobias_3d", lambda n: n.Linear(4, 3, bias=False), [(2, 5, 4)]),
    ("bilinear", lambda n: n.Bilinear(3, 4, 2), [(5, 3), (5, 4)]),
    ("layernorm", lambda n: n.LayerNorm(4), [(3, 4)]),
    ("layernorm_2d_noaffine", lambda n: n.LayerNorm((2, 4), elementwise_affine=False),
     [(3, 2, 4)]),
    ("batchnorm_2d", lambda n: n.BatchNorm1d(3), [(5, 3)]),
    ("batchnorm_3d_nomomentum", lambda n: n.BatchNorm1d(3, momentum=None, affine=False),
     [(4, 3, 2)]),
    ("flatten", lambda n: n.Flatten(), [(2, 3, 4)]),
    ("unflatten", lambda n: n.Unflatten(1, (2, -1)), [(2, 6)]),
    ("identity", lambda n: n.Identity(3, foo=1), [(2, 3)]),
    ("relu", lambda n: n.ReLU(), [(3, 4)]),
    ("tanh", lambda n: n.Tanh(), [(3, 4)]),
    ("sigmoid", lambda n: n.Sigmoid(), [(3, 4)]),
    ("gelu", lambda n: n.GELU(), [(3, 4)]),
    ("gelu_tanh", lambda n: n.GELU(approximate="tanh"), [(3, 4)]),
    ("silu", lambda n: n.SiLU(), [(3, 4)]),
    ("softmax", lambda n: n.Softmax(dim=1), [(3, 4)]),
    ("logsoftmax", lambda n: n.LogSoftmax(dim=0), [(3, 4)]),
    ("leakyrelu", lambda n: n.LeakyReLU(0.2), [(3, 4)]),
    ("elu", lambda n: n.ELU(alpha=0.7), [(3, 4)]),
    ("softplus", lambda n: n.Softplus(beta=2.0, threshold=1.5), [(3, 4)]),
    ("mlp", lambda n: n.Sequential(n.Linear(4, 6), n.LayerNorm(6), n.GELU(), n.Dropout(0.0),
                                   n.Linear(6, 2)), [(5, 4)]),
]


@pytest.mark.parametrize("name,build,shapes", MODULES, ids=[m[0] for m in MODULES])
def test_module_forward_backward_state_dict_vs_torch(name, build, shapes):
    torch.manual_seed(0)
    tm = build(TN)
    jm = build(nn)
    assert list(jm.state_dict()) == list(tm.state_dict())
    copy_from_torch(jm, tm)
    xs_t = [_randn(*s, seed=i).requires_grad_() for i, s in enumerate(shapes)]
    if name.startswith("elu") or name.startswith("leaky") or name == "relu":
        with torch.no_grad():
            xs_t[0][0, :2] = 0.0  # the kink: torch's subgradient
    xs_j = [J(x, rg=True) for x in xs_t]
    yt, yj = tm(*xs_t), jm(*xs_j)
    assert tuple(yj.shape) == tuple(yt.shape)
    close(yj, yt)
    gt = _randn(*yt.shape, seed=9)
    yt.backward(gt)
    yj.backward(J(gt))
    for xj, xt in zip(xs_j, xs_t):
        close(xj.grad, xt.grad, atol=1e-5)
    tp = dict(tm.named_parameters())
    for k, p in jm.named_parameters():
        close(p.grad, tp[k].grad, atol=1e-5)
    for k, b in tm.named_buffers():  # running stats after one training step
        close(jm.get_buffer(k), b)
    # the state dict round trip: a fresh module given this one's state computes the same
    jm2 = build(nn)
    jm2.load_state_dict(jm.state_dict())
    for a, b in zip(jm.state_dict().values(), jm2.state_dict().values()):
        np.testing.assert_array_equal(npy(a), npy(b))
    jm.eval(), jm2.eval(), tm.eval()
    close(jm2(*xs_j), tm(*xs_t))


def test_embedding_padding_idx_grad_and_from_pretrained():
    torch.manual_seed(0)
    tm = TN.Embedding(6, 3, padding_idx=1)
    jm = nn.Embedding(6, 3, padding_idx=1)
    np.testing.assert_array_equal(npy(jm.weight)[1], 0)  # the padding row starts at zero
    copy_from_torch(jm, tm)
    idx = torch.tensor([[1, 2, 2], [0, 1, 5]])
    yt, yj = tm(idx), jm(J(idx))
    close(yj, yt)
    g = _randn(2, 3, 3)
    yt.backward(g)
    yj.backward(J(g))
    close(jm.weight.grad, tm.weight.grad)
    assert not npy(jm.weight.grad)[1].any()
    assert repr(jm) == repr(tm)
    with pytest.raises(IndexError, match="index out of range"):
        jm(jitgrad.tensor([6]))
    with pytest.raises(RuntimeError, match="Long, Int"):
        jm(jitgrad.tensor([1.0]))
    w = jitgrad.randn(4, 2)
    e = nn.Embedding.from_pretrained(w)
    assert not e.weight.requires_grad and e.weight._data is w._data
    assert nn.Embedding.from_pretrained(w, freeze=False).weight.requires_grad
    # max_norm renormalises the looked-up rows in place, like torch
    wt = _randn(5, 3) * 3
    et = TN.Embedding.from_pretrained(wt.clone(), max_norm=1.0)
    ej = nn.Embedding.from_pretrained(J(wt), max_norm=1.0)
    i = torch.tensor([0, 2, 2])
    close(ej(J(i)), et(i))
    close(ej.weight, et.weight)


def test_batchnorm_running_stats_over_steps_and_eval():
    torch.manual_seed(0)
    tm, jm = TN.BatchNorm1d(3, momentum=0.3), nn.BatchNorm1d(3, momentum=0.3)
    copy_from_torch(jm, tm)
    for s in range(3):
        x = _randn(6, 3, seed=s) * 2 + 1
        close(jm(J(x)), tm(x))
    close(jm.running_mean, tm.running_mean)
    close(jm.running_var, tm.running_var)
    assert jm.num_batches_tracked.item() == 3 and jm.num_batches_tracked.dtype == jitgrad.int64
    jm.eval(), tm.eval()
    x = _randn(4, 3, seed=7)
    close(jm(J(x)), tm(x))
    with pytest.raises(ValueError, match="Expected more than 1 value per channel"):
        nn.BatchNorm1d(3)(jitgrad.randn(1, 3))
    with pytest.raises(ValueError, match="expected 2D or 3D input"):
        nn.BatchNorm1d(3)(jitgrad.randn(2, 3, 2, 2))


def test_dropout_statistics_scaling_grad_and_eval():
    jitgrad.manual_seed(3)
    x = jitgrad.ones(4000, requires_grad=True)
    d = nn.Dropout(0.25)
    y = d(x)
    v = npy(y)
    kept = v != 0
    assert abs(kept.mean() - 0.75) < 0.03
    np.testing.assert_allclose(v[kept], 1 / 0.75, rtol=1e-6)
    y.sum().backward()
    np.testing.assert_array_equal(npy(x.grad), v)  # gradient = the scaled mask
    jitgrad.manual_seed(3)
    np.testing.assert_array_equal(npy(d(x)), v)  # reproducible from the seed
    assert d.eval()(x) is x
    assert not F.dropout(x, 1.0).detach().numpy().any()
    with pytest.raises(ValueError, match="between 0 and 1"):
        nn.Dropout(1.5)


def test_linear_default_init_bounds_and_dtype():
    jitgrad.manual_seed(0)
    m = nn.Linear(50, 40)
    w, b = npy(m.weight), npy(m.bias)
    bound = 1 / np.sqrt(50)
    assert w.dtype == np.float32 and w.shape == (40, 50)
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.95 * bound
    assert np.abs(b).max() <= bound
    assert abs(w.std() - bound / np.sqrt(3)) < 0.01  # U(-a, a) has std a/sqrt(3)
    assert nn.Linear(2, 2, dtype=jitgrad.float64).weight.dtype == jitgrad.float64


# --- losses ---------------------------------------------------------------------------------

def _loss_inputs(kind):
    x = _randn(4, 3, seed=1)
    if kind == "reg":
        return x, _randn(4, 3, seed=2)
    if kind == "prob":
        return torch.sigmoid(x), torch.rand(4, 3, generator=torch.Generator().manual_seed(2))
    if kind == "logit":
        return x, (torch.rand(4, 3, generator=torch.Generator().manual_seed(2)) > 0.5).float()
    if kind == "cls":
        return x, torch.tensor([0, 2, 1, 2])
    if kind == "logp":
        return torch.log_softmax(x, 1), torch.tensor([0, 2, 1, 2])
    if kind == "softcls":
        return x, torch.softmax(_randn(4, 3, seed=3), 1)


LOSSES = [
    ("mse", lambda n, r: n.MSELoss(reduction=r), "reg"),
    ("l1", lambda n, r: n.L1Loss(reduction=r), "reg"),
    ("smoothl1", lambda n, r: n.SmoothL1Loss(reduction=r, beta=0.5), "reg"),
    ("huber", lambda n, r: n.HuberLoss(reduction=r, delta=0.7), "reg"),
    ("bce", lambda n, r: n.BCELoss(reduction=r), "prob"),
    ("bce_weight", lambda n, r: n.BCELoss(weight=_w(n, [1.0, 2.0, 0.5]), reduction=r), "prob"),
    ("bcelogits_posw", lambda n, r: n.BCEWithLogitsLoss(pos_weight=_w(n, [2.0, 0.5, 1.0]),
                                                        reduction=r), "logit"),
    ("nll_weight_ignore", lambda n, r: n.NLLLoss(weight=_w(n, [1.0, 2.0, 0.5]), ignore_index=1,
                                                 reduction=r), "logp"),
    ("ce", lambda n, r: n.CrossEntropyLoss(reduction=r), "cls"),
    ("ce_weight_ignore_smooth", lambda n, r: n.CrossEntropyLoss(
        weight=_w(n, [1.0, 2.0, 0.5]), ignore_index=2, label_smoothing=0.2, reduction=r), "cls"),
    ("ce_smooth", lambda n, r: n.CrossEntropyLoss(label_smoothing=0.1, reduction=r), "cls"),
    ("ce_probs_weight_smooth", lambda n, r: n.CrossEntropyLoss(
        weight=_w(n, [1.0, 2.0, 0.5]), label_smoothing=0.3, reduction=r), "softcls"),
]


def _w(n, vals):
    return torch.tensor(vals) if n is TN else jitgrad.tensor(vals)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("name,build,kind", LOSSES, ids=[c[0] for c in LOSSES])
def test_loss_modules_vs_torch(name, build, kind, reduction):
    x, t = _loss_inputs(kind)
    xt = x.clone().requires_grad_()
    tt = t.clone().requires_grad_() if t.is_floating_point() and kind != "logit" else t
    xj = J(x, rg=True)
    tj = J(t, rg=bool(tt.requires_grad))
    lt = build(TN, reduction)(xt, tt)
    lj = build(nn, reduction)(xj, tj)
    close(lj, lt)
    g = _randn(*lt.shape, seed=5)
    lt.backward(g)
    lj.backward(J(g))
    close(xj.grad, xt.grad)
    if tt.requires_grad:
        close(tj.grad, tt.grad)


def test_loss_legacy_flags_and_bad_reduction():
    assert nn.MSELoss(size_average=False).reduction == "sum"
    assert nn.MSELoss(reduce=False).reduction == "none"
    with pytest.raises(ValueError, match="not a valid value for reduction"):
        nn.L1Loss(reduction="avg")
    with pytest.raises(RuntimeError, match="label_smoothing must be between"):
        F.cross_entropy(jitgrad.randn(2, 3), jitgrad.tensor([0, 1]), label_smoothing=1.5)


# --- nn.functional additions ------------------------------------------------------------------

def test_functional_activations_edge_values_vs_torch():
    x = torch.tensor([-1e4, -30.0, -1.0, 0.0, 0.5, 3.0, 30.0, 1e4], dtype=torch.float64)
    for fj, ft in [(lambda z: F.softplus(z), lambda z: TF.softplus(z)),
                   (lambda z: F.softplus(z, beta=0.5, threshold=4), lambda z: TF.softplus(
                       z, beta=0.5, threshold=4)),
                   (lambda z: F.elu(z, 1.5), lambda z: TF.elu(z, 1.5)),
                   (lambda z: F.leaky_relu(z, 0.1), lambda z: TF.leaky_relu(z, 0.1))]:
        xt = x.clone().requires_grad_()
        xj = J(x, rg=True)
        yt, yj = ft(xt), fj(xj)
        close(yj, yt, rtol=1e-12, atol=1e-12)
        yt.sum().backward()
        yj.sum().backward()
        close(xj.grad, xt.grad, rtol=1e-12, atol=1e-12)  # finite everywhere, torch's kinks


def test_inplace_activations():
    x = jitgrad.randn(3, 4)
    y = x.clone()
    assert F.relu(y, inplace=True) is y
    np.testing.assert_array_equal(npy(y), np.maximum(npy(x), 0))
    z = x * 1.0
    nn.LeakyReLU(0.1, inplace=True)(z)
    np.testing.assert_allclose(npy(z), np.where(npy(x) > 0, npy(x), 0.1 * npy(x)), rtol=1e-6)
    leaf = jitgrad.randn(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf"):
        nn.ReLU(inplace=True)(leaf)
    w = jitgrad.randn(3, requires_grad=True)
    h = w * 2
    F.relu(h, inplace=True).sum().backward()
    np.testing.assert_allclose(npy(w.grad), np.where(npy(w) > 0, 2.0, 0.0))


def test_one_hot():
    t = torch.tensor([[0, 2], [1, 3]])
    np.testing.assert_array_equal(npy(F.one_hot(J(t))), npy(TF.one_hot(t)))
    np.testing.assert_array_equal(npy(F.one_hot(J(t), 6)), npy(TF.one_hot(t, 6)))
    assert F.one_hot(J(t)).dtype == jitgrad.int64
    with pytest.raises(RuntimeError, match="smaller than num_classes"):
        F.one_hot(J(t), 3)
    with pytest.raises(RuntimeError, match="LongTensor"):
        F.one_hot(jitgrad.tensor([0.0]))


@pytest.mark.parametrize("mode,pads", [("constant", (1, 2)), ("constant", (2, -1, 0, 1)),
                                       ("reflect", (2, 1)), ("replicate", (1, 3, 2, 0)),
                                       ("circular", (2, 1))])
def test_pad_vs_torch(mode, pads):
    x = _randn(2, 3, 4)
    xt = x.clone().requires_grad_()
    xj = J(x, rg=True)
    kw = {"value": 0.5} if mode == "constant" else {}
    yt = TF.pad(xt, pads, mode=mode, **kw)
    yj = F.pad(xj, pads, mode=mode, **kw)
    close(yj, yt)
    g = _randn(*yt.shape, seed=3)
    yt.backward(g)
    yj.backward(J(g))
    close(xj.grad, xt.grad)


def test_normalize_vs_torch_and_zero_row():
    x = _randn(3, 4)
    x[1] = 0
    for p in (2.0, 1.0, 3.0):
        xt = x.clone().requires_grad_()
        xj = J(x, rg=True)
        yt, yj = TF.normalize(xt, p=p, dim=1), F.normalize(xj, p=p, dim=1)
        close(yj, yt)
        g = _randn(3, 4, seed=1)
        yt.backward(g)
        yj.backward(J(g))
        close(xj.grad, xt.grad, atol=1e-5)


def test_layer_norm_and_embedding_bad_input():
    with pytest.raises(RuntimeError, match=r"normalized_shape=\[4\]"):
        F.layer_norm(jitgrad.randn(2, 3), (4,))
    with pytest.raises(RuntimeError, match="2-D"):
        F.embedding(jitgrad.tensor([0]), jitgrad.randn(3))


# --- Module bookkeeping -----------------------------------------------------------------------

class Net(nn.Module):
    def __init__(self, n=nn):
        super().__init__()
        self.fc = n.Linear(3, 4)
        self.blocks = n.ModuleList([n.Linear(4, 4), n.Linear(4, 4)])
        self.head = n.Sequential(n.ReLU(), n.Linear(4, 2))
        self.register_buffer("steps", jitgrad.zeros(1))
        self.register_buffer("cache", jitgrad.zeros(2), persistent=False)
        self.scale = nn.Parameter(jitgrad.ones(1))

    def forward(self, x):
        x = self.fc(x)
        for b in self.blocks:
            x = b(x)
        return self.head(x) * self.scale


class TNet(TN.Module):
    def __init__(self):
        super().__init__()
        self.fc = TN.Linear(3, 4)
        self.blocks = TN.ModuleList([TN.Linear(4, 4), TN.Linear(4, 4)])
        self.head = TN.Sequential(TN.ReLU(), TN.Linear(4, 2))
        self.register_buffer("steps", torch.zeros(1))
        self.register_buffer("cache", torch.zeros(2), persistent=False)
        self.scale = TN.Parameter(torch.ones(1))


def test_module_registration_and_iteration_match_torch():
    jm, tm = Net(), TNet()
    assert [k for k, _ in jm.named_parameters()] == [k for k, _ in tm.named_parameters()]
    assert [k for k, _ in jm.named_buffers()] == [k for k, _ in tm.named_buffers()]
    assert [k for k, _ in jm.named_modules()] == [k for k, _ in tm.named_modules()]
    assert [k for k, _ in jm.named_children()] == [k for k, _ in tm.named_children()]
    assert list(jm.state_dict()) == list(tm.state_dict())  # no non-persistent 'cache'
    assert repr(jm).replace("Net(", "") == repr(tm).replace("TNet(", "")
    assert len(list(jm.parameters())) == 9 and len(list(jm.parameters(recurse=False))) == 1
    assert all(isinstance(p, nn.Parameter) and isinstance(p, jitgrad.Tensor)
               for p in jm.parameters())
    assert isinstance(jm.fc.weight, nn.Parameter) and jm.fc.weight.requires_grad
    shared = nn.Linear(2, 2)
    s = nn.Sequential(shared, shared)
    assert len(list(s.parameters())) == 2 and len(list(s.modules())) == 2


def test_setattr_getattr_delattr_bookkeeping():
    m = Net()
    m.extra = nn.Parameter(jitgrad.zeros(2))
    assert "extra" in m._parameters
    m.extra = None  # a registered parameter may become None
    assert m._parameters["extra"] is None and m.extra is None
    with pytest.raises(TypeError, match="cannot assign 'jitgrad.Tensor' as parameter 'fc'|"
                                        "as child module 'fc'"):
        m.fc = jitgrad.zeros(2)
    m.steps = jitgrad.ones(1)  # a buffer stays a buffer
    assert "steps" in m._buffers
    with pytest.raises(TypeError, match="as buffer 'steps'"):
        m.steps = 3
    m.fc = nn.Identity()
    assert isinstance(m._modules["fc"], nn.Identity)
    del m.fc
    with pytest.raises(AttributeError, match="'Net' object has no attribute 'fc'"):
        m.fc
    del m.steps
    assert "steps" not in m._buffers
    with pytest.raises(KeyError, match="already exists"):
        m.register_buffer("scale", jitgrad.zeros(1))
    with pytest.raises(KeyError, match="contain"):
        m.register_parameter("a.b", None)
    with pytest.raises(TypeError, match="buffer"):
        m.register_buffer("b2", [1, 2])
    with pytest.raises(TypeError, match="is not a Module subclass"):
        m.add_module("x", 3)

    class Early(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(jitgrad.zeros(1))
    with pytest.raises(AttributeError, match="before Module.__init__"):
        Early()


def test_state_dict_errors_match_torch_messages():
    jm, tm = nn.Linear(3, 2), TN.Linear(3, 2)
    sd_j = {"weight": jitgrad.zeros(2, 3), "foo": jitgrad.zeros(1)}
    sd_t = {"weight": torch.zeros(2, 3), "foo": torch.zeros(1)}
    with pytest.raises(RuntimeError) as ej:
        jm.load_state_dict(sd_j)
    with pytest.raises(RuntimeError) as et:
        tm.load_state_dict(sd_t)
    assert str(ej.value) == str(et.value)
    rj, rt = jm.load_state_dict(sd_j, strict=False), tm.load_state_dict(sd_t, strict=False)
    assert rj.missing_keys == rt.missing_keys == ["bias"]
    assert rj.unexpected_keys == rt.unexpected_keys == ["foo"]
    assert not npy(jm.weight).any()  # the matched key was loaded
    bad_j = {"weight": jitgrad.zeros(3, 3), "bias": jitgrad.zeros(2)}
    bad_t = {"weight": torch.zeros(3, 3), "bias": torch.zeros(2)}
    with pytest.raises(RuntimeError) as ej:
        jm.load_state_dict(bad_j)
    with pytest.raises(RuntimeError) as et:
        tm.load_state_dict(bad_t)
    assert str(ej.value).replace("jitgrad.Size", "torch.Size") == str(et.value)
    # nested: unexpected keys under a child and a missing child key
    n = Net()
    sd = n.state_dict()
    sd["head.1.extra"] = jitgrad.zeros(1)
    del sd["blocks.0.bias"]
    with pytest.raises(RuntimeError, match='Missing key\\(s\\) in state_dict: "blocks.0.bias"'
                                           '. \n\tUnexpected key\\(s\\) in state_dict: '
                                           '"head.1.extra"'):
        n.load_state_dict(sd)


def test_state_dict_shares_memory_and_load_keeps_identity():
    m = nn.Linear(2, 2)
    sd = m.state_dict()
    assert not sd["weight"].requires_grad and not isinstance(sd["weight"], nn.Parameter)
    assert isinstance(m.state_dict(keep_vars=True)["weight"], nn.Parameter)
    w = m.weight
    m.load_state_dict({"weight": jitgrad.ones(2, 2), "bias": jitgrad.zeros(2)})
    assert m.weight is w and npy(w).sum() == 4
    assert npy(sd["weight"]).sum() == 4  # the earlier state dict aliases the parameter


def test_train_eval_zero_grad_requires_grad_apply():
    m = Net()
    m.eval()
    assert not m.training and not m.head[1].training
    m.train()
    assert m.blocks[0].training
    m(jitgrad.randn(2, 3)).sum().backward()
    assert all(p.grad is not None for p in m.parameters())
    m.zero_grad(set_to_none=False)
    assert all(not npy(p.grad).any() for p in m.parameters())
    m.zero_grad()
    assert all(p.grad is None for p in m.parameters())
    m.requires_grad_(False)
    assert not any(p.requires_grad for p in m.parameters())
    seen = []
    m.apply(lambda mod: seen.append(type(mod).__name__))
    assert seen[-1] == "Net" and seen[0] == "Linear"

    @jitgrad.no_grad()
    def init_weights(mod):
        if isinstance(mod, nn.Linear):
            nn.init.constant_(mod.weight, 0.5)
    m.apply(init_weights)
    assert (npy(m.fc.weight) == 0.5).all()


def test_to_dtype_and_conversions():
    m = Net()
    m(jitgrad.randn(2, 3)).sum().backward()
    w = m.fc.weight
    assert m.double() is m
    assert m.fc.weight is w and w.dtype == jitgrad.float64 and w.grad.dtype == jitgrad.float64
    assert m.steps.dtype == jitgrad.float64
    assert m(jitgrad.randn(2, 3, dtype=jitgrad.float64)).dtype == jitgrad.float64
    m.to(jitgrad.float32)
    assert w.dtype == jitgrad.float32 and w.requires_grad
    bn = nn.BatchNorm1d(2).to(dtype=jitgrad.float64)
    assert bn.num_batches_tracked.dtype == jitgrad.int64  # integer buffers keep their dtype
    assert m.to("cpu") is m and m.cpu() is m and m.float() is m
    with pytest.raises(TypeError, match="floating point"):
        m.to(jitgrad.int64)
    with pytest.raises(TypeError):
        m.half()


def test_forward_hooks_and_handles():
    m = nn.Linear(2, 2)
    calls = []
    h1 = m.register_forward_pre_hook(lambda mod, args: (args[0] * 0,))
    h2 = m.register_forward_hook(lambda mod, args, out: calls.append(out.shape) or out + 1)
    x = jitgrad.randn(3, 2)
    y = m(x)
    np.testing.assert_allclose(npy(y), np.broadcast_to(npy(m.bias) + 1, (3, 2)), rtol=1e-6)
    assert calls == [jitgrad.Size([3, 2])]
    h1.remove(), h2.remove()
    h2.remove()  # removing twice is harmless
    np.testing.assert_allclose(npy(m(x)), npy(F.linear(x, m.weight, m.bias)), rtol=1e-6)
    with m.register_forward_hook(lambda mod, a, kw, out: out * kw["k"], with_kwargs=True):
        class K(nn.Module):
            def forward(self, x, k=1):
                return x
        km = K()
        km.register_forward_hook(lambda mod, a, kw, out: out * kw["k"], with_kwargs=True)
        assert km(jitgrad.ones(1), k=3).item() == 3
    assert not m._forward_hooks


def test_containers():
    s = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    assert len(s) == 3 and isinstance(s[-1], nn.Linear)
    sub = s[1:]
    assert isinstance(sub, nn.Sequential) and len(sub) == 2 and list(sub._modules) == ["1", "2"]
    assert list(TN.Sequential(TN.Linear(2, 3), TN.ReLU(), TN.Linear(3, 1))[1:]._modules) == \
        ["1", "2"]  # (torch keeps the names in a slice)
    s.append(nn.Sigmoid())
    assert len(s) == 4 and isinstance(s[3], nn.Sigmoid)
    del s[1]
    assert list(s._modules) == ["0", "1", "2"] and isinstance(s[1], nn.Linear)
    with pytest.raises(IndexError):
        s[5]
    from collections import OrderedDict
    named = nn.Sequential(OrderedDict([("a", nn.Linear(2, 2)), ("b", nn.Tanh())]))
    assert list(dict(named.named_parameters())) == ["a.weight", "a.bias"]
    assert repr(named) == repr(TN.Sequential(OrderedDict([("a", TN.Linear(2, 2)),
                                                          ("b", TN.Tanh())])))
    ml = nn.ModuleList([nn.Linear(2, 2)])
    ml += [nn.ReLU()]
    ml.insert(0, nn.Tanh())
    assert [type(x).__name__ for x in ml] == ["Tanh", "Linear", "ReLU"]
    assert isinstance(ml[:2], nn.ModuleList)
    md = nn.ModuleDict({"enc": nn.Linear(2, 2), "act": nn.ReLU()})
    md["dec"] = nn.Linear(2, 1)
    assert list(md.keys()) == ["enc", "act", "dec"] and "act" in md and len(md) == 3
    assert [k for k, _ in md.named_parameters()] == ["enc.weight", "enc.bias", "dec.weight",
                                                    "dec.bias"]
    tmd = TN.ModuleDict({"enc": TN.Linear(2, 2), "act": TN.ReLU()})
    tmd["dec"] = TN.Linear(2, 1)
    assert repr(md) == repr(tmd)


def test_reprs_match_torch():
    cases = [lambda n: n.Linear(3, 2, bias=False), lambda n: n.Bilinear(2, 3, 4),
             lambda n: n.Embedding(10, 3, padding_idx=0), lambda n: n.Dropout(0.2),
             lambda n: n.LayerNorm(4, eps=1e-6), lambda n: n.BatchNorm1d(3, momentum=None),
             lambda n: n.BatchNorm1d(2, bias=False), lambda n: n.LayerNorm(2, bias=False),
             lambda n: n.Flatten(0), lambda n: n.Unflatten(1, (2, 2)), lambda n: n.Identity(),
             lambda n: n.ReLU(inplace=True), lambda n: n.GELU("tanh"), lambda n: n.SiLU(),
             lambda n: n.Softmax(dim=-1), lambda n: n.LogSoftmax(1),
             lambda n: n.LeakyReLU(0.2), lambda n: n.ELU(), lambda n: n.Softplus(),
             lambda n: n.CrossEntropyLoss(), lambda n: n.MSELoss(),
             lambda n: n.ModuleList([n.Linear(2, 2), n.Linear(2, 2), n.ReLU()])]
    for c in cases:
        assert repr(c(nn)) == repr(c(TN))
    p = nn.Parameter(jitgrad.tensor([1.0, 2.0]))
    assert repr(p) == "Parameter containing:\ntensor([1., 2.], requires_grad=True)"


def test_parameter_semantics_and_deepcopy():
    t = jitgrad.tensor([1.0, 2.0])
    p = nn.Parameter(t)
    assert p._data is t._data and p.is_leaf and p.requires_grad
    assert not nn.Parameter(t, requires_grad=False).requires_grad
    assert type(p * 2) is jitgrad.Tensor
    m = Net()
    m(jitgrad.randn(2, 3)).sum().backward()
    m2 = copy.deepcopy(m)
    assert m2.fc.weight is not m.fc.weight and isinstance(m2.fc.weight, nn.Parameter)
    np.testing.assert_array_equal(npy(m2.fc.weight), npy(m.fc.weight))
    np.testing.assert_array_equal(npy(m2.fc.weight.grad), npy(m.fc.weight.grad))
    with jitgrad.no_grad():
        m2.fc.weight.add_(1)
    assert not np.array_equal(npy(m2.fc.weight), npy(m.fc.weight))


@pytest.mark.cuda
def test_module_cuda_round_trip_and_save_load_map_location():
    """(Numba's simulator without a GPU.) Parameters move in place, forward/backward run on
    the device, state dicts load back on either device."""
    import io
    jitgrad.manual_seed(0)
    m = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    x = jitgrad.randn(5, 3)
    ref = npy(m(x))
    w = m[0].weight
    assert m.cuda() is m and m[0].weight is w and w.device.type == "cuda"
    y = m(x.cuda())
    np.testing.assert_allclose(y.detach().cpu().numpy(), ref, rtol=1e-5, atol=1e-6)
    y.sum().backward()
    assert w.grad.device.type == "cuda"
    buf = io.BytesIO()
    jitgrad.save(m.state_dict(), buf)
    buf.seek(0)
    assert jitgrad.load(buf)["0.weight"].device.type == "cuda"
    buf.seek(0)
    sd = jitgrad.load(buf, map_location="cpu")
    assert sd["0.weight"].device.type == "cpu"
    m.cpu()
    assert w.device.type == "cpu" and w.grad.device.type == "cpu"
    np.testing.assert_allclose(npy(m(x)), ref, rtol=1e-6)
