"""Small models and loops the engine tests share."""
import copy
import time

import pytest
import torch
from torch import nn

from deepr_engine import rewired_layers, sparsify


def mlp(sizes=(20, 30, 10), bias=False, connectivity=0.2, seed=0):
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b, bias=bias))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return sparsify(nn.Sequential(*layers), connectivity=connectivity, seed=seed)


def train_steps(model, opt, n, x, y, check=None):
    for _ in range(n):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        if check is not None:
            check()


def assert_nan_gradient_refused(model, opt):
    """Put a NaN into one active gradient (the gradients must be set): step() raises and
    neither the model nor the optimizer's state changes."""
    state = copy.deepcopy(opt.state_dict()["state"])
    params = {k: v.clone() for k, v in model.state_dict().items()}
    l0 = rewired_layers(model)[0]
    l0.weight.grad.view(-1)[l0.active_idx[0]] = float("nan")
    with pytest.raises(FloatingPointError):
        opt.step()
    for k, v in model.state_dict().items():
        assert torch.equal(v, params[k]), k
    assert opt.state_dict()["state"].keys() == state.keys()
    for pid, st in opt.state_dict()["state"].items():
        for name, v in st.items():
            assert torch.equal(torch.as_tensor(v), torch.as_tensor(state[pid][name])), name


def wait_until(cond, timeout: float = 20.0) -> bool:
    """Poll cond() every 50 ms until it holds or `timeout` seconds pass; its last value."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return cond()
