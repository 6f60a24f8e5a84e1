"""Unit maps on spiral-demo: the cost of one update of the Units view, measured the way the app
makes it (the run's unit_maps read over the pipe from its training process while it plays, then
the message the page gets), medians. The view's goal is at least 2 updates/s on this 2-core
machine; the feed asks for at most 1 / unit_maps.MIN_INTERVAL_S updates a second.

    PYTHONPATH=. python benchmarks/unit_maps.py [--updates 40]
"""
from __future__ import annotations

import argparse
import statistics
import time

from app.components import unit_maps
from deepr_engine.run.background import BackgroundSession


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--updates", type=int, default=40)
    args = ap.parse_args()
    run = BackgroundSession("spiral-demo", steps_per_frame=10)
    try:
        run.play()
        time.sleep(1.0)
        read, build, sizes = [], [], []
        for i in range(args.updates):
            t0 = time.perf_counter()
            maps = run.unit_maps(unit_maps.grid(), unit_maps.grid(), unit_maps.MAX_UNITS)
            t1 = time.perf_counter()
            view = run.frame(events=False)
            t2 = time.perf_counter()
            msg = unit_maps.maps_message(maps, view.layers, i + 1)
            t3 = time.perf_counter()
            read.append((t1 - t0) * 1e3)
            build.append((t3 - t2) * 1e3)
            sizes.append(len(msg))
        total = [a + b for a, b in zip(read, build)]
        med = statistics.median(total)
        print(f"spiral-demo, grid {unit_maps.GRID}x{unit_maps.GRID}, {len(maps['layers'])} layers, "
              f"{sum(m.shape[0] for m in maps['layers'])} maps, playing (10 steps per chunk)")
        print(f"read over the pipe: median {statistics.median(read):.1f} ms (p90 "
              f"{sorted(read)[int(0.9 * len(read))]:.1f}); message: {statistics.median(build):.2f} ms, "
              f"{statistics.median(sizes) / 1e3:.0f} kB")
        print(f"one update: median {med:.1f} ms -> at most {1e3 / med:.0f} updates/s from the server "
              f"(the feed caps the view at {1 / unit_maps.MIN_INTERVAL_S:.0f}/s)")
    finally:
        run.close()


if __name__ == "__main__":
    main()
