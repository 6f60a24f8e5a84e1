"""RewiringOptimizer: what every optimizer on rewired layers shares (docs/algorithms.md).

One param group per rewired layer (keys: lr, alpha, temperature, gradient, ... and each method's
own), plus one group for every other parameter of the model (biases, norms), which the same
step trains with the chosen gradient rule and no L1, no noise.
"""
from __future__ import annotations

import torch
from torch import nn

from .. import validate
from ..hyper import Hyper, declare
from ..layer_api import Rewired, rewired_layers

GRADIENT_RULES = ("sgd", "momentum", "adam")


def nonfinite_gradient() -> FloatingPointError:
    return FloatingPointError("a gradient contains NaN or inf; the step was not taken and the "
                              "parameters are unchanged")


def _positive(name):
    return lambda v: validate.finite(name, v, low=0.0, low_open=True)


def non_negative(name):
    """A check for a hyperparameter in [0, inf) (for the methods' HYPER tables)."""
    return lambda v: validate.finite(name, v, low=0.0)


# the hyperparameters of the Langevin update (Deep R and soft-Deep R): L1 strength, temperature
LANGEVIN = declare(
    Hyper("alpha", 1e-4, 0.0, 100.0, "L1 strength: pull lr*alpha per step on every active "
          "weight; sets how fast weak connections die (the turnover) and must scale with the "
          "gradients (1e-3 on digits, 1e-4 on MNIST in our measurements)",
          label="L1 strength alpha", floor=1e-8),
    Hyper("temperature", 1e-6, 0.0, 100.0, "T: noise std sqrt(2 lr T) per step on every active "
          "theta (0: sparse SGD with rewiring; the reference MNIST script's T = lr*1e-10/2)",
          label="Temperature T", url_key="T", floor=1e-14,
          value=lambda cfg, lr: cfg.effective_temperature(lr),
          idle=lambda cfg: (f"noise_scale {cfg.noise_scale:g} > 0 sets the noise (T = lr * "
                            "noise_scale^2 / 2); set noise_scale 0 to use temperature")
          if cfg.noise_scale > 0 else None))


def _unit(name):
    return lambda v: validate.finite(name, v, low=0.0, high=1.0, high_open=True)


def _betas(v):
    if not isinstance(v, (list, tuple)) or len(v) != 2:
        raise ValueError(f"betas must be two numbers in [0, 1), got {v!r}")
    for i, b in enumerate(v):
        validate.finite(f"betas[{i}]", b, low=0.0, high=1.0, high_open=True)


class RewiringOptimizer(torch.optim.Optimizer):
    """What every optimizer on rewired layers shares: param groups, the gradient rule,
    validated live changes, state.

    A subclass names its own hyperparameters in `HYPER` (name -> check); only those, the
    learning rate and the gradient rule's settings are accepted by the constructor and by
    `set()`: a method refuses a hyperparameter it does not have. They live in every param
    group, so LR schedulers, `set()` and `state_dict()` see them.
    """

    HYPER: dict = {}  # the method's own hyperparameters: name -> check(value)
    # compute="sparse" layers (sparse.CompactLinear) store active connections only; a method
    # that needs more (dormant theta, every position active) refuses them with this reason;
    # None: the method runs on them (RunConfig reads this)
    SPARSE_REFUSAL: str | None = ("it reads full-size state (dormant weights or dense "
                                  "gradients), which compact layers do not keep")
    SET_ONLY: tuple[str, ...] = ()  # what set() takes besides (K, targets), for the message
    COMMON = {"lr": Hyper("lr", 0.05, 0.0, 100.0, "learning rate eta (also scales the L1 pull "
                          "lr*alpha and the noise sqrt(2 lr T))", low_open=True,
                          label="Learning rate", floor=1e-4),
              "gradient": Hyper("gradient", "sgd", help="gradient term of the update",
                                choices=GRADIENT_RULES, scale="choice", live=False, url_key="-"),
              "momentum": _unit("momentum"), "betas": _betas, "eps": _positive("eps")}

    def __init__(self, model: nn.Module, lr: float, *, gradient: str = "sgd",
                 momentum: float = 0.9, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, seed: int | None = 0, check_finite: bool = True, **hyper):
        layers = rewired_layers(model)
        if not layers:
            raise ValueError("model has no rewired layers: call sparsify(model, ...) first")
        self.layers: list[Rewired] = layers
        self.sparse_compute = any(l.compute == "sparse" for l in layers)
        if self.sparse_compute and self.SPARSE_REFUSAL is not None:
            raise ValueError(f"{type(self).__name__} does not support compute='sparse' layers: "
                             f"{self.SPARSE_REFUSAL}. Use compute='dense' for it.")
        defaults = dict(lr=lr, gradient=gradient, momentum=momentum, betas=tuple(betas), eps=eps,
                        **hyper)
        self._check_hyper(defaults)
        groups = [{"params": [layer.rewired_param], "layer_index": i}
                  for i, layer in enumerate(layers)]
        rewired_ids = {id(layer.rewired_param) for layer in layers}
        others = [p for p in model.parameters() if id(p) not in rewired_ids and p.requires_grad]
        if others:
            groups.append({"params": others, "layer_index": None})
        super().__init__(groups, defaults)
        self.device = layers[0].active_idx.device
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(0 if seed is None else int(seed))
        self.check_finite = check_finite
        self.step_count = 0
        for layer in layers:  # the layers as they are now are the starting point
            layer.touch()
        self.last_events: list[dict[str, torch.Tensor]] = self._no_events()

    # -- validation --------------------------------------------------------------------------
    def _check_hyper(self, h: dict) -> None:
        checks = self.COMMON | self.HYPER
        unknown = sorted(set(h) - set(checks))
        if unknown:
            raise ValueError(f"{type(self).__name__} has no hyperparameter(s) {unknown}; "
                             f"allowed: {sorted([*checks, *self.SET_ONLY])}")
        for name, value in h.items():
            checks[name](value)
        if getattr(self, "sparse_compute", False) and h.get("gradient", "sgd") != "sgd":
            raise ValueError(f"gradient must be 'sgd' with compute='sparse' layers (momentum and "
                             f"adam state is kept full-size), got {h['gradient']!r}")

    @property
    def rewired_groups(self) -> list[dict]:
        return [g for g in self.param_groups if g["layer_index"] is not None]

    def hyper(self, name: str):
        """A hyperparameter shared by all layers (schedules), read from the first group."""
        return self.param_groups[0][name]

    def _no_events(self) -> list[dict[str, torch.Tensor]]:
        if not hasattr(self, "_empty_index"):
            self._empty_index = torch.empty(0, dtype=torch.long, device=self.layers[0].active_idx.device)
        return [{"pruned": self._empty_index, "activated": self._empty_index} for _ in self.layers]

    def _begin_step(self, closure):
        """The closure's loss (if any), after checking that no one else wrote a layer."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for layer in self.layers:
            layer.check_weight()
        return loss

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
            raise nonfinite_gradient()

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
        bad value changes nothing. Accepts lr, the gradient rule's settings and the method's
        own (HYPER); a name the method does not have raises ValueError."""
        self._check_hyper(hyper)
        for group in self.param_groups:
            group.update(hyper)
        self.defaults.update(hyper)


def _put(dst: torch.Tensor, idx: torch.Tensor | None, values: torch.Tensor) -> None:
    if idx is None:
        dst.copy_(values)
    else:
        dst[idx] = values


