"""Whole-session checkpoints in safe formats: one .safetensors file whose tensors are the
model, optimizer and telemetry state and whose metadata holds JSON for the rest (config,
param groups, RNG states, step, telemetry series). Nothing is ever unpickled."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from . import ckpt_check, ckpt_meta, runstate
from .atomic import write_atomic
from .config import RunConfig
from .session import TrainingSession

FORMAT = "deepr-studio-checkpoint/1"


def to_bytes(session: TrainingSession) -> bytes:
    tensors, meta = runstate.capture(session)
    return st_save(tensors, metadata={"format": FORMAT, **meta})


def save(session: TrainingSession, path: str | Path) -> Path:
    """Write atomically: a file killed mid-write never replaces a good one (atomic.py)."""
    return write_atomic(path, to_bytes(session))


def load(source: str | Path | bytes, *, check_config: Callable[[RunConfig], None] | None = None,
         **session_kwargs) -> TrainingSession:
    """A new session from a checkpoint file or its bytes. Everything is checked before a model
    is built: the format; the config (RunConfig, then `check_config(cfg)`, which may refuse it
    with ValueError: a server's size limits, say); then, with the config's data loaded (or
    `data=` given), every tensor's name, dtype and shape against what the config implies (from
    the header, before any tensor is read: a config far larger than its tensors costs nothing),
    the metadata (ckpt_meta: steps, lr, param groups, telemetry) and the tensors' values
    (ckpt_check: positions in range and unique, finite numbers, the batch order, generator
    states). Any problem raises ValueError naming the entry; nothing else changes (the caller's
    current session is not touched)."""
    name = "checkpoint" if isinstance(source, (bytes, bytearray)) else str(source)
    try:
        data = bytes(source) if isinstance(source, (bytes, bytearray)) else Path(source).read_bytes()
    except OSError as exc:
        raise ValueError(f"{name}: cannot read ({exc})") from exc
    try:
        header = read_header(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"{name}: not a safetensors file ({exc})") from exc
    meta = header.get("__metadata__")
    fmt = meta.get("format") if isinstance(meta, dict) else None
    if fmt != FORMAT:
        raise ValueError(f"{name}: not a DeepR Studio checkpoint (format {fmt!r}, expected {FORMAT!r})")
    try:
        config = ckpt_meta.config_of(meta)
        if check_config is not None:
            check_config(config)
        dataset = session_kwargs.pop("data", None) or ckpt_check.dataset_for(config)
        plan = ckpt_check.Plan(config, dataset)
        ckpt_check.check_header(plan, {k: v for k, v in header.items() if k != "__metadata__"})
        step = ckpt_meta.check_session(meta, plan.n_train)["step_count"]
        ckpt_meta.check_optimizer(meta, config, plan.positions)
        ckpt_meta.check_telemetry(meta, plan.positions)
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from None
    try:
        tensors = st_load(data)
    except SafetensorError as exc:
        raise ValueError(f"{name}: not a safetensors file ({exc})") from exc
    try:
        ckpt_check.check_values(plan, tensors, int(step))
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from None
    try:
        session = TrainingSession(config, data=dataset, **session_kwargs)
        runstate.restore(session, tensors, meta)
    except (KeyError, ValueError, RuntimeError, TypeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{name}: damaged or incompatible checkpoint ({type(exc).__name__}: {exc})") from exc
    return session


def read_header(data: bytes) -> dict:
    """The safetensors header of a checkpoint's bytes (tensor name -> dtype, shape, offsets;
    "__metadata__" -> the JSON strings), read without loading any tensor."""
    if len(data) < 8:
        raise ValueError("file too short")
    n = int.from_bytes(data[:8], "little")
    if n > len(data) - 8:
        raise ValueError(f"header of {n} bytes in a file of {len(data)}")
    header = json.loads(data[8:8 + n].decode("utf-8"))
    if not isinstance(header, dict):
        raise ValueError("header is not a JSON object")
    return header


def read_metadata(data: bytes) -> dict:
    """The JSON metadata of a checkpoint's bytes, read without loading any tensor."""
    meta = read_header(data).get("__metadata__", {})
    return meta if isinstance(meta, dict) else {}
