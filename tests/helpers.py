"""Small models and loops the engine tests share."""
from torch import nn

from deepr_engine import sparsify


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
