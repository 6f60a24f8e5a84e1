"""Time one training step (forward + backward + update) of the 784-300-100-10 MLP, batch 100:
dense torch.optim.SGD against Deep R and soft-Deep R at 1% / 3% / 30% connectivity.

Steps are interleaved in one process (dense, Deep R, soft, dense, ...) so machine noise hits all
three alike; prints medians and the ratios to dense.

    python benchmarks/step_overhead.py [--steps 400] [--threads 2] [--device cpu|cuda]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from deepr_engine import DeepR, SoftDeepR, sparsify


# The reference MNIST settings (spec): alpha 1e-5, noise std lr*1e-5 per step, T = lr*(1e-5)^2/2.
LR = 0.05
T_REF = LR * 1e-5 ** 2 / 2


def mlp(bias: bool = False) -> nn.Module:
    return nn.Sequential(nn.Linear(784, 300, bias=bias), nn.ReLU(), nn.Linear(300, 100, bias=bias),
                         nn.ReLU(), nn.Linear(100, 10, bias=bias))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    torch.manual_seed(0)
    x = torch.randn(100, 784, device=dev)
    y = torch.randint(0, 10, (100,), device=dev)

    dense = mlp().to(dev)
    runs = {"dense SGD": (dense, torch.optim.SGD(dense.parameters(), lr=LR))}
    deep = sparsify(mlp(), connectivity=[0.01, 0.03, 0.3]).to(dev)
    runs["Deep R"] = (deep, DeepR(deep, lr=LR, alpha=1e-5, temperature=T_REF))
    soft = sparsify(mlp(), connectivity=[0.01, 0.03, 0.3]).to(dev)
    runs["soft-Deep R"] = (soft, SoftDeepR(soft, lr=LR, alpha=1e-5, temperature=T_REF))

    def one_step(model, opt) -> float:
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    times = {name: [] for name in runs}
    for i in range(args.steps + 50):
        for name, (model, opt) in runs.items():
            t = one_step(model, opt)
            if i >= 50:  # warm-up
                times[name].append(t)
    base = statistics.median(times["dense SGD"])
    print(f"device={dev} threads={args.threads} steps={args.steps} (medians; ratios to dense)")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"{name:12s} {med * 1e3:8.3f} ms   x{med / base:5.2f}")


if __name__ == "__main__":
    main()
