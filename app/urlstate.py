"""The dashboard's setup in the URL: parse query parameters into a RunConfig plus UI settings
(bad values become messages and are ignored), and write them back. The URL keys come from the
declarations (`registry.declarations()`, each setting's `url_key`), so a method's new
hyperparameter is in the URL without an edit here. A declared setting without a short key
(val_fraction, lr_decay, epochs, ...) is written under its own name when it differs from the
preset, so a link carries a sweep trial's whole setup; the data folder, downloading and the
device never come from a URL. `run=<id>` names the tab's run so that a reload finds it again."""
from __future__ import annotations

from dataclasses import dataclass, field

from deepr_engine.run import registry
from deepr_engine.run.config import PRESETS, RunConfig, preset


NEVER_IN_URL = ("data_root", "download", "device")   # the server's files, network and hardware


def config_keys() -> dict[str, str]:
    """URL key -> RunConfig setting, for every declared setting that has a URL key."""
    return {h.url: name for name, h in registry.declarations().items() if h.url}


def extra_keys() -> dict[str, str]:
    """URL key -> setting for the declared settings without a short key (their own name), but
    NEVER_IN_URL: written only when they differ from the preset."""
    return {name: name for name, h in registry.declarations().items()
            if not h.url and name not in NEVER_IN_URL}


def holdout_note(cfg: RunConfig) -> str:
    """'trained on 80%, 20% held out for validation' for a run with a validation hold-out,
    else ''."""
    v = cfg.val_fraction
    return f"trained on {1 - v:.0%}, {v:.0%} held out for validation" if v > 0 else ""


def matching_preset(cfg: RunConfig) -> str | None:
    """The preset this setup equals (seed, step budget and every other setting), else None."""
    return next((name for name in PRESETS if preset(name) == cfg), None)


def url_key(name: str) -> str:
    return registry.declaration(name).url


UI_KEYS = {"spf": int, "speed": float}


@dataclass
class UISettings:
    preset: str = "digits-demo"
    steps_per_frame: int = 10
    max_steps_per_second: float = 0.0
    run_id: str = ""               # the tab's run (BackgroundSession.run_id), for reloads
    errors: list[str] = field(default_factory=list)


_KINDS = {int: "a whole number", float: "a number", str: "text"}


def _parse(field_name: str, text: str, current):
    """A URL value as the field's type; ValueError in the project's words (not Python's)."""
    if isinstance(current, bool):
        return text.lower() in ("1", "true", "yes")
    inner = (type(current[0]) if current else float) if isinstance(current, list) else type(current)
    try:
        if isinstance(current, list):
            return [inner(v) for v in text.split(",") if v.strip()]
        return inner(text)
    except ValueError:
        what = f"comma-separated, each {_KINDS.get(inner, inner.__name__)}" if isinstance(current, list) \
            else _KINDS.get(inner, inner.__name__)
        raise ValueError(f"{what}; got {text!r}") from None


def from_query(params: dict[str, str]) -> tuple[RunConfig, UISettings]:
    ui = UISettings()
    name = params.get("preset", "digits-demo")
    if name not in PRESETS:
        ui.errors.append(f"URL parameter preset: must be one of {', '.join(PRESETS)}; got {name!r}")
        name = "digits-demo"
    ui.preset = name
    ui.run_id = params.get("run", "")
    cfg = preset(name)
    keys = config_keys() | extra_keys()
    conn_key = url_key("connectivity")
    for key, fname in keys.items():
        if key not in params or key == conn_key:
            continue
        try:
            if fname != "algorithm" and registry.foreign(cfg.algorithm, fname) \
                    and fname not in RunConfig.__dataclass_fields__:
                raise ValueError(registry.foreign(cfg.algorithm, fname))
            value = _parse(fname, params[key], getattr(cfg, fname))
            changes = {fname: value}
            if fname in ("hidden", "model"):  # a new layer count: keep one connectivity value
                n_layers = RunConfig(**(cfg.to_dict() | changes)).n_rewired_layers
                if len(cfg.connectivity) not in (1, n_layers):
                    changes["connectivity"] = [cfg.connectivity[0]]
            cfg = cfg.replace(**changes)
        except (ValueError, TypeError) as exc:
            ui.errors.append(f"URL parameter {key}: {exc}")
    if len(cfg.connectivity) not in (1, cfg.n_rewired_layers):
        cfg = cfg.replace(connectivity=[cfg.connectivity[0]])
    if conn_key in params:   # last: its count must fit the URL's layers
        cfg = _connectivity(cfg, params[conn_key], conn_key, ui)
    for key, conv in UI_KEYS.items():
        if key in params:
            try:
                v = conv(params[key])
                if key == "spf" and not 1 <= v <= 1000:
                    raise ValueError(f"must be in [1, 1000], got {v}")
                if key == "speed" and not 0 <= v <= 1e6:
                    raise ValueError(f"must be in [0, 1e6], got {v}")
                if key == "spf":
                    ui.steps_per_frame = v
                else:
                    ui.max_steps_per_second = v
            except ValueError as exc:
                ui.errors.append(f"URL parameter {key}: {exc}")
    return cfg, ui


def _connectivity(cfg: RunConfig, text: str, key: str, ui: UISettings) -> RunConfig:
    """The URL's connectivity; a count that does not fit the URL's layers (hidden sizes changed
    since it was written) falls back to its first value for every layer, and says so."""
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
        if not values:
            raise ValueError(f"needs one or more fractions, got {text!r}")
    except ValueError as exc:
        ui.errors.append(f"URL parameter {key}: {exc}")
        return cfg
    n = cfg.n_rewired_layers
    if len(values) not in (1, n):
        ui.errors.append(f"URL parameter {key}: {len(values)} values for {n} rewired layers "
                         f"(hidden {','.join(map(str, cfg.hidden))}); using {values[0]:g} for "
                         f"every layer")
        values = values[:1]
    try:
        return cfg.replace(connectivity=values)
    except ValueError as exc:
        ui.errors.append(f"URL parameter {key}: {exc}")
        return cfg


def to_query(cfg: RunConfig, ui: UISettings, **live) -> dict[str, str]:
    """Live values (RunConfig field names: lr, alpha, temperature, connectivity as the K
    target, batch_size, ...) override the config's starting ones. Only the settings of the
    config's method are written (besides the run-wide ones)."""
    vals = cfg.to_dict()
    unknown = sorted(set(live) - set(vals))
    if unknown:
        raise ValueError(f"to_query: unknown field(s) {unknown}; allowed: RunConfig fields")
    vals.update({k: v for k, v in live.items() if v is not None})
    out = {"preset": ui.preset}
    if ui.run_id:
        out["run"] = ui.run_id
    start = preset(ui.preset).to_dict() if ui.preset in PRESETS else {}
    extra = {k: f for k, f in extra_keys().items() if f in vals and vals[f] != start.get(f)}
    for key, fname in (config_keys() | extra).items():
        if registry.foreign(cfg.algorithm, fname) or fname not in vals:
            continue
        v = vals[fname]
        out[key] = ",".join(_num(x) for x in v) if isinstance(v, list) else _num(v)
    out["spf"] = str(ui.steps_per_frame)
    out["speed"] = _num(ui.max_steps_per_second)
    return out


def _num(v) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


# -- the Compare page: a shared setup plus 2-4 runs, each an algorithm with its own lr and its
# own hyperparameters (the registry's fields of that method): runs=deepr,set&r1_lr=0.1&r0_T=1e-5
def run_keys() -> dict[str, str]:
    """URL key -> field for a Compare run's own values: lr and every method's live optimizer
    hyperparameters (not the run-level ones such as noise_scale or theta_min)."""
    out = {url_key("lr"): "lr"}
    for alg in registry.REGISTRY.values():
        for h in alg.optimizer.HYPER.values():
            if h.live and h.url:
                out.setdefault(h.url, h.key)
    return out


DEFAULT_RUNS = ["deepr", "soft-deepr", "set", "rigl"]


@dataclass
class RunSpec:
    algorithm: str
    overrides: dict = field(default_factory=dict)  # RunConfig field -> value


def compare_from_query(params: dict[str, str]) -> tuple[RunConfig, list[RunSpec], UISettings]:
    base, ui = from_query({k: v for k, v in params.items() if k not in ("algo", "runs", "run")})
    names = [a for a in params.get("runs", ",".join(DEFAULT_RUNS[:3])).split(",") if a.strip()]
    bad = [a for a in names if a not in registry.names()]
    if bad or not 2 <= len(names) <= 4:
        ui.errors.append(f"URL parameter runs: 2 to 4 of {', '.join(registry.names())}, "
                         f"comma-separated; got {params.get('runs')!r}")
        names = DEFAULT_RUNS[:3]
    specs = []
    for i, name in enumerate(names):
        spec = RunSpec(name)
        for key, fname in run_keys().items():
            text = params.get(f"r{i}_{key}")
            if text is None:
                continue
            try:
                why = registry.foreign(name, fname)
                if why:
                    raise ValueError(why)
                current = getattr(base, fname)
                value = type(current)(float(text)) if isinstance(current, int) else float(text)
                if isinstance(current, int) and value != float(text):
                    raise ValueError(f"must be a whole number, got {text!r}")
                base.replace(algorithm=name, **{fname: value})  # validates
                spec.overrides[fname] = value
            except (ValueError, TypeError) as exc:
                ui.errors.append(f"URL parameter r{i}_{key}: {exc}")
        specs.append(spec)
    return base, specs, ui


def compare_to_query(base: RunConfig, specs: list[RunSpec], ui: UISettings) -> dict[str, str]:
    out = to_query(base, UISettings(ui.preset, ui.steps_per_frame, ui.max_steps_per_second))
    out.pop("algo", None)
    out["runs"] = ",".join(s.algorithm for s in specs)
    for i, spec in enumerate(specs):
        for key, fname in run_keys().items():
            if fname in spec.overrides:
                out[f"r{i}_{key}"] = _num(spec.overrides[fname])
    return out


def run_config(base: RunConfig, spec: RunSpec) -> RunConfig:
    """One run of the comparison: the shared setup with this run's algorithm and overrides."""
    return base.replace(algorithm=spec.algorithm, **spec.overrides)
