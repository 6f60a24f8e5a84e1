"""The dashboard's setup in the URL: parse query parameters into a RunConfig plus UI settings
(bad values become messages and are ignored), and write them back."""
from __future__ import annotations

from dataclasses import dataclass, field

from deepr_engine.run.config import PRESETS, RunConfig, preset

# URL key -> RunConfig field (lists comma-separated)
CONFIG_KEYS = {"dataset": "dataset", "hidden": "hidden", "algo": "algorithm", "seed": "seed",
               "lr": "lr", "alpha": "alpha", "T": "temperature", "conn": "connectivity",
               "batch": "batch_size", "theta_min": "theta_min", "noise": "noise", "act": "activation",
               "model": "model", "n": "n_samples", "dist": "distribution", "every": "update_every",
               "zeta": "drop_fraction", "t_end": "t_end", "prune_at": "prune_at", "steps": "steps"}
UI_KEYS = {"spf": int, "speed": float}


@dataclass
class UISettings:
    preset: str = "digits-demo"
    steps_per_frame: int = 10
    max_steps_per_second: float = 0.0
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


def to_query(cfg: RunConfig, ui: UISettings, lr: float | None = None, alpha: float | None = None,
             temperature: float | None = None, k_conn: list[float] | None = None,
             batch_size: int | None = None) -> dict[str, str]:
    """Live values (lr, alpha, T, connectivity, batch) override the config's starting ones."""
    vals = cfg.to_dict()
    live = {"lr": lr, "alpha": alpha, "temperature": temperature, "connectivity": k_conn,
            "batch_size": batch_size}
    vals.update({k: v for k, v in live.items() if v is not None})
    out = {"preset": ui.preset}
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


# -- the Compare page: a shared setup plus 2-4 runs, each an algorithm with its own lr (and
# alpha / T where the method has them): runs=deepr,set&r1_lr=0.1&r0_T=1e-5
RUN_KEYS = {"lr": "lr", "alpha": "alpha", "T": "temperature"}
DEFAULT_RUNS = ["deepr", "soft-deepr", "set", "rigl"]


@dataclass
class RunSpec:
    algorithm: str
    overrides: dict = field(default_factory=dict)  # RunConfig field -> value


def compare_from_query(params: dict[str, str]) -> tuple[RunConfig, list[RunSpec], UISettings]:
    from deepr_engine.run.config import ALGORITHMS
    base, ui = from_query({k: v for k, v in params.items() if k not in ("algo", "runs")})
    names = [a for a in params.get("runs", ",".join(DEFAULT_RUNS[:3])).split(",") if a.strip()]
    bad = [a for a in names if a not in ALGORITHMS]
    if bad or not 2 <= len(names) <= 4:
        ui.errors.append(f"URL parameter runs: 2 to 4 of {', '.join(ALGORITHMS)}, comma-separated; "
                         f"got {params.get('runs')!r}")
        names = DEFAULT_RUNS[:3]
    specs = []
    for i, name in enumerate(names):
        spec = RunSpec(name)
        for key, fname in RUN_KEYS.items():
            text = params.get(f"r{i}_{key}")
            if text is None:
                continue
            try:
                value = float(text)
                base.replace(**{fname: value})  # validates
                spec.overrides[fname] = value
            except (ValueError, TypeError) as exc:
                ui.errors.append(f"URL parameter r{i}_{key}: {exc}")
        specs.append(spec)
    return base, specs, ui


def compare_to_query(base: RunConfig, specs: list[RunSpec], ui: UISettings) -> dict[str, str]:
    out = to_query(base, ui)
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
