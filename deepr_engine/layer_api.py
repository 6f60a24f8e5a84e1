"""The rewired-layer interface: everything the optimizers and the views read or write.

Every weight position k of a rewired layer has a parameter theta_k and a sign s_k; position k is
active iff theta_k >= 0, and then its weight is s_k * theta_k (docs/algorithms.md). A layer keeps
exactly the active positions in `active_idx` (flat, "slot" order: slot j holds active_idx[j]).

Two implementations:
- full-size (layers.SparseLinear / SparseConv2d, compute="dense"): theta, sign and weight for
  every position, dense products;
- compact (sparse.CompactLinear, compute="sparse"): the K active connections only, sparse
  products; a dormant position has no theta (NaN in the views) and its sign comes from a hash.

Optimizers touch a layer only through the methods below; those marked "full-size only" raise
on a compact layer (its optimizers refuse compute="sparse" first, see optim/base.py
SPARSE_REFUSAL). Every write bumps `version`; a write to the trained Parameter from elsewhere
is caught by `check_weight()`.
"""
from __future__ import annotations

import abc

import torch
from torch import nn

from . import validate
from .sampling import sample_positions

COMPUTE_MODES = ("dense", "sparse")


class Rewired(abc.ABC):
    """Base of every rewired layer (mixed into an nn.Module). `isinstance(m, Rewired)` finds
    both kinds. Shared here: K, connectivity, uniform choice of dormant positions (from the
    layer's `is_dormant` / `list_dormant`), version bookkeeping."""

    active_idx: torch.Tensor  # flat positions of the active connections (int64, K, slot order)
    version: int = 0          # bumped by every write through this interface
    compute = "dense"         # "dense": full-size layer; "sparse": compact layer
    _PARAM = "weight"         # name of the trained Parameter (rewired_param)
    _weight_version: int = -1  # torch's counter of that Parameter after our last write

    # -- shape and counts ------------------------------------------------------------------
    @property
    def k(self) -> int:
        """Number of active connections."""
        return self._buffers["active_idx"].numel()

    @property
    @abc.abstractmethod
    def n_positions(self) -> int:
        """Number of weight positions (active or not)."""

    @property
    @abc.abstractmethod
    def weight_shape(self) -> tuple[int, ...]:
        """Shape of the (possibly never materialised) weight tensor."""

    @property
    def connectivity(self) -> float:
        return self.k / self.n_positions

    @property
    def rewired_param(self) -> nn.Parameter:
        """The Parameter the optimizer trains (full-size: `weight`; compact: `values`)."""
        return self._parameters[self._PARAM]

    # -- reading the active connections (O(K)) ---------------------------------------------
    @abc.abstractmethod
    def gather_active(self) -> tuple[torch.Tensor, torch.Tensor]:
        """theta and sign of the active connections, slot order (new tensors)."""

    @abc.abstractmethod
    def active_weight(self) -> torch.Tensor:
        """Weights of the active connections, slot order (a new tensor)."""

    @abc.abstractmethod
    def active_grad(self) -> torch.Tensor | None:
        """dE/dw of the active connections, slot order; None before the first backward."""

    @abc.abstractmethod
    def theta_at(self, positions: torch.Tensor) -> torch.Tensor:
        """theta at flat positions (a compact layer: NaN where dormant)."""

    @abc.abstractmethod
    def sign_at(self, positions: torch.Tensor) -> torch.Tensor:
        """Signs at flat positions (the sign a dormant position revives with)."""

    # -- writing the active connections (O(K)) ---------------------------------------------
    @abc.abstractmethod
    def write_active(self, theta_active: torch.Tensor, weight_active: torch.Tensor) -> None:
        """Store theta and weight (= sign * max(theta, 0)) of the active slots (Deep R: the sign
        is fixed; a slot whose theta fell below 0 stays in its slot until replaced)."""

    @abc.abstractmethod
    def write_signed(self, w: torch.Tensor) -> None:
        """Store signed weights of the active slots (methods that train w directly): theta =
        |w|, sign = sign(w) (unchanged where w is 0), weight = w."""

    # -- changing the active set -----------------------------------------------------------
    @abc.abstractmethod
    def replace_slots(self, slots: torch.Tensor, new: torch.Tensor) -> None:
        """The connections in `slots` (their theta < 0, weight 0 already written) are dormant
        now; the dormant positions `new` take those slots at theta 0, weight 0."""

    @abc.abstractmethod
    def add_active(self, new: torch.Tensor) -> torch.Tensor:
        """Activate the dormant positions `new` at theta 0 (appended slots; K grows)."""

    @abc.abstractmethod
    def remove_slots(self, slots: torch.Tensor) -> torch.Tensor:
        """Make the connections in `slots` dormant, weight 0 (K shrinks; the other slots keep
        their order); returns their positions. A theta already < 0 is kept."""

    @abc.abstractmethod
    def is_dormant(self, positions: torch.Tensor) -> torch.Tensor:
        """Bool per flat position: not active, or active with theta < 0 (died this step)."""

    @abc.abstractmethod
    def list_dormant(self) -> torch.Tensor:
        """Every position `is_dormant` says yes to, ascending (O(all positions))."""

    def sample_dormant(self, n: int, n_dormant: int, generator: torch.Generator) -> torch.Tensor:
        """n distinct positions uniformly among the dormant ones (n_dormant of them); both
        implementations consume the generator alike and make the same choices."""
        return sample_positions(self.n_positions, n, n_dormant, generator,
                                is_dormant=self.is_dormant, list_dormant=self.list_dormant,
                                device=self._buffers["active_idx"].device)

    # -- full-size only (O(all positions)), and RigL's growth ------------------------------
    @abc.abstractmethod
    def densify(self) -> None:
        """Make every position active, theta = |theta| (full-size only)."""

    @abc.abstractmethod
    def write_theta(self, theta: torch.Tensor, active_idx: torch.Tensor) -> None:
        """Store theta of every position (flat) and the active positions, which must be exactly
        where theta >= 0, ascending; weight follows (full-size only: soft-Deep R)."""

    @abc.abstractmethod
    def top_grad_positions(self, n: int, staying: torch.Tensor) -> torch.Tensor:
        """The n positions with the largest |dE/dw| of the dense gradient, largest first,
        among those not active in the slots `staying` (bool per slot) (RigL's growth)."""

    def record_dense_grad(self, on: bool) -> None:
        """Keep (from the next backward pass on) what top_grad_positions needs, or stop; a
        full-size layer's weight.grad is dense already: nothing to do."""

    # -- views (O(all positions): inspection, checks) --------------------------------------
    @abc.abstractmethod
    def full_theta(self) -> torch.Tensor:
        """Weight-shaped theta (compact: NaN where dormant). Read only."""

    @abc.abstractmethod
    def full_sign(self) -> torch.Tensor:
        """Weight-shaped signs. Read only."""

    @abc.abstractmethod
    def active_mask(self) -> torch.Tensor:
        """Weight-shaped bool: True at the active positions."""

    @abc.abstractmethod
    def effective_weight(self) -> torch.Tensor:
        """Weight-shaped s * theta on active positions, 0 elsewhere."""

    @abc.abstractmethod
    def theta_grad(self) -> torch.Tensor | None:
        """Weight-shaped dE/dtheta (full-size only)."""

    @abc.abstractmethod
    def sync_weight(self) -> None:
        """Rebuild the trained weights from theta after theta was edited on purpose."""

    # -- bookkeeping -----------------------------------------------------------------------
    def touch(self) -> None:
        """Called by every writer after it changed theta, sign, weights or the active set."""
        d = self.__dict__  # plain attributes: no nn.Module.__setattr__ on every step
        d["version"] = d.get("version", 0) + 1
        d["_weight_version"] = self._parameters[self._PARAM]._version

    def check_weight(self) -> None:
        """Raise if the trained Parameter was written by something other than this interface
        (a plain torch.optim optimizer over model.parameters(), say)."""
        if self._parameters[self._PARAM]._version != self._weight_version:
            raise RuntimeError(
                f"the {self._PARAM} of {type(self).__name__} {self.weight_shape} was changed "
                "outside its rewiring optimizer (for example by another torch.optim optimizer "
                "given model.parameters()). It must equal sign * relu(theta): give other "
                "optimizers only the parameters that are not rewired, or, after editing theta "
                "on purpose, call layer.sync_weight().")

    def _apply(self, fn, *args, **kwargs):
        out = super()._apply(fn, *args, **kwargs)  # .to(device) / .double(): new tensors
        self.touch()
        return out


def resolve_k(k, connectivity, n: int, name: str = "k") -> int:
    """K from exactly one of k (count) or connectivity (fraction of n)."""
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
