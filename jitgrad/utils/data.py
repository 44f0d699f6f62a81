"""jitgrad.utils.data: Dataset, TensorDataset, Subset, random_split, DataLoader, default_collate.

The DataLoader runs in the calling process (``num_workers`` is accepted and ignored: the data
are in memory). Over a TensorDataset with the default collate a batch is one gather per tensor
(``t[indices]``), not a stack of per-sample slices. Shuffling draws a permutation from
``generator`` or, without one, from jitgrad's default generator (``jitgrad.manual_seed``
makes the order reproducible)."""
from __future__ import annotations

import math
import numbers

import numpy as np

from ..creation import _gen
from ..functional_ops import stack
from .._tensor import Tensor, tensor


class Dataset:
    """Map-style dataset: ``__getitem__(index)`` and ``__len__``."""

    def __getitem__(self, index):
        raise NotImplementedError("Subclasses of Dataset should implement __getitem__.")

    def __add__(self, other):
        return ConcatDataset([self, other])


class TensorDataset(Dataset):
    """Samples are ``tuple(t[i] for t in tensors)``; every tensor has the same first dim."""

    def __init__(self, *tensors):
        if not tensors:
            raise ValueError("TensorDataset needs at least one tensor")
        for t in tensors:
            if not isinstance(t, Tensor):
                raise TypeError(f"TensorDataset expects jitgrad Tensors, got "
                                f"{type(t).__name__}")
        n = tensors[0].shape[0] if tensors[0].dim() else None
        if any(t.dim() == 0 or t.shape[0] != n for t in tensors):
            raise ValueError("Size mismatch between tensors: first dims "
                             f"{[list(t.shape[:1]) for t in tensors]}")
        self.tensors = tensors

    def __getitem__(self, index):
        return tuple(t[index] for t in self.tensors)

    def __len__(self):
        return self.tensors[0].shape[0]


class ConcatDataset(Dataset):
    def __init__(self, datasets):
        self.datasets = list(datasets)
        self.cumulative_sizes = list(np.cumsum([len(d) for d in self.datasets]))

    def __len__(self):
        return int(self.cumulative_sizes[-1]) if self.cumulative_sizes else 0

    def __getitem__(self, idx):
        if idx < 0:
            if -idx > len(self):
                raise ValueError("absolute value of index should not exceed dataset length")
            idx += len(self)
        k = int(np.searchsorted(self.cumulative_sizes, idx, side="right"))
        start = 0 if k == 0 else int(self.cumulative_sizes[k - 1])
        return self.datasets[k][idx - start]


class Subset(Dataset):
    def __init__(self, dataset, indices):
        self.dataset = dataset
        self.indices = list(indices)

    def __getitem__(self, idx):
        if isinstance(idx, list):
            return self.dataset[[self.indices[i] for i in idx]]
        return self.dataset[self.indices[idx]]

    def __len__(self):
        return len(self.indices)


def random_split(dataset, lengths, generator=None):
    """Split into non-overlapping Subsets of the given lengths (or fractions summing to 1)."""
    n = len(dataset)
    if math.isclose(sum(lengths), 1) and sum(lengths) <= 1:
        sizes = [int(math.floor(n * f)) for f in lengths]
        for i in range(n - sum(sizes)):
            sizes[i % len(sizes)] += 1
        lengths = sizes
    if sum(lengths) != n:
        raise ValueError("Sum of input lengths does not equal the length of the input dataset!")
    perm = _gen(generator)._draw("permutation", n).tolist()
    out, off = [], 0
    for ln in lengths:
        out.append(Subset(dataset, perm[off:off + ln]))
        off += ln
    return out


def default_collate(batch):
    """Stack a list of samples into a batch, structure-wise like torch: tensors are stacked,
    numbers become a tensor, tuples/lists/dicts are collated per position/key, strings stay a
    list."""
    elem = batch[0]
    if isinstance(elem, Tensor):
        return stack(list(batch), 0)
    if isinstance(elem, np.ndarray):
        return tensor(np.stack(batch))
    if isinstance(elem, (bool, np.bool_)):
        return tensor(batch)
    if isinstance(elem, numbers.Integral):
        return tensor(np.asarray(batch, np.int64))
    if isinstance(elem, numbers.Real):
        return tensor(np.asarray(batch, np.float64))
    if isinstance(elem, str):
        return list(batch)
    if isinstance(elem, dict):
        return type(elem)((k, default_collate([d[k] for d in batch])) for k in elem)
    if isinstance(elem, tuple) and hasattr(elem, "_fields"):  # namedtuple
        return type(elem)(*(default_collate(list(s)) for s in zip(*batch)))
    if isinstance(elem, (tuple, list)):
        if any(len(s) != len(elem) for s in batch):
            raise RuntimeError("each element in list of batch should be of equal size")
        cols = [default_collate(list(s)) for s in zip(*batch)]
        return tuple(cols) if isinstance(elem, tuple) else cols
    raise TypeError(f"default_collate: batch must contain tensors, numpy arrays, numbers, "
                    f"dicts or lists; found {type(elem).__name__}")


class DataLoader:
    """Batches of a map-style dataset: ``batch_size`` (None: samples one by one), ``shuffle``
    (a new permutation each epoch from ``generator`` or the default generator), ``drop_last``,
    ``collate_fn``, ``sampler``/``batch_sampler`` (iterables of indices / index lists)."""

    def __init__(self, dataset, batch_size=1, shuffle=None, sampler=None, batch_sampler=None,
                 num_workers=0, collate_fn=None, pin_memory=False, drop_last=False, timeout=0,
                 worker_init_fn=None, generator=None, **kwargs):
        if batch_sampler is not None and (batch_size != 1 or shuffle or sampler is not None
                                          or drop_last):
            raise ValueError("batch_sampler option is mutually exclusive with batch_size, "
                             "shuffle, sampler, and drop_last")
        if sampler is not None and shuffle:
            raise ValueError("sampler option is mutually exclusive with shuffle")
        if batch_size is not None and (not isinstance(batch_size, int) or batch_size <= 0):
            raise ValueError(f"batch_size should be a positive integer value, but got "
                             f"batch_size={batch_size}")
        if batch_size is None and drop_last:
            raise ValueError("batch_size=None option disables auto-batching and is mutually "
                             "exclusive with drop_last")
        self.dataset = dataset
        self.batch_size = batch_size
        self.shuffle = bool(shuffle)
        self.sampler = sampler
        self.batch_sampler = batch_sampler
        self.num_workers = num_workers
        self.collate_fn = collate_fn
        self.drop_last = drop_last
        self.generator = generator
        _gen(generator)  # (a wrong type raises now, not at the first epoch)

    def _indices(self):
        n = len(self.dataset)
        if self.sampler is not None:
            return list(self.sampler)
        if self.shuffle:
            return _gen(self.generator)._draw("permutation", n)
        return np.arange(n)

    def _batches(self):
        if self.batch_sampler is not None:
            yield from self.batch_sampler
            return
        idx = self._indices()
        bs = self.batch_size
        n = len(idx)
        stop = n - n % bs if self.drop_last else n
        for s in range(0, stop, bs):
            yield idx[s:s + bs]

    def __iter__(self):
        ds = self.dataset
        if self.batch_size is None and self.batch_sampler is None:
            conv = self.collate_fn or (lambda x: x)
            for i in self._indices():
                yield conv(ds[int(i)])
            return
        fast = isinstance(ds, TensorDataset) and self.collate_fn is None
        for b in self._batches():
            if fast:  # one gather per tensor
                it = tensor(np.asarray(b, np.int64))
                yield tuple(t[it] for t in ds.tensors)
            else:
                samples = [ds[int(i)] for i in b]
                yield (self.collate_fn or default_collate)(samples)

    def __len__(self):
        if self.batch_sampler is not None:
            return len(self.batch_sampler)
        n = len(self.sampler) if self.sampler is not None else len(self.dataset)
        if self.batch_size is None:
            return n
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)


__all__ = ["Dataset", "TensorDataset", "ConcatDataset", "Subset", "random_split",
           "default_collate", "DataLoader"]
