"""Sparse compute (compact layers, O(K) memory): same mathematics as the full-size layers,
the invariants, uniform revival, signs from the hash, meta-device models, refusals, sessions."""
import math

import pytest
import torch
from scipy import stats
from torch import nn

from deepr_engine import (SET, DeepR, Dense, L1Shrinkage, MagnitudePruning, RigL, SoftDeepR,
                          SparseLinear, StaticSparse, rewired_layers, sparsify)
from deepr_engine.sparse import CompactLinear, position_signs


def compact_pair(sizes, ks, seed=0, dtype=torch.float64):
    """A compact MLP and the full-size MLP in exactly the same state (positions in the same
    slot order, theta, signs at every position, biases)."""
    gen = torch.Generator().manual_seed(seed)
    compact, dense = [], []
    for i, ((a, b), k) in enumerate(zip(zip(sizes[:-1], sizes[1:]), ks)):
        layer = SparseLinear(a, b, k=k, compute="sparse", generator=gen, dtype=dtype)
        compact.append(layer)
        dense.append(SparseLinear.from_rewired(layer))
        if i < len(ks) - 1:
            compact.append(nn.ReLU())
            dense.append(nn.ReLU())
    return nn.Sequential(*compact), nn.Sequential(*dense)


def assert_compact_consistent(layer, k):
    assert layer.k == k and layer.active_idx.unique().numel() == k
    assert torch.all(layer.theta_active >= 0)
    assert torch.equal(layer.values.detach(), layer.theta_active * layer.sign_at(layer.active_idx))
    # the CSR orders follow the slots: the sparse product equals the dense one
    assert torch.equal(layer.layout().sorted_pos, layer.active_idx.sort().values)


def test_dense_and_sparse_compute_make_the_same_choices_and_reach_the_same_theta():
    """300 steps with turnover at every step, on the rejection path (layer 1: 5% active) and
    the listing path (layer 2: 90% active), plus live K changes: identical pruned and revived
    positions every step, theta equal within 1e-9 (float64; the products only differ in
    summation order)."""
    sizes, ks = (40, 50, 10), [100, 450]
    compact, dense = compact_pair(sizes, ks, seed=3)
    oc = DeepR(compact, lr=0.05, alpha=1e-2, temperature=1e-3, seed=11)
    od = DeepR(dense, lr=0.05, alpha=1e-2, temperature=1e-3, seed=11)
    g = torch.Generator().manual_seed(4)
    x = torch.randn(64, 40, generator=g, dtype=torch.float64)
    y = torch.randint(10, (64,), generator=g)
    turnover = _train_pair(compact, dense, oc, od, 100, x, y)
    for ks_now in ([130, 400], [90, 430]):  # live K changes, then more steps
        for o in (oc, od):
            o.set(k=ks_now)
        turnover += _train_pair(compact, dense, oc, od, 100, x, y)
    assert turnover > 1000, "the test needs rewiring to happen"


def _train_pair(compact, dense, oc, od, steps, x, y, check=None):
    """Train both models on the same batch; every step: the same events, the same active
    positions in the same slots, the same weights (float64, within 1e-9)."""
    turnover = 0
    for step in range(steps):
        for model, opt in ((compact, oc), (dense, od)):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
        for lc, ld, ec, ed in zip(rewired_layers(compact), rewired_layers(dense),
                                  oc.last_events, od.last_events):
            assert torch.equal(ec["pruned"], ed["pruned"]), f"step {step}: pruning differs"
            assert torch.equal(ec["activated"], ed["activated"]), f"step {step}: growth differs"
            assert torch.equal(lc.active_idx, ld.active_idx), f"step {step}"
            assert torch.allclose(lc.active_weight(), ld.active_weight(), rtol=0, atol=1e-9)
            theta_c, sign_c = lc.gather_active()
            theta_d, sign_d = ld.gather_active()
            assert torch.allclose(theta_c, theta_d, rtol=0, atol=1e-9), f"step {step}"
            nonzero = ld.active_weight() != 0  # the sign of a zero weight is not kept alike
            assert torch.equal(sign_c[nonzero], sign_d[nonzero]), f"step {step}"
            turnover += ec["pruned"].numel()
    for lc, ld in zip(rewired_layers(compact), rewired_layers(dense)):
        assert torch.allclose(lc.effective_weight(), ld.weight, rtol=0, atol=1e-9)
    return turnover


BASELINES = {
    "static": (lambda m: StaticSparse(m, lr=0.1, seed=5), 0),
    "rigl": (lambda m: RigL(m, lr=0.1, update_every=3, drop_fraction=0.3, t_end=50, seed=5), 700),
    "set": (lambda m: SET(m, lr=0.1, update_every=3, drop_fraction=0.3, seed=5), 1000),
    "magnitude": (lambda m: MagnitudePruning(m, lr=0.1, prune_at=10, prune_events=3,
                                             prune_every=10, k=[40, 200], start="mask", seed=5),
                  310),
    "l1": (lambda m: L1Shrinkage(m, lr=0.1, alpha=0.05, threshold=2e-3, k=[60, 300],
                                 start="mask", seed=5), 100),
}


@pytest.mark.parametrize("method", sorted(BASELINES))
def test_baselines_make_the_same_choices_and_weights_on_compact_and_full_size_layers(method):
    """Static mask, SET (growth on the rejection path, layer 1: 5% active, and the listing
    path, layer 2: 90% active), RigL (compact layers: the dense gradient's top-k block by
    block), magnitude pruning and L1 shrinkage from the layers' mask: 60 steps, identical
    events and weights (signs may flip: these methods train w directly)."""
    make, min_turnover = BASELINES[method]
    compact, dense = compact_pair((40, 50, 10), [100, 450], seed=3)
    g = torch.Generator().manual_seed(4)
    x = torch.randn(64, 40, generator=g, dtype=torch.float64)
    y = torch.randint(10, (64,), generator=g)
    oc, od = make(compact), make(dense)
    turnover = _train_pair(compact, dense, oc, od, 60, x, y)
    assert turnover >= min_turnover, "the test needs the mask to change"
    # weights crossed 0: the sign a compact layer keeps is its weight's, not the hash's
    flips = sum(int((lc.sign_active != position_signs(int(lc.sign_seed), lc.active_idx,
                                                      torch.float64)).sum())
                for lc in rewired_layers(compact))
    assert flips > 0 or method in ("l1", "magnitude")
    if method == "magnitude":
        assert [l.k for l in rewired_layers(compact)] == [40, 200]


@pytest.mark.parametrize("block_rows", [1, 7, 30])
def test_blockwise_dense_gradient_top_k_matches_the_whole_gradient(block_rows):
    from deepr_engine.dense_grad import top_dense_grad
    g = torch.Generator().manual_seed(0)
    n_out, n_in = 30, 20
    pairs = [(torch.randn(8, n_in, generator=g, dtype=torch.float64),
              torch.randn(8, n_out, generator=g, dtype=torch.float64)) for _ in range(3)]
    exclude = torch.randperm(n_out * n_in, generator=g)[:150].sort().values
    dense = sum(go.t() @ x for x, go in pairs).abs().view(-1)
    dense[exclude] = -1.0
    want = torch.topk(dense, 40).indices
    got = top_dense_grad(pairs, 40, n_out, n_in, exclude, block=block_rows * n_in)
    assert torch.equal(got, want)


def test_rigl_records_the_backward_pass_only_before_a_growth_step():
    model = sparsify(nn.Sequential(nn.Linear(20, 10)), connectivity=0.3, compute="sparse")
    layer = rewired_layers(model)[0]
    opt = RigL(model, lr=0.1, update_every=3, t_end=7)
    x, y = torch.randn(4, 20), torch.tensor([0, 1, 2, 3])
    held = []
    for _ in range(9):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        held.append(len(layer.__dict__["_record"] or []))
        opt.step()
    assert held == [0, 0, 1, 0, 0, 1, 0, 0, 0]  # steps 3 and 6 grow; none from t_end = 7 on


@pytest.mark.parametrize("revive", ["uniform", "proportional"])
def test_global_k_makes_the_same_choices_on_compact_and_full_size_layers(revive):
    """Deep R with one K for the network: revival among all layers' dormant positions (the
    layers answer for their own positions) and live K changes, identical on both kinds."""
    compact, dense = compact_pair((40, 50, 10), [100, 450], seed=3)
    kw = dict(lr=0.05, alpha=1e-2, temperature=1e-3, seed=11, global_k=True, revive=revive)
    oc, od = DeepR(compact, **kw), DeepR(dense, **kw)
    g = torch.Generator().manual_seed(4)
    x = torch.randn(64, 40, generator=g, dtype=torch.float64)
    y = torch.randint(10, (64,), generator=g)
    turnover = _train_pair(compact, dense, oc, od, 60, x, y)
    for o in (oc, od):
        o.set(k=500)
    turnover += _train_pair(compact, dense, oc, od, 40, x, y)
    assert sum(l.k for l in rewired_layers(compact)) == 500
    assert turnover > 300


def test_invariants_over_a_thousand_steps():
    compact, _ = compact_pair((20, 30, 10), [60, 90], seed=1, dtype=torch.float32)
    layers = rewired_layers(compact)
    opt = DeepR(compact, lr=0.05, alpha=1e-3, temperature=1e-3, seed=1)
    g = torch.Generator().manual_seed(2)
    x, y = torch.randn(64, 20, generator=g), torch.randint(10, (64,), generator=g)
    turnover = 0
    for _ in range(1000):
        opt.zero_grad()
        nn.functional.cross_entropy(compact(x), y).backward()
        opt.step()
        for layer, k, ev in zip(layers, [60, 90], opt.last_events):
            assert_compact_consistent(layer, k)
            revived = ev["activated"]
            # revived at theta exactly 0; pruned (and not revived again) are gone
            assert torch.all(layer.theta_at(revived) == 0)
            gone = ev["pruned"][~torch.isin(ev["pruned"], revived)]
            assert not torch.isin(gone, layer.active_idx).any()
            assert ev["pruned"].numel() == revived.numel()
            turnover += revived.numel()
    assert turnover > 1000


def test_hash_signs_are_fair_fixed_and_independent_of_neighbours():
    pos = torch.arange(1_000_000) + 10**10 - 500_000  # across a 2^32 boundary too
    s = position_signs(123, pos)
    assert torch.equal(s, position_signs(123, pos))
    plus = int((s > 0).sum())
    assert stats.binomtest(plus, s.numel(), 0.5).pvalue > 1e-3
    same_as_next = int((s[1:] == s[:-1]).sum())
    assert stats.binomtest(same_as_next, s.numel() - 1, 0.5).pvalue > 1e-3
    other = position_signs(124, pos)
    assert stats.binomtest(int((s == other).sum()), s.numel(), 0.5).pvalue > 1e-3


def test_signs_stay_fixed_for_life_through_death_and_revival():
    layer = SparseLinear(20, 10, k=20, compute="sparse", generator=torch.Generator().manual_seed(0))
    all_signs = layer.full_sign().clone()
    opt = DeepR(nn.Sequential(layer), lr=1.0, alpha=1.0, temperature=0.0, seed=0)
    for _ in range(50):
        layer.values.grad = torch.zeros_like(layer.values)
        opt.step()
        assert torch.equal(layer.sign_active, all_signs.view(-1)[layer.active_idx])
    assert torch.equal(layer.full_sign(), all_signs)


def test_initialisation_follows_the_reference_scheme():
    layer = SparseLinear(400, 300, k=20_000, compute="sparse", generator=torch.Generator().manual_seed(9))
    assert layer.active_idx.unique().numel() == 20_000
    assert torch.all(layer.active_idx[1:] > layer.active_idx[:-1])
    # |w0| ~ |N(0, 1/n_in)|: Kolmogorov-Smirnov against the half-normal
    p = stats.kstest(layer.theta_active.numpy(), stats.halfnorm(scale=1 / math.sqrt(400)).cdf).pvalue
    assert p > 1e-3
    # positions uniform: rows and columns equally used (chi-square)
    rows = torch.bincount(layer.active_idx // 400, minlength=300).numpy()
    assert stats.chisquare(rows).pvalue > 1e-3


def test_forward_and_backward_match_the_dense_product():
    layer = SparseLinear(50, 30, k=200, compute="sparse", generator=torch.Generator().manual_seed(0),
                         dtype=torch.float64)
    dense = SparseLinear.from_rewired(layer)
    x = torch.randn(3, 7, 50, dtype=torch.float64)
    xs, xd = x.clone().requires_grad_(), x.clone().requires_grad_()
    ys, yd = layer(xs), dense(xd)
    assert ys.shape == (3, 7, 30) and torch.allclose(ys, yd, atol=1e-12)
    ys.pow(2).sum().backward()
    yd.pow(2).sum().backward()
    assert torch.allclose(xs.grad, xd.grad, atol=1e-12)
    assert torch.allclose(layer.values.grad, dense.weight.grad.view(-1)[layer.active_idx], atol=1e-12)
    assert torch.allclose(layer.bias.grad, dense.bias.grad, atol=1e-12)


def test_meta_model_is_sparsified_without_the_dense_weight():
    with torch.device("meta"):
        model = nn.Sequential(nn.Linear(100_000, 100_000), nn.ReLU(), nn.Linear(100_000, 10))
    sparsify(model, k=[50_000, 1_000], compute="sparse", seed=0)
    layers = rewired_layers(model)
    assert all(isinstance(l, CompactLinear) for l in layers)
    stored = sum(t.numel() for l in layers for t in [*l.parameters(), *l.buffers()])
    assert stored < 500_000  # K-sized state and biases; the dense weight would be 10^10
    assert layers[0].n_positions == 10**10
    opt = DeepR(model, lr=0.1, alpha=1e-2, temperature=1e-4)
    x = torch.randn(4, 100_000)
    for _ in range(3):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), torch.tensor([0, 1, 2, 3])).backward()
        opt.step()
    assert [l.k for l in layers] == [50_000, 1_000]


def test_sparse_mode_refuses_what_it_cannot_do_in_o_k():
    def model():
        return sparsify(nn.Sequential(nn.Linear(20, 10)), connectivity=0.3, compute="sparse")
    with pytest.raises(ValueError, match="soft-Deep R moves every dormant theta"):
        SoftDeepR(model(), lr=0.1, alpha=1e-3, temperature=1e-3)
    with pytest.raises(ValueError, match="Dense does not support compute='sparse'"):
        Dense(model(), lr=0.1)
    with pytest.raises(ValueError, match="cannot start dense"):
        MagnitudePruning(model(), lr=0.1, start="dense")
    assert MagnitudePruning(model(), lr=0.1).start == "mask"
    with pytest.raises(ValueError, match="gradient must be 'sgd'"):
        DeepR(model(), lr=0.1, gradient="adam")
    opt = DeepR(model(), lr=0.1)
    with pytest.raises(ValueError, match="gradient must be 'sgd'"):
        opt.set(gradient="momentum")
    with pytest.raises(ValueError, match="compute must be one of dense, sparse"):
        SparseLinear(4, 4, k=2, compute="csr")
    with pytest.raises(ValueError, match="nn.Linear layers only"):
        sparsify(nn.Sequential(nn.Conv2d(1, 2, 3)), connectivity=0.5, compute="sparse")


def test_foreign_write_to_values_is_detected():
    model = sparsify(nn.Sequential(nn.Linear(20, 10)), connectivity=0.3, compute="sparse")
    opt = DeepR(model, lr=0.1)
    other = torch.optim.SGD(model.parameters(), lr=0.1)
    nn.functional.cross_entropy(model(torch.randn(4, 20)), torch.tensor([0, 1, 2, 3])).backward()
    other.step()
    with pytest.raises(RuntimeError, match="changed outside its rewiring optimizer"):
        opt.step()


def test_state_dict_round_trip_restores_the_layer():
    a = SparseLinear(30, 20, k=50, compute="sparse", generator=torch.Generator().manual_seed(1))
    b = SparseLinear(30, 20, k=80, compute="sparse", generator=torch.Generator().manual_seed(2))
    b.load_state_dict(a.state_dict())
    x = torch.randn(5, 30)
    assert b.k == 50 and torch.equal(b.active_idx, a.active_idx)
    assert torch.allclose(a(x), b(x))


def test_session_trains_in_sparse_mode():
    from deepr_engine.run.config import RunConfig
    from deepr_engine.run.session import TrainingSession
    # measured with seed 3: test accuracy 0.86 after 500 steps (dense compute: 0.81)
    cfg = RunConfig(hidden=[32, 16], connectivity=[0.2, 0.3, 0.5], compute="sparse", lr=0.2,
                    temperature=1e-5, alpha=1e-3, eval_every=100, seed=3)
    s = TrainingSession(cfg)
    assert s.step(500) == 500
    assert all(isinstance(l, CompactLinear) for l in s.layers)
    assert s.evaluate()["test_acc"] > 0.7
    assert s.telemetry.total_pruned > 1000
    view = s.snapshot(full=True)
    lay = s.layers[0]
    assert view.layers[0].k == lay.k and view.layers[0].shape == (32, 64)
    assert torch.equal(torch.as_tensor(view.layers[0].active_pos), lay.active_idx.sort().values)
    assert (view.layers[0].theta >= 0).sum() == lay.k  # dormant theta: NaN (not stored)
    s.set_hyperparams(k=[300, 100, 60])
    assert [l.k for l in s.layers] == [300, 100, 60]
    with pytest.raises(ValueError, match="compute"):
        RunConfig(compute="sparse", algorithm="soft-deepr").validate()
    with pytest.raises(ValueError, match="compute"):
        RunConfig(compute="dense-ish").validate()


@pytest.mark.slow
def test_wide_sparse_preset_trains():
    """784-10000-10000-10 with compact layers (10^8 positions in the middle layer); measured:
    test accuracy 0.74 after 500 steps (chance is 0.1)."""
    from deepr_engine.run.session import TrainingSession
    s = TrainingSession("wide-sparse")
    assert [l.n_positions for l in s.layers] == [7_840_000, 100_000_000, 100_000]
    assert [l.k for l in s.layers] == [78_400, 100_000, 10_000]
    assert s.step(500) == 500
    assert s.evaluate()["test_acc"] > 0.5


def _full_index(layer):
    """The layer's sorted indices rebuilt from scratch (what the merges must equal)."""
    from deepr_engine.sparse_kernels import sort_slots
    rows = sort_slots(layer.active_idx, layer.in_features)
    key_t = (layer.active_idx % layer.in_features) * layer.out_features \
        + layer.active_idx // layer.in_features
    return rows, sort_slots(key_t, layer.out_features)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_merged_indices_equal_a_full_rebuild_after_random_rewiring(seed):
    """Random sequences of replace / add / remove (revived positions include ones that just
    left, slots removed anywhere): after every change the incrementally merged row- and
    column-major indices (keys, slots, CSR columns) equal a full sort, and the products equal
    the dense ones."""
    g = torch.Generator().manual_seed(seed)
    layer = SparseLinear(37, 23, k=150, compute="sparse", generator=g, dtype=torch.float64)
    x = torch.randn(5, 37, dtype=torch.float64, requires_grad=True)
    layer(x)  # the input needs a gradient: the column-major index is kept from now on
    for step in range(25):
        kind = int(torch.randint(3, (1,), generator=g))
        if kind == 0 or layer.k < 40:  # replace: some revived positions are the pruned ones
            slots = torch.randperm(layer.k, generator=g)[:int(torch.randint(1, 30, (1,), generator=g))]
            gone = layer.active_idx[slots]
            free = torch.nonzero(~layer.active_mask().view(-1)).view(-1)
            pool = torch.cat([gone, free])
            new = pool[torch.randperm(pool.numel(), generator=g)[:slots.numel()]]
            layer.replace_slots(slots, new)
        elif kind == 1 and layer.k < 400:
            free = torch.nonzero(~layer.active_mask().view(-1)).view(-1)
            layer.add_active(free[torch.randperm(free.numel(), generator=g)[:25]])
        else:
            layer.remove_slots(torch.randperm(layer.k, generator=g)[:20])
        (rows, cols), lay = _full_index(layer), layer.layout()
        for got, want in zip((lay.sorted_pos, lay.order, lay.col), rows):
            assert torch.equal(got, want.to(got.dtype)), f"step {step}: row-major index"
        for got, want in zip((layer._buffers["_sorted_pos_t"], lay.order_t, lay.col_t), cols):
            assert torch.equal(got, want.to(got.dtype)), f"step {step}: column-major index"
        xs = x.detach().clone().requires_grad_()
        y = layer(xs)
        dense = layer.effective_weight()
        assert torch.allclose(y, xs.detach() @ dense.t() + layer.bias.detach(), atol=1e-12)
        y.pow(2).sum().backward()
        go = 2 * y.detach()
        assert torch.allclose(xs.grad, go @ dense, atol=1e-12)
        want_grad = (go.t() @ xs.detach()).view(-1)[layer.active_idx]  # dE/dW at the active
        assert torch.allclose(layer.values.grad, want_grad, atol=1e-12)
        layer.values.grad = None
        del y  # a live graph keeps the values' gradient accumulator at the old K


def test_input_gradient_only_when_the_input_needs_one():
    """A layer whose input needs no gradient keeps no column-major index and computes no
    dE/dx (W^T's CSR is never built); the value gradient is still the dense one sampled."""
    layer = SparseLinear(30, 20, k=100, compute="sparse", generator=torch.Generator().manual_seed(0),
                         dtype=torch.float64)
    model = nn.Sequential(layer, nn.ReLU(), SparseLinear(20, 5, k=40, compute="sparse",
                                                         dtype=torch.float64))
    opt = DeepR(model, lr=0.5, alpha=1e-1, temperature=1e-3, seed=0)
    x = torch.randn(8, 30, dtype=torch.float64)
    for _ in range(10):
        opt.zero_grad()
        nn.functional.mse_loss(model(x), torch.zeros(8, 5, dtype=torch.float64)).backward()
        opt.step()
    first, second = rewired_layers(model)
    assert first._buffers["_sorted_pos_t"] is None and first.layout().order_t is None
    assert second._buffers["_sorted_pos_t"] is not None  # its input (a hidden layer) needs one
    with pytest.raises(RuntimeError, match="no column-major index"):
        first.layout().matrix_t(first.values)
    first.values.grad = None
    y = first(x)
    y.sum().backward()
    want = torch.ones(8, 20, dtype=torch.float64).t() @ x
    assert torch.allclose(first.values.grad, want.view(-1)[first.active_idx], atol=1e-12)
