"""deepr_engine: Deep Rewiring (Bellec et al., ICLR 2018) for any PyTorch model.

The algorithm library is this package's top level (layers, optim/, sampling, distribution,
theory); the run harness (configs, registry, data, sessions, checkpoints, CLI) is in run/."""
from . import validate
from .device import auto_device
from .distribution import distribute_connectivity
from .layers import Rewired, SparseConv2d, SparseLinear, rewired_layers, sparsify
from .sparse import CompactLinear
from .optim import (SET, DeepR, Dense, L1Shrinkage, MagnitudePruning, RigL, SoftDeepR,
                    StaticSparse, theta_min_rule)

__all__ = ["validate", "DeepR", "SoftDeepR", "Dense", "StaticSparse", "SET", "RigL", "MagnitudePruning",
           "L1Shrinkage", "SparseLinear", "SparseConv2d", "CompactLinear", "Rewired", "sparsify", "rewired_layers",
           "distribute_connectivity", "theta_min_rule", "auto_device"]
__version__ = "0.2.0"
