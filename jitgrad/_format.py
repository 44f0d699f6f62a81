"""_format: torch-style ``repr`` of tensors (4 decimals, aligned columns, scientific when the
magnitudes call for it, ``...`` summaries above 1000 elements)."""
from __future__ import annotations

import numpy as np

from . import dtypes

PRECISION = 4
THRESHOLD = 1000
EDGEITEMS = 3
LINEWIDTH = 80
SCI_MODE = None  # None: chosen from the values (torch's rule); True/False: always/never

_PROFILES = {"default": (4, 1000, 3, 80), "short": (2, 1000, 2, 80),
             "full": (4, float("inf"), 3, 80)}


def set_printoptions(precision=None, threshold=None, edgeitems=None, linewidth=None,
                     profile=None, sci_mode=None):
    """torch.set_printoptions: ``profile`` ('default', 'short', 'full') first, then the
    given options; ``sci_mode`` None restores the automatic choice (as in torch)."""
    global PRECISION, THRESHOLD, EDGEITEMS, LINEWIDTH, SCI_MODE
    if profile is not None:
        if profile not in _PROFILES:
            raise ValueError(f"set_printoptions: profile must be one of {sorted(_PROFILES)}, "
                             f"got {profile!r}")
        PRECISION, THRESHOLD, EDGEITEMS, LINEWIDTH = _PROFILES[profile]
    if precision is not None:
        PRECISION = int(precision)
    if threshold is not None:
        THRESHOLD = threshold
    if edgeitems is not None:
        EDGEITEMS = int(edgeitems)
    if linewidth is not None:
        LINEWIDTH = int(linewidth)
    SCI_MODE = None if sci_mode is None else bool(sci_mode)


def _float_formatter(a: np.ndarray):
    """torch's _Formatter: the mode (integer / fixed / scientific) and the column width come
    from the nonzero finite values only; nan/inf/0 are padded to that width."""
    vals = a[np.isfinite(a)].astype(np.float64)
    vals = vals[vals != 0]
    if vals.size == 0:
        return lambda v: _special(v) or f"{v:.0f}.", 1
    absv = np.abs(vals)
    big = absv.max() / absv.min() > 1000.0 or absv.max() > 1e8
    if SCI_MODE is not None:
        big = SCI_MODE
    if np.all(vals == np.ceil(vals)):
        if big:
            fmt = lambda v: _special(v) or f"{v:.{PRECISION}e}"  # noqa: E731
        else:
            fmt = lambda v: _special(v) or f"{v:.0f}."  # noqa: E731
    elif big or (SCI_MODE is None and absv.min() < 1e-4):
        fmt = lambda v: _special(v) or f"{v:.{PRECISION}e}"  # noqa: E731
    else:
        fmt = lambda v: _special(v) or f"{v:.{PRECISION}f}"  # noqa: E731
    return fmt, max(len(fmt(v)) for v in vals.tolist())


def _special(v):
    if np.isnan(v):
        return "nan"
    if np.isinf(v):
        return "inf" if v > 0 else "-inf"
    return None


def _summarize(a):
    return a.size > THRESHOLD


def _elements(a, summarize):
    """Flat list of the elements that will be printed (for the column width)."""
    if a.ndim == 0:
        return [a.item()]
    if summarize and a.shape[0] > 2 * EDGEITEMS:
        parts = list(a[:EDGEITEMS]) + list(a[-EDGEITEMS:])
    else:
        parts = list(a)
    out = []
    for p in parts:
        out += _elements(np.asarray(p), summarize)
    return out


def _render(a, fmt, width, indent, summarize):
    if a.ndim == 0:
        return fmt(a.item()).rjust(width)
    if a.ndim == 1:
        if summarize and a.shape[0] > 2 * EDGEITEMS:
            vals = a[:EDGEITEMS].tolist() + a[-EDGEITEMS:].tolist()
            items = [fmt(v).rjust(width) for v in vals]
            items = items[:EDGEITEMS] + [" ..."] + items[EDGEITEMS:]
        else:
            items = [fmt(v).rjust(width) for v in a.tolist()]
        per_line = max(1, (LINEWIDTH - indent) // (width + 2))
        lines = [", ".join(items[i:i + per_line]) for i in range(0, len(items), per_line)]
        return "[" + (",\n" + " " * (indent + 1)).join(lines) + "]"
    rows = range(a.shape[0])
    if summarize and a.shape[0] > 2 * EDGEITEMS:
        rows = list(range(EDGEITEMS)) + [None] + list(range(a.shape[0] - EDGEITEMS, a.shape[0]))
    sep = "," + "\n" * (a.ndim - 1) + " " * (indent + 1)
    parts = ["..." if r is None else _render(a[r], fmt, width, indent + 1, summarize)
             for r in rows]
    return "[" + sep.join(parts) + "]"


def format_array(a: np.ndarray, indent: int) -> str:
    summarize = _summarize(a)
    if a.size == 0:
        return "[]"
    if a.dtype.kind == "f":
        fmt, width = _float_formatter(a if not summarize else np.asarray(_elements(a, True)))
    else:
        fmt = (lambda v: "True" if v else "False") if a.dtype.kind == "b" else str
        width = max(len(fmt(v)) for v in _elements(a, summarize))
    return _render(a, fmt, width, indent, summarize)


def format_tensor(t) -> str:
    a = t._host
    prefix = "tensor("
    body = format_array(a, len(prefix))
    extras = []
    if t.is_cuda:  # torch puts the device first among the extras
        extras.append("device='cuda:0'")
    if a.size == 0 and a.shape != (0,):
        extras.append(f"size={tuple(a.shape)}")
    d = dtypes.from_numpy(a.dtype)
    if d is not dtypes.get_default_dtype() and (a.size == 0 or d not in (dtypes.int64,
                                                                            dtypes.bool_)):
        extras.append(f"dtype={d}")
    if t.grad_fn is not None:
        extras.append(f"grad_fn=<{t.grad_fn.name()}>")
    elif t._rg:
        extras.append("requires_grad=True")
    return _add_extras(prefix + body, extras, len(prefix))


def _add_extras(text, extras, indent):
    """torch's rule: an extra that would make the last line longer than LINEWIDTH goes on a
    line of its own, indented under the values."""
    parts = [text]
    last = len(text) - text.rfind("\n") + 1
    for e in extras:
        if last + len(e) + 2 > LINEWIDTH:
            parts.append(",\n" + " " * indent + e)
            last = indent + len(e)
        else:
            parts.append(", " + e)
            last += len(e) + 2
    return "".join(parts) + ")"
