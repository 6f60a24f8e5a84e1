"""Uniform choices among dormant positions and other index helpers (no per-connection loops)."""
from __future__ import annotations

import math
from typing import Callable

import torch


def sample_dormant(theta_flat: torch.Tensor, n: int, n_dormant: int,
                   generator: torch.Generator) -> torch.Tensor:
    """n distinct flat indices drawn uniformly without replacement among positions with theta < 0
    (a full-size theta; see sample_positions for the rule and its cost)."""
    return sample_positions(theta_flat.numel(), n, n_dormant, generator,
                            is_dormant=lambda cand: theta_flat.index_select(0, cand) < 0,
                            list_dormant=lambda: torch.nonzero(theta_flat < 0).view(-1),
                            device=theta_flat.device)


def sample_positions(size: int, n: int, n_dormant: int, generator: torch.Generator, *,
                     is_dormant: Callable[[torch.Tensor], torch.Tensor],
                     list_dormant: Callable[[], torch.Tensor],
                     device: torch.device | str = "cpu") -> torch.Tensor:
    """n distinct positions in [0, size) drawn uniformly without replacement among the dormant
    ones (n_dormant of them; the caller knows it without counting).

    is_dormant(candidates) -> bool tensor answers for given positions; list_dormant() lists all
    dormant positions in ascending order. A full-size layer looks theta up, a compact layer
    tests membership in its sorted active positions: both consume the generator identically
    and make identical choices. When most positions are dormant this is rejection sampling,
    O(n) expected work; otherwise it lists the dormant positions. Either way each n-subset of
    the dormant positions is equally likely: the accepted distinct draws form an exchangeable
    random subset, and a random n-subset of it is uniform.
    """
    if n <= 0:
        return torch.empty(0, dtype=torch.long, device=device)
    if n > n_dormant:
        raise RuntimeError(f"cannot activate {n} connections: only {n_dormant} are dormant")
    if n_dormant < 0.25 * size or n_dormant < 64:
        dormant = list_dormant()
        pick = torch.randperm(dormant.numel(), generator=generator, device=device)[:n]
        return dormant[pick]
    # Fast path: the first n accepted i.i.d. draws, kept when they are distinct (then they are
    # a uniform n-subset); otherwise fall through to the general path below. A mixture of two
    # uniform choices is uniform.
    draws = math.ceil(n * size / n_dormant * 1.3) + 16
    cand = torch.randint(size, (draws,), generator=generator, device=device)
    cand = cand[is_dormant(cand)]
    if cand.numel() >= n:
        first = cand[:n]
        if n == 1:
            return first
        ordered = first.sort().values
        if not bool((ordered[1:] == ordered[:-1]).any()):
            return first
    chosen = None
    while chosen is None or chosen.numel() < n:
        want = n - (0 if chosen is None else chosen.numel())
        draws = math.ceil(want * size / n_dormant * 1.3) + 16
        cand = torch.randint(size, (draws,), generator=generator, device=device)
        cand = cand[is_dormant(cand)]
        chosen = torch.unique(cand if chosen is None else torch.cat([chosen, cand]))
    pick = torch.randperm(chosen.numel(), generator=generator, device=device)[:n]
    return chosen[pick]


def smallest(values: torch.Tensor, n: int) -> torch.Tensor:
    """Indices (into values) of its n smallest entries."""
    return torch.topk(values, n, largest=False, sorted=False).indices
