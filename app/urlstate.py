"""The dashboard's setup in the URL: parse query parameters into a RunConfig plus UI settings
(bad values become messages and are ignored), and write them back."""
from __future__ import annotations

from dataclasses import dataclass, field

from deepr_engine.config import PRESETS, RunConfig, preset

# URL key -> RunConfig field (lists comma-separated)
CONFIG_KEYS = {"dataset": "dataset", "hidden": "hidden", "algo": "algorithm", "seed": "seed",
               "lr": "lr", "alpha": "alpha", "T": "temperature", "conn": "connectivity",
               "batch": "batch_size", "theta_min": "theta_min", "noise": "noise", "act": "activation",
               "model": "model", "n": "n_samples"}
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
            cfg = cfg.replace(**{fname: value})
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
    vals = {"dataset": cfg.dataset, "hidden": cfg.hidden, "algorithm": cfg.algorithm, "seed": cfg.seed,
            "lr": lr if lr is not None else cfg.lr, "alpha": alpha if alpha is not None else cfg.alpha,
            "temperature": temperature if temperature is not None else cfg.temperature,
            "connectivity": k_conn if k_conn is not None else cfg.connectivity,
            "batch_size": batch_size or cfg.batch_size, "theta_min": cfg.theta_min, "noise": cfg.noise,
            "activation": cfg.activation, "model": cfg.model, "n_samples": cfg.n_samples}
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
