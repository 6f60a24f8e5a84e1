"""Sparse compute at scale: step time of Deep R on a compact layer against the dense SGD step of
the same layer shape, and peak memory of training a 100,000 x 100,000 layer.

    PYTHONPATH=. python benchmarks/sparse_scale.py                  # everything (CPU: ~10 min)
    PYTHONPATH=. python benchmarks/sparse_scale.py --sizes 4096 --no-memory
    PYTHONPATH=. python benchmarks/sparse_scale.py --memory-only

Step time: one process, the two steps interleaved (dense, sparse, dense, ...) so that load from
other processes hits both alike; medians over --reps repeats. A step is zero_grad, forward,
backward (MSE to a fixed random target, batch 64) and the optimizer step: torch.optim.SGD on
nn.Linear(n, n) for dense, DeepR on SparseLinear(n, n, compute="sparse") for sparse (its step
includes pruning and revival; the turnover per step is printed).

Memory: a fresh child process builds the 100,000 x 100,000 layer at K = 10^6 (10^10 positions:
the dense float32 weight alone would be 40 GB) and trains it for 100 steps; its peak RSS
(VmHWM, CPU) or torch.cuda.max_memory_allocated (CUDA) is reported, beside the RSS of the
same process after importing torch and building the data (the floor no layer can go under).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import torch
from torch import nn

from deepr_engine import DeepR, SparseLinear
from deepr_engine.device import auto_device

BATCH = 64


def _sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize()


def _timed(fn, dev) -> float:
    _sync(dev)
    t = time.perf_counter()
    fn()
    _sync(dev)
    return time.perf_counter() - t


def step_times(n: int, connectivities: list[float], reps: int, dev) -> list[dict]:
    gen = torch.Generator(device=dev).manual_seed(0)
    x = torch.randn(BATCH, n, device=dev, generator=gen)
    target = torch.randn(BATCH, n, device=dev, generator=gen)
    dense = nn.Linear(n, n, bias=False, device=dev)
    sgd = torch.optim.SGD(dense.parameters(), lr=0.05)

    def dense_step():
        sgd.zero_grad()
        nn.functional.mse_loss(dense(x), target).backward()
        sgd.step()

    dense_step()
    rows = []
    for c in connectivities:
        layer = SparseLinear(n, n, bias=False, connectivity=c, compute="sparse",
                             generator=torch.Generator().manual_seed(1), device=dev)
        model = nn.Sequential(layer)
        opt = DeepR(model, lr=0.05, alpha=1e-4, temperature=1e-6, seed=2)
        turnover = []

        def sparse_step():
            opt.zero_grad()
            nn.functional.mse_loss(model(x), target).backward()
            opt.step()

        sparse_step()
        sparse_step()
        t_dense, t_sparse = [], []
        for _ in range(reps):
            t_dense.append(_timed(dense_step, dev))
            t_sparse.append(_timed(sparse_step, dev))
            turnover.append(opt.last_events[0]["pruned"].numel())
        md, ms = statistics.median(t_dense), statistics.median(t_sparse)
        rows.append({"n": n, "connectivity": c, "k": layer.k, "dense_ms": md * 1e3,
                     "sparse_ms": ms * 1e3, "ratio": ms / md,
                     "turnover_per_step": statistics.median(turnover)})
        print(f"{n:>6} x {n:<6} {c * 100:6.2f}%  K={layer.k:>10,}  dense {md * 1e3:9.1f} ms  "
              f"sparse {ms * 1e3:9.1f} ms  ratio {ms / md:6.3f}  "
              f"(pruned+revived per step {statistics.median(turnover):,.0f})", flush=True)
        del model, opt, layer
    return rows


def _peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM). ru_maxrss is not used: Linux carries it over
    fork and exec, so a child would report its parent's peak."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def memory_child(n: int, k: int, steps: int, device: str) -> None:
    """Runs in a fresh process: train one n x n compact layer at K = k; print JSON."""
    dev = torch.device(device)
    torch.set_num_threads(2)
    gen = torch.Generator(device=dev).manual_seed(0)
    x = torch.randn(BATCH, n, device=dev, generator=gen)
    target = torch.randn(BATCH, n, device=dev, generator=gen)
    floor_mb = _peak_rss_mb()
    t0 = time.perf_counter()
    layer = SparseLinear(n, n, bias=False, k=k, compute="sparse",
                         generator=torch.Generator().manual_seed(1), device=dev)
    model = nn.Sequential(layer)
    opt = DeepR(model, lr=0.05, alpha=1e-4, temperature=1e-6, seed=2)
    build_s = time.perf_counter() - t0
    pruned = 0
    t0 = time.perf_counter()
    for _ in range(steps):
        opt.zero_grad()
        nn.functional.mse_loss(model(x), target).backward()
        opt.step()
        pruned += opt.last_events[0]["pruned"].numel()
    _sync(dev)
    train_s = time.perf_counter() - t0
    out = {"n": n, "k": layer.k, "steps": steps, "build_s": build_s, "step_ms": train_s / steps * 1e3,
           "pruned_total": pruned, "floor_rss_mb": floor_mb,
           "peak_rss_mb": _peak_rss_mb()}
    if dev.type == "cuda":
        out["cuda_max_allocated_mb"] = torch.cuda.max_memory_allocated(dev) / 2**20
    print(json.dumps(out))


def memory(n: int, k: int, steps: int, dev) -> dict:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [os.path.dirname(os.path.dirname(os.path.abspath(__file__))), os.environ.get("PYTHONPATH", "")]))
    res = subprocess.run([sys.executable, os.path.abspath(__file__), "--memory-child",
                          f"{n},{k},{steps},{dev}"], capture_output=True, text=True, env=env,
                         check=True)
    out = json.loads(res.stdout.strip().splitlines()[-1])
    print(f"{n:,} x {n:,} layer ({n * n:.0e} positions; dense float32 weight "
          f"{n * n * 4 / 1e9:.0f} GB) at K = {out['k']:,}, {steps} steps: peak RSS "
          f"{out['peak_rss_mb']:.0f} MB (the process after importing torch and making the "
          f"batch: {out['floor_rss_mb']:.0f} MB); build {out['build_s']:.2f} s, "
          f"{out['step_ms']:.0f} ms/step, {out['pruned_total']:,} connections pruned and revived"
          + (f"; CUDA max allocated {out['cuda_max_allocated_mb']:.0f} MB"
             if "cuda_max_allocated_mb" in out else ""), flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="4096,16384")
    ap.add_argument("--connectivity", default="0.001,0.002,0.005,0.01,0.02,0.05,0.1")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--no-memory", action="store_true")
    ap.add_argument("--memory-only", action="store_true")
    ap.add_argument("--json", default="", help="write all figures to this file")
    ap.add_argument("--memory-child", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory_child:
        n, k, steps, device = args.memory_child.split(",")
        memory_child(int(n), int(k), int(steps), device)
        return
    torch.set_num_threads(args.threads)
    dev = auto_device(args.device)
    print(f"device {dev}, torch {torch.__version__}, {torch.get_num_threads()} threads, batch {BATCH}")
    result = {"device": str(dev), "threads": torch.get_num_threads(), "rows": [], "memory": None}
    if not args.memory_only:
        for n in [int(s) for s in args.sizes.split(",")]:
            result["rows"] += step_times(n, [float(c) for c in args.connectivity.split(",")],
                                         args.reps, dev)
    if not args.no_memory:
        result["memory"] = memory(100_000, 1_000_000, 100, dev)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
