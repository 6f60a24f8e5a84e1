"""The fair study: every method gets the same tuning budget, the gradient rule (sgd, momentum,
adam) tuned with lr for every method, chosen on validation, then fresh seeds on test; on digits
and on real MNIST data (mnist10k: the MNIST test set's 10,000 images, 8,000 train / 2,000 test).

    PYTHONPATH=. python benchmarks/accuracy.py   # the README's study: ~45 min here (1 trial at a time, shared 2 cores)
    [--budget 9] [--seeds 3] [--digits-steps 1000] [--digits-connectivities 0.05]
    [--mnist-epochs 3] [--cpus 1]
    [--datasets digits,mnist10k] [--address RAY] [--out benchmarks/out/accuracy]

The machinery is `deepr_engine.run.reproduce.study` (the `reproduce` command's): per method and
connectivity `--budget` random settings split evenly over sgd / momentum / adam, lr log-uniform
over the rule's range (reproduce.LR_RANGES: sgd [0.01, 10], momentum [0.001, 1], adam
[1e-4, 0.3], widened from [1e-4, 0.03] where the best sat at its top) and the method's own knobs (reproduce.space), one run each (seed 0) scored on 20%
of the training data held out; the best (ties: lower validation loss) among those within 10% of
the target connectivity is trained again with seeds 1-3 and scored on test.
- digits: 64-100-10 with biases, batch 32, --digits-steps steps (37 epochs of the 1,078
  training digits left after the hold-out), connectivity 5% (ERK over the layers).
- mnist10k: the paper's 784-300-100-10 without biases at its per-layer 1% / 3% / 30%, batch 32,
  --mnist-epochs passes over the 6,400 training images left after the hold-out.
Deep R, soft-Deep R, magnitude pruning, L1 shrinkage, RigL, SET and dense. Writes
out/<dataset>/{tuning,test}/results.csv (re-runs skip finished trials), out/<dataset>/results.csv,
accuracy.png and accuracy.html, and out/accuracy.md (the README's table).
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from deepr_engine.run import reproduce  # noqa: E402
from deepr_engine.run.config import preset  # noqa: E402
from deepr_engine.run.data import load_dataset  # noqa: E402


def setups(args) -> list[tuple]:
    """(dataset, base config, connectivities, steps) per study."""
    out = []
    for name in args.datasets.split(","):
        if name == "digits":
            base = preset("digits-demo").replace(hidden=[100], bias=True, batch_size=32,
                                                 distribution="erk", connectivity=[0.1],
                                                 val_fraction=0.2, lr_decay=1.0)
            conns = [float(c) for c in args.digits_connectivities.split(",")]
            out.append((name, base, conns, args.digits_steps))
        elif name == "mnist10k":
            base = preset("paper-mnist").replace(dataset="mnist10k", batch_size=32, lr_decay=1.0,
                                                 val_fraction=0.2)
            n = len(load_dataset("mnist10k", val_fraction=0.2).x_train)
            steps = base.replace(epochs=args.mnist_epochs).planned_steps(n)
            out.append((name, base, [(0.01, 0.03, 0.3)], steps))
        else:
            raise SystemExit(f"--datasets: digits or mnist10k, got {name!r}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=int, default=9)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--digits-steps", type=int, default=1000)
    ap.add_argument("--digits-connectivities", default="0.05")
    ap.add_argument("--mnist-epochs", type=float, default=3.0)
    ap.add_argument("--datasets", default="digits,mnist10k")
    ap.add_argument("--methods", default=",".join(reproduce.METHODS))
    ap.add_argument("--cpus", type=int, default=1, help="trials at a time (local Ray)")
    ap.add_argument("--address", default=None, help="an existing Ray cluster")
    ap.add_argument("--out", default="benchmarks/out/accuracy")
    args = ap.parse_args()
    out = Path(args.out)
    t0 = time.time()
    tables = []
    for name, base, conns, steps in setups(args):
        t1 = time.time()
        rows = reproduce.study(base, args.methods.split(","), conns, args.budget, args.seeds,
                               out / name, steps=steps, address=args.address, cpus=args.cpus)
        reproduce.write_summary(rows, out / name, f"{name}: each method tuned with {args.budget} "
                                f"settings (sgd / momentum / adam), {steps} steps")
        tables.append(markdown(name, rows, args.budget, steps, time.time() - t1))
        print(tables[-1], flush=True)
    (out / "accuracy.md").write_text("\n".join(tables))
    print(f"study done in {time.time() - t0:.0f} s; {out}/accuracy.md", flush=True)


def markdown(name: str, rows: list[dict], budget: int, steps: int, seconds: float) -> str:
    lines = [f"\n{name}: {budget} settings per method and connectivity, {steps} steps per trial "
             f"({seconds / 60:.0f} min wall time)", "",
             "| method | connectivity | test (3 seeds) | val (tuning) | settings | chosen on "
             "validation | warnings |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        acc = r["test_acc_mean"]
        lines.append(f"| {r['method']} | {reproduce.sweep.format_value(r['connectivity'])} "
                     f"(reached {r['connectivity_reached']:.4f}) | "
                     f"{'-' if math.isnan(acc) else format(acc, '.3f') + ' ± ' + format(r['test_acc_sd'], '.3f')} | "
                     f"{r['val_acc']:.3f} | {r['settings']} | {r['gradient']}, lr {r['lr']:.3g} "
                     f"{r['chosen']} | "
                     f"{r['warnings'] or '-'} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
