"""The package is layered: a module imports only from its own layer or below, and no import
cycle exists, counting imports inside functions too (README, "How it is built").

Importing ``jitgrad.a.b`` also runs ``jitgrad/a/__init__.py``, so such an import counts as an
import of the subpackage ``jitgrad.a`` as well (the root package ``jitgrad`` is the entry point
and is not counted). A few imports inside functions are allowed explicitly below, each with its
reason; any other import from a higher layer fails.
"""
import ast
import os

import pytest

ROOT = os.path.join(os.path.dirname(__file__), os.pardir, "jitgrad")

# Bottom to top. A module belongs to the first entry that equals its name or is a package
# prefix of it. Modules of one layer may import each other (without a cycle).
LAYERS = [
    # base: dtypes, debug switches, per-thread state and grad mode, hook handles (jitgrad.utils
    # itself imports nothing; utils.data sits with nn)
    ["jitgrad.dtypes", "jitgrad._debug", "jitgrad._state", "jitgrad.utils", "jitgrad.utils.hooks"],
    ["jitgrad._format"],
    ["jitgrad.codegen", "jitgrad.vmath"],             # kernel source generation
    ["jitgrad.ops"],                                  # registries: ELEMENTWISE, STRUCTURAL
    ["jitgrad.backends", "jitgrad.interop"],          # CPU / CUDA kernels and arrays, DLPack
    ["jitgrad.lazy"],                                 # fusion: record, plan, realise
    ["jitgrad._methods"],                             # the Tensor method table (IMPL)
    ["jitgrad._engine"],                              # grad_fn nodes, backward sweep
    ["jitgrad.structural"],                           # the structural VJP vocabulary
    ["jitgrad._tensor"],                              # Tensor, apply_elementwise, apply_fn
    ["jitgrad.creation"],                             # factories (zeros, randn, from_numpy)
    ["jitgrad.functional_ops"],                       # the public ops (fills IMPL)
    ["jitgrad.ops_api", "jitgrad.linalg"],            # later public ops, by family; linalg.*
    ["jitgrad.autograd"],                             # backward/grad, Function, transforms
    ["jitgrad.explain", "jitgrad.batching", "jitgrad.func", "jitgrad.cuda"],
    ["jitgrad.nn", "jitgrad.optim", "jitgrad.utils.data", "jitgrad.serialization"],
    ["jitgrad.capture"],                              # whole-step capture (walks modules, optimizers)
    ["jitgrad"],                                      # the root package: the public namespace
    ["jitgrad.testing"],                              # imported by nothing above it
]

# Every import of a jitgrad module inside a function, with its reason. Any other one fails
# (an import inside a function must not dodge a cycle; the layer test would not see through it).
ALLOWED_LAZY = {
    ("jitgrad.backends.cuda", "jitgrad.backends.cuda_kernels"):
        "the hand-written CUDA kernels import numba.cuda: only on the first GPU op",
    ("jitgrad.backends.cuda", "jitgrad.backends._cuda_prelude"):
        "the CUDA prelude imports numba.cuda: only on the first GPU op",
    ("jitgrad.nn.modules.module", "jitgrad.nn.modules._backward_hooks"):
        "module hooks' helper, loaded on the first module call with full backward hooks; "
        "downward (module.py is being edited alongside)",
    ("jitgrad.backends.cpu_nn", "jitgrad.backends.cpu_vm"):
        "kernels that call vmath (whose import takes ~28 ms): only on their first use",
    ("jitgrad.testing.fuzz", "jitgrad"): "the fuzzer imports each library it drives on demand",
    ("jitgrad.testing.fuzz", "jitgrad.lazy"): "as above (fusion_mode)",
}

# Imports that break the layer order today, to be removed (shrink this list; never grow it).
KNOWN = {
}


def _modules():
    mods = {}
    for d, _, files in os.walk(ROOT):
        for f in files:
            if f.endswith(".py"):
                p = os.path.join(d, f)
                rel = os.path.relpath(p, os.path.join(ROOT, os.pardir))[:-3].replace(os.sep, ".")
                mods[rel[:-9] if rel.endswith(".__init__") else rel] = p
    return mods


MODS = _modules()


def _layer(mod):
    best = None
    for k, layer in enumerate(LAYERS):
        for prefix in layer:
            if mod == prefix or mod.startswith(prefix + "."):
                if best is None or len(prefix) > best[1]:
                    best = (k, len(prefix))
    return best[0]


def _targets(importer, node, ispkg):
    """Modules an import statement runs: the named module, its jitgrad subpackages, and for
    ``from pkg import name`` the submodule ``pkg.name`` when there is one."""
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    else:
        if node.level:
            base = importer if ispkg else importer.rsplit(".", 1)[0]
            parts = base.split(".")
            base = ".".join(parts[:len(parts) - (node.level - 1)])
            mod = base + ("." + node.module if node.module else "")
        else:
            mod = node.module
        names = []
        for a in node.names:
            names.append(mod + "." + a.name if mod + "." + a.name in MODS else mod)
    out = set()
    for name in names:
        if not name.startswith("jitgrad"):
            continue
        if name != importer:
            out.add(name)  # the module named, even the importer's own package (its __init__)
        parts = name.split(".")
        for k in range(2, len(parts)):  # subpackages run their __init__ first, except the
            pkg = ".".join(parts[:k])   # importer's own packages (already being imported)
            if pkg != importer and not importer.startswith(pkg + "."):
                out.add(pkg)
    return out


def _edges():
    """[(importer, imported, lineno, inside_function)]"""
    edges = []
    for mod, path in MODS.items():
        with open(path) as f:
            tree = ast.parse(f.read())
        ispkg = path.endswith("__init__.py")

        def visit(node, infn):
            for ch in ast.iter_child_nodes(node):
                f = infn or isinstance(ch, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
                if isinstance(ch, (ast.Import, ast.ImportFrom)):
                    for t in _targets(mod, ch, ispkg):
                        edges.append((mod, t, ch.lineno, f))
                visit(ch, f)
        visit(tree, False)
    return edges


EDGES = _edges()


def test_every_module_has_a_layer():
    for mod in MODS:
        assert _layer(mod) is not None, mod


def test_no_import_from_a_higher_layer():
    bad = []
    for a, b, line, infn in EDGES:
        if b not in MODS or _layer(b) <= _layer(a):
            continue
        if (a, b) in KNOWN:
            continue
        bad.append(f"{a}:{line} imports {b} (layer {_layer(a)} < {_layer(b)})"
                   + (" inside a function" if infn else ""))
    assert not bad, "\n".join(bad)


def test_imports_inside_functions_are_listed():
    """An import inside a function is either listed in ALLOWED_LAZY with its reason or moved to
    the top of its module."""
    bad = sorted({f"{a} imports {b}" for a, b, _, infn in EDGES
                  if infn and b in MODS and (a, b) not in ALLOWED_LAZY})
    assert not bad, "\n".join(bad)


def test_known_violations_still_exist():
    """The allow-lists hold only entries that are still needed (so they only shrink)."""
    seen = {(a, b) for a, b, _, _ in EDGES}
    lazy = {(a, b) for a, b, _, infn in EDGES if infn}
    stale = sorted(set(KNOWN) - seen) + sorted(set(ALLOWED_LAZY) - lazy)
    assert not stale, stale


def _sccs(graph):
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


@pytest.mark.parametrize("with_functions", [False, True], ids=["module_level", "all_imports"])
def test_no_import_cycle(with_functions):
    graph = {}
    for a, b, _, infn in EDGES:
        if b in MODS and (with_functions or not infn) and (a, b) not in KNOWN:
            graph.setdefault(a, set()).add(b)
    assert _sccs(graph) == []


def test_no_sys_modules_lookup_of_jitgrad_modules():
    """Modules are imported by name, never fetched from sys.modules (a shadowed name once
    forced that: ``jitgrad.tensor`` is the factory function, the module is ``jitgrad._tensor``)."""
    bad = []
    for mod, path in MODS.items():
        with open(path) as f:
            for k, line in enumerate(f, 1):
                if 'sys.modules["jitgrad' in line or "sys.modules['jitgrad" in line:
                    bad.append(f"{mod}:{k}")
    assert not bad, bad


def _class_body_names(path, cls):
    with open(path) as f:
        tree = ast.parse(f.read())
    node = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls)
    names = set()
    for st in node.body:
        if isinstance(st, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(st.name)
        elif isinstance(st, ast.Assign):
            names.update(t.id for t in st.targets if isinstance(t, ast.Name))
        elif isinstance(st, ast.AnnAssign) and isinstance(st.target, ast.Name):
            names.add(st.target.id)
    return names


def test_tensor_methods_are_declared_in_the_class():
    """Every attribute of Tensor (and its TensorMethods mixin) is written in its class body:
    nothing is patched onto the class after it is defined."""
    import jitgrad
    from jitgrad import _methods, _tensor
    declared = (_class_body_names(MODS["jitgrad._tensor"], "Tensor")
                | _class_body_names(MODS["jitgrad._methods"], "TensorMethods"))
    present = set(vars(_tensor.Tensor)) | set(vars(_methods.TensorMethods))
    implicit = {"__module__", "__qualname__", "__doc__", "__slots__", "__dict__", "__weakref__",
                "__annotations__", "__firstlineno__", "__static_attributes__"}
    slots = set(_tensor.Tensor.__slots__)
    patched = sorted(present - declared - implicit - slots)
    assert not patched, patched
    # and the public ops are methods (a sample: torch's names, each a method of the class)
    for name in ("exp", "sum", "reshape", "matmul", "__add__", "__getitem__", "backward", "T",
                 "max", "new_zeros", "softmax", "cumsum", "flip"):
        assert name in declared, name
    assert jitgrad.Tensor is _tensor.Tensor and callable(jitgrad.tensor)
