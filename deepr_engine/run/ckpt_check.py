"""A checkpoint's tensors checked against what its config implies, before any model is built.

`Plan` holds what a config means for a checkpoint: the rewired layers' weight shapes (from
models.dense_model on the meta device: nothing allocated), the training set size and the
generator state sizes. `check_header` compares every tensor's name, dtype and shape (read
from the safetensors header, no tensor loaded) with it; `check_values` then reads the values:
active positions integer, in range and unique (and equal to theta >= 0 in full-size layers),
floats finite, signs +1/-1, the batch order a permutation of the training set, generator
states valid, the telemetry ledgers in range. Every error names the tensor and what is allowed;
the JSON parts are checked in ckpt_meta.py.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..device import auto_device
from .config import RunConfig
from .data import Dataset, load_dataset
from .models import dense_model
from .telemetry import SPARSE_LEDGER_ABOVE

# safetensors dtype names of the tensors a checkpoint holds
F32, I64, U8 = "F32", "I64", "U8"
MOMENTS = ("momentum_buffer", "exp_avg", "exp_avg_sq")   # RewiringOptimizer's per-param state


def dataset_for(cfg: RunConfig) -> Dataset:
    """The data a session of this config trains on (as TrainingSession loads it)."""
    return load_dataset(cfg.dataset, n_samples=cfg.n_samples, noise=cfg.noise, seed=cfg.seed,
                        device=auto_device(cfg.device), root=cfg.data_root or None,
                        download=cfg.download, val_fraction=cfg.val_fraction)


def layer_shapes(cfg: RunConfig, n_in: int, n_out: int,
                 image_shape: tuple[int, int] | None = None) -> list[tuple[str, tuple[int, ...]]]:
    """(module name, weight shape) of each rewired layer, without allocating the model."""
    with torch.device("meta"):
        model = dense_model(cfg, n_in, n_out, image_shape)
    return [(name, tuple(m.weight.shape)) for name, m in model.named_modules()
            if isinstance(m, (nn.Linear, nn.Conv2d))]


class Plan:
    """What a config implies for its checkpoint's tensors."""

    def __init__(self, cfg: RunConfig, data: Dataset):
        self.cfg = cfg
        self.layers = layer_shapes(cfg, data.n_features, data.n_classes, data.image_shape)
        self.positions = [math.prod(s) for _, s in self.layers]
        self.n_train = len(data.x_train)
        dev = auto_device(cfg.device)
        self.opt_generator = torch.Generator(device=dev).get_state().numel()
        self.cpu_generator = torch.Generator().get_state().numel()
        self.ks: list[int] = []   # active connections per layer, read from the header

    def layer_name(self, i: int) -> str:
        return f"layer {i} ({'x'.join(map(str, self.layers[i][1]))})"


def _shape(header: dict, key: str) -> tuple[str, tuple[int, ...]]:
    entry = header.get(key)
    if not isinstance(entry, dict) or "dtype" not in entry or "shape" not in entry:
        raise ValueError(f"{key}: missing")
    return entry["dtype"], tuple(int(n) for n in entry["shape"])


def _expect(header: dict, key: str, dtype: str, shape: tuple[int, ...]) -> None:
    got_dtype, got_shape = _shape(header, key)
    if got_dtype != dtype or got_shape != shape:
        raise ValueError(f"{key}: expected {dtype} of shape {list(shape)}, got {got_dtype} of "
                         f"shape {list(got_shape)}")


def _length(header: dict, key: str) -> int:
    dtype, shape = _shape(header, key)
    if dtype != I64 or len(shape) != 1:
        raise ValueError(f"{key}: expected I64 of shape [n], got {dtype} of shape {list(shape)}")
    return shape[0]


def check_header(plan: Plan, header: dict) -> None:
    """Names, dtypes and shapes of every tensor (the safetensors header's entries), against the
    config's plan. Nothing is loaded; a config far larger than its tensors is refused here."""
    cfg, expected = plan.cfg, set()
    params: list[tuple[int, ...]] = []   # the optimizer's param order: rewired, then biases
    biases: list[tuple[int, ...]] = []
    plan.ks = []
    for i, ((name, shape), n) in enumerate(zip(plan.layers, plan.positions)):
        pre = f"model.{name}."
        dtype, kshape = _shape(header, pre + "active_idx")
        if dtype != I64 or len(kshape) != 1 or kshape[0] > n:
            raise ValueError(f"{pre}active_idx ({plan.layer_name(i)}): expected I64 of shape [K] "
                             f"with K <= {n} positions, got {dtype} of shape {list(kshape)}")
        k = kshape[0]
        plan.ks.append(k)
        if cfg.compute == "sparse":
            own = {"values": (F32, (k,)), "theta_active": (F32, (k,)), "sign_seed": (I64, ())}
            params.append((k,))
        else:
            own = {"weight": (F32, shape), "theta": (F32, shape), "sign": (F32, shape)}
            params.append(shape)
        if cfg.bias:
            own["bias"] = (F32, (shape[0],))
            biases.append((shape[0],))
        for key, (dt, sh) in own.items():
            _expect(header, pre + key, dt, sh)
        expected |= {pre + key for key in own} | {pre + "active_idx"}
        t = f"telemetry.{{}}.{i}"
        if n > SPARSE_LEDGER_ABOVE:
            nb, ne = (_length(header, t.format(key)) for key in ("born_pos", "ever_pos"))
            ledger = {"born_pos": (I64, (nb,)), "born_step": (I64, (nb,)),
                      "ever_pos": (I64, (ne,)), "ever_full": (I64, (1,))}
        else:
            ledger = {"ever_active": (U8, (n,)), "born": (I64, (n,))}
        for key, (dt, sh) in ledger.items():
            _expect(header, t.format(key), dt, sh)
        expected |= {t.format(key) for key in ledger}
    params += biases
    for key in header:
        if key.startswith("opt.") and key != "opt.generator":
            pid, _, name = key[4:].partition(".")
            if not pid.isdigit() or int(pid) >= len(params) or name not in MOMENTS:
                raise ValueError(f"{key}: not an optimizer state of this config (expected "
                                 f"opt.<param 0-{len(params) - 1}>.<{' | '.join(MOMENTS)}>)")
            _expect(header, key, F32, params[int(pid)])
            expected.add(key)
    for key, dt, sh in (("opt.generator", U8, (plan.opt_generator,)),
                        ("batch.generator", U8, (plan.cpu_generator,)),
                        ("batch.order", I64, (plan.n_train,))):
        _expect(header, key, dt, sh)
        expected.add(key)
    extra = sorted(set(header) - expected - {"__metadata__"})
    if extra:
        raise ValueError(f"unexpected tensor(s) {extra[:5]} for this config")


def _finite(key: str, t: torch.Tensor) -> None:
    bad = int((~torch.isfinite(t)).sum())
    if bad:
        raise ValueError(f"{key}: {bad} value(s) not finite (NaN or inf)")


def _positions(key: str, t: torch.Tensor, n: int, *, sorted_unique: bool = False) -> None:
    """Flat positions: in [0, n) and unique (sorted too, where the reader searches them)."""
    out = int(((t < 0) | (t >= n)).sum())
    if out:
        raise ValueError(f"{key}: {out} position(s) out of range [0, {n})")
    if sorted_unique:
        if t.numel() > 1 and not bool((t[1:] > t[:-1]).all()):
            raise ValueError(f"{key}: positions must be sorted and unique")
    elif t.numel() > 1:
        s = t.sort().values
        dup = int((s[1:] == s[:-1]).sum())
        if dup:
            raise ValueError(f"{key}: {dup} repeated position(s); each active position once")


def _generator(key: str, state: torch.Tensor, device) -> None:
    try:
        torch.Generator(device=device).set_state(state)
    except RuntimeError as exc:
        raise ValueError(f"{key}: not a valid random generator state ({exc})") from exc


def check_values(plan: Plan, tensors: dict[str, torch.Tensor], step_count: int) -> None:
    """The values of tensors that passed check_header (vectorised; no per-connection loop)."""
    cfg = plan.cfg
    for i, ((name, _), n) in enumerate(zip(plan.layers, plan.positions)):
        pre = f"model.{name}."
        idx = tensors[pre + "active_idx"]
        try:
            _positions(pre + "active_idx", idx, n)
        except ValueError as exc:
            raise ValueError(f"{plan.layer_name(i)} {exc}") from None
        for key in ("values", "theta_active", "bias") if cfg.compute == "sparse" else \
                ("weight", "theta", "sign", "bias"):
            if pre + key in tensors:
                _finite(pre + key, tensors[pre + key])
        if cfg.compute == "sparse":
            if int((tensors[pre + "theta_active"] < 0).sum()):
                raise ValueError(f"{pre}theta_active: active connections have theta >= 0")
        else:
            sign = tensors[pre + "sign"]
            if not bool(((sign == 1) | (sign == -1)).all()):
                raise ValueError(f"{pre}sign: every entry must be +1 or -1")
            active = tensors[pre + "theta"].reshape(-1) >= 0
            if int(active.sum()) != idx.numel() or not bool(active[idx].all()):
                raise ValueError(f"{pre}active_idx ({plan.layer_name(i)}): must list exactly the "
                                 f"positions with theta >= 0 ({int(active.sum())} of them), got "
                                 f"{idx.numel()} position(s)")
        t = f"telemetry.{{}}.{i}"
        if n > SPARSE_LEDGER_ABOVE:
            _positions(t.format("born_pos"), tensors[t.format("born_pos")], n, sorted_unique=True)
            _positions(t.format("ever_pos"), tensors[t.format("ever_pos")], n, sorted_unique=True)
            born = tensors[t.format("born_step")]
            if int(tensors[t.format("ever_full")][0]) not in (0, 1):
                raise ValueError(f"{t.format('ever_full')}: must be 0 or 1")
        else:
            born = tensors[t.format("born")]
            if int((tensors[t.format("ever_active")] > 1).sum()):
                raise ValueError(f"{t.format('ever_active')}: entries must be 0 or 1")
        if born.numel() and (int(born.min()) < 0 or int(born.max()) > step_count):
            raise ValueError(f"{t.format('born')}: birth steps must be in [0, {step_count}] "
                             "(the checkpoint's step)")
    for key, v in tensors.items():
        if key.startswith("opt.") and key != "opt.generator":
            _finite(key, v)
    order = tensors["batch.order"]
    if not torch.equal(order.sort().values, torch.arange(plan.n_train)):
        raise ValueError(f"batch.order: must be a permutation of the {plan.n_train} training "
                         "examples (each index in [0, n) exactly once)")
    _generator("opt.generator", tensors["opt.generator"], auto_device(cfg.device))
    _generator("batch.generator", tensors["batch.generator"], "cpu")
