"""The active network as a graph (deepr_engine.run.topology): summaries on hand-made networks
against networkx's own answers, the conv rule, a run's CSV rows."""
import math

import networkx as nx
import numpy as np
import pytest

from deepr_engine.run import topology
from deepr_engine.run.session import TrainingSession


def random_layers(sizes, density, seed):
    """(weight_shape, active positions) per Linear layer between `sizes`, seeded."""
    rng = np.random.default_rng(seed)
    out = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        n = n_in * n_out
        out.append(((n_out, n_in), np.sort(rng.choice(n, size=max(1, int(density * n)), replace=False))))
    return out


def plain(summary):
    """A summary comparable with ==: degree histograms as lists."""
    return {k: [h.tolist() for h in v] if k in ("in_degree", "out_degree") else v
            for k, v in summary.items()}


def nx_answers(g, sizes):
    """What networkx itself says: reach, dead hidden units, the number of input-output paths."""
    levels = np.cumsum([0, *sizes])
    inputs, outputs = range(levels[0], levels[1]), set(range(levels[-2], levels[-1]))
    inputs_reaching = sum(bool(nx.descendants(g, i) & outputs) for i in inputs)
    outputs_reached = sum(bool(nx.ancestors(g, o) & set(inputs)) for o in outputs)
    dead = [sum(not (nx.ancestors(g, u) & set(inputs) and nx.descendants(g, u) & outputs)
                for u in range(levels[k], levels[k + 1])) for k in range(1, len(sizes) - 1)]
    paths = sum(1 for i in inputs for o in outputs for _ in nx.all_simple_paths(g, i, o))
    return inputs_reaching, outputs_reached, dead, paths


@pytest.mark.parametrize("seed,density", [(0, 0.3), (1, 0.15), (2, 0.5), (3, 0.08)])
def test_summary_agrees_with_networkx_on_hand_made_networks(seed, density):
    sizes = [6, 5, 4, 3]
    layers = random_layers(sizes, density, seed)
    g = topology.to_digraph(layers)
    assert g.number_of_nodes() == sum(sizes)
    assert g.number_of_edges() == sum(len(p) for _, p in layers)
    s = topology.summary(layers)
    inputs_reaching, outputs_reached, dead, paths = nx_answers(g, sizes)
    assert s["inputs_reaching"] == inputs_reaching and s["outputs_reached"] == outputs_reached
    assert s["dead_per_level"] == dead and s["dead_units"] == sum(dead)
    assert s["log10_paths"] == (-math.inf if paths == 0 else pytest.approx(math.log10(paths), abs=1e-12))
    levels = np.cumsum([0, *sizes])
    for k in range(len(sizes) - 1):   # degree histograms: networkx's degrees, counted
        din = [g.in_degree(u) for u in range(levels[k + 1], levels[k + 2])]
        dout = [g.out_degree(u) for u in range(levels[k], levels[k + 1])]
        np.testing.assert_array_equal(s["in_degree"][k], np.bincount(din))
        np.testing.assert_array_equal(s["out_degree"][k], np.bincount(dout))
    assert plain(topology.summary(g)) == plain(s)   # the graph read back gives the same summary


def test_a_cut_network_has_no_path_and_every_hidden_unit_dead():
    # 3 -> 2 -> 2: the second layer only leaves hidden unit 1, the first only reaches unit 0
    layers = [((2, 3), np.array([0, 1, 2])), ((2, 2), np.array([1, 3]))]
    s = topology.summary(layers)
    assert s["log10_paths"] == -math.inf and s["inputs_reaching"] == 0 and s["outputs_reached"] == 0
    assert s["dead_per_level"] == [2]
    g = topology.to_digraph(layers)
    assert not any(nx.has_path(g, i, o) for i in range(3) for o in range(5, 7))


def test_conv_layers_count_by_channel():
    rng = np.random.default_rng(5)
    conv = (4, 2, 3, 3)                       # 2 -> 4 channels, 3x3 taps
    conv_pos = np.sort(rng.choice(72, size=10, replace=False))
    lin = (3, 4 * 5)                          # flatten of 4 channels x 5 positions -> 3 outputs
    lin_pos = np.sort(rng.choice(60, size=12, replace=False))
    topo = topology.build([(conv, conv_pos), (lin, lin_pos)])
    assert topo.sizes == [2, 4, 3] and topo.by_channel == [True, False] and topo.layers == [0, 1]
    want = nx.DiGraph()                       # the rule written out edge by edge
    for p in conv_pos:
        want.add_edge(("in", int(p // 9 % 2)), ("c", int(p // 18)))
    for p in lin_pos:
        want.add_edge(("c", int(p % 20 // 5)), ("out", int(p // 20)))
    got = topology.to_digraph(topo)
    assert got.number_of_edges() == want.number_of_edges()
    name = {0: "in", 1: "c", 2: "out"}
    relabel = {n: (name[d["level"]], d["unit"]) for n, d in got.nodes(data=True)}
    assert set(nx.relabel_nodes(got, relabel).edges()) == set(want.edges())


def test_an_incompatible_layer_ends_the_chain():
    layers = [((5, 7), np.arange(10)), ((4, 6), np.arange(8)), ((2, 4), np.arange(8))]
    topo = topology.build(layers)             # 5 outputs cannot feed 6 inputs: layer 0 left out
    assert topo.layers == [1, 2] and topo.sizes == [6, 4, 2]


def test_a_run_records_topology_at_each_evaluation():
    s = TrainingSession("spiral-demo", n_tracked=0)
    s.step(s.config.eval_every)
    tv = s.snapshot(full=False).telemetry
    assert list(tv.topology.steps) == [0, s.config.eval_every]
    row = tv.topology.values[-1]
    summ = topology.summary(s)
    assert row.tolist() == [float(summ[c]) for c in tv.topology_columns]
    assert plain(topology.summary(s.snapshot(full=False))) == plain(summ)          # a view gives the same
    assert summ["sizes"] == [2, 16, 16, 2]
    csv = s.metrics_csv()
    assert f"{s.config.eval_every},topology:log10_paths," in csv
