"""The paper's accuracy-against-connectivity experiments, one command:

    python -m deepr_engine reproduce mnist|cifar10 [--connectivities 0.01,0.05] [--budget N]
        [--seeds 3] [--epochs E] [--methods deepr,...] [--address auto] [--out DIR]

Deep R, soft-Deep R, magnitude pruning and L1 shrinkage (the comparison set of Bellec et al.
2018) plus RigL and SET, and the dense network for reference. Every method gets the same
budget at every connectivity: `budget` random settings, split evenly over the gradient rules
(sgd, momentum, adam), each with lr log-uniform over its rule's range (LR_RANGES) and the
method's own knobs (`space`), trained once (seed 0) and scored on a validation split (20% of
the training data); the best (selection.best_row, among the settings that end within 10% of
the target connectivity) is trained again on fresh seeds (1, 2, ...) and scored on test. All
trials run as one Ray sweep per phase (locally, or on a cluster with `address`), in
out/tuning/ and out/test/ (results.csv each: a re-run skips finished trials). Writes
out/results.csv (one row per method and connectivity), out/accuracy.png and out/accuracy.html.
mnist uses the 60,000-image files when they are present ($DEEPR_DATA/mnist or --data-root),
else the shipped 10,000 test images (mnist10k, 8,000 / 2,000), and says which.
"""
from __future__ import annotations

import csv
import math
import statistics
import sys
import time
from pathlib import Path

from . import figure, selection, sweep
from .config import RunConfig, preset
from .data import load_dataset

METHODS = ("deepr", "soft-deepr", "magnitude", "l1", "rigl", "set")
RULES = ("sgd", "momentum", "adam")
# adam's range was [1e-4, 0.03] until the study's best sat at its top (soft-Deep R on digits,
# Deep R on mnist10k); widened for every method (benchmarks/accuracy.py, README)
LR_RANGES = {"sgd": (0.01, 10.0), "momentum": (0.001, 1.0), "adam": (1e-4, 0.3)}
LR_WIDER: dict = {}   # (method, rule) -> a range of its own


def lr_range(method: str, rule: str) -> tuple[float, float]:
    return LR_WIDER.get((method, rule), LR_RANGES[rule])
# the row cells of a trial (results.csv's `connectivity` is the one reached; trials.json has
# each row's full config, target connectivity included)
FIELDS = ["algorithm", "gradient", "lr", "alpha", "temperature", "drop_fraction", "update_every",
          "prune_at"]
EXPERIMENTS = {   # name -> (preset, default connectivities, default epochs)
    "mnist": ("paper-mnist", (0.01, 0.02, 0.05, 0.1), 10.0),
    "cifar10": ("paper-cifar10", (0.02, 0.05, 0.1, 0.2), 30.0),
}
SUMMARY = ["dataset", "method", "connectivity", "connectivity_reached", "test_acc_mean",
           "test_acc_sd", "n_test", "val_acc", "gradient", "lr", "chosen", "settings",
           "steps", "epochs", "warnings"]


def space(method: str, steps: int) -> dict:
    """The method's own knobs (besides gradient rule and lr), as random-search ranges."""
    if method in ("deepr", "soft-deepr"):
        return {"alpha": sweep.Random("log", 1e-6, 1e-2),
                "temperature": sweep.Random("log", 1e-12, 1e-4)}
    if method in ("set", "rigl"):
        hi = max(3.0, steps / 5)
        return {"drop_fraction": sweep.Random("uniform", 0.1, 0.5),
                "update_every": sweep.Random("log", min(20.0, hi / 2), hi)}
    if method == "magnitude":
        return {"prune_at": sweep.Random("uniform", max(1.0, 0.1 * steps), max(2.0, 0.5 * steps))}
    if method == "l1":
        return {"alpha": sweep.Random("log", 1e-4, 1.0)}
    return {}


def split_budget(budget: int) -> dict[str, int]:
    """budget settings over the gradient rules, as evenly as possible (sgd first)."""
    return {r: budget // len(RULES) + (i < budget % len(RULES)) for i, r in enumerate(RULES)
            if budget // len(RULES) + (i < budget % len(RULES))}


def cell_base(base: RunConfig, method: str, conn: float, rule: str, steps: int) -> RunConfig:
    """The fixed part of a method's trials at one connectivity."""
    conn = [1.0] if method == "dense" else list(conn) if isinstance(conn, (list, tuple)) else [conn]
    fixed = dict(algorithm=method, connectivity=conn,
                 gradient=rule, steps=steps, epochs=0.0, eval_every=10**9, seed=0)
    cfg = base.replace(algorithm=method)
    if method in ("deepr", "soft-deepr"):
        fixed["noise_scale"] = 0.0       # temperature is tuned (noise_scale would override it)
    if method == "magnitude":
        fixed |= dict(prune_events=4, update_every=max(1, steps // 10))   # 4 events 10% apart
    return cfg.replace(**fixed)


def ranges(method: str, rule: str, steps: int) -> dict:
    return selection.ranges_of(None, {"lr": sweep.Random("log", *lr_range(method, rule))} | space(method, steps))


def tuning_trials(base: RunConfig, method: str, conn: float, budget: int, steps: int,
                  sample_seed: int = 0) -> list[sweep.Trial]:
    trials = []
    for i, (rule, n) in enumerate(split_budget(budget).items()):
        rnd = {"lr": sweep.Random("log", *lr_range(method, rule))} | space(method, steps)
        for t in sweep.build_trials(cell_base(base, method, conn, rule, steps), random=rnd,
                                    samples=n, sample_seed=sample_seed + 1000 * i):
            trials.append(sweep.Trial(t.config, labelled(t.config)))
    return trials


def labelled(cfg: RunConfig) -> dict:
    """The row cells of a trial: FIELDS its method has."""
    return {f: getattr(cfg, f) for f in FIELDS if not cfg.idle(f)}


def choose(rows_by_key: dict, trials: list[sweep.Trial], target: float) -> tuple:
    """(best trial, its row, "ok / near / tried" counts): the best on validation among those
    within 10% of the target (global) connectivity (any ok one when none is)."""
    rows, index = [], {}
    for t in trials:
        r = rows_by_key.get(t.key)
        if r is not None:
            rows.append(r)
            index[id(r)] = t
    ok = [r for r in rows if r.get("status") == "ok"]
    near = [r for r in ok if float(r["connectivity"]) <= 1.1 * target]
    best = selection.best_row(near or ok)
    counts = f"{len(ok)} ok, {len(near)} at target, of {len(trials)}"
    return (index[id(best)] if best is not None else None), best, counts


def study(base: RunConfig, methods, connectivities, budget: int, seeds: int, out: Path, *,
          steps: int, address: str | None = None, dense: bool = True, progress: bool = True,
          sample_seed: int = 0, cpus: int | None = None, gpus_per_trial: float = 0.0) -> list[dict]:
    """Tune every method at every connectivity (equal budget), test the chosen settings on
    fresh seeds, return the summary rows (SUMMARY columns); resumable through out/."""
    cells = [(m, c) for m in methods for c in connectivities]
    if dense:
        cells.append(("dense", 1.0))
    tuning = {cell: tuning_trials(base, cell[0], cell[1], budget, steps, sample_seed)
              for cell in cells}
    import ray
    started = not ray.is_initialized()
    if started:
        import logging
        import os
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        kw = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
        if address:
            ray.init(address=address, runtime_env={
                "py_modules": [str(Path(__file__).resolve().parents[1])]}, **kw)
        else:
            ray.init(num_cpus=cpus or os.cpu_count(), **kw)
    try:
        all_tuning = [t for ts in tuning.values() for t in ts]
        rows = sweep.run_trials(all_tuning, FIELDS, out / "tuning", progress=progress,
                                meta={"phase": "tuning", "budget": budget},
                                gpus_per_trial=gpus_per_trial)
        by_key = {r["key"]: r for r in rows}
        chosen, test = {}, []
        for cell, ts in tuning.items():
            best, row, n_ok = choose(by_key, ts, global_target(ts[0].config, cell[1]))
            if best is None:
                continue
            fresh = [sweep.Trial(best.config.replace(seed=s), best.swept) for s in range(1, seeds + 1)]
            chosen[cell] = (best, row, n_ok, len(ts), fresh)
            test += fresh
        rows = sweep.run_trials(test, FIELDS, out / "test", progress=progress,
                                meta={"phase": "test", "seeds": seeds},
                                gpus_per_trial=gpus_per_trial)
    finally:
        if started:
            ray.shutdown()
    by_key = {r["key"]: r for r in rows}
    return [summarise(base, cell, *chosen[cell], by_key, steps) for cell in cells if cell in chosen]


def global_target(cfg: RunConfig, conn) -> float:
    """The share of all rewired positions active at the target: `conn` itself when one value
    is spread uniformly; per-layer values (or erk) weighted by the layers' sizes."""
    if not isinstance(conn, (list, tuple)) and cfg.distribution == "uniform":
        return float(conn)
    from .session import TrainingSession
    # the layers' shapes as built (magnitude pruning and L1 start dense: K is the target there)
    shapes = [l.weight_shape for l in TrainingSession(cfg.replace(steps=0, device="cpu")).layers]
    sizes = [math.prod(s) for s in shapes]
    per_layer = cfg.replace(connectivity=list(conn) if isinstance(conn, (list, tuple)) else [conn])
    return sum(c * n for c, n in zip(per_layer.layer_connectivity(shapes), sizes)) / sum(sizes)


def summarise(base, cell, best, row, n_ok, n, fresh, by_key, steps) -> dict:
    method, conn = cell
    conn = "/".join(f"{c:g}" for c in conn) if isinstance(conn, (list, tuple)) else conn
    rs = [by_key[t.key] for t in fresh if t.key in by_key and by_key[t.key]["status"] in ("ok", "diverged")]
    accs = [float(r["test_acc"]) for r in rs]
    fin = [r for r in rs if r["status"] == "ok"] or rs
    cfg = best.config
    knobs = {k: getattr(cfg, k) for k in space(method, steps)}
    warn = selection.edge_warnings({"lr": cfg.lr} | knobs, ranges(method, cfg.gradient, steps))
    reached = float(row["connectivity"])
    target = global_target(cfg, cell[1]) if method != "dense" else 1.0
    if reached > 1.1 * target:
        warn.insert(0, f"no setting reached the target connectivity {target:.4g} (the best "
                       f"ended at {reached:.4g})")
    return {"dataset": base.dataset, "method": method, "connectivity": conn,
            # reached: over the seeds that finished (a diverged one stops before its pruning);
            # the test mean counts a diverged seed's last good step
            "connectivity_reached": statistics.mean(float(r["connectivity"]) for r in fin) if fin else math.nan,
            "test_acc_mean": statistics.mean(accs) if accs else math.nan,
            "test_acc_sd": statistics.stdev(accs) if len(accs) > 1 else 0.0, "n_test": len(accs),
            "val_acc": float(row["val_acc"]), "gradient": cfg.gradient, "lr": cfg.lr,
            "chosen": " ".join(f"{k}={sweep.format_value(v)}" for k, v in knobs.items()),
            "settings": n_ok, "steps": steps, "epochs": row.get("epochs_done", ""),
            "warnings": "; ".join(warn)}


def write_summary(rows: list[dict], out: Path, title: str) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "results.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=SUMMARY)
        w.writeheader()
        w.writerows({k: _fmt(v) for k, v in r.items()} for r in rows)
    paths = [out / "results.csv", out / "accuracy.html"]
    if rows:
        figure.write_html(rows, title, out / "accuracy.html")
        if figure.write_png(rows, title, out / "accuracy.png"):
            paths.append(out / "accuracy.png")
    return paths


def _fmt(v):
    return f"{v:.6g}" if isinstance(v, float) else v


# -- the command ------------------------------------------------------------------------------
def add_parser(sub) -> None:
    r = sub.add_parser("reproduce", help="the paper's accuracy-against-connectivity figure "
                       "(mnist or cifar10), every method tuned at an equal budget",
                       description=__doc__.split("\n\n")[1].strip())
    r.add_argument("experiment", choices=tuple(EXPERIMENTS),
                   help="mnist (784-300-100-10; the 60,000-image files when present, else the "
                        "shipped 10,000 test images) or cifar10 (the paper-cifar10 conv net)")
    r.add_argument("--connectivities", default=None,
                   help="comma-separated fractions in (0, 1] (default: mnist 0.01,0.02,0.05,0.1; "
                        "cifar10 0.02,0.05,0.1,0.2), spread over the layers by --distribution")
    r.add_argument("--distribution", choices=("erk", "uniform"), default="erk",
                   help="how one connectivity is spread over the layers (default erk: small "
                        "layers denser, as in RigL; uniform: the same share everywhere)")
    r.add_argument("--methods", default=",".join(METHODS), help="comma-separated, of " + ", ".join(METHODS))
    r.add_argument("--budget", type=int, default=12, help="settings tried per method and "
                   "connectivity (split over sgd, momentum, adam), integer in [1, 10000]")
    r.add_argument("--seeds", type=int, default=3, help="fresh seeds for the test runs, in [1, 100]")
    r.add_argument("--epochs", type=float, default=None, help="passes over the training split "
                   "(default: mnist 10, cifar10 30)")
    r.add_argument("--steps", type=int, default=None, help="steps per trial instead of --epochs")
    r.add_argument("--batch-size", type=int, default=None, help="default: the preset's")
    r.add_argument("--hidden", default=None, help="hidden sizes, comma-separated (default: the preset's)")
    r.add_argument("--no-dense", action="store_true", help="leave out the dense reference")
    r.add_argument("--data-root", default=None, help="folder with the data files")
    r.add_argument("--download", action="store_true", help="fetch missing data files (online)")
    r.add_argument("--device", default=None, help="auto (CUDA when present), cpu, cuda[:n]")
    r.add_argument("--address", default=None, help="an existing Ray cluster (e.g. auto)")
    r.add_argument("--cpus", type=int, default=None, help="local Ray CPUs (trials at a time)")
    r.add_argument("--gpus-per-trial", type=float, default=None, help="share of a GPU per "
                   "trial (default 0.25 when CUDA is present and --device is not cpu, else 0)")
    r.add_argument("--out", default=None, help="folder (default runs/reproduce-<experiment>)")
    r.add_argument("--quiet", action="store_true")


def _floats(name, text):
    try:
        vals = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        vals = []
    if not vals or not all(0 < v <= 1 for v in vals):
        raise ValueError(f"--{name} takes comma-separated fractions in (0, 1], got {text!r}")
    return vals


def run(args) -> int:
    """The `reproduce` subcommand; errors are one line and exit code 2."""
    try:
        base, steps, note = _setup(args)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    conns = _floats("connectivities", args.connectivities) if args.connectivities else \
        list(EXPERIMENTS[args.experiment][1])
    methods = [m for m in args.methods.split(",") if m]
    out = Path(args.out or f"runs/reproduce-{args.experiment}")
    print(f"{args.experiment}: {note}; {steps} steps per trial; budget {args.budget} settings per "
          f"method and connectivity; {args.seeds} test seeds; folder {out}", flush=True)
    t0 = time.time()
    rows = study(base, methods, conns, args.budget, args.seeds, out, steps=steps,
                 address=args.address, dense=not args.no_dense, progress=not args.quiet,
                 cpus=args.cpus, gpus_per_trial=_gpus(args, base))
    title = f"{args.experiment} ({base.dataset}): each method tuned with {args.budget} settings"
    paths = write_summary(rows, out, title)
    for r in rows:
        print(f"{r['method']:>10} {sweep.format_value(r['connectivity']):<8} reached {r['connectivity_reached']:.4f}: "
              f"test {r['test_acc_mean']:.4f} ± {r['test_acc_sd']:.4f} ({r['gradient']}, lr "
              f"{r['lr']:.3g} {r['chosen']})" + (f"  warning: {r['warnings']}" if r["warnings"] else ""))
    print(f"{note}. Done in {time.time() - t0:.0f} s: {', '.join(map(str, paths))}")
    return 0


def _gpus(args, base: RunConfig) -> float:
    if args.gpus_per_trial is not None:
        return args.gpus_per_trial
    import torch
    return 0.25 if torch.cuda.is_available() and base.device != "cpu" else 0.0


def _setup(args) -> tuple[RunConfig, int, str]:
    for name, v, lo, hi in (("budget", args.budget, 1, 10_000), ("seeds", args.seeds, 1, 100)):
        if not lo <= v <= hi:
            raise ValueError(f"--{name} must be an integer in [{lo}, {hi}], got {v}")
    bad = [m for m in args.methods.split(",") if m and m not in METHODS]
    if bad:
        raise ValueError(f"--methods: unknown {bad}; allowed: {', '.join(METHODS)}")
    name, _, epochs = EXPERIMENTS[args.experiment]
    base = preset(name)
    changes = {"distribution": args.distribution, "val_fraction": 0.2}
    if args.batch_size:
        changes["batch_size"] = args.batch_size
    if args.hidden:
        changes["hidden"] = [int(h) for h in args.hidden.split(",")]
    if args.device:
        changes["device"] = args.device
    if args.data_root:
        changes["data_root"] = args.data_root
    if args.download:
        changes["download"] = True
    if args.experiment == "mnist":
        root = Path(args.data_root) if args.data_root else None
        full = _mnist60k_present(root)
        if full or args.download:
            note = "MNIST, 60,000 training / 10,000 test images"
        else:
            changes |= {"dataset": "mnist10k", "data_root": "", "download": False}
            note = ("the 60,000-image MNIST files are absent: using mnist10k, the MNIST test set's "
                    "10,000 images split 8,000 train / 2,000 test")
    else:
        note = "CIFAR-10 binary batches, 50,000 training / 10,000 test images"
    base = base.replace(connectivity=[base.connectivity[0]], **changes)
    if args.steps:
        return base, int(args.steps), note
    ds = load_dataset(base.dataset, seed=0, root=base.data_root or None, download=base.download,
                      val_fraction=base.val_fraction)
    ep = args.epochs if args.epochs is not None else epochs
    return base, base.replace(epochs=ep).planned_steps(len(ds.x_train)), note + f", {ep:g} epochs"


def _mnist60k_present(root: Path | None) -> bool:
    from .data import default_data_root
    root = root or default_data_root() / "mnist"
    return any((root / f).is_file() for f in ("train-images-idx3-ubyte", "train-images-idx3-ubyte.gz"))
