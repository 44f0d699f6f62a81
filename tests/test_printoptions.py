"""jitgrad.set_printoptions against torch.set_printoptions: the same reprs for every option."""
import numpy as np
import pytest

import jitgrad

CASES = [dict(precision=2), dict(precision=6), dict(threshold=5), dict(threshold=5, edgeitems=1),
         dict(linewidth=30), dict(profile="short"), dict(profile="full"), dict(sci_mode=True),
         dict(sci_mode=False), dict(precision=1, sci_mode=True)]


@pytest.fixture
def restore(torch):
    yield
    jitgrad.set_printoptions(profile="default")
    torch.set_printoptions(profile="default")


@pytest.mark.parametrize("opts", CASES, ids=lambda d: "-".join(f"{k}={v}" for k, v in d.items()))
def test_repr_matches_torch(opts, torch, restore):
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(12).astype(np.float32) * 3,
              rng.standard_normal((4, 5)).astype(np.float64) * 1e-5,
              np.arange(2000, dtype=np.float32).reshape(40, 50) / 7,
              np.arange(10, dtype=np.int64)]
    jitgrad.set_printoptions(**opts)
    torch.set_printoptions(**opts)
    for a in arrays:
        want = repr(torch.tensor(a)).replace("torch.", "jitgrad.")
        assert repr(jitgrad.tensor(a)) == want, (opts, a.shape, a.dtype)


def test_bad_profile(restore):
    with pytest.raises(ValueError, match="profile must be one of"):
        jitgrad.set_printoptions(profile="long")
