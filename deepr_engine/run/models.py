"""Rewired networks built from a RunConfig: an MLP, or a small conv net (conv layers rewired too)."""
from __future__ import annotations

import torch
from torch import nn

from .config import RunConfig
from ..layers import sparsify

_ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}


def dense_model(cfg: RunConfig, n_in: int, n_out: int,
                image_shape: tuple[int, int] | None = None) -> nn.Sequential:
    act = _ACTIVATIONS[cfg.activation]
    layers: list[nn.Module] = []
    if cfg.model == "conv":
        if image_shape is None:
            raise ValueError("model 'conv' needs image data (digits, mnist, fashion-mnist)")
        h, w = image_shape
        layers += [nn.Unflatten(1, (1, h, w)), nn.Conv2d(1, 8, 3, padding=1, bias=cfg.bias), act(),
                   nn.MaxPool2d(2), nn.Conv2d(8, 16, 3, padding=1, bias=cfg.bias), act(),
                   nn.MaxPool2d(2), nn.Flatten()]
        n_in = 16 * (h // 4) * (w // 4)
    sizes = [n_in, *cfg.hidden, n_out]
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b, bias=cfg.bias))
        if i < len(sizes) - 2:
            layers.append(act())
    return nn.Sequential(*layers)


def build_model(cfg: RunConfig, n_in: int, n_out: int,
                image_shape: tuple[int, int] | None = None) -> nn.Sequential:
    """The config's network with every Linear/Conv2d rewired at its connectivity. Seeded
    throughout: the default init of the dense modules (biases) draws from a generator seeded
    with cfg.seed, not from whatever state the global one is in."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        # compute="sparse": the dense modules are only a blueprint, never allocated (meta)
        with torch.device("meta" if cfg.compute == "sparse" else "cpu"):
            model = dense_model(cfg, n_in, n_out, image_shape)
    shapes = [tuple(m.weight.shape) for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    return sparsify(model, connectivity=cfg.layer_connectivity(shapes), seed=cfg.seed,
                    compute=cfg.compute)
