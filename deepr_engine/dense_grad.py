"""The largest entries of a dense weight gradient that is never stored whole.

For y = x W^T the gradient is dE/dW = sum over backward passes of go^T x (go = dE/dy). A compact
layer keeps x and go of the passes since the last optimizer step (only when asked: RigL's growth
steps) and this module finds the positions with the largest |dE/dW| row block by row block, so
memory is O(one block + n), never O(all positions)."""
from __future__ import annotations

import torch

BLOCK = 1 << 22  # entries of dE/dW per block (32 MiB in float64)


def top_dense_grad(pairs: list[tuple[torch.Tensor, torch.Tensor]], n: int, n_out: int,
                   n_in: int, exclude: torch.Tensor, block: int = BLOCK) -> torch.Tensor:
    """The n flat positions (row-major in n_out x n_in) with the largest |sum go^T x| over the
    (x, go) pairs, largest first; the sorted positions `exclude` score -1 (never chosen while
    others are left), like a dense |gradient| with those entries set to -1 and torch.topk."""
    dev = exclude.device
    dtype = pairs[0][0].dtype if pairs else torch.get_default_dtype()
    rows = max(1, block // n_in)
    best_v = torch.empty(0, dtype=dtype, device=dev)
    best_p = torch.empty(0, dtype=torch.long, device=dev)
    for r0 in range(0, n_out, rows):  # a loop over blocks of rows
        r1 = min(n_out, r0 + rows)
        g = torch.zeros(r1 - r0, n_in, dtype=dtype, device=dev)
        for x, go in pairs:
            g.addmm_(go[:, r0:r1].t(), x)
        score = g.abs_().view(-1)
        lo, hi = r0 * n_in, r1 * n_in
        a, b = torch.searchsorted(exclude, torch.tensor([lo, hi], device=dev)).tolist()
        score.index_fill_(0, exclude[a:b] - lo, -1.0)
        v, i = torch.topk(score, min(n, score.numel()))
        best_v, best_p = torch.cat([best_v, v]), torch.cat([best_p, i + lo])
        if best_v.numel() > n:
            best_v, j = torch.topk(best_v, n)
            best_p = best_p.index_select(0, j)
    _, j = torch.topk(best_v, n)  # largest first, as torch.topk on the whole gradient
    return best_p.index_select(0, j)
