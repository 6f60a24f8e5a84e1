"""Running sweep trials on Ray (sweep.py builds them and keeps results.csv): as plain Ray
tasks (least overhead per trial), or as Ray Tune trials when ASHA early stopping is asked for.
Locally Ray starts on this machine's cores without its dashboard; `address` joins a cluster and
ships this package to it."""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

from .sweep import REPORTS, RESULT_COLUMNS, Trial, format_number, run_trial, trial_label


def _trial_payload(t: Trial, asha: bool) -> dict:
    return {"config": t.config.to_dict(), "key": t.key, "asha": asha}


def _trainable(config: dict, payloads: list | None = None):
    from ray import tune

    p = payloads[config["index"]]
    report = (lambda row: tune.report(dict(row, key=p["key"]))) if p["asha"] else None
    tune.report(dict(run_trial(p["config"], report), key=p["key"], final=True))


def run_on_ray(todo: list[Trial], results, address, asha, cpus_per_trial, progress, on_result,
               skipped, total, executor) -> None:
    """Run the trials; each finished one becomes a row of `results` (sweep.ResultsFile)."""
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "1e9")
    import logging

    import ray
    from ray import tune

    by_key = {t.key: t for t in todo}
    count = {"done": skipped}

    def sink(key: str, metrics: dict, status: str | None = None, note: str = "") -> None:
        t = by_key.pop(key, None)
        if t is None:
            return
        row = {f: t.swept.get(f, getattr(t.config, f)) for f in results.columns
               if f not in RESULT_COLUMNS} | {"seed": t.config.seed, "key": key}
        row |= {c: metrics[c] for c in RESULT_COLUMNS if c in metrics and c not in ("seed", "key")}
        if status:
            row["status"] = status
        if note:
            row["note"] = note[:300]
        results.add(row)
        count["done"] += 1
        if progress:
            print(f"[{count['done']}/{total}] {trial_label(t.swept)} seed={t.config.seed}: "
                  f"{row.get('status')} val {format_number(row.get('val_acc'))} test {format_number(row.get('test_acc'))} "
                  f"({format_number(row.get('seconds'), '.1f')} s)", file=sys.stderr, flush=True)
        if on_result is not None:
            on_result(results.rows[-1])

    class Collector(tune.Callback):
        def on_trial_complete(self, iteration, trials, trial, **info):
            r = trial.last_result or {}
            key = _key_of(trial, payloads)
            sink(key, r, None if r.get("final") else "stopped",
                 "" if r.get("final") else "stopped early by ASHA")

        def on_trial_error(self, iteration, trials, trial, **info):
            sink(_key_of(trial, payloads), trial.last_result or {}, "error",
                 f"trial process failed: {str(getattr(trial, 'error_msg', '') or 'see Ray logs')}")

    payloads = [_trial_payload(t, asha) for t in todo]
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
            _run_tasks(todo, sink, cpus_per_trial)
        else:
            _run_tune(payloads, asha, cpus_per_trial, Collector())
    finally:
        if started_here:
            ray.shutdown()
    for key in list(by_key):   # trials Ray never reported (e.g. interrupted sweep) stay unfinished
        if progress:
            print(f"trial {trial_label(by_key[key].swept)} seed={by_key[key].config.seed} did not finish",
                  file=sys.stderr)


def _task(config: dict) -> dict:
    return run_trial(config)


def _run_tasks(todo, sink, cpus_per_trial) -> None:
    """Plain Ray tasks, one per trial, collected as they finish (no early stopping)."""
    import ray

    remote = ray.remote(num_cpus=cpus_per_trial, max_retries=0)(_task)
    pending = {remote.remote(t.config.to_dict()): t.key for t in todo}
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


def _run_tune(payloads, asha, cpus_per_trial, collector) -> None:
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
                                {"cpu": cpus_per_trial}),
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
