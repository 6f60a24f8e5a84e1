"""The algorithm registry: one entry per training method, read by the session, config
validation, the CLI, the app's pages and the URL state.

An entry says how a RunConfig becomes the method's optimizer (`build`), which RunConfig fields
are the method's own live hyperparameters and what they are called in the optimizer (`fields`),
and so which controls the app shows. Adding a method is one `register(Algorithm(...))` plus its
optimizer class (see tests/test_registry.py for a toy method run end to end).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

from ..optim import SET, DeepR, Dense, L1Shrinkage, MagnitudePruning, RigL, SoftDeepR, StaticSparse

if TYPE_CHECKING:
    from .config import RunConfig


@dataclass(frozen=True)
class Control:
    """A live control of the app: a RunConfig field with its range and what it does."""
    label: str
    kind: str                 # "log" (a log-spaced slider), "int" or "fraction"
    low: float
    high: float
    help: str


CONTROLS: dict[str, Control] = {
    "lr": Control("Learning rate", "log", 1e-4, 5.0,
                  "Step size eta of the gradient term. Also scales the L1 pull (lr*alpha) and the "
                  "noise (sqrt(2 lr T)) per step."),
    "temperature": Control("Temperature T", "log", 1e-14, 1e-1,
                           "Noise on every active theta: std sqrt(2 lr T) per step. T = 0 is "
                           "sparse SGD with rewiring; the reference MNIST script uses T = lr*1e-10/2."),
    "alpha": Control("L1 strength alpha", "log", 1e-8, 1e-1,
                     "L1 pull lr*alpha per step on every active theta: it sets how fast weak "
                     "connections die (the turnover) and must scale with the gradients: 1e-3 on "
                     "digits, 1e-4 on MNIST in our measurements."),
    "theta_min": Control("theta_min", "log", -10.0, 0.0,
                         "soft-Deep R's floor for theta (< 0; 0 = the rule of thumb "
                         "-T(1-p0)/(alpha p0)). The stationary mean of an active theta is T/alpha."),
    "batch_size": Control("Batch size", "int", 1, 256, "Examples per gradient step."),
    "update_every": Control("Update interval", "int", 1, 10_000,
                            "Steps between mask updates (SET, RigL) or pruning events (magnitude)."),
    "drop_fraction": Control("Drop fraction", "fraction", 0.0, 1.0,
                             "Fraction of active connections dropped and regrown per update "
                             "(RigL: at the start, cosine-annealed to 0 at the end of updates)."),
    "t_end": Control("End of updates", "int", 0, 10**9,
                     "RigL: no mask updates from this step on (0 = 3/4 of the step budget)."),
    "prune_at": Control("Pruning step", "int", 0, 10**9,
                        "Magnitude pruning: the first pruning event (0 = half of the step budget)."),
    "prune_events": Control("Pruning events", "int", 1, 1000,
                            "Magnitude pruning: reach the target in this many events, update "
                            "interval apart (1 = one-shot)."),
    "l1_threshold": Control("L1 threshold", "fraction", 0.0, 1.0,
                            "L1 shrinkage: a weight with |w| at or below this is removed for good."),
}


@dataclass(frozen=True)
class Algorithm:
    name: str
    label: str
    optimizer: type
    # RunConfig field -> the optimizer's hyperparameter name, for the method's own live ones
    fields: dict[str, str] = field(default_factory=dict)
    # construction-only arguments (k targets, global K, theta_min), from the config and model
    extra: Callable = lambda cfg, layers: {}
    description: str = ""

    @property
    def k_meaning(self) -> str:
        """What K is for this method: active, target, floor, soft or none (see ExactK)."""
        return self.optimizer.K_MEANING

    @property
    def controls(self) -> list[str]:
        """The live controls the app shows for this method (besides K), in display order."""
        return ["lr", "batch_size", *self.fields] + (["theta_min"] if self.k_meaning == "soft" else [])

    def hyper(self, cfg: RunConfig, lr: float | None = None) -> dict:
        """The method's own hyperparameters from a config, in the optimizer's names."""
        values = {"temperature": cfg.effective_temperature(lr),
                  "t_end": cfg.t_end or max(1, cfg.steps * 3 // 4),
                  "prune_at": cfg.prune_at or cfg.steps // 2}
        return {opt_name: values.get(cfg_name, getattr(cfg, cfg_name, None))
                for cfg_name, opt_name in self.fields.items()}

    def build(self, cfg: RunConfig, model):
        """The config's optimizer; sparse methods start from the model's current masks."""
        from ..layers import rewired_layers
        return self.optimizer(model, lr=cfg.lr, gradient=cfg.gradient, seed=cfg.seed,
                              **self.hyper(cfg), **self.extra(cfg, rewired_layers(model)))


REGISTRY: dict[str, Algorithm] = {}


def register(algorithm: Algorithm) -> Algorithm:
    REGISTRY[algorithm.name] = algorithm
    return algorithm


def unregister(name: str) -> None:
    REGISTRY.pop(name, None)


def names() -> tuple[str, ...]:
    return tuple(REGISTRY)


def get(name: str) -> Algorithm:
    if name not in REGISTRY:
        raise ValueError(f"algorithm must be one of {', '.join(REGISTRY)}; got {name!r}")
    return REGISTRY[name]


def label(name: str) -> str:
    return REGISTRY[name].label if name in REGISTRY else name


def _current_k(cfg, layers) -> dict:  # methods that start dense: the layers' K is the target / floor
    return {"k": [l.k for l in layers]}


register(Algorithm("deepr", "Deep R", DeepR, {"alpha": "alpha", "temperature": "temperature"},
                   lambda cfg, layers: {"global_k": cfg.global_k, "revive": cfg.global_revive},
                   "Algorithm 1: exactly K active, gradient + L1 + noise, uniform revival"))
register(Algorithm("soft-deepr", "soft-Deep R", SoftDeepR, {"alpha": "alpha", "temperature": "temperature"},
                   lambda cfg, layers: {"theta_min": cfg.theta_min if cfg.theta_min < 0 else None},
                   "Algorithm 2: dormant theta keeps walking, clipped at theta_min; K drifts"))
register(Algorithm("dense", "Dense", Dense, description="every connection, plain training"))
register(Algorithm("static", "Static sparse", StaticSparse, description="the initial random mask, fixed"))
register(Algorithm("set", "SET", SET, {"update_every": "update_every", "drop_fraction": "drop_fraction"},
                   description="drop the smallest |w|, regrow uniformly (Mocanu et al. 2018)"))
register(Algorithm("rigl", "RigL", RigL, {"update_every": "update_every", "drop_fraction": "drop_fraction",
                                          "t_end": "t_end"},
                   description="drop the smallest |w|, regrow by gradient (Evci et al. 2020)"))
register(Algorithm("magnitude", "Magnitude pruning", MagnitudePruning,
                   {"prune_at": "prune_at", "prune_events": "prune_events", "update_every": "prune_every"},
                   _current_k, "train dense, prune the smallest |w| to K (Han et al. 2015)"))
register(Algorithm("l1", "L1 shrinkage", L1Shrinkage, {"alpha": "alpha", "l1_threshold": "threshold"},
                   _current_k, "from dense, L1 soft threshold; removed for good, never below K"))
