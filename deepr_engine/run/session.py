"""TrainingSession: a run that can be stepped, steered and watched while it trains.

Everything the dashboard and the CLI need goes through this API: step(n), evaluate(),
set_hyperparams(...), snapshot(), telemetry, checkpoints (checkpoint.py). A lock makes
snapshot() safe to call from another thread while a worker steps.
"""
from __future__ import annotations

import contextlib
import math
import threading
import time

import numpy as np
import torch
from torch import nn

from .. import validate
from .config import RunConfig, preset
from .data import Batcher, Dataset, load_dataset
from ..device import auto_device
from ..layers import Rewired, resolve_k, rewired_layers
from .models import build_model
from ..optim import SET, Dense, L1Shrinkage, MagnitudePruning, RigL, StaticSparse
from ..optim import DeepR, SoftDeepR
from .telemetry import Telemetry

BASELINES = {"dense": Dense, "static": StaticSparse, "set": SET, "rigl": RigL,
             "magnitude": MagnitudePruning, "l1": L1Shrinkage}
LIVE_FIELDS = ("lr", "alpha", "temperature", "noise_scale", "k", "connectivity", "theta_min",
               "batch_size", "eval_every", "lr_decay")


def make_optimizer(cfg: RunConfig, model: nn.Module):
    """The config's optimizer; sparse methods start from the model's current masks."""
    t = cfg.effective_temperature()
    common = dict(gradient=cfg.gradient, seed=cfg.seed)
    if cfg.algorithm in BASELINES:
        kind = BASELINES[cfg.algorithm]
        extra = {}
        if cfg.algorithm in ("set", "rigl"):
            extra = dict(update_every=cfg.update_every, drop_fraction=cfg.drop_fraction)
        if cfg.algorithm == "rigl":
            extra["t_end"] = cfg.t_end or max(1, cfg.steps * 3 // 4)
        if cfg.algorithm == "magnitude":
            extra = dict(prune_at=cfg.prune_at or cfg.steps // 2, prune_events=cfg.prune_events,
                         prune_every=cfg.update_every)
        if cfg.algorithm == "l1":
            extra = dict(threshold=cfg.l1_threshold)
        if cfg.algorithm in ("magnitude", "l1"):  # they start dense: K is the target / floor
            extra["k"] = [l.k for l in rewired_layers(model)]
        return kind(model, lr=cfg.lr, alpha=cfg.alpha if cfg.algorithm == "l1" else 0.0,
                    **extra, **common)
    if cfg.algorithm == "soft-deepr":
        return SoftDeepR(model, lr=cfg.lr, alpha=cfg.alpha, temperature=t,
                         theta_min=cfg.theta_min if cfg.theta_min < 0 else None,
                         gradient=cfg.gradient, seed=cfg.seed)
    return DeepR(model, lr=cfg.lr, alpha=cfg.alpha, temperature=t, global_k=cfg.global_k,
                 gradient=cfg.gradient, seed=cfg.seed)


class TrainingSession:
    def __init__(self, config: RunConfig | dict | str = "digits-demo", *,
                 data: Dataset | None = None, n_tracked: int = 24, telemetry_capacity: int = 1024):
        if isinstance(config, str):
            config = preset(config)
        elif isinstance(config, dict):
            config = RunConfig.from_dict(config)
        self.config = config.validate()
        self.device = auto_device(config.device)
        self.data = data or load_dataset(
            config.dataset, n_samples=config.n_samples, noise=config.noise, seed=config.seed,
            device=self.device, root=config.data_root or None, download=config.download,
            val_fraction=config.val_fraction)
        self.model = build_model(config, self.data.n_features, self.data.n_classes,
                                 self.data.image_shape).to(self.device)
        self.layers: list[Rewired] = rewired_layers(self.model)
        self.optimizer = make_optimizer(config, self.model)
        self.batcher = Batcher(len(self.data.x_train), config.batch_size, self.device, config.seed)
        self.lr = config.lr                    # current lr (decays per epoch)
        self.step_count = 0
        self.paused_reason: str | None = None  # set when the run diverged
        self.lock = threading.RLock()
        self._readers_waiting = 0
        self.telemetry = Telemetry([l.n_positions for l in self.layers], self.device,
                                   telemetry_capacity)
        self.telemetry.start(self.layers)
        self.track_default(n_tracked)
        self.last = {"loss": float("nan"), "train_acc": float("nan"), "test_acc": float("nan"),
                     "test_loss": float("nan")}
        self.steps_per_second = 0.0
        self.train_seconds = 0.0               # wall time spent in step()
        self.evaluate()

    # -- stepping ----------------------------------------------------------------------------
    def step(self, n: int = 1) -> int:
        """Run up to n minibatch steps; returns how many ran (fewer if the run diverged)."""
        validate.integer("n", n, low=0, high=10**9)
        done = 0
        t0 = time.perf_counter()
        for _ in range(n):
            while self._readers_waiting:  # readers (snapshots) go first: the lock is not fair
                time.sleep(0.0002)
            with self.lock:
                if self.paused_reason is not None or not self._one_step():
                    break
            done += 1
        self.train_seconds += time.perf_counter() - t0
        if done:
            rate = done / max(time.perf_counter() - t0, 1e-9)
            self.steps_per_second = rate if self.steps_per_second == 0 else \
                0.8 * self.steps_per_second + 0.2 * rate
        return done

    def _one_step(self) -> bool:
        epoch = self.batcher.epoch
        idx = self.batcher.next()
        if self.batcher.epoch != epoch and self.config.lr_decay != 1.0:
            self._apply({"lr": self.lr * self.config.lr_decay}, log=False)
        x, y = self.data.x_train[idx], self.data.y_train[idx]
        out = self.model(x)
        loss = nn.functional.cross_entropy(out, y)
        acc = (out.argmax(1) == y).float().mean()
        loss_v, acc_v = torch.stack([loss.detach(), acc]).tolist()  # one sync per step
        if not math.isfinite(loss_v):
            return self._diverged(f"loss is {loss_v}")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        try:
            self.optimizer.step()
        except FloatingPointError as exc:
            return self._diverged(str(exc))
        self.step_count += 1
        self.last.update(loss=loss_v, train_acc=acc_v)
        self.telemetry.record_step(self.step_count, loss_v, acc_v, self.layers,
                                   self.optimizer.last_events)
        if self.step_count % self.config.eval_every == 0:
            self.evaluate()
        return True

    def _diverged(self, why: str) -> bool:
        self.paused_reason = (f"diverged at step {self.step_count + 1} ({why}); paused with the "
                              f"state of step {self.step_count}. Lower lr or temperature, then resume.")
        self.telemetry.notes.append((self.step_count, self.paused_reason))
        return False

    def resume(self) -> None:
        """Clear a divergence pause (after changing what made it diverge)."""
        with self.lock:
            self.paused_reason = None

    @torch.no_grad()
    def _accuracy_loss(self, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
        was = self.model.training
        self.model.eval()
        correct, total_loss = 0.0, 0.0
        for s in range(0, len(x), 4096):
            out = self.model(x[s:s + 4096])
            total_loss += float(nn.functional.cross_entropy(out, y[s:s + 4096], reduction="sum"))
            correct += float((out.argmax(1) == y[s:s + 4096]).sum())
        self.model.train(was)
        return correct / len(x), total_loss / len(x)

    def evaluate(self) -> dict:
        """Test accuracy and loss (recorded in telemetry), and validation accuracy and loss
        when the config holds out a validation split."""
        with self.lock:
            acc, loss = self._accuracy_loss(self.data.x_test, self.data.y_test)
            out = {"test_acc": acc, "test_loss": loss}
            if self.data.x_val is not None:
                out["val_acc"], out["val_loss"] = self._accuracy_loss(self.data.x_val, self.data.y_val)
            self.last.update(out)
            self.telemetry.record_eval(self.step_count, acc, loss, self.dead_units())
            return out

    def dead_units(self) -> list[int]:
        """Per hidden layer: units with no incoming or no outgoing active connection."""
        linear = [l for l in self.layers if l.theta.dim() == 2]
        dead = []
        for a, b in zip(linear[:-1], linear[1:]):
            no_in = ~a.active_mask().any(1)
            no_out = ~b.active_mask().any(0)
            if no_in.shape == no_out.shape:
                dead.append(int((no_in | no_out).sum()))
        return dead

    # -- steering ----------------------------------------------------------------------------
    def set_hyperparams(self, **changes) -> None:
        """Change lr, alpha, temperature, noise_scale, k / connectivity, theta_min, batch_size,
        eval_every, lr_decay; validated together (a bad value changes nothing), applied before
        the next step and logged as (step, name, old, new)."""
        unknown = set(changes) - set(LIVE_FIELDS)
        if unknown:
            raise ValueError(f"cannot change {sorted(unknown)} live; allowed: {', '.join(LIVE_FIELDS)}")
        with self.lock:
            self._apply(changes, log=True)

    def _apply(self, changes: dict, log: bool) -> None:
        cfg_changes = {k: v for k, v in changes.items() if k not in ("k", "lr")}
        if "connectivity" in changes:
            c = changes["connectivity"]
            cfg_changes["connectivity"] = list(c) if isinstance(c, (list, tuple)) else [c]
        if "theta_min" in changes and changes["theta_min"] is None:
            cfg_changes["theta_min"] = 0.0
        new_cfg = self.config.replace(**cfg_changes)  # validates every field
        lr = validate.finite("lr", changes.get("lr", self.lr), low=0.0, high=100.0, low_open=True)
        ks = None
        if "k" in changes:
            kk = validate.per_layer("k", changes["k"], len(self.layers))
            ks = [resolve_k(k_i, None, l.n_positions, name=f"k[{i}]")
                  for i, (l, k_i) in enumerate(zip(self.layers, kk))]
        if "batch_size" in changes:
            validate.integer("batch_size", changes["batch_size"], low=1, high=len(self.data.x_train))
        old = self.hyperparams()
        # all valid: apply
        opt_changes = dict(lr=lr, alpha=new_cfg.alpha, temperature=new_cfg.effective_temperature(lr))
        if new_cfg.algorithm in BASELINES:  # no noise; L1 only for L1 shrinkage
            opt_changes = dict(lr=lr) | ({"alpha": new_cfg.alpha} if new_cfg.algorithm == "l1" else {})
        shapes = [tuple(l.theta.shape) for l in self.layers]
        if isinstance(self.optimizer, SoftDeepR):
            if "theta_min" in changes:
                opt_changes["theta_min"] = new_cfg.theta_min if new_cfg.theta_min < 0 else None
            if "connectivity" in changes:
                opt_changes["target_connectivity"] = new_cfg.layer_connectivity(shapes)
            self.optimizer.set(**opt_changes)
        else:
            if ks is not None:
                opt_changes["k"] = ks
            elif "connectivity" in changes:
                opt_changes["connectivity"] = new_cfg.layer_connectivity(shapes)
            self.optimizer.set(**opt_changes)
            if ks is not None or "connectivity" in changes:
                self.telemetry.record_rewiring(self.step_count, self.layers, self.optimizer.last_events)
        self.config = new_cfg.replace(lr=self.config.lr)  # config keeps the starting lr
        self.lr = lr
        if "batch_size" in changes:
            self.batcher.batch_size = int(changes["batch_size"])
        if log:
            new = self.hyperparams()
            for name in new:
                if new[name] != old[name]:
                    self.telemetry.changes.append((self.step_count, name, old[name], new[name]))

    def hyperparams(self) -> dict:
        g = self.optimizer.rewired_groups
        out = {"lr": self.lr, "alpha": g[0]["alpha"], "temperature": g[0]["temperature"],
               "batch_size": self.batcher.batch_size, "k": [l.k for l in self.layers],
               "eval_every": self.config.eval_every, "lr_decay": self.config.lr_decay}
        if isinstance(self.optimizer, SoftDeepR):
            out["theta_min"] = [gr["theta_min"] for gr in g]
        return out

    # -- watching ----------------------------------------------------------------------------
    def track_default(self, n: int = 24) -> None:
        """Track a seeded random sample of connections, half active and half dormant now."""
        rng = np.random.default_rng(self.config.seed + 1)
        layer_ids, positions = [], []
        for i, layer in enumerate(self.layers):
            mask = layer.active_mask().view(-1).cpu().numpy()
            per = max(1, n // (2 * len(self.layers)))
            for pool in (np.nonzero(mask)[0], np.nonzero(~mask)[0]):
                take = rng.choice(pool, size=min(per, len(pool)), replace=False) if len(pool) else []
                layer_ids += [i] * len(take)
                positions += list(take)
        self.track(layer_ids, positions)

    def track(self, layer_index, positions) -> None:
        """Choose which connections' theta walks are recorded: (layer index, flat position)."""
        layer_index = np.asarray(layer_index, dtype=np.int64)
        positions = np.asarray(positions, dtype=np.int64)
        if layer_index.shape != positions.shape or layer_index.ndim != 1 or len(positions) > 512:
            raise ValueError("track needs two equal-length lists (at most 512) of layer index and position")
        for i, p in zip(layer_index, positions):
            if not 0 <= i < len(self.layers) or not 0 <= p < self.layers[i].n_positions:
                raise ValueError(f"tracked connection ({i}, {p}) is outside the network: layer "
                                 f"must be in [0, {len(self.layers) - 1}] and position within the layer")
        with self.lock:
            self.telemetry.track(layer_index, positions)
            self.telemetry.tracked_theta.add(self.step_count, self.telemetry.tracked_values(self.layers))

    @contextlib.contextmanager
    def reading(self):
        """Hold the session still for a reader (another thread); a stepping worker yields."""
        self._readers_waiting += 1
        try:
            with self.lock:
                yield self
        finally:
            self._readers_waiting -= 1

    def snapshot(self, weights: bool = True) -> dict:
        """A plain, detached CPU copy for drawing: per layer theta, sign, active mask, weight;
        the latest metrics, events of the last step, hyperparameters and status."""
        with self.reading():
            layers = []
            for i, (layer, ev) in enumerate(zip(self.layers, self.optimizer.last_events)):
                entry = {"index": i, "shape": tuple(layer.theta.shape), "k": layer.k,
                         "n_positions": layer.n_positions,
                         "pruned": ev["pruned"].cpu().numpy(), "activated": ev["activated"].cpu().numpy()}
                if weights:
                    theta = layer.theta.detach().cpu().numpy().copy()
                    entry.update(theta=theta, sign=layer.sign.cpu().numpy().astype(np.int8),
                                 active=theta >= 0, weight=layer.weight.detach().cpu().numpy().copy())
                layers.append(entry)
            return {"step": self.step_count, "layers": layers, "metrics": dict(self.last),
                    "hyperparams": self.hyperparams(), "paused_reason": self.paused_reason,
                    "algorithm": self.config.algorithm, "steps_per_second": self.steps_per_second,
                    "epoch": self.batcher.epoch}

    @torch.no_grad()
    def predict_grid(self, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        """Class-1 probability (or arg-max class for more classes) on a 2-D grid; 2-D data only."""
        if not self.data.is_2d:
            raise ValueError("predict_grid needs a 2-D data set")
        gx, gy = np.meshgrid(xs, ys)
        pts = torch.tensor(np.stack([gx.ravel(), gy.ravel()], 1), dtype=torch.float32,
                           device=self.device)
        with self.lock:
            p = torch.softmax(self.model(pts), 1)
        out = p[:, 1] if p.shape[1] == 2 else p.argmax(1).float()
        return out.cpu().numpy().reshape(gx.shape)

    def metrics_csv(self) -> str:
        """Train and test metrics as CSV (step, series, value)."""
        lines = ["step,series,value"]
        for name, s in self.telemetry.series.items():
            steps, vals = s.arrays()
            lines += [f"{st},{name},{v:.6g}" for st, v in zip(steps, vals)]
        for name in ("pruned", "activated", "active"):
            steps, vals = getattr(self.telemetry, name).arrays()
            for st, row in zip(steps, vals):
                lines += [f"{st},{name}[{i}],{v:.6g}" for i, v in enumerate(np.atleast_1d(row))]
        return "\n".join(lines) + "\n"
