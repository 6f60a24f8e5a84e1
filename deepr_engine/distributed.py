"""Deep R under torch.nn.parallel.DistributedDataParallel (data-parallel training).

Every rank holds the whole model and makes the same rewiring choices, so the masks never
diverge and nothing but gradients needs to travel:
- same seed on every rank for sparsify (same initial positions, theta, signs) and for the
  optimizer (same noise and the same revival draws);
- DDP all-reduces (averages) the gradients of the registered parameters (`weight` of a
  full-size layer, `values` of a compact one) before `step()`, and every rank gets the same
  averaged values, so every rank computes the same theta update, the same deaths and, from the
  same generator state, the same revivals.
The rewiring state (theta, sign, active_idx) are buffers: DDP's default broadcast_buffers=True
would copy rank 0's every forward, full-size for dense layers; it is identical anyway, so wrap
with broadcast_buffers=False. DDP also broadcasts rank 0's parameters in place when it wraps the
model; the optimizer's foreign-write check would report that, so make the optimizer after
wrapping, or call `touch()` on every rewired layer after wrapping (wrap() does).
"""
from __future__ import annotations

from torch import nn

from .layers import rewired_layers


def wrap(model: nn.Module, **ddp_kwargs) -> nn.parallel.DistributedDataParallel:
    """DistributedDataParallel(model, broadcast_buffers=False, **ddp_kwargs), with the rewired
    layers marked as written by their owner after DDP's initial broadcast of parameters."""
    ddp_kwargs.setdefault("broadcast_buffers", False)
    ddp = nn.parallel.DistributedDataParallel(model, **ddp_kwargs)
    for layer in rewired_layers(model):
        layer.touch()
    return ddp
