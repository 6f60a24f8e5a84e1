"""Cost of the topology per frame (deepr_engine.run.topology): the O(K) numpy summary (what a
run records at each evaluation and a panel draws), and building the networkx.DiGraph, on
784-300-100-10 at 10% everywhere and on a wide-sparse chain whose middle layer holds 10^6
active connections (784-10000-10000-10 at 1% / 1% / 10%: K = 78,400 / 1,000,000 / 10,000).

Random active positions, seeded; medians of --repeats runs, each case timed in turn in one
process (machine noise hits all alike). Also compared: the path count by networkx on the
784-300-100-10 graph is not attempted (all_simple_paths enumerates ~10^6+ paths).

    python benchmarks/topology_cost.py [--repeats 5] [--graph-repeats 2]
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from deepr_engine.run import topology


def layers(sizes, density, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for (n_in, n_out), d in zip(zip(sizes[:-1], sizes[1:]), density):
        n = n_in * n_out
        k = int(d * n)
        pos = np.unique(rng.integers(0, n, size=int(k * 1.02) + 16))[:k]   # ~k distinct, sorted
        out.append(((n_out, n_in), pos))
    return out


def timed(fn, repeats):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--graph-repeats", type=int, default=2)
    args = ap.parse_args()
    cases = {"784-300-100-10 at 10%": layers([784, 300, 100, 10], [0.1, 0.1, 0.1]),
             "784-10000-10000-10, 10^6 active in the middle": layers([784, 10_000, 10_000, 10],
                                                                    [0.01, 0.01, 0.1])}
    print(f"{'network':48s} {'K':>10s} {'summary (numpy)':>16s} {'DiGraph build':>14s} "
          f"{'summary(DiGraph)':>17s}")
    for name, ls in cases.items():
        k = sum(len(p) for _, p in ls)
        t_sum = timed(lambda: topology.summary(ls), args.repeats)
        t_graph = timed(lambda: topology.to_digraph(ls), args.graph_repeats)
        g = topology.to_digraph(ls)
        t_back = timed(lambda: topology.summary(g), args.graph_repeats)
        s = topology.summary(ls)
        print(f"{name:48s} {k:>10,d} {t_sum * 1e3:>13.1f} ms {t_graph:>12.2f} s {t_back:>15.2f} s"
              f"   (log10 paths {s['log10_paths']:.2f}, dead units {s['dead_units']})")


if __name__ == "__main__":
    main()
