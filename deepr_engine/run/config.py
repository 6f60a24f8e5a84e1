"""RunConfig: everything that defines a training run, validated, with named presets."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field, fields

from .. import validate
from . import registry
from .data import DATASETS

ACTIVATIONS = ("relu", "tanh", "sigmoid")
MODEL_KINDS = ("mlp", "conv")


@dataclass
class RunConfig:
    # data
    dataset: str = "digits"
    n_samples: int = 1000           # 2-D sets only
    noise: float = 0.1              # 2-D sets only
    data_root: str = ""             # MNIST / Fashion-MNIST folder ('' = default cache)
    download: bool = False
    val_fraction: float = 0.0       # share of the training data held out for validation (sweeps)
    # model
    model: str = "mlp"              # mlp, or conv (two rewired conv layers, image data)
    hidden: list[int] = field(default_factory=lambda: [64, 32])
    activation: str = "relu"
    bias: bool = True
    connectivity: list[float] = field(default_factory=lambda: [0.15, 0.3, 0.5])
    distribution: str = "uniform"   # one connectivity value over all layers: uniform or erk
    compute: str = "dense"          # dense (full-size layers) or sparse (K-sized, Deep R only)
    # algorithm
    algorithm: str = "deepr"
    lr: float = 0.05
    lr_decay: float = 1.0           # lr multiplied by this after every epoch
    alpha: float = 1e-4
    temperature: float = 1e-6
    noise_scale: float = 0.0        # > 0: temperature = lr * noise_scale**2 / 2, tracking lr
    theta_min: float = 0.0          # soft-Deep R; 0 = rule of thumb from the connectivity
    global_k: bool = False
    global_revive: str = "uniform"  # with global_k: uniform over the network, or proportional to initial K
    gradient: str = "sgd"
    batch_size: int = 32
    # the comparison methods (optim/baselines.py)
    update_every: int = 100         # SET / RigL: steps between mask updates
    drop_fraction: float = 0.3      # SET / RigL: fraction dropped and regrown per update
    t_end: int = 0                  # RigL: last update step (0 = 3/4 of steps)
    prune_at: int = 0               # magnitude pruning: first pruning step (0 = half of steps)
    prune_events: int = 1           # magnitude pruning: iterative pruning in this many steps
    l1_threshold: float = 0.0       # L1 shrinkage: |w| at or below this is removed
    # run
    seed: int = 0
    eval_every: int = 100
    steps: int = 2000               # CLI default length
    device: str = "auto"

    def validate(self) -> "RunConfig":
        validate.choice("dataset", self.dataset, DATASETS)
        validate.integer("n_samples", self.n_samples, low=20, high=1_000_000)
        validate.finite("noise", self.noise, low=0.0, high=10.0)
        validate.finite("val_fraction", self.val_fraction, low=0.0, high=0.5)
        validate.choice("model", self.model, MODEL_KINDS)
        if not isinstance(self.hidden, (list, tuple)) or len(self.hidden) > 8:
            raise ValueError(f"hidden must be a list of at most 8 layer sizes, got {self.hidden!r}")
        for i, h in enumerate(self.hidden):
            validate.integer(f"hidden[{i}]", h, low=1,
                             high=1_000_000 if self.compute == "sparse" else 4096)
        validate.choice("activation", self.activation, ACTIVATIONS)
        validate.choice("compute", self.compute, ("dense", "sparse"))
        if self.compute == "sparse" and (self.algorithm != "deepr" or self.model != "mlp"
                                         or self.global_k or self.gradient != "sgd"):
            raise ValueError("compute 'sparse' works with algorithm deepr, model mlp, global_k "
                             "off and gradient sgd only (K-sized layers); got algorithm "
                             f"{self.algorithm!r}, model {self.model!r}, global_k "
                             f"{self.global_k}, gradient {self.gradient!r}")
        n_layers = self.n_rewired_layers
        if not isinstance(self.connectivity, (list, tuple)) or len(self.connectivity) not in (1, n_layers):
            raise ValueError(f"connectivity must be one fraction or one per rewired layer "
                             f"({n_layers}), got {self.connectivity!r}")
        for i, c in enumerate(self.connectivity):
            validate.finite(f"connectivity[{i}]", c, low=0.0, high=1.0, low_open=True)
        validate.choice("distribution", self.distribution, ("uniform", "erk"))
        registry.get(self.algorithm)  # one of the registered methods
        validate.choice("global_revive", self.global_revive, ("uniform", "proportional"))
        validate.integer("update_every", self.update_every, low=1, high=10**9)
        validate.finite("drop_fraction", self.drop_fraction, low=0.0, high=1.0)
        validate.integer("t_end", self.t_end, low=0, high=10**12)
        validate.integer("prune_at", self.prune_at, low=0, high=10**12)
        validate.integer("prune_events", self.prune_events, low=1, high=1000)
        validate.finite("l1_threshold", self.l1_threshold, low=0.0)
        validate.finite("lr", self.lr, low=0.0, high=100.0, low_open=True)
        validate.finite("lr_decay", self.lr_decay, low=0.0, high=1.0, low_open=True)
        validate.finite("alpha", self.alpha, low=0.0, high=100.0)
        validate.finite("temperature", self.temperature, low=0.0, high=100.0)
        validate.finite("noise_scale", self.noise_scale, low=0.0, high=100.0)
        validate.finite("theta_min", self.theta_min, high=0.0)
        if self.algorithm == "soft-deepr" and self.theta_min == 0 and (
                self.effective_temperature() == 0 or self.alpha == 0):
            raise ValueError("theta_min must be set (< 0) for soft-deepr when temperature or "
                             "alpha is 0 (the rule of thumb needs both > 0)")
        validate.choice("gradient", self.gradient, ("sgd", "momentum", "adam"))
        validate.integer("batch_size", self.batch_size, low=1, high=100_000)
        validate.integer("seed", self.seed, low=0, high=2**63 - 1)
        validate.integer("eval_every", self.eval_every, low=1, high=10**9)
        validate.integer("steps", self.steps, low=0, high=10**9)
        if self.device not in ("auto", "cpu", "cuda") and not str(self.device).startswith("cuda:"):
            raise ValueError(f"device must be auto, cpu or cuda[:n], got {self.device!r}")
        return self

    @property
    def n_rewired_layers(self) -> int:
        return len(self.hidden) + 1 + (2 if self.model == "conv" else 0)

    def layer_connectivity(self, shapes=None) -> list[float]:
        """Per rewired layer; one value is spread by `distribution` (erk needs the weight
        shapes)."""
        c = list(self.connectivity)
        if len(c) > 1:
            return c
        if self.distribution == "erk":
            if shapes is None:
                raise ValueError("distribution 'erk' needs the layers' weight shapes")
            from ..distribution import distribute_connectivity
            return distribute_connectivity(shapes, c[0], "erk")
        return c * self.n_rewired_layers

    def effective_temperature(self, lr: float | None = None) -> float:
        lr = self.lr if lr is None else lr
        return lr * self.noise_scale ** 2 / 2 if self.noise_scale > 0 else self.temperature

    # -- plain data ---------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict) -> "RunConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown config field(s) {unknown}; allowed: {sorted(known)}")
        return cls(**d).validate()

    def replace(self, **changes) -> "RunConfig":
        return RunConfig.from_dict(self.to_dict() | changes)


PRESETS: dict[str, RunConfig] = {
    # The reference MNIST setting (spec): 784-300-100-10, no biases, 1% / 3% / 30%, SGD lr 0.5
    # decayed by 0.8 per epoch, batch 10, alpha 1e-5, noise std lr * 1e-5 per step.
    "paper-mnist": RunConfig(dataset="mnist", hidden=[300, 100], bias=False,
                             connectivity=[0.01, 0.03, 0.3], lr=0.5, lr_decay=0.8, alpha=1e-5,
                             noise_scale=1e-5, batch_size=10, eval_every=1000, steps=60_000),
    "soft-deepr-mnist": RunConfig(dataset="mnist", hidden=[300, 100], bias=False,
                                  connectivity=[0.01, 0.03, 0.3], algorithm="soft-deepr", lr=0.05,
                                  lr_decay=0.9, alpha=1e-5, temperature=1e-12, batch_size=10,
                                  eval_every=1000, steps=60_000),
    # fast, readable graph: 64 inputs (8x8 digits), 32 and 16 hidden units. Chosen so that the
    # rewiring shows while it learns: measured (benchmarks/demo_rewiring.py) about 50
    # established connections replaced per 100 steps and test accuracy 0.94-0.96 at 3,000
    # steps (lr 0.05, alpha 1e-4, T 1e-6 gave 6-7 and 0.90)
    "digits-demo": RunConfig(dataset="digits", hidden=[32, 16], connectivity=[0.2, 0.3, 0.5],
                             lr=0.2, alpha=1e-3, temperature=1e-5, batch_size=32,
                             eval_every=50, steps=3000),
    # wide and very sparse: 784-10000-10000-10, the 10^8-position middle layer at 0.1%
    # (K = 78,400 / 100,000 / 10,000), compact layers: memory and work follow K. digits-28 is
    # the 8x8 digits scaled to 28x28, an MNIST-shaped stand-in without a download (dataset
    # mnist where its files are). The reference init (w0 ~ N(0, 1/n_in)) leaves a tiny signal
    # through layers this sparse, so: no L1 to speak of, T = 0 and a large lr; measured test
    # accuracy 0.74 after 500 steps (alpha 1e-3, T 1e-6, 0.1% everywhere stayed at chance)
    "wide-sparse": RunConfig(dataset="digits-28", hidden=[10_000, 10_000], compute="sparse",
                             connectivity=[0.01, 0.001, 0.1], lr=1.0, alpha=1e-6,
                             temperature=0.0, batch_size=32, eval_every=100, steps=3000),
    # 2-D spiral, tiny network, the decision boundary visible; about 10 established
    # connections replaced per 100 steps at test accuracy 0.99 (lr 0.1, alpha 1e-4, T 1e-6 gave
    # 1.6). alpha 1e-3 replaces 15 but makes five times as many brief probes (flicker). The
    # first layer (2x16, 26 of 32 active) has almost no dormant positions: it rewires little.
    "spiral-demo": RunConfig(dataset="spiral", n_samples=600, noise=0.1, hidden=[16, 16],
                             activation="tanh", connectivity=[0.8, 0.5, 0.8], lr=0.3,
                             alpha=3e-4, temperature=1e-5, batch_size=16, eval_every=50,
                             steps=5000),
}


def preset(name: str) -> RunConfig:
    if name not in PRESETS:
        raise ValueError(f"preset must be one of {', '.join(PRESETS)}; got {name!r}")
    return dataclasses.replace(PRESETS[name], hidden=list(PRESETS[name].hidden),
                               connectivity=list(PRESETS[name].connectivity))
