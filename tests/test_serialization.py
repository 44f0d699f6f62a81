"""jitgrad.save / jitgrad.load: round trips of tensors, Parameters, state dicts and nested
containers; the documented file layout; pickle files (plain and torch's) refused without being
unpickled; corrupt files rejected with clear errors."""
from __future__ import annotations

import io
import json
import math
import os
import pickle
import zipfile
from collections import OrderedDict

import numpy as np
import pytest

import jitgrad
import jitgrad.nn as nn


def _eq(a, b):
    assert type(a) is type(b)
    assert a.dtype == b.dtype and a.requires_grad == b.requires_grad
    np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())


def test_round_trip_nested_containers(tmp_path):
    t = jitgrad.arange(6, dtype=jitgrad.float64).reshape(2, 3)
    obj = {"t": t, "same": t, "ints": jitgrad.tensor([1, 2], dtype=jitgrad.int32),
           "flag": jitgrad.tensor([True, False]), "scalar": jitgrad.tensor(2.5),
           "nested": [1, -2 ** 70, 3.25, float("nan"), float("-inf"), "s", None, True,
                      (jitgrad.zeros(0, 3), {"deep": [jitgrad.ones(2, requires_grad=True)]})],
           3: "int key", (1, "a"): "tuple key", None: 0.1, "dtype": jitgrad.float32,
           "od": OrderedDict([("b", 1), ("a", 2)])}
    path = tmp_path / "obj.jg"
    jitgrad.save(obj, path)
    back = jitgrad.load(path)
    assert set(back) == set(obj)
    _eq(back["t"], t)
    assert back["same"] is back["t"]  # one tensor saved once, loaded as one object
    _eq(back["ints"], obj["ints"])
    _eq(back["flag"], obj["flag"])
    _eq(back["scalar"], obj["scalar"])
    n = back["nested"]
    assert n[:3] == [1, -2 ** 70, 3.25] and math.isnan(n[3]) and n[4] == float("-inf")
    assert n[5:8] == ["s", None, True] and isinstance(n[8], tuple)
    assert n[8][0].shape == (0, 3)
    _eq(n[8][1]["deep"][0], obj["nested"][8][1]["deep"][0])
    assert back[3] == "int key" and back[(1, "a")] == "tuple key" and back[None] == 0.1
    assert back["dtype"] is jitgrad.float32
    assert type(back["od"]) is OrderedDict and list(back["od"]) == ["b", "a"]
    assert type(back) is dict


def test_state_dict_round_trip_and_parameters(tmp_path):
    jitgrad.manual_seed(0)
    m = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    m.train()
    m(jitgrad.randn(5, 3))  # running stats move
    buf = io.BytesIO()
    jitgrad.save(m.state_dict(), buf)
    buf.seek(0)
    sd = jitgrad.load(buf)
    assert type(sd) is OrderedDict and list(sd) == list(m.state_dict())
    m2 = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    m2.load_state_dict(sd)
    m.eval(), m2.eval()
    x = jitgrad.randn(2, 3)
    np.testing.assert_array_equal(m(x).detach().numpy(), m2(x).detach().numpy())
    assert sd["1.num_batches_tracked"].dtype == jitgrad.int64
    p = nn.Parameter(jitgrad.randn(2))
    jitgrad.save([p], tmp_path / "p.jg")
    q = jitgrad.load(str(tmp_path / "p.jg"))[0]
    assert isinstance(q, nn.Parameter) and q.requires_grad
    _eq(q, p)


def test_file_layout_is_documented_zip_json_npy(tmp_path):
    path = tmp_path / "t.jg"
    jitgrad.save({"w": jitgrad.ones(2, 2)}, path)
    with zipfile.ZipFile(path) as z:
        man = json.loads(z.read("jitgrad/manifest.json"))
        arr = np.load(io.BytesIO(z.read("jitgrad/tensors/0.npy")), allow_pickle=False)
    assert man["format"] == "jitgrad" and man["version"] == 1
    assert man["root"]["type"] == "dict"
    key, val = man["root"]["items"][0]
    assert key == {"type": "str", "value": "w"} and val["type"] == "tensor" and val["id"] == 0
    np.testing.assert_array_equal(arr, np.ones((2, 2), np.float32))


class _Boom:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_malicious_pickle_refused_without_unpickling(tmp_path, monkeypatch):
    for proto in (0, 2, pickle.HIGHEST_PROTOCOL):
        (tmp_path / f"evil{proto}.pt").write_bytes(pickle.dumps(_Boom(), protocol=proto))
    called = []
    monkeypatch.setattr(os, "system", lambda cmd: called.append(cmd))
    for proto in (0, 2, pickle.HIGHEST_PROTOCOL):
        path = tmp_path / f"evil{proto}.pt"
        with pytest.raises((pickle.UnpicklingError, ValueError), match="jitgrad.load"):
            jitgrad.load(path)
    with pytest.raises(pickle.UnpicklingError, match="never unpickles"):
        jitgrad.load(tmp_path / f"evil{pickle.HIGHEST_PROTOCOL}.pt")
    # torch.save's layout: a ZIP around data.pkl
    path = tmp_path / "torchlike.pt"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", (tmp_path / "evil2.pt").read_bytes())
    with pytest.raises(pickle.UnpicklingError, match="torch.save's format"):
        jitgrad.load(path)
    assert called == []  # nothing ran
    with pytest.raises(ValueError, match="weights_only=False"):
        jitgrad.load(path, weights_only=False)


def test_real_torch_file_refused(tmp_path):
    torch = pytest.importorskip("torch")
    path = tmp_path / "t.pt"
    torch.save({"w": torch.ones(2)}, path)
    with pytest.raises(pickle.UnpicklingError, match="torch.save's format"):
        jitgrad.load(path)


def test_bad_files_and_unsupported_objects(tmp_path):
    p = tmp_path / "x.jg"
    p.write_bytes(b"hello world")
    with pytest.raises(ValueError, match="not a file written by jitgrad.save"):
        jitgrad.load(p)
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("jitgrad/manifest.json", json.dumps({"format": "jitgrad", "version": 99,
                                                        "root": {"type": "none"}}))
    with pytest.raises(ValueError, match="format version 99"):
        jitgrad.load(p)
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("jitgrad/manifest.json", json.dumps(
            {"format": "jitgrad", "version": 1, "root": {"type": "tensor", "id": 3}}))
    with pytest.raises(ValueError, match="tensor 3 is missing"):
        jitgrad.load(p)
    with pytest.raises(TypeError, match="save module.state_dict"):
        jitgrad.save(nn.Linear(2, 2), p)
    with pytest.raises(TypeError, match="cannot store an object of type"):
        jitgrad.save({"f": lambda: 0}, p)
    with pytest.raises(TypeError, match="dict key"):
        jitgrad.save({jitgrad.ones(1): 1}, p)


def test_npy_of_a_narrow_int_dtype_loads_as_the_dtype_it_is_labelled(tmp_path):
    """An archive edited by hand to hold an int8 array: the tensor is int32 (the dtype jitgrad
    reads int8 as) and its storage is int32 too, not int8 bytes labelled int32."""
    path = tmp_path / "t.jg"
    jitgrad.save({"w": jitgrad.zeros(3, dtype=jitgrad.int32)}, path)
    buf = io.BytesIO()
    np.save(buf, np.array([-3, 5, 7], np.int8))
    with zipfile.ZipFile(path) as z:
        items = {n: z.read(n) for n in z.namelist()}
    items["jitgrad/tensors/0.npy"] = buf.getvalue()
    with zipfile.ZipFile(path, "w") as z:
        for n, b in items.items():
            z.writestr(n, b)
    t = jitgrad.load(path)["w"]
    assert t.dtype == jitgrad.int32 and t.numpy().dtype == np.int32
    assert t.tolist() == [-3, 5, 7] and (t * 2).tolist() == [-6, 10, 14]
