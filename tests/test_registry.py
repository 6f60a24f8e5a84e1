"""The algorithm registry, the methods' own hyperparameters, and what a rewired layer must
survive: foreign writes, LR schedulers, global K changes, float64, conv models from configs."""
import pytest
import torch
from torch import nn

from deepr_engine import DeepR, rewired_layers
from deepr_engine.hyper import Hyper, declare
from deepr_engine.optim import SET, MagnitudePruning, RigL, StaticSparse
from deepr_engine.run import checkpoint, registry
from deepr_engine.run.cli import main as cli_main
from deepr_engine.run.config import preset
from deepr_engine.run.session import TrainingSession, live_fields
from helpers import mlp, train_steps


class Damped(StaticSparse):
    """A toy method: a static mask whose weights shrink by `damping` after every step. Its new
    hyperparameter is one declaration; the rest of the project derives from it."""

    HYPER = declare(Hyper("damping", 0.5, 0.0, 1.0, "toy: every weight shrinks by this fraction "
                          "after each step", scale="fraction", label="Damping"))

    def __init__(self, model, lr, *, damping=0.5, **kw):
        super().__init__(model, lr, damping=damping, **kw)

    def shrink(self, group, w):
        return w * (1 - group["damping"])


@pytest.fixture
def toy():
    # one entry: its name, label and optimizer (which declares its own hyperparameters)
    registry.register(registry.Algorithm("toy", "Toy damping", Damped))
    yield "toy"
    registry.unregister("toy")


def data(n=64, d=20, classes=10):
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, d, generator=g), torch.randint(classes, (n,), generator=g)


def test_a_registered_method_runs_through_a_session_and_the_cli(toy, tmp_path):
    cfg = preset("spiral-demo").replace(algorithm=toy, damping=0.25, steps=20)
    assert cfg.damping == 0.25 and cfg.to_dict()["damping"] == 0.25
    s = TrainingSession(cfg)
    assert isinstance(s.optimizer, Damped) and s.optimizer.hyper("damping") == 0.25
    w0 = [l.weight.detach().abs().sum().item() for l in s.layers]
    assert s.step(20) == 20
    assert "damping" in live_fields(toy) and "temperature" not in live_fields(toy)
    s.set_hyperparams(damping=0.9)
    assert s.optimizer.hyper("damping") == 0.9 and s.hyperparams()["damping"] == 0.9
    assert s.telemetry.changes[-1][1:] == ("damping", 0.25, 0.9)
    s.step(5)
    assert all(l.weight.detach().abs().sum().item() < 0.5 * w for l, w in zip(s.layers, w0))
    with pytest.raises(ValueError, match="cannot change.*temperature"):
        s.set_hyperparams(temperature=1e-5)
    with pytest.raises(ValueError, match="damping must be in \\[0, 1\\], got 2"):
        s.set_hyperparams(damping=2.0)
    out = tmp_path / "run"
    assert cli_main(["train", "--preset", "spiral-demo", "--algorithm", toy, "--damping", "0.75",
                     "--steps", "10", "--quiet", "--out", str(out)]) == 0
    back = checkpoint.load(out / "checkpoint.safetensors")   # the extra setting survives a checkpoint
    assert back.config.damping == 0.75 and back.optimizer.hyper("damping") == 0.75


def test_an_unknown_method_is_refused_with_the_registered_names():
    with pytest.raises(ValueError, match="algorithm must be one of deepr, soft-deepr"):
        preset("digits-demo").replace(algorithm="nope")


@pytest.mark.parametrize("cls, bad", [(SET, "temperature"), (RigL, "alpha"), (StaticSparse, "temperature"),
                                      (MagnitudePruning, "drop_fraction")])
def test_a_method_refuses_a_hyperparameter_it_does_not_have(cls, bad):
    opt = cls(mlp(), lr=0.1)
    with pytest.raises(ValueError, match=f"has no hyperparameter.*{bad}"):
        opt.set(**{bad: 0.1})
    with pytest.raises(ValueError, match=bad):
        cls(mlp(), lr=0.1, **{bad: 0.1})


def test_schedule_parameters_live_in_param_groups_and_state_dict():
    model = mlp()
    opt = RigL(model, lr=0.1, update_every=5, drop_fraction=0.3, t_end=100)
    x, y = data()
    opt.set(update_every=3, t_end=50)
    assert all(g["update_every"] == 3 and g["t_end"] == 50 for g in opt.param_groups)
    changed = []
    train_steps(model, opt, 9, x, y, lambda: changed.append(sum(len(e["pruned"]) for e in opt.last_events)))
    assert [i + 1 for i, c in enumerate(changed) if c] == [3, 6, 9]  # the new interval is in force
    sd = opt.state_dict()
    twin = RigL(mlp(), lr=0.1)
    twin.load_state_dict(sd)
    assert twin.hyper("update_every") == 3 and twin.hyper("t_end") == 50


def test_a_foreign_write_to_a_rewired_weight_is_detected_at_the_next_step():
    model = mlp()
    opt = DeepR(model, lr=0.1, alpha=1e-3)
    sgd = torch.optim.SGD(model.parameters(), lr=0.1)  # the mistake: rewired weights included
    x, y = data()
    nn.functional.cross_entropy(model(x), y).backward()
    sgd.step()  # writes every position, dormant ones too
    with pytest.raises(RuntimeError, match="changed outside its rewiring optimizer"):
        opt.step()
    for layer in rewired_layers(model):  # the documented way back: weight from theta again
        layer.sync_weight()
    opt.step()
    for layer in rewired_layers(model):
        assert torch.equal(layer.weight.detach(), layer.effective_weight())


def test_an_lr_scheduler_drives_deepr():
    model = mlp()
    opt = DeepR(model, lr=0.2, alpha=1e-3, temperature=1e-6)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=10, gamma=0.5)
    x, y = data()
    for _ in range(30):
        train_steps(model, opt, 1, x, y)
        sched.step()
    assert all(g["lr"] == pytest.approx(0.025) for g in opt.param_groups)
    # zero gradient, no noise: theta moves by exactly lr * alpha, with the scheduled lr
    layer = rewired_layers(model)[0]
    opt.zero_grad(set_to_none=True)
    opt.set(temperature=0.0)
    before = layer.theta.view(-1)[layer.active_idx].clone()
    keep = before > 1e-3  # these cannot die in one step
    opt.step()
    after = layer.theta.view(-1)[layer.active_idx]
    assert torch.allclose((before - after)[keep], torch.full_like(before[keep], 0.025 * 1e-3), atol=1e-6)


def test_a_live_global_k_change_keeps_the_new_total_exact():
    model = mlp((20, 30, 10), connectivity=0.2)
    opt = DeepR(model, lr=0.1, alpha=1e-3, temperature=1e-5, global_k=True)
    x, y = data()
    train_steps(model, opt, 10, x, y)
    total = sum(l.n_positions for l in rewired_layers(model))
    opt.set(k=150)
    assert sum(l.k for l in rewired_layers(model)) == 150
    train_steps(model, opt, 30, x, y, lambda: None)
    assert sum(l.k for l in rewired_layers(model)) == 150 == opt.total_k
    opt.set(connectivity=0.4)
    assert sum(l.k for l in rewired_layers(model)) == round(0.4 * total)
    with pytest.raises(ValueError, match="one total"):
        opt.set(k=[10, 10])


def test_float64_layers_train_with_deepr():
    model = mlp().double()
    opt = DeepR(model, lr=0.1, alpha=1e-3, temperature=1e-6)
    x, y = data()
    train_steps(model, opt, 50, x.double(), y)
    for layer in rewired_layers(model):
        assert layer.theta.dtype == layer.weight.dtype == torch.float64
        assert torch.equal(layer.weight.detach(), layer.effective_weight())
        assert (layer.theta >= 0).sum() == layer.k


def test_a_conv_model_from_a_run_config():
    s = TrainingSession(preset("digits-demo").replace(model="conv", hidden=[16], connectivity=[0.5], lr=0.3))
    kinds = [type(l).__name__ for l in s.layers]
    assert kinds == ["SparseConv2d", "SparseConv2d", "SparseLinear", "SparseLinear"]
    acc0 = s.last["test_acc"]
    s.step(300)
    assert s.evaluate()["test_acc"] > max(0.6, acc0 + 0.4)  # 0.82 measured; chance is 0.1


@pytest.mark.slow
def test_proportional_global_revival_follows_the_initial_k_and_keeps_the_total():
    model = mlp((20, 30, 10), connectivity=[0.1, 0.6])
    opt = DeepR(model, lr=0.1, alpha=5e-2, temperature=1e-4, global_k=True, revive="proportional")
    layers = rewired_layers(model)
    k0 = [l.k for l in layers]
    x, y = data()
    revived = torch.zeros(2)
    for _ in range(300):
        train_steps(model, opt, 1, x, y)
        revived += torch.tensor([len(e["activated"]) for e in opt.last_events], dtype=torch.float)
        assert sum(l.k for l in layers) == sum(k0)
    share = revived / revived.sum()
    expected = torch.tensor(k0, dtype=torch.float) / sum(k0)
    # multinomial shares over hundreds of revivals: within 0.05 of k0 / sum(k0)
    assert revived.sum() > 300 and torch.allclose(share, expected, atol=0.05), (share, expected)
    twin = DeepR(mlp((20, 30, 10), connectivity=[0.1, 0.6]), lr=0.1, global_k=True, revive="proportional")
    twin.load_state_dict(opt.state_dict())
    assert twin.initial_k == k0
    with pytest.raises(ValueError, match="revive must be one of uniform, proportional"):
        DeepR(mlp(), lr=0.1, revive="sometimes")
