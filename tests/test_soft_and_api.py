"""soft-Deep R statistics, reproducibility, state_dict round trips, validation, learning."""
import copy
import math
import re

import pytest
import torch
from torch import nn

from deepr_engine import DeepR, SoftDeepR, SparseLinear, rewired_layers, sparsify, theta_min_rule

from helpers import assert_nan_gradient_refused, mlp, train_steps


def test_soft_deepr_stationary_distribution_matches_theory():
    """Zero gradient, small steps: P(active) = (T/alpha)/(T/alpha + |theta_min|) and mean active
    theta = T/alpha (spec). Tolerance 5% relative, averaged over 10,000 walks x 300 samples."""
    lr, alpha, T = 1e-4, 1.0, 0.01
    theta_min = theta_min_rule(T, alpha, 0.25)  # -> P(active) = 0.25
    layer = SparseLinear(100, 100, bias=False, connectivity=0.25,
                         generator=torch.Generator().manual_seed(0))
    opt = SoftDeepR(nn.Sequential(layer), lr=lr, alpha=alpha, temperature=T, theta_min=theta_min,
                    seed=1)
    p_active, mean_theta = [], []
    for step in range(6000):
        layer.weight.grad = torch.zeros_like(layer.weight)
        opt.step()
        if step >= 3000 and step % 10 == 0:
            mask = layer.active_mask()
            p_active.append(mask.float().mean().item())
            mean_theta.append(layer.theta[mask].mean().item())
            assert layer.k == int(mask.sum())
            assert layer.theta.min() >= theta_min
    p_theory = (T / alpha) / (T / alpha + abs(theta_min))
    assert abs(sum(p_active) / len(p_active) / p_theory - 1) < 0.05
    assert abs(sum(mean_theta) / len(mean_theta) / (T / alpha) - 1) < 0.05


def test_soft_deepr_dormant_walk_noise_only_and_events():
    layer = SparseLinear(50, 40, bias=False, connectivity=0.1, generator=torch.Generator().manual_seed(2))
    opt = SoftDeepR(nn.Sequential(layer), lr=0.01, alpha=0.1, temperature=1e-3, theta_min=-1.0)
    with torch.no_grad():
        layer.theta[~layer.active_mask()] = -0.5  # far from 0 and from theta_min
        layer.sync_weight()
    mask = layer.active_mask().clone()
    before = layer.theta.clone()
    layer.weight.grad = torch.ones_like(layer.weight)  # would move theta if it were applied
    opt.step()
    inc = (layer.theta - before)[~mask].double()
    # dormant: noise only, mean 0, variance 2 lr T (gradient and L1 not applied)
    assert abs(inc.mean().item()) < 4 * math.sqrt(2 * 0.01 * 1e-3 / inc.numel())
    assert abs(inc.var().item() / (2 * 0.01 * 1e-3) - 1) < 0.1
    assert torch.equal(layer.weight, layer.effective_weight())


def test_soft_deepr_default_theta_min_follows_the_rule_and_live_changes():
    model = mlp((20, 30, 10), connectivity=[0.1, 0.3])
    opt = SoftDeepR(model, lr=0.05, alpha=1e-3, temperature=1e-4)
    tms = [g["theta_min"] for g in opt.rewired_groups]
    assert tms == pytest.approx([theta_min_rule(1e-4, 1e-3, c) for c in (0.1, 0.3)])
    opt.set(temperature=2e-4)
    assert [g["theta_min"] for g in opt.rewired_groups] == pytest.approx([2 * t for t in tms])
    opt.set(theta_min=-0.5)
    opt.set(temperature=1e-4)
    assert [g["theta_min"] for g in opt.rewired_groups] == [-0.5, -0.5]


def _run(seed, steps, cls=DeepR, **kw):
    torch.manual_seed(123)  # anything that would leak global RNG into the run
    model = mlp((20, 30, 10), connectivity=0.2, seed=seed)
    opt = cls(model, lr=0.05, alpha=1e-3, temperature=1e-3, seed=seed, **kw)
    x = torch.randn(64, 20, generator=torch.Generator().manual_seed(0))
    y = torch.randint(0, 10, (64,), generator=torch.Generator().manual_seed(1))
    torch.manual_seed(999)
    train_steps(model, opt, steps, x, y)
    return model, opt, (x, y)


@pytest.mark.parametrize("cls", [DeepR, SoftDeepR])
def test_seed_makes_runs_bit_identical(cls):
    a, _, _ = _run(3, 100, cls)
    b, _, _ = _run(3, 100, cls)
    c, _, _ = _run(4, 100, cls)
    for (k, va), vb, vc in zip(a.state_dict().items(), b.state_dict().values(), c.state_dict().values()):
        assert torch.equal(va, vb), k
    assert not torch.equal(a.state_dict()["0.theta"], c.state_dict()["0.theta"])


@pytest.mark.parametrize("cls,kw", [(DeepR, {}), (DeepR, {"gradient": "adam"}),
                                    (DeepR, {"global_k": True}), (SoftDeepR, {})])
def test_state_dict_round_trip_continues_identically(cls, kw):
    model, opt, (x, y) = _run(5, 60, cls, **kw)
    saved_model = copy.deepcopy(model.state_dict())
    saved_opt = copy.deepcopy(opt.state_dict())
    train_steps(model, opt, 60, x, y)

    fresh = mlp((20, 30, 10), connectivity=0.4, seed=99)  # different K: the load resizes it
    fresh.load_state_dict(saved_model)
    opt2 = cls(fresh, lr=0.5, alpha=0.1, temperature=0.1, seed=0, **kw)
    opt2.load_state_dict(saved_opt)
    assert opt2.param_groups[0]["lr"] == 0.05
    train_steps(fresh, opt2, 60, x, y)
    for (k, va), vb in zip(model.state_dict().items(), fresh.state_dict().values()):
        assert torch.equal(va, vb), k


@pytest.mark.parametrize("kwargs,field", [
    ({"lr": -0.1}, "lr"), ({"lr": float("nan")}, "lr"), ({"lr": 0.1, "alpha": -1e-5}, "alpha"),
    ({"lr": 0.1, "temperature": -1.0}, "temperature"), ({"lr": 0.1, "alpha": float("nan")}, "alpha"),
    ({"lr": 0.1, "temperature": float("inf")}, "temperature"), ({"lr": 0.1, "gradient": "rmsprop"}, "gradient"),
    ({"lr": 0.1, "k": [10**6, 5]}, "k[0]"), ({"lr": 0.1, "k": [0, 5]}, "k[0]"),
    ({"lr": 0.1, "connectivity": 0.0}, "connectivity"), ({"lr": 0.1, "connectivity": 1.5}, "connectivity"),
    ({"lr": 0.1, "connectivity": float("nan")}, "connectivity"), ({"lr": 0.1, "k": [5]}, "k"),
])
def test_bad_deepr_arguments_raise_value_errors_naming_the_field(kwargs, field):
    model = mlp((20, 30, 10), connectivity=0.2)
    with pytest.raises(ValueError, match=field.replace("[", r"\[").replace("]", r"\]")):
        DeepR(model, **kwargs)


@pytest.mark.parametrize("kwargs,field", [
    ({"theta_min": 0.0}, "theta_min"), ({"theta_min": 0.3}, "theta_min"),
    ({"theta_min": float("nan")}, "theta_min"), ({"target_connectivity": 0}, "target_connectivity"),
    ({"temperature": 0.0}, "theta_min"),  # the rule needs T > 0: ask for an explicit value
])
def test_bad_soft_arguments(kwargs, field):
    model = mlp((20, 30, 10), connectivity=0.2)
    args = dict(lr=0.1, alpha=1e-3, temperature=1e-4) | kwargs
    with pytest.raises(ValueError, match=field):
        SoftDeepR(model, **args)


def test_bad_live_change_changes_nothing():
    model = mlp((20, 30, 10), connectivity=0.2)
    opt = DeepR(model, lr=0.1, alpha=1e-3, temperature=1e-4)
    ks = [l.k for l in rewired_layers(model)]
    for bad in ({"lr": -1}, {"temperature": float("nan")}, {"k": [1, 10**9]}, {"connectivity": 2.0},
                {"lr": 0.2, "k": [0, 3]}):
        with pytest.raises(ValueError):
            opt.set(**bad)
        assert [g["lr"] for g in opt.param_groups] == [0.1, 0.1]
        assert [l.k for l in rewired_layers(model)] == ks
    soft = SoftDeepR(mlp((20, 30, 10), connectivity=0.2), lr=0.1, alpha=1e-3, temperature=1e-4)
    tms = [g["theta_min"] for g in soft.rewired_groups]
    with pytest.raises(ValueError, match="theta_min"):
        soft.set(theta_min=0.5)
    with pytest.raises(ValueError, match="temperature"):
        soft.set(temperature=-1)
    assert [g["theta_min"] for g in soft.rewired_groups] == tms


def test_sparsify_arguments():
    with pytest.raises(ValueError, match="connectivity"):
        sparsify(nn.Sequential(nn.Linear(4, 4)), connectivity=-0.5)
    with pytest.raises(ValueError, match="k"):
        sparsify(nn.Sequential(nn.Linear(4, 4)), k=17)
    with pytest.raises(ValueError, match="one entry per rewired layer"):
        sparsify(nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2)), connectivity=[0.5])
    with pytest.raises(ValueError, match="rewired layers"):
        DeepR(nn.Sequential(nn.Linear(4, 4)), lr=0.1)
    net = sparsify(nn.Sequential(nn.Linear(4, 4), nn.Tanh(), nn.Linear(4, 2)), k=[3, 8])
    assert [l.k for l in rewired_layers(net)] == [3, 8] and isinstance(net[1], nn.Tanh)


def test_a_small_sparse_network_learns_digits():
    """Deep R MLP 64-100-10 at 15% connectivity beats 85% test accuracy on sklearn's digits."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    X, y = load_digits(return_X_y=True)
    X = torch.tensor(X / 16.0, dtype=torch.float32)
    y = torch.tensor(y)
    xtr, xte, ytr, yte = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
    model = mlp((64, 100, 10), connectivity=0.15, bias=True, seed=0)
    opt = DeepR(model, lr=0.05, alpha=1e-4, temperature=1e-8, seed=0)
    g = torch.Generator().manual_seed(0)
    for step in range(3000):
        idx = torch.randint(0, len(xtr), (32,), generator=g)
        opt.zero_grad()
        nn.functional.cross_entropy(model(xtr[idx]), ytr[idx]).backward()
        opt.step()
    acc = (model(xte).argmax(1) == yte).float().mean().item()
    assert sum(l.k for l in rewired_layers(model)) == round(0.15 * 6400) + round(0.15 * 1000)
    assert acc > 0.85, acc


@pytest.mark.parametrize("cls", [DeepR, SoftDeepR])
def test_nan_gradient_with_adam_leaves_optimizer_state_unchanged(cls):
    model, opt, (x, y) = _run(6, 20, cls, gradient="adam")
    opt.zero_grad()
    nn.functional.cross_entropy(model(x), y).backward()
    assert_nan_gradient_refused(model, opt)


def test_soft_set_with_an_unknown_key_changes_nothing():
    soft = SoftDeepR(mlp((20, 30, 10), connectivity=0.2), lr=0.1, alpha=1e-3, temperature=1e-4)
    groups = copy.deepcopy(soft.param_groups)
    with pytest.raises(ValueError, match="no hyperparameter"):
        soft.set(theta_min=-0.3, temperature=2e-4, nonsense=1)
    assert [{k: v for k, v in g.items() if k != "params"} for g in soft.param_groups] == \
           [{k: v for k, v in g.items() if k != "params"} for g in groups]


def test_both_layer_kinds_implement_the_one_interface():
    from deepr_engine import CompactLinear, Rewired, SparseConv2d
    from deepr_engine.layers import FullSize
    full = SparseLinear(6, 5, k=10)
    compact = SparseLinear(6, 5, k=10, compute="sparse")
    conv = SparseConv2d(2, 3, 3, k=20)
    assert isinstance(compact, CompactLinear) and not isinstance(compact, FullSize)
    assert not isinstance(full, CompactLinear)
    model = nn.Sequential(full, nn.ReLU(), compact)
    assert rewired_layers(model) == [full, compact]
    assert all(isinstance(m, Rewired) for m in (full, compact, conv))

    class Incomplete(Rewired, nn.Module):  # an implementation that misses methods
        pass
    with pytest.raises(TypeError, match="abstract"):
        Incomplete()


def test_sparse_refusal_says_which_methods_run_on_compact_layers():
    """SPARSE_REFUSAL is None exactly for the methods that train compact layers (the run
    config reads it): those take steps on them, the others refuse with that reason."""
    from deepr_engine import SET, Dense, L1Shrinkage, MagnitudePruning, RigL, StaticSparse
    classes = [DeepR, SoftDeepR, Dense, StaticSparse, SET, RigL, MagnitudePruning, L1Shrinkage]
    kwargs = {SoftDeepR: dict(alpha=1e-3, temperature=1e-3), SET: dict(update_every=2),
              RigL: dict(update_every=2), MagnitudePruning: dict(prune_at=2, k=20)}
    x, y = torch.randn(8, 20), torch.randint(10, (8,))
    refused = []
    for cls in classes:
        model = sparsify(nn.Sequential(nn.Linear(20, 10)), connectivity=0.3, compute="sparse")
        if cls.SPARSE_REFUSAL is not None:
            with pytest.raises(ValueError, match=re.escape(cls.SPARSE_REFUSAL)):
                cls(model, lr=0.1, **kwargs.get(cls, {}))
            refused.append(cls)
            continue
        opt = cls(model, lr=0.1, **kwargs.get(cls, {}))
        for _ in range(4):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
        layer = rewired_layers(model)[0]
        assert layer.active_idx.unique().numel() == layer.k == (20 if cls is MagnitudePruning else 60)
    assert refused == [SoftDeepR, Dense]


def test_optimizers_touch_layers_only_through_the_interface():
    """No optimizer reads or writes a layer's storage (theta, sign, weight, values, buffers)
    directly: that is what lets the same optimizer run on both layer kinds."""
    import pathlib
    import deepr_engine.optim as optim
    pattern = re.compile(r"\.(theta|weight|sign|values|theta_active|_buffers|_parameters)\b"
                         r"|active_idx(\[[^\]]*\])?\s*=[^=]")
    hits = [f"{path.name}: {line.strip()}"
            for path in pathlib.Path(optim.__file__).parent.glob("*.py")
            for line in path.read_text().splitlines()
            if pattern.search(line.replace("torch.sign(", "torch_sign("))]
    assert hits == []
