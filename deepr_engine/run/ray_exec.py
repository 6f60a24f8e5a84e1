"""Running sweep trials on Ray: as plain Ray tasks (least overhead per trial), or as Ray Tune
trials when ASHA early stopping is asked for. Locally Ray starts on this machine's cores without
its dashboard; `address` joins a cluster and ships this package to it.

This module knows trials only as (key, config dict) pairs and hands each result to a `sink`;
sweep.py builds the trials, the rows and results.csv (it imports this module, not the reverse)."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

from .trials import REPORTS, run_trial

# sink(key, metrics, status=None, note=""): one finished trial
Sink = Callable[..., None]


def _trainable(config: dict, payloads: list | None = None):
    from ray import tune

    p = payloads[config["index"]]
    report = (lambda row: tune.report(dict(row, key=p["key"]))) if p["asha"] else None
    tune.report(dict(run_trial(p["config"], report), key=p["key"], final=True))


def run_on_ray(todo: list[tuple[str, dict]], sink: Sink, address: str | None = None,
               asha: bool = False, cpus_per_trial: float = 1.0, executor: str = "tasks",
               gpus_per_trial: float = 0.0) -> None:
    """Run the trials, (key, config dict) each; every finished one goes to `sink`. A trial
    sees a GPU only when it asks for a share of one (gpus_per_trial > 0): Ray hides the GPUs
    from tasks that do not."""
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "1e9")
    import logging

    import ray
    from ray import tune

    payloads = [{"config": config, "key": key, "asha": asha} for key, config in todo]

    class Collector(tune.Callback):
        def on_trial_complete(self, iteration, trials, trial, **info):
            r = trial.last_result or {}
            sink(_key_of(trial, payloads), r, None if r.get("final") else "stopped",
                 "" if r.get("final") else "stopped early by ASHA")

        def on_trial_error(self, iteration, trials, trial, **info):
            sink(_key_of(trial, payloads), trial.last_result or {}, "error",
                 f"trial process failed: {str(getattr(trial, 'error_msg', '') or 'see Ray logs')}")

    started_here = not ray.is_initialized()
    if started_here:
        kwargs = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR,
                      configure_logging=True)
        if address:
            pkg = str(Path(__file__).resolve().parents[1])
            ray.init(address=address, runtime_env={"py_modules": [pkg],
                                                   "env_vars": {"OMP_NUM_THREADS": "1"}}, **kwargs)
        else:
            os.environ.setdefault("OMP_NUM_THREADS", "1")
            ray.init(num_cpus=os.cpu_count(), **kwargs)
    try:
        if executor == "tasks":
            _run_tasks(todo, sink, cpus_per_trial, gpus_per_trial)
        else:
            _run_tune(payloads, asha, cpus_per_trial, Collector(), gpus_per_trial)
    finally:
        if started_here:
            ray.shutdown()


def _task(config: dict) -> dict:
    return run_trial(config)


def _run_tasks(todo, sink, cpus_per_trial, gpus_per_trial=0.0) -> None:
    """Plain Ray tasks, one per trial, collected as they finish (no early stopping)."""
    import ray

    remote = ray.remote(num_cpus=cpus_per_trial, num_gpus=gpus_per_trial, max_retries=0)(_task)
    pending = {remote.remote(config): key for key, config in todo}
    try:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                key = pending.pop(ref)
                try:
                    metrics = ray.get(ref)
                except Exception as exc:   # the worker process died (killed, out of memory)
                    sink(key, {}, "error", f"trial process failed: {type(exc).__name__}: {exc}")
                else:
                    sink(key, metrics)
    finally:
        for ref in pending:
            ray.cancel(ref, force=True)


def _run_tune(payloads, asha, cpus_per_trial, collector, gpus_per_trial=0.0) -> None:
    from ray import tune

    storage = tempfile.mkdtemp(prefix="deepr-sweep-")
    try:
        scheduler = None
        if asha:
            from ray.tune.schedulers import ASHAScheduler
            scheduler = ASHAScheduler(metric="val_acc", mode="max", max_t=REPORTS,
                                      grace_period=2, reduction_factor=3)
        tuner = tune.Tuner(
            tune.with_resources(tune.with_parameters(_trainable, payloads=payloads),
                                {"cpu": cpus_per_trial, "gpu": gpus_per_trial}),
            param_space={"index": tune.grid_search(list(range(len(payloads))))},
            tune_config=tune.TuneConfig(scheduler=scheduler, reuse_actors=True,
                                        trial_dirname_creator=lambda t: t.trial_id),
            run_config=tune.RunConfig(storage_path=storage, name="sweep", verbose=0,
                                      callbacks=[collector],
                                      failure_config=tune.FailureConfig(max_failures=0)))
        tuner.fit()
    finally:
        shutil.rmtree(storage, ignore_errors=True)


def _key_of(trial, payloads) -> str:
    return payloads[trial.config["index"]]["key"]
