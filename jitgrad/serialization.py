"""jitgrad.save / jitgrad.load: tensors, state dicts and nested containers in a safe format.

A file is a ZIP archive (stored, not compressed) holding

* ``jitgrad/manifest.json``: ``{"format": "jitgrad", "version": 1, "root": NODE}``;
* ``jitgrad/tensors/<i>.npy``: one NumPy ``.npy`` array per distinct tensor.

A NODE is a JSON object, by ``"type"``:

=============  ===============================================================================
``none``       ``None``
``bool``       ``{"value": true}``
``int``        ``{"value": 3}`` (any size)
``float``      ``{"value": "0x1.8p+1"}`` (``float.hex``: exact, and inf/nan survive)
``str``        ``{"value": "..."}``
``list``       ``{"items": [NODE, ...]}``; ``tuple`` the same
``dict``       ``{"items": [[KEY_NODE, NODE], ...]}`` (keys may be str, int, float, bool,
               None or tuples of those); ``odict`` the same, loaded as an OrderedDict
``tensor``     ``{"id": i, "requires_grad": b, "parameter": b, "device": "cpu"}``: array
               ``tensors/<i>.npy``; the same tensor object saved twice is one id and loads
               as one object
``dtype``      ``{"value": "float32"}`` (a jitgrad dtype)
=============  ===============================================================================

Loading parses JSON and reads ``.npy`` files with ``allow_pickle=False``: nothing in a file
can run code. Pickle files (torch's format included) are refused with a clear error instead of
being unpickled.
"""
from __future__ import annotations

import io
import json
import os
import pickle
import zipfile
from collections import OrderedDict

import numpy as np

from . import dtypes
from ._tensor import Tensor, device
from .nn import Module
from .nn.parameter import Parameter

FORMAT = "jitgrad"
VERSION = 1
_MANIFEST = "jitgrad/manifest.json"


class _Writer:
    def __init__(self):
        self.arrays: list[np.ndarray] = []
        self.ids: dict[int, int] = {}
        self.keep: list = []  # the tensors seen (so ids are not reused while saving)

    def node(self, obj, path="obj"):
        if obj is None:
            return {"type": "none"}
        if isinstance(obj, (bool, np.bool_)):
            return {"type": "bool", "value": bool(obj)}
        if isinstance(obj, (int, np.integer)):
            return {"type": "int", "value": int(obj)}
        if isinstance(obj, (float, np.floating)):
            return {"type": "float", "value": float(obj).hex()}
        if isinstance(obj, str):
            return {"type": "str", "value": obj}
        if isinstance(obj, Tensor):
            return self.tensor(obj)
        if isinstance(obj, dtypes.DType):
            return {"type": "dtype", "value": obj.name}
        if isinstance(obj, (list, tuple)):
            if type(obj) not in (list, tuple):
                raise TypeError(f"jitgrad.save: cannot store {type(obj).__name__} at {path} "
                                "(plain lists and tuples only)")
            return {"type": type(obj).__name__,
                    "items": [self.node(v, f"{path}[{i}]") for i, v in enumerate(obj)]}
        if isinstance(obj, dict):
            kind = "odict" if isinstance(obj, OrderedDict) else "dict"
            return {"type": kind, "items": [[self.key(k, path), self.node(v, f"{path}[{k!r}]")]
                                            for k, v in obj.items()]}
        hint = ""
        if isinstance(obj, Module):
            hint = "; save module.state_dict() and load it into a new module instead"
        raise TypeError(f"jitgrad.save: cannot store an object of type "
                        f"{type(obj).__module__}.{type(obj).__qualname__} at {path} (tensors, "
                        f"dicts, lists, tuples, str, int, float, bool and None only{hint})")

    def key(self, k, path):
        if isinstance(k, tuple):
            return {"type": "tuple", "items": [self.key(v, path) for v in k]}
        if k is None or isinstance(k, (str, bool, int, float, np.integer, np.floating)):
            return self.node(k)
        raise TypeError(f"jitgrad.save: dict key {k!r} at {path} is a "
                        f"{type(k).__name__}; keys must be str, int, float, bool, None or "
                        "tuples of those")

    def tensor(self, t: Tensor):
        i = self.ids.get(id(t))
        if i is None:
            i = len(self.arrays)
            self.ids[id(t)] = i
            self.keep.append(t)
            self.arrays.append(np.require(t._host, requirements="C"))  # (keeps 0-d)
        return {"type": "tensor", "id": i, "requires_grad": bool(t.requires_grad),
                "parameter": isinstance(t, Parameter), "device": str(t.device)}


def save(obj, f) -> None:
    """Write ``obj`` (tensors, state dicts, nested dict/list/tuple of tensors, numbers, strings,
    None) to ``f`` (a path or a writable binary file) in jitgrad's ZIP + JSON format."""
    w = _Writer()
    manifest = {"format": FORMAT, "version": VERSION, "root": w.node(obj)}
    own = isinstance(f, (str, os.PathLike))
    fh = open(f, "wb") if own else f
    try:
        with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_STORED) as z:
            z.writestr(_MANIFEST, json.dumps(manifest))
            for i, a in enumerate(w.arrays):
                buf = io.BytesIO()
                np.save(buf, a, allow_pickle=False)
                z.writestr(f"jitgrad/tensors/{i}.npy", buf.getvalue())
    finally:
        if own:
            fh.close()


class _Reader:
    def __init__(self, z: zipfile.ZipFile, map_location):
        self.z = z
        self.map_location = map_location
        self.tensors: dict[int, Tensor] = {}

    def node(self, n):
        if not isinstance(n, dict) or "type" not in n:
            raise ValueError(f"jitgrad.load: malformed manifest node {str(n)[:80]!r}")
        t = n["type"]
        if t == "none":
            return None
        if t in ("bool", "str"):
            return n["value"]
        if t == "int":
            return int(n["value"])
        if t == "float":
            return float.fromhex(n["value"])
        if t == "list":
            return [self.node(v) for v in n["items"]]
        if t == "tuple":
            return tuple(self.node(v) for v in n["items"])
        if t in ("dict", "odict"):
            d = OrderedDict() if t == "odict" else {}
            for k, v in n["items"]:
                d[self.node(k)] = self.node(v)
            return d
        if t == "dtype":
            return dtypes.from_any(n["value"])
        if t == "tensor":
            return self.tensor(n)
        raise ValueError(f"jitgrad.load: unknown node type {t!r} in the manifest")

    def tensor(self, n):
        i = int(n["id"])
        t = self.tensors.get(i)
        if t is not None:
            return t
        try:
            raw = self.z.read(f"jitgrad/tensors/{i}.npy")
        except KeyError:
            raise ValueError(f"jitgrad.load: tensor {i} is missing from the file") from None
        a = np.load(io.BytesIO(raw), allow_pickle=False)
        dt = dtypes.from_numpy(a.dtype)  # (an unsupported dtype raises a clear error)
        if a.dtype != dt.np:  # e.g. an int8 .npy put in by hand: stored as the dtype it is read as
            a = a.astype(dt.np)
        t = Tensor._make(a)
        dev = self.map_location if self.map_location is not None else n.get("device", "cpu")
        if str(dev) != "cpu":
            t = t.to(dev)
        if n.get("parameter"):
            t = Parameter(t, requires_grad=bool(n.get("requires_grad")))
        elif n.get("requires_grad"):
            t.requires_grad_(True)
        self.tensors[i] = t
        return t


_PICKLE_MSG = ("jitgrad.load: {what} is a pickle file{extra}. jitgrad never unpickles, because "
               "loading a pickle can run arbitrary code. Files written by jitgrad.save are ZIP "
               "archives with a JSON manifest; convert other checkpoints to tensors (e.g. with "
               "torch, then jitgrad.tensor(t.numpy()) per entry) and save them with jitgrad.save.")


def load(f, map_location=None, weights_only=True, **kwargs):
    """Read an object written by :func:`save` from a path or a readable binary file.
    ``map_location``: a device every tensor is placed on (default: where it was saved).
    Never unpickles: ``weights_only=False`` is refused, and so is any pickle file."""
    if weights_only is False:
        raise ValueError("jitgrad.load(weights_only=False) is not supported: jitgrad's format "
                         "holds only tensors and plain containers and never unpickles")
    if map_location is not None and not isinstance(map_location, (str, device)):
        raise TypeError(f"jitgrad.load: map_location must be a device or a device string "
                        f"('cpu', 'cuda'), got {type(map_location).__name__}")
    own = isinstance(f, (str, os.PathLike))
    what = repr(os.fspath(f)) if own else "the file"
    fh = open(f, "rb") if own else f
    try:
        head = fh.read(4)
        fh.seek(-len(head), 1)
        if head[:1] == b"\x80" or head[:1] in (b"(", b"]", b"}", b"c"):
            raise pickle.UnpicklingError(_PICKLE_MSG.format(what=what, extra=""))
        if head != b"PK\x03\x04":
            raise ValueError(f"jitgrad.load: {what} is not a file written by jitgrad.save (it "
                             "does not start like a ZIP archive)")
        with zipfile.ZipFile(fh) as z:
            names = set(z.namelist())
            if _MANIFEST not in names:
                if any(n.endswith("data.pkl") for n in names):
                    raise pickle.UnpicklingError(_PICKLE_MSG.format(
                        what=what, extra=" archive (torch.save's format: a ZIP around a pickle)"))
                raise ValueError(f"jitgrad.load: {what} is a ZIP archive without "
                                 f"{_MANIFEST}; it was not written by jitgrad.save")
            try:
                manifest = json.loads(z.read(_MANIFEST).decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as e:
                raise ValueError(f"jitgrad.load: {what} has a corrupt manifest ({e})") from None
            if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
                raise ValueError(f"jitgrad.load: {what} has no jitgrad manifest")
            if manifest.get("version") != VERSION:
                raise ValueError(f"jitgrad.load: {what} has format version "
                                 f"{manifest.get('version')}; this jitgrad reads version "
                                 f"{VERSION}")
            return _Reader(z, map_location).node(manifest["root"])
    finally:
        if own:
            fh.close()
