"""Command line: python -m deepr_engine train --preset digits-demo [--FIELD VALUE ...]

Every RunConfig field is a flag (lists comma-separated, booleans true/false). Writes a run
folder with checkpoint.safetensors and metrics.csv and prints the final test accuracy.
Bad flags or values: one line naming the field and what is allowed, exit code 2.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time
import typing
from pathlib import Path

from . import checkpoint
from .config import PRESETS, RunConfig, preset


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, no usage dump
        raise UsageError(message)


def _converter(name: str, typ):
    origin = typing.get_origin(typ)
    if origin is list:
        inner = typing.get_args(typ)[0]

        def conv(text):
            try:
                return [inner(v) for v in text.split(",") if v.strip()]
            except ValueError:
                raise argparse.ArgumentTypeError(f"--{name} takes comma-separated {inner.__name__}s, got {text!r}")
        return conv
    if typ is bool:
        def conv(text):
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off"):
                return False
            raise argparse.ArgumentTypeError(f"--{name} takes true or false, got {text!r}")
        return conv

    def conv(text):
        try:
            return typ(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"--{name} takes a {typ.__name__}, got {text!r}")
    return conv


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m deepr_engine", description="Deep R training from the command line")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    t = sub.add_parser("train", help="train a run and write a run folder")
    t.add_argument("--preset", default="digits-demo", help=f"one of {', '.join(PRESETS)}")
    t.add_argument("--resume", help="continue from a run folder or checkpoint file")
    t.add_argument("--out", help="run folder (default runs/<preset>-<time>)")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    hints = typing.get_type_hints(RunConfig)
    for f in dataclasses.fields(RunConfig):
        t.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name, type=_converter(f.name, hints[f.name]),
                       default=None, help="(default from the preset)")
    return p


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(RunConfig)
                     if getattr(args, f.name) is not None}
        if args.resume:
            src = Path(args.resume)
            ckpt = src / "checkpoint.safetensors" if src.is_dir() else src
            session = checkpoint.load(ckpt)
            live = {k: v for k, v in overrides.items() if k not in ("steps",)}
            if live:
                session.set_hyperparams(**live)
            steps = overrides.get("steps", session.config.steps)
            out = Path(args.out) if args.out else (src if src.is_dir() else src.parent)
        else:
            cfg = preset(args.preset).replace(**overrides)
            from .session import TrainingSession
            session = TrainingSession(cfg)
            steps = cfg.steps
            out = Path(args.out) if args.out else Path("runs") / f"{args.preset}-{time.strftime('%Y%m%d-%H%M%S')}"
    except (UsageError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return _train(session, steps, out, args.quiet)


def _train(session, steps: int, out: Path, quiet: bool) -> int:
    from tqdm import tqdm
    bar = tqdm(total=steps, disable=quiet, unit="step", file=sys.stderr)
    done = 0
    while done < steps:
        n = session.step(min(100, steps - done))
        bar.update(n)
        bar.set_postfix(loss=f"{session.last['loss']:.3f}", test_acc=f"{session.last['test_acc']:.3f}")
        done += n
        if session.paused_reason:
            break
    bar.close()
    session.evaluate()
    out.mkdir(parents=True, exist_ok=True)
    checkpoint.save(session, out / "checkpoint.safetensors")
    (out / "metrics.csv").write_text(session.metrics_csv())
    print(f"step {session.step_count}: test accuracy {session.last['test_acc']:.4f} "
          f"({sum(l.k for l in session.layers)} active connections); run folder {out}")
    if session.paused_reason:
        print(session.paused_reason, file=sys.stderr)
        return 1
    return 0
