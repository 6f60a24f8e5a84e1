"""Final test accuracy and wall time on digits: a dense MLP (plain SGD) against Deep R and
soft-Deep R at several connectivities, same steps, seeds and data. Writes CSV and a PNG plot.

    python benchmarks/accuracy.py [--steps 3000] [--seeds 0,1,2] [--out benchmarks/out]
"""
from __future__ import annotations

import argparse
import csv
import statistics
import time
from pathlib import Path

import torch
from torch import nn

from deepr_engine.config import preset
from deepr_engine.data import load_dataset
from deepr_engine.models import dense_model
from deepr_engine.session import TrainingSession


def dense_run(cfg, data, steps: int) -> float:
    torch.manual_seed(cfg.seed)
    model = dense_model(cfg, data.n_features, data.n_classes)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr)
    g = torch.Generator().manual_seed(cfg.seed)
    for _ in range(steps):
        idx = torch.randint(0, len(data.x_train), (cfg.batch_size,), generator=g)
        opt.zero_grad()
        nn.functional.cross_entropy(model(data.x_train[idx]), data.y_train[idx]).backward()
        opt.step()
    with torch.no_grad():
        return (model(data.x_test).argmax(1) == data.y_test).float().mean().item()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--connectivities", default="0.02,0.05,0.1,0.2,0.5")
    ap.add_argument("--out", default="benchmarks/out")
    args = ap.parse_args()
    torch.set_num_threads(2)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    base = preset("digits-demo").replace(hidden=[100], connectivity=[0.2], lr=0.1, eval_every=10**6)
    data = load_dataset("digits")
    rows = []
    for seed in map(int, args.seeds.split(",")):
        cfg = base.replace(seed=seed)
        t0 = time.perf_counter()
        acc = dense_run(cfg, data, args.steps)
        rows.append(("dense", 1.0, seed, acc, time.perf_counter() - t0))
        for algo in ("deepr", "soft-deepr"):
            for c in map(float, args.connectivities.split(",")):
                run_cfg = cfg.replace(algorithm=algo, connectivity=[c], temperature=1e-6)
                t0 = time.perf_counter()
                s = TrainingSession(run_cfg, data=data)
                s.step(args.steps)
                acc = s.evaluate()["test_acc"]
                rows.append((algo, c, seed, acc, time.perf_counter() - t0))
    with open(out / "accuracy.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["algorithm", "connectivity", "seed", "test_acc", "seconds"])
        w.writerows(rows)
    groups = {}
    for algo, c, _, acc, sec in rows:
        groups.setdefault((algo, c), []).append((acc, sec))
    print(f"digits, MLP 64-100-10, {args.steps} steps, seeds {args.seeds}")
    print(f"{'algorithm':11s} {'conn':>6s} {'test acc (mean ± sd)':>22s} {'seconds':>8s}")
    for (algo, c), v in sorted(groups.items()):
        accs = [a for a, _ in v]
        sd = statistics.stdev(accs) if len(accs) > 1 else 0.0
        print(f"{algo:11s} {c:6.2f} {statistics.mean(accs):14.4f} ± {sd:.4f} {statistics.median([s for _, s in v]):8.2f}")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(6, 4))
        for algo in ("deepr", "soft-deepr"):
            cs = sorted(c for a, c in groups if a == algo)
            m = [statistics.mean(a for a, _ in groups[(algo, c)]) for c in cs]
            ax.plot(cs, m, marker="o", label=algo)
        ax.axhline(statistics.mean(a for a, _ in groups[("dense", 1.0)]), color="k", ls="--", label="dense")
        ax.set_xscale("log")
        ax.set_xlabel("connectivity")
        ax.set_ylabel("test accuracy")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / "accuracy.png", dpi=100)
    except ImportError:
        print("matplotlib not installed: no PNG")


if __name__ == "__main__":
    main()
