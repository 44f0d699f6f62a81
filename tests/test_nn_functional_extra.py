"""nn.functional breadth (jitgrad/nn/_functional_extra.py) against torch: convolution, pooling,
resampling, activations, losses, normalisation, dropout variants. Values and gradients for a
random cotangent, float64 central-difference gradchecks on small sizes, double backward and
vmap through the composed ops. Small tensors: the ops are composites of existing kernels."""
from __future__ import annotations

import numpy as np
import pytest

import jitgrad
import jitgrad.nn.functional as JF

torch = pytest.importorskip("torch")
TF = torch.nn.functional


def _pair(*arrays, grad=True):
    """The same float64 arrays as jitgrad and torch leaves."""
    j = [jitgrad.tensor(a, requires_grad=grad and a.dtype.kind == "f") for a in arrays]
    t = [torch.tensor(a, requires_grad=grad and a.dtype.kind == "f") for a in arrays]
    return j, t


def _np(x):
    return x.detach().numpy() if hasattr(x, "detach") else np.asarray(x)


def _check(jfn, tfn, *arrays, rtol=1e-9, atol=1e-10, grad=True, seed=0):
    """Forward and (with a fixed random cotangent) every float input's gradient vs torch."""
    j, t = _pair(*arrays, grad=grad)
    jo, to = jfn(*j), tfn(*t)
    jo1 = jo[0] if isinstance(jo, tuple) else jo
    to1 = to[0] if isinstance(to, tuple) else to
    assert tuple(jo1.shape) == tuple(to1.shape)
    np.testing.assert_allclose(_np(jo1), _np(to1), rtol=rtol, atol=atol)
    if isinstance(jo, tuple):
        for a, b in zip(jo[1:], to[1:]):
            np.testing.assert_array_equal(_np(a), _np(b))
    if not grad:
        return
    c = np.random.default_rng(seed).standard_normal(tuple(to1.shape))
    (jo1 * jitgrad.tensor(c)).sum().backward()
    (to1 * torch.tensor(c)).sum().backward()
    for a, b in zip(j, t):
        if b.requires_grad:
            np.testing.assert_allclose(_np(a.grad), _np(b.grad), rtol=rtol, atol=atol)


R = np.random.default_rng(1234)


def rn(*s):
    return R.standard_normal(s)


# ------------------------------------------------------------------------------ convolution

@pytest.mark.parametrize("kw", [
    dict(),
    dict(stride=2, padding=1),
    dict(padding="same", dilation=2),
    dict(padding="valid", stride=(1, 2)),
    dict(padding=(2, 0), dilation=(1, 2), groups=2),
])
def test_conv2d(kw):
    x, w, b = rn(2, 4, 7, 6), rn(6, 4 // kw.get("groups", 1), 3, 2), rn(6)
    _check(lambda x, w, b: JF.conv2d(x, w, b, **kw), lambda x, w, b: TF.conv2d(x, w, b, **kw),
           x, w, b)


def test_conv1d_unbatched_and_1x1():
    _check(lambda x, w: JF.conv1d(x, w, padding="same"),
           lambda x, w: TF.conv1d(x, w, padding="same"), rn(3, 9), rn(5, 3, 4))
    _check(lambda x, w, b: JF.conv2d(x, w, b), lambda x, w, b: TF.conv2d(x, w, b),
           rn(2, 3, 4, 4), rn(5, 3, 1, 1), rn(5))


@pytest.mark.parametrize("kw", [dict(stride=2, padding=1, output_padding=1),
                                dict(groups=2, dilation=2)])
def test_conv_transpose(kw):
    x, w, b = rn(2, 4, 3, 5), rn(4, 3, 3, 2), rn(3 * kw.get("groups", 1))
    _check(lambda x, w, b: JF.conv_transpose2d(x, w, b, **kw),
           lambda x, w, b: TF.conv_transpose2d(x, w, b, **kw), x, w, b)
    _check(lambda x, w: JF.conv_transpose1d(x, w, stride=3),
           lambda x, w: TF.conv_transpose1d(x, w, stride=3), rn(2, 2, 4), rn(2, 3, 2))


def test_conv_gradcheck_and_double_backward():
    x = jitgrad.tensor(rn(1, 2, 4, 4), requires_grad=True)
    w = jitgrad.tensor(rn(2, 1, 2, 3), requires_grad=True)
    assert jitgrad.autograd.gradcheck(
        lambda x, w: JF.conv2d(x, w, stride=(2, 1), padding=1, groups=2), (x, w))
    # second derivative of sum(conv(x, w)^2) w.r.t. w, against torch
    xt, wt = torch.tensor(x.detach().numpy()), torch.tensor(w.detach().numpy(),
                                                            requires_grad=True)
    gw, = jitgrad.autograd.grad((JF.conv2d(x, w, padding=1, groups=2) ** 2).sum(), w,
                                create_graph=True)
    gwt, = torch.autograd.grad((TF.conv2d(xt, wt, padding=1, groups=2) ** 2).sum(), wt,
                               create_graph=True)
    np.testing.assert_allclose(gw.detach().numpy(), gwt.detach().numpy(), rtol=1e-10)
    h = jitgrad.autograd.grad(gw.sum(), w)[0]
    ht = torch.autograd.grad(gwt.sum(), wt)[0]
    np.testing.assert_allclose(h.numpy(), ht.numpy(), rtol=1e-10)


def test_conv_errors():
    x = jitgrad.zeros(1, 3, 5, 5)
    with pytest.raises(RuntimeError, match="channels"):
        JF.conv2d(x, jitgrad.zeros(4, 2, 3, 3))
    with pytest.raises(RuntimeError, match="strided"):
        JF.conv2d(x, jitgrad.zeros(4, 3, 3, 3), stride=2, padding="same")
    with pytest.raises(RuntimeError, match="too small"):
        JF.conv2d(x, jitgrad.zeros(4, 3, 7, 7))
    with pytest.raises(RuntimeError, match="should be the same"):
        JF.conv2d(x, jitgrad.zeros(4, 3, 3, 3, dtype=jitgrad.float64))


def test_conv2d_vmap_per_sample_grad():
    """Per-sample weight gradients through conv2d under vmap(grad) match a loop."""
    x = rn(3, 1, 2, 5, 5)
    w = rn(4, 2, 3, 3)

    def loss(w, xi):
        return (JF.conv2d(xi, w, padding=1).tanh() ** 2).sum()
    got = jitgrad.vmap(jitgrad.func.grad(loss), in_dims=(None, 0))(jitgrad.tensor(w),
                                                                     jitgrad.tensor(x))
    for i in range(3):
        wt = torch.tensor(w, requires_grad=True)
        (TF.conv2d(torch.tensor(x[i]), wt, padding=1).tanh() ** 2).sum().backward()
        np.testing.assert_allclose(got.numpy()[i], wt.grad.numpy(), rtol=1e-9)


# ------------------------------------------------------------------------------ pooling

@pytest.mark.parametrize("kw", [dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1),
                                dict(kernel_size=(2, 3), ceil_mode=True, stride=2,
                                     dilation=(2, 1))])
def test_max_pool2d_with_indices(kw):
    x = rn(2, 3, 7, 8)
    _check(lambda x: JF.max_pool2d(x, return_indices=True, **kw),
           lambda x: TF.max_pool2d(x, return_indices=True, **kw), x)


def test_max_pool_gradcheck_and_unpool():
    x = jitgrad.tensor(rn(1, 2, 5, 5), requires_grad=True)
    assert jitgrad.autograd.gradcheck(lambda x: JF.max_pool2d(x, 3, 2, 1), (x,))
    _check(lambda x: JF.max_unpool2d(*JF.max_pool2d(x, 2, return_indices=True), 2),
           lambda x: TF.max_unpool2d(*TF.max_pool2d(x, 2, return_indices=True), 2),
           rn(2, 2, 4, 6))
    _check(lambda x: JF.max_pool1d(x, 3, 1, 1), lambda x: TF.max_pool1d(x, 3, 1, 1), rn(2, 7))


@pytest.mark.parametrize("kw", [dict(kernel_size=3, stride=2, padding=1),
                                dict(kernel_size=3, stride=2, padding=1, count_include_pad=False,
                                     ceil_mode=True),
                                dict(kernel_size=2, divisor_override=3)])
def test_avg_pool2d(kw):
    _check(lambda x: JF.avg_pool2d(x, **kw), lambda x: TF.avg_pool2d(x, **kw), rn(2, 2, 7, 6))


def test_adaptive_pools():
    x = rn(2, 3, 7, 5)
    _check(lambda x: JF.adaptive_avg_pool2d(x, (3, 4)),
           lambda x: TF.adaptive_avg_pool2d(x, (3, 4)), x)
    _check(lambda x: JF.adaptive_avg_pool2d(x, (None, 2)),
           lambda x: TF.adaptive_avg_pool2d(x, (None, 2)), x)
    _check(lambda x: JF.adaptive_max_pool2d(x, 3, return_indices=True),
           lambda x: TF.adaptive_max_pool2d(x, 3, return_indices=True), x)
    _check(lambda x: JF.adaptive_avg_pool1d(x, 4), lambda x: TF.adaptive_avg_pool1d(x, 4),
           rn(2, 3, 9))
    _check(lambda x: JF.adaptive_max_pool1d(x, 4), lambda x: TF.adaptive_max_pool1d(x, 4),
           rn(3, 9))


# ------------------------------------------------------------------------------ resampling

@pytest.mark.parametrize("kw", [
    dict(scale_factor=2, mode="nearest"),
    dict(size=(5, 7), mode="nearest-exact"),
    dict(size=(5, 7), mode="bilinear", align_corners=True),
    dict(scale_factor=1.7, mode="bilinear"),
    dict(size=(3, 9), mode="bicubic"),
    dict(size=(4, 2), mode="area"),
])
def test_interpolate(kw):
    _check(lambda x: JF.interpolate(x, **kw), lambda x: TF.interpolate(x, **kw), rn(2, 2, 4, 5))


def test_interpolate_linear_and_errors():
    _check(lambda x: JF.interpolate(x, scale_factor=2.5, mode="linear"),
           lambda x: TF.interpolate(x, scale_factor=2.5, mode="linear"), rn(1, 2, 5))
    x = jitgrad.zeros(1, 1, 4)
    with pytest.raises(NotImplementedError, match="bilinear mode needs 4D"):
        JF.interpolate(x, size=3, mode="bilinear")
    with pytest.raises(ValueError, match="align_corners"):
        JF.interpolate(x, size=3, mode="nearest", align_corners=True)


def test_unfold_fold_shuffle():
    x = rn(2, 3, 5, 6)
    kw = dict(kernel_size=(2, 3), padding=1, stride=(2, 1), dilation=(1, 2))
    _check(lambda x: JF.unfold(x, **kw), lambda x: TF.unfold(x, **kw), x)
    cols = TF.unfold(torch.tensor(x), **kw).numpy()
    _check(lambda c: JF.fold(c, (5, 6), **kw), lambda c: TF.fold(c, (5, 6), **kw), cols)
    _check(lambda x: JF.pixel_shuffle(x, 2), lambda x: TF.pixel_shuffle(x, 2), rn(2, 8, 3, 2))
    _check(lambda x: JF.pixel_unshuffle(x, 2), lambda x: TF.pixel_unshuffle(x, 2),
           rn(3, 4, 6))
    _check(lambda x: JF.channel_shuffle(x, 2), lambda x: TF.channel_shuffle(x, 2),
           rn(2, 6, 3))


# ------------------------------------------------------------------------------ activations

ACTS = [
    ("hardtanh", dict(min_val=-0.5, max_val=0.7)), ("relu6", {}), ("hardsigmoid", {}),
    ("hardswish", {}), ("mish", {}), ("selu", {}), ("celu", dict(alpha=0.7)),
    ("logsigmoid", {}), ("softsign", {}), ("softshrink", dict(lambd=0.3)),
    ("hardshrink", dict(lambd=0.3)), ("tanhshrink", {}), ("threshold", dict(threshold=0.1,
                                                                            value=-2.0)),
    ("softmin", dict(dim=1)), ("glu", dict(dim=1)), ("rrelu", {}),
]


@pytest.mark.parametrize("name,kw", ACTS, ids=[a for a, _ in ACTS])
def test_activation(name, kw):
    x = rn(3, 4) * 4
    # (rtol 1e-7: torch's float64 hardsigmoid gradient uses the float32 constant 1.0f / 6.0f)
    _check(lambda x: getattr(JF, name)(x, **kw), lambda x: getattr(TF, name)(x, **kw), x,
           rtol=1e-7)


def test_prelu_and_inplace():
    _check(lambda x, w: JF.prelu(x, w), lambda x, w: TF.prelu(x, w), rn(2, 3, 4), rn(3))
    _check(lambda x, w: JF.prelu(x, w), lambda x, w: TF.prelu(x, w), rn(5), rn(1))
    a = jitgrad.tensor(rn(4))
    b = torch.tensor(a.numpy())
    JF.hardtanh(a, inplace=True)
    TF.hardtanh(b, inplace=True)
    np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_rrelu_training_and_gumbel():
    jitgrad.manual_seed(0)
    x = jitgrad.tensor(rn(200))
    y = JF.rrelu(x, 0.1, 0.3, training=True).numpy()
    xn = x.numpy()
    slope = y[xn < 0] / xn[xn < 0]
    assert (slope >= 0.1).all() and (slope <= 0.3).all() and slope.std() > 0.01
    np.testing.assert_array_equal(y[xn >= 0], xn[xn >= 0])
    g = JF.gumbel_softmax(jitgrad.tensor(rn(4, 5)), tau=0.5, hard=True)
    np.testing.assert_array_equal(g.numpy().sum(1), 1.0)
    assert set(np.unique(g.numpy())) <= {0.0, 1.0}


# ------------------------------------------------------------------------------ losses

def test_distances():
    a, b = rn(4, 5), rn(4, 5)
    _check(JF.cosine_similarity, TF.cosine_similarity, a, b)
    _check(lambda a, b: JF.pairwise_distance(a, b, p=3, keepdim=True),
           lambda a, b: TF.pairwise_distance(a, b, p=3, keepdim=True), a, b)
    _check(JF.pdist, TF.pdist, a)


def test_losses():
    x, y, z = rn(4, 5), rn(4, 5), rn(4, 5)
    sgn = np.sign(rn(4))
    _check(lambda a, p, n: JF.triplet_margin_loss(a, p, n, swap=True),
           lambda a, p, n: TF.triplet_margin_loss(a, p, n, swap=True), x, y, z)
    _check(lambda a, b: JF.margin_ranking_loss(a, b, jitgrad.tensor(sgn), margin=0.2),
           lambda a, b: TF.margin_ranking_loss(a, b, torch.tensor(sgn), margin=0.2),
           rn(4), rn(4))
    _check(lambda a: JF.hinge_embedding_loss(a, jitgrad.tensor(np.sign(y))),
           lambda a: TF.hinge_embedding_loss(a, torch.tensor(np.sign(y))), x)
    _check(lambda a: JF.soft_margin_loss(a, jitgrad.tensor(np.sign(y)), reduction="sum"),
           lambda a: TF.soft_margin_loss(a, torch.tensor(np.sign(y)), reduction="sum"), x)
    t01 = (y > 0).astype(np.float64)
    _check(lambda a, w: JF.multilabel_soft_margin_loss(a, jitgrad.tensor(t01), w),
           lambda a, w: TF.multilabel_soft_margin_loss(a, torch.tensor(t01), w), x, rn(5))
    p = np.abs(rn(4, 5))
    _check(lambda a, t: JF.kl_div(a, t, reduction="batchmean"),
           lambda a, t: TF.kl_div(a, t, reduction="batchmean"), x, p)
    _check(lambda a, t: JF.kl_div(a, t, log_target=True),
           lambda a, t: TF.kl_div(a, t, log_target=True), x, y)
    _check(lambda a, t: JF.poisson_nll_loss(a, t, full=True),
           lambda a, t: TF.poisson_nll_loss(a, t, full=True), x, p * 3)
    _check(lambda a, t, v: JF.gaussian_nll_loss(a, t, v, full=True),
           lambda a, t, v: TF.gaussian_nll_loss(a, t, v, full=True), x, y, np.abs(rn(4)))
    _check(lambda a, b: JF.cosine_embedding_loss(a, b, jitgrad.tensor(sgn), margin=0.1),
           lambda a, b: TF.cosine_embedding_loss(a, b, torch.tensor(sgn), margin=0.1), x, y)
    tgt = np.array([1, 0, 4, 2])
    _check(lambda a: JF.multi_margin_loss(a, jitgrad.tensor(tgt), p=2),
           lambda a: TF.multi_margin_loss(a, torch.tensor(tgt), p=2), x)
    ml = np.array([[3, 0, -1, 1, 1], [0, 1, 2, 3, 4], [-1, 0, 0, 0, 0], [2, 2, -1, 0, 0]])
    _check(lambda a: JF.multilabel_margin_loss(a, jitgrad.tensor(ml)),
           lambda a: TF.multilabel_margin_loss(a, torch.tensor(ml)), x)


# ------------------------------------------------------------------------------ normalisation

def test_norms():
    x = rn(2, 6, 3, 4)
    _check(lambda x, w, b: JF.group_norm(x, 3, w, b), lambda x, w, b: TF.group_norm(x, 3, w, b),
           x, rn(6), rn(6))
    _check(lambda x: JF.local_response_norm(x, 3), lambda x: TF.local_response_norm(x, 3), x)
    _check(lambda x, w: JF.rms_norm(x, (3, 4), w), lambda x, w: TF.rms_norm(x, (3, 4), w),
           x, rn(3, 4))
    rm, rv = np.zeros(6), np.ones(6)
    jm, jv, tm, tv = (jitgrad.tensor(rm), jitgrad.tensor(rv), torch.tensor(rm),
                      torch.tensor(rv))
    _check(lambda x: JF.instance_norm(x, jm, jv, momentum=0.3),
           lambda x: TF.instance_norm(x, tm, tv, momentum=0.3), x)
    np.testing.assert_allclose(jm.numpy(), tm.numpy(), rtol=1e-12)
    np.testing.assert_allclose(jv.numpy(), tv.numpy(), rtol=1e-12)


# ------------------------------------------------------------------------------ dropout, misc

def test_dropout_variants_semantics():
    jitgrad.manual_seed(3)
    x = jitgrad.ones(8, 16, 3, 3)
    y = JF.dropout2d(x, 0.25).numpy()
    per_ch = y.reshape(8, 16, -1)
    assert (per_ch.min(-1) == per_ch.max(-1)).all()          # whole channels kept or dropped
    assert set(np.unique(y)) <= {0.0, np.float32(1 / 0.75)} and 0 < (y == 0).mean() < 0.6
    assert JF.dropout2d(x, 0.25, training=False) is x
    a = JF.alpha_dropout(jitgrad.ones(20000), 0.2, training=True).numpy()
    kept = np.isclose(a, a.max())
    assert abs(kept.mean() - 0.8) < 0.02
    z = JF.alpha_dropout(jitgrad.tensor(np.random.default_rng(0).standard_normal(200000)), 0.2,
                         training=True).numpy()
    assert abs(z.mean()) < 0.02 and abs(z.std() - 1) < 0.02   # (SELU self-normalising)
    f = JF.feature_alpha_dropout(jitgrad.ones(4, 8, 5), 0.5, training=True).numpy()
    assert (f.min(-1) == f.max(-1)).all()
    d1 = JF.dropout1d(jitgrad.ones(3, 4, 5), 0.5).numpy()
    assert (d1.min(-1) == d1.max(-1)).all()


def test_embedding_bag_and_sdpa():
    w = rn(10, 3)
    idx, off = np.array([1, 2, 4, 5, 4, 3, 2, 9]), np.array([0, 4, 4])
    for mode in ("sum", "mean", "max"):
        _check(lambda w: JF.embedding_bag(jitgrad.tensor(idx), w, jitgrad.tensor(off),
                                          mode=mode),
               lambda w: TF.embedding_bag(torch.tensor(idx), w, torch.tensor(off), mode=mode),
               w)
    psw = rn(8)
    _check(lambda w, p: JF.embedding_bag(jitgrad.tensor(idx), w, jitgrad.tensor(off),
                                         mode="sum", per_sample_weights=p),
           lambda w, p: TF.embedding_bag(torch.tensor(idx), w, torch.tensor(off), mode="sum",
                                         per_sample_weights=p), w, psw)
    q, k, v = rn(2, 2, 4, 3), rn(2, 2, 5, 3), rn(2, 2, 5, 3)
    _check(lambda q, k, v: JF.scaled_dot_product_attention(q, k, v, is_causal=True),
           lambda q, k, v: TF.scaled_dot_product_attention(q, k, v, is_causal=True), q, k, v)
    m = rn(4, 5) > 0
    m[:, 0] = True
    _check(lambda q, k, v: JF.scaled_dot_product_attention(q, k, v, jitgrad.tensor(m)),
           lambda q, k, v: TF.scaled_dot_product_attention(q, k, v, torch.tensor(m)), q, k, v)


# ------------------------------------------------------------------------------ nn modules

def _copy_params(jm, tm):
    """torch module's parameters and buffers into the jitgrad twin (same names)."""
    sd = {k: jitgrad.tensor(v.detach().numpy()) for k, v in tm.state_dict().items()}
    jm.load_state_dict(sd)


def _module_check(jm, tm, *arrays, train=True, rtol=1e-9):
    _copy_params(jm, tm)
    jm.train(train)
    tm.train(train)
    j, t = _pair(*arrays)
    jo, to = jm(*j), tm(*t)
    np.testing.assert_allclose(_np(jo), _np(to), rtol=rtol, atol=1e-10)
    c = np.random.default_rng(5).standard_normal(tuple(to.shape))
    (jo * jitgrad.tensor(c)).sum().backward()
    (to * torch.tensor(c)).sum().backward()
    for (n, p), (_, q) in zip(jm.named_parameters(), tm.named_parameters()):
        np.testing.assert_allclose(_np(p.grad), _np(q.grad), rtol=rtol, atol=1e-10, err_msg=n)
    for a, b in zip(j, t):
        np.testing.assert_allclose(_np(a.grad), _np(b.grad), rtol=rtol, atol=1e-10)
    for (n, b1), (_, b2) in zip(jm.named_buffers(), tm.named_buffers()):
        np.testing.assert_allclose(_np(b1), _np(b2), rtol=1e-9, err_msg=n)


@pytest.mark.parametrize("make", [
    lambda nn: nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2, dtype=jt(nn)),
    lambda nn: nn.Conv2d(4, 2, (3, 2), padding="same", padding_mode="reflect", dtype=jt(nn)),
    lambda nn: nn.Conv1d(4, 3, 3, padding=2, padding_mode="circular", bias=False, dtype=jt(nn)),
    lambda nn: nn.ConvTranspose2d(4, 2, 3, stride=2, padding=1, output_padding=1, dtype=jt(nn)),
])
def test_conv_modules(make):
    jm, tm = make(jitgrad.nn), make(torch.nn)
    x = rn(2, 4, 5, 6) if isinstance(tm, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)) else \
        rn(2, 4, 7)
    _module_check(jm, tm, x)


def jt(nn):
    return jitgrad.float64 if nn is jitgrad.nn else torch.float64


def test_small_cnn_train_step():
    """A small CNN (conv, batchnorm, pooling, upsample, activations, p=0 dropout) against
    torch: outputs, every parameter's gradient and the batchnorm running stats."""
    def net(nn):
        return nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.Hardswish(), nn.MaxPool2d(2),
            nn.Conv2d(8, 8, 3, padding=1, groups=2), nn.GroupNorm(2, 8), nn.Mish(),
            nn.Upsample(scale_factor=2, mode="bilinear"), nn.AvgPool2d(2), nn.Dropout2d(0.0),
            nn.AdaptiveAvgPool2d((2, 1)), nn.Flatten(), nn.Linear(16, 5)).double()
    jm, tm = net(jitgrad.nn), net(torch.nn)
    x = rn(4, 3, 8, 8)
    _module_check(jm, tm, x, rtol=1e-8)


def test_module_reprs_and_init():
    for name, args, kw in [("Conv2d", (3, 8, 3), dict(padding=1, dilation=2)),
                           ("ConvTranspose1d", (3, 2, 4), dict(stride=2)),
                           ("MaxPool2d", (3,), dict(stride=1)), ("AvgPool1d", (2,), {}),
                           ("AdaptiveAvgPool2d", ((2, 3),), {}), ("Upsample", (), dict(size=4)),
                           ("PixelShuffle", (2,), {}), ("GroupNorm", (2, 4), {}),
                           ("InstanceNorm1d", (3,), {}), ("Hardtanh", (-2.0, 2.0), {}),
                           ("PReLU", (3,), {}), ("Softmin", (1,), {}), ("GLU", (), {}),
                           ("KLDivLoss", (), dict(reduction="batchmean")),
                           ("ReflectionPad2d", (1,), {}), ("ConstantPad1d", (2, 3.5), {}),
                           ("ZeroPad2d", ((1, 0, 2, 1),), {}), ("Unfold", (2,), {}),
                           ("LocalResponseNorm", (3,), {}), ("Dropout2d", (0.2,), {})]:
        assert repr(getattr(jitgrad.nn, name)(*args, **kw)) == \
            repr(getattr(torch.nn, name)(*args, **kw)), name
    jitgrad.manual_seed(0)
    w = jitgrad.nn.Conv2d(16, 32, 3).weight.detach().numpy()
    bound = 1 / np.sqrt(16 * 9)
    assert w.shape == (32, 16, 3, 3) and np.abs(w).max() <= bound and w.std() > 0.5 * bound / \
        np.sqrt(3)


def test_loss_and_activation_modules():
    x, y = rn(3, 4), rn(3, 4)
    t = np.abs(y)
    for name, kw in [("KLDivLoss", dict(reduction="batchmean")), ("SoftMarginLoss", {}),
                     ("PoissonNLLLoss", {}), ("MultiLabelSoftMarginLoss", {})]:
        _check(lambda a: getattr(jitgrad.nn, name)(**kw)(a, jitgrad.tensor(t)),
               lambda a: getattr(torch.nn, name)(**kw)(a, torch.tensor(t)), x)
    _check(lambda a, b, c: jitgrad.nn.TripletMarginLoss(margin=0.5)(a, b, c),
           lambda a, b, c: torch.nn.TripletMarginLoss(margin=0.5)(a, b, c), x, y, rn(3, 4))
    for name in ("ReLU6", "SELU", "CELU", "LogSigmoid", "Softsign", "Tanhshrink", "Hardsigmoid"):
        _check(lambda a: getattr(jitgrad.nn, name)()(a), lambda a: getattr(torch.nn, name)()(a),
               x * 3, rtol=1e-7)
    _module_check(jitgrad.nn.PReLU(4, dtype=jitgrad.float64),
                  torch.nn.PReLU(4, dtype=torch.float64), rn(2, 4, 3))


def test_windows_on_cuda_match_cpu():
    """GPU tensors (Numba's simulator without a GPU) take the composite gather path (sentinel
    slot + getitem, index_backward for the gradient): conv2d and max_pool2d give the CPU's
    values and gradients. (Small: each simulated launch costs ~0.1 s.)"""
    if not jitgrad.cuda.is_available():
        pytest.skip("no GPU and no CUDA simulator")
    x, w = rn(1, 2, 4, 4), rn(2, 2, 3, 3)

    def run(dev):
        ts = [jitgrad.tensor(a) for a in (x, w)]
        ts = [(t.cuda() if dev == "cuda" else t).requires_grad_(True) for t in ts]
        y = JF.conv2d(ts[0], ts[1], padding=1, stride=2)
        loss = (JF.max_pool2d(y, 2, 1, padding=1) * y.sum()).sum()
        loss.backward()
        return [loss.detach().cpu().numpy()] + [t.grad.cpu().numpy() for t in ts]
    for a, b_ in zip(run("cpu"), run("cuda")):
        np.testing.assert_allclose(a, b_, rtol=1e-10, atol=1e-10)


def test_window_records_jacobians():
    """jacrev / jacfwd through the im2col / col2im records (batched VJP and JVP) vs torch."""
    x, w = rn(1, 2, 4, 3), rn(3, 2, 2, 2)
    wj, wt = jitgrad.tensor(w), torch.tensor(w)

    def jf(x):
        return JF.max_pool2d(JF.conv2d(x, wj, padding=1), 2, 1) + JF.fold(
            JF.unfold(x, 2), (4, 3), 2).sum()

    def tf(x):
        return TF.max_pool2d(TF.conv2d(x, wt, padding=1), 2, 1) + TF.fold(
            TF.unfold(x, 2), (4, 3), 2).sum()
    want = torch.func.jacrev(tf)(torch.tensor(x)).numpy()
    np.testing.assert_allclose(jitgrad.func.jacrev(jf)(jitgrad.tensor(x)).numpy(), want,
                               rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(jitgrad.func.jacfwd(jf)(jitgrad.tensor(x)).numpy(), want,
                               rtol=1e-10, atol=1e-12)
