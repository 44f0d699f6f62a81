"""torch.optim for jitgrad: SGD, Adam, AdamW, RMSprop, Adagrad with param groups, torch-format
state dicts and learning-rate schedulers. Each ``step()`` updates all parameters of one
(dtype, device) bucket with one generated, disk-cached njit kernel (see ``_fused``)."""
from .optimizer import Optimizer
from .sgd import SGD
from .adam import Adam, AdamW
from .rmsprop import RMSprop
from .adagrad import Adagrad
from . import lr_scheduler

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "lr_scheduler"]
