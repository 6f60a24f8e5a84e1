"""Issue 19, the app's side without a browser: unit maps equal the model's activations, receptive
fields equal the incoming weights, the maps' feed channel, the classified chart and counters,
the topology and turnover figures, the scan's value parsing."""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from app.charts import figures, structure, turnover
from app.components import unit_maps
from app.components.wire import unpack
from deepr_engine.run.classify import CLASSES
from deepr_engine.run.scan import predicted_probe_fraction
from deepr_engine.run.session import TrainingSession


def hooked_activations(session, xs, ys) -> list[np.ndarray]:
    """Each hidden layer's output after its nonlinearity and the network's output, by forward
    hooks on a plain forward pass (not the code under test): (units, len(ys), len(xs)) each."""
    gx, gy = np.meshgrid(xs, ys)
    pts = torch.tensor(np.stack([gx.ravel(), gy.ravel()], 1), dtype=torch.float32)
    got = []
    hooks = [m.register_forward_hook(lambda m, i, o: got.append(o.detach()))
             for m in session.model if isinstance(m, (nn.Tanh, nn.ReLU, nn.Sigmoid))]
    with torch.no_grad():
        out = session.model(pts)
    for h in hooks:
        h.remove()
    return [a.T.reshape(-1, len(ys), len(xs)).numpy() for a in [*got, out]]


@pytest.fixture(scope="module")
def digits():
    s = TrainingSession("digits-demo")
    s.step(40)
    return s


@pytest.fixture(scope="module")
def spiral():
    s = TrainingSession("spiral-demo")
    s.step(30)
    return s


def test_unit_maps_equal_the_models_activation_on_the_grid(spiral):
    xs, ys = np.linspace(-2.5, 2.5, 17), np.linspace(-2, 2, 11)   # not square: rows are y
    got = spiral.unit_maps(xs, ys)
    want = hooked_activations(spiral, xs, ys)
    assert got["step"] == 30 and [m.shape for m in got["layers"]] == [(16, 11, 17), (16, 11, 17), (2, 11, 17)]
    for g, w in zip(got["layers"], want):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
    # one point by hand: unit 3 of the first hidden layer at (xs[4], ys[7])
    first = spiral.model[0]
    with torch.no_grad():
        pre = first.effective_weight()[3] @ torch.tensor([xs[4], ys[7]], dtype=torch.float32) + first.bias[3]
    assert got["layers"][0][3, 7, 4] == pytest.approx(math.tanh(float(pre)), abs=1e-6)
    # what the page gets: float16 of the same values
    msg = unit_maps.maps_message(spiral.unit_maps(unit_maps.grid(), unit_maps.grid()),
                                 spiral.snapshot(full=False).layers, seq=1)
    head, arrays = unpack(msg)
    ref = hooked_activations(spiral, unit_maps.grid(), unit_maps.grid())
    assert [l["units"] for l in head["layers"]] == [16, 16, 2] and head["nx"] == unit_maps.GRID
    for i, r in enumerate(ref):
        np.testing.assert_allclose(arrays[f"m{i}"].astype(np.float32).reshape(r.shape), r, rtol=2e-3, atol=2e-3)


def test_unit_maps_refuse_bad_grids_and_image_data(spiral, digits):
    with pytest.raises(ValueError, match="xs"):
        spiral.unit_maps(np.zeros(200), np.linspace(0, 1, 5))
    with pytest.raises(ValueError, match="ys"):
        spiral.unit_maps(np.linspace(0, 1, 5), [0.0, float("nan")])
    with pytest.raises(ValueError, match="2-D"):
        digits.unit_maps(np.linspace(0, 1, 5), np.linspace(0, 1, 5))


def test_receptive_fields_are_the_incoming_weights(digits):
    layer = digits.snapshot(full=False).layers[0]
    rf = unit_maps.receptive_fields(layer, (8, 8), max_units=20)
    np.testing.assert_array_equal(rf, layer.weight()[:20])
    head, arrays = unpack(unit_maps.fields_message(layer, (8, 8), step=40, seq=3))
    assert head["mode"] == "fields" and head["layers"][0]["units"] == 32 and (head["nx"], head["ny"]) == (8, 8)


class FakeRun:
    def __init__(self):
        self.calls = 0

    def unit_maps(self, xs, ys, max_units):
        self.calls += 1
        return {"step": self.step, "layers": [np.full((3, len(ys), len(xs)), 0.5, np.float32)]}


def test_units_channel_sends_a_new_message_only_when_the_run_moved(monkeypatch):
    run = FakeRun()
    ch = unit_maps.UnitsChannel(run)
    view = SimpleNamespace(step=5, layers=[SimpleNamespace(shape=(3, 2))])
    run.step = 5
    first = unpack(ch.message(view, -1))[0]
    assert first["kind"] == "full" and first["seq"] == 1 and run.calls == 1
    assert unpack(ch.message(view, 1))[0]["kind"] == "same" and run.calls == 1   # nothing new
    assert unpack(ch.message(view, 0))[0]["kind"] == "full"       # the page holds another: whole again
    view.step = run.step = 9
    clock = [100.0]
    monkeypatch.setattr(unit_maps.time, "monotonic", lambda: clock[0])
    ch.at = clock[0]
    assert unpack(ch.message(view, ch.seq))[0]["kind"] == "same"  # too soon after the last one
    clock[0] += unit_maps.MIN_INTERVAL_S + 0.01
    msg = unpack(ch.message(view, ch.seq))[0]
    assert msg["kind"] == "full" and msg["step"] == 9


def test_classified_chart_stacks_the_engines_classes_per_100_steps(digits):
    s = digits
    tel = s.snapshot(full=False).telemetry
    fig = figures.classified_figure(tel)
    n_layers = len(s.layers)
    assert len(fig.data) == n_layers * len(CLASSES)
    for tr in fig.data:
        layer, name = int(tr.stackgroup[1:]), next(c for c in CLASSES if tr.legendgroup == c)
        np.testing.assert_allclose(tr.y, 100 * tel.classes()[name].values[:, layer])
    rows = figures.class_rows(tel)
    assert [r["layer"] for r in rows] == [str(i) for i in range(n_layers)] + ["all"]
    for c in CLASSES:
        assert [r[f"{c} total"] for r in rows[:-1]] == list(tel.class_totals[c])
        assert rows[-1][f"{c} total"] == int(np.sum(tel.class_totals[c]))
    assert rows[-1]["probe total"] > 0   # digits-demo probes from its first steps


def test_degree_figure_shows_each_layers_histograms():
    summary = {"in_degree": [np.array([1, 2, 3]), np.array([0, 4])],
               "out_degree": [np.array([5, 1]), np.array([2, 2, 2])]}
    fig = structure.degree_figure(summary)
    assert len(fig.data) == 4
    assert list(fig.data[1].y) == [0, 4] and list(fig.data[3].y) == [2, 2, 2]


def test_scan_figure_log_axes_theory_and_current_value():
    rows = [{"field": "temperature", "value": v, "repeat": r, "status": "ok", "deaths_per_100": 10.0 * (r + 1),
             "probes_per_100": 100.0, "survived_per_100": 5.0, "probe_fraction": 0.9,
             "acc_change_per_100": 0.01} for v in (1e-6, 1e-4) for r in (0, 1)]
    rows.append({**rows[0], "value": 1e-2, "status": "diverged"})
    fig = turnover.scan_figure("temperature", rows, current=1e-5, lr=0.2, alpha=1e-3, temperature=1e-5)
    deaths = next(t for t in fig.data if t.name.startswith("deaths"))
    assert list(deaths.x) == [1e-6, 1e-4] and list(deaths.y) == [15.0, 15.0]   # mean of repeats; ok rows
    theory = next(t for t in fig.data if "theory" in t.name)
    for x, y in zip(theory.x[::13], theory.y[::13]):
        assert y == pytest.approx(predicted_probe_fraction(0.2, 1e-3, x))
    assert fig.layout.xaxis.type == fig.layout.xaxis3.type == "log" and fig.layout.yaxis.type == "log"
    assert sum(1 for s in fig.layout.shapes if s.x0 == 1e-5) == 3   # the value in force, every panel


def test_scan_values_are_checked_with_the_fields_name():
    from app.routes.turnover_view import default_values, parse_values
    assert parse_values("1e-5, 1e-7;1e-6") == [1e-7, 1e-6, 1e-5]
    for bad in ("1e-5", "a, b", "1e-5, -1", "1e-5, inf"):
        with pytest.raises(ValueError, match="Values"):
            parse_values(bad)
    assert parse_values(default_values(1e-5, "temperature")) == [1e-7, 1e-6, 1e-5, 1e-4, 1e-3]
