"""Sweeps (deepr_engine.run.sweep) on a local Ray, and the Sweep page."""
from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from scipy import stats

from deepr_engine.run import ray_exec, sweep
from deepr_engine.run.config import preset
from deepr_engine.run.data import load_dataset
from deepr_engine.run.session import TrainingSession


def tiny(**changes):
    """digits-demo for 30 steps at lr 100: fine at T 1e-6, NaN within a few steps at T 100."""
    return preset("digits-demo").replace(**(dict(steps=30, lr=100.0, eval_every=10**6) | changes))


@pytest.fixture(scope="module")
def local_ray():
    import ray
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield
    ray.shutdown()


def test_four_trials_on_local_ray_then_a_rerun_skips_finished_trials(local_ray, tmp_path):
    ran = []
    rows = sweep.run_sweep(tiny(), grid={"temperature": [1e-6, 100.0]}, seeds=2, out=tmp_path,
                           progress=False, on_result=ran.append, executor="tune")
    assert len(rows) == len(ran) == 4
    with open(tmp_path / "results.csv", newline="") as f:
        header = next(csv.reader(f))
    assert header[:1] == ["temperature"]
    for col in ("seed", "val_acc", "test_acc", "connectivity", "turnover", "status", "seconds"):
        assert col in header
    status = {(float(r["temperature"]), int(r["seed"])): r["status"] for r in rows}
    assert status == {(1e-6, 0): "ok", (1e-6, 1): "ok", (100.0, 0): "diverged", (100.0, 1): "diverged"}
    for r in rows:
        assert 0 <= float(r["val_acc"]) <= 1 and 0 <= float(r["test_acc"]) <= 1
        assert float(r["seconds"]) > 0
        if r["status"] == "ok":
            assert int(r["steps_done"]) == 30
            # digits-demo's K per layer: connectivity reached = sum(K) / sum(positions)
            s = TrainingSession(tiny())
            want = sum(l.k for l in s.layers) / sum(l.n_positions for l in s.layers)
            assert float(r["connectivity"]) == pytest.approx(want, rel=1e-5)
        else:
            assert int(r["steps_done"]) < 30 and "diverged" in r["note"]
    before = {r["key"]: r["seconds"] for r in rows}

    # one more seed, plus a trial that fails (MNIST files missing): 3 trials run, nothing else
    # (now as plain Ray tasks, the default without ASHA)
    ran.clear()
    empty = tmp_path / "no-mnist"
    empty.mkdir()
    trials = sweep.build_trials(tiny(), {"temperature": [1e-6, 100.0]}, seeds=3)
    broken = sweep.Trial(preset("paper-mnist").replace(data_root=str(empty), steps=5, val_fraction=0.2),
                         {"temperature": 0.0})
    rows = sweep.run_trials(trials + [broken], ["temperature"], tmp_path, progress=False,
                            on_result=ran.append)
    assert len(ran) == 3 and len(rows) == 7
    assert sorted(int(r["seed"]) for r in ran) == [0, 2, 2]
    failed = [r for r in rows if r["status"] == "error"]
    assert len(failed) == 1 and "FileNotFoundError" in failed[0]["note"]
    assert {r["key"]: r["seconds"] for r in rows if r["key"] in before} == before  # untouched

    # the same again: only the failed trial runs again
    ran.clear()
    rows = sweep.run_trials(trials + [broken], ["temperature"], tmp_path, progress=False,
                            on_result=ran.append)
    assert len(ran) == 1 and ran[0]["status"] == "error" and len(rows) == 7
    assert len(sweep.read_results(tmp_path)) == 7


def test_a_rerun_with_everything_finished_does_not_start_ray(tmp_path, monkeypatch):
    trials = sweep.build_trials(tiny(steps=5), {"temperature": [1e-6]}, seeds=2)
    monkeypatch.setattr(ray_exec, "run_on_ray", lambda *a, **k: pytest.fail("Ray started"))
    res = sweep.ResultsFile(tmp_path, ["temperature"])
    for t in trials:
        res.add({"temperature": 1e-6, "seed": t.config.seed, "key": t.key, "status": "ok",
                 "val_acc": 0.5})
    rows = sweep.run_trials(trials, ["temperature"], tmp_path, progress=False)
    assert [r["key"] for r in rows] == [t.key for t in trials]


def test_asha_stops_weak_trials_and_every_trial_is_a_row(local_ray, tmp_path):
    # lr 1e-4 learns nothing in 200 steps, lr 0.5 learns digits well: with 6 trials ASHA
    # (reduction factor 3) keeps at most 2 running to the end
    base = preset("digits-demo").replace(steps=200, eval_every=10**6)
    rows = sweep.run_sweep(base, grid={"lr": [1e-4, 2e-4, 3e-4, 0.3, 0.4, 0.5]}, out=tmp_path,
                           asha=True, progress=False)
    assert len(rows) == 6
    assert {r["status"] for r in rows} <= {"ok", "stopped"}
    assert sum(r["status"] == "stopped" for r in rows) >= 1
    best = max(rows, key=lambda r: float(r["val_acc"]))
    assert float(best["lr"]) >= 0.3 and best["status"] == "ok"


def test_turnover_and_connectivity_match_a_count_from_the_optimizer_events():
    cfg = preset("digits-demo").replace(steps=200, lr=0.5, alpha=1e-3, temperature=1e-5,
                                        val_fraction=0.2, eval_every=10**6)
    row = sweep.run_trial(cfg.to_dict())
    s = TrainingSession(cfg)  # CPU runs are bit-identical: count every step's prunings
    pruned = []
    for _ in range(200):
        s.step(1)
        pruned.append(sum(len(ev["pruned"]) for ev in s.optimizer.last_events))
    window = pruned[-20:]   # the last 10% of the steps
    assert row["status"] == "ok" and row["steps_done"] == 200
    assert sum(window) > 0
    assert row["turnover"] == pytest.approx(sum(window) * 100 / 20)
    assert row["connectivity"] == pytest.approx(sum(l.k for l in s.layers) / sum(l.n_positions for l in s.layers))
    assert row["val_acc"] == pytest.approx(s.evaluate()["val_acc"])


def test_a_sweep_trial_validates_on_training_data_never_on_test_examples():
    trial = sweep.build_trials(preset("digits-demo"), {"alpha": [1e-4]})[0]
    assert trial.config.val_fraction == sweep.DEFAULT_VAL_FRACTION
    data = TrainingSession(trial.config).data
    plain = load_dataset("digits", seed=trial.config.seed)
    assert torch.equal(data.x_test, plain.x_test)   # the test split is the same with or without val
    same = (data.x_val[:, None, :] == data.x_test[None, :, :]).all(-1)
    assert not same.any()                             # no validation row equals a test row
    # train + validation is exactly the original training set (as a multiset of rows)
    rows = lambda x: sorted(map(tuple, x.tolist()))
    assert rows(torch.cat([data.x_train, data.x_val])) == rows(plain.x_train)
    assert len(data.x_val) == round(0.2 * len(plain.x_train))


def test_random_search_is_seeded_and_log_uniform():
    r = {"lr": sweep.Random("log", 0.01, 1.0), "update_every": sweep.Random("uniform", 10, 400)}
    base = preset("digits-demo").replace(algorithm="set")   # update_every is SET's setting
    a = sweep.build_trials(base, random=r, samples=400, sample_seed=3)
    b = sweep.build_trials(base, random=r, samples=400, sample_seed=3)
    assert [t.key for t in a] == [t.key for t in b]
    lr = np.array([t.config.lr for t in a])
    assert lr.min() >= 0.01 and lr.max() <= 1.0
    assert stats.kstest((np.log10(lr) + 2) / 2, "uniform").pvalue > 0.01
    assert stats.kstest(lr, "uniform").pvalue < 1e-6            # not uniform on a linear scale
    every = [t.config.update_every for t in a]
    assert all(isinstance(v, int) and 10 <= v <= 400 for v in every)


def test_grid_times_samples_times_seeds():
    base = preset("digits-demo").replace(connectivity=[0.2])   # one value fits any layer count
    trials = sweep.build_trials(base, {"alpha": [1e-5, 1e-4], "hidden": [[64, 32], [100]]},
                                {"lr": sweep.Random("log", 0.01, 1)}, samples=3, seeds=2)
    assert len(trials) == 2 * 2 * 3 * 2 == len({t.key for t in trials})
    assert {tuple(t.config.hidden) for t in trials} == {(64, 32), (100,)}
    assert sweep.parse_grid("hidden=64/32,100") == ("hidden", [[64, 32], [100]])
    assert sweep.parse_grid("connectivity=0.02,0.05") == ("connectivity", [[0.02], [0.05]])
    assert sweep.parse_random("lr=log:0.01:1") == ("lr", sweep.Random("log", 0.01, 1.0))


@pytest.mark.parametrize("call,needle", [
    (lambda: sweep.parse_grid("frob=1,2"), "unknown field 'frob'"),
    (lambda: sweep.parse_grid("lr=fast"), "--grid lr: takes a float"),
    (lambda: sweep.parse_grid("lr="), "--grid takes FIELD=V1,V2"),
    (lambda: sweep.parse_grid("seed=1,2"), "--seeds"),
    (lambda: sweep.parse_grid("batch_size=2.5"), "batch_size: takes a int"),
    (lambda: sweep.parse_random("lr=log:0:1"), "0 < low"),
    (lambda: sweep.parse_random("lr=log:1:0.1"), "low < high"),
    (lambda: sweep.parse_random("lr=normal:0:1"), "log or uniform"),
    (lambda: sweep.parse_random("lr=0.1"), "FIELD=log:LOW:HIGH"),
    (lambda: sweep.parse_random("algorithm=log:1:2"), "only numeric fields"),
    (lambda: sweep.build_trials(preset("digits-demo"), {"lr": [0.1, 500.0]}), "lr must be in (0, 100]"),
    (lambda: sweep.build_trials(preset("digits-demo"), {"lr": [0.1]}, seeds=0), "--seeds"),
    (lambda: sweep.build_trials(preset("digits-demo"), {"lr": [0.1]}, samples=4), "--samples needs"),
    (lambda: sweep.build_trials(preset("digits-demo"), {"lr": [0.1]}, {"lr": sweep.Random("log", 0.1, 1)},
                                samples=2), "both set lr"),
])
def test_bad_sweep_specs_name_the_field_and_what_is_allowed(call, needle):
    with pytest.raises(ValueError) as err:
        call()
    assert needle in str(err.value)


# -- the Sweep page -------------------------------------------------------------------------------
def test_page_arguments_match_the_cli_and_bad_rows_are_refused():
    from app.routes import sweep as page
    space = [{"field": "lr", "mode": "log", "values": "0.01:1"},
             {"field": "alpha", "mode": "grid", "values": "1e-5,1e-4,1e-3"}]
    args = page.sweep_args("digits-demo", 300, 2, 5, space, asha=True)
    assert args[:6] == ["--preset", "digits-demo", "--steps", "300", "--seeds", "2"]
    assert "--random" in args and "lr=log:0.01:1" in args and "--asha" in args
    assert page.n_trials(args) == 2 * 5 * 3
    with pytest.raises(ValueError, match="lr"):
        page.sweep_args("digits-demo", 300, 1, 5, [{"field": "lr", "mode": "log", "values": "0:1"}])
    with pytest.raises(ValueError, match="unknown field"):
        page.sweep_args("digits-demo", 300, 1, 5, [{"field": "nope", "mode": "grid", "values": "1"}])


def test_a_trial_link_opens_its_setup_on_the_dashboard():
    from urllib.parse import parse_qsl, urlparse

    from app.routes import sweep as page
    from app.urlstate import from_query
    cfg = preset("spiral-demo").replace(lr=0.37, alpha=3e-4, temperature=1e-7, seed=4, hidden=[12, 8],
                                        connectivity=[0.5], val_fraction=0.2)
    url = page.dashboard_url(cfg.to_dict(), "spiral-demo")
    assert url.startswith("./?")   # the Dashboard is the default page, at the root
    back, ui = from_query(dict(parse_qsl(urlparse(url).query)))
    assert not ui.errors and ui.preset == "spiral-demo"
    for f in ("lr", "alpha", "temperature", "seed", "hidden", "connectivity", "dataset", "algorithm"):
        assert getattr(back, f) == getattr(cfg, f), f


def _fake_sweep(out):
    base = preset("digits-demo")
    trials = sweep.build_trials(base, {"alpha": [1e-5, 1e-4], "lr": [0.1, 0.5]}, seeds=2)
    res = sweep.ResultsFile(out, ["alpha", "lr"])
    rng = np.random.default_rng(0)
    for t in trials:
        res.add(t.swept | {"seed": t.config.seed, "key": t.key, "status": "ok",
                           "val_acc": rng.uniform(0.5, 1), "test_acc": rng.uniform(0.5, 1),
                           "connectivity": 0.2, "turnover": 10.0, "seconds": 1.0})
    sweep._write_json(out / "trials.json", {t.key: t.config.to_dict() for t in trials})
    sweep._write_json(out / "sweep.json", {"preset": "digits-demo"})
    return trials


PAGE = "from app.routes.sweep import render\nrender()\n"


def test_page_shows_a_sweep_folder_with_table_heatmap_and_parallel_coordinates(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from app.routes import sweep as page
    _fake_sweep(tmp_path / "20250101-000000")
    monkeypatch.setattr(page, "SWEEPS", tmp_path)
    at = AppTest.from_string(PAGE, default_timeout=60)
    at.run()
    assert not at.exception and not at.error
    assert at.title[0].value == "Sweep"
    # the default space: lr and alpha log ranges (8 samples) x 2 temperatures
    assert any("16 trials of 1000 steps" in c.value for c in at.caption)
    assert [len(d.value) for d in at.dataframe] == [3, 8]   # the search space, the trials
    assert len(at.get("plotly_chart")) == 2   # heatmap and parallel coordinates
    # a heatmap cell is the mean validation accuracy over the two seeds of that setting
    df, _, _, _ = page.load(tmp_path / "20250101-000000")
    z = page.heatmap(df, "alpha", "lr").data[0]
    want = df[(df.alpha == 1e-4) & (df.lr == 0.5)]["val_acc"].mean()
    assert z.z[list(z.y).index("0.5")][list(z.x).index("0.0001")] == pytest.approx(want)


def test_start_launches_the_cli_command_shown(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from app.routes import sweep as page
    started = []

    class Fake:
        def __init__(self, args, out):
            started.append(args)
            self.out, self.running = out, True

        def stop(self):
            self.running = False
    monkeypatch.setattr(page, "SWEEPS", tmp_path)
    monkeypatch.setattr(page, "SweepProcess", Fake)
    at = AppTest.from_string(PAGE, default_timeout=60)
    at.run()
    assert at.button(key="sw_stop").disabled
    at.sidebar.number_input(key="sw_steps").set_value(200)
    at.button(key="sw_start").click()
    at.run()
    assert not at.exception
    assert started == [page.sweep_args("digits-demo", 200, 1, 8, page.DEFAULT_SPACE)]
    assert at.button(key="sw_start").disabled and not at.button(key="sw_stop").disabled
    at.button(key="sw_stop").click()
    at.run()
    assert at.button(key="sw_stop").disabled and not at.button(key="sw_start").disabled


def test_stop_ends_the_sweep_and_everything_it_started(tmp_path):
    import os
    import time

    from app.routes import sweep as page
    proc = page.SweepProcess(["--preset", "digits-demo", "--steps", "100000", "--grid", "lr=0.1,0.2"],
                             tmp_path / "s")
    deadline = time.time() + 90
    while "sweep: 2 trials" not in (tmp_path / "s" / "log.txt").read_text() and time.time() < deadline:
        assert proc.running, (tmp_path / "s" / "log.txt").read_text()
        time.sleep(0.5)
    time.sleep(3)   # Ray and its trial workers are up
    started = _descendants(proc.proc.pid)
    assert len(started) >= 3   # at least Ray's gcs_server, raylet and a worker
    proc.stop()
    assert not proc.running
    deadline = time.time() + 40   # Ray's own processes follow their parent within seconds (more on a loaded machine)
    while _alive(started) and time.time() < deadline:
        time.sleep(0.5)
    assert not _alive(started), f"still running after Stop: {_alive(started)}"
    while time.time() < deadline:   # nothing is left in the sweep's process group either
        try:
            os.killpg(proc.proc.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.5)
    else:
        pytest.fail("processes of the stopped sweep's group are still running")


def _descendants(pid: int) -> set[int]:
    """Every process below pid (Ray's workers sit in process groups of their own)."""
    import os
    parent = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                parent[int(d)] = int(open(f"/proc/{d}/stat").read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    found, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, pp in parent.items() if pp in frontier} - found
        found |= frontier
    return found


def _alive(pids: set[int]) -> set[int]:
    alive = set()
    for p in pids:
        try:
            state = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            alive.add(p)
    return alive
