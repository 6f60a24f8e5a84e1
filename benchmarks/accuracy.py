"""Figure-2-style study: test accuracy against connectivity for every method, same data, steps
and seeds. Digits always; MNIST too when its IDX files are present ($DEEPR_DATA/mnist).
Writes CSV and a PNG plot (matplotlib, if installed) and prints a mean ± sd table.

    python benchmarks/accuracy.py [--steps 2000] [--seeds 0,1,2]
        [--connectivities 0.005,0.01,0.02,0.05,0.1] [--algorithms deepr,soft-deepr,...]
        [--workers 2] [--out benchmarks/out]

Settings (one per method, not tuned per connectivity): lr 0.1, batch 32, SGD; Deep R and
soft-Deep R alpha 1e-4, T 1e-6 (soft: theta_min by the reference rule of thumb); SET and RigL
update every 100 steps with drop fraction 0.3 (RigL annealed until 3/4 of the steps);
magnitude pruning dense until 30% of the steps, then 4 pruning events 10% of the steps apart
(the last at 60%), retraining with the mask fixed; L1 shrinkage alpha 1e-2 from dense, with
the target connectivity as a floor. The 100% point is the dense network.
"""
from __future__ import annotations

import argparse
import csv
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ALL = ("deepr", "soft-deepr", "set", "rigl", "static", "magnitude", "l1", "dense")


def settings(algorithm: str, steps: int) -> dict:
    common = dict(lr=0.1, batch_size=32, eval_every=10**9, steps=steps, alpha=1e-4, temperature=1e-6)
    if algorithm == "magnitude":
        common.update(prune_at=max(1, int(0.3 * steps)), prune_events=4,
                      update_every=max(1, int(0.1 * steps)))
    if algorithm == "l1":
        common["alpha"] = 1e-2
    return common


def one_run(job: tuple) -> dict:
    import torch

    from deepr_engine.run.config import preset
    from deepr_engine.run.session import TrainingSession

    torch.set_num_threads(1)
    dataset, hidden, algorithm, conn, seed, steps = job
    base = preset("digits-demo") if dataset == "digits" else preset("paper-mnist")
    cfg = base.replace(dataset=dataset, hidden=hidden, algorithm=algorithm, connectivity=[conn],
                       seed=seed, lr_decay=1.0, bias=True, noise_scale=0.0, **settings(algorithm, steps))
    t0 = time.perf_counter()
    s = TrainingSession(cfg)
    s.step(steps)
    acc = s.evaluate()["test_acc"]
    k = sum(l.k for l in s.layers)
    n = sum(l.n_positions for l in s.layers)
    return {"dataset": dataset, "algorithm": algorithm, "target_connectivity": conn,
            "final_connectivity": k / n, "seed": seed, "test_acc": acc, "steps": steps,
            "turnover": s.telemetry.total_pruned, "seconds": time.perf_counter() - t0,
            "diverged": s.paused_reason is not None}


def mnist_present() -> bool:
    from deepr_engine.run.config import preset
    from deepr_engine.run.session import TrainingSession
    try:
        TrainingSession(preset("paper-mnist"))
        return True
    except FileNotFoundError:
        return False


def summarise(rows: list[dict]) -> dict:
    groups: dict = {}
    for r in rows:
        groups.setdefault((r["dataset"], r["algorithm"], r["target_connectivity"]), []).append(r)
    return groups


def print_table(groups: dict, seeds: str) -> None:
    for dataset in sorted({d for d, _, _ in groups}):
        steps = next(rs[0]["steps"] for (d, _, _), rs in groups.items() if d == dataset)
        conns = sorted({c for d, a, c in groups if d == dataset and a != "dense"})
        algos = [a for a in ALL if any(d == dataset and x == a for d, x, _ in groups)]
        print(f"\n{dataset}: test accuracy, mean ± sd over seeds {seeds}, {steps} steps "
              f"(final connectivity in brackets where it differs from the target)")
        print("| method | " + " | ".join(f"{c:g}" for c in conns) + " | 100% |")
        print("|---" * (len(conns) + 2) + "|")
        for a in algos:
            cells = []
            for c in conns + [1.0]:
                rs = groups.get((dataset, a, c))
                if not rs:
                    cells.append("")
                    continue
                accs = [r["test_acc"] for r in rs]
                sd = statistics.stdev(accs) if len(accs) > 1 else 0.0
                fc = statistics.mean(r["final_connectivity"] for r in rs)
                note = f" [{fc:.3g}]" if abs(fc - c) > 0.1 * c else ""
                cells.append(f"{statistics.mean(accs):.3f} ± {sd:.3f}{note}")
            print(f"| {a} | " + " | ".join(cells) + " |")


def plot(groups: dict, out: Path) -> None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no PNG (pip install matplotlib)")
        return
    datasets = sorted({d for d, _, _ in groups})
    fig, axes = plt.subplots(1, len(datasets), figsize=(6.5 * len(datasets), 4.5), squeeze=False)
    for ax, dataset in zip(axes[0], datasets):
        for a in ALL:
            if a == "dense":
                rs = groups.get((dataset, "dense", 1.0))
                if rs:
                    m = statistics.mean(r["test_acc"] for r in rs)
                    ax.axhline(m, color="k", ls="--", lw=1, label="dense (100%)")
                continue
            cs = sorted(c for d, x, c in groups if d == dataset and x == a)
            if not cs:
                continue
            runs = [groups[(dataset, a, c)] for c in cs]
            reached = [statistics.mean(r["final_connectivity"] for r in rs) for rs in runs]
            means = [statistics.mean(r["test_acc"] for r in rs) for rs in runs]
            sds = [statistics.stdev([r["test_acc"] for r in rs]) if len(rs) > 1 else 0 for rs in runs]
            ax.errorbar(reached, means, yerr=sds, marker="o", ms=4, capsize=2, label=a)
        ax.set_xscale("log")
        ax.set_xlabel("connectivity reached (fraction of weights active at the end)")
        ax.set_ylabel("test accuracy")
        ax.set_title(dataset)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "accuracy.png", dpi=100)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--connectivities", default="0.005,0.01,0.02,0.05,0.1")
    ap.add_argument("--algorithms", default=",".join(ALL))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--mnist-steps", type=int, default=3000)
    ap.add_argument("--out", default="benchmarks/out")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    seeds = [int(s) for s in args.seeds.split(",")]
    conns = [float(c) for c in args.connectivities.split(",")]
    algos = [a for a in args.algorithms.split(",") if a]
    studies = [("digits", [100], args.steps)]
    if mnist_present():
        studies.append(("mnist", [300, 100], args.mnist_steps))
    else:
        print("MNIST files not found ($DEEPR_DATA/mnist): digits only")
    jobs = [(d, h, a, 1.0 if a == "dense" else c, s, steps)
            for d, h, steps in studies for a in algos for c in ([1.0] if a == "dense" else conns)
            for s in seeds]
    t0 = time.time()
    with ProcessPoolExecutor(args.workers, mp_context=get_context("spawn")) as pool:
        rows = list(pool.map(one_run, jobs))
    with open(out / "accuracy.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    groups = summarise(rows)
    print_table(groups, args.seeds)
    plot(groups, out)
    print(f"\n{len(rows)} runs in {time.time() - t0:.0f} s; CSV and PNG in {out}/")


if __name__ == "__main__":
    main()
