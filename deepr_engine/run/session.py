"""TrainingSession: a run that can be stepped, steered and watched while it trains.

Everything the dashboard and the CLI need goes through this API: step(n), evaluate(),
set_hyperparams(...), snapshot() (a typed view, views.py), telemetry, checkpoints
(checkpoint.py). A session is used from one thread; the app runs each in its own process
(background.py).
"""
from __future__ import annotations

import math
import time

import numpy as np
import torch
from torch import nn

from .. import validate
from ..device import auto_device
from ..layers import Rewired, resolve_k, rewired_layers
from . import registry, runstate
from .config import RunConfig, preset
from .data import Batcher, Dataset, load_dataset
from .models import build_model
from .telemetry import SPARSE_LEDGER_ABOVE, Telemetry
from .views import RunView, run_view

# what every method can change live; each method adds its own (registry.Algorithm.fields)
COMMON_LIVE = ("lr", "k", "connectivity", "batch_size", "eval_every", "lr_decay")
CHANGE_MERGE_S = 1.0  # changes of one field this close together are one change (a slider drag)


def live_fields(algorithm: str) -> tuple[str, ...]:
    alg = registry.get(algorithm)
    own = tuple(alg.fields) + (("noise_scale",) if "temperature" in alg.fields else ()) \
        + (("theta_min",) if alg.k_meaning == "soft" else ())
    return COMMON_LIVE + own


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
        if config.epochs > 0:   # epochs -> steps on the training split actually used
            self.config = config = config.replace(steps=config.planned_steps(len(self.data.x_train)))
        self.model = build_model(config, self.data.n_features, self.data.n_classes,
                                 self.data.image_shape).to(self.device)
        self.layers: list[Rewired] = rewired_layers(self.model)
        self.algorithm = registry.get(config.algorithm)
        self.optimizer = self.algorithm.build(config, self.model)
        self.batcher = Batcher(len(self.data.x_train), config.batch_size, self.device, config.seed)
        self.lr = config.lr                    # current lr (decays per epoch)
        self.step_count = 0
        self.paused_reason: str | None = None  # set when the run diverged
        self.fork_of: dict | None = None       # {"step", "changes"}: where this run forked off
        self._last_change: dict[str, tuple[float, int]] = {}  # field -> (time, index in changes)
        self.telemetry = Telemetry([l.n_positions for l in self.layers], self.device,
                                   telemetry_capacity)
        self.telemetry.start(self.layers)
        self.track_default(n_tracked)
        self.last = {"loss": float("nan"), "train_acc": float("nan"), "test_acc": float("nan"),
                     "test_loss": float("nan")}
        self.steps_per_second = 0.0
        self.train_seconds = 0.0               # wall time spent in step()
        self.evaluate()

    def fork(self, **changes) -> "TrainingSession":
        """A new run from this one's current state (weights, theta, masks, optimizer state,
        random generators, data order, telemetry), then `changes` to its live hyperparameters.
        With no changes its steps are this run's next steps, bit for bit; the data is shared."""
        child = TrainingSession(self.config, data=self.data, n_tracked=0)
        runstate.restore(child, *runstate.capture(self))
        child.fork_of = {"step": self.step_count, "changes": dict(changes)}
        if changes:
            child.set_hyperparams(**changes)
        return child

    # -- stepping ----------------------------------------------------------------------------
    def step(self, n: int = 1) -> int:
        """Run up to n minibatch steps; returns how many ran (fewer if the run diverged)."""
        validate.integer("n", n, low=0, high=10**9)
        done = 0
        t0 = time.perf_counter()
        for _ in range(n):
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
        acc, loss = self._accuracy_loss(self.data.x_test, self.data.y_test)
        out = {"test_acc": acc, "test_loss": loss}
        if self.data.x_val is not None:
            out["val_acc"], out["val_loss"] = self._accuracy_loss(self.data.x_val, self.data.y_val)
        self.last.update(out)
        self.telemetry.record_eval(self.step_count, acc, loss, self.dead_units(), layers=self.layers)
        return out

    def dead_units(self) -> list[int]:
        """Per hidden layer: units with no incoming or no outgoing active connection."""
        linear = [l for l in self.layers if len(l.weight_shape) == 2]
        dead = []
        for a, b in zip(linear[:-1], linear[1:]):  # O(K): counts over the active positions
            (out_a, in_a), (_, in_b) = a.weight_shape, b.weight_shape
            if out_a != in_b:
                continue
            has_in = torch.bincount(a.active_idx // in_a, minlength=out_a) > 0
            has_out = torch.bincount(b.active_idx % in_b, minlength=in_b) > 0
            dead.append(int((~has_in | ~has_out).sum()))
        return dead

    # -- steering ----------------------------------------------------------------------------
    def set_hyperparams(self, **changes) -> None:
        """Change lr, k / connectivity, batch_size, eval_every, lr_decay and the method's own
        hyperparameters (registry: alpha, temperature, theta_min, update_every, ...) live;
        validated together (a bad value changes nothing), applied before the next step and
        logged as (step, name, old, new)."""
        allowed = live_fields(self.config.algorithm)
        unknown = sorted(set(changes) - set(allowed))
        if unknown:
            raise ValueError(f"cannot change {unknown} live for {self.algorithm.label}; "
                             f"allowed: {', '.join(allowed)}")
        # a setting without effect after this change (temperature while noise_scale sets the
        # noise) is refused, not silently kept
        plain = {k: v for k, v in changes.items() if k in self.config.to_dict()
                 and k not in ("connectivity", "lr") and v is not None}
        try:
            after = self.config.replace(**plain)
        except ValueError:
            after = self.config  # _apply names the bad value
        idle = [f"{k}: {why}" for k in changes if (why := after.idle(k))]
        if idle:
            raise ValueError("; ".join(idle))
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
        # all valid: apply (the method's own hyperparameters follow the new config)
        opt_changes = {"lr": lr} | self.algorithm.hyper(new_cfg, lr)
        shapes = [l.weight_shape for l in self.layers]
        if self.algorithm.k_meaning == "soft":  # K drifts: connectivity is the target
            if "theta_min" in changes:
                opt_changes["theta_min"] = new_cfg.theta_min if new_cfg.theta_min < 0 else None
            if "connectivity" in changes:
                opt_changes["target_connectivity"] = new_cfg.layer_connectivity(shapes)
        elif ks is not None:
            opt_changes["k"] = ks
        elif "connectivity" in changes:
            opt_changes["connectivity"] = new_cfg.layer_connectivity(shapes)
        self.optimizer.set(**opt_changes)
        if "k" in opt_changes or "connectivity" in opt_changes:
            self.telemetry.record_rewiring(self.step_count, self.layers, self.optimizer.last_events)
        self.config = new_cfg.replace(lr=self.config.lr)  # config keeps the starting lr
        self.lr = lr
        if "batch_size" in changes:
            self.batcher.batch_size = int(changes["batch_size"])
        if log:
            self._log_changes(old, self.hyperparams())

    def _log_changes(self, old: dict, new: dict) -> None:
        """(step, name, old, new) per changed value; a change of the same field within
        CHANGE_MERGE_S of the previous one (a slider drag, key presses) extends that one."""
        now = time.monotonic()
        changes = self.telemetry.changes
        for name in new:
            if new[name] == old.get(name):
                continue
            last = self._last_change.get(name)
            if last is not None and now - last[0] < CHANGE_MERGE_S and last[1] < len(changes) \
                    and changes[last[1]][1] == name:
                step, _, first_old, _ = changes[last[1]]
                changes[last[1]] = (step, name, first_old, new[name])
                self._last_change[name] = (now, last[1])
            else:
                changes.append((self.step_count, name, old.get(name), new[name]))
                self._last_change[name] = (now, len(changes) - 1)

    def hyperparams(self) -> dict:
        """The values in force now: lr, batch size, K per layer, evaluation settings and the
        method's own hyperparameters, under their RunConfig names."""
        g = self.optimizer.rewired_groups
        out = {"lr": self.lr, "batch_size": self.batcher.batch_size, "k": [l.k for l in self.layers],
               "eval_every": self.config.eval_every, "lr_decay": self.config.lr_decay}
        out |= {cfg_name: g[0][opt_name] for cfg_name, opt_name in self.algorithm.fields.items()}
        if self.algorithm.k_meaning == "soft":
            out["theta_min"] = [gr["theta_min"] for gr in g]
        return out

    # -- watching ----------------------------------------------------------------------------
    def track_default(self, n: int = 24) -> None:
        """Track a seeded random sample of connections, half active and half dormant now."""
        rng = np.random.default_rng(self.config.seed + 1)
        layer_ids, positions = [], []
        per = max(1, n // (2 * len(self.layers)))
        for i, layer in enumerate(self.layers):
            active = layer.active_idx.cpu().numpy()
            if layer.n_positions > SPARSE_LEDGER_ABOVE:  # huge (sparse compute): never list dormant
                cand = rng.integers(0, layer.n_positions, size=4 * per + 64)
                dormant = np.unique(cand[~np.isin(cand, active)])[:per]
            else:
                mask = np.zeros(layer.n_positions, dtype=bool)
                mask[active] = True
                dormant = np.nonzero(~mask)[0]
                active = np.nonzero(mask)[0]
            for pool in (active, dormant):
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
        self.telemetry.track(layer_index, positions)
        self.telemetry.tracked_theta.add(self.step_count, self.telemetry.tracked_values(self.layers))

    def snapshot(self, full: bool = True, since: int | None = None, events: bool = True) -> RunView:
        """A detached view of the run (views.RunView): per layer the active connections with
        their weights and theta (and with full=True full-size theta and sign), the rewiring
        events after the cursor `since` (None: all the telemetry holds; pass the previous view's
        `events_cursor` to get each event once), telemetry, metrics, hyperparameters and status.
        Changes nothing in the run."""
        return run_view(self, full=full, since=since, events=events)

    @torch.no_grad()
    def replay(self, step: int | None = None) -> dict:
        """One recent step's rewiring, for the step replay (a read): {"steps": the steps the
        event ring holds, "step", "layers": per layer pruned positions with their age and theta
        before / after the step, activated positions (revived at theta 0)}. `step` None: the
        latest; a step the ring no longer holds gives layers None."""
        steps = self.telemetry.events.steps()
        step = steps[-1] if step is None and steps else step
        layers = self.telemetry.replay(int(step)) if step is not None else None
        return {"steps": steps, "step": step, "layers": layers}

    def predict_grid(self, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        """Class-1 probability (or arg-max class for more classes) on a 2-D grid; 2-D data only."""
        if not self.data.is_2d:
            raise ValueError("predict_grid needs a 2-D data set")
        gx, gy = np.meshgrid(xs, ys)
        pts = torch.tensor(np.stack([gx.ravel(), gy.ravel()], 1), dtype=torch.float32,
                           device=self.device)
        p = torch.softmax(self.model(pts), 1)
        out = p[:, 1] if p.shape[1] == 2 else p.argmax(1).float()
        return out.cpu().numpy().reshape(gx.shape)

    @torch.no_grad()
    def unit_maps(self, xs: np.ndarray, ys: np.ndarray, max_units: int = 64) -> dict:
        """Every hidden unit's activation (after its nonlinearity) and every output unit's
        output (the logit) on the 2-D grid xs x ys (at most 128 x 128 points; the first
        `max_units` units of each layer): {"step", "layers": [float32 (units, len(ys), len(xs))]}.
        2-D data (an MLP) only; a read, it changes nothing."""
        if not self.data.is_2d:
            raise ValueError("unit_maps needs a 2-D data set")
        xs, ys = np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64)
        for name, v in (("xs", xs), ("ys", ys)):
            if v.ndim != 1 or not 2 <= len(v) <= 128 or not np.isfinite(v).all():
                raise ValueError(f"{name}: 2 to 128 finite grid coordinates; got shape {v.shape}")
        gx, gy = np.meshgrid(xs, ys)
        h = torch.tensor(np.stack([gx.ravel(), gy.ravel()], 1), dtype=torch.float32, device=self.device)
        mods, out = list(self.model.children()), []
        for i, m in enumerate(mods):
            h = m(h)
            if isinstance(m, (nn.ReLU, nn.Tanh, nn.Sigmoid)) or i == len(mods) - 1:
                out.append(h[:, :max_units].T.reshape(-1, len(ys), len(xs)).float().cpu().numpy())
        return {"step": self.step_count, "layers": out}

    def metrics_csv(self) -> str:
        """Metrics and the change log as CSV: step, series, value, previous. Metric rows
        (loss, train_acc, test_acc, test_loss, pruned[i], activated[i], active[i]) leave
        `previous` empty; a hyperparameter change is a row `change:<field>` with the new value
        and the previous one (per-layer lists joined by ';')."""
        lines = ["step,series,value,previous"]
        for name, s in self.telemetry.series.items():
            steps, vals = s.arrays()
            lines += [f"{st},{name},{v:.6g}," for st, v in zip(steps, vals)]
        for name in ("pruned", "activated", "active"):
            steps, vals = getattr(self.telemetry, name).arrays()
            for st, row in zip(steps, vals):
                lines += [f"{st},{name}[{i}],{v:.6g}," for i, v in enumerate(np.atleast_1d(row))]
        lines += self.telemetry.csv_rows()  # classified events, topology
        for step, name, old, new in self.telemetry.changes:
            lines.append(f"{step},change:{name},{_csv_value(new)},{_csv_value(old)}")
        return "\n".join(lines) + "\n"


def _csv_value(v) -> str:
    if isinstance(v, (list, tuple)):
        return ";".join(_csv_value(x) for x in v)
    return f"{v:.6g}" if isinstance(v, float) else str(v)
