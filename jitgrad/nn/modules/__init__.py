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

# -- issue 16: convolution, pooling, more activations/losses/layers ------------------------
from .conv import (Conv1d, Conv2d, Conv3d, ConvTranspose1d, ConvTranspose2d,  # noqa: F401,E402
                   ConvTranspose3d, Fold, Unfold)
from .pooling import (AdaptiveAvgPool1d, AdaptiveAvgPool2d, AdaptiveAvgPool3d,  # noqa: F401,E402
                      AdaptiveMaxPool1d, AdaptiveMaxPool2d, AdaptiveMaxPool3d, AvgPool1d,
                      AvgPool2d, AvgPool3d, LPPool1d, LPPool2d, MaxPool1d, MaxPool2d, MaxPool3d,
                      MaxUnpool1d, MaxUnpool2d, MaxUnpool3d)
from .activation import (CELU, GLU, SELU, Hardshrink, Hardsigmoid, Hardswish,  # noqa: F401,E402
                         Hardtanh, LogSigmoid, Mish, PReLU, ReLU6, RReLU, Softmin, Softshrink,
                         Softsign, Tanhshrink, Threshold)
from .loss import (CosineEmbeddingLoss, GaussianNLLLoss, HingeEmbeddingLoss,  # noqa: F401,E402
                   KLDivLoss, MarginRankingLoss, MultiLabelMarginLoss, MultiLabelSoftMarginLoss,
                   MultiMarginLoss, PoissonNLLLoss, SoftMarginLoss, TripletMarginLoss,
                   TripletMarginWithDistanceLoss)
from .layers_extra import (AlphaDropout, BatchNorm2d, BatchNorm3d,  # noqa: F401,E402
                           ChannelShuffle, CircularPad1d, CircularPad2d, CircularPad3d,
                           ConstantPad1d, ConstantPad2d, ConstantPad3d, CosineSimilarity,
                           Dropout1d, Dropout2d, Dropout3d, EmbeddingBag, FeatureAlphaDropout,
                           GroupNorm, InstanceNorm1d, InstanceNorm2d, InstanceNorm3d,
                           LocalResponseNorm, PairwiseDistance, PixelShuffle, PixelUnshuffle,
                           ReflectionPad1d, ReflectionPad2d, ReflectionPad3d, ReplicationPad1d,
                           ReplicationPad2d, ReplicationPad3d, RMSNorm, Upsample,
                           UpsamplingBilinear2d, UpsamplingNearest2d, ZeroPad1d, ZeroPad2d,
                           ZeroPad3d)

__all__ += [
    "Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d",
    "Fold", "Unfold", "AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "AdaptiveAvgPool3d",
    "AdaptiveMaxPool1d", "AdaptiveMaxPool2d", "AdaptiveMaxPool3d", "AvgPool1d", "AvgPool2d",
    "AvgPool3d", "LPPool1d", "LPPool2d", "MaxPool1d", "MaxPool2d", "MaxPool3d", "MaxUnpool1d",
    "MaxUnpool2d", "MaxUnpool3d", "CELU", "GLU", "SELU", "Hardshrink", "Hardsigmoid",
    "Hardswish", "Hardtanh", "LogSigmoid", "Mish", "PReLU", "ReLU6", "RReLU", "Softmin",
    "Softshrink", "Softsign", "Tanhshrink", "Threshold", "CosineEmbeddingLoss",
    "GaussianNLLLoss", "HingeEmbeddingLoss", "KLDivLoss", "MarginRankingLoss",
    "MultiLabelMarginLoss", "MultiLabelSoftMarginLoss", "MultiMarginLoss", "PoissonNLLLoss",
    "SoftMarginLoss", "TripletMarginLoss", "TripletMarginWithDistanceLoss", "AlphaDropout",
    "BatchNorm2d", "BatchNorm3d", "ChannelShuffle", "CircularPad1d", "CircularPad2d",
    "CircularPad3d", "ConstantPad1d", "ConstantPad2d", "ConstantPad3d", "CosineSimilarity",
    "Dropout1d", "Dropout2d", "Dropout3d", "EmbeddingBag", "FeatureAlphaDropout", "GroupNorm",
    "InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d", "LocalResponseNorm",
    "PairwiseDistance", "PixelShuffle", "PixelUnshuffle", "ReflectionPad1d", "ReflectionPad2d",
    "ReflectionPad3d", "ReplicationPad1d", "ReplicationPad2d", "ReplicationPad3d", "RMSNorm",
    "Upsample", "UpsamplingBilinear2d", "UpsamplingNearest2d", "ZeroPad1d", "ZeroPad2d",
    "ZeroPad3d"]
