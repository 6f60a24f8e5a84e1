"""deepr_engine: Deep Rewiring (Bellec et al., ICLR 2018) for any PyTorch model."""
from .device import auto_device
from .layers import Rewired, SparseConv2d, SparseLinear, rewired_layers, sparsify
from .optim import DeepR, SoftDeepR, theta_min_rule

__all__ = ["DeepR", "SoftDeepR", "SparseLinear", "SparseConv2d", "Rewired", "sparsify",
           "rewired_layers", "theta_min_rule", "auto_device"]
__version__ = "0.1.0"
