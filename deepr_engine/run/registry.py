"""The algorithm registry and every setting of a run, each declared once (`deepr_engine.hyper.Hyper`).

A method's own hyperparameters are its optimizer's `HYPER` table (plus, in its registry entry,
`run_hypers` the run harness reads, such as noise_scale); the run-wide settings are `CORE` below.
RunConfig's fields and validation, the CLI flags and --help, the dashboard's URL keys, the app's
live controls, the sweep's field list and the README's table all derive from these
declarations (`declarations()`), so a new hyperparameter is one `Hyper(...)` line in its
optimizer's `HYPER` plus its use in the update. A method registered later (tests' toy method)
may declare a setting no built-in method has: RunConfig carries it as an extra key.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from ..hyper import Hyper
from ..optim import SET, DeepR, Dense, L1Shrinkage, MagnitudePruning, RigL, SoftDeepR, StaticSparse
from ..optim.base import RewiringOptimizer
from .data import DATASETS

if TYPE_CHECKING:
    from .config import RunConfig

TF = "true or false"

# -- the run-wide settings (every method has them) ------------------------------------------------
CORE: tuple[Hyper, ...] = (
    Hyper("dataset", "digits", help="data set", choices=DATASETS, scale="choice", live=False),
    Hyper("n_samples", 1000, 20, 1_000_000, "examples generated (2-D sets only)", scale="int",
          live=False, url_key="n"),
    Hyper("noise", 0.1, 0.0, 10.0, "label noise / spread of the 2-D sets", scale="number",
          live=False),
    Hyper("data_root", "", help="folder with the MNIST / Fashion-MNIST IDX files ('' = "
          "$DEEPR_DATA or ~/.cache/deepr_studio)", text="a path", scale="text", live=False,
          url_key="-"),
    Hyper("download", False, help="fetch MNIST / Fashion-MNIST when the files are missing",
          text=TF, scale="bool", live=False, url_key="-"),
    Hyper("val_fraction", 0.0, 0.0, 0.5, "share of the training data held out (seeded) as a "
          "validation split; sweeps select on it", scale="fraction", live=False, url_key="-"),
    Hyper("model", "mlp", help="network kind (conv: two rewired 3x3 conv layers, 8 and 16 "
          "channels; cifar-conv: two rewired 5x5 conv layers of 64 channels with 3x3 stride-2 "
          "max-pooling, TensorFlow's CIFAR-10 tutorial net that Bellec et al. 2018 rewired; "
          "image data, then the hidden layers)",
          choices=("mlp", "conv", "cifar-conv"), scale="choice", live=False),
    Hyper("hidden", (64, 32), help="hidden layer sizes, comma-separated", typ=list[int],
          text="up to 8 sizes, each 1-4096 (up to 1000000 with compute sparse)", scale="text",
          live=False),
    Hyper("activation", "relu", help="hidden unit nonlinearity", choices=("relu", "tanh", "sigmoid"),
          scale="choice", live=False, url_key="act"),
    Hyper("bias", True, help="dense (never rewired) biases in every layer", text=TF, scale="bool",
          live=False, url_key="-"),
    Hyper("connectivity", (0.15, 0.3, 0.5), help="fraction of each rewired layer's positions "
          "active (K): one value for all layers or one per layer", typ=list[float],
          text="each in (0, 1]", scale="text", url_key="conn"),
    Hyper("distribution", "uniform", help="how one connectivity value is spread over the layers",
          choices=("uniform", "erk"), scale="choice", live=False, url_key="dist",
          idle=lambda cfg: "distribution spreads one connectivity value; the config gives one "
          "per layer" if len(cfg.connectivity) > 1 else None),
    Hyper("compute", "dense", help="how rewired layers compute: full-size dense weights, or "
          "K-sized sparse ones (methods that support it, MLP only; for very wide layers)",
          choices=("dense", "sparse"), scale="choice", live=False, url_key="-"),
    Hyper("algorithm", "deepr", help="training method (the algorithm registry)",
          text=lambda: ", ".join(names()), scale="text", live=False, url_key="algo"),
    RewiringOptimizer.COMMON["lr"],
    Hyper("lr_decay", 1.0, 0.0, 1.0, "lr multiplied by this after every epoch", low_open=True,
          scale="number", url_key="-"),
    Hyper("global_k", False, help="one K for the whole network instead of one per layer", text=TF,
          scale="bool", live=False, url_key="-"),
    Hyper("global_revive", "uniform", help="with global_k: revive uniformly over the network, or "
          "split revivals in proportion to each layer's initial K",
          choices=("uniform", "proportional"), scale="choice", live=False, url_key="-",
          idle=lambda cfg: None if cfg.global_k else "global_revive works with global_k only"),
    RewiringOptimizer.COMMON["gradient"],
    Hyper("batch_size", 32, 1, 100_000, "examples per step", scale="int", label="Batch size",
          url_key="batch"),
    Hyper("seed", 0, 0, 2**63 - 1, "seed of data split, init, batches and noise (CPU runs are "
          "bit-identical)", scale="int", live=False),
    Hyper("eval_every", 100, 1, 10**9, "steps between test evaluations", scale="int",
          url_key="-"),
    Hyper("steps", 2000, 0, 10**9, "steps to train; with --resume, steps ADDED to the run",
          scale="int", live=False,
          idle=lambda cfg: f"epochs {cfg.epochs:g} > 0 sets the number of steps (epochs x "
          "steps per epoch of the training split used); set epochs 0 to use steps"
          if cfg.epochs > 0 else None),
    Hyper("epochs", 0.0, 0.0, 1e6, "> 0: train this many passes over the training split "
          "actually used (after a validation hold-out), steps = round(epochs x steps per epoch), "
          "steps per epoch = n_train // batch_size (the batcher drops a partial batch; lr_decay "
          "acts once per epoch); overrides steps", scale="number", live=False, url_key="-",
          zero="use steps"),
    Hyper("device", "auto", help="where to train", text="auto, cpu, cuda, cuda:N", scale="text",
          live=False, url_key="-"),
)
# harness-level settings of the Langevin methods (read by the run, not passed to the optimizer)
NOISE_SCALE = Hyper("noise_scale", 0.0, 0.0, 100.0, "> 0: T = lr * noise_scale^2 / 2, tracking "
                    "lr (the reference script's g); overrides temperature", label="Noise scale g",
                    floor=1e-8)
THETA_MIN = Hyper("theta_min", 0.0, -1e6, 0.0, "soft-Deep R's floor for theta (< 0; 0 = the "
                  "rule of thumb -T(1-p0)/(alpha p0)); the stationary mean of an active theta is "
                  "T/alpha", scale="number", label="theta_min")
CONTROL_SCALES = ("log", "int", "fraction", "number")


@dataclass(frozen=True)
class Algorithm:
    name: str
    label: str
    optimizer: type
    # construction-only arguments (k targets, global K, theta_min), from the config and model
    extra: Callable = lambda cfg, layers: {}
    description: str = ""
    run_hypers: tuple = ()   # the method's settings the run reads itself (not optimizer arguments)

    @property
    def k_meaning(self) -> str:
        """What K is for this method: active, target, floor, soft or none (see ExactK)."""
        return self.optimizer.K_MEANING

    @property
    def hypers(self) -> tuple[Hyper, ...]:
        """Every setting this method owns: its optimizer's HYPER, then its run_hypers."""
        return tuple(self.optimizer.HYPER.values()) + tuple(self.run_hypers)

    @property
    def fields(self) -> dict[str, str]:
        """RunConfig field -> the optimizer's hyperparameter, for the method's live ones."""
        return {h.key: h.name for h in self.optimizer.HYPER.values() if h.live}

    @property
    def keys(self) -> tuple[str, ...]:
        """The RunConfig fields this method owns."""
        return tuple(dict.fromkeys(h.key for h in self.hypers))

    @property
    def controls(self) -> list[str]:
        """The live controls the app shows for this method (besides K), in display order."""
        own = [h.key for h in self.hypers if _control(h, False)]
        core = [h.key for h in CORE if _control(h, True)]
        return list(dict.fromkeys(core + own))

    def hyper(self, cfg: RunConfig, lr: float | None = None) -> dict:
        """The method's own hyperparameters from a config, in the optimizer's names."""
        return {h.name: h.resolve(cfg, lr) for h in self.optimizer.HYPER.values()}

    def build(self, cfg: RunConfig, model):
        """The config's optimizer; sparse methods start from the model's current masks."""
        from ..layers import rewired_layers
        return self.optimizer(model, lr=cfg.lr, gradient=cfg.gradient, seed=cfg.seed,
                              **self.hyper(cfg), **self.extra(cfg, rewired_layers(model)))


def _control(h: Hyper, core: bool) -> bool:
    """A live control in the app: a method's live setting on a control scale; a run-wide one
    only when it has a label (lr, batch size)."""
    return h.live and h.scale in CONTROL_SCALES and (bool(h.label) or not core)


REGISTRY: dict[str, Algorithm] = {}
_SAME = ("default", "low", "high", "low_open", "high_open", "choices", "zero", "type")


def _agree(a: Hyper, b: Hyper) -> bool:
    return all(getattr(a, k) == getattr(b, k) for k in _SAME)


def register(algorithm: Algorithm) -> Algorithm:
    """Add a method. A setting it shares with another method or the run (same RunConfig field)
    must be declared alike (default, range, type); a core field cannot be redeclared."""
    if not callable(algorithm.extra) or isinstance(algorithm.extra, dict):
        raise TypeError(f"{algorithm.name}: Algorithm's 4th argument is `extra` (a function of "
                        "config and layers); a method's hyperparameters are declared in its "
                        "optimizer's HYPER with deepr_engine.hyper.Hyper, not mapped here")
    plain = [n for n, h in algorithm.optimizer.HYPER.items() if not isinstance(h, Hyper)]
    if plain:
        raise TypeError(f"{algorithm.name}: {algorithm.optimizer.__name__}.HYPER entries {plain} "
                        "must be deepr_engine.hyper.Hyper declarations (default, range, help)")
    core = {h.key for h in CORE}
    for h in algorithm.hypers:
        if h.key in core:
            raise ValueError(f"{algorithm.name}: {h.key} is a run-wide setting, not a method's")
        for other in REGISTRY.values():
            if other.name == algorithm.name:
                continue
            for o in other.hypers:
                if o.key == h.key and not _agree(o, h):
                    raise ValueError(f"{algorithm.name}: {h.key} is declared differently by "
                                     f"{other.name} (default {o.default!r}, {o.describe()}); "
                                     f"a shared field needs the same default and range")
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


# -- the declarations, as every consumer reads them ------------------------------------------------
def declarations() -> dict[str, Hyper]:
    """RunConfig field -> its declaration: the run-wide settings, then the registered methods'
    own in registration order (a field two methods share: the first declaration, its help
    joined with the others')."""
    out = {h.key: h for h in CORE}
    helps: dict[str, list[str]] = {}
    for alg in REGISTRY.values():
        for h in alg.hypers:
            out.setdefault(h.key, h)
            helps.setdefault(h.key, [])
            if h.help not in helps[h.key]:
                helps[h.key].append(h.help)
    for key, hs in helps.items():
        if len(hs) > 1:
            from dataclasses import replace
            out[key] = replace(out[key], help="; ".join(hs))
    return out


def declaration(key: str) -> Hyper:
    d = declarations()
    if key not in d:
        raise ValueError(f"unknown setting {key!r}; allowed: {', '.join(d)}")
    return d[key]


def owners(key: str) -> list[Algorithm]:
    """The methods that have the setting `key` (empty for a run-wide setting)."""
    return [a for a in REGISTRY.values() if key in a.keys]


def idle(cfg: RunConfig, key: str) -> str | None:
    """Why the setting `key` has no effect under `cfg`, or None when it has one: a method's
    setting under another method, or a declaration's own rule (temperature while noise_scale
    sets the noise)."""
    why = foreign(cfg.algorithm, key)
    if why:
        return why
    decl = declarations().get(key)
    return decl.idle(cfg) if decl is not None and decl.idle is not None else None


def foreign(algorithm: str, key: str) -> str | None:
    """Why `key` is no setting of the method `algorithm` (another method's), or None."""
    own = owners(key)
    alg = REGISTRY.get(algorithm)
    if own and alg is not None and alg not in own:
        return f"{key} is a setting of {', '.join(a.label for a in own)}, not of {alg.label}"
    return None


class _Controls(Mapping):
    """Field -> declaration of every setting that can be a live control (read when used, so a
    method registered later adds its own)."""

    def _all(self) -> dict[str, Hyper]:
        core = {h.key for h in CORE}
        return {k: h for k, h in declarations().items() if _control(h, k in core)}

    def __getitem__(self, key):
        return self._all()[key]

    def __iter__(self):
        return iter(self._all())

    def __len__(self):
        return len(self._all())


CONTROLS: Mapping[str, Hyper] = _Controls()


def hyper_table() -> str:
    """The README's table of every setting a method owns (generated from the declarations)."""
    lines = ["| setting | methods | default | allowed | live | what it does |",
             "|---|---|---|---|---|---|"]
    for key, h in declarations().items():
        own = owners(key)
        if not own:
            continue
        what = h.help.replace("|", "\\|")   # a literal | inside a table cell
        lines.append(f"| `{key}` | {', '.join(a.name for a in own)} | {h.default!r} | "
                     f"{h.describe()} | {'yes' if h.live else 'no'} | {what} |")
    return "\n".join(lines)


def _current_k(cfg, layers) -> dict:  # methods that start dense: the layers' K is the target / floor
    return {"k": [l.k for l in layers]}


register(Algorithm("deepr", "Deep R", DeepR,
                   lambda cfg, layers: {"global_k": cfg.global_k, "revive": cfg.global_revive},
                   "Algorithm 1: exactly K active, gradient + L1 + noise, uniform revival",
                   (NOISE_SCALE,)))
register(Algorithm("soft-deepr", "soft-Deep R", SoftDeepR,
                   lambda cfg, layers: {"theta_min": cfg.theta_min if cfg.theta_min < 0 else None},
                   "Algorithm 2: dormant theta keeps walking, clipped at theta_min; K drifts",
                   (NOISE_SCALE, THETA_MIN)))
register(Algorithm("dense", "Dense", Dense, description="every connection, plain training"))
register(Algorithm("static", "Static sparse", StaticSparse, description="the initial random mask, fixed"))
register(Algorithm("set", "SET", SET,
                   description="drop the smallest |w|, regrow uniformly (Mocanu et al. 2018)"))
register(Algorithm("rigl", "RigL", RigL,
                   description="drop the smallest |w|, regrow by gradient (Evci et al. 2020)"))
register(Algorithm("magnitude", "Magnitude pruning", MagnitudePruning, _current_k,
                   "train dense, prune the smallest |w| to K (Han et al. 2015)"))
register(Algorithm("l1", "L1 shrinkage", L1Shrinkage, _current_k,
                   "from dense, L1 soft threshold; removed for good, never below K"))
