"""examples/train_mlp.py in quick mode: an MLP trained with nn.Sequential, CrossEntropyLoss,
a shuffling DataLoader, optim.SGD + StepLR and a save/load round trip reaches its stated held-out accuracy."""
import importlib.util
from pathlib import Path


EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "train_mlp.py"


def test_train_mlp_quick_reaches_stated_accuracy():
    spec = importlib.util.spec_from_file_location("train_mlp_example", EXAMPLE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    acc = mod.main(quick=True, verbose=False)  # raises SystemExit below the target (0.95)
    assert acc >= 0.95
