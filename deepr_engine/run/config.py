"""RunConfig: everything that defines a training run, validated, with named presets.

Its fields are generated from the declarations (`registry.declarations()`: the run-wide
settings and every built-in method's own, each a `deepr_engine.hyper.Hyper`), so a field's
default, range and help are written once, where the setting is owned. A method registered
later may own a setting no field holds (the tests' toy method): RunConfig then carries it as an
extra key, in `to_dict()` / `from_dict()` like a field (`RunConfig(..., damping=0.2)` and
`cfg.damping` work too), and it becomes the optimizer's constructor argument.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field, fields

from .. import validate
from ..hyper import Hyper
from . import registry

ACTIVATIONS = registry.declaration("activation").choices
MODEL_KINDS = registry.declaration("model").choices


class RunConfig:
    """A run's setup. Fields: see `registry.declarations()` (or `--help` of the CLI)."""

    def validate(self) -> "RunConfig":
        """Every setting in its declared range, a method's extra settings only on that method,
        then what ties fields together."""
        alg = registry.get(self.algorithm)  # one of the registered methods
        decl = registry.declarations()
        extra = self.__dict__.get("_extra", {})
        for key in extra:
            if key not in alg.keys:
                raise ValueError(registry.idle(self, key) or f"{key} is not a setting of {alg.label}")
        for key, h in decl.items():
            if key in _FIELD_NAMES or key in alg.keys:
                h.check(getattr(self, key), key, config=True)
        if not isinstance(self.hidden, (list, tuple)) or len(self.hidden) > 8:
            raise ValueError(f"hidden must be a list of at most 8 layer sizes, got {self.hidden!r}")
        for i, h in enumerate(self.hidden):
            validate.integer(f"hidden[{i}]", h, low=1,
                             high=1_000_000 if self.compute == "sparse" else 4096)
        if self.compute == "sparse":
            refusal = alg.optimizer.SPARSE_REFUSAL  # the method says whether it runs on K-sized layers
            if refusal is not None:
                raise ValueError(f"compute 'sparse' does not work with algorithm {alg.name} "
                                 f"({alg.label}): {refusal}")
            if self.model != "mlp" or self.gradient != "sgd":
                raise ValueError("compute 'sparse' needs model mlp and gradient sgd (K-sized "
                                 f"layers); got model {self.model!r}, gradient {self.gradient!r}")
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

    def idle(self, key: str) -> str | None:
        """Why the setting `key` has no effect in this config (another method's setting,
        temperature while noise_scale sets the noise, ...), or None."""
        return registry.idle(self, key)

    @property
    def n_rewired_layers(self) -> int:
        return len(self.hidden) + 1 + (2 if self.model in ("conv", "cifar-conv") else 0)

    def steps_per_epoch(self, n_train: int) -> int:
        """Steps in one pass over `n_train` training examples (the batcher drops a partial
        batch, so an epoch is n_train // batch_size steps; at least 1)."""
        return max(1, int(n_train) // self.batch_size)

    def planned_steps(self, n_train: int) -> int:
        """The steps this config trains on a training split of `n_train` examples: `steps`, or
        round(epochs x steps per epoch) when epochs > 0 (so a run and a sweep trial that holds
        out validation data both train `epochs` passes over their own split, and lr_decay acts
        as often in both)."""
        if self.epochs > 0:
            return max(1, round(self.epochs * self.steps_per_epoch(n_train)))
        return self.steps

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

    # -- extra settings of methods registered later ----------------------------------------------
    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        extra = self.__dict__.get("_extra", {})
        if name in extra:
            return extra[name]
        decl = registry.declarations().get(name)
        if decl is not None and name not in _FIELD_NAMES:
            return _fresh(decl.default)
        raise AttributeError(f"RunConfig has no setting {name!r}")

    def __eq__(self, other):
        return isinstance(other, RunConfig) and self.to_dict() == other.to_dict()

    __hash__ = None

    # -- plain data ---------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """Every field, plus the method's own extra settings (registered methods' ones)."""
        d = dataclasses.asdict(self)
        alg = registry.REGISTRY.get(self.algorithm)
        own = [k for k in (alg.keys if alg else ()) if k not in d]
        return d | {k: getattr(self, k) for k in own} | dict(self.__dict__.get("_extra", {}))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @staticmethod
    def allowed(name: str) -> Hyper:
        """The declaration of the setting `name`: its meaning, default and allowed values."""
        return registry.declaration(name)

    @classmethod
    def from_dict(cls, d: dict) -> "RunConfig":
        known = set(_FIELD_NAMES) | set(registry.declarations())
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown config field(s) {unknown}; allowed: {sorted(known)}")
        return cls(**d).validate()

    def replace(self, **changes) -> "RunConfig":
        d = self.to_dict()
        if changes.get("algorithm", self.algorithm) != self.algorithm:  # the old method's extras go
            new = registry.get(changes["algorithm"])
            d = {k: v for k, v in d.items() if k in _FIELD_NAMES or k in new.keys or k in changes}
        return RunConfig.from_dict(d | changes)


def _fresh(default):
    return list(default) if isinstance(default, (list, tuple)) else default


def _as_field(h: Hyper):
    meta = {"hyper": h}
    if isinstance(h.default, (list, tuple)):
        return field(default_factory=lambda d=tuple(h.default): list(d), metadata=meta)
    return field(default=h.default, metadata=meta)


# the fields: the run-wide settings and the built-in methods' own, as declared now
_DECLARED = registry.declarations()
RunConfig.__annotations__ = {k: h.type for k, h in _DECLARED.items()}
for _k, _h in _DECLARED.items():
    setattr(RunConfig, _k, _as_field(_h))
RunConfig = dataclass(RunConfig)
_FIELD_NAMES = tuple(f.name for f in fields(RunConfig))
_generated_init = RunConfig.__init__


def _init(self, *args, **kw):
    extra = {k: kw.pop(k) for k in [k for k in kw if k not in _FIELD_NAMES]}
    _generated_init(self, *args, **kw)
    declared = registry.declarations()
    unknown = sorted(set(extra) - set(declared))
    if unknown:
        raise TypeError(f"RunConfig got unknown setting(s) {unknown}")
    self.__dict__["_extra"] = extra


RunConfig.__init__ = _init


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
    # Deep R as the study chose it on real MNIST data (benchmarks/accuracy.py, README: mnist10k,
    # 9 settings over sgd / momentum / adam, chosen on validation): adam lr 0.0058, alpha 3.9e-4,
    # T 1.4e-10; test 0.901 ± 0.005 after 3 epochs (seeds 1-3), SGD's best 0.79 on validation
    "deepr-mnist10k": RunConfig(dataset="mnist10k", hidden=[300, 100], bias=False,
                                connectivity=[0.01, 0.03, 0.3], gradient="adam", lr=0.00577,
                                alpha=3.879e-4, temperature=1.42e-10, batch_size=32,
                                eval_every=200, epochs=3.0),
    # The paper's CIFAR-10 experiment (Bellec et al. 2018): TensorFlow's CIFAR-10 tutorial
    # network (two 5x5x64 conv layers with 3x3 stride-2 max-pooling, fully connected 384 and
    # 192, softmax) rewired with Deep R; here without the tutorial's local response
    # normalisation and data augmentation. Batch 128 as in the tutorial; lr, alpha and T are
    # not tuned on CIFAR-10 here (no GPU or data on the machine that built this); `reproduce
    # cifar10` tunes them. CUDA when present (device auto).
    "paper-cifar10": RunConfig(dataset="cifar10", model="cifar-conv", hidden=[384, 192],
                               connectivity=[0.1], distribution="erk", lr=0.05, lr_decay=0.95,
                               alpha=1e-5, temperature=1e-12, batch_size=128, eval_every=1000,
                               epochs=30.0),
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
