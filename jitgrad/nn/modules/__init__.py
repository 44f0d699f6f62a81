"""nn modules: Module and containers, layers, activations, losses."""
from .module import Module, RemovableHandle, _IncompatibleKeys  # noqa: F401
from .container import ModuleDict, ModuleList, Sequential  # noqa: F401
from .layers import (BatchNorm1d, Bilinear, Dropout, Embedding, Flatten, Identity,  # noqa: F401
                     LayerNorm, Linear, Unflatten)
from .activation import (ELU, GELU, LeakyReLU, LogSoftmax, ReLU, SiLU, Sigmoid,  # noqa: F401
                         Softmax, Softplus, Tanh)
from .loss import (BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, HuberLoss, L1Loss,  # noqa: F401
                   MSELoss, NLLLoss, SmoothL1Loss)

__all__ = ["Module", "ModuleDict", "ModuleList", "Sequential", "BatchNorm1d", "Bilinear",
           "Dropout", "Embedding", "Flatten", "Identity", "LayerNorm", "Linear", "Unflatten",
           "ELU", "GELU", "LeakyReLU", "LogSoftmax", "ReLU", "SiLU", "Sigmoid", "Softmax",
           "Softplus", "Tanh", "BCELoss", "BCEWithLogitsLoss", "CrossEntropyLoss", "HuberLoss",
           "L1Loss", "MSELoss", "NLLLoss", "SmoothL1Loss"]
