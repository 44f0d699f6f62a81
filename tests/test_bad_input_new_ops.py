"""Bad input to this session's new public ops: a clear Python exception where torch raises (never
a silent result), torch's values where torch returns. Regression tests for the findings of the
subprocess audit (torch 2.13 as the reference); most checks raise before any kernel runs."""
import numpy as np
import pytest
import torch

import jitgrad as jg
import jitgrad.nn.functional as F
import torch.nn.functional as TF


def _f32(a):
    return np.asarray(a, np.float32)


def _both(a):
    a = np.asarray(a)
    return jg.tensor(a.copy()), torch.from_numpy(a.copy())


# ------------------------------------------------------------------------------ indexing


def test_take_along_dim_without_dim_rejects_negative_indices():
    x, tx = _both(np.arange(12, dtype=np.float32).reshape(3, 4))
    with pytest.raises(RuntimeError, match="take_along_dim.*index -1 is out of bounds"):
        jg.take_along_dim(x, jg.tensor(np.array([-1])))
    with pytest.raises(RuntimeError):
        torch.take_along_dim(tx, torch.tensor([-1]))
    with pytest.raises(RuntimeError, match="index 12 is out of bounds"):
        jg.take_along_dim(x, jg.tensor(np.array([12])))
    # in range: torch's values; with a dim, negative indices still count from the end (as torch)
    np.testing.assert_array_equal(jg.take_along_dim(x, jg.tensor(np.array([11, 0]))).numpy(),
                                  torch.take_along_dim(tx, torch.tensor([11, 0])).numpy())
    i = np.array([[0, -1]] * 3)
    np.testing.assert_array_equal(jg.take_along_dim(x, jg.tensor(i), 1).numpy(),
                                  torch.take_along_dim(tx, torch.from_numpy(i), 1).numpy())


# ------------------------------------------------------------------------------ creation


def test_random_creation_argument_checks():
    with pytest.raises(TypeError, match="num_samples.*must be int, not float"):
        jg.multinomial(jg.tensor(_f32([0.5, 0.5])), 1.5)
    for t in (np.array([0, 1]), np.array([True, False])):
        with pytest.raises(NotImplementedError, match="bernoulli"):
            jg.bernoulli(jg.tensor(t))
    with pytest.raises(RuntimeError, match="std >= 0.0"):
        jg.normal(0.0, float("nan"), size=(2,))
    with pytest.raises(RuntimeError, match="std >= 0.0"):
        jg.normal(jg.tensor(_f32([0.0])), jg.tensor(_f32([np.nan])))
    with pytest.raises(RuntimeError, match=r"normal: mean of shape \[2\] and std of shape \[3\]"):
        jg.normal(jg.tensor(_f32([0, 1])), jg.tensor(_f32([1, 1, 1])))
    with pytest.raises(RuntimeError, match="negative dimension -1"):
        jg.randperm(-1)
    assert jg.randperm(0).shape == (0,)


def test_shape_creation_argument_checks():
    with pytest.raises(RuntimeError, match="n must be greater or equal to 0, got -1"):
        jg.eye(-1)
    with pytest.raises(RuntimeError, match="m must be greater or equal to 0, got -2"):
        jg.eye(2, -2)
    with pytest.raises(RuntimeError, match="linspace: number of steps must be non-negative"):
        jg.linspace(0, 1, -1)
    with pytest.raises(RuntimeError, match=r"strides=\[-1, 1\]"):
        jg.empty_strided((2, 2), (-1, 1))
    assert jg.empty_strided((2, 3), (3, 1)).shape == (2, 3)


# ------------------------------------------------------------------------------ shape


def test_split_with_negative_sizes_raises():
    x = jg.tensor(np.arange(12, dtype=np.float32).reshape(3, 4))
    for f in (lambda: jg.split_with_sizes(x, (4, -1), 0), lambda: x.split([4, -1]),
              lambda: jg.split(x, [4, -1])):
        with pytest.raises(RuntimeError, match=r"non-negative entries.*\[4, -1\]"):
            f()
    with pytest.raises(RuntimeError):
        torch.split(torch.ones(3, 4), [4, -1])


@pytest.mark.parametrize("f", [lambda M, x: x.repeat(2 ** 31, 2 ** 31),
                               lambda M, x: M.tile(x, (2 ** 40, 2 ** 40)),
                               lambda M, x: M.repeat_interleave(x, 2 ** 62)])
def test_repeats_past_int64_raise_naming_the_op(f):
    x, tx = _both(np.arange(12, dtype=np.float32).reshape(3, 4))
    with pytest.raises(RuntimeError):
        f(torch, tx)
    with pytest.raises(RuntimeError, match=r"(repeat|repeat_interleave): the result of shape"):
        f(jg, x)


# ------------------------------------------------------------------------------ reductions / linalg


def test_var_std_of_integers_raise():
    xi = jg.tensor(np.arange(6).reshape(2, 3))
    for f in (jg.std, jg.var, lambda t: t.std(dim=0), jg.var_mean):
        with pytest.raises(RuntimeError, match="std and var only support floating point"):
            f(xi)
    with pytest.raises(RuntimeError):
        torch.std(torch.arange(6))


def test_linalg_bad_input():
    a, ta = _both(_f32([1.0, 2.0, 3.0]))
    b, tb = _both(np.ones((2, 3), np.float32))
    with pytest.raises(RuntimeError):
        torch.linalg.cross(ta, tb)
    for f in (jg.linalg.cross, lambda u, v: jg.cross(u, v, dim=-1)):
        with pytest.raises(RuntimeError, match=r"same number of dimensions.*\[3\] and \[2, 3\]"):
            f(a, b)
    nan = jg.tensor(_f32([[np.nan, 0.0], [0.0, 1.0]]))
    with pytest.raises(jg.linalg.LinAlgError, match=r"linalg.svd: .*shape \[2, 2\]"):
        jg.linalg.svdvals(nan)
    with pytest.raises(jg.linalg.LinAlgError, match="positive-definite"):
        jg.linalg.cholesky(nan)
    with pytest.raises(torch.linalg.LinAlgError):
        torch.linalg.cholesky(torch.from_numpy(nan.numpy()))
    with pytest.raises(RuntimeError, match=r"linalg.pinv: expected a tensor with 2 or more "
                                           r"dimensions, got shape \[3\]"):
        jg.linalg.pinv(a)


# ------------------------------------------------------------------------------ nn.functional


def test_nn_functional_argument_checks():
    img, timg = _both(np.arange(2 * 3 * 5 * 5, dtype=np.float32).reshape(2, 3, 5, 5) / 10)
    w, tw = _both(np.ones((3, 2, 3, 3), np.float32))
    with pytest.raises(RuntimeError, match="negative padding"):
        TF.conv_transpose2d(timg, tw, padding=-1)
    with pytest.raises(RuntimeError, match=r"conv_transpose2d: negative padding .*\[-1, -1\]"):
        F.conv_transpose2d(img, w, padding=-1)
    with pytest.raises(RuntimeError, match="expected weight to be at least 1 at dimension 0"):
        F.conv2d(img, jg.tensor(np.zeros((0, 3, 3, 3), np.float32)))
    x = jg.tensor(np.arange(12, dtype=np.float32).reshape(3, 4) - 6)
    with pytest.raises(RuntimeError, match="Lower bound should be less than or equal"):
        F.rrelu(x, 0.5, 0.1, training=True)
    with pytest.raises(RuntimeError, match="Lower bound should be less than or equal"):
        F.rrelu(x, 0.5, 0.1)
    with pytest.raises(IndexError, match="Dimension out of range"):
        F.glu(x, 2)
    v, i = jg.tensor(np.ones((1, 1, 2, 2), np.float32)), jg.tensor(np.array([[[[0, 1], [2, 3]]]]))
    with pytest.raises(ValueError, match=r'invalid output_size "\(10, 10\)" \(dim 0 must be '
                                         r'between 2 and 6\)'):
        F.max_unpool2d(v, i, 2, output_size=(10, 10))


def test_conv2d_empty_batch_matches_torch():
    x, tx = _both(np.zeros((0, 3, 5, 5), np.float32))
    w, tw = _both(np.ones((4, 3, 3, 3), np.float32))
    assert tuple(F.conv2d(x, w, padding=1).shape) == tuple(TF.conv2d(tx, tw, padding=1).shape)


# ------------------------------------------------------------------------------ vmap


def test_vmap_losses_range_check_batched_targets():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 4)).astype(np.float32)
    good = np.array([[0, 1, 2], [3, -100, 1]])
    for f, tf in ((F.nll_loss, TF.nll_loss), (F.cross_entropy, TF.cross_entropy)):
        got = jg.vmap(f)(jg.tensor(x), jg.tensor(good)).numpy()
        want = torch.vmap(tf)(torch.from_numpy(x), torch.from_numpy(good)).numpy()
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
        for bad, val in ((np.array([[0, 1, 2], [0, 1, 9]]), 9), (np.array([[0, -1, 2]] * 2), -1)):
            with pytest.raises(RuntimeError):
                torch.vmap(tf)(torch.from_numpy(x), torch.from_numpy(bad))
            with pytest.raises(IndexError, match=f"target {val} is out of bounds for 4 classes"):
                jg.vmap(f)(jg.tensor(x), jg.tensor(bad))
        with pytest.raises(IndexError, match="target 4 is out of bounds"):  # nested vmap
            jg.vmap(jg.vmap(f))(jg.tensor(x[None]), jg.tensor(np.array([[[0, 1, 2], [4, 1, 0]]])))
