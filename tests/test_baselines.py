"""The comparison methods (baselines.py): each one's defining invariant, tested the way the
Deep R tests test Algorithm 1."""
import math

import numpy as np
import pytest
import torch
from torch import nn

from deepr_engine import sparsify
from deepr_engine.optim import SET, Dense, L1Shrinkage, MagnitudePruning, RigL, StaticSparse
from deepr_engine.run.checkpoint import load, to_bytes
from deepr_engine.run.config import preset
from deepr_engine.run.registry import names as algorithm_names
from deepr_engine import distribute_connectivity
from deepr_engine.run.session import TrainingSession
from helpers import assert_nan_gradient_refused


def net(connectivity=0.2, seed=0, sizes=(20, 30, 5)):
    torch.manual_seed(seed)
    layers = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), nn.Tanh()]
    return sparsify(nn.Sequential(*layers[:-1]), connectivity=connectivity, seed=seed)


def train(model, opt, steps, seed=0, check=None):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(64, model[0].in_features, generator=g)
    y = torch.randint(0, model[-1].out_features, (64,), generator=g)
    for _ in range(steps):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        if check:
            check()


def consistent(opt):
    for layer in opt.layers:
        idx = layer.active_idx
        assert torch.unique(idx).numel() == idx.numel() == int((layer.theta >= 0).sum())
        assert torch.equal(layer.weight.detach(), layer.effective_weight())


def masks(opt):
    return [set(l.active_idx.tolist()) for l in opt.layers]


@pytest.mark.parametrize("kind", [StaticSparse, SET, RigL])
def test_fixed_k_methods_keep_exactly_k_every_step(kind):
    model = net()
    extra = {"update_every": 5, "t_end": 1000} if kind is RigL else {"update_every": 5} if kind is SET else {}
    opt = kind(model, lr=0.1, **extra)
    ks = [l.k for l in opt.layers]
    turnover = []

    def check():
        assert [l.k for l in opt.layers] == ks
        consistent(opt)
        turnover.append(sum(len(e["activated"]) for e in opt.last_events))

    train(model, opt, 40, check=check)
    if kind is StaticSparse:
        assert sum(turnover) == 0
    else:  # updates happen exactly every 5 steps
        assert all((t > 0) == ((i + 1) % 5 == 0) for i, t in enumerate(turnover))


def test_static_sparse_never_changes_its_mask():
    model = net()
    opt = StaticSparse(model, lr=0.5)
    before = masks(opt)
    train(model, opt, 30)
    assert masks(opt) == before


def test_set_drops_the_smallest_magnitudes_and_regrows_elsewhere_at_zero():
    model = net()
    opt = SET(model, lr=0.1, update_every=10 ** 6, drop_fraction=0.25)
    train(model, opt, 10)
    before = masks(opt)
    expected_drop = []
    for layer in opt.layers:
        w = layer.weight.detach().view(-1)[layer.active_idx].abs()
        n = round(0.25 * layer.k)
        order = torch.argsort(w)
        assert w[order[n]] > w[order[n - 1]]  # no tie at the cut (else the set is ambiguous)
        expected_drop.append(set(layer.active_idx[order[:n]].tolist()))
    opt.drop_and_grow([round(0.25 * l.k) for l in opt.layers])
    for layer, ev, old, drop in zip(opt.layers, opt.last_events, before, expected_drop):
        assert set(ev["pruned"].tolist()) == drop
        grown = set(ev["activated"].tolist())
        assert len(grown) == len(drop) and not grown & old  # only previously inactive positions
        assert torch.all(layer.weight.detach().view(-1)[ev["activated"]] == 0)
    consistent(opt)


def test_set_regrowth_is_uniform_over_inactive_positions():
    # 2000 independent updates of one small layer: how often each inactive position is chosen
    counts = np.zeros(40)
    model = sparsify(nn.Sequential(nn.Linear(8, 5)), connectivity=0.5, seed=3)
    layer = model[0]
    inactive = sorted(set(range(40)) - set(layer.active_idx.tolist()))
    state = (layer.theta.clone(), layer.active_idx.clone(), layer.weight.detach().clone())
    opt = SET(model, lr=0.1, drop_fraction=0.1, seed=11)
    for _ in range(2000):
        opt.drop_and_grow([2])
        np.add.at(counts, opt.last_events[0]["activated"].numpy(), 1)
        with torch.no_grad():  # back to the same state for the next independent draw
            layer.theta.copy_(state[0])
            layer.active_idx = state[1].clone()
            layer.weight.copy_(state[2])
    observed = counts[inactive]
    assert counts.sum() == observed.sum() == 4000  # never an active position
    expected = 4000 / len(inactive)
    chi2 = float(((observed - expected) ** 2 / expected).sum())
    # 19 degrees of freedom: the 0.999 quantile is 43.8
    assert chi2 < 43.8, chi2


def test_rigl_grows_where_the_dense_gradient_is_largest():
    model = net()
    opt = RigL(model, lr=0.1, update_every=10 ** 6, t_end=10 ** 6, drop_fraction=0.3)
    train(model, opt, 5)
    before = masks(opt)
    for layer in opt.layers:  # a known gradient: position p gets |grad| = p
        layer.weight.grad = torch.arange(layer.n_positions, dtype=torch.float32).view_as(layer.weight)
    n = [round(0.3 * l.k) for l in opt.layers]
    opt.drop_and_grow(n)
    for layer, ev, old, n_i in zip(opt.layers, opt.last_events, before, n):
        staying = old - set(ev["pruned"].tolist())
        candidates = [p for p in range(layer.n_positions) if p not in staying]
        assert set(ev["activated"].tolist()) == set(sorted(candidates)[-n_i:])
    consistent(opt)


def test_rigl_drop_fraction_follows_the_cosine_and_stops_at_t_end():
    model = net()
    opt = RigL(model, lr=0.1, update_every=2, drop_fraction=0.4, t_end=20)
    assert opt.fraction_at(0) == pytest.approx(0.4)
    assert opt.fraction_at(10) == pytest.approx(0.2)
    assert opt.fraction_at(15) == pytest.approx(0.2 * (1 + math.cos(math.pi * 0.75)))
    assert opt.fraction_at(20) == 0
    changed = []
    train(model, opt, 30, check=lambda: changed.append(sum(len(e["pruned"]) for e in opt.last_events)))
    assert all(c == 0 for c in changed[20:]) and sum(changed[:20]) > 0
    k0 = opt.layers[0].k
    assert changed[1] >= changed[9] >= changed[17]  # less and less turnover
    assert changed[1] == round(opt.fraction_at(2) * k0) + sum(
        round(opt.fraction_at(2) * l.k) for l in opt.layers[1:])


def test_magnitude_pruning_trains_dense_then_keeps_the_largest():
    model = net(connectivity=0.1)
    targets = [l.k for l in model if hasattr(l, "k")]
    opt = MagnitudePruning(model, lr=0.1, prune_at=10)
    assert [l.k for l in opt.layers] == [l.n_positions for l in opt.layers]
    train(model, opt, 9)
    assert [l.k for l in opt.layers] == [l.n_positions for l in opt.layers]
    train(model, opt, 1)  # step 10: the gradient step, then pruning to K
    assert [l.k for l in opt.layers] == targets
    after = masks(opt)
    train(model, opt, 20)
    assert masks(opt) == after  # retraining with the mask fixed
    consistent(opt)


def test_magnitude_pruning_prunes_the_smallest_weights_at_the_event():
    model = net(connectivity=0.3)
    opt = MagnitudePruning(model, lr=0.1, prune_at=3)
    train(model, opt, 2)
    opt.step_count = 3  # call the pruning event on a known state
    mags = [l.weight.detach().view(-1).abs().clone() for l in opt.layers]
    opt.update_mask()
    for layer, m in zip(opt.layers, mags):
        expected = set(torch.topk(m, layer.k).indices.tolist())
        assert set(layer.active_idx.tolist()) == expected


def test_iterative_magnitude_pruning_steps_down_to_k():
    model = net(connectivity=0.1)
    targets = [l.k for l in model if hasattr(l, "k")]
    opt = MagnitudePruning(model, lr=0.1, prune_at=5, prune_events=4, prune_every=5)
    seen = []
    train(model, opt, 30, check=lambda: seen.append(opt.layers[0].k))
    n = opt.layers[0].n_positions
    assert seen[:4] == [n] * 4
    assert seen[4] == n - (n - targets[0]) // 4 and seen[-1] == targets[0]
    assert all(a >= b for a, b in zip(seen, seen[1:]))


def test_l1_shrinkage_soft_thresholds_and_removes_for_good():
    model = net()
    floor = [3, 3]
    opt = L1Shrinkage(model, lr=0.1, alpha=0.05, k=floor)
    layer = opt.layers[0]
    w0 = layer.weight.detach().clone().view(-1)
    for l in opt.layers:  # no gradient: only the shrinkage acts
        l.weight.grad = torch.zeros_like(l.weight)
    opt.step()
    w1 = layer.weight.detach().view(-1)
    assert torch.allclose(w1.abs(), (w0.abs() - 0.005).clamp(min=0), atol=1e-7)
    removed = set(range(layer.n_positions)) - set(layer.active_idx.tolist())
    assert removed == set(torch.nonzero(w0.abs() <= 0.005).view(-1).tolist())
    model2 = net()
    opt2 = L1Shrinkage(model2, lr=0.5, alpha=0.2, k=floor)
    ever_removed = [set() for _ in opt2.layers]

    def check():
        for l, gone in zip(opt2.layers, ever_removed):
            active = set(l.active_idx.tolist())
            assert not active & gone  # removed for good
            gone |= set(range(l.n_positions)) - active
        assert all(l.k >= f for l, f in zip(opt2.layers, floor))

    train(model2, opt2, 60, check=check)
    assert [l.k for l in opt2.layers] == floor  # strong L1 reaches the floor


def test_dense_keeps_everything_and_refuses_k():
    model = net()
    opt = Dense(model, lr=0.1)
    assert all(l.k == l.n_positions for l in opt.layers)
    train(model, opt, 10)
    assert all(l.k == l.n_positions for l in opt.layers)
    with pytest.raises(ValueError, match="k/connectivity"):
        opt.set(k=[5, 5, 5])


def test_signed_weights_may_change_sign():
    model = net(connectivity=1.0, sizes=(4, 2))
    opt = StaticSparse(model, lr=1.0)
    layer = opt.layers[0]
    layer.theta.fill_(0.1)
    layer.sign.fill_(1.0)
    layer.sync_weight()  # an edit of theta on purpose: weight follows
    layer.weight.grad = torch.full_like(layer.weight, 0.3)
    opt.step()
    assert torch.allclose(layer.weight.detach(), torch.full_like(layer.weight, -0.2))
    assert torch.all(layer.sign == -1) and torch.allclose(layer.theta, torch.full_like(layer.theta, 0.2))


def test_erk_distribution_matches_the_total_and_favours_small_layers():
    shapes = [(300, 784), (100, 300), (10, 100)]
    sizes = [a * b for a, b in shapes]
    for total in (0.01, 0.05, 0.3):
        c = distribute_connectivity(shapes, total, "erk")
        assert sum(ci * s for ci, s in zip(c, sizes)) / sum(sizes) == pytest.approx(total)
        assert c[0] < c[1] < c[2] <= 1.0
    assert distribute_connectivity(shapes, 0.5, "erk")[1:] == [1.0, 1.0]  # capped, then rescaled
    assert distribute_connectivity(shapes, 0.2, "uniform") == [0.2] * 3
    with pytest.raises(ValueError, match="distribution"):
        distribute_connectivity(shapes, 0.2, "gaussian")


@pytest.mark.parametrize("algorithm", [a for a in algorithm_names() if a not in ("deepr", "soft-deepr")])
def test_every_method_runs_in_a_session_and_resumes_bit_identically(algorithm):
    cfg = preset("spiral-demo").replace(algorithm=algorithm, steps=40, update_every=10, prune_at=20,
                                        connectivity=[0.3], distribution="erk")
    a = TrainingSession(cfg)
    a.step(15)
    b = load(to_bytes(a))
    a.step(25)
    b.step(25)
    for la, lb in zip(a.layers, b.layers):
        assert torch.equal(la.theta, lb.theta) and torch.equal(la.active_idx, lb.active_idx)
    assert a.last == b.last
    total = sum(l.k for l in a.layers) / sum(l.n_positions for l in a.layers)
    if algorithm in ("static", "set", "rigl", "magnitude"):  # erk spread a total of 0.3
        assert total == pytest.approx(0.3, abs=0.02)
    if algorithm != "dense":
        a.set_hyperparams(connectivity=[0.2])  # live K works for every sparse method
        assert a.config.connectivity == [0.2]


@pytest.mark.parametrize("kind", [StaticSparse, SET, RigL, L1Shrinkage])
def test_nan_gradient_is_refused_and_changes_nothing(kind):
    model = net()
    opt = kind(model, lr=0.1, gradient="adam")
    train(model, opt, 3)
    nn.functional.cross_entropy(model(torch.randn(8, 20)), torch.randint(0, 5, (8,))).backward()
    assert_nan_gradient_refused(model, opt)
