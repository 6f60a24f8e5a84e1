"""`python -m deepr_engine reproduce`: every method tuned at the same budget (split over the
gradient rules), chosen on validation, tested on fresh seeds, a figure, and a re-run that
trains nothing again. End to end on the shipped MNIST test set, at a tiny budget."""
import csv

import pytest

from deepr_engine.run import reproduce
from deepr_engine.run.cli import main


@pytest.fixture(scope="module")
def local_ray():
    import ray
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield
    ray.shutdown()


def rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_reproduce_mnist_end_to_end_on_a_tiny_budget_and_resumable(local_ray, tmp_path, capsys):
    out = tmp_path / "rep"
    argv = ["reproduce", "mnist", "--connectivities", "0.05", "--budget", "2", "--seeds", "2",
            "--steps", "15", "--hidden", "16", "--batch-size", "32", "--methods", "deepr,rigl",
            "--out", str(out), "--quiet"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "60,000-image MNIST files are absent: using mnist10k" in text   # says which data
    tuning = rows(out / "tuning" / "results.csv")
    # equal budget: 2 settings per method (one sgd, one momentum), the same lr draws for each
    by_method = {}
    for r in tuning:
        by_method.setdefault(r["algorithm"], []).append((r["gradient"], r["lr"]))
    assert set(by_method) == {"deepr", "rigl", "dense"}
    assert all(sorted(v) == sorted(by_method["deepr"]) for v in by_method.values())
    assert [g for g, _ in sorted(by_method["deepr"])] == ["momentum", "sgd"]
    assert all(r["status"] == "ok" and r["seed"] == "0" for r in tuning)
    summary = rows(out / "results.csv")
    assert [r["method"] for r in summary] == ["deepr", "rigl", "dense"]
    test = rows(out / "test" / "results.csv")
    for s in summary:   # the best tuning row on validation, re-run on seeds 1 and 2
        mine = [r for r in tuning if r["algorithm"] == s["method"]]
        best = max(mine, key=lambda r: (float(r["val_acc"]), -float(r["val_loss"])))
        assert (s["gradient"], float(s["lr"])) == (best["gradient"], float(best["lr"]))
        seeds = [r for r in test if r["algorithm"] == s["method"]]
        assert sorted(r["seed"] for r in seeds) == ["1", "2"]
        assert all(r["gradient"] == best["gradient"] and r["lr"] == best["lr"] for r in seeds)
        mean = sum(float(r["test_acc"]) for r in seeds) / 2
        assert float(s["test_acc_mean"]) == pytest.approx(mean, abs=1e-5)
        assert s["dataset"] == "mnist10k" and int(s["steps"]) == 15
    assert float(summary[0]["connectivity_reached"]) == pytest.approx(0.05, rel=0.02)
    assert (out / "accuracy.png").stat().st_size > 5000
    html = (out / "accuracy.html").read_text()
    assert "plotly" in html and "Deep R" in html and "RigL" in html
    # a re-run trains nothing again: every row (and its timing) is the one written before
    before = {p: (out / p).read_text() for p in ("tuning/results.csv", "test/results.csv")}
    assert main(argv) == 0
    assert {p: (out / p).read_text() for p in before} == before


def test_the_budget_is_split_evenly_over_the_gradient_rules_and_bad_flags_are_one_line(capsys):
    assert reproduce.split_budget(12) == {"sgd": 4, "momentum": 4, "adam": 4}
    assert reproduce.split_budget(4) == {"sgd": 2, "momentum": 1, "adam": 1}
    assert reproduce.split_budget(1) == {"sgd": 1}
    assert main(["reproduce", "mnist", "--methods", "deepr,bogus"]) == 2
    assert "--methods: unknown ['bogus']" in capsys.readouterr().err
    assert main(["reproduce", "mnist", "--connectivities", "0,2", "--steps", "5"]) == 2
    assert "--connectivities takes comma-separated fractions in (0, 1]" in capsys.readouterr().err
    assert main(["reproduce", "cifar10", "--data-root", "/nonexistent"]) == 2
    assert "cifar-10-binary.tar.gz" in capsys.readouterr().err


def test_methods_that_start_dense_are_chosen_among_settings_that_reach_the_target():
    from deepr_engine.run.config import preset
    from deepr_engine.run.sweep import Trial
    base = preset("digits-demo").replace(hidden=[100], connectivity=[0.1], distribution="erk",
                                         val_fraction=0.2)
    cells = {m: reproduce.cell_base(base, m, 0.05, "sgd", 100) for m in ("deepr", "l1", "magnitude")}
    targets = {m: reproduce.global_target(c, 0.05) for m, c in cells.items()}
    assert targets == pytest.approx({"deepr": 0.05, "l1": 0.05, "magnitude": 0.05}, rel=0.01)
    trials = [Trial(cells["l1"].replace(lr=lr), {}) for lr in (0.1, 0.2, 0.3)]
    by_key = {t.key: {"status": "ok", "val_acc": v, "val_loss": "1", "connectivity": c}
              for t, v, c in zip(trials, ("0.99", "0.90", "0.95"), ("0.6", "0.05", "0.054"))}
    best, row, n_ok = reproduce.choose(by_key, trials, targets["l1"])
    assert best is trials[2]   # 0.99 ended at 60% connectivity: not a 5% network
    assert n_ok == "3 ok, 2 at target, of 3"
