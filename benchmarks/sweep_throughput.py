"""Sweep throughput: the same N trials through Ray (deepr_engine.run.sweep, local, one trial per
core; as plain Ray tasks and through Ray Tune) and through a plain serial loop in this process; trials per minute for both, their ratio,
and Ray's overhead per trial. Serial and Ray rounds alternate; medians are printed. A trial's own time is its\nrun_trial wall time (the first one in a fresh worker includes importing torch).

    PYTHONPATH=. python benchmarks/sweep_throughput.py [--trials 24] [--steps 1000] [--repeats 3]

Overhead per trial = (workers x Ray wall time - sum of the serial trials' times) / N: the core
time a trial costs on Ray beyond its training (scheduling, reporting, results.csv, contention).
Ray's start (ray.init, and for plain tasks the workers' first import of torch and the data,
done once per sweep by a 2-trial warm-up) is timed apart and shown in a second ratio. Goals (issue 11): at least
1.7x the serial loop on 2 cores, under 1 s overhead per trial.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from deepr_engine.run import sweep  # noqa: E402
from deepr_engine.run.config import preset  # noqa: E402


def trials(n: int, steps: int) -> list:
    base = preset("digits-demo").replace(hidden=[100], connectivity=[0.05], steps=steps,
                                         eval_every=10**9, alpha=1e-3, temperature=1e-6)
    lrs = [round(0.05 + 0.5 * i / max(n - 1, 1), 4) for i in range(n)]   # n distinct trials
    return sweep.build_trials(base, {"lr": lrs})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=24)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    import ray
    import torch

    torch.set_num_threads(1)
    ts = trials(args.trials, args.steps)
    workers = min(os.cpu_count() or 1, len(ts))
    sweep.run_trial(ts[0].config.to_dict())   # warm: imports and the data set, as a Ray worker's first trial
    modes = ("tasks", "tune")   # plain Ray tasks (the default without ASHA), Ray Tune (ASHA)
    warm = trials(workers, 5)
    serial, start, warmup = [], [], []
    wall = {m: [] for m in modes}
    overhead = {m: [] for m in modes}
    in_trial = {m: [] for m in modes}
    cpu = {m: [] for m in modes + ("serial",)}
    print(f"load average before: {os.getloadavg()[0]:.2f}", flush=True)
    for rep in range(args.repeats):
        t0 = time.perf_counter()
        rows = sweep.run_serial(ts)
        serial.append(time.perf_counter() - t0)
        assert all(r["status"] == "ok" for r in rows)
        cpu["serial"].append(statistics.median(r["cpu_seconds"] for r in rows))
        for m in modes:
            t0 = time.perf_counter()
            ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False,
                     logging_level="ERROR")
            start.append(time.perf_counter() - t0)
            with tempfile.TemporaryDirectory() as out:
                if m == "tasks":   # workers import torch once per sweep: timed apart
                    t0 = time.perf_counter()
                    sweep.run_trials(warm, ["lr"], out, progress=False, executor=m)
                    warmup.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                rrows = sweep.run_trials(ts, ["lr"], out, progress=False, executor=m)
                wall[m].append(time.perf_counter() - t0)
            ray.shutdown()
            assert len(rrows) == len(ts) and all(r["status"] == "ok" for r in rrows)
            overhead[m].append((workers * wall[m][-1] - serial[-1]) / len(ts))
            in_trial[m].append(statistics.median(float(r["seconds"]) for r in rrows))
            cpu[m].append(statistics.median(float(r["cpu_seconds"]) for r in rrows))
        print(f"round {rep + 1}: serial {serial[-1]:.1f} s, " + ", ".join(
            f"Ray {m} {wall[m][-1]:.1f} s" for m in modes) + f" (ray.init {start[-1]:.1f} s, "
            f"task workers' first import {warmup[-1]:.1f} s)", flush=True)
    n = len(ts)
    s, st, wu = statistics.median(serial), statistics.median(start), statistics.median(warmup)
    print(f"\n{n} trials of {args.steps} steps (digits, 64-100-10 at 5%), {workers} workers, medians of "
          f"{args.repeats} rounds; load average after: {os.getloadavg()[0]:.2f}")
    print(f"once per sweep: ray.init {st:.1f} s; task workers importing torch and the data {wu:.1f} s "
          f"(Ray Tune pays it inside every sweep: its column includes it)")
    print("| | trials/min | x serial | x serial, start included | overhead per trial | a trial's own time "
          "| its CPU time |")
    print("|---|---|---|---|---|---|---|")
    print(f"| serial loop, one process (warm) | {60 * n / s:.1f} | 1.00 | | | {s / n:.2f} s | "
          f"{statistics.median(cpu['serial']):.2f} s |")
    for m in modes:
        r = statistics.median(wall[m])
        once = st + (wu if m == "tasks" else 0.0)
        print(f"| Ray {m} | {60 * n / r:.1f} | {s / r:.2f} | {s / (r + once):.2f} | "
              f"{statistics.median(overhead[m]):.2f} s | {statistics.median(in_trial[m]):.2f} s | "
              f"{statistics.median(cpu[m]):.2f} s |")
    print("A trial's own time above its CPU time means it waited for a core (other processes, or "
          "the other worker): the ratio measures the machine's free cores as much as Ray.")

if __name__ == "__main__":
    main()
