"""Deep R (Algorithm 1): invariants, statistics of one step, reviving, K changes."""
import math

import pytest
import torch
from scipy import stats
from torch import nn

from deepr_engine import DeepR, SparseConv2d, SparseLinear, rewired_layers, sparsify
from deepr_engine.sampling import sample_dormant

from helpers import assert_nan_gradient_refused, mlp, train_steps


def data(n=64, d=20, classes=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g), torch.randint(0, classes, (n,), generator=g)


def assert_layer_consistent(layer, k=None):
    theta = layer.theta.view(-1)
    active = torch.nonzero(theta >= 0).view(-1)
    assert torch.equal(active, layer.active_idx.sort().values), "active_idx != {theta >= 0}"
    if k is not None:
        assert layer.k == k and active.numel() == k
    assert torch.equal(layer.weight, layer.effective_weight()), "weight out of sync with theta"
    assert torch.all(layer.weight.view(-1)[theta < 0] == 0)


def test_exact_k_signs_and_dormant_weights_over_thousands_of_steps():
    model = mlp((20, 30, 10), connectivity=[0.1, 0.3])
    layers = rewired_layers(model)
    ks = [l.k for l in layers]
    signs = [l.sign.clone() for l in layers]
    # strong noise so that connections die and revive at every step
    opt = DeepR(model, lr=0.05, alpha=1e-3, temperature=1e-3, seed=1)
    x, y = data()
    turnover = [0]

    def check():
        for layer, k, s, ev in zip(layers, ks, signs, opt.last_events):
            assert_layer_consistent(layer, k)
            assert torch.equal(layer.sign, s)
            # revived connections start at exactly theta = 0; pruned ones are dormant now
            assert torch.all(layer.theta.view(-1)[ev["activated"]] == 0)
            pruned_still_dormant = ev["pruned"][~torch.isin(ev["pruned"], ev["activated"])]
            assert torch.all(layer.theta.view(-1)[pruned_still_dormant] < 0)
            assert ev["pruned"].numel() == ev["activated"].numel()
            turnover[0] += ev["pruned"].numel()

    train_steps(model, opt, 2000, x, y, check)
    assert turnover[0] > 2000, "the test needs rewiring to happen"


def test_global_k_keeps_the_total_exact():
    model = mlp((20, 30, 10), connectivity=[0.1, 0.3])
    layers = rewired_layers(model)
    total = sum(l.k for l in layers)
    opt = DeepR(model, lr=0.05, alpha=1e-3, temperature=1e-3, global_k=True, seed=2)
    x, y = data()
    per_layer = set()

    def check():
        assert sum(int(l.active_mask().sum()) for l in layers) == total
        for l in layers:
            assert_layer_consistent(l)
        per_layer.add(tuple(l.k for l in layers))

    train_steps(model, opt, 1000, x, y, check)
    assert len(per_layer) > 1, "with one global K the split between layers should move"


def test_dormant_connections_get_no_update_and_no_gradient():
    model = mlp((20, 30, 10), connectivity=0.2)
    opt = DeepR(model, lr=0.1, alpha=1e-4, temperature=1e-4)
    x, y = data()
    opt.zero_grad()
    nn.functional.cross_entropy(model(x), y).backward()
    before = [(l.theta.clone(), l.active_mask().clone()) for l in rewired_layers(model)]
    for l, (_, mask) in zip(rewired_layers(model), before):
        assert torch.all(l.theta_grad()[~mask] == 0)
        assert torch.any(l.weight.grad[~mask] != 0), "dense grad exists; theta's must be 0"
    opt.step()
    for l, (theta0, mask0), ev in zip(rewired_layers(model), before, opt.last_events):
        untouched = ~mask0
        untouched.view(-1)[ev["activated"]] = False
        assert torch.equal(l.theta[untouched], theta0[untouched])


def test_active_increment_mean_and_variance_with_zero_gradient():
    """With dE/dtheta = 0: increment ~ N(-lr*alpha, 2*lr*T) on active, dormant unchanged."""
    lr, alpha, T = 0.01, 0.5, 2e-3
    layer = SparseLinear(200, 200, bias=False, connectivity=0.5,
                         generator=torch.Generator().manual_seed(3))
    model = nn.Sequential(layer)
    with torch.no_grad():  # far from 0 so that nothing dies during the test
        layer.theta[layer.active_mask()] += 10.0
        layer.sync_weight()
    opt = DeepR(model, lr=lr, alpha=alpha, temperature=T, seed=4)
    theta0 = layer.theta.clone()
    mask = layer.active_mask().clone()
    incs = []
    for _ in range(5):
        layer.weight.grad = torch.zeros_like(layer.weight)
        before = layer.theta.clone()
        opt.step()
        incs.append((layer.theta - before)[mask])
        assert torch.equal(layer.theta[~mask], theta0[~mask])
    inc = torch.cat(incs).double()
    n = inc.numel()  # 100,000 increments
    var = 2 * lr * T
    # mean within 4 standard errors, variance within 4 of its standard errors (~sqrt(2/n))
    assert abs(inc.mean().item() + lr * alpha) < 4 * math.sqrt(var / n)
    assert abs(inc.var().item() / var - 1) < 4 * math.sqrt(2 / n)


@pytest.mark.slow
@pytest.mark.parametrize("compute", ["dense", "sparse"])
@pytest.mark.parametrize("size,k", [(200, 20), (200, 1), (200, 180)])
def test_revival_is_uniform_over_dormant_positions(size, k, compute):
    """Every step all K die (zero gradient, L1 pushes theta = 0 below 0): K are revived among
    all dormant positions, including the ones that just died. Chi-square against uniform; in
    both compute modes (K = 180 of 200 takes the listing path, the others rejection)."""
    layer = SparseLinear(size // 10, 10, bias=False, k=k, compute=compute,
                         generator=torch.Generator().manual_seed(5))
    opt = DeepR(nn.Sequential(layer), lr=1.0, alpha=1.0, temperature=0.0, seed=6)
    param = opt.param_groups[0]["params"][0]  # weight, or a compact layer's K values
    counts = torch.zeros(size)
    steps = 10_000 // k   # about 10,000 revivals: 50 expected per position
    for _ in range(steps):
        param.grad = torch.zeros_like(param)
        opt.step()
        ev = opt.last_events[0]
        assert ev["activated"].numel() == k and ev["activated"].unique().numel() == k
        counts += torch.bincount(ev["activated"], minlength=size)
    p = stats.chisquare(counts.numpy()).pvalue
    assert p > 1e-3, f"revival not uniform (chi-square p={p:.2g})"


def test_sample_dormant_uniform_on_both_paths():
    gen = torch.Generator().manual_seed(7)
    for dormant_share in (0.9, 0.1):  # rejection path, then listing path
        theta = torch.where(torch.rand(500, generator=gen) < dormant_share, -1.0, 1.0)
        dormant = torch.nonzero(theta < 0).view(-1)
        counts = torch.zeros(500)
        for _ in range(4000):
            pick = sample_dormant(theta, 5, dormant.numel(), gen)
            assert pick.unique().numel() == 5 and torch.all(theta[pick] < 0)
            counts += torch.bincount(pick, minlength=500)
        assert stats.chisquare(counts[dormant].numpy()).pvalue > 1e-3


def test_changing_k_live():
    model = mlp((20, 30, 10), connectivity=0.2)
    opt = DeepR(model, lr=0.05, alpha=1e-4, temperature=1e-5)
    x, y = data()
    train_steps(model, opt, 20, x, y)
    l0 = rewired_layers(model)[0]
    active_theta = l0.theta.view(-1)[l0.active_idx].clone()
    smallest_ten = set(l0.active_idx[active_theta.argsort()[:10]].tolist())
    assert len(set(active_theta.tolist())) == len(active_theta)  # no ties: the set is unique
    opt.set(k=[l0.k - 10, rewired_layers(model)[1].k + 25])
    # lowering: exactly the 10 smallest theta went dormant
    gone = opt.last_events[0]["pruned"]
    assert set(gone.tolist()) == smallest_ten and torch.all(l0.theta.view(-1)[gone] < 0)
    # raising: 25 revived at theta = 0
    new = opt.last_events[1]["activated"]
    assert new.numel() == 25 and torch.all(rewired_layers(model)[1].theta.view(-1)[new] == 0)
    ks = [l.k for l in rewired_layers(model)]
    train_steps(model, opt, 50, x, y, lambda: [assert_layer_consistent(l, k)
                                               for l, k in zip(rewired_layers(model), ks)])
    opt.set(connectivity=0.5)
    assert [l.k for l in rewired_layers(model)] == [300, 150]


@pytest.mark.parametrize("rule", ["momentum", "adam"])
def test_other_gradient_rules_keep_the_invariants(rule):
    model = mlp((20, 30, 10), connectivity=0.2, bias=True)
    opt = DeepR(model, lr=0.01, alpha=1e-3, temperature=1e-4, gradient=rule)
    x, y = data()
    ks = [l.k for l in rewired_layers(model)]
    bias0 = model[0].bias.clone()
    train_steps(model, opt, 300, x, y, lambda: [assert_layer_consistent(l, k)
                                                for l, k in zip(rewired_layers(model), ks)])
    assert not torch.equal(model[0].bias, bias0), "biases are trained by the same step"
    key = "momentum_buffer" if rule == "momentum" else "exp_avg"
    for l, ev in zip(rewired_layers(model), opt.last_events):
        assert torch.all(opt.state[l.weight][key].view(-1)[ev["activated"]] == 0)


def test_conv_layers_are_rewired():
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 10))
    sparsify(net, connectivity=[0.3, 0.05])
    assert isinstance(net[0], SparseConv2d) and isinstance(net[3], SparseLinear)
    opt = DeepR(net, lr=0.05, alpha=1e-3, temperature=1e-3)
    x, y = torch.randn(16, 1, 8, 8), torch.randint(0, 10, (16,))
    ks = [l.k for l in rewired_layers(net)]
    train_steps(net, opt, 200, x, y, lambda: [assert_layer_consistent(l, k)
                                              for l, k in zip(rewired_layers(net), ks)])
    assert net[0].k == round(0.3 * 36)


def test_nan_gradient_is_refused_and_changes_nothing():
    model = mlp((20, 30, 10), connectivity=0.2)
    opt = DeepR(model, lr=0.05, alpha=1e-3, temperature=1e-3)
    x, y = data()
    train_steps(model, opt, 5, x, y)
    for l in rewired_layers(model):
        l.weight.grad = torch.zeros_like(l.weight)
    assert_nan_gradient_refused(model, opt)


@pytest.mark.cuda
def test_runs_on_cuda_with_exact_k():
    model = mlp((20, 30, 10), connectivity=0.2).cuda()
    opt = DeepR(model, lr=0.05, alpha=1e-3, temperature=1e-3)
    x, y = data()
    ks = [l.k for l in rewired_layers(model)]
    train_steps(model, opt, 300, x.cuda(), y.cuda(),
                lambda: [assert_layer_consistent(l, k) for l, k in zip(rewired_layers(model), ks)])
    assert l_device(model) == "cuda"


def l_device(model):
    return rewired_layers(model)[0].theta.device.type
