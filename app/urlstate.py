"""The dashboard's setup in the URL: parse query parameters into a RunConfig plus UI settings
(bad values become messages and are ignored), and write them back. Methods come from the
algorithm registry (any registered name is accepted); `run=<id>` names the tab's run so that a
reload finds it again."""
from __future__ import annotations

from dataclasses import dataclass, field

from deepr_engine.run import registry
from deepr_engine.run.config import PRESETS, RunConfig, preset

# URL key -> RunConfig field (lists comma-separated)
CONFIG_KEYS = {"dataset": "dataset", "hidden": "hidden", "algo": "algorithm", "seed": "seed",
               "lr": "lr", "alpha": "alpha", "T": "temperature", "conn": "connectivity",
               "batch": "batch_size", "theta_min": "theta_min", "noise": "noise", "act": "activation",
               "model": "model", "n": "n_samples", "dist": "distribution", "every": "update_every",
               "zeta": "drop_fraction", "t_end": "t_end", "prune_at": "prune_at",
               "prune_events": "prune_events", "l1thr": "l1_threshold", "steps": "steps"}
URL_KEY = {fname: key for key, fname in CONFIG_KEYS.items()}  # RunConfig field -> URL key
UI_KEYS = {"spf": int, "speed": float}


@dataclass
class UISettings:
    preset: str = "digits-demo"
    steps_per_frame: int = 10
    max_steps_per_second: float = 0.0
    run_id: str = ""               # the tab's run (BackgroundSession.run_id), for reloads
    errors: list[str] = field(default_factory=list)


def _parse(field_name: str, text: str, current):
    if isinstance(current, list):
        inner = type(current[0]) if current else float
        return [inner(v) for v in text.split(",") if v.strip()]
    if isinstance(current, bool):
        return text.lower() in ("1", "true", "yes")
    return type(current)(text)


def from_query(params: dict[str, str]) -> tuple[RunConfig, UISettings]:
    ui = UISettings()
    name = params.get("preset", "digits-demo")
    if name not in PRESETS:
        ui.errors.append(f"URL parameter preset: must be one of {', '.join(PRESETS)}; got {name!r}")
        name = "digits-demo"
    ui.preset = name
    ui.run_id = params.get("run", "")
    cfg = preset(name)
    for key, fname in CONFIG_KEYS.items():
        if key not in params:
            continue
        try:
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


def to_query(cfg: RunConfig, ui: UISettings, **live) -> dict[str, str]:
    """Live values (RunConfig field names: lr, alpha, temperature, connectivity as the K
    target, batch_size, ...) override the config's starting ones."""
    vals = cfg.to_dict()
    unknown = sorted(set(live) - set(vals))
    if unknown:
        raise ValueError(f"to_query: unknown field(s) {unknown}; allowed: RunConfig fields")
    vals.update({k: v for k, v in live.items() if v is not None})
    out = {"preset": ui.preset}
    if ui.run_id:
        out["run"] = ui.run_id
    for key, fname in CONFIG_KEYS.items():
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
RUN_FIELDS = ("lr", "alpha", "temperature", "update_every", "drop_fraction", "t_end", "prune_at",
              "prune_events", "l1_threshold")
RUN_KEYS = {URL_KEY[f]: f for f in RUN_FIELDS}
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
        for key, fname in RUN_KEYS.items():
            text = params.get(f"r{i}_{key}")
            if text is None:
                continue
            try:
                current = getattr(base, fname)
                value = type(current)(float(text)) if isinstance(current, int) else float(text)
                if isinstance(current, int) and value != float(text):
                    raise ValueError(f"must be a whole number, got {text!r}")
                base.replace(**{fname: value})  # validates
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
        for key, fname in RUN_KEYS.items():
            if fname in spec.overrides:
                out[f"r{i}_{key}"] = _num(spec.overrides[fname])
    return out


def run_config(base: RunConfig, spec: RunSpec) -> RunConfig:
    """One run of the comparison: the shared setup with this run's algorithm and overrides."""
    return base.replace(algorithm=spec.algorithm, **spec.overrides)
