"""How visibly the demo presets rewire, and how well they learn.

For each demo preset (and, with --candidates, the settings issue 10 proposed), trains a
TrainingSession for the preset's step budget and prints:

- established connections replaced per 100 steps: connections pruned after being active for at
  least ESTABLISHED steps (brief probes, revived and pruned again soon, are not counted), read
  from the run's typed views (`snapshot(since=cursor).layers[i].pruned_age`, every event after
  the previous view's cursor), per layer and in total, averaged over the run;
- the test accuracy at the end.

    PYTHONPATH=. python benchmarks/demo_rewiring.py [--candidates] [--seeds 0,1] [--steps N]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from deepr_engine.run.config import preset
from deepr_engine.run.session import TrainingSession

ESTABLISHED = 100   # steps active before a pruning counts as the death of an established connection
CHUNK = 100         # steps between two views

# (name, preset, changes): the shipped presets and the candidates of issue 10, section 2
CANDIDATES = [
    ("digits: lr 0.05, alpha 1e-4, T 1e-6 (old)", "digits-demo", dict(lr=0.05, alpha=1e-4, temperature=1e-6)),
    ("digits: lr 0.2, alpha 1e-3, T 1e-5", "digits-demo", dict(lr=0.2, alpha=1e-3, temperature=1e-5)),
    ("spiral: lr 0.1, alpha 1e-4, T 1e-6 (old)", "spiral-demo", dict(lr=0.1, alpha=1e-4, temperature=1e-6)),
    ("spiral: lr 0.3, alpha 1e-4, T 1e-5", "spiral-demo", dict(lr=0.3, alpha=1e-4, temperature=1e-5)),
    ("spiral: lr 0.3, alpha 3e-4, T 1e-5", "spiral-demo", dict(lr=0.3, alpha=3e-4, temperature=1e-5)),
    ("spiral: lr 0.3, alpha 1e-3, T 1e-5", "spiral-demo", dict(lr=0.3, alpha=1e-3, temperature=1e-5)),
    ("spiral: lr 0.3, alpha 3e-4, T 1e-5, conn .5/.5/.8", "spiral-demo",
     dict(lr=0.3, alpha=3e-4, temperature=1e-5, connectivity=[0.5, 0.5, 0.8])),
]


def measure(cfg, steps: int) -> dict:
    """Established connections replaced per 100 steps (per layer) and the final test accuracy."""
    s = TrainingSession(cfg)
    cursor = s.snapshot(full=False, events=False).events_cursor  # events are read after it
    counts = np.zeros(len(s.layers), dtype=np.int64)
    probes = np.zeros(len(s.layers), dtype=np.int64)
    t0 = time.perf_counter()
    done = 0
    while done < steps:
        n = s.step(min(CHUNK, steps - done))
        if n == 0:
            break
        done += n
        view = s.snapshot(full=False, since=cursor)
        if not view.events_complete:
            raise RuntimeError(f"the telemetry's event ring holds fewer than {CHUNK} steps")
        cursor = view.events_cursor
        for i, layer in enumerate(view.layers):
            counts[i] += int((layer.pruned_age >= ESTABLISHED).sum())
            probes[i] += int((layer.pruned_age < ESTABLISHED).sum())
    acc = s.evaluate()["test_acc"]
    per100 = counts * 100.0 / max(done, 1)
    return {"per100": per100, "probes100": probes * 100.0 / max(done, 1), "acc": acc,
            "steps": done, "seconds": time.perf_counter() - t0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--candidates", action="store_true", help="also the settings issue 10 proposed")
    ap.add_argument("--seeds", default="0", help="comma-separated seeds (results averaged)")
    ap.add_argument("--steps", type=int, default=0, help="steps per run (0: the preset's budget)")
    ap.add_argument("--only", default="", help="run only the settings whose label contains this")
    args = ap.parse_args()
    torch.set_num_threads(1)
    seeds = [int(v) for v in args.seeds.split(",")]
    rows = [(f"{name} (shipped)", name, {}) for name in ("digits-demo", "spiral-demo")]
    if args.candidates:
        rows += CANDIDATES
    print(f"established = active >= {ESTABLISHED} steps; seeds {seeds}")
    print(f"{'setting':52s} {'steps':>6s} {'replaced/100 steps (per layer)':>36s} {'probes/100':>10s} "
          f"{'test acc':>9s}")
    for label, name, changes in rows:
        if args.only and args.only not in label:
            continue
        res = []
        for seed in seeds:
            cfg = preset(name).replace(seed=seed, **changes)
            res.append(measure(cfg, args.steps or cfg.steps))
        per100 = np.mean([r["per100"] for r in res], axis=0)
        probes = np.mean([r["probes100"].sum() for r in res])
        acc = np.mean([r["acc"] for r in res])
        layers = "[" + ", ".join(f"{v:.1f}" for v in per100) + "]"
        print(f"{label:52s} {res[0]['steps']:6d} {per100.sum():8.1f} {layers:>27s} {probes:10.1f} "
              f"{acc:9.3f}", flush=True)


if __name__ == "__main__":
    main()
