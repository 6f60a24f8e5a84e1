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


@dataclass(frozen=True)
class Allowed:
    """What a field means and which values it takes: a number range (low, high; open ends
    say so) or choices. validate(), the CLI's help and the app's help all read it."""
    help: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    choices: tuple | None = None
    text: object = ""            # for what neither a range nor choices say (or a function giving it)

    def describe(self) -> str:
        if self.choices is not None:
            return ", ".join(map(str, self.choices))
        if self.text:
            return self.text() if callable(self.text) else self.text
        lo = "(-inf" if self.low is None else ("(" if self.low_open else "[") + f"{self.low:g}"
        hi = "inf)" if self.high is None else f"{self.high:g}]"
        return f"{lo}, {hi}"

    def check(self, name: str, value, is_int: bool) -> None:
        if self.choices is not None:
            validate.choice(name, value, self.choices)
        elif self.low is not None or self.high is not None:
            if is_int:
                validate.integer(name, value, low=self.low, high=self.high)
            else:
                validate.finite(name, value, low=self.low, high=self.high, low_open=self.low_open)


def _f(default, help: str, **allowed):
    meta = {"allowed": Allowed(help, **allowed)}
    if callable(default):
        return field(default_factory=default, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class RunConfig:
    # data
    dataset: str = _f("digits", "data set", choices=DATASETS)
    n_samples: int = _f(1000, "examples generated (2-D sets only)", low=20, high=1_000_000)
    noise: float = _f(0.1, "label noise / spread of the 2-D sets", low=0.0, high=10.0)
    data_root: str = _f("", "folder with the MNIST / Fashion-MNIST IDX files ('' = $DEEPR_DATA or "
                        "~/.cache/deepr_studio)", text="a path")
    download: bool = _f(False, "fetch MNIST / Fashion-MNIST when the files are missing",
                        text="true or false")
    val_fraction: float = _f(0.0, "share of the training data held out (seeded) as a validation "
                             "split; sweeps select on it", low=0.0, high=0.5)
    # model
    model: str = _f("mlp", "network kind (conv: two rewired conv layers; image data)",
                    choices=MODEL_KINDS)
    hidden: list[int] = _f(lambda: [64, 32], "hidden layer sizes, comma-separated",
                           text="up to 8 sizes, each 1-4096 (up to 1000000 with compute sparse)")
    activation: str = _f("relu", "hidden unit nonlinearity", choices=ACTIVATIONS)
    bias: bool = _f(True, "dense (never rewired) biases in every layer", text="true or false")
    connectivity: list[float] = _f(lambda: [0.15, 0.3, 0.5],
                                   "fraction of each rewired layer's positions active (K): one "
                                   "value for all layers or one per layer", text="each in (0, 1]")
    distribution: str = _f("uniform", "how one connectivity value is spread over the layers",
                           choices=("uniform", "erk"))
    compute: str = _f("dense", "how rewired layers compute: full-size dense weights, or K-sized "
                      "sparse ones (Deep R, MLP only; for very wide layers)",
                      choices=("dense", "sparse"))
    # algorithm
    algorithm: str = _f("deepr", "training method (the algorithm registry)",
                        text=lambda: ", ".join(registry.names()))
    lr: float = _f(0.05, "learning rate eta (also scales the L1 pull lr*alpha and the noise "
                   "sqrt(2 lr T))", low=0.0, high=100.0, low_open=True)
    lr_decay: float = _f(1.0, "lr multiplied by this after every epoch", low=0.0, high=1.0,
                         low_open=True)
    alpha: float = _f(1e-4, "L1 strength: pull lr*alpha per step on every active theta; sets "
                      "the turnover", low=0.0, high=100.0)
    temperature: float = _f(1e-6, "T: noise std sqrt(2 lr T) per step on active thetas",
                            low=0.0, high=100.0)
    noise_scale: float = _f(0.0, "> 0: T = lr * noise_scale^2 / 2, tracking lr (the reference "
                            "script's g)", low=0.0, high=100.0)
    theta_min: float = _f(0.0, "soft-Deep R's floor for theta (0 = rule of thumb from the "
                          "connectivity)", high=0.0)
    global_k: bool = _f(False, "one K for the whole network instead of one per layer",
                        text="true or false")
    global_revive: str = _f("uniform", "with global_k: revive uniformly over the network, or "
                            "split revivals in proportion to each layer's initial K",
                            choices=("uniform", "proportional"))
    gradient: str = _f("sgd", "gradient term of the update", choices=("sgd", "momentum", "adam"))
    batch_size: int = _f(32, "examples per step", low=1, high=100_000)
    # the comparison methods (optim/baselines.py)
    update_every: int = _f(100, "SET / RigL: steps between mask updates (magnitude: between "
                           "pruning events)", low=1, high=10**9)
    drop_fraction: float = _f(0.3, "SET / RigL: fraction of active connections dropped and "
                              "regrown per update", low=0.0, high=1.0)
    t_end: int = _f(0, "RigL: last update step (0 = 3/4 of steps)", low=0, high=10**12)
    prune_at: int = _f(0, "magnitude pruning: first pruning step (0 = half of steps)", low=0,
                       high=10**12)
    prune_events: int = _f(1, "magnitude pruning: reach the target in this many events", low=1,
                           high=1000)
    l1_threshold: float = _f(0.0, "L1 shrinkage: |w| at or below this is removed for good",
                             low=0.0)
    # run
    seed: int = _f(0, "seed of data split, init, batches and noise (CPU runs are bit-identical)",
                   low=0, high=2**63 - 1)
    eval_every: int = _f(100, "steps between test evaluations", low=1, high=10**9)
    steps: int = _f(2000, "steps to train; with --resume, steps ADDED to the run", low=0,
                    high=10**9)
    device: str = _f("auto", "where to train", text="auto, cpu, cuda, cuda:N")

    def validate(self) -> "RunConfig":
        """Every field in its allowed range (the field's Allowed), then what ties fields together."""
        for f in fields(self):
            allowed = f.metadata["allowed"]
            allowed.check(f.name, getattr(self, f.name), f.type in ("int", int))
        registry.get(self.algorithm)  # one of the registered methods
        if not isinstance(self.hidden, (list, tuple)) or len(self.hidden) > 8:
            raise ValueError(f"hidden must be a list of at most 8 layer sizes, got {self.hidden!r}")
        for i, h in enumerate(self.hidden):
            validate.integer(f"hidden[{i}]", h, low=1,
                             high=1_000_000 if self.compute == "sparse" else 4096)
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
        if self.algorithm == "soft-deepr" and self.theta_min == 0 and (
                self.effective_temperature() == 0 or self.alpha == 0):
            raise ValueError("theta_min must be set (< 0) for soft-deepr when temperature or "
                             "alpha is 0 (the rule of thumb needs both > 0)")
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

    @staticmethod
    def allowed(name: str) -> Allowed:
        """What the field `name` means and takes."""
        return {f.name: f.metadata["allowed"] for f in fields(RunConfig)}[name]

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
