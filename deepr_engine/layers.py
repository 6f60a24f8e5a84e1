"""Full-size rewired layers (compute="dense") and the factories of both kinds.

A full-size layer keeps theta, sign and weight for every position (docs/algorithms.md): position
k is active iff theta_k >= 0, and then its weight is s_k * theta_k; a dormant position has weight
exactly 0. The layer's ordinary `weight` Parameter holds these effective weights, so the forward
and backward passes cost what a dense layer costs; the optimizers keep `weight` in sync with
`theta` through the interface of layer_api.Rewired and touch only the K active positions per
step. `SparseLinear(..., compute="sparse")` and `sparsify(..., compute="sparse")` make compact
layers instead (sparse.CompactLinear: active connections only).
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from . import validate
from .layer_api import COMPUTE_MODES, Rewired, resolve_k, rewired_layers
from .sparse import CompactLinear

__all__ = ["FullSize", "SparseLinear", "SparseConv2d", "Rewired", "CompactLinear", "sparsify",
           "rewired_layers", "resolve_k", "COMPUTE_MODES"]


class FullSize(Rewired):
    """The full-size implementation of the interface, mixed into nn.Linear / nn.Conv2d:
    buffers `theta`, `sign` (weight-shaped) and `active_idx`."""

    theta: torch.Tensor       # same shape as weight; active iff >= 0
    sign: torch.Tensor        # same shape as weight; +1 or -1
    compute = "dense"

    def init_rewiring(self, k: int, generator: torch.Generator) -> None:
        """Reference initialisation (docs/algorithms.md): w0 ~ N(0, 1/n_in), sign = sign(w0), exactly k positions
        chosen uniformly without replacement get theta = |w0|, the rest are dormant."""
        weight = self.weight
        n = weight.numel()
        validate.integer("k", k, low=1, high=n)
        fan_in = n // weight.shape[0]
        w0 = torch.randn(weight.shape, generator=generator, dtype=weight.dtype) / math.sqrt(fan_in)
        sign = torch.where(w0 >= 0, 1.0, -1.0).to(weight.dtype)
        chosen = torch.randperm(n, generator=generator)[:k].sort().values
        # Dormant theta is strictly negative (note -0.0 >= 0 would count as active).
        theta = -(w0.abs() + torch.finfo(weight.dtype).tiny)
        theta.view(-1)[chosen] = w0.abs().view(-1)[chosen]
        dev = weight.device
        self.register_buffer("theta", theta.to(dev))
        self.register_buffer("sign", sign.to(dev))
        self.register_buffer("active_idx", chosen.to(dev))
        self.sync_weight()

    # -- shape -------------------------------------------------------------------------------
    @property
    def n_positions(self) -> int:
        return self._buffers["theta"].numel()

    @property
    def weight_shape(self) -> tuple[int, ...]:
        return tuple(self._parameters["weight"].shape)

    # -- per step (O(K)). These read _buffers / _parameters directly: Module.__getattr__ is
    # slow enough to show in a step of a small network. --------------------------------------
    def gather_active(self) -> tuple[torch.Tensor, torch.Tensor]:
        b = self._buffers
        idx = b["active_idx"]
        return b["theta"].view(-1).index_select(0, idx), b["sign"].view(-1).index_select(0, idx)

    def active_weight(self) -> torch.Tensor:
        return self._parameters["weight"].view(-1).index_select(0, self._buffers["active_idx"])

    def active_grad(self) -> torch.Tensor | None:
        grad = self._parameters["weight"].grad
        if grad is None:
            return None
        return grad.view(-1).index_select(0, self._buffers["active_idx"])

    def theta_at(self, positions: torch.Tensor) -> torch.Tensor:
        return self._buffers["theta"].view(-1).index_select(0, positions)

    def sign_at(self, positions: torch.Tensor) -> torch.Tensor:
        return self._buffers["sign"].view(-1).index_select(0, positions)

    def write_active(self, theta_active: torch.Tensor, weight_active: torch.Tensor) -> None:
        b = self._buffers
        idx = b["active_idx"]
        b["theta"].view(-1).index_copy_(0, idx, theta_active)
        self._parameters["weight"].view(-1).index_copy_(0, idx, weight_active)
        self.touch()

    def write_signed(self, w: torch.Tensor) -> None:
        b = self._buffers
        idx, sign = b["active_idx"], b["sign"].view(-1)
        old = sign.index_select(0, idx)
        new_sign = torch.where(w > 0, 1.0, torch.where(w < 0, -1.0, old)).to(sign.dtype)
        sign.index_copy_(0, idx, new_sign)
        b["theta"].view(-1).index_copy_(0, idx, w.abs())
        self._parameters["weight"].view(-1).index_copy_(0, idx, w)
        self.touch()

    def replace_slots(self, slots: torch.Tensor, new: torch.Tensor) -> None:
        b = self._buffers
        b["theta"].view(-1).index_fill_(0, new, 0)  # their weight is 0 already: they were dormant
        b["active_idx"].index_copy_(0, slots, new)
        self.touch()

    def add_active(self, new: torch.Tensor) -> torch.Tensor:
        b = self._buffers
        b["theta"].view(-1).index_fill_(0, new, 0)
        self._parameters["weight"].view(-1).index_fill_(0, new, 0)
        b["active_idx"] = torch.cat([b["active_idx"], new])
        self.touch()
        return new

    def remove_slots(self, slots: torch.Tensor) -> torch.Tensor:
        b = self._buffers
        idx = b["active_idx"]
        gone = idx.index_select(0, slots)
        keep = torch.ones_like(idx, dtype=torch.bool)
        keep[slots] = False
        theta = b["theta"].view(-1)
        th = theta.index_select(0, gone)
        theta.index_copy_(0, gone, torch.where(th < 0, th, -torch.finfo(th.dtype).tiny))
        self._parameters["weight"].view(-1).index_fill_(0, gone, 0)
        b["active_idx"] = idx[keep]
        self.touch()
        return gone

    def is_dormant(self, positions: torch.Tensor) -> torch.Tensor:
        return self._buffers["theta"].view(-1).index_select(0, positions) < 0

    def list_dormant(self) -> torch.Tensor:
        return torch.nonzero(self._buffers["theta"].view(-1) < 0).view(-1)

    # -- full-size only ----------------------------------------------------------------------
    @torch.no_grad()
    def densify(self) -> None:
        """Every position active with |theta| (dormant theta keeps the initial magnitude)."""
        self.theta.abs_()
        self.sync_weight()

    def write_theta(self, theta: torch.Tensor, active_idx: torch.Tensor) -> None:
        b = self._buffers
        w = self._parameters["weight"].view(-1)
        w.index_fill_(0, b["active_idx"], 0)
        th = b["theta"].view(-1)
        th.copy_(theta)
        w.index_copy_(0, active_idx, th.index_select(0, active_idx)
                      .mul_(b["sign"].view(-1).index_select(0, active_idx)))
        b["active_idx"] = active_idx
        self.touch()

    def top_grad_positions(self, n: int, staying: torch.Tensor) -> torch.Tensor:
        grad = self._parameters["weight"].grad
        if grad is None:
            score = torch.zeros(self.n_positions, device=self.theta.device)
        else:
            score = grad.view(-1).abs()  # a new tensor
        score[self.active_idx[staying]] = -1.0  # connections that stay active cannot grow
        return torch.topk(score, n).indices

    # -- views -------------------------------------------------------------------------------
    def full_theta(self) -> torch.Tensor:
        return self.theta

    def full_sign(self) -> torch.Tensor:
        return self.sign

    def active_mask(self) -> torch.Tensor:
        return self.theta >= 0

    def effective_weight(self) -> torch.Tensor:
        """s * theta on active positions, exactly 0 on dormant ones (computed from theta)."""
        return torch.where(self.theta >= 0, self.sign * self.theta, torch.zeros_like(self.theta))

    def theta_grad(self) -> torch.Tensor | None:
        """dE/dtheta = s * dE/dw on active positions and 0 on dormant ones (w = s*relu(theta))."""
        if self.weight.grad is None:
            return None
        return torch.where(self.theta >= 0, self.sign * self.weight.grad,
                           torch.zeros_like(self.theta))

    @torch.no_grad()
    def sync_weight(self) -> None:
        """Rebuild `weight` and `active_idx` from theta (O(all positions); not used per step)."""
        self.weight.copy_(self.effective_weight())
        self.active_idx = torch.nonzero(self.theta.view(-1) >= 0).view(-1)
        self.touch()

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # K may differ between the saved and the current layer: resize before the copy.
        key = prefix + "active_idx"
        if key in state_dict:
            self.active_idx = torch.empty_like(state_dict[key], device=self.active_idx.device)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self.touch()


class SparseLinear(FullSize, nn.Linear):
    """nn.Linear with Deep R rewiring of its weight matrix (out_features x in_features).

    compute="dense" (default): full-size theta, sign and weight, dense products.
    compute="sparse": returns a `sparse.CompactLinear`, which stores only the K active
    connections and multiplies sparsely (memory and work O(K))."""

    def __new__(cls, *args, compute: str = "dense", **kwargs):
        if validate.choice("compute", compute, COMPUTE_MODES) == "sparse":
            return CompactLinear(*args, **kwargs)
        return super().__new__(cls)

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *,
                 k: int | None = None, connectivity: float | None = None,
                 generator: torch.Generator | None = None, device=None, dtype=None,
                 compute: str = "dense"):
        nn.Linear.__init__(self, in_features, out_features, bias=bias, device=device, dtype=dtype)
        self.init_rewiring(resolve_k(k, connectivity, self.weight.numel()),
                           generator or torch.Generator().manual_seed(0))

    @classmethod
    @torch.no_grad()
    def from_rewired(cls, layer: Rewired) -> "SparseLinear":
        """A full-size SparseLinear in exactly the state of a rewired linear layer (a compact
        one, say): same positions in the same slot order, same theta and signs of the active
        connections, signs of all positions from `full_sign()`, dormant theta = -tiny.
        O(all positions): for checks and small layers."""
        out_f, in_f = layer.weight_shape
        theta_a, sign_a = layer.gather_active()
        dev, dtype = theta_a.device, theta_a.dtype
        bias = getattr(layer, "bias", None)
        d = cls(in_f, out_f, bias is not None, k=1, dtype=dtype).to(dev)
        d.sign.copy_(layer.full_sign())
        idx = layer.active_idx
        d.sign.view(-1).index_copy_(0, idx, sign_a)
        theta = torch.full((d.n_positions,), -torch.finfo(dtype).tiny, dtype=dtype, device=dev)
        d.theta.copy_(theta.index_copy_(0, idx, theta_a).view(d.theta.shape))
        d.active_idx = idx.clone()
        d.weight.copy_(d.effective_weight())
        if bias is not None:
            d.bias.copy_(bias)
        d.touch()
        return d

    def extra_repr(self) -> str:
        return super().extra_repr() + f", k={self.k}"


class SparseConv2d(FullSize, nn.Conv2d):
    """nn.Conv2d whose kernel entries (out x in/groups x kh x kw) are rewired."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 dilation=1, groups: int = 1, bias: bool = True, padding_mode: str = "zeros", *,
                 k: int | None = None, connectivity: float | None = None,
                 generator: torch.Generator | None = None, device=None, dtype=None):
        nn.Conv2d.__init__(self, in_channels, out_channels, kernel_size, stride, padding,
                           dilation, groups, bias, padding_mode, device=device, dtype=dtype)
        self.init_rewiring(resolve_k(k, connectivity, self.weight.numel()),
                           generator or torch.Generator().manual_seed(0))

    def extra_repr(self) -> str:
        return super().extra_repr() + f", k={self.k}"


def sparsify(model: nn.Module, connectivity: float | Sequence[float] | None = None, *,
             k: int | Sequence[int] | None = None, seed: int | None = 0,
             generator: torch.Generator | None = None, compute: str = "dense",
             device=None) -> nn.Module:
    """Replace every nn.Linear and nn.Conv2d of `model` (in place) by its rewired counterpart.

    connectivity: one fraction for all layers or one per layer (module order); or k: active
    connections per layer. Biases are copied; the rest of the model is left as it is.
    Initialisation follows the reference code (see Rewired.init_rewiring) and is seeded.

    compute="sparse" makes every nn.Linear a `sparse.CompactLinear` (only the K active
    connections stored, sparse products; Conv2d is not supported there). A model built on the
    meta device is sparsified without allocating any dense weight: its layers go to `device`
    (default CPU) and get nn.Linear's bias initialisation, seeded, since a meta bias has no
    values to copy.
    """
    validate.choice("compute", compute, COMPUTE_MODES)
    targets = [(parent, name, child) for parent in model.modules()
               for name, child in parent.named_children()
               if isinstance(child, (nn.Linear, nn.Conv2d)) and not isinstance(child, Rewired)]
    if not targets:
        raise ValueError("model has no nn.Linear or nn.Conv2d layer to sparsify")
    if (k is None) == (connectivity is None):
        raise ValueError("sparsify needs exactly one of connectivity= or k=")
    ks = validate.per_layer("k", k, len(targets)) if k is not None else [None] * len(targets)
    cs = (validate.per_layer("connectivity", connectivity, len(targets))
          if connectivity is not None else [None] * len(targets))
    gen = generator or torch.Generator().manual_seed(0 if seed is None else seed)
    if compute == "sparse":
        convs = [name for _, name, old in targets if isinstance(old, nn.Conv2d)]
        if convs:
            raise ValueError(f"compute='sparse' supports nn.Linear layers only; the model has "
                             f"nn.Conv2d layer(s) {convs}: use compute='dense' for it")
        _sparsify_compact(targets, ks, cs, gen, device)
        return model
    if any(old.weight.is_meta for _, _, old in targets):
        raise ValueError("a model on the meta device can be sparsified with compute='sparse' "
                         "only (compute='dense' allocates the full weight)")
    for (parent, name, old), k_i, c_i in zip(targets, ks, cs):
        kw = dict(k=k_i, connectivity=c_i, generator=gen, dtype=old.weight.dtype)
        has_bias = old.bias is not None
        if isinstance(old, nn.Conv2d):
            if old.padding_mode != "zeros" and not isinstance(old.padding, (tuple, int)):
                raise ValueError("sparsify supports Conv2d with explicit padding only")
            new = SparseConv2d(old.in_channels, old.out_channels, old.kernel_size, old.stride,
                               old.padding, old.dilation, old.groups, has_bias,
                               old.padding_mode, **kw)
        else:
            new = SparseLinear(old.in_features, old.out_features, has_bias, **kw)
        if has_bias:
            with torch.no_grad():
                new.bias.copy_(old.bias.detach().cpu())
        new.to(old.weight.device)
        new.train(old.training)
        setattr(parent, name, new)
    return model


def _sparsify_compact(targets, ks, cs, gen, device) -> None:
    for (parent, name, old), k_i, c_i in zip(targets, ks, cs):
        meta = old.weight.is_meta
        dev = torch.device(device) if device is not None else (
            torch.device("cpu") if meta else old.weight.device)
        new = CompactLinear(old.in_features, old.out_features, old.bias is not None, k=k_i,
                            connectivity=c_i, generator=gen, device=dev, dtype=old.weight.dtype)
        if old.bias is not None and not meta:
            with torch.no_grad():
                new.bias.copy_(old.bias.detach())
        new.train(old.training)
        setattr(parent, name, new)
