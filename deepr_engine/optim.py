"""Deep R and soft-Deep R as torch.optim optimizers (spec: ../shared/deepr-spec.md).

One param group per rewired layer (keys: lr, alpha, temperature, k / theta_min, gradient, ...),
plus one group for every other parameter of the model (biases, norms), which the same step
trains with the chosen gradient rule and no L1, no noise.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from . import validate
from .layers import Rewired, _resolve_k, rewired_layers
from .rewiring import sample_dormant, smallest

GRADIENT_RULES = ("sgd", "momentum", "adam")


def _nonfinite_gradient() -> FloatingPointError:
    return FloatingPointError("a gradient contains NaN or inf; the step was not taken and the "
                              "parameters are unchanged")


class _RewiringOptimizer(torch.optim.Optimizer):
    """What DeepR and SoftDeepR share: groups, the gradient rule, validation, state."""

    def __init__(self, model: nn.Module, lr: float, alpha: float, temperature: float, *,
                 gradient: str = "sgd", momentum: float = 0.9,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 seed: int | None = 0, check_finite: bool = True, **extra_defaults):
        layers = rewired_layers(model)
        if not layers:
            raise ValueError("model has no rewired layers: call sparsify(model, ...) first")
        self.layers: list[Rewired] = layers
        defaults = dict(lr=lr, alpha=alpha, temperature=temperature, gradient=gradient,
                        momentum=momentum, betas=tuple(betas), eps=eps, **extra_defaults)
        self._check_hyper(defaults)
        groups = [{"params": [layer.weight], "layer_index": i} for i, layer in enumerate(layers)]
        rewired_ids = {id(layer.weight) for layer in layers}
        others = [p for p in model.parameters() if id(p) not in rewired_ids and p.requires_grad]
        if others:
            groups.append({"params": others, "layer_index": None})
        super().__init__(groups, defaults)
        self.device = layers[0].theta.device
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(0 if seed is None else int(seed))
        self.check_finite = check_finite
        self.step_count = 0
        self.last_events: list[dict[str, torch.Tensor]] = self._no_events()

    # -- validation --------------------------------------------------------------------------
    @staticmethod
    def _check_hyper(h: dict) -> None:
        if "lr" in h:
            validate.finite("lr", h["lr"], low=0.0, low_open=True)
        if "alpha" in h:
            validate.finite("alpha", h["alpha"], low=0.0)
        if "temperature" in h:
            validate.finite("temperature", h["temperature"], low=0.0)
        if "gradient" in h:
            validate.choice("gradient", h["gradient"], GRADIENT_RULES)
        if "momentum" in h:
            validate.finite("momentum", h["momentum"], low=0.0, high=1.0, high_open=True)
        if "betas" in h:
            for i, b in enumerate(h["betas"]):
                validate.finite(f"betas[{i}]", b, low=0.0, high=1.0, high_open=True)
        if "eps" in h:
            validate.finite("eps", h["eps"], low=0.0, low_open=True)

    @property
    def rewired_groups(self) -> list[dict]:
        return [g for g in self.param_groups if g["layer_index"] is not None]

    def _no_events(self) -> list[dict[str, torch.Tensor]]:
        if not hasattr(self, "_empty_index"):
            self._empty_index = torch.empty(0, dtype=torch.long, device=self.layers[0].theta.device)
        return [{"pruned": self._empty_index, "activated": self._empty_index} for _ in self.layers]

    # -- the gradient rule (on the positions idx of a flat parameter; idx None = all) ---------
    def _direction(self, group: dict, p: torch.Tensor, g: torch.Tensor,
                   idx: torch.Tensor | None) -> torch.Tensor:
        rule = group["gradient"]
        if rule == "sgd":
            return g
        state = self.state[p]
        if rule == "momentum":
            buf = state.setdefault("momentum_buffer", torch.zeros_like(p)).view(-1)
            b = (buf if idx is None else buf[idx]) * group["momentum"] + g
            _put(buf, idx, b)
            return b
        beta1, beta2 = group["betas"]
        state["step"] = state.get("step", 0) + 1
        m_all = state.setdefault("exp_avg", torch.zeros_like(p)).view(-1)
        v_all = state.setdefault("exp_avg_sq", torch.zeros_like(p)).view(-1)
        m = (m_all if idx is None else m_all[idx]).mul(beta1).add_(g, alpha=1 - beta1)
        v = (v_all if idx is None else v_all[idx]).mul(beta2).addcmul_(g, g, value=1 - beta2)
        _put(m_all, idx, m)
        _put(v_all, idx, v)
        t = state["step"]
        m_hat = m / (1 - beta1 ** t)
        return m_hat / ((v / (1 - beta2 ** t)).sqrt_().add_(group["eps"]))

    def _forget_moments(self, p: torch.Tensor, positions: torch.Tensor) -> None:
        """A revived connection starts without gradient history."""
        state = self.state.get(p)
        if not state:
            return
        for key in ("momentum_buffer", "exp_avg", "exp_avg_sq"):
            if key in state:
                state[key].view(-1)[positions] = 0

    @torch.no_grad()
    def _step_dense_params(self) -> None:
        for group in self.param_groups:
            if group["layer_index"] is not None:
                continue
            for p in group["params"]:
                if p.grad is not None:
                    p.view(-1).sub_(self._direction(group, p, p.grad.reshape(-1), None),
                                    alpha=group["lr"])

    def _assert_finite(self, rewired_grads: list[torch.Tensor]) -> None:
        """Refuse a step on NaN/inf gradients before anything changes. Rewired layers pass the
        gradient at their active positions only (the rest is never read)."""
        if not self.check_finite:
            return
        grads = rewired_grads + [p.grad for g in self.param_groups if g["layer_index"] is None
                                 for p in g["params"] if p.grad is not None]
        if grads and not bool(torch.stack([torch.isfinite(g).all() for g in grads]).all()):
            raise _nonfinite_gradient()

    # -- state -------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        sd = super().state_dict()
        sd["generator_state"] = self.generator.get_state()
        sd["step_count"] = self.step_count
        return sd

    def load_state_dict(self, state_dict: dict) -> None:
        state_dict = dict(state_dict)
        gen = state_dict.pop("generator_state", None)
        step_count = state_dict.pop("step_count", 0)
        super().load_state_dict(state_dict)
        if gen is not None:
            self.generator.set_state(gen.cpu() if hasattr(gen, "cpu") else gen)
        self.step_count = int(step_count)

    def set(self, **hyper) -> None:
        """Change hyperparameters live (between steps) for every layer; validated first, so a
        bad value changes nothing. Accepts lr, alpha, temperature, gradient, momentum, betas,
        eps; the subclasses add their own (k / connectivity, theta_min)."""
        unknown = set(hyper) - set(self.defaults)
        if unknown:
            raise ValueError(f"unknown hyperparameter(s) {sorted(unknown)}; "
                             f"allowed: {sorted(self.defaults)}")
        self._check_hyper(hyper)
        for group in self.param_groups:
            group.update(hyper)
        self.defaults.update(hyper)


def _put(dst: torch.Tensor, idx: torch.Tensor | None, values: torch.Tensor) -> None:
    if idx is None:
        dst.copy_(values)
    else:
        dst[idx] = values


class ExactK(_RewiringOptimizer):
    """Shared by every optimizer that keeps exactly K active connections per layer (or K in
    total with global_k): live K changes, and the bookkeeping of activating and deactivating."""

    def __init__(self, model: nn.Module, lr: float, alpha: float, temperature: float, *,
                 k: int | Sequence[int] | None = None,
                 connectivity: float | Sequence[float] | None = None, global_k: bool = False,
                 **kw):
        super().__init__(model, lr, alpha, temperature, **kw)
        self.global_k = bool(global_k)
        self.total_k = sum(layer.k for layer in self.layers)
        for group, layer in zip(self.rewired_groups, self.layers):
            group["k"] = layer.k
        if k is not None or connectivity is not None:
            self.set_k(k=k, connectivity=connectivity)
            self.last_events = self._no_events()

    def _sample_global(self, n: int, n_died: list[int]) -> torch.Tensor:
        n_dormant = sum(l.n_positions - l.k for l in self.layers) + sum(n_died)
        theta_all = torch.cat([l.theta.view(-1) for l in self.layers])
        return sample_dormant(theta_all, n, n_dormant, self.generator)

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
            return _resolve_k(k, connectivity, total)
        n = len(self.layers)
        ks = validate.per_layer("k", k, n) if k is not None else [None] * n
        cs = validate.per_layer("connectivity", connectivity, n) if connectivity is not None else [None] * n
        return [_resolve_k(k_i, c_i, layer.n_positions, name=f"k[{i}]")
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
                th_all = torch.cat([l.theta.view(-1)[l.active_idx] for l in self.layers])
                drop_all = smallest(th_all, -change)
                start = 0
                for i, layer in enumerate(self.layers):
                    local = drop_all[(drop_all >= start) & (drop_all < start + layer.k)] - start
                    start += layer.k
                    events[i]["pruned"] = self._deactivate(layer, local)
        else:
            for i, (layer, k_new) in enumerate(zip(self.layers, targets)):
                if k_new > layer.k:
                    new = sample_dormant(layer.theta.view(-1), k_new - layer.k,
                                         layer.n_positions - layer.k, self.generator)
                    events[i]["activated"] = self._activate(layer, new)
                elif k_new < layer.k:
                    th = layer.theta.view(-1)[layer.active_idx]
                    events[i]["pruned"] = self._deactivate(layer, smallest(th, layer.k - k_new))
        self._sync_k(events)

    def _sync_k(self, events: list[dict]) -> None:
        """After the active sets changed: K in the groups and in total, and the events."""
        for group, layer in zip(self.rewired_groups, self.layers):
            group["k"] = layer.k
        self.total_k = sum(layer.k for layer in self.layers)
        self.last_events = events

    def _activate(self, layer: Rewired, new: torch.Tensor) -> torch.Tensor:
        layer.theta.view(-1)[new] = 0
        layer.weight.view(-1)[new] = 0
        self._forget_moments(layer.weight, new)
        layer.active_idx = torch.cat([layer.active_idx, new])
        return new

    def _deactivate(self, layer: Rewired, slots: torch.Tensor) -> torch.Tensor:
        idx = layer.active_idx
        gone = idx[slots]
        keep = torch.ones_like(idx, dtype=torch.bool)
        keep[slots] = False
        layer.theta.view(-1)[gone] = -torch.finfo(layer.theta.dtype).tiny
        layer.weight.view(-1)[gone] = 0
        layer.active_idx = idx[keep]
        return gone

    def state_dict(self) -> dict:
        sd = super().state_dict()
        sd["total_k"] = self.total_k
        return sd

    def load_state_dict(self, state_dict: dict) -> None:
        state_dict = dict(state_dict)
        total = state_dict.pop("total_k", None)
        super().load_state_dict(state_dict)
        self.total_k = int(total) if total is not None else sum(l.k for l in self.layers)


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
            raise _nonfinite_gradient()
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


def theta_min_rule(temperature: float, alpha: float, connectivity: float) -> float:
    """Reference code's rule of thumb: theta_min = -T (1 - p0) / (alpha p0)."""
    if temperature <= 0 or alpha <= 0:
        raise ValueError("theta_min must be given explicitly (< 0) when temperature or alpha "
                         "is 0: the rule -T(1-p0)/(alpha p0) needs both > 0")
    if connectivity >= 1:
        return -1e-12 * max(1.0, temperature / alpha)
    return -temperature * (1 - connectivity) / (alpha * connectivity)


class SoftDeepR(_RewiringOptimizer):
    """soft-Deep R (Algorithm 2): dormant parameters keep walking (noise only), everything is
    clipped at theta_min < 0, and a connection revives when its walk crosses 0; no hard K.

    theta_min: one value or one per layer; default per layer from theta_min_rule with the
    target connectivity (default: each layer's connectivity now). While it is defaulted it
    follows live changes of temperature, alpha and target connectivity.
    """

    def __init__(self, model: nn.Module, lr: float, alpha: float, temperature: float,
                 theta_min: float | Sequence[float] | None = None,
                 target_connectivity: float | Sequence[float] | None = None, *,
                 gradient: str = "sgd", momentum: float = 0.9,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 seed: int | None = 0, check_finite: bool = True):
        super().__init__(model, lr, alpha, temperature, gradient=gradient, momentum=momentum,
                         betas=betas, eps=eps, seed=seed, check_finite=check_finite)
        if target_connectivity is None:
            target_connectivity = [layer.connectivity for layer in self.layers]
        self._set_targets(theta_min, target_connectivity)
        self._masks: dict[int, tuple] = {}  # id(layer) -> (theta >= 0, theta version, id(active_idx))

    def _mask(self, layer: Rewired) -> torch.Tensor:
        """theta >= 0 as of the end of the last step, kept unless something else wrote theta."""
        cached = self._masks.get(id(layer))
        if cached is not None and cached[1] == layer.theta._version and cached[2] == id(layer.active_idx):
            return cached[0]
        return layer.theta.view(-1) >= 0

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
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        # gradient and L1 of the active connections first (O(K)), so that a bad gradient is
        # refused before anything changes
        if any(gr["gradient"] != "sgd" for gr in self.rewired_groups):  # these write state
            self._assert_finite([l.weight.grad for l in self.layers if l.weight.grad is not None])
        deltas = []
        for group, layer in zip(self.rewired_groups, self.layers):
            idx, lr = layer.active_idx, group["lr"]
            if layer.weight.grad is not None:
                g = layer.weight.grad.view(-1).index_select(0, idx)
                g.mul_(layer.sign.view(-1).index_select(0, idx))
                deltas.append(self._direction(group, layer.weight, g, idx).mul_(lr).add_(lr * group["alpha"]))
            else:
                deltas.append(torch.full(idx.shape, lr * group["alpha"], device=idx.device,
                                         dtype=layer.theta.dtype))
        if self.check_finite and not math.isfinite(torch.stack([d.sum() for d in deltas]).sum()):
            raise _nonfinite_gradient()
        self.step_count += 1
        self._step_dense_params()
        events = []
        for group, layer, delta in zip(self.rewired_groups, self.layers, deltas):
            theta, idx, lr = layer.theta.view(-1), layer.active_idx, group["lr"]
            was_active = self._mask(layer)
            if group["temperature"] > 0:  # every connection walks, active or dormant
                theta.add_(torch.randn(theta.shape, generator=self.generator, device=theta.device,
                                       dtype=theta.dtype),
                           alpha=math.sqrt(2 * lr * group["temperature"]))
            theta.index_add_(0, idx, delta, alpha=-1)
            theta.clamp_(min=group["theta_min"])
            active = theta >= 0
            new_idx = torch.nonzero(active).view(-1)
            gone = idx[~active.index_select(0, idx)]
            new = new_idx[~was_active.index_select(0, new_idx)]
            self._forget_moments(layer.weight, new)
            w = layer.weight.view(-1)
            w.index_fill_(0, gone, 0)
            w.index_copy_(0, new_idx, theta.index_select(0, new_idx)
                          .mul_(layer.sign.view(-1).index_select(0, new_idx)))
            layer.active_idx = new_idx
            self._masks[id(layer)] = (active, theta._version, id(new_idx))
            events.append({"pruned": gone, "activated": new})
        self.last_events = events
        return loss
