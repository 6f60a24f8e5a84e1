"""Rewired layers: every weight position k has a parameter theta_k and a fixed sign s_k.

Position k is active iff theta_k >= 0, and then its weight is s_k * theta_k; a dormant position
has weight exactly 0 (docs/algorithms.md). The layer's ordinary `weight` Parameter holds these
effective weights, so the forward and backward passes cost what a dense layer costs; the
optimizers keep `weight` in sync with `theta` and only touch the K active positions
(`active_idx`) through the small interface below (gather_active, write_active, replace_slots,
sample_dormant), which a layer that stores only its active connections can implement too.

Every writer bumps `version` (optimizers, sync_weight, loading): caches of the optimizers are
keyed on it. A write to `weight` from anywhere else (another torch.optim optimizer, say) is
noticed by `check_weight()` at the optimizer's next step.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from . import validate
from .sampling import sample_dormant


class Rewired:
    """Mixin for a module with a `weight` Parameter whose positions are rewired."""

    theta: torch.Tensor       # same shape as weight; active iff >= 0
    sign: torch.Tensor        # same shape as weight; +1 or -1, fixed for life
    active_idx: torch.Tensor  # flat indices of the active positions (int64, K of them)
    version: int = 0          # bumped by every write through this interface
    compute = "dense"         # full-size state and dense products; "sparse": sparse.CompactLinear
    _weight_version: int = -1  # torch's counter of `weight` after our last write

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

    # -- views -------------------------------------------------------------------------------
    @property
    def k(self) -> int:
        """Number of active connections."""
        return self.active_idx.numel()

    @property
    def n_positions(self) -> int:
        return self.theta.numel()

    @property
    def weight_shape(self) -> tuple[int, ...]:
        return tuple(self.weight.shape)

    @property
    def rewired_param(self) -> nn.Parameter:
        """The Parameter the optimizer trains (here the full-size weight)."""
        return self.weight

    def theta_at(self, positions: torch.Tensor) -> torch.Tensor:
        return self.theta.view(-1).index_select(0, positions)

    def full_theta(self) -> torch.Tensor:
        return self.theta

    def full_sign(self) -> torch.Tensor:
        return self.sign

    @property
    def connectivity(self) -> float:
        return self.k / self.n_positions

    def active_mask(self) -> torch.Tensor:
        """Boolean tensor, weight-shaped: True where theta >= 0."""
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

    # -- what the optimizers use (O(K) per call) ---------------------------------------------
    # (The per-step methods read _buffers / _parameters directly: Module.__getattr__ is slow
    # enough to show in a step of a small network.)
    def gather_active(self) -> tuple[torch.Tensor, torch.Tensor]:
        """theta and sign of the active connections, in active_idx (slot) order."""
        b = self._buffers
        idx = b["active_idx"]
        return b["theta"].view(-1).index_select(0, idx), b["sign"].view(-1).index_select(0, idx)

    def active_grad(self) -> torch.Tensor | None:
        """dE/dw of the active connections (slot order); None before the first backward."""
        grad = self._parameters["weight"].grad
        if grad is None:
            return None
        return grad.view(-1).index_select(0, self._buffers["active_idx"])

    def write_active(self, theta_active: torch.Tensor, weight_active: torch.Tensor) -> None:
        """Store theta and weight (= sign * max(theta, 0)) of the active slots."""
        b = self._buffers
        idx = b["active_idx"]
        b["theta"].view(-1).index_copy_(0, idx, theta_active)
        self._parameters["weight"].view(-1).index_copy_(0, idx, weight_active)
        self.touch()

    def replace_slots(self, slots: torch.Tensor, new: torch.Tensor) -> None:
        """The connections in `slots` of active_idx are dormant now (their theta < 0 and weight
        0 were written already); the dormant positions `new` take those slots, at theta 0
        (their weight is 0 already: they were dormant)."""
        b = self._buffers
        b["theta"].view(-1).index_fill_(0, new, 0)
        b["active_idx"].index_copy_(0, slots, new)
        self.touch()

    def add_active(self, new: torch.Tensor) -> torch.Tensor:
        """Activate the dormant positions `new` at theta 0 (K grows)."""
        self.theta.view(-1)[new] = 0
        self.weight.view(-1)[new] = 0
        self.active_idx = torch.cat([self.active_idx, new])
        self.touch()
        return new

    def remove_slots(self, slots: torch.Tensor) -> torch.Tensor:
        """Make the connections in `slots` dormant (K shrinks); returns their positions."""
        idx = self.active_idx
        gone = idx[slots]
        keep = torch.ones_like(idx, dtype=torch.bool)
        keep[slots] = False
        self.theta.view(-1)[gone] = -torch.finfo(self.theta.dtype).tiny
        self.weight.view(-1)[gone] = 0
        self.active_idx = idx[keep]
        self.touch()
        return gone

    def sample_dormant(self, n: int, n_dormant: int, generator: torch.Generator) -> torch.Tensor:
        """n distinct positions uniformly among those with theta < 0 (n_dormant of them)."""
        return sample_dormant(self.theta.view(-1), n, n_dormant, generator)

    def sign_at(self, positions: torch.Tensor) -> torch.Tensor:
        return self.sign.view(-1).index_select(0, positions)

    # -- bookkeeping -------------------------------------------------------------------------
    def touch(self) -> None:
        """Called by every writer after it changed theta, sign, weight or active_idx."""
        d = self.__dict__  # plain attributes: no nn.Module.__setattr__ on every step
        d["version"] = d.get("version", 0) + 1
        d["_weight_version"] = self._parameters["weight"]._version

    def check_weight(self) -> None:
        """Raise if `weight` was written by something other than the rewiring interface (it
        must stay sign * relu(theta); a plain torch.optim optimizer over model.parameters()
        would break that)."""
        if self._parameters["weight"]._version != self._weight_version:
            raise RuntimeError(
                f"the weight of {type(self).__name__} {tuple(self.weight.shape)} was changed "
                "outside its rewiring optimizer (for example by another torch.optim optimizer "
                "given model.parameters()). Its weight must equal sign * relu(theta): give other "
                "optimizers only the parameters that are not rewired, or, after editing theta "
                "on purpose, call layer.sync_weight().")

    @torch.no_grad()
    def sync_weight(self) -> None:
        """Rebuild `weight` and `active_idx` from theta (O(all positions); not used per step)."""
        self.weight.copy_(self.effective_weight())
        self.active_idx = torch.nonzero(self.theta.view(-1) >= 0).view(-1)
        self.touch()

    def _apply(self, fn, *args, **kwargs):
        out = super()._apply(fn, *args, **kwargs)  # .to(device) / .double(): new tensors
        self.touch()
        return out

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # K may differ between the saved and the current layer: resize before the copy.
        key = prefix + "active_idx"
        if key in state_dict:
            self.active_idx = torch.empty_like(state_dict[key], device=self.active_idx.device)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self.touch()


class SparseLinear(Rewired, nn.Linear):
    """nn.Linear with Deep R rewiring of its weight matrix (out_features x in_features).

    compute="dense" (default): full-size theta, sign and weight, dense products.
    compute="sparse": returns a `sparse.CompactLinear`, which stores only the K active
    connections and multiplies sparsely (memory and work O(K); Deep R only)."""

    def __new__(cls, *args, compute: str = "dense", **kwargs):
        if validate.choice("compute", compute, COMPUTE_MODES) == "sparse":
            from .sparse import CompactLinear
            return CompactLinear(*args, **kwargs)
        return super().__new__(cls)

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *,
                 k: int | None = None, connectivity: float | None = None,
                 generator: torch.Generator | None = None, device=None, dtype=None,
                 compute: str = "dense"):
        nn.Linear.__init__(self, in_features, out_features, bias=bias, device=device, dtype=dtype)
        self.init_rewiring(resolve_k(k, connectivity, self.weight.numel()),
                           generator or torch.Generator().manual_seed(0))

    def extra_repr(self) -> str:
        return super().extra_repr() + f", k={self.k}"


class SparseConv2d(Rewired, nn.Conv2d):
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


COMPUTE_MODES = ("dense", "sparse")


def resolve_k(k, connectivity, n: int, name: str = "k") -> int:
    if (k is None) == (connectivity is None):
        raise ValueError("give exactly one of k (connections per layer) or connectivity "
                         "(fraction of positions in (0, 1])")
    if k is not None:
        return validate.integer(name, k, low=1, high=n)
    c = validate.finite("connectivity", connectivity, low=0.0, high=1.0, low_open=True)
    return max(1, min(n, round(c * n)))


def rewired_layers(model: nn.Module) -> list[Rewired]:
    """The rewired layers of a model, in module order."""
    return [m for m in model.modules() if isinstance(m, Rewired)]


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
    from .sparse import CompactLinear
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
