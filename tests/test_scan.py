"""The turnover scan (deepr_engine.run.scan): the zero-gradient theory against exact values and a
simulation, the scan on a real run against the theory, parallel forks equal to forks here,
cancelling, bad input, the CLI."""
import math
import threading
from math import comb

import numpy as np
import pytest
import torch

from deepr_engine.run import checkpoint, scan
from deepr_engine.run.classify import PROBE_STEPS
from deepr_engine.run.cli import main
from deepr_engine.run.config import preset
from deepr_engine.run.session import TrainingSession


def test_survival_without_drift_is_sparre_andersens_law():
    """alpha = 0: P(walk stays >= 0 for m steps) = C(2m, m) / 4^m whatever the step's scale."""
    q = scan.survival(lr=0.1, alpha=0.0, temperature=1e-3, n=30)
    np.testing.assert_allclose(q, [comb(2 * m, m) / 4**m for m in range(31)], rtol=1e-12)


@pytest.mark.parametrize("lr,alpha,temperature", [(0.3, 3e-4, 1e-5), (0.3, 0.05, 1e-2), (0.2, 1e-3, 1e-7)])
def test_predicted_probe_fraction_matches_a_simulated_walk(lr, alpha, temperature):
    """The project's update with zero gradient, simulated (200,000 walks, seeded): pruned at the
    first theta < 0 within PROBE_STEPS - 1 updates. Tolerance 0.005 (> 3 binomial std devs)."""
    rng = np.random.default_rng(0)
    steps = rng.normal(-lr * alpha, math.sqrt(2 * lr * temperature), (200_000, PROBE_STEPS - 1))
    measured = float((np.cumsum(steps, 1).min(1) < 0).mean())
    assert abs(scan.predicted_probe_fraction(lr, alpha, temperature) - measured) < 0.005
    p = scan.p_above_zero(lr, alpha, temperature, 10)   # no barrier: theta_10 ~ N(-10 lr alpha, 20 lr T)
    assert abs(p - float((steps[:, :10].sum(1) > 0).mean())) < 0.005


def test_the_edges_of_the_theory():
    assert scan.predicted_probe_fraction(0.1, 1e-3, 0.0) == 1.0   # no noise: dies at the first step
    assert scan.predicted_probe_fraction(0.1, 1e-3, 1e-5) > scan.predicted_probe_fraction(0.1, 1e-3, 1e-3)
    with pytest.raises(ValueError, match="n must be"):
        scan.predicted_probe_fraction(0.1, 1e-3, 1e-5, n=0)


@pytest.fixture(scope="module")
def spiral():
    """spiral-demo after 50 steps, then alpha 0.05: the L1 pull (lr*alpha = 0.015 per step)
    dwarfs a revived connection's gradient, the setting where the zero-gradient theory holds."""
    s = TrainingSession("spiral-demo", n_tracked=0)
    s.step(50)
    s.set_hyperparams(alpha=0.05)
    return s


def test_probes_fall_as_temperature_rises_and_match_the_theory(spiral):
    """Theory (docs/algorithms.md, Turnover): with gradients negligible against alpha, a higher T
    lets more revived connections climb away from 0, so fewer probes; and the probe fraction
    among settled revivals is predicted_probe_fraction. Tolerance 0.02: over 100 steps some
    thousands of revivals settle (binomial std dev < 0.006) and the gradient is ~5% of alpha."""
    before = {k: v.clone() for k, v in spiral.telemetry.tensors().items()}
    table = scan.turnover_scan(spiral, "temperature", [3e-3, 1e-2, 3e-2], steps=100, workers=0)
    rows = sorted(table.rows, key=lambda r: r["value"])
    assert [r["status"] for r in rows] == ["ok"] * 3 and table.current == pytest.approx(1e-5)
    probes = [r["probes_per_100"] for r in rows]
    assert probes[0] > probes[1] > probes[2], probes
    for r in rows:
        assert r["probes_per_100"] + r["survived_per_100"] > 1000
        assert abs(r["probe_fraction"] - r["predicted_probe_fraction"]) < 0.02, r
    assert spiral.step_count == 50   # the scanned run itself did not move, nor its records
    assert all(torch.equal(v, spiral.telemetry.tensors()[k]) for k, v in before.items())
    assert len(table.to_csv().splitlines()) == 4 and table.summary()[0]["n_ok"] == 1


def test_forks_in_worker_processes_equal_forks_here(spiral):
    here = scan.turnover_scan(spiral, "alpha", [0.02], steps=15, workers=0, seed=3)
    there = scan.turnover_scan(checkpoint.to_bytes(spiral), "alpha", [0.02], steps=15, workers=1, seed=3)
    assert here.rows == there.rows and here.rows[0]["status"] == "ok"


def test_cancel_stops_the_scan_and_keeps_finished_rows(spiral):
    stop, seen = threading.Event(), []

    def first(row):
        seen.append(row)
        stop.set()
    table = scan.turnover_scan(spiral, "temperature", [1e-3, 1e-2, 1e-1], steps=5, workers=0,
                               cancel=stop, on_result=first)
    assert table.cancelled and len(table.rows) == 1 and seen == table.rows


@pytest.mark.parametrize("kwargs,match", [
    ({"field": "lr"}, "field must be one of temperature, alpha"),
    ({"values": [0.0]}, r"values: each must be a number in \(0, 100\]"),
    ({"values": []}, "values must list 1 to 64"),
    ({"steps": 0}, r"steps must be an integer in \[1, "),
    ({"workers": -1}, "workers must be None or an integer"),
])
def test_bad_input_names_the_field(spiral, kwargs, match):
    with pytest.raises(ValueError, match=match):
        scan.turnover_scan(spiral, **kwargs)


def test_a_method_without_the_field_is_refused():
    s = TrainingSession(preset("spiral-demo").replace(algorithm="set"), n_tracked=0)
    with pytest.raises(ValueError, match="field 'temperature'"):
        scan.turnover_scan(s, "temperature", [1e-5])


def test_cli_scan_writes_the_table(tmp_path, capsys):
    out = tmp_path / "scan.csv"
    assert main(["scan", "--preset", "spiral-demo", "--field", "alpha", "--values", "1e-3,1e-2",
                 "--steps", "10", "--workers", "0", "--out", str(out)]) == 0
    lines = out.read_text().splitlines()
    assert lines[0].startswith("field,value,repeat,steps,status,deaths_per_100")
    assert [ln.split(",")[:2] for ln in lines[1:]] == [["alpha", "0.001"], ["alpha", "0.01"]]
    assert "zero-gradient theory" in capsys.readouterr().err
    assert main(["scan", "--values", "1e-3,x"]) == 2
    assert "--values takes comma-separated numbers" in capsys.readouterr().err
