"""A run's whole state as plain tensors and JSON strings, and back: model, optimizer (its
state and its random generator), the data order, telemetry, step and lr. checkpoint.py writes
this pair as a safetensors file; TrainingSession.fork() hands it to a new session in memory.

Restoring it into a session built from the same config continues the run exactly: the next
steps draw the same batches and the same noise (tests/test_fork.py checks it bit for bit)."""
from __future__ import annotations

import json
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from .session import TrainingSession


def capture(session: "TrainingSession") -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors, metadata): copies on the CPU, so the run can go on changing its own."""
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
        "config": session.config.to_json(),
        "param_groups": json.dumps(opt["param_groups"]),
        "opt_state": json.dumps(opt_state_meta),
        "opt_extra": json.dumps({k: v for k, v in opt.items()
                                 if k not in ("state", "param_groups", "generator_state")}),
        "session": json.dumps({"step_count": session.step_count, "lr": session.lr,
                               "train_seconds": session.train_seconds,
                               "paused_reason": session.paused_reason, "last": session.last,
                               "fork": session.fork_of,
                               "batch": {"epoch": b["epoch"], "pos": b["pos"],
                                         "batch_size": b["batch_size"]}}),
        "telemetry": json.dumps(session.telemetry.to_dict()),
    }
    return tensors, meta


def restore(session: "TrainingSession", tensors: dict, meta: dict) -> None:
    """Put a captured state into a session built from the same config."""
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
    session.fork_of = s.get("fork")
    session.batcher.load_state({**s["batch"], "order": tensors["batch.order"],
                                "generator": tensors["batch.generator"]})
    tel = {k[len("telemetry."):]: v for k, v in tensors.items() if k.startswith("telemetry.")}
    session.telemetry.load(json.loads(meta["telemetry"]), tel)
