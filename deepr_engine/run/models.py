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
    if cfg.model in ("conv", "cifar-conv"):
        if image_shape is None:
            raise ValueError(f"model {cfg.model!r} needs image data (digits, mnist, mnist10k, "
                             "fashion-mnist, cifar10)")
        h, w = image_shape[-2:]
        c = n_in // (h * w)   # channels: 1 for the digit sets, 3 for cifar10 (channel-major)
        layers.append(nn.Unflatten(1, (c, h, w)))
        if cfg.model == "conv":
            layers += [nn.Conv2d(c, 8, 3, padding=1, bias=cfg.bias), act(), nn.MaxPool2d(2),
                       nn.Conv2d(8, 16, 3, padding=1, bias=cfg.bias), act(), nn.MaxPool2d(2)]
            n_in = 16 * (h // 4) * (w // 4)
        else:   # TensorFlow's CIFAR-10 tutorial net (Bellec et al. 2018, CIFAR-10 experiment),
            # without its local response normalisation: 5x5x64 conv, 3x3 stride-2 max-pool, twice
            for c_in in (c, 64):
                layers += [nn.Conv2d(c_in, 64, 5, padding=2, bias=cfg.bias), act(),
                           nn.MaxPool2d(3, stride=2, padding=1)]
                h, w = (h - 1) // 2 + 1, (w - 1) // 2 + 1
            n_in = 64 * h * w
        layers.append(nn.Flatten())
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
