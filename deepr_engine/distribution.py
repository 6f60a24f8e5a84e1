"""How one connectivity budget is spread over the layers: uniform, or Erdos-Renyi-Kernel."""
from __future__ import annotations

import math
from typing import Sequence

from . import validate


def distribute_connectivity(shapes: Sequence[Sequence[int]], total: float,
                            distribution: str = "uniform") -> list[float]:
    """Per-layer connectivity giving `total` connectivity over all positions of layers with
    weight shapes `shapes` (out, in[, kh, kw]).

    uniform: every layer gets `total`. erk: Erdos-Renyi(-Kernel) of Evci et al. 2020, density of
    a layer proportional to sum(shape) / prod(shape) (fan-in + fan-out (+ kernel size) over its
    size), scaled to the total; a layer that would exceed 1 is made dense and the rest rescaled.
    """
    validate.finite("connectivity", total, low=0.0, high=1.0, low_open=True)
    validate.choice("distribution", distribution, ("uniform", "erk"))
    if distribution == "uniform":
        return [float(total)] * len(shapes)
    sizes = [math.prod(s) for s in shapes]
    raw = [sum(s) / math.prod(s) for s in shapes]
    dense: set[int] = set()
    while True:
        budget = total * sum(sizes) - sum(sizes[i] for i in dense)
        free = [i for i in range(len(shapes)) if i not in dense]
        eps = budget / sum(raw[i] * sizes[i] for i in free)
        over = [i for i in free if eps * raw[i] > 1]
        if not over:
            return [1.0 if i in dense else eps * raw[i] for i in range(len(shapes))]
        dense.update(over)
