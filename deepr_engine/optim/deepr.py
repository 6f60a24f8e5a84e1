"""Deep R (Bellec et al. 2018, Algorithm 1; docs/algorithms.md) as a torch.optim optimizer."""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from .. import validate
from .base import LANGEVIN, nonfinite_gradient
from .exact_k import ExactK


class DeepR(ExactK):
    """Deep R with exactly K active connections.

    K per layer is each layer's active count when the optimizer is made (k= or connectivity=
    to set it here); global_k=True keeps one K for the whole network instead. Revival with a
    global K is `revive="uniform"` among all the network's dormant positions (the paper's
    pseudocode; K drifts between layers: on 784-300-100-10 from [2352, 900, 300] to about
    [2880, 510, 163] in 2,000 steps), or `revive="proportional"`, the reference script's
    alternative: the revivals of a step are split between layers in proportion to their
    initial K (a multinomial draw), then uniform within each layer.

    alpha (L1 pull lr*alpha per step on every active theta) sets how fast weak connections
    die, so it sets the turnover: with alpha = 0 nothing established ever dies. T = 0 is plain
    sparse SGD with rewiring; the reference MNIST script's noise (std lr * 1e-5 per step) is
    T = lr * 1e-10 / 2.

    Defaults learn on the MNIST network (784-300-100-10 at 1% / 3% / 30%, batch 32, 750 steps
    on the 8,000 mnist10k training images, test accuracy): lr (when not given) by the gradient
    rule, DEFAULT_LR, and alpha 1e-5, from the study's sweeps (benchmarks/accuracy.py, README):
    sgd lr 0.8 reached 0.846, adam lr 0.006 0.911; the former defaults (lr 0.05, alpha 1e-4)
    0.214.
    """

    DEFAULT_LR = {"sgd": 0.8, "momentum": 0.04, "adam": 0.006}

    SPARSE_REFUSAL = None  # runs on compact layers through the layer interface (per-layer K)
    HYPER = LANGEVIN

    def __init__(self, model: nn.Module, lr: float | None = None, alpha: float = 1e-5,
                 temperature: float = 0.0, *, k: int | Sequence[int] | None = None,
                 connectivity: float | Sequence[float] | None = None, global_k: bool = False,
                 revive: str = "uniform", gradient: str = "sgd", momentum: float = 0.9,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 seed: int | None = 0, check_finite: bool = True):
        lr = self.DEFAULT_LR.get(gradient, 0.8) if lr is None else lr
        super().__init__(model, lr, k=k, connectivity=connectivity, global_k=global_k,
                         gradient=gradient, momentum=momentum, betas=betas, eps=eps, seed=seed,
                         check_finite=check_finite, alpha=alpha, temperature=temperature)
        self.revive = validate.choice("revive", revive, ("uniform", "proportional"))
        self.initial_k = [l.k for l in self.layers]

    @torch.no_grad()
    def step(self, closure=None):
        """Algorithm 1, one iteration."""
        loss = self._begin_step(closure)
        active = self._active_view()                   # theta and sign of the K active ones
        before = active["theta"]                       # (kept: the events report theta before/after)
        grad = self._theta_gradient(active)            # dE/dtheta = s * dE/dw
        theta = self._langevin(active, grad)           # - lr*grad - lr*alpha + sqrt(2 lr T) nu
        n_died = self._count_deaths(theta, active)     # theta < 0 per layer (refuses NaN)
        self.step_count += 1
        self._step_dense_params()                      # biases: the gradient rule only
        self._write_back(theta, active)                # the dead get weight s*max(theta,0) = 0
        self._prune_and_revive(theta < 0, n_died, active, before)  # as many revived: exactly K again
        self._remember(active)
        return loss

    # -- the steps ----------------------------------------------------------------------------
    def _theta_gradient(self, active: dict) -> torch.Tensor:
        """dE/dtheta = s * dE/dw on the active connections only (O(K)), through the gradient
        rule (sgd: itself; momentum / adam: their direction)."""
        grads = [l.active_grad() for l in self.layers]
        g = torch.cat([gr if gr is not None else active["theta"].new_zeros(l.k)
                       for gr, l in zip(grads, self.layers)]).mul_(active["sign"])
        groups = self.rewired_groups
        if all(gr["gradient"] == "sgd" for gr in groups):
            return g
        self._assert_finite([g])  # these rules write state: refuse NaN before they do
        return torch.cat([self._direction(gr, l.rewired_param, g[s:e], l.active_idx)
                          for gr, l, (s, e) in zip(groups, self.layers, active["bounds"])])

    def _langevin(self, active: dict, grad: torch.Tensor) -> torch.Tensor:
        """theta - lr*grad - lr*alpha + sqrt(2*lr*T)*nu, nu ~ N(0, 1) per connection (a new
        tensor: nothing is written yet)."""
        th = active["theta"]
        lr, alpha, temperature, uniform = self._per_connection(active)
        if uniform:
            new = torch.add(th, grad, alpha=-lr)
            if temperature == 0:
                return new.sub_(lr * alpha)
            return new.add_(torch.normal(-lr * alpha, math.sqrt(2 * lr * temperature), th.shape,
                                         generator=self.generator, device=th.device, dtype=th.dtype))
        new = torch.addcmul(th, lr, grad, value=-1)
        return new.add_(torch.normal(-lr * alpha, (2 * lr * temperature).sqrt(), generator=self.generator))

    def _count_deaths(self, theta: torch.Tensor, active: dict) -> list[int]:
        """Connections whose theta fell below 0, per layer. The one host sync of a step; it also
        reads theta's sum, which is not finite iff a gradient was NaN/inf."""
        died = theta < 0
        ends = torch.tensor([e - 1 for _, e in active["bounds"]], device=theta.device)
        counts = torch.cat([died.cumsum(0).index_select(0, ends), theta.sum().view(1)]).tolist()
        if self.check_finite and not math.isfinite(counts[-1]):
            raise nonfinite_gradient()
        cum = [0] + [int(c) for c in counts[:-1]]
        return [b - a for a, b in zip(cum[:-1], cum[1:])]

    def _write_back(self, theta: torch.Tensor, active: dict) -> None:
        weights = theta.clamp(min=0).mul_(active["sign"])
        for l, (s, e) in zip(self.layers, active["bounds"]):
            l.write_active(theta[s:e], weights[s:e])
        active["theta"] = theta

    def _prune_and_revive(self, died: torch.Tensor, n_died: list[int], active: dict,
                          before: torch.Tensor) -> None:
        """The connections that fell below 0 are dormant now; revive as many (per layer, or over
        the whole network with global_k) uniformly among the dormant ones (those that just died
        included), at theta 0. The events carry each pruned connection's theta before this
        step and after it (< 0), for the step replay."""
        events = self._no_events()
        if sum(n_died) == 0:
            self.last_events = events
            return
        if self.global_k:
            revive = self._split_proportional(n_died) if self.revive == "proportional" else \
                self._split_global(self._sample_global(sum(n_died), n_died))
            for i, (layer, (s, e), new) in enumerate(zip(self.layers, active["bounds"], revive)):
                slots = torch.nonzero(died[s:e]).view(-1)
                theta = (before[s:e].index_select(0, slots), active["theta"][s:e].index_select(0, slots))
                pruned = layer.remove_slots(slots)  # theta kept
                events[i] = {"pruned": pruned, "activated": self._activate(layer, new),
                             "theta_before": theta[0], "theta_after": theta[1]}
            active.clear()  # the layers' K changed: rebuild the view next step
            self.last_events = events
            return
        for i, (layer, n, (s, e)) in enumerate(zip(self.layers, n_died, active["bounds"])):
            if n == 0:
                continue
            slots = torch.nonzero(died[s:e]).view(-1)
            pruned = layer.active_idx.index_select(0, slots)
            theta = (before[s:e].index_select(0, slots), active["theta"][s:e].index_select(0, slots))
            new = layer.sample_dormant(n, layer.n_positions - layer.k + n, self.generator)
            layer.replace_slots(slots, new)  # the revived take the slots of the pruned
            self._forget_moments(layer.rewired_param, new)
            active["theta"][s:e].index_fill_(0, slots, 0)
            active["sign"][s:e].index_copy_(0, slots, layer.sign_at(new))
            events[i] = {"pruned": pruned, "activated": new, "theta_before": theta[0], "theta_after": theta[1]}
        self.last_events = events

    def _split_proportional(self, n_died: list[int]) -> list[torch.Tensor]:
        """The reference script's global revival: sum(n_died) revivals shared between layers in
        proportion to their initial K, uniform among each layer's dormant positions."""
        p = torch.tensor(self.initial_k, dtype=torch.float64)
        picks = torch.multinomial(p, sum(n_died), replacement=True,
                                  generator=self._cpu_generator())
        counts = torch.bincount(picks, minlength=len(self.layers)).tolist()
        room = [l.n_positions - l.k + d for l, d in zip(self.layers, n_died)]
        for i in range(len(counts)):  # a layer without enough dormant positions passes the rest on
            extra = counts[i] - room[i]
            if extra > 0:
                counts[i] = room[i]
                j = max(range(len(counts)), key=lambda m: room[m] - counts[m])
                counts[j] += extra
        return [l.sample_dormant(c, r, self.generator) for l, c, r in zip(self.layers, counts, room)]

    def _cpu_generator(self) -> torch.Generator:
        """multinomial over a few layers runs on the CPU; seeded from the main generator."""
        if self.generator.device.type == "cpu":
            return self.generator
        seed = int(torch.randint(2**62, (1,), generator=self.generator, device=self.generator.device))
        return torch.Generator().manual_seed(seed)

    def state_dict(self) -> dict:
        return super().state_dict() | {"initial_k": list(self.initial_k)}

    def load_state_dict(self, state_dict: dict) -> None:
        state_dict = dict(state_dict)
        self.initial_k = [int(k) for k in state_dict.pop("initial_k", self.initial_k)]
        super().load_state_dict(state_dict)

    # -- the compact view of active connections, kept between steps ---------------------------
    def _per_connection(self, active: dict):
        """lr, alpha, T as scalars when all layers share them, else one value per connection."""
        keys = ("lr", "alpha", "temperature")
        groups = self.rewired_groups
        first = [groups[0][k] for k in keys]
        if all([gr[k] for k in keys] == first for gr in groups):
            return (*first, True)
        th = active["theta"]
        ks = torch.tensor([e - s for s, e in active["bounds"]], device=th.device)
        vals = [torch.repeat_interleave(torch.tensor([float(gr[k]) for gr in groups],
                                                     device=th.device, dtype=th.dtype), ks)
                for k in keys]
        return (*vals, False)

    def _signature(self) -> tuple:
        return tuple(l.version for l in self.layers)

    def _active_view(self) -> dict:
        """theta and sign of every active connection, concatenated layer by layer in slot
        order. Kept between steps; rebuilt when a layer's version moved (anything else wrote it)."""
        cached = getattr(self, "_active", None)
        if cached is not None and cached["signature"] == self._signature():
            return cached
        bounds, start = [], 0
        for l in self.layers:
            bounds.append((start, start + l.k))
            start += l.k
        pairs = [l.gather_active() for l in self.layers]
        return {"theta": torch.cat([t for t, _ in pairs]), "sign": torch.cat([s for _, s in pairs]),
                "bounds": bounds}

    def _remember(self, active: dict) -> None:
        if active:
            active["signature"] = self._signature()
        self._active = active or None
