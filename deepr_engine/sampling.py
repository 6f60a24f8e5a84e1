"""Uniform choices among dormant positions and other index helpers (no per-connection loops)."""
from __future__ import annotations

import math

import torch


def sample_dormant(theta_flat: torch.Tensor, n: int, n_dormant: int,
                   generator: torch.Generator) -> torch.Tensor:
    """n distinct flat indices drawn uniformly without replacement among positions with theta < 0.

    n_dormant is the number of such positions (the caller knows it without counting). When most
    positions are dormant this is rejection sampling, O(n) expected work; otherwise it lists the
    dormant positions. Either way each n-subset of the dormant positions is equally likely: the
    accepted distinct draws form an exchangeable random subset, and a random n-subset of it is
    uniform.
    """
    size = theta_flat.numel()
    dev = theta_flat.device
    if n <= 0:
        return torch.empty(0, dtype=torch.long, device=dev)
    if n > n_dormant:
        raise RuntimeError(f"cannot activate {n} connections: only {n_dormant} are dormant")
    if n_dormant < 0.25 * size or n_dormant < 64:
        dormant = torch.nonzero(theta_flat < 0).view(-1)
        pick = torch.randperm(dormant.numel(), generator=generator, device=dev)[:n]
        return dormant[pick]
    # Fast path: the first n accepted i.i.d. draws, kept when they are distinct (then they are
    # a uniform n-subset); otherwise fall through to the general path below. A mixture of two
    # uniform choices is uniform.
    draws = math.ceil(n * size / n_dormant * 1.3) + 16
    cand = torch.randint(size, (draws,), generator=generator, device=dev)
    cand = cand[theta_flat.index_select(0, cand) < 0]
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
        cand = torch.randint(size, (draws,), generator=generator, device=dev)
        cand = cand[theta_flat.index_select(0, cand) < 0]
        chosen = torch.unique(cand if chosen is None else torch.cat([chosen, cand]))
    pick = torch.randperm(chosen.numel(), generator=generator, device=dev)[:n]
    return chosen[pick]


def smallest(values: torch.Tensor, n: int) -> torch.Tensor:
    """Indices (into values) of its n smallest entries."""
    return torch.topk(values, n, largest=False, sorted=False).indices
