"""ExactK: the machinery of every method that keeps exactly K active connections per layer
(or K in total with global_k): live K changes, activating and deactivating connections."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .. import validate
from ..layer_api import Rewired, resolve_k
from ..sampling import sample_positions, smallest
from .base import RewiringOptimizer

class ExactK(RewiringOptimizer):
    """Shared by every optimizer that keeps exactly K active connections per layer (or K in
    total with global_k): live K changes, and the bookkeeping of activating and deactivating.

    What `k` means is the method's `K_MEANING`: "active" (exactly this many, every step),
    "target" (reached by a schedule: magnitude pruning), "floor" (never fewer: L1 shrinkage) or
    "none" (dense).
    """

    K_MEANING = "active"
    SET_ONLY = ("k", "connectivity")

    def __init__(self, model: nn.Module, lr: float, *, k: int | Sequence[int] | None = None,
                 connectivity: float | Sequence[float] | None = None, global_k: bool = False,
                 **kw):
        super().__init__(model, lr, **kw)
        self.global_k = bool(global_k)
        self.total_k = sum(layer.k for layer in self.layers)
        for group, layer in zip(self.rewired_groups, self.layers):
            group["k"] = layer.k
        if k is not None or connectivity is not None:
            self.set_k(k=k, connectivity=connectivity)
            self.last_events = self._no_events()

    def _sample_global(self, n: int, n_died: list[int]) -> torch.Tensor:
        """n distinct positions uniformly among the dormant ones of all layers, numbered layer
        after layer (each layer answers for its own positions: no full-size state needed)."""
        n_dormant = sum(l.n_positions - l.k for l in self.layers) + sum(n_died)
        starts = [0]
        for l in self.layers:
            starts.append(starts[-1] + l.n_positions)

        def is_dormant(cand):
            out = torch.empty(cand.shape, dtype=torch.bool, device=cand.device)
            for l, a, b in zip(self.layers, starts[:-1], starts[1:]):
                sel = torch.nonzero((cand >= a) & (cand < b)).view(-1)
                out[sel] = l.is_dormant(cand.index_select(0, sel) - a)
            return out

        def list_dormant():
            return torch.cat([l.list_dormant() + a for l, a in zip(self.layers, starts)])

        return sample_positions(starts[-1], n, n_dormant, self.generator, is_dormant=is_dormant,
                                list_dormant=list_dormant, device=self.device)

    def _split_global(self, flat: torch.Tensor) -> list[torch.Tensor]:
        out, start = [], 0
        for layer in self.layers:
            end = start + layer.n_positions
            out.append(flat[(flat >= start) & (flat < end)] - start)
            start = end
        return out

    # -- live K changes ----------------------------------------------------------------------
    def set(self, *, k=None, connectivity=None, **hyper) -> None:
        """Change lr, alpha, temperature, ... and/or K live. Raising K revives uniformly chosen
        dormant connections at theta = 0; lowering it makes the active connections with the
        smallest theta dormant. With global_k, k is one total (or connectivity one fraction of
        all positions)."""
        targets = None
        if k is not None or connectivity is not None:
            targets = self._k_targets(k, connectivity)  # validated before anything changes
        if hyper:
            super().set(**hyper)
        if targets is not None:
            self._apply_k(targets)

    def set_k(self, k=None, connectivity=None) -> None:
        self._apply_k(self._k_targets(k, connectivity))

    def _k_targets(self, k, connectivity):
        if self.global_k:
            if isinstance(k, (list, tuple)) or isinstance(connectivity, (list, tuple)):
                raise ValueError("with global_k=True, k must be one total and connectivity one "
                                 "fraction of all positions")
            total = sum(l.n_positions for l in self.layers)
            return resolve_k(k, connectivity, total)
        n = len(self.layers)
        ks = validate.per_layer("k", k, n) if k is not None else [None] * n
        cs = validate.per_layer("connectivity", connectivity, n) if connectivity is not None else [None] * n
        return [resolve_k(k_i, c_i, layer.n_positions, name=f"k[{i}]")
                for i, (layer, k_i, c_i) in enumerate(zip(self.layers, ks, cs))]

    @torch.no_grad()
    def _apply_k(self, targets) -> None:
        events = self._no_events()
        if self.global_k:
            change = targets - self.total_k
            if change > 0:
                news = self._split_global(self._sample_global(change, [0] * len(self.layers)))
                for i, new in enumerate(news):
                    events[i]["activated"] = self._activate(self.layers[i], new)
            elif change < 0:
                th_all = torch.cat([l.gather_active()[0] for l in self.layers])
                drop_all = smallest(th_all, -change)
                start = 0
                for i, layer in enumerate(self.layers):
                    local = drop_all[(drop_all >= start) & (drop_all < start + layer.k)] - start
                    start += layer.k
                    events[i]["pruned"] = self._deactivate(layer, local)
        else:
            for i, (layer, k_new) in enumerate(zip(self.layers, targets)):
                if k_new > layer.k:
                    new = layer.sample_dormant(k_new - layer.k, layer.n_positions - layer.k,
                                               self.generator)
                    events[i]["activated"] = self._activate(layer, new)
                elif k_new < layer.k:
                    th = layer.gather_active()[0]
                    events[i]["pruned"] = self._deactivate(layer, smallest(th, layer.k - k_new))
        self._sync_k(events)

    def _sync_k(self, events: list[dict]) -> None:
        """After the active sets changed: K in the groups and in total, and the events."""
        for group, layer in zip(self.rewired_groups, self.layers):
            group["k"] = layer.k
        self.total_k = sum(layer.k for layer in self.layers)
        self.last_events = events

    def _activate(self, layer: Rewired, new: torch.Tensor) -> torch.Tensor:
        self._forget_moments(layer.rewired_param, new)
        return layer.add_active(new)

    def _deactivate(self, layer: Rewired, slots: torch.Tensor) -> torch.Tensor:
        return layer.remove_slots(slots)

    def state_dict(self) -> dict:
        sd = super().state_dict()
        sd["total_k"] = self.total_k
        return sd

    def load_state_dict(self, state_dict: dict) -> None:
        state_dict = dict(state_dict)
        total = state_dict.pop("total_k", None)
        super().load_state_dict(state_dict)
        self.total_k = int(total) if total is not None else sum(l.k for l in self.layers)


