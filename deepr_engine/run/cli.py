"""Command line: python -m deepr_engine train --preset digits-demo [--FIELD VALUE ...]
and python -m deepr_engine sweep --preset digits-demo --grid alpha=1e-5,1e-4 --seeds 2 --out DIR

Every declared setting (RunConfig fields, registry.declarations()) is a flag (lists
comma-separated, booleans true/false); a flag that has no effect under the resulting config (a
method's setting on another method, temperature while noise_scale sets the noise) is refused. train writes a
run folder with checkpoint.safetensors and metrics.csv and prints the final test accuracy;
sweep writes DIR/results.csv (deepr_engine.run.sweep). Bad flags or values: one line naming
the field and what is allowed, exit code 2.
"""
from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
import typing
from pathlib import Path

from . import checkpoint, registry
from .atomic import write_atomic
from .config import PRESETS, preset

RUN_FILES = ("checkpoint.safetensors", "metrics.csv")


def _field_help(name: str) -> str:
    h = registry.declaration(name)  # meaning and range live with the declaration (hyper.Hyper)
    own = registry.owners(name)
    who = f" [{', '.join(a.name for a in own)} only]" if own else ""
    return f"{h.help}{who}; allowed: {h.describe()} (default from the preset)".replace("%", "%%")


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


def _threads(text):
    try:
        n = int(text)
    except ValueError:
        n = 0
    if not 1 <= n <= 256:
        raise argparse.ArgumentTypeError(f"--threads takes an integer in [1, 256], got {text!r}")
    return n


def _config_flags(p: argparse.ArgumentParser) -> None:
    for name, h in registry.declarations().items():
        p.add_argument(f"--{name.replace('_', '-')}", dest=name, type=_converter(name, h.type),
                       default=None, help=_field_help(name))


def _overrides(args) -> dict:
    """The config flags given on the command line."""
    return {k: getattr(args, k) for k in registry.declarations() if getattr(args, k, None) is not None}


def _refuse_idle(cfg, overrides: dict) -> None:
    """A flag that changes nothing under the config is an error, not silently ignored."""
    for key in overrides:
        why = cfg.idle(key)
        if why:
            raise UsageError(f"--{key.replace('_', '-')}: no effect here: {why}")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m deepr_engine", description="Deep R training from the command line")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    t = sub.add_parser("train", help="train a run and write a run folder",
                       description="Train one run and write a run folder (checkpoint.safetensors, "
                                   "metrics.csv). Every config flag defaults to the preset's value.")
    t.add_argument("--preset", default="digits-demo", help=f"starting config; one of {', '.join(PRESETS)}")
    t.add_argument("--resume", help="continue from a run folder or checkpoint file; --steps then "
                                    "adds that many steps, other flags change live hyperparameters")
    t.add_argument("--fork-from", metavar="CKPT",
                   help="start a new run from a run folder or checkpoint at its step (weights, "
                        "theta, optimizer and random state, data order); other flags change live "
                        "hyperparameters; writes a new --out folder, the source is untouched")
    t.add_argument("--out", help="run folder to write (default: the --resume folder, or "
                                 "runs/<preset>-<time>); must not be a file or hold another run "
                                 "unless --force")
    t.add_argument("--force", action="store_true", help="overwrite the run already in --out")
    t.add_argument("--threads", type=_threads, default=1,
                   help="torch CPU threads, integer in [1, 256] (default 1: on a busy machine "
                        "more threads than free cores make training many times slower)")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    _config_flags(t)

    s = sub.add_parser("sweep", help="run many trials (grid / random search, seeds) on Ray Tune",
                       description="Tune RunConfig fields over many runs on Ray Tune. Each trial "
                                   "holds out --val-fraction (default 0.2) of the training data, "
                                   "is selected on val_acc (ties: lower val_loss, then the earlier "
                                   "trial) and reports test_acc beside it. "
                                   "Re-running with the same --out skips finished trials.")
    s.add_argument("--preset", default="digits-demo", help=f"base config; one of {', '.join(PRESETS)}")
    s.add_argument("--grid", action="append", default=[], metavar="FIELD=V1,V2",
                   help="grid values of a RunConfig field (repeatable; list fields take '/' "
                        "inside a value: --grid hidden=64/32,100)")
    s.add_argument("--random", action="append", default=[], metavar="FIELD=log:LOW:HIGH",
                   help="random-search range of a numeric field: log:LOW:HIGH (log-uniform, "
                        "0 < LOW < HIGH) or uniform:LOW:HIGH (repeatable)")
    s.add_argument("--samples", type=int, default=None,
                   help="random samples per grid point, integer in [1, 100000] (default 8 with --random)")
    s.add_argument("--seeds", type=int, default=1,
                   help="seeds per setting (the base seed, +1, ...), integer in [1, 1000]")
    s.add_argument("--sample-seed", type=int, default=0, help="seed of the random-search draws")
    s.add_argument("--out", help="sweep folder for results.csv (default runs/sweep-<time>)")
    s.add_argument("--address", default=None,
                   help="join an existing Ray cluster (e.g. ray://head:10001 or auto); default: "
                        "a local Ray on this machine's cores")
    s.add_argument("--asha", action="store_true",
                   help="early stopping (ASHA on val_acc, 10 rungs per trial): weak trials stop "
                        "early, their rows say status stopped")
    s.add_argument("--executor", choices=("auto", "tasks", "tune"), default="auto",
                   help="tasks: one plain Ray task per trial (least overhead); tune: Ray Tune "
                        "trials (needed for --asha); auto (default): tune with --asha, else tasks")
    s.add_argument("--cpus-per-trial", type=float, default=1.0,
                   help="Ray CPUs per trial, in (0, 64] (each trial uses one torch thread)")
    s.add_argument("--quiet", action="store_true", help="no progress lines")
    _config_flags(s)
    from .reproduce import add_parser as add_reproduce   # the paper's figures (reproduce.py)
    add_reproduce(sub)
    from .scan_cli import add_parser as add_scan   # turnover against T / alpha (scan.py)
    add_scan(sub)
    return p


def _check_out(out: Path, force: bool, resume_src: Path | None) -> None:
    """Refuse a file, or a folder that already holds another run (unless forced)."""
    for parent in [out, *out.parents]:
        if parent.exists() and not parent.is_dir():
            raise UsageError(f"--out {out}: {parent} is a file; --out must be a folder")
    same = resume_src is not None and out.resolve() == resume_src.resolve()
    if out.is_dir() and not force and not same and any((out / f).exists() for f in RUN_FILES):
        hint = "continue it with --resume {0}" if resume_src is None else "write elsewhere"
        raise UsageError(f"--out {out} already holds a run; {hint.format(out)}, or pass --force "
                         f"to overwrite it")


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        if args.command == "sweep":
            return _sweep(args, list(sys.argv[1:] if argv is None else argv))
        if args.command == "reproduce":
            from .reproduce import run as reproduce
            return reproduce(args)
        if args.command == "scan":
            from .scan_cli import run as scan
            return scan(args)
        import torch
        torch.set_num_threads(args.threads)
        overrides = _overrides(args)
        if args.resume and args.fork_from:
            raise UsageError("--resume and --fork-from: give one (resume continues a run folder, "
                             "fork-from starts a new one)")
        if args.resume or args.fork_from:
            src = Path(args.resume or args.fork_from)
            ckpt = src / "checkpoint.safetensors" if src.is_dir() else src
            folder = src if src.is_dir() else src.parent
            if args.resume:
                out = Path(args.out) if args.out else folder
            else:
                out = Path(args.out) if args.out else Path("runs") / f"fork-{time.strftime('%Y%m%d-%H%M%S')}"
            _check_out(out, args.force, folder if args.resume else None)
            if "steps" in overrides:   # added to the run: checked here, not by the config
                registry.declaration("steps").check(overrides["steps"], "--steps")
            session = checkpoint.load(ckpt)
            live = {k: v for k, v in overrides.items() if k not in ("steps",)}
            if live:
                _refuse_idle(session.config.replace(**live), live)
            if args.fork_from:
                session = session.fork(**live)
            elif live:
                session.set_hyperparams(**live)
            steps = overrides.get("steps", session.config.steps)   # steps added to the run
        else:
            out = Path(args.out) if args.out else Path("runs") / f"{args.preset}-{time.strftime('%Y%m%d-%H%M%S')}"
            _check_out(out, args.force, None)
            cfg = preset(args.preset).replace(**overrides)
            _refuse_idle(cfg, overrides)
            from .session import TrainingSession
            session = TrainingSession(cfg)
            steps = session.config.steps   # epochs > 0: resolved on the training split used
    except (UsageError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return _train(session, steps, out, args.quiet)


def _sweep(args, argv) -> int:
    from . import sweep
    overrides = _overrides(args)
    grid, rand = {}, {}
    for spec in args.grid:
        name, values = sweep.parse_grid(spec)
        if name in grid:
            raise UsageError(f"--grid {name} given twice; list all its values in one --grid")
        grid[name] = values
    for spec in args.random:
        name, r = sweep.parse_random(spec)
        if name in rand:
            raise UsageError(f"--random {name} given twice")
        rand[name] = r
    samples = args.samples if args.samples is not None else (8 if rand else 0)
    if not 0 < args.cpus_per_trial <= 64:
        raise UsageError(f"--cpus-per-trial must be in (0, 64], got {args.cpus_per_trial:g}")
    if args.asha and args.executor == "tasks":
        raise UsageError("--asha needs --executor tune (or auto)")
    base = preset(args.preset).replace(**overrides)
    swept_algs = [registry.get(a) for a in grid.get("algorithm", [])]
    _refuse_idle(base, {k: v for k, v in overrides.items() if k not in grid and k not in rand
                        and not any(k in a.keys for a in swept_algs)})   # used by a swept method
    if "val_fraction" in overrides and overrides["val_fraction"] == 0:
        raise UsageError("--val-fraction must be in (0, 0.5] in a sweep: trials are selected on validation")
    trials = sweep.build_trials(base, grid, rand, samples, args.seeds, args.sample_seed)
    out = Path(args.out) if args.out else Path("runs") / f"sweep-{time.strftime('%Y%m%d-%H%M%S')}"
    for parent in [out, *out.parents]:
        if parent.exists() and not parent.is_dir():
            raise UsageError(f"--out {out}: {parent} is a file; --out must be a folder")

    def stop(signum, frame):   # a terminated sweep shuts its local Ray down on the way out
        raise KeyboardInterrupt
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, stop) if main_thread else None
    try:
        rows = sweep.run_trials(trials, list(grid) + list(rand), out, address=args.address,
                                asha=args.asha, cpus_per_trial=args.cpus_per_trial,
                                progress=not args.quiet,
                                meta={"preset": args.preset, "argv": argv,
                                      "ranges": sweep.ranges_of(grid, rand)},
                                executor=None if args.executor == "auto" else args.executor)
    except KeyboardInterrupt:
        print(f"sweep stopped; finished trials are in {out / 'results.csv'} (re-run to continue)",
              file=sys.stderr)
        return 130
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
    by = {s: sum(r.get("status") == s for r in rows) for s in ("ok", "diverged", "stopped", "error")}
    print(f"{len(rows)} trials ({', '.join(f'{v} {k}' for k, v in by.items() if v)}); "
          f"results in {out / 'results.csv'}")
    best = rows.best   # highest val_acc; ties: lower val_loss, then the earlier trial
    if best is not None:
        setting = " ".join(f"{f}={best[f]}" for f in list(grid) + list(rand) if best.get(f, "") != "")
        print(f"best on validation: {setting or 'base'} seed={best['seed']}: val {float(best['val_acc']):.4f}, "
              f"test {float(best['test_acc']):.4f}")
        if args.quiet:   # otherwise run_trials printed them with the progress
            for w in rows.warnings:
                print(f"warning: {w}")
    return 0


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
    checkpoint.save(session, out / "checkpoint.safetensors")   # each file whole (atomic.py)
    write_atomic(out / "metrics.csv", session.metrics_csv())
    print(f"step {session.step_count}: test accuracy {session.last['test_acc']:.4f} "
          f"({sum(l.k for l in session.layers)} active connections); run folder {out}")
    if session.paused_reason:
        print(session.paused_reason, file=sys.stderr)
        return 1
    return 0
