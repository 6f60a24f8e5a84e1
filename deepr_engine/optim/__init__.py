"""The optimizers on rewired layers: Deep R, soft-Deep R and the methods they are compared with.

base.RewiringOptimizer (groups, gradient rule, state) <- exact_k.ExactK (exactly K active) <-
DeepR and baselines (Dense, StaticSparse, SET, RigL, MagnitudePruning, L1Shrinkage);
SoftDeepR derives from the base directly (no hard K)."""
from .base import GRADIENT_RULES, RewiringOptimizer
from .baselines import SET, Dense, L1Shrinkage, MagnitudePruning, RigL, StaticSparse
from .deepr import DeepR
from .exact_k import ExactK
from .soft_deepr import SoftDeepR, theta_min_rule

__all__ = ["RewiringOptimizer", "ExactK", "DeepR", "SoftDeepR", "theta_min_rule", "Dense",
           "StaticSparse", "SET", "RigL", "MagnitudePruning", "L1Shrinkage", "GRADIENT_RULES"]
