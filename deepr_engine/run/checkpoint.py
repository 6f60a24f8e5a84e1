"""Whole-session checkpoints in safe formats: one .safetensors file whose tensors are the
model, optimizer and telemetry state and whose metadata holds JSON for the rest (config,
param groups, RNG states, step, telemetry series). Nothing is ever unpickled."""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from .config import RunConfig
from .session import TrainingSession

FORMAT = "deepr-studio-checkpoint/1"


def to_bytes(session: TrainingSession) -> bytes:
    tensors: dict[str, torch.Tensor] = {}
    for k, v in session.model.state_dict().items():
        tensors[f"model.{k}"] = v.detach().cpu().clone().contiguous()
    opt = session.optimizer.state_dict()
    opt_state_meta = {}
    for pid, st in opt["state"].items():
        for name, v in st.items():
            if torch.is_tensor(v):
                tensors[f"opt.{pid}.{name}"] = v.detach().cpu().clone().contiguous()
            else:
                opt_state_meta[f"{pid}.{name}"] = v
    tensors["opt.generator"] = opt["generator_state"].clone()
    for k, v in session.telemetry.tensors().items():
        tensors[f"telemetry.{k}"] = v.contiguous()
    b = session.batcher.state()
    tensors["batch.order"] = b["order"].contiguous()
    tensors["batch.generator"] = b["generator"].clone()
    meta = {
        "format": FORMAT,
        "config": session.config.to_json(),
        "param_groups": json.dumps(opt["param_groups"]),
        "opt_state": json.dumps(opt_state_meta),
        "opt_extra": json.dumps({k: v for k, v in opt.items()
                                 if k not in ("state", "param_groups", "generator_state")}),
        "session": json.dumps({"step_count": session.step_count, "lr": session.lr,
                               "train_seconds": session.train_seconds,
                               "paused_reason": session.paused_reason, "last": session.last,
                               "batch": {"epoch": b["epoch"], "pos": b["pos"],
                                         "batch_size": b["batch_size"]}}),
        "telemetry": json.dumps(session.telemetry.to_dict()),
    }
    return st_save(tensors, metadata=meta)


def save(session: TrainingSession, path: str | Path) -> Path:
    """Write atomically (a half-written file never replaces a good one)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".part")
    tmp.write_bytes(to_bytes(session))
    tmp.replace(path)
    return path


def load(source: str | Path | bytes, **session_kwargs) -> TrainingSession:
    """A new session from a checkpoint file or its bytes. Any problem raises ValueError and
    nothing else changes (the caller's current session is not touched)."""
    name = "checkpoint" if isinstance(source, (bytes, bytearray)) else str(source)
    try:
        data = bytes(source) if isinstance(source, (bytes, bytearray)) else Path(source).read_bytes()
    except OSError as exc:
        raise ValueError(f"{name}: cannot read ({exc})") from exc
    try:
        tensors = st_load(data)
        meta = read_metadata(data)
    except (SafetensorError, ValueError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{name}: not a safetensors file ({exc})") from exc
    if meta.get("format") != FORMAT:
        raise ValueError(f"{name}: not a DeepR Studio checkpoint (format {meta.get('format')!r}, "
                         f"expected {FORMAT!r})")
    try:
        config = RunConfig.from_dict(json.loads(meta["config"]))
        session = TrainingSession(config, **session_kwargs)
        _restore(session, tensors, meta)
    except (KeyError, ValueError, RuntimeError, TypeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{name}: damaged or incompatible checkpoint ({type(exc).__name__}: {exc})") from exc
    return session


def read_metadata(data: bytes) -> dict:
    """The JSON metadata of a checkpoint's bytes, read without loading any tensor."""
    if len(data) < 8:
        raise ValueError("file too short")
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + n].decode("utf-8"))
    return header.get("__metadata__", {})


def _restore(session: TrainingSession, tensors: dict, meta: dict) -> None:
    model_sd = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    session.model.load_state_dict(model_sd, strict=True)
    dev = session.device
    for layer in session.layers:  # buffers resized by the load keep their device
        layer.active_idx = layer.active_idx.to(dev)
    opt_state = {}
    for k, v in tensors.items():
        if k.startswith("opt.") and k != "opt.generator":
            _, pid, name = k.split(".", 2)
            opt_state.setdefault(int(pid), {})[name] = v
    for k, v in json.loads(meta["opt_state"]).items():
        pid, name = k.split(".", 1)
        opt_state.setdefault(int(pid), {})[name] = v
    sd = {"state": opt_state, "param_groups": json.loads(meta["param_groups"]),
          "generator_state": tensors["opt.generator"], **json.loads(meta["opt_extra"])}
    for g in sd["param_groups"]:
        if "betas" in g:
            g["betas"] = tuple(g["betas"])
    session.optimizer.load_state_dict(sd)
    s = json.loads(meta["session"])
    session.step_count = int(s["step_count"])
    session.lr = float(s["lr"])
    session.train_seconds = float(s.get("train_seconds", 0.0))
    session.paused_reason = s["paused_reason"]
    session.last = {k: float(v) for k, v in s["last"].items()}
    session.batcher.load_state({**s["batch"], "order": tensors["batch.order"],
                                "generator": tensors["batch.generator"]})
    tel = {k[len("telemetry."):]: v for k, v in tensors.items() if k.startswith("telemetry.")}
    session.telemetry.load(json.loads(meta["telemetry"]), tel)
