"""The methods Deep R is measured against, as optimizers on the same rewired layers.

They train the signed weight w of each active connection directly, so a weight may change
sign: the layer keeps theta = |w| and sign = sign(w) for active connections (weight =
sign * relu(theta) still holds; layer.write_signed) and theta < 0 for inactive ones. Everything
else (K, events, telemetry, checkpoints, the app) works as for Deep R. They read and write the
layers only through the interface of layer_api.Rewired.

compute="sparse" (compact layers, active connections only): StaticSparse, SET,
MagnitudePruning and L1Shrinkage run on them with the same choices and weights as on full-size
layers in the same state. A compact layer cannot make every position active, so there
MagnitudePruning and L1Shrinkage start from the layers' current mask (start="mask", which
full-size layers accept too) instead of from dense: magnitude pruning then prunes that mask
down to the target K. Dense and RigL refuse compact layers (SPARSE_REFUSAL says why).

- Dense: every position active, plain training.
- StaticSparse: the initial random mask, never changed.
Each method overrides one small method of MaskedTraining: `update_mask()` (when the set of
active connections changes) and, for drop-and-grow methods, `grow()` (where new connections go).
Schedule parameters (update_every, drop_fraction, t_end, prune_at, ...) are hyperparameters in
the param groups: `set()` changes them live and `state_dict()` keeps them.

- SET (Mocanu et al. 2018): every `update_every` steps drop the fraction `drop_fraction` of
  active connections with the smallest |w| and regrow as many uniformly among the inactive
  positions (not the ones just dropped), new weights 0.
- RigL (Evci et al. 2020): drop as SET; regrow where |dE/dw| of the dense gradient is
  largest among positions inactive after the drop; the drop fraction follows
  drop_fraction/2 * (1 + cos(pi t / t_end)) and updates stop at t_end.
- MagnitudePruning (Han et al. 2015): train dense, prune the smallest |w| down to K at
  `prune_at` (or in `prune_events` equal steps, `prune_every` apart), then retrain with the
  mask fixed.
- L1Shrinkage: L1 on the weights (soft threshold lr*alpha per step), connections whose |w|
  falls to `threshold` or below removed for good (never below the floor K given by k= or
  connectivity=; the smallest go first).
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from .. import validate
from ..layer_api import Rewired
from ..hyper import Hyper, declare
from .base import LANGEVIN
from .exact_k import ExactK
from ..sampling import smallest


UPDATE_EVERY = Hyper("update_every", 100, 1, 10**9, "SET / RigL: steps between mask updates",
                     scale="int", label="Update interval", url_key="every")


class MaskedTraining(ExactK):
    """Gradient steps on the signed weights of the active connections; subclasses decide
    when the set of active connections changes (`update_mask`) and where new ones grow
    (`grow`)."""

    def __init__(self, model: nn.Module, lr: float, *, k: int | Sequence[int] | None = None,
                 connectivity: float | Sequence[float] | None = None,
                 gradient: str = "sgd", momentum: float = 0.9,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 seed: int | None = 0, check_finite: bool = True, **hyper):
        super().__init__(model, lr, k=k, connectivity=connectivity, gradient=gradient,
                         momentum=momentum, betas=betas, eps=eps, seed=seed,
                         check_finite=check_finite, **hyper)

    @torch.no_grad()
    def step(self, closure=None):
        """w <- w - lr * direction(dE/dw) on the active connections (then a method's proximal
        step, L1 shrinkage's soft threshold); then the method's mask update."""
        loss = self._begin_step(closure)
        grads = [l.active_grad() for l in self.layers]
        grads = [g if g is not None else l.rewired_param.new_zeros(l.k)
                 for g, l in zip(grads, self.layers)]
        self._assert_finite(grads)
        self.step_count += 1
        self._step_dense_params()
        for group, layer, g in zip(self.rewired_groups, self.layers, grads):
            w = layer.active_weight()  # a new tensor
            # the gradient rule's state is full-size, indexed by position (sgd only on compact
            # layers, see RewiringOptimizer._check_hyper)
            w.sub_(self._direction(group, layer.rewired_param, g, layer.active_idx),
                   alpha=group["lr"])
            layer.write_signed(self.shrink(group, w))
        self.last_events = self._no_events()
        self.update_mask()
        return loss

    def shrink(self, group: dict, w: torch.Tensor) -> torch.Tensor:
        """A penalty's proximal step on the new weights (none but for L1 shrinkage)."""
        return w

    def update_mask(self) -> None:
        """Change the set of active connections after a step (never, for a static mask)."""

    def grow(self, layer: Rewired, n: int, slots: torch.Tensor) -> torch.Tensor:
        """n flat positions to activate in `layer`; the active connections in `slots` are
        about to be dropped."""
        raise NotImplementedError

    _saved_ks: tuple[str, ...] = ()  # per-layer K lists of a method that go into state_dict

    def state_dict(self) -> dict:
        return super().state_dict() | {name: list(getattr(self, name)) for name in self._saved_ks}

    def load_state_dict(self, state_dict: dict) -> None:
        state_dict = dict(state_dict)
        for name in self._saved_ks:
            if name in state_dict:
                setattr(self, name, [int(k) for k in state_dict.pop(name)])
        super().load_state_dict(state_dict)

    @torch.no_grad()
    def drop_and_grow(self, n_per_layer: list[int]) -> None:
        """Per layer: drop the n active connections with the smallest |w| and grow n where
        `grow` says; K stays exact."""
        events = self._no_events()
        for i, (layer, n) in enumerate(zip(self.layers, n_per_layer)):
            n = min(n, layer.k, layer.n_positions - layer.k)
            if n <= 0:
                continue
            slots = smallest(layer.gather_active()[0], n)
            new = self.grow(layer, n, slots)
            gone = self._deactivate(layer, slots)
            events[i] = {"pruned": gone, "activated": self._activate(layer, new)}
        self._sync_k(events)

    @torch.no_grad()
    def _densify(self) -> None:
        """Make every position active with its initial weight (the layers keep the reference
        initialisation's magnitude in the theta of dormant positions)."""
        for layer in self.layers:
            layer.densify()
        self._sync_k(self._no_events())

    def _start_from(self, start: str | None) -> str:
        """start="dense": every position active first (full-size layers only; their default);
        "mask": the layers' active connections now (compact layers' default and only start)."""
        if start is None:
            start = "mask" if self.sparse_compute else "dense"
        if validate.choice("start", start, ("dense", "mask")) == "dense":
            if self.sparse_compute:
                raise ValueError(f"{type(self).__name__} cannot start dense on compute='sparse' "
                                 "layers (they store active connections only): use start='mask'")
            self._densify()
        return start


class Dense(MaskedTraining):
    """No sparsity: every position is active and trained (a reference for the others)."""

    K_MEANING = "none"
    SPARSE_REFUSAL = ("it makes every position active, so a compact layer would store all of "
                      "them")

    def __init__(self, model: nn.Module, lr: float, **kw):
        super().__init__(model, lr, **kw)
        self._densify()

    def _k_targets(self, k, connectivity):
        raise ValueError("k/connectivity: Dense keeps every connection; choose a sparse method")


class StaticSparse(MaskedTraining):
    """A random fixed mask (the layers' initial one, or k=/connectivity=); no rewiring."""

    SPARSE_REFUSAL = None


class SET(MaskedTraining):
    """Drop the smallest |w|, regrow uniformly among the inactive positions."""

    SPARSE_REFUSAL = None

    HYPER = declare(UPDATE_EVERY, Hyper(
        "drop_fraction", 0.3, 0.0, 1.0, "SET / RigL: fraction of active connections dropped and "
        "regrown per update (RigL: at the start, cosine-annealed to 0 at the end of updates)",
        scale="fraction", label="Drop fraction", url_key="zeta"))

    def __init__(self, model: nn.Module, lr: float, *, update_every: int = 100,
                 drop_fraction: float = 0.3, **kw):
        super().__init__(model, lr, update_every=update_every, drop_fraction=drop_fraction, **kw)

    def update_mask(self) -> None:
        if self.step_count % self.hyper("update_every") == 0:
            f = self.hyper("drop_fraction")
            self.drop_and_grow([round(f * l.k) for l in self.layers])

    def grow(self, layer: Rewired, n: int, slots: torch.Tensor) -> torch.Tensor:
        # sampled before the drop: the connections about to be dropped are still active, so
        # they cannot be chosen again
        return layer.sample_dormant(n, layer.n_positions - layer.k, self.generator)


class RigL(MaskedTraining):
    """Drop the smallest |w|, regrow where the dense gradient is largest; the drop fraction is
    cosine-annealed to 0 at t_end.

    On compact layers the dense gradient is never stored: before each growth step the layers
    record the backward pass's input and output gradient, and the largest |dE/dw| is found
    row block by row block (dense_grad.py; memory O(K + one block))."""

    SPARSE_REFUSAL = None

    HYPER = SET.HYPER | declare(Hyper(
        "t_end", 0, 1, 10**12, "RigL: no mask updates from this step on", scale="int",
        label="End of updates", zero="3/4 of steps",
        value=lambda cfg, lr: cfg.t_end or max(1, cfg.steps * 3 // 4)))

    def __init__(self, model: nn.Module, lr: float, *, update_every: int = 100,
                 drop_fraction: float = 0.3, t_end: int = 10_000, **kw):
        super().__init__(model, lr, update_every=update_every, drop_fraction=drop_fraction,
                         t_end=t_end, **kw)
        self._record_next()

    def _record_next(self) -> None:
        """The layers keep what the dense gradient needs during the next step's backward
        pass only when that step updates the mask."""
        t = self.step_count + 1
        on = t % self.hyper("update_every") == 0 and t < self.hyper("t_end")
        for layer in self.layers:
            layer.record_dense_grad(on)

    def step(self, closure=None):
        loss = super().step(closure)
        self._record_next()
        return loss

    def set(self, **hyper) -> None:
        super().set(**hyper)
        self._record_next()

    def load_state_dict(self, state_dict: dict) -> None:
        super().load_state_dict(state_dict)
        self._record_next()

    def fraction_at(self, t: int) -> float:
        """Cosine annealing of the drop fraction (Evci et al. 2020), 0 from t_end on."""
        t_end = self.hyper("t_end")
        if t >= t_end:
            return 0.0
        return self.hyper("drop_fraction") / 2 * (1 + math.cos(math.pi * t / t_end))

    def update_mask(self) -> None:
        t = self.step_count
        if t % self.hyper("update_every") == 0 and t < self.hyper("t_end"):
            f = self.fraction_at(t)
            self.drop_and_grow([round(f * l.k) for l in self.layers])

    def grow(self, layer: Rewired, n: int, slots: torch.Tensor) -> torch.Tensor:
        staying = torch.ones(layer.k, dtype=torch.bool, device=slots.device)
        staying[slots] = False
        return layer.top_grad_positions(n, staying)


class MagnitudePruning(MaskedTraining):
    """Train dense, prune the smallest |w| to the target K (k= / connectivity=, default the
    layers' K now) at prune_at, or in prune_events steps prune_every apart.

    start="mask" (compact layers' default and only choice): train the layers' current active
    connections instead of all positions and prune them to the target K (a target above the
    current K prunes nothing)."""

    SPARSE_REFUSAL = None

    K_MEANING = "target"
    HYPER = declare(
        Hyper("prune_at", 0, 0, 10**12, "magnitude pruning: the first pruning step", scale="int",
              label="Pruning step", zero="half of steps",
              value=lambda cfg, lr: cfg.prune_at or cfg.steps // 2),
        Hyper("prune_events", 1, 1, 1000, "magnitude pruning: reach the target in this many "
              "events, update_every apart (1 = one-shot)", scale="int", label="Pruning events"),
        Hyper("prune_every", 100, 1, 10**9, "magnitude pruning: steps between pruning events",
              scale="int", label="Update interval", field="update_every", url_key="every"))
    _saved_ks = ("target_k", "start_k")

    def __init__(self, model: nn.Module, lr: float, *, prune_at: int = 1000,
                 prune_events: int = 1, prune_every: int = 100,
                 k: int | Sequence[int] | None = None,
                 connectivity: float | Sequence[float] | None = None,
                 start: str | None = None, **kw):
        super().__init__(model, lr, prune_at=prune_at, prune_events=prune_events,
                         prune_every=prune_every, **kw)
        # the target: the layers' K now, unless given
        self.target_k = self._k_targets(k, connectivity) if (k is not None or connectivity is not None) \
            else [l.k for l in self.layers]
        self.start = self._start_from(start)
        self.start_k = [l.k for l in self.layers]  # what the schedule prunes from

    def set(self, *, k=None, connectivity=None, **hyper) -> None:
        """Before the last pruning a K change moves the target; after it, it applies now."""
        if k is None and connectivity is None:
            return super().set(**hyper)
        targets = self._k_targets(k, connectivity)
        if self.step_count >= self._last_event():
            super().set(k=k, connectivity=connectivity, **hyper)
        else:
            super().set(**hyper)
            self.last_events = self._no_events()
        self.target_k = targets

    def _last_event(self) -> int:
        return self.hyper("prune_at") + (self.hyper("prune_events") - 1) * self.hyper("prune_every")

    @torch.no_grad()
    def update_mask(self) -> None:
        every, events_total = self.hyper("prune_every"), self.hyper("prune_events")
        t = self.step_count - self.hyper("prune_at")
        if t < 0 or t % every or t // every >= events_total:
            return
        j = t // every + 1  # this is pruning event j of prune_events
        want = [n - (n - k) * j // events_total for n, k in zip(self.start_k, self.target_k)]
        events = self._no_events()
        for i, (layer, k_new) in enumerate(zip(self.layers, want)):
            if k_new < layer.k:
                th = layer.gather_active()[0]
                events[i]["pruned"] = self._deactivate(layer, smallest(th, layer.k - k_new))
        self._sync_k(events)


class L1Shrinkage(MaskedTraining):
    """From dense: L1 soft threshold on the weights each step; a connection at or below
    `threshold` is removed for good, never below the floor K (k= / connectivity=).
    start="mask" (compact layers' default and only choice): from the layers' current mask."""

    SPARSE_REFUSAL = None

    K_MEANING = "floor"
    HYPER = declare(LANGEVIN["alpha"], Hyper(
        "threshold", 0.0, 0.0, 1.0, "L1 shrinkage: a weight with |w| at or below this is "
        "removed for good", scale="fraction", label="L1 threshold", field="l1_threshold",
        url_key="l1thr"))
    _saved_ks = ("floor_k",)

    def __init__(self, model: nn.Module, lr: float, alpha: float = 1e-4, *, threshold: float = 0.0,
                 k: int | Sequence[int] | None = None,
                 connectivity: float | Sequence[float] | None = None,
                 start: str | None = None, **kw):
        super().__init__(model, lr, alpha=alpha, threshold=threshold, **kw)
        self.floor_k = self._k_targets(k, connectivity) if (k is not None or connectivity is not None) \
            else [1] * len(self.layers)
        self.start = self._start_from(start)

    def shrink(self, group: dict, w: torch.Tensor) -> torch.Tensor:
        if group["alpha"] <= 0:
            return w
        return torch.sign(w) * (w.abs() - group["lr"] * group["alpha"]).clamp_(min=0)

    def set(self, *, k=None, connectivity=None, **hyper) -> None:
        """A K change moves the floor (connections already removed stay removed)."""
        if k is not None or connectivity is not None:
            floor = self._k_targets(k, connectivity)
            super().set(**hyper)
            self.floor_k = floor
            self.last_events = self._no_events()
        else:
            super().set(**hyper)

    @torch.no_grad()
    def update_mask(self) -> None:
        events = self._no_events()
        threshold = self.hyper("threshold")
        for i, (layer, floor) in enumerate(zip(self.layers, self.floor_k)):
            th = layer.gather_active()[0]
            n = min(int((th <= threshold).sum()), layer.k - floor)
            if n > 0:
                events[i]["pruned"] = self._deactivate(layer, smallest(th, n))
        self._sync_k(events)
