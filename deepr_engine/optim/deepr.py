"""Deep R (Bellec et al. 2018, Algorithm 1; docs/algorithms.md) as a torch.optim optimizer."""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from ..sampling import sample_dormant
from .base import nonfinite_gradient
from .exact_k import ExactK

class DeepR(ExactK):
    """Deep R (Bellec et al. 2018, Algorithm 1) with exactly K active connections.

    K per layer is each layer's active count when the optimizer is made (k= or connectivity=
    to set it here); global_k=True keeps one K for the whole network instead, reviving
    uniformly among all its dormant positions (the paper's pseudocode).
    """

    def __init__(self, model: nn.Module, lr: float, alpha: float = 0.0,
                 temperature: float = 0.0, *, k: int | Sequence[int] | None = None,
                 connectivity: float | Sequence[float] | None = None, global_k: bool = False,
                 gradient: str = "sgd", momentum: float = 0.9,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 seed: int | None = 0, check_finite: bool = True):
        super().__init__(model, lr, alpha, temperature, k=k, connectivity=connectivity,
                         global_k=global_k, gradient=gradient, momentum=momentum, betas=betas,
                         eps=eps, seed=seed, check_finite=check_finite)

    @torch.no_grad()
    def step(self, closure=None):
        """Algorithm 1: for active connections theta <- theta - lr*dE/dtheta - lr*alpha
        + sqrt(2*lr*T)*nu; those that fell below 0 become dormant; revive uniformly chosen
        dormant ones at theta = 0 until exactly K are active."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        layers, groups = self.layers, self.rewired_groups
        active = self._active_view()  # theta and sign of all active connections, concatenated
        th, sign_a, bounds = active["theta"], active["sign"], active["bounds"]
        lr, alpha, temperature, uniform = self._per_connection(groups, active)

        # 1. dE/dtheta = s * dE/dw on the active connections only (O(K) from here on)
        grads = [l.weight.grad.view(-1).index_select(0, l.active_idx) if l.weight.grad is not None
                 else torch.zeros(l.k, device=th.device, dtype=th.dtype) for l in layers]
        g = torch.cat(grads).mul_(sign_a)
        if any(gr["gradient"] != "sgd" for gr in groups):  # these rules write state: check first
            self._assert_finite([g])
            g = torch.cat([self._direction(gr, l.weight, g[s:e], l.active_idx)
                           for gr, l, (s, e) in zip(groups, layers, bounds)])
        # theta <- theta - lr*grad - lr*alpha + sqrt(2*lr*T)*nu   (a new tensor: nothing written yet)
        if uniform:
            new_th = torch.add(th, g, alpha=-lr)
        else:
            new_th = torch.addcmul(th, lr, g, value=-1)
        if uniform and temperature == 0:
            new_th.sub_(lr * alpha)
        elif uniform:
            new_th.add_(torch.normal(-lr * alpha, math.sqrt(2 * lr * temperature), th.shape,
                                     generator=self.generator, device=th.device, dtype=th.dtype))
        else:
            new_th.add_(torch.normal(-lr * alpha, (2 * lr * temperature).sqrt(),
                                     generator=self.generator))
        died = new_th < 0
        # the one host sync of a step: deaths per layer, and theta's sum (non-finite iff a
        # gradient was NaN/inf)
        ends = torch.tensor([e - 1 for _, e in bounds], device=th.device)
        counts = torch.cat([died.cumsum(0).index_select(0, ends), new_th.sum().view(1)]).tolist()
        if self.check_finite and not math.isfinite(counts[-1]):
            raise nonfinite_gradient()
        n_died = [int(c) for c in counts[:-1]]
        n_died = [n_died[0]] + [n_died[i] - n_died[i - 1] for i in range(1, len(n_died))]

        # 2. write back; a connection that just died gets weight s * max(theta, 0) = 0 here
        self.step_count += 1
        self._step_dense_params()
        weights = new_th.clamp(min=0).mul_(sign_a)
        for l, (s, e) in zip(layers, bounds):
            l.theta.view(-1).index_copy_(0, l.active_idx, new_th[s:e])
            l.weight.view(-1).index_copy_(0, l.active_idx, weights[s:e])
        active["theta"] = new_th
        # 3. prune and revive
        self._rewire(died, n_died, active)
        self._remember(active)
        return loss

    @staticmethod
    def _per_connection(groups, active):
        """lr, alpha, T as scalars when all layers share them, else one value per connection."""
        keys = ("lr", "alpha", "temperature")
        first = [groups[0][k] for k in keys]
        if all([gr[k] for k in keys] == first for gr in groups):
            return (*first, True)
        ks = torch.tensor([e - s for s, e in active["bounds"]], device=active["theta"].device)
        vals = [torch.repeat_interleave(torch.tensor([float(gr[k]) for gr in groups],
                                                     device=ks.device, dtype=active["theta"].dtype), ks)
                for k in keys]
        return (*vals, False)

    # -- the compact view of active connections ---------------------------------------------
    def _signature(self) -> list:
        # Versions of the tensors behind the view: any in-place write (a load, a user's edit)
        # or a new active_idx invalidates it. Read from _buffers: Module.__getattr__ is slow.
        sig = []
        for l in self.layers:
            buf = l._buffers
            sig += (id(buf["active_idx"]), buf["active_idx"]._version, buf["theta"]._version,
                    buf["sign"]._version)
        return sig

    def _active_view(self) -> dict:
        """theta and sign of every active connection, concatenated layer by layer in
        active_idx order. Kept between steps; rebuilt when anything else changed a layer."""
        cached = getattr(self, "_active", None)
        if cached is not None and cached["signature"] == self._signature():
            return cached
        bounds, start = [], 0
        for l in self.layers:
            bounds.append((start, start + l.k))
            start += l.k
        return {
            "theta": torch.cat([l.theta.view(-1).index_select(0, l.active_idx) for l in self.layers]),
            "sign": torch.cat([l.sign.view(-1).index_select(0, l.active_idx) for l in self.layers]),
            "bounds": bounds,
        }

    def _remember(self, active: dict) -> None:
        if active:
            active["signature"] = self._signature()
        self._active = active or None

    # -- pruning and reviving ----------------------------------------------------------------
    def _rewire(self, died: torch.Tensor, n_died: list[int], active: dict) -> None:
        """Make the connections that fell below 0 dormant and revive as many (per layer, or
        over the whole network with global_k) uniformly among the dormant ones, at theta 0.
        A revived connection's weight is already 0: it was dormant."""
        events = self._no_events()
        if sum(n_died) == 0:
            self.last_events = events
            return
        if self.global_k:
            revive = self._split_global(self._sample_global(sum(n_died), n_died))
            for i, (layer, (s, e), new) in enumerate(zip(self.layers, active["bounds"], revive)):
                idx, d = layer.active_idx, died[s:e]
                layer.active_idx = idx[~d]
                events[i] = {"pruned": idx[d], "activated": self._activate(layer, new)}
            active.clear()  # the layers' K changed: rebuild the view next step
        else:
            for i, (layer, n, (s, e)) in enumerate(zip(self.layers, n_died, active["bounds"])):
                if n == 0:
                    continue
                idx = layer.active_idx
                slots = torch.nonzero(died[s:e]).view(-1)
                pruned = idx.index_select(0, slots)
                new = sample_dormant(layer.theta.view(-1), n, layer.n_positions - layer.k + n,
                                     self.generator)
                layer.theta.view(-1).index_fill_(0, new, 0)
                self._forget_moments(layer.weight, new)
                idx.index_copy_(0, slots, new)  # the revived take the slots of the pruned
                active["theta"][s:e].index_fill_(0, slots, 0)
                active["sign"][s:e].index_copy_(0, slots, layer.sign.view(-1).index_select(0, new))
                events[i] = {"pruned": pruned, "activated": new}
        self.last_events = events


