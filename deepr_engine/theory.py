"""What the theory of docs/algorithms.md predicts for theta with zero gradient (for comparison plots)."""
from __future__ import annotations

import numpy as np


def theta_density(grid: np.ndarray, alpha: float, temperature: float,
                  theta_min: float | None = None) -> np.ndarray:
    """Density of theta on `grid`.

    soft-Deep R (theta_min given): flat on [theta_min, 0), proportional to exp(-alpha*theta/T)
    on [0, inf), continuous at 0. Deep R (theta_min None): the density of an active theta,
    exponential with rate alpha / T (the prior's rate)."""
    grid = np.asarray(grid, dtype=np.float64)
    if alpha <= 0 or temperature <= 0:
        return np.full_like(grid, np.nan)
    scale = temperature / alpha
    if theta_min is None:
        return np.where(grid >= 0, np.exp(-np.clip(grid, 0, None) / scale) / scale, 0.0)
    norm = scale + abs(theta_min)
    return np.where(grid >= 0, np.exp(-np.clip(grid, 0, None) / scale) / norm,
                    np.where(grid >= theta_min, 1.0 / norm, 0.0))
