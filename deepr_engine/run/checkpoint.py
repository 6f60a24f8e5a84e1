"""Whole-session checkpoints in safe formats: one .safetensors file whose tensors are the
model, optimizer and telemetry state and whose metadata holds JSON for the rest (config,
param groups, RNG states, step, telemetry series). Nothing is ever unpickled."""
from __future__ import annotations

import json
from pathlib import Path

from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from . import runstate
from .config import RunConfig
from .session import TrainingSession

FORMAT = "deepr-studio-checkpoint/1"


def to_bytes(session: TrainingSession) -> bytes:
    tensors, meta = runstate.capture(session)
    return st_save(tensors, metadata={"format": FORMAT, **meta})


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
        runstate.restore(session, tensors, meta)
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
