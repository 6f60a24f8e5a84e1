"""Compact rewired layers: memory and work follow K, the number of active connections.

A `CompactLinear` stores only its K active connections: their flat positions (`active_idx`,
slot order), their theta (`theta_active`) and their weights (`values`, the trained Parameter,
always sign * theta since active theta >= 0). Dormant connections have no state at all: Deep R
never reads a dormant theta (a revived connection starts at theta = 0), and the sign of any
position comes from a counter-based hash of (sign_seed, position), so it is fixed for life and
costs no memory. Forward and backward are CSR sparse products (torch.sparse, sparse_kernels.py):
the gradient exists for the active connections only, and the input's gradient is computed only
when the input requires one. Revival tests candidate positions for membership in the sorted
active positions (searchsorted) instead of listing the dormant ones. The sorted indices of the
slots (row-major; column-major once the input needs a gradient) are merged after each change,
in O(K) passes plus O(changed log K), never re-sorted.

The layer implements the interface of layer_api.Rewired (the full-size-only methods raise),
so the optimizers that need no dormant state run unchanged on it. An active connection's sign is
the sign of its weight (the methods that train w directly may flip it), or the hash's where the
weight is 0; a dormant position always has the hash's sign. `layers.SparseLinear.from_rewired`
builds the equivalent full-size layer (same positions, slot order, theta and signs) for checks.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from . import validate
from .dense_grad import top_dense_grad
from .layer_api import Rewired, resolve_k
from .sampling import sample_positions
from .sparse_kernels import CSRLayout, CSRProduct, find_sorted, merge_sorted, sort_slots

# -- signs: a counter-based hash of (seed, position) --------------------------------------------
# The 32-bit finaliser of MurmurHash3 (Austin Appleby, public domain): every input bit affects
# every output bit, so consecutive positions get independent-looking signs.
_M32 = 0xFFFFFFFF


def _mul32(h, c: int):
    """(h * c) mod 2^32 for 0 <= h < 2^32, in 16-bit halves so int64 never overflows."""
    return (h * (c & 0xFFFF) + (((h * (c >> 16)) & 0xFFFF) << 16)) & _M32


def _fmix32(h):
    h = h ^ (h >> 16)
    h = _mul32(h, 0x85EBCA6B)
    h = h ^ (h >> 13)
    h = _mul32(h, 0xC2B2AE35)
    return h ^ (h >> 16)


def position_signs(seed: int, positions: torch.Tensor, dtype=torch.float32) -> torch.Tensor:
    """+1 or -1 (equal odds) for each flat position, a fixed function of (seed, position)."""
    s = int(seed) & (2**64 - 1)
    key = _fmix32((s & _M32) ^ _fmix32((s >> 32) & _M32))  # python ints: the seed's part
    p = positions.to(torch.int64)
    h = _fmix32((p & _M32) ^ _fmix32(((p >> 32) & _M32) ^ key))
    return torch.where((h >> 31) == 1, 1.0, -1.0).to(dtype)


class CompactLinear(Rewired, nn.Module):
    """A Linear layer (out_features x in_features) with Deep R rewiring that stores only its K
    active connections. Made by `SparseLinear(..., compute="sparse")` or `sparsify(...,
    compute="sparse")`. Parameters: `values` (K weights, slot order) and `bias`."""

    compute = "sparse"
    _PARAM = "values"

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *,
                 k: int | None = None, connectivity: float | None = None,
                 generator: torch.Generator | None = None, device=None, dtype=None):
        nn.Module.__init__(self)
        validate.integer("in_features", in_features, low=1)
        validate.integer("out_features", out_features, low=1)
        self.in_features, self.out_features = int(in_features), int(out_features)
        n = self.in_features * self.out_features
        k = resolve_k(k, connectivity, n)
        gen = generator or torch.Generator().manual_seed(0)
        dtype = dtype or torch.get_default_dtype()
        dev = torch.device("cpu") if device is None or torch.device(device).type == "meta" \
            else torch.device(device)
        # Reference initialisation (docs/algorithms.md): K positions uniform without
        # replacement (drawn, never listed: n may be 10^10), theta = |N(0, 1/n_in)|; the sign
        # of w0 is independent of |w0|, so the hash sign gives w0's law.
        sign_seed = int(torch.randint(2**62, (1,), generator=gen))
        one = lambda c: torch.ones_like(c, dtype=torch.bool)  # noqa: E731
        chosen = sample_positions(n, k, n, gen, is_dormant=one,
                                  list_dormant=lambda: torch.arange(n)).sort().values
        theta = torch.randn(k, generator=gen, dtype=dtype).abs_().div_(math.sqrt(self.in_features))
        self.register_buffer("sign_seed", torch.tensor(sign_seed, dtype=torch.int64))
        self.register_buffer("active_idx", chosen)
        self.register_buffer("theta_active", theta)
        self.values = nn.Parameter(theta * position_signs(sign_seed, chosen, dtype))
        if bias:
            bound = 1 / math.sqrt(self.in_features)  # nn.Linear's bias init, seeded here
            self.bias = nn.Parameter(torch.rand(self.out_features, generator=gen, dtype=dtype)
                                     .mul_(2 * bound).sub_(bound))
        else:
            self.register_parameter("bias", None)
        self._layout_version = 0
        self._rebuild_orders()
        self._layout = None
        self.to(dev)
        self.touch()

    # -- shape and views ------------------------------------------------------------------------
    @property
    def weight_shape(self) -> tuple[int, ...]:
        return (self.out_features, self.in_features)

    @property
    def n_positions(self) -> int:
        return self.out_features * self.in_features

    @property
    def sign_active(self) -> torch.Tensor:
        """Signs of the active connections (slot order): the weight's, the hash's where it is 0."""
        v = self._parameters["values"].detach()
        h = position_signs(int(self.sign_seed), self._buffers["active_idx"], v.dtype)
        return torch.where(v > 0, 1.0, torch.where(v < 0, -1.0, h)).to(v.dtype)

    def _find(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(is active, its slot where it is) for flat positions: a search in the sorted ones."""
        b = self._buffers
        return find_sorted(b["_sorted_pos"], b["_order"], positions)

    def theta_at(self, positions: torch.Tensor) -> torch.Tensor:
        """theta of the given flat positions; NaN for dormant ones (not stored in this mode)."""
        hit, slot = self._find(positions)
        th = self._buffers["theta_active"].index_select(0, slot)
        return torch.where(hit, th, torch.full_like(th, float("nan")))

    def sign_at(self, positions: torch.Tensor) -> torch.Tensor:
        v = self._parameters["values"].detach()
        s = position_signs(int(self.sign_seed), positions, v.dtype)
        hit, slot = self._find(positions)
        w = torch.where(hit, v.index_select(0, slot), torch.zeros_like(s))
        return torch.where(w > 0, 1.0, torch.where(w < 0, -1.0, s)).to(v.dtype)

    def full_theta(self) -> torch.Tensor:
        """Weight-shaped theta, NaN where dormant (O(all positions): for inspection only)."""
        out = torch.full((self.n_positions,), float("nan"), dtype=self.theta_active.dtype,
                         device=self.active_idx.device)
        return out.index_copy_(0, self.active_idx, self.theta_active).view(self.weight_shape)

    def full_sign(self) -> torch.Tensor:
        """Weight-shaped signs: the hash's, the active connections' own (O(all positions): for
        inspection only)."""
        pos = torch.arange(self.n_positions, device=self.active_idx.device)
        s = position_signs(int(self.sign_seed), pos, self.values.dtype)
        return s.index_copy_(0, self.active_idx, self.sign_active).view(self.weight_shape)

    def active_mask(self) -> torch.Tensor:
        mask = torch.zeros(self.n_positions, dtype=torch.bool, device=self.active_idx.device)
        return mask.index_fill_(0, self.active_idx, True).view(self.weight_shape)

    def effective_weight(self) -> torch.Tensor:
        """The dense weight matrix (O(all positions): for checks and small layers)."""
        w = torch.zeros(self.n_positions, dtype=self.values.dtype, device=self.values.device)
        return w.index_copy_(0, self.active_idx, self.values.detach()).view(self.weight_shape)

    def theta_grad(self) -> torch.Tensor | None:
        raise NotImplementedError("a compact layer has no full-size theta gradient; "
                                  "active_grad() gives dE/dw of the active connections")

    def densify(self) -> None:
        raise NotImplementedError("a compact layer cannot make every position active: it would "
                                  "store all of them (use compute='dense')")

    def write_theta(self, theta: torch.Tensor, active_idx: torch.Tensor) -> None:
        raise NotImplementedError("a compact layer keeps no theta for dormant positions")

    def record_dense_grad(self, on: bool) -> None:
        """Start (on) or stop keeping the input and output gradient of the backward passes: the
        dense gradient's top-k needs them (memory: batch x (in + out) per pass)."""
        self.__dict__["_record"] = [] if on else None

    def top_grad_positions(self, n: int, staying: torch.Tensor) -> torch.Tensor:
        """Blockwise from the passes recorded since record_dense_grad(True) (no backward:
        every gradient 0); memory O(K + one block), see dense_grad.py."""
        record = self.__dict__.get("_record")
        if record is None:
            raise RuntimeError("call record_dense_grad(True) before the backward pass whose "
                               "dense gradient top_grad_positions should use")
        keep = self.active_idx[staying].sort().values
        return top_dense_grad(record, n, self.out_features, self.in_features, keep)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}, k={self.k}, compute='sparse'")

    # -- forward ---------------------------------------------------------------------------------
    def layout(self) -> CSRLayout:
        """CSR index arrays for the current active positions (rebuilt when they changed)."""
        if self._layout is None or self._layout[0] != self._layout_version:
            rows, cols = self._index(""), self._index("_t")
            self._layout = (self._layout_version,
                            CSRLayout(self.weight_shape, rows, cols if cols[0] is not None else None))
        return self._layout[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.in_features:
            raise ValueError(f"input's last dimension must be in_features={self.in_features}, "
                             f"got shape {tuple(x.shape)}")
        lead = x.shape[:-1]
        if x.requires_grad and torch.is_grad_enabled() and self._buffers["_sorted_pos_t"] is None:
            self._sort_columns()  # the input's gradient needs W^T's CSR: kept from now on
        y = CSRProduct.apply(x.reshape(-1, self.in_features), self.values, self.layout(),
                              self.__dict__.get("_record"))
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*lead, self.out_features)

    # -- the optimizers' interface (O(K)) --------------------------------------------------------
    def gather_active(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self._buffers["theta_active"].clone(), self.sign_active

    def active_weight(self) -> torch.Tensor:
        return self._parameters["values"].detach().clone()

    def active_grad(self) -> torch.Tensor | None:
        return self._parameters["values"].grad

    def write_active(self, theta_active: torch.Tensor, weight_active: torch.Tensor) -> None:
        self._buffers["theta_active"].copy_(theta_active)
        self._parameters["values"].data.copy_(weight_active)
        self.touch()

    def write_signed(self, w: torch.Tensor) -> None:
        """theta = |w|, weight = w (the sign of an active connection is its weight's)."""
        self._buffers["theta_active"].copy_(w.abs())
        self._parameters["values"].data.copy_(w)
        self.touch()

    def replace_slots(self, slots: torch.Tensor, new: torch.Tensor) -> None:
        """The connections in `slots` are dormant now: they are forgotten (no dormant state);
        the positions `new` take those slots at theta 0 (weight 0)."""
        old = self.active_idx.index_select(0, slots)
        self.active_idx.index_copy_(0, slots, new)
        self.theta_active.index_fill_(0, slots, 0)
        self.values.data.index_fill_(0, slots, 0)
        self._reorder(old, new, slots)
        self.touch()

    def add_active(self, new: torch.Tensor) -> torch.Tensor:
        """Activate the dormant positions `new` at theta 0 (K grows)."""
        k0 = self.k
        self.active_idx = torch.cat([self.active_idx, new])
        self.theta_active = torch.cat([self.theta_active, self.theta_active.new_zeros(new.numel())])
        self.values.data = torch.cat([self.values.data, self.values.data.new_zeros(new.numel())])
        self._reorder(new[:0], new, torch.arange(k0, self.k, device=new.device))
        self.touch()
        return new

    def remove_slots(self, slots: torch.Tensor) -> torch.Tensor:
        """Make the connections in `slots` dormant (K shrinks); returns their positions."""
        gone = self.active_idx.index_select(0, slots)
        keep = torch.ones(self.k, dtype=torch.bool, device=slots.device)
        keep[slots] = False
        self.active_idx = self.active_idx[keep]
        self.theta_active = self.theta_active[keep]
        self.values.data = self.values.data[keep]
        renumber = keep.cumsum(0).sub_(1).clamp_(min=0)  # old slot -> new slot (the staying)
        self._reorder(gone, gone[:0], slots[:0], renumber)
        self.touch()
        return gone

    def is_dormant(self, positions: torch.Tensor) -> torch.Tensor:
        """Not in active_idx, or in it with theta < 0 (died this step, not yet replaced)."""
        member, slot = self._find(positions)
        return ~member | (self._buffers["theta_active"].index_select(0, slot) < 0)

    def list_dormant(self) -> torch.Tensor:
        """Only when most positions are active (see sampling.sample_positions): O(n) = O(K)."""
        b = self._buffers
        keep = torch.ones(self.n_positions, dtype=torch.bool, device=b["active_idx"].device)
        keep.index_fill_(0, b["active_idx"][b["theta_active"] >= 0], False)
        return torch.nonzero(keep).view(-1)

    # -- bookkeeping -----------------------------------------------------------------------------
    @torch.no_grad()
    def sync_weight(self) -> None:
        """Rebuild `values` from theta_active (a compact layer holds active connections only)."""
        if bool((self.theta_active < 0).any()):
            raise ValueError("theta_active must be >= 0: a compact layer stores active "
                             "connections only")
        self.values.data.copy_(self.theta_active * self.sign_active)
        self.touch()

    def _key_t(self, pos: torch.Tensor) -> torch.Tensor:
        return (pos % self.in_features) * self.out_features + pos // self.in_features

    def _reorder(self, leaving: torch.Tensor, new: torch.Tensor, new_slots: torch.Tensor,
                 slot_map: torch.Tensor | None = None) -> None:
        """Positions `leaving` left, `new` arrived in `new_slots` (slot_map: old slot -> new
        slot, when slots were removed): merge the sorted indices (O(K) passes, no sort)."""
        work = self.__dict__.setdefault("_work", ({}, {}))  # scratch kept between merges
        self._set_index("", merge_sorted(self._index(""), self.in_features, leaving, new,
                                         new_slots, slot_map, work[0]))
        if self._buffers["_sorted_pos_t"] is not None:
            self._set_index("_t", merge_sorted(self._index("_t"), self.out_features,
                                               self._key_t(leaving), self._key_t(new),
                                               new_slots, slot_map, work[1]))
        self._layout_version += 1

    _INDEX = ("_sorted_pos", "_order", "_col")  # row-major; + "_t": column-major (W^T's CSR)

    def _index(self, suffix: str) -> tuple:
        return tuple(self._buffers[name + suffix] for name in self._INDEX)

    def _set_index(self, suffix: str, index: tuple) -> None:
        # not persistent: rebuilt from active_idx on load; buffers so .to(device) moves them
        for name, t in zip(self._INDEX, index):
            self.register_buffer(name + suffix, t, persistent=False)

    def _rebuild_orders(self) -> None:
        """The row-major index from scratch (and the column-major one, if the layer keeps it)."""
        self._set_index("", sort_slots(self.active_idx, self.in_features))
        if self._buffers.get("_sorted_pos_t") is None:
            self._set_index("_t", (None, None, None))
        else:
            self._sort_columns()
        self._layout_version += 1

    def _sort_columns(self) -> None:
        """The column-major index (for the input's gradient through W^T), from scratch."""
        self._set_index("_t", sort_slots(self._key_t(self.active_idx), self.out_features))
        self._layout_version += 1

    def _apply(self, fn, *args, **kwargs):
        out = super()._apply(fn, *args, **kwargs)
        self._layout_version += 1
        return out

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        for name in ("active_idx", "theta_active"):  # K may differ: resize before the copy
            if prefix + name in state_dict:
                setattr(self, name, torch.empty_like(state_dict[prefix + name],
                                                     device=self.active_idx.device))
        if prefix + "values" in state_dict:
            self.values.data = torch.empty_like(state_dict[prefix + "values"],
                                                device=self.values.device)
        nn.Module._load_from_state_dict(self, state_dict, prefix, *args, **kwargs)
        self._rebuild_orders()
        self.touch()


def model_memory(model: nn.Module) -> dict[str, int]:
    """Bytes held by the model's own tensors: parameters, their gradients, buffers (the
    rewiring state). Full-size layers count n_positions per tensor, compact layers K."""
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    grads = sum(p.grad.numel() * p.grad.element_size() for p in model.parameters()
                if p.grad is not None)
    buffers = sum(b.numel() * b.element_size() for b in model.buffers())
    return {"params": params, "grads": grads, "buffers": buffers,
            "total": params + grads + buffers}
