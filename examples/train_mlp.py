"""Train an MLP classifier on three interleaved spirals, the PyTorch way.

    python examples/train_mlp.py            # 3 x 300 points, 60 epochs: >= 98% test accuracy
    python examples/train_mlp.py --quick    # CI: 3 x 100 points, 15 epochs: >= 95%

Accuracy is measured on a held-out set drawn from the same spirals with another seed.

The data are generated here (no downloads). The script uses what a first PyTorch model uses:
``nn.Sequential`` of ``Linear``/``ReLU``, ``nn.init``, ``CrossEntropyLoss`` (with label
smoothing), ``TensorDataset`` + a shuffling ``DataLoader``, ``train()``/``eval()``,
``no_grad``, ``optim.SGD`` (momentum) with a ``StepLR`` schedule, and
``jitgrad.save``/``jitgrad.load`` of the state dict into a fresh model.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time

import numpy as np

import jitgrad as torch  # the point: the same code runs with `import torch`
from jitgrad import nn
from jitgrad.utils.data import DataLoader, TensorDataset


def spirals(n_per_class: int, classes: int = 3, noise: float = 0.15, seed: int = 0):
    """``classes`` spiral arms of ``n_per_class`` points each in [-1, 1]^2 (CS231n's toy set)."""
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for c in range(classes):
        r = np.linspace(0.05, 1.0, n_per_class)
        t = np.linspace(c * 4.0, (c + 1) * 4.0, n_per_class) + rng.normal(0, noise, n_per_class)
        xs.append(np.stack([r * np.sin(t), r * np.cos(t)], 1))
        ys.append(np.full(n_per_class, c))
    return np.concatenate(xs).astype(np.float32), np.concatenate(ys).astype(np.int64)


def make_model(hidden: int = 64, classes: int = 3) -> nn.Module:
    model = nn.Sequential(nn.Linear(2, hidden), nn.ReLU(),
                          nn.Linear(hidden, hidden), nn.ReLU(),
                          nn.Linear(hidden, classes))
    for m in model.modules():  # He init for the ReLU layers (torch's default is kaiming(a=5^.5))
        if isinstance(m, nn.Linear):
            nn.init.kaiming_uniform_(m.weight, nonlinearity="relu")
            nn.init.zeros_(m.bias)
    return model


def accuracy(model, x, y) -> float:
    model.eval()
    with torch.no_grad():
        pred = model(x).argmax(dim=1)
    model.train()
    return float((pred == y).float().mean().item())


def main(quick: bool = False, seed: int = 0, verbose: bool = True) -> float:
    torch.manual_seed(seed)
    n = 100 if quick else 300
    epochs = 15 if quick else 60
    target = 0.95 if quick else 0.98
    xn, yn = spirals(n, noise=0.2, seed=seed)
    x, y = torch.tensor(xn), torch.tensor(yn)
    xt, yt = (torch.tensor(a) for a in spirals(n, noise=0.2, seed=seed + 1000))
    loader = DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True)
    model = make_model()
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.05)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=int(epochs * 0.7) + 1, gamma=0.2)
    t0 = time.perf_counter()
    for epoch in range(epochs):
        for xb, yb in loader:
            loss = loss_fn(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
        if verbose and (epoch + 1) % max(1, epochs // 5) == 0:
            print(f"epoch {epoch + 1:4d}  loss {loss.item():.4f}  "
                  f"train accuracy {accuracy(model, x, y):.3f}  "
                  f"test accuracy {accuracy(model, xt, yt):.3f}")
    acc = accuracy(model, xt, yt)
    # the state dict survives a save/load round trip into a fresh model
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "spirals_mlp.jg")
        torch.save(model.state_dict(), path)
        fresh = make_model()
        fresh.load_state_dict(torch.load(path))
    acc2 = accuracy(fresh, xt, yt)
    if verbose:
        print(f"test accuracy {acc:.3f} (reloaded model: {acc2:.3f}; target {target:.2f}) in "
              f"{time.perf_counter() - t0:.1f} s")
    if not math.isclose(acc, acc2):
        raise SystemExit("reloaded model disagrees with the trained one")
    if acc < target:
        raise SystemExit(f"accuracy {acc:.3f} below the target {target:.2f}")
    return acc


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small run (CI)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    main(quick=a.quick, seed=a.seed)
    sys.exit(0)
