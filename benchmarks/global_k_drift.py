"""How K moves between layers under a global K: uniform revival over the whole network (the
paper's pseudocode) against revivals split in proportion to the initial K (the reference
script), on 784-300-100-10 from K = [2352, 900, 300] (1% / 3% / 30%), paper-mnist settings.

MNIST when its IDX files are present; otherwise the 8x8 digits scaled up to 28x28 stand in
(same network and K; the figures then say so).

    PYTHONPATH=. python benchmarks/global_k_drift.py [--steps 2000]
"""
from __future__ import annotations

import argparse

import torch

from deepr_engine.run.config import preset
from deepr_engine.run.data import Dataset, load_dataset
from deepr_engine.run.session import TrainingSession


def data() -> tuple[Dataset, str]:
    try:
        return load_dataset("mnist"), "MNIST"
    except (FileNotFoundError, ValueError):
        d = load_dataset("digits")
        up = lambda x: torch.nn.functional.interpolate(x.view(-1, 1, 8, 8), size=(28, 28),
                                                       mode="bilinear").view(len(x), -1)
        return Dataset("digits-28", up(d.x_train), d.y_train, up(d.x_test), d.y_test, 10,
                       (28, 28)), "digits scaled to 28x28 (MNIST files absent)"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=2000)
    args = ap.parse_args()
    torch.set_num_threads(1)
    ds, name = data()
    print(f"data: {name}; {args.steps} steps; K per layer at the start and the end")
    for revive in ("uniform", "proportional"):
        cfg = preset("paper-mnist").replace(dataset="digits", global_k=True, global_revive=revive,
                                            eval_every=args.steps)
        s = TrainingSession(cfg, data=ds)
        k0 = [l.k for l in s.layers]
        s.step(args.steps)
        print(f"{revive:>12}: {k0} -> {[l.k for l in s.layers]}  test acc {s.evaluate()['test_acc']:.3f}")


if __name__ == "__main__":
    main()
