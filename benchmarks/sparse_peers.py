"""Side by side: one training step of an n x n layer by dense SGD, SparseLab (PyPI `sparselab`,
its static-mask step and its SET update), and our Deep R on a full-size layer (compute="dense")
and on a compact one (compute="sparse").

    PYTHONPATH=. python benchmarks/sparse_peers.py                 # 4096² and 16384² at 1/2/10%
    PYTHONPATH=. python benchmarks/sparse_peers.py --quick         # 4096² at 1% and 2%, no RSS
    PYTHONPATH=. python benchmarks/sparse_peers.py --sizes 4096 --densities 0.01 --reps 15
    PYTHONPATH=. python benchmarks/sparse_peers.py --threads 1 --clock cpu   # on a loaded machine

A step is zero_grad, forward, backward (MSE to a fixed random target, batch 64; the input needs
no gradient) and the optimizer's step: torch.optim.SGD on nn.Linear for dense SGD and for
SparseLab's layer (then `Static.step()`, which changes nothing), DeepR(lr=0.05, alpha=1e-4,
T=1e-6) on SparseLinear for ours: its step prunes and revives (the turnover is printed; about
1-2% of K per step). All contenders of one layer size live in one process and their steps are
interleaved (one step each, in turn, --reps times, after two warm-up steps each) so that load
from other processes hits them alike; each figure is a median. `--clock cpu` times the
process's CPU time instead of the wall clock (meaningful with --threads 1: then being
descheduled by other processes does not count). SparseLab's SET update (drop 30% by magnitude,
regrow at random; SparseLab runs it every 100 steps by default) is timed by itself --set-reps
times.

Our compact step is split into products (zero_grad, forward, backward), update (the optimizer's
step less rewiring) and rewiring (sampling the revived positions, replacing the slots, merging
the sorted indices, `sign_at` of the revived, and the CSR layout's rebuild), timed by wrapping
the layer's interface methods on one instance.

Peak RSS (VmHWM) of each contender is measured in a fresh process that builds it and runs
3 steps (--no-rss to skip). If `sparselab` is not installed its columns say so and the rest runs.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import warnings

import torch
from torch import nn

from deepr_engine import DeepR, SparseLinear

BATCH = 64
LR = 0.05

try:
    import sparselab
except ImportError:  # a benchmark-only peer: not a dependency of the project
    sparselab = None


class Clock:
    def __init__(self, kind: str):
        self.now = time.process_time if kind == "cpu" else time.perf_counter


class Contender:
    """One way to train the layer: build() then step() (one training step)."""

    def __init__(self, name: str, n: int, density: float, x, target, clock: Clock):
        self.name, self.n, self.density, self.x, self.target = name, n, density, x, target
        self.clock = clock
        self.split = {"products": [], "update": [], "rewiring": []}
        self.turnover = []
        build = {"dense-sgd": self._dense, "sparselab": self._sparselab,
                 "deepr-full": self._deepr_full, "deepr-compact": self._deepr_compact}[name]
        build()

    def _dense(self):
        self.model = nn.Linear(self.n, self.n, bias=False)
        self.opt = torch.optim.SGD(self.model.parameters(), lr=LR)
        self.after = None

    def _sparselab(self):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            self.model = sparselab.SparseLinear(self.n, self.n, bias=False,
                                                sparsity=1 - self.density)
        self.opt = torch.optim.SGD(self.model.parameters(), lr=LR)
        self.algo = sparselab.Static(sparsity=1 - self.density)
        self.model.apply(self.algo)
        self.after = self.algo.step

    def _deepr(self, compute: str):
        self.layer = SparseLinear(self.n, self.n, bias=False, connectivity=self.density,
                                  compute=compute, generator=torch.Generator().manual_seed(1))
        self.model = nn.Sequential(self.layer)
        self.opt = DeepR(self.model, lr=LR, alpha=1e-4, temperature=1e-6, seed=2)
        self.after = None

    def _deepr_full(self):
        self._deepr("dense")

    def _deepr_compact(self):
        self._deepr("sparse")
        self.rewire_s = 0.0
        layer, clock = self.layer, self.clock
        for method in ("sample_dormant", "replace_slots", "sign_at"):  # the rewiring's calls
            inner = getattr(layer, method)

            def timed(*a, _inner=inner, **k):
                t = clock.now()
                out = _inner(*a, **k)
                self.rewire_s += clock.now() - t
                return out
            setattr(layer, method, timed)  # an instance attribute: this object only

    def step(self) -> float:
        now = self.clock.now
        self.rewire_s = 0.0
        t0 = now()
        self.opt.zero_grad()
        nn.functional.mse_loss(self.model(self.x), self.target).backward()
        t1 = now()
        self.opt.step()
        if self.after is not None:
            self.after()
        t2 = now()
        if self.name == "deepr-compact":
            self.layer.layout()  # the CSR index arrays after the rewiring (else: next forward)
        t3 = now()
        if self.name == "deepr-compact":
            self.split["products"].append(t1 - t0)
            self.split["update"].append(t2 - t1 - self.rewire_s)
            self.split["rewiring"].append(self.rewire_s + t3 - t2)
        if self.name.startswith("deepr"):
            self.turnover.append(self.opt.last_events[0]["pruned"].numel())
        return t3 - t0


def set_update_seconds(n: int, density: float, reps: int, clock: Clock) -> list[float]:
    """SparseLab's SET update (drop_fraction 0.3) on a fresh layer, timed reps times."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        layer = sparselab.SparseLinear(n, n, bias=False, sparsity=1 - density)
    algo = sparselab.SET(sparsity=1 - density, drop_fraction=0.3, update_freq=100, seed=0)
    layer.apply(algo)
    out = []
    for _ in range(reps):
        t = clock.now()
        algo.update()
        out.append(clock.now() - t)
    return out


def measure(n: int, densities: list[float], names: list[str], reps: int, set_reps: int,
            clock: Clock) -> list[dict]:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(BATCH, n, generator=gen)
    target = torch.randn(BATCH, n, generator=gen)
    dense = Contender("dense-sgd", n, 1.0, x, target, clock) if "dense-sgd" in names else None
    rows = []
    for d in densities:
        group = [dense] if dense else []
        group += [Contender(name, n, d, x, target, clock) for name in names
                  if name != "dense-sgd" and (name != "sparselab" or sparselab is not None)]
        times = {c.name: [] for c in group}
        for c in group:  # warm-up
            c.step()
            c.step()
        for _ in range(reps):
            for c in group:
                times[c.name].append(c.step())
        row = {"n": n, "density": d, "k": round(n * n * d), "load": os.getloadavg()[0],
               "ms": {k: statistics.median(v) * 1e3 for k, v in times.items()}}
        compact = next((c for c in group if c.name == "deepr-compact"), None)
        if compact is not None:
            row["k"] = compact.layer.k
            row["split_ms"] = {k: statistics.median(v) * 1e3 for k, v in compact.split.items()}
            row["turnover"] = statistics.median(compact.turnover)
        if sparselab is not None and "sparselab" in names and set_reps > 0:
            row["set_update_ms"] = statistics.median(
                set_update_seconds(n, d, set_reps, clock)) * 1e3
        rows.append(row)
        print(json.dumps(row), flush=True)
        del group, times, compact
    return rows


def _peak_rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def rss_child(spec: str) -> None:
    name, n, d, threads = spec.split(",")
    torch.set_num_threads(int(threads))
    n = int(n)
    gen = torch.Generator().manual_seed(0)
    x, target = torch.randn(BATCH, n, generator=gen), torch.randn(BATCH, n, generator=gen)
    c = Contender(name, n, float(d), x, target, Clock("wall"))
    for _ in range(3):
        c.step()
    print(json.dumps({"peak_rss_mb": _peak_rss_mb()}))


def peak_rss(name: str, n: int, d: float, threads: int) -> float | None:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
         os.environ.get("PYTHONPATH", "")]))
    res = subprocess.run([sys.executable, os.path.abspath(__file__), "--rss-child",
                          f"{name},{n},{d},{threads}"], capture_output=True, text=True, env=env)
    if res.returncode != 0:
        print(f"RSS of {name} at {n}² {d:.0%} failed: {res.stderr.strip()[-300:]}", flush=True)
        return None
    return json.loads(res.stdout.strip().splitlines()[-1])["peak_rss_mb"]


def _fmt_ms(v) -> str:
    if v is None:
        return "-"
    return f"{v:,.0f} ms" if v >= 100 else f"{v:.1f} ms"


def table(rows: list[dict], have_sparselab: bool) -> str:
    sl = "" if have_sparselab else " (not installed)"
    out = ["| layer, density | K | dense SGD | SparseLab step (no rewiring)" + sl +
           " | SparseLab SET update | Deep R full-size | Deep R compact | compact / SparseLab"
           " | compact / dense | compact: products / update / rewiring | revived per step"
           " | peak RSS: dense / SparseLab / full-size / compact | load |",
           "|" + "---|" * 12]
    for r in rows:
        ms = r["ms"]
        ours, sl_ms, dense = ms.get("deepr-compact"), ms.get("sparselab"), ms.get("dense-sgd")
        ratio = lambda a, b: f"{a / b:.2f}x" if a and b else "-"  # noqa: E731
        split = r.get("split_ms")
        split_s = " / ".join(_fmt_ms(split[k]) for k in ("products", "update", "rewiring")) \
            if split else "-"
        rss = r.get("rss_mb", {})
        rss_s = " / ".join(f"{rss[k]:,.0f}" if rss.get(k) else "-" for k in
                           ("dense-sgd", "sparselab", "deepr-full", "deepr-compact")) + " MB" \
            if rss else "-"
        out.append(f"| {r['n']}², {r['density']:.0%} | {r['k']:,} | {_fmt_ms(dense)} | "
                   f"{_fmt_ms(sl_ms)} | {_fmt_ms(r.get('set_update_ms'))} | "
                   f"{_fmt_ms(ms.get('deepr-full'))} | {_fmt_ms(ours)} | {ratio(ours, sl_ms)} | "
                   f"{ratio(ours, dense)} | {split_s} | {r.get('turnover', 0):,.0f} | {rss_s} | "
                   f"{r['load']:.1f} |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="4096,16384", help="layer sizes n (n x n), comma-separated")
    ap.add_argument("--densities", default="0.01,0.02,0.1", help="fractions of K / n², comma-separated")
    ap.add_argument("--reps", type=int, default=7, help="timed steps per contender (median)")
    ap.add_argument("--set-reps", type=int, default=1, help="timed SparseLab SET updates (0: none)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    ap.add_argument("--full-size-max", type=int, default=8192,
                    help="largest n for Deep R on a full-size layer (theta, sign, weight and "
                         "gradient of all n² positions)")
    ap.add_argument("--only", default="", help="comma-separated contenders: dense-sgd, "
                    "sparselab, deepr-full, deepr-compact (default: all)")
    ap.add_argument("--no-rss", action="store_true", help="skip peak RSS in fresh processes")
    ap.add_argument("--quick", action="store_true", help="4096² at 1%% and 2%%, 5 reps, no RSS")
    ap.add_argument("--json", default="", help="write the figures to this file")
    ap.add_argument("--rss-child", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.rss_child:
        rss_child(args.rss_child)
        return
    if args.quick:
        args.sizes, args.densities, args.reps, args.no_rss = "4096", "0.01,0.02", 5, True
    for flag, value in (("--reps", args.reps), ("--threads", args.threads)):
        if value < 1:
            raise SystemExit(f"{flag} must be >= 1, got {value}")
    torch.set_num_threads(args.threads)
    clock = Clock(args.clock)
    all_names = ["dense-sgd", "sparselab", "deepr-full", "deepr-compact"]
    names = [s for s in args.only.split(",") if s] or all_names
    unknown = sorted(set(names) - set(all_names))
    if unknown:
        raise SystemExit(f"--only: unknown contender(s) {unknown}; allowed: {all_names}")
    if sparselab is None:
        print("sparselab is not installed (pip install sparselab==0.2.2 into the benchmark's "
              "environment): its columns are left out", flush=True)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {BATCH}, clock "
          f"{args.clock}, {os.cpu_count()} CPUs, load average {os.getloadavg()}", flush=True)
    rows = []
    for n in [int(s) for s in args.sizes.split(",")]:
        here = [c for c in names if c != "deepr-full" or n <= args.full_size_max]
        rows += measure(n, [float(d) for d in args.densities.split(",")], here, args.reps,
                        args.set_reps if sparselab is not None else 0, clock)
        if not args.no_rss:
            dense_mb = peak_rss("dense-sgd", n, 1.0, args.threads) if "dense-sgd" in here else None
            for r in rows[-len(args.densities.split(",")):]:
                r["rss_mb"] = {c: peak_rss(c, n, r["density"], args.threads) for c in here
                               if c != "dense-sgd" and (c != "sparselab" or sparselab is not None)}
                r["rss_mb"]["dense-sgd"] = dense_mb
    print(f"load average after: {os.getloadavg()}")
    print(table(rows, sparselab is not None))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
