"""jitgrad.utils.data: TensorDataset and DataLoader batching (sizes, drop_last, order), seeded
shuffling (jitgrad.manual_seed and generator=), default collate of tuples/dicts/numbers, and
Subset/random_split."""
from __future__ import annotations

import numpy as np
import pytest

import jitgrad
from jitgrad.utils.data import (DataLoader, Dataset, Subset, TensorDataset, default_collate,
                                random_split)


def _ds(n=10):
    x = jitgrad.arange(n * 2, dtype=jitgrad.float32).reshape(n, 2)
    y = jitgrad.arange(n)
    return TensorDataset(x, y), x, y


def test_tensor_dataset():
    ds, x, y = _ds()
    assert len(ds) == 10
    a, b = ds[3]
    np.testing.assert_array_equal(a.numpy(), [6, 7]) and b.item() == 3
    with pytest.raises(ValueError, match="Size mismatch"):
        TensorDataset(jitgrad.zeros(3), jitgrad.zeros(4))


@pytest.mark.parametrize("bs,drop,sizes", [(4, False, [4, 4, 2]), (4, True, [4, 4]),
                                           (10, False, [10]), (3, True, [3, 3, 3])])
def test_batches_in_order(bs, drop, sizes):
    ds, x, y = _ds()
    dl = DataLoader(ds, batch_size=bs, drop_last=drop)
    batches = list(dl)
    assert len(dl) == len(sizes) == len(batches)
    assert [b[1].shape[0] for b in batches] == sizes
    ys = np.concatenate([b[1].numpy() for b in batches])
    np.testing.assert_array_equal(ys, np.arange(sum(sizes)))
    for bx, by in batches:
        np.testing.assert_array_equal(bx.numpy(), x.numpy()[by.numpy()])
        assert bx.dtype == jitgrad.float32 and by.dtype == jitgrad.int64


def test_shuffle_is_a_seeded_permutation_per_epoch():
    ds, x, y = _ds(12)
    dl = DataLoader(ds, batch_size=5, shuffle=True)
    jitgrad.manual_seed(0)
    e1 = np.concatenate([b[1].numpy() for b in dl])
    e2 = np.concatenate([b[1].numpy() for b in dl])
    assert sorted(e1) == list(range(12)) and sorted(e2) == list(range(12))
    assert not np.array_equal(e1, e2)  # a new order each epoch
    jitgrad.manual_seed(0)
    np.testing.assert_array_equal(np.concatenate([b[1].numpy() for b in dl]), e1)
    g = jitgrad.Generator().manual_seed(3)
    dg = DataLoader(ds, batch_size=4, shuffle=True, generator=g)
    a = np.concatenate([b[1].numpy() for b in dg])
    g.manual_seed(3)
    jitgrad.manual_seed(123)  # the global seed does not matter with generator=
    np.testing.assert_array_equal(np.concatenate([b[1].numpy() for b in dg]), a)
    for bx, by in dg:
        np.testing.assert_array_equal(bx.numpy(), x.numpy()[by.numpy()])


class Pairs(Dataset):
    def __len__(self):
        return 5

    def __getitem__(self, i):
        return {"x": jitgrad.full((2,), float(i)), "i": i, "name": f"n{i}"}, float(i) / 2


def test_default_collate_generic_dataset_and_collate_fn():
    batches = list(DataLoader(Pairs(), batch_size=2))
    assert len(batches) == 3
    d, w = batches[0]
    np.testing.assert_array_equal(d["x"].numpy(), [[0, 0], [1, 1]])
    assert d["i"].dtype == jitgrad.int64 and d["i"].tolist() == [0, 1]
    assert d["name"] == ["n0", "n1"]
    assert w.dtype == jitgrad.float64 and w.tolist() == [0.0, 0.5]
    got = list(DataLoader(Pairs(), batch_size=2, collate_fn=lambda s: len(s)))
    assert got == [2, 2, 1]
    samples = list(DataLoader(Pairs(), batch_size=None))
    assert len(samples) == 5 and samples[4][1] == 2.0
    with pytest.raises(TypeError, match="default_collate"):
        default_collate([object()])


def test_subset_random_split_and_errors():
    ds, x, y = _ds(10)
    a, b = random_split(ds, [7, 3], generator=jitgrad.Generator().manual_seed(0))
    assert isinstance(a, Subset) and len(a) == 7 and len(b) == 3
    assert sorted(a.indices + b.indices) == list(range(10))
    c, d = random_split(ds, [0.5, 0.5])
    assert len(c) == len(d) == 5
    with pytest.raises(ValueError, match="Sum of input lengths"):
        random_split(ds, [3, 3])
    with pytest.raises(ValueError, match="positive integer"):
        DataLoader(ds, batch_size=0)
    with pytest.raises(ValueError, match="mutually exclusive"):
        DataLoader(ds, sampler=[0, 1], shuffle=True)
    with pytest.raises(TypeError, match="generator"):
        DataLoader(ds, shuffle=True, generator=np.random.default_rng())
    got = [b[1].tolist() for b in DataLoader(ds, batch_size=2, sampler=[9, 0, 4])]
    assert got == [[9, 0], [4]]
