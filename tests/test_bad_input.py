"""Bad input raises a Python exception whose message names the shapes / dtypes / op involved."""
import re

import numpy as np
import pytest

import jitgrad
import jitgrad.nn.functional as JF


def shape_re(*shape):
    """Matches a shape written as (2, 3), [2, 3] or 2x3."""
    inner = r",\s*".join(str(s) for s in shape)
    alts = [r"\(" + inner + (r",?" if len(shape) == 1 else "") + r"\)", r"\[" + inner + r"\]"]
    if len(shape) > 1:
        alts.append(r"\b" + "x".join(str(s) for s in shape) + r"\b")
    return "(" + "|".join(alts) + ")"


def assert_mentions_shapes(msg, *shapes):
    for s in shapes:
        assert re.search(shape_re(*s), msg), f"{s} not in: {msg}"


def x23(rg=False):
    return jitgrad.ones(2, 3, requires_grad=rg)


# --- broadcasting -----------------------------------------------------------------------------

@pytest.mark.parametrize("op", ["add", "mul", "sub", "div", "maximum", "where", "iadd"])
def test_incompatible_broadcast(op):
    a, b = x23(), jitgrad.ones(4)
    f = {"add": lambda: a + b, "mul": lambda: a * b, "sub": lambda: jitgrad.sub(a, b),
         "div": lambda: a / b, "maximum": lambda: jitgrad.maximum(a, b),
         "where": lambda: jitgrad.where(a > 0, a, b), "iadd": lambda: a.add_(b)}[op]
    with pytest.raises(RuntimeError) as ei:
        f()
    assert_mentions_shapes(str(ei.value), (2, 3), (4,))
    np.testing.assert_array_equal(a.numpy(), np.ones((2, 3)))  # untouched


def test_inplace_result_shape_mismatch():
    a = jitgrad.ones(3)
    with pytest.raises(RuntimeError) as ei:
        a.mul_(jitgrad.ones(2, 3))
    assert_mentions_shapes(str(ei.value), (3,), (2, 3))


def test_expand_bad_size():
    with pytest.raises(RuntimeError) as ei:
        jitgrad.ones(2, 3).expand(2, 4)
    assert_mentions_shapes(str(ei.value), (2, 4), (2, 3))


# --- matmul -----------------------------------------------------------------------------------

@pytest.mark.parametrize("sa, sb", [((2, 3), (4, 5)), ((2, 3), (4,)), ((3,), (4, 5)),
                                    ((2, 2, 3), (2, 4, 5)), ((3,), (4,))])
def test_matmul_inner_dimension_mismatch(sa, sb):
    with pytest.raises(RuntimeError) as ei:
        jitgrad.ones(*sa) @ jitgrad.ones(*sb)
    msg = str(ei.value)
    assert "3" in msg and "4" in msg
    if len(sa) == 2 and len(sb) == 2:
        assert_mentions_shapes(msg, sa, sb)


def test_matmul_batch_broadcast_mismatch():
    with pytest.raises(RuntimeError) as ei:
        jitgrad.ones(2, 3, 4) @ jitgrad.ones(3, 4, 5)
    assert re.search(r"\b2\b", str(ei.value)) and re.search(r"\b3\b", str(ei.value))


def test_matmul_dtype_mismatch_and_0d():
    with pytest.raises(RuntimeError, match="float32.*float64|float64.*float32"):
        jitgrad.ones(2, 2) @ jitgrad.ones(2, 2, dtype=jitgrad.float64)
    with pytest.raises(RuntimeError, match="1D"):
        jitgrad.tensor(2.0) @ jitgrad.ones(2)


def test_mm_bmm_dot_wrong_rank():
    with pytest.raises(RuntimeError, match="2D"):
        jitgrad.mm(jitgrad.ones(2, 2, 2), jitgrad.ones(2, 2))
    with pytest.raises(RuntimeError, match="3D"):
        jitgrad.bmm(jitgrad.ones(2, 2), jitgrad.ones(2, 2))
    with pytest.raises(RuntimeError, match="1D"):
        jitgrad.dot(jitgrad.ones(2, 2), jitgrad.ones(2))


# --- reshape / view ---------------------------------------------------------------------------

@pytest.mark.parametrize("f, shape", [
    (lambda x: x.reshape(4, 2), (4, 2)), (lambda x: x.view(5), (5,)),
    (lambda x: x.reshape(-1, 4), (-1, 4)), (lambda x: x.view(7, -1), (7, -1)),
])
def test_bad_reshape(f, shape):
    with pytest.raises(RuntimeError) as ei:
        f(x23())
    msg = str(ei.value)
    assert_mentions_shapes(msg, shape)
    assert "6" in msg  # the input's number of elements


def test_view_of_non_contiguous_mentions_shape():
    with pytest.raises(RuntimeError) as ei:
        jitgrad.ones(2, 3).t().view(6)
    assert "reshape" in str(ei.value)
    assert_mentions_shapes(str(ei.value), (3, 2))


def test_two_inferred_dims():
    with pytest.raises(RuntimeError, match="only one dimension can be inferred"):
        x23().reshape(-1, -1)


# --- indexing ---------------------------------------------------------------------------------

@pytest.mark.parametrize("idx", [5, -3, (0, 3), (1, -4), (0, 0, 0)])
def test_int_index_out_of_range(idx):
    with pytest.raises(IndexError) as ei:
        x23()[idx]
    assert_mentions_shapes(str(ei.value), (2, 3))


@pytest.mark.parametrize("idx", [[0, 4], [-3], "tensor", "tensor2d"])
def test_index_tensor_out_of_range(idx):
    if idx == "tensor":
        idx = jitgrad.tensor([0, 1, 2])
    elif idx == "tensor2d":
        idx = (slice(None), jitgrad.tensor([[0], [3]]))
    with pytest.raises(IndexError) as ei:
        x23()[idx]
    assert_mentions_shapes(str(ei.value), (2, 3))


def test_setitem_out_of_range_leaves_tensor_untouched():
    x = jitgrad.zeros(2, 3)
    with pytest.raises(IndexError) as ei:
        x[jitgrad.tensor([0, 7])] = 1.0
    assert_mentions_shapes(str(ei.value), (2, 3))
    with pytest.raises(IndexError):
        x[2] = 1.0
    np.testing.assert_array_equal(x.numpy(), np.zeros((2, 3)))


def test_setitem_value_shape_mismatch():
    x = jitgrad.zeros(2, 3)
    with pytest.raises(RuntimeError) as ei:
        x[0] = jitgrad.ones(4)
    assert_mentions_shapes(str(ei.value), (4,), (3,))


def test_bool_mask_wrong_shape():
    with pytest.raises(IndexError) as ei:
        x23()[jitgrad.tensor([True, False, True])]
    assert_mentions_shapes(str(ei.value), (2, 3))


def test_float_index_tensor():
    with pytest.raises(IndexError) as ei:
        x23()[jitgrad.tensor([0.0, 1.0])]
    assert "float32" in str(ei.value)


def test_index_backward_out_of_range_not_silent():
    x = jitgrad.ones(3, requires_grad=True)
    with pytest.raises(IndexError):
        x[jitgrad.tensor([3])]
    assert x.grad is None


# --- dims -------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, f", [
    ("sum", lambda x: x.sum(dim=2)), ("sum_neg", lambda x: x.sum(-3)),
    ("mean", lambda x: x.mean(dim=5)), ("max", lambda x: x.max(dim=2)),
    ("argmax", lambda x: x.argmax(dim=-3)), ("softmax", lambda x: x.softmax(dim=2)),
    ("log_softmax", lambda x: jitgrad.log_softmax(x, dim=-3)),
    ("logsumexp", lambda x: x.logsumexp(dim=3)), ("var", lambda x: x.var(dim=2)),
    ("squeeze", lambda x: x.squeeze(2)), ("unsqueeze", lambda x: x.unsqueeze(4)),
    ("transpose", lambda x: x.transpose(0, 2)), ("permute", lambda x: x.permute(0, 2)),
    ("cat", lambda x: jitgrad.cat([x, x], dim=2)), ("stack", lambda x: jitgrad.stack([x], 4)),
    ("size", lambda x: x.size(2)), ("flatten", lambda x: x.flatten(0, 3)),
    ("split", lambda x: x.split(1, dim=2)), ("chunk", lambda x: x.chunk(2, dim=-3)),
])
def test_bad_dim(name, f):
    with pytest.raises(IndexError) as ei:
        f(x23())
    msg = str(ei.value)
    assert "range" in msg and re.search(r"-?\d", msg)
    assert "[-2, 1]" in msg or "[-3, 2]" in msg


def test_permute_wrong_length_and_duplicates():
    with pytest.raises(RuntimeError, match="2"):
        x23().permute(0, 1, 2)
    with pytest.raises(RuntimeError, match="duplicate"):
        x23().permute(1, 1)


def test_cat_stack_shape_mismatch():
    with pytest.raises(RuntimeError) as ei:
        jitgrad.cat([x23(), jitgrad.ones(2, 4)], dim=0)
    assert_mentions_shapes(str(ei.value), (2, 3), (2, 4))
    with pytest.raises(RuntimeError) as ei:
        jitgrad.stack([x23(), jitgrad.ones(3, 2)])
    assert_mentions_shapes(str(ei.value), (2, 3), (3, 2))


# --- autograd ---------------------------------------------------------------------------------

def test_backward_non_scalar_without_gradient():
    x = x23(rg=True)
    with pytest.raises(RuntimeError) as ei:
        (x * 2).backward()
    msg = str(ei.value)
    assert "scalar" in msg
    assert_mentions_shapes(msg, (2, 3))
    assert x.grad is None


@pytest.mark.parametrize("gshape", [(3, 2), (6,), (2, 3, 1), ()])
def test_backward_gradient_wrong_shape(gshape):
    x = x23(rg=True)
    with pytest.raises(RuntimeError) as ei:
        (x * 2).backward(jitgrad.ones(*gshape))
    assert_mentions_shapes(str(ei.value), (2, 3))
    assert "shape" in str(ei.value).lower()
    assert x.grad is None


def test_autograd_grad_outputs_wrong_shape():
    x = x23(rg=True)
    with pytest.raises(RuntimeError) as ei:
        jitgrad.autograd.grad(x * 2, x, grad_outputs=jitgrad.ones(3))
    assert_mentions_shapes(str(ei.value), (3,), (2, 3))


@pytest.mark.parametrize("dtype", ["int64", "int32", "bool"])
def test_requires_grad_on_integer_tensor(dtype):
    dt = getattr(jitgrad, dtype)
    for f in (lambda: jitgrad.tensor([1, 2], dtype=dt, requires_grad=True),
              lambda: jitgrad.zeros(2, dtype=dt, requires_grad=True),
              lambda: jitgrad.ones(2, dtype=dt).requires_grad_(),
              lambda: jitgrad.arange(3, dtype=dt if dtype != "bool" else jitgrad.int64,
                                     requires_grad=True)):
        with pytest.raises(RuntimeError) as ei:
            f()
        assert "floating point" in str(ei.value)
        assert "int" in str(ei.value) or "bool" in str(ei.value)


def test_backward_through_freed_graph():
    x = x23(rg=True)
    y = (x.exp() * x).sum()
    y.backward()
    g = x.grad.numpy().copy()
    with pytest.raises(RuntimeError) as ei:
        y.backward()
    assert "retain_graph=True" in str(ei.value) and "second time" in str(ei.value)
    np.testing.assert_array_equal(x.grad.numpy(), g)


def test_backward_after_inplace_change_of_saved_tensor():
    x = x23(rg=True)
    y = x.sigmoid()
    z = y * 3
    y.mul_(2)
    with pytest.raises(RuntimeError) as ei:
        z.sum().backward()
    msg = str(ei.value)
    assert "inplace" in msg and "version" in msg
    assert_mentions_shapes(msg, (2, 3))
    assert "float32" in msg
    assert "SigmoidBackward0" in msg


def test_inplace_on_leaf_requiring_grad():
    x = x23(rg=True)
    with pytest.raises(RuntimeError, match="leaf Variable.*in-place.*mul_"):
        x.mul_(2)


def test_requires_grad_false_on_non_leaf():
    y = x23(rg=True) * 2
    with pytest.raises(RuntimeError, match="leaf"):
        y.requires_grad_(False)


def test_numpy_on_requires_grad():
    with pytest.raises(RuntimeError, match="detach"):
        x23(rg=True).numpy()


def test_item_on_multi_element():
    with pytest.raises(RuntimeError, match="6 elements"):
        x23().item()
    with pytest.raises(RuntimeError, match="ambiguous"):
        bool(x23())


# --- creation / dtypes / devices --------------------------------------------------------------

def test_bad_creation_inputs():
    with pytest.raises((TypeError, ValueError)):  # torch: ValueError
        jitgrad.tensor([[1, 2], [3]])
    with pytest.raises(TypeError):
        jitgrad.tensor("abc")
    with pytest.raises(TypeError, match="float16|dtype"):
        jitgrad.tensor([1.0], dtype="float16")
    with pytest.raises(RuntimeError, match="-2"):
        jitgrad.zeros(2, -2)
    with pytest.raises(TypeError, match="complex|dtype"):
        jitgrad.from_numpy(np.zeros(2, np.complex64))


def test_unknown_device_clear_error():
    with pytest.raises(RuntimeError, match="unknown device"):
        jitgrad.zeros(2, device="tpu")


@pytest.mark.cuda
def test_mixed_devices_clear_error():
    if not jitgrad.cuda.is_available():
        pytest.skip("numba.cuda is not available (no GPU and NUMBA_ENABLE_CUDASIM unset)")
    a = jitgrad.tensor([1.0, 2.0, 3.0], device="cuda")
    b = jitgrad.tensor([1.0, 2.0, 3.0])
    with pytest.raises(RuntimeError, match="same device.*cuda:0 and cpu"):
        a + b
    with pytest.raises(RuntimeError, match="same device"):
        jitgrad.matmul(a.reshape(1, 3), b.reshape(3, 1))
    with pytest.raises(TypeError, match=r"cpu\(\)"):
        a.numpy()
    assert (a + jitgrad.tensor(2.0)).device == a.device  # a 0-d CPU tensor may join (torch)


def test_setitem_float_into_int_tensor():
    x = jitgrad.zeros(3, dtype=jitgrad.int64)
    with pytest.raises(RuntimeError) as ei:
        x[0] = jitgrad.tensor(1.5)
    assert "int64" in str(ei.value) and "float32" in str(ei.value)


def test_inplace_result_cannot_cast():
    x = jitgrad.zeros(3, dtype=jitgrad.int64)
    with pytest.raises(RuntimeError) as ei:
        x.add_(1.5)
    assert "int64" in str(ei.value) and "float" in str(ei.value)
    np.testing.assert_array_equal(x.numpy(), [0, 0, 0])


def test_write_into_expanded_view():
    e = jitgrad.ones(1, 3).expand(2, 3)
    with pytest.raises(RuntimeError, match="expand|broadcast"):
        e[0, 0] = 5.0


# --- nn.functional ----------------------------------------------------------------------------

def test_loss_shape_mismatch():
    for f in (JF.mse_loss, JF.binary_cross_entropy_with_logits, JF.binary_cross_entropy):
        with pytest.raises(ValueError) as ei:
            f(jitgrad.full((2, 3), 0.5), jitgrad.full((3, 2), 0.5))
        assert_mentions_shapes(str(ei.value), (2, 3), (3, 2))


def test_bad_reduction():
    with pytest.raises(ValueError, match="avg"):
        JF.mse_loss(jitgrad.ones(2), jitgrad.ones(2), reduction="avg")


def test_cross_entropy_bad_targets():
    logits = jitgrad.zeros(2, 3)
    with pytest.raises(IndexError, match="3"):
        JF.cross_entropy(logits, jitgrad.tensor([0, 3]))
    with pytest.raises(ValueError) as ei:
        JF.cross_entropy(logits, jitgrad.tensor([0, 1, 2]))
    assert_mentions_shapes(str(ei.value), (2, 3), (3,))
    with pytest.raises(RuntimeError, match="float"):
        JF.nll_loss(logits, jitgrad.tensor([0.0, 1.0]))


def test_linear_shape_mismatch():
    with pytest.raises(RuntimeError) as ei:
        JF.linear(jitgrad.ones(4, 3), jitgrad.ones(2, 5))
    assert_mentions_shapes(str(ei.value), (4, 3), (5, 2))


# --- bad input that is silently accepted (torch raises) -----------------------------------------

@pytest.mark.parametrize("name", ["sum", "mean", "prod", "var", "logsumexp", "softmax", "squeeze",
                                  "flatten", "transpose"])
def test_bad_dim_on_0d_tensor(name):
    x = jitgrad.tensor(3.0)
    f = {"sum": lambda: x.sum(dim=1), "mean": lambda: x.mean(dim=-2),
         "prod": lambda: x.prod(dim=2), "var": lambda: x.var(dim=2),
         "logsumexp": lambda: x.logsumexp(dim=2), "softmax": lambda: x.softmax(dim=2),
         "squeeze": lambda: x.squeeze(2), "flatten": lambda: x.flatten(0, 2),
         "transpose": lambda: x.transpose(0, 3)}[name]
    with pytest.raises(IndexError, match=r"\[-1, 0\]"):
        f()


def test_bad_dim_on_0d_tensor_that_works():
    x = jitgrad.tensor(3.0)
    for f in (lambda: x.argmax(dim=2), lambda: x.unsqueeze(2), lambda: x.max(dim=1)):
        with pytest.raises(IndexError, match=r"\[-1, 0\]"):
            f()
    assert x.sum(dim=0).item() == 3.0 and x.sum(dim=-1).item() == 3.0


def test_view_with_float_size():
    with pytest.raises(TypeError):
        jitgrad.ones(6).view(2.5, 2)


def test_negate_bool_tensor():
    with pytest.raises(RuntimeError):
        -jitgrad.tensor([True, False])


def test_integer_negative_power():
    with pytest.raises(RuntimeError):
        jitgrad.tensor([2, 3]) ** -1


def test_integer_overflow_in_tensor_data():
    with pytest.raises((OverflowError, ValueError, RuntimeError)):
        jitgrad.tensor([2 ** 63])
