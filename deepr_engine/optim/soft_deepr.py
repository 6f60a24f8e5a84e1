"""soft-Deep R (Bellec et al. 2018, Algorithm 2; docs/algorithms.md) as a torch.optim optimizer."""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from .. import validate
from .base import LANGEVIN, RewiringOptimizer, nonfinite_gradient

def theta_min_rule(temperature: float, alpha: float, connectivity: float) -> float:
    """Reference code's rule of thumb: theta_min = -T (1 - p0) / (alpha p0)."""
    if temperature <= 0 or alpha <= 0:
        raise ValueError("theta_min must be given explicitly (< 0) when temperature or alpha "
                         "is 0: the rule -T(1-p0)/(alpha p0) needs both > 0")
    if connectivity >= 1:
        return -1e-12 * max(1.0, temperature / alpha)
    return -temperature * (1 - connectivity) / (alpha * connectivity)


class SoftDeepR(RewiringOptimizer):
    """soft-Deep R (Algorithm 2): dormant parameters keep walking (noise only), everything is
    clipped at theta_min < 0, and a connection revives when its walk crosses 0; no hard K.

    theta_min: one value or one per layer; default per layer from theta_min_rule with the
    target connectivity (default: each layer's connectivity now). While it is defaulted it
    follows live changes of temperature, alpha and target connectivity.

    Every potential connection walks each step, so its cost is O(all positions), not O(K).
    """

    SPARSE_REFUSAL = ("soft-Deep R moves every dormant theta by noise at every step (a random "
                      "walk on all positions, clipped at theta_min), so its state and work are "
                      "O(all positions), not O(K)")
    HYPER = LANGEVIN
    K_MEANING = "soft"  # the active count drifts around the target connectivity
    SET_ONLY = ("theta_min", "target_connectivity", "connectivity")

    def __init__(self, model: nn.Module, lr: float, alpha: float, temperature: float,
                 theta_min: float | Sequence[float] | None = None,
                 target_connectivity: float | Sequence[float] | None = None, *,
                 gradient: str = "sgd", momentum: float = 0.9,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 seed: int | None = 0, check_finite: bool = True):
        super().__init__(model, lr, gradient=gradient, momentum=momentum, betas=betas, eps=eps,
                         seed=seed, check_finite=check_finite, alpha=alpha, temperature=temperature)
        if target_connectivity is None:
            target_connectivity = [layer.connectivity for layer in self.layers]
        self._set_targets(theta_min, target_connectivity)
        self._masks: list[tuple | None] = [None] * len(self.layers)  # (theta >= 0, layer version)

    def _mask(self, i: int) -> torch.Tensor:
        """theta >= 0 as of the end of the last step, kept unless something else wrote the layer."""
        layer, cached = self.layers[i], self._masks[i]
        if cached is not None and cached[1] == layer.version:
            return cached[0]
        return layer.active_mask().view(-1)

    def _set_targets(self, theta_min, target_connectivity) -> None:
        n = len(self.layers)
        groups = self.rewired_groups
        if target_connectivity is not None:
            cs = validate.per_layer("target_connectivity", target_connectivity, n)
            cs = [validate.finite("target_connectivity", c, low=0.0, high=1.0, low_open=True)
                  for c in cs]
        else:
            cs = [g["target_connectivity"] for g in groups]
        if theta_min is not None:
            tms = [validate.finite("theta_min", t, high=0.0, high_open=True)
                   for t in validate.per_layer("theta_min", theta_min, n)]
            explicit = True
        elif groups and groups[0].get("theta_min_explicit"):
            tms, explicit = [g["theta_min"] for g in groups], True
        else:
            tms = [theta_min_rule(g["temperature"], g["alpha"], c) for g, c in zip(groups, cs)]
            explicit = False
        for g, c, tm in zip(groups, cs, tms):
            g.update(target_connectivity=c, theta_min=tm, theta_min_explicit=explicit)

    def set(self, *, theta_min=None, target_connectivity=None, connectivity=None, **hyper) -> None:
        """Change lr, alpha, temperature, theta_min, target_connectivity (alias connectivity)
        live. Without an explicit theta_min the rule of thumb is re-applied."""
        if connectivity is not None:
            target_connectivity = connectivity
        backup = [dict(g) for g in self.param_groups]
        try:
            self._check_hyper(hyper)
            for g in self.rewired_groups:
                g.update({k: v for k, v in hyper.items() if k in ("alpha", "temperature")})
            self._set_targets(theta_min, target_connectivity)
            if hyper:
                super().set(**hyper)
        except ValueError:
            for g, b in zip(self.param_groups, backup):
                g.clear()
                g.update(b)
            raise

    @torch.no_grad()
    def step(self, closure=None):
        """Algorithm 2: active: gradient + L1 + noise; dormant: noise only; then clip at
        theta_min. Activity is simply theta >= 0."""
        loss = self._begin_step(closure)
        # gradient and L1 of the active connections first (O(K)), so that a bad gradient is
        # refused before anything changes
        grads = [l.active_grad() for l in self.layers]
        if any(gr["gradient"] != "sgd" for gr in self.rewired_groups):  # these write state
            self._assert_finite([g for g in grads if g is not None])
        deltas = []
        for group, layer, g in zip(self.rewired_groups, self.layers, grads):
            idx, lr = layer.active_idx, group["lr"]
            if g is not None:
                g.mul_(layer.sign_at(idx))
                deltas.append(self._direction(group, layer.rewired_param, g, idx).mul_(lr)
                              .add_(lr * group["alpha"]))
            else:
                deltas.append(torch.full(idx.shape, lr * group["alpha"], device=idx.device,
                                         dtype=layer.rewired_param.dtype))
        if self.check_finite and not math.isfinite(torch.stack([d.sum() for d in deltas]).sum()):
            raise nonfinite_gradient()
        self.step_count += 1
        self._step_dense_params()
        events = []
        for i, (group, layer, delta) in enumerate(zip(self.rewired_groups, self.layers, deltas)):
            idx, lr = layer.active_idx, group["lr"]
            theta = layer.full_theta().view(-1)  # read only: the new theta is a new tensor
            was_active = self._mask(i)
            if group["temperature"] > 0:  # every connection walks, active or dormant
                noise = torch.randn(theta.shape, generator=self.generator, device=theta.device,
                                    dtype=theta.dtype)  # the new theta goes into it: no new buffer
                theta = torch.add(theta, noise, alpha=math.sqrt(2 * lr * group["temperature"]),
                                  out=noise)
            else:
                theta = theta.clone()
            theta.index_add_(0, idx, delta, alpha=-1)
            theta.clamp_(min=group["theta_min"])
            active = theta >= 0
            new_idx = torch.nonzero(active).view(-1)
            gone = idx[~active.index_select(0, idx)]
            new = new_idx[~was_active.index_select(0, new_idx)]
            self._forget_moments(layer.rewired_param, new)
            layer.write_theta(theta, new_idx)
            self._masks[i] = (active, layer.version)
            events.append({"pruned": gone, "activated": new})
        self.last_events = events
        return loss
