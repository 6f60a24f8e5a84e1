"""python -m deepr_engine scan: the turnover scan (scan.py) from the command line.

    python -m deepr_engine scan --preset spiral-demo --field temperature --values 1e-7,1e-6,1e-5 \\
        --steps 100 [--warmup 500] [--resume CKPT] [--set alpha=1e-3] [--out scan.csv]

Starts from a preset (after --warmup steps) or a checkpoint (--resume), forks it once per value
and repeat, prints one line per value (means over repeats, beside the prediction) and writes
the full table as CSV to --out (or to stdout). Bad flags: one line naming the flag, exit 2.
"""
from __future__ import annotations

import sys
from pathlib import Path

from . import registry
from .config import PRESETS, preset


def add_parser(sub) -> None:
    s = sub.add_parser("scan", help="turnover against T or alpha: short forks of one run",
                       description="Fork a run once per value (and repeat) of temperature or "
                                   "alpha, run each fork --steps steps in parallel processes and "
                                   "report per 100 steps: established deaths, probes, survived "
                                   "revivals and the change of test accuracy, beside the "
                                   "zero-gradient prediction of the probe fraction.")
    s.add_argument("--preset", default="spiral-demo", help=f"starting config; one of {', '.join(PRESETS)}")
    s.add_argument("--resume", help="start from this checkpoint file or run folder instead of a preset")
    s.add_argument("--field", default="temperature", help="temperature or alpha")
    s.add_argument("--values", required=True, help="comma-separated values, each in (0, 100]")
    s.add_argument("--steps", default="100", help="steps per fork, integer in [1, 1000000] (default 100)")
    s.add_argument("--warmup", default="0", help="steps to train the preset's run before forking, "
                                                 "integer in [0, 1000000] (default 0)")
    s.add_argument("--repeats", default="1", help="forks per value (noise seeds), integer in [1, 100]")
    s.add_argument("--workers", default=None, help="processes, integer in [0, 64] (0: one after "
                                                   "another in this process; default: cores - 1, at most 4)")
    s.add_argument("--seed", default="0", help="noise seed of the forks (integer)")
    s.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="a setting of the starting run (repeatable), e.g. --set alpha=0.05")
    s.add_argument("--out", help="CSV file to write (default: the CSV goes to stdout)")


def _int(flag: str, text, low: int, high: int) -> int:
    try:
        v = int(text)
    except (TypeError, ValueError):
        v = None
    if v is None or not low <= v <= high:
        raise ValueError(f"--{flag} takes an integer in [{low}, {high}], got {text!r}")
    return v


def _sets(specs: list[str]) -> dict:
    out = {}
    for spec in specs:
        name, sep, text = spec.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or name not in registry.declarations():
            raise ValueError(f"--set takes FIELD=VALUE with a config field, got {spec!r}")
        typ = registry.declaration(name).type
        try:
            out[name] = typ(text) if typ in (int, float, str) else None
        except ValueError:
            raise ValueError(f"--set {name} takes a {typ.__name__}, got {text!r}") from None
        if out[name] is None:
            raise ValueError(f"--set {name}: only single-number or text settings can be set here")
    return out


def run(args) -> int:
    from . import checkpoint
    from .scan import turnover_scan
    try:
        try:
            values = [float(v) for v in args.values.split(",") if v.strip()]
        except ValueError:
            raise ValueError(f"--values takes comma-separated numbers, got {args.values!r}") from None
        steps = _int("steps", args.steps, 1, 10**6)
        warmup = _int("warmup", args.warmup, 0, 10**6)
        repeats = _int("repeats", args.repeats, 1, 100)
        workers = None if args.workers is None else _int("workers", args.workers, 0, 64)
        seed = _int("seed", args.seed, 0, 2**31 - 1)
        sets = _sets(args.set)
        if args.resume:
            src = Path(args.resume)
            session = checkpoint.load(src / "checkpoint.safetensors" if src.is_dir() else src, n_tracked=0)
            if sets:
                session.set_hyperparams(**sets)
        else:
            from .session import TrainingSession
            cfg = preset(args.preset).replace(**sets)
            for key in sets:
                if (why := cfg.idle(key)):
                    raise ValueError(f"--set {key}: no effect here: {why}")
            session = TrainingSession(cfg, n_tracked=0)
        if args.out and Path(args.out).is_dir():
            raise ValueError(f"--out {args.out} is a folder; give a file name (scan.csv)")
        import torch
        torch.set_num_threads(1)
        session.step(warmup)
        table = turnover_scan(session, args.field, values, steps=steps, repeats=repeats,
                              workers=workers, seed=seed)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"scan of {args.field} from step {session.step_count} ({args.field} now {table.current:g}), "
          f"{steps} steps per fork, per 100 steps:", file=sys.stderr)
    for r in table.summary():
        print(f"  {args.field}={r['value']:g}: deaths {r['deaths_per_100']:.1f}, probes "
              f"{r['probes_per_100']:.1f}, survived {r['survived_per_100']:.1f}, probe fraction "
              f"{r['probe_fraction']:.3f} (zero-gradient theory {r['predicted_probe_fraction']:.3f}), "
              f"accuracy change {r['acc_change_per_100']:+.4f} ({r['n_ok']} of {repeats} ok)",
              file=sys.stderr)
    text = table.to_csv()
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
        print(f"table in {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    errors = [r["status"] for r in table.rows if r["status"].startswith("error")]
    for e in errors[:3]:
        print(e, file=sys.stderr)
    return 1 if errors else 0
