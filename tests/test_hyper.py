"""Hyperparameters declared once (deepr_engine.hyper.Hyper): a toy method's new setting reaches
the config, CLI, URL, app controls, sweeps and README table; settings without effect are refused;
sweep trial specs, ties and range edges; the URL's connectivity fallback; compute='sparse'."""
from __future__ import annotations

import ast
import csv
import math
from pathlib import Path

import pytest

from deepr_engine.hyper import Hyper, declare
from deepr_engine.optim import StaticSparse
from deepr_engine.run import registry, selection, sweep
from deepr_engine.run.cli import build_parser
from deepr_engine.run.cli import main as cli_main
from deepr_engine.run.config import RunConfig, preset

ROOT = Path(__file__).resolve().parents[1]


class Leaky(StaticSparse):
    """A toy method whose weights shrink by `leak` after every step: one new hyperparameter."""

    HYPER = declare(Hyper("leak", 0.1, 0.0, 0.5, "toy: every weight shrinks by this fraction per "
                          "step", scale="fraction", label="Leak", url_key="lk"))

    def __init__(self, model, lr, *, leak=0.1, **kw):
        super().__init__(model, lr, leak=leak, **kw)

    def shrink(self, group, w):
        return w * (1 - group["leak"])


@pytest.fixture
def leaky():
    registry.register(registry.Algorithm("leaky", "Leaky", Leaky))
    yield "leaky"
    registry.unregister("leaky")


def _help(command: str) -> str:
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return " ".join(sub.choices[command].format_help().split())


def test_a_new_hyperparameter_is_one_declaration_everywhere(leaky, capsys):
    from app.urlstate import from_query, to_query, UISettings
    assert "leak" not in RunConfig.__dataclass_fields__          # no RunConfig edit was made
    cfg = preset("spiral-demo").replace(algorithm=leaky, leak=0.25)
    assert cfg.leak == 0.25 and cfg.to_dict()["leak"] == 0.25
    assert RunConfig.from_dict(cfg.to_dict()) == cfg
    assert preset("spiral-demo").replace(algorithm=leaky).leak == 0.1   # the declared default
    with pytest.raises(ValueError, match=r"leak must be in \[0, 0.5\], got 0.7"):
        cfg.replace(leak=0.7)
    with pytest.raises(ValueError, match="leak is a setting of Leaky, not of Deep R"):
        preset("spiral-demo").replace(leak=0.2)
    assert "leak" not in cfg.replace(algorithm="deepr").to_dict()   # another method drops it
    # CLI: a flag with its help and range; a bad value is one line naming it
    assert "--leak" in _help("train") and "toy: every weight shrinks by this fraction per step" in _help("train")
    assert cli_main(["train", "--algorithm", leaky, "--leak", "0.9", "--quiet"]) == 2
    assert "leak must be in [0, 0.5], got 0.9" in capsys.readouterr().err
    # URL: its own key, both ways
    q = to_query(cfg, UISettings(preset="spiral-demo"))
    assert q["lk"] == "0.25" and "zeta" not in q and "T" not in q
    back, ui = from_query(q)
    assert not ui.errors and back.algorithm == leaky and back.leak == 0.25
    back, ui = from_query({"algo": "deepr", "lk": "0.2"})
    assert back.algorithm == "deepr" and ui.errors == ["URL parameter lk: leak is a setting of Leaky, not of Deep R"]
    from app.urlstate import compare_from_query, compare_to_query, run_config
    base, specs, ui = compare_from_query({"runs": "deepr,leaky", "r1_lk": "0.3", "r0_lk": "0.3"})
    assert specs[1].overrides == {"leak": 0.3} and run_config(base, specs[1]).leak == 0.3
    assert specs[0].overrides == {} and ui.errors == ["URL parameter r0_lk: leak is a setting of Leaky, not of Deep R"]
    assert compare_to_query(base, specs, ui)["r1_lk"] == "0.3"
    # app controls and the sweep
    assert registry.get(leaky).controls == ["lr", "batch_size", "leak"]
    assert registry.CONTROLS["leak"].label == "Leak"
    assert "leak" in sweep.sweep_fields()
    trials = sweep.build_trials(cfg, {"leak": [0.05, 0.4]})
    assert [t.config.leak for t in trials] == [0.05, 0.4]
    assert "| `leak` | leaky | 0.1 | [0, 0.5] | yes |" in registry.hyper_table()


def test_the_readme_table_is_the_generated_one():
    readme = (ROOT / "README.md").read_text()
    assert registry.hyper_table() in readme


def test_a_shared_setting_must_be_declared_alike():
    class Other(StaticSparse):
        HYPER = declare(Hyper("alpha", 1e-4, 0.0, 5.0, "another alpha", floor=1e-8))
    with pytest.raises(ValueError, match="alpha is declared differently by deepr"):
        registry.register(registry.Algorithm("other", "Other", Other))
    assert "other" not in registry.names()


def test_an_old_style_registration_is_refused_with_what_to_do():
    from deepr_engine import validate

    class Plain(StaticSparse):
        HYPER = {"damping": lambda v: validate.finite("damping", v, low=0.0)}
    with pytest.raises(TypeError, match="must be deepr_engine.hyper.Hyper declarations"):
        registry.register(registry.Algorithm("plain", "Plain", Plain))
    with pytest.raises(TypeError, match="4th argument is `extra`"):
        registry.register(registry.Algorithm("plain", "Plain", StaticSparse, {"drop_fraction": "x"}))
    assert "plain" not in registry.names()


def test_a_declaration_checks_its_range_and_zero_means_auto_only_in_a_config():
    t_end = registry.declaration("t_end")
    assert t_end.describe() == "0 (3/4 of steps) or [1, 1e+12]"
    cfg = preset("digits-demo").replace(algorithm="rigl", t_end=0, steps=400)
    assert t_end.resolve(cfg) == 300
    with pytest.raises(ValueError, match=r"t_end must be an integer in \[1, "):
        t_end(0)        # the optimizer's check: 0 is no step
    with pytest.raises(ValueError, match="a log scale from 0.0 needs floor"):
        Hyper("x", 0.1, 0.0, 1.0)


def test_app_sliders_cover_exactly_what_the_config_accepts():
    from app.widgets import BATCH_VALUES, log_grid
    base = preset("digits-demo")
    for field, h in registry.CONTROLS.items():
        alg = registry.owners(field)[0].name if registry.owners(field) else base.algorithm
        cfg = base.replace(algorithm=alg, theta_min=-1.0) if alg == "soft-deepr" else base.replace(algorithm=alg)
        if h.scale == "log":
            values = log_grid(field)
            ends = [values[0], values[-1]]
            assert values[-1] <= h.high and values[-1] * 5 >= h.high, field   # up to the top
        elif field == "batch_size":
            ends = [min(BATCH_VALUES), max(BATCH_VALUES)]
        else:
            ends = [h.low, h.high]
        for v in ends:
            cfg.replace(**{field: v})   # accepted
    assert 0.0 not in log_grid("lr") and log_grid("alpha")[0] == 0.0   # lr > 0, alpha >= 0


# -- settings without effect ------------------------------------------------------------------
def test_settings_without_effect_are_named_with_the_reason(capsys):
    paper = preset("paper-mnist")
    assert "noise_scale 1e-05 > 0 sets the noise" in paper.idle("temperature")
    assert paper.idle("noise_scale") is None and paper.idle("alpha") is None
    assert preset("digits-demo").idle("drop_fraction") == "drop_fraction is a setting of SET, RigL, not of Deep R"
    assert preset("digits-demo").idle("global_revive") == "global_revive works with global_k only"
    assert cli_main(["train", "--preset", "paper-mnist", "--temperature", "1e-5", "--quiet"]) == 2
    assert "--temperature: no effect here: noise_scale" in capsys.readouterr().err
    assert cli_main(["train", "--algorithm", "deepr", "--drop-fraction", "0.5", "--quiet"]) == 2
    assert "drop_fraction is a setting of SET, RigL" in capsys.readouterr().err
    with pytest.raises(ValueError, match="--grid temperature: has no effect in any trial: noise_scale"):
        sweep.build_trials(paper, {"temperature": [1e-8, 1e-6]})
    with pytest.raises(ValueError, match="--random drop_fraction: has no effect in any trial"):
        sweep.build_trials(preset("digits-demo"), random={"drop_fraction": sweep.Random("uniform", 0.1, 0.5)},
                           samples=2)
    assert cli_main(["sweep", "--preset", "digits-demo", "--grid", "drop_fraction=0.1,0.3"]) == 2
    assert "has no effect in any trial" in capsys.readouterr().err
    assert cli_main(["sweep", "--preset", "digits-demo", "--drop-fraction", "0.2"]) == 2
    assert "--drop-fraction: no effect here" in capsys.readouterr().err


def test_a_mixed_sweep_varies_a_setting_only_where_it_acts_and_rows_show_only_own_fields(tmp_path, monkeypatch):
    trials = sweep.build_trials(preset("digits-demo").replace(steps=5),
                                {"algorithm": ["deepr", "set"], "drop_fraction": [0.1, 0.5]})
    assert [(t.config.algorithm, t.swept.get("drop_fraction")) for t in trials] == [
        ("deepr", None), ("set", 0.1), ("set", 0.5)]
    fake = {"status": "ok", "val_acc": 0.5, "val_loss": 1.0, "test_acc": 0.5}
    monkeypatch.setattr(sweep.ray_exec, "run_on_ray",
                        lambda todo, sink, *a, **k: [sink(key, fake) for key, _ in todo])
    sweep.run_trials(trials, ["algorithm", "drop_fraction"], tmp_path, progress=False)
    with open(tmp_path / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["algorithm"], r["drop_fraction"]) for r in rows] == [("deepr", ""), ("set", "0.1"), ("set", "0.5")]
    from app.routes import sweep as page   # the Sweep page counts the trials that run
    args = page.sweep_args("digits-demo", 5, 1, 1, [{"field": "algorithm", "mode": "grid", "values": "deepr,set"},
                                                    {"field": "drop_fraction", "mode": "grid", "values": "0.1,0.5"}])
    assert page.n_trials(args) == 3


def test_paper_mnist_temperature_control_is_disabled_with_the_reason():
    from streamlit.testing.v1 import AppTest
    script = ("import streamlit as st\nfrom app import widgets as w\n"
              "from deepr_engine.run.config import preset\n"
              "w.control(st, 'temperature', 1e-6, 't', lambda: None, cfg=preset('paper-mnist'))\n"
              "w.control(st, 'alpha', 1e-5, 'a', lambda: None, cfg=preset('paper-mnist'))\n")
    at = AppTest.from_string(script, default_timeout=30)
    at.run()
    temp, alpha = at.select_slider
    assert temp.disabled and "Disabled: noise_scale 1e-05 > 0 sets the noise" in temp.help
    assert not alpha.disabled and "Disabled" not in alpha.help


def test_a_live_change_without_effect_is_refused_and_changes_nothing():
    from deepr_engine.run.session import TrainingSession
    s = TrainingSession(preset("spiral-demo").replace(noise_scale=1e-3))
    before = s.hyperparams()
    with pytest.raises(ValueError, match="temperature: noise_scale 0.001 > 0 sets the noise"):
        s.set_hyperparams(temperature=1e-4, alpha=1e-3)
    assert s.hyperparams() == before and s.config.temperature == preset("spiral-demo").temperature
    s.set_hyperparams(temperature=1e-4, noise_scale=0.0)  # effective once the noise is T's again
    assert s.config.temperature == 1e-4 and s.hyperparams()["temperature"] == 1e-4


# -- sweeps: bad specs, ties, edges ------------------------------------------------------------
def test_bad_trial_specs_are_error_rows_and_the_good_trials_run(tmp_path, monkeypatch):
    good = sweep.build_trials(preset("digits-demo").replace(steps=5), {"alpha": [1e-4]})[0]
    unknown = sweep.Trial(good.config, {"frob": 1})
    foreign = sweep.Trial(good.config, {"drop_fraction": 0.2})
    not_a_config = sweep.Trial({"lr": 0.1}, {})
    ran = []

    def fake(todo, sink, *a, **k):
        for key, config in todo:
            ran.append(config)
            sink(key, {"status": "ok", "val_acc": 0.5, "val_loss": 1.0})
    monkeypatch.setattr(sweep.ray_exec, "run_on_ray", fake)
    rows = sweep.run_trials([good, unknown, foreign, not_a_config, "nonsense"],
                            ["alpha", "frob", "drop_fraction"], tmp_path, progress=False)
    # the Deep R trial labelled with SET's drop_fraction runs (its config is fine: the same
    # as `good`, so one run) and its row leaves drop_fraction empty
    assert len(ran) == 1 and ran[0] == good.config.to_dict()
    assert [r["status"] for r in rows] == ["ok", "error", "error", "error"]
    notes = [r["note"] for r in rows[1:]]
    assert "swept field 'frob' is not a config field" in notes[0]
    assert "config must be a RunConfig, got dict" in notes[1]
    assert "not a sweep Trial: str" in notes[2]
    assert rows[0]["frob"] == rows[0]["drop_fraction"] == "" and len(sweep.read_results(tmp_path)) == 4


def test_ties_on_validation_go_to_lower_loss_then_trial_order():
    rows = [{"status": "ok", "val_acc": "0.9", "val_loss": "0.5", "key": "a"},
            {"status": "ok", "val_acc": "0.9", "val_loss": "0.3", "key": "b"},
            {"status": "ok", "val_acc": "0.9", "val_loss": "0.3", "key": "c"},
            {"status": "diverged", "val_acc": "0.95", "val_loss": "0.1", "key": "d"},
            {"status": "ok", "val_acc": "0.8", "val_loss": "0.1", "key": "e"}]
    assert sweep.best_row(rows)["key"] == "b"
    rows[1]["val_loss"] = "nan"   # no loss loses the tie
    assert sweep.best_row(rows)["key"] == "c"
    assert sweep.best_row([]) is None


def test_a_best_value_on_the_edge_of_its_range_is_warned_about():
    ranges = sweep.ranges_of({"lr": [0.01, 0.1, 0.5], "alpha": [1e-5, 1e-4], "hidden": [[64, 32], [100]]},
                             {"temperature": sweep.Random("log", 1e-8, 1e-4)})
    best = {"lr": "0.5", "alpha": "0.0001", "hidden": "64/32", "temperature": "5e-5"}
    assert sweep.edge_warnings(best, ranges) == [
        "lr's best value (0.5) is at the top of its range [0.01, 0.5]: widen it",
        "temperature's best value (5e-05) is at the top of its range [1e-08, 0.0001]: widen it"]
    best = {"lr": "0.01", "temperature": "1e-6"}   # a log range's middle is no edge
    assert sweep.edge_warnings(best, ranges) == [
        "lr's best value (0.01) is at the bottom of its range [0.01, 0.5]: widen it"]
    assert sweep.edge_warnings({"lr": "0.1"}, ranges) == []
    assert math.isclose(selection.EDGE_SHARE, 0.1)


def test_run_sweep_returns_the_best_row_and_edge_warnings(tmp_path, monkeypatch, capsys):
    accs = {0.01: 0.5, 0.1: 0.7, 0.5: 0.9}

    def fake(todo, sink, *a, **k):
        for key, config in todo:
            sink(key, {"status": "ok", "val_acc": accs[config["lr"]], "val_loss": 1.0})
    monkeypatch.setattr(sweep.ray_exec, "run_on_ray", fake)
    rows = sweep.run_sweep(preset("digits-demo").replace(steps=5), grid={"lr": [0.01, 0.1, 0.5]},
                           out=tmp_path)
    assert float(rows.best["lr"]) == 0.5
    assert rows.warnings == ["lr's best value (0.5) is at the top of its range [0.01, 0.5]: widen it"]
    assert "warning: lr's best value (0.5) is at the top" in capsys.readouterr().err
    assert sweep._read_json(tmp_path / "sweep.json")["ranges"] == {"lr": {"kind": "grid", "values": [0.01, 0.1, 0.5]}}


def test_sweep_and_ray_exec_do_not_import_each_other():
    def imported(path):
        tree = ast.parse(path.read_text())
        names = set()
        for node in ast.walk(tree):   # function-level imports included
            if isinstance(node, ast.ImportFrom):
                names |= {f"{node.module or ''}.{a.name}".strip(".") for a in node.names} | {node.module or ""}
            elif isinstance(node, ast.Import):
                names |= {a.name for a in node.names}
        return names
    run = ROOT / "deepr_engine" / "run"
    assert not any("sweep" in n for n in imported(run / "ray_exec.py") | imported(run / "trials.py"))
    assert "ray_exec" in " ".join(imported(run / "sweep.py"))


# -- the URL, compute='sparse', old configs ------------------------------------------------------
def test_url_connectivity_that_does_not_fit_the_hidden_sizes_falls_back_to_one_value():
    from app.urlstate import from_query
    cfg, ui = from_query({"preset": "digits-demo", "hidden": "32,16", "conn": "0.1,0.2,0.3,0.4,0.5"})
    assert cfg.connectivity == [0.1] and cfg.hidden == [32, 16]
    assert ui.errors == ["URL parameter conn: 5 values for 3 rewired layers (hidden 32,16); "
                         "using 0.1 for every layer"]
    cfg, ui = from_query({"preset": "digits-demo", "hidden": "32,16,8,4", "conn": "0.1,0.2,0.3,0.4,0.5"})
    assert not ui.errors and cfg.connectivity == [0.1, 0.2, 0.3, 0.4, 0.5]
    cfg, ui = from_query({"preset": "digits-demo", "conn": "0.1,x"})
    assert cfg.connectivity == preset("digits-demo").connectivity and "URL parameter conn" in ui.errors[0]


class FullSizeOnly(StaticSparse):
    SPARSE_REFUSAL = "toy: it reads every dormant weight"


def test_compute_sparse_follows_the_optimizers_sparse_refusal(monkeypatch):
    base = preset("digits-demo").replace(hidden=[16], connectivity=[0.3])
    assert base.replace(compute="sparse").compute == "sparse"     # Deep R: SPARSE_REFUSAL is None
    registry.register(registry.Algorithm("full-only", "Full only", FullSizeOnly))
    try:
        with pytest.raises(ValueError, match=r"compute 'sparse' does not work with algorithm full-only "
                                             r"\(Full only\): toy: it reads every dormant weight"):
            base.replace(compute="sparse", algorithm="full-only")
        monkeypatch.setattr(FullSizeOnly, "SPARSE_REFUSAL", None)   # the class attribute decides
        assert base.replace(compute="sparse", algorithm="full-only").algorithm == "full-only"
    finally:
        registry.unregister("full-only")
    with pytest.raises(ValueError, match="needs model mlp and gradient sgd"):
        base.replace(compute="sparse", gradient="adam")
    assert base.replace(compute="sparse", global_k=True).global_k  # compact layers revive globally too


def test_a_config_saved_before_newer_fields_still_loads():
    old = preset("digits-demo").to_dict()
    for newer in ("val_fraction", "compute", "noise_scale", "l1_threshold"):
        old.pop(newer)
    cfg = RunConfig.from_dict(old)
    assert cfg.val_fraction == 0.0 and cfg.compute == "dense" and cfg.alpha == 1e-3


def test_resume_refuses_a_live_flag_without_effect(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli_main(["train", "--preset", "digits-demo", "--steps", "5", "--quiet", "--out", str(out)]) == 0
    assert cli_main(["train", "--resume", str(out), "--steps", "5", "--quiet", "--drop-fraction", "0.5"]) == 2
    assert "--drop-fraction: no effect here: drop_fraction is a setting of SET, RigL" in capsys.readouterr().err
    assert cli_main(["train", "--resume", str(out), "--steps", "5", "--quiet", "--noise-scale", "1e-3",
                     "--temperature", "1e-5"]) == 2
    assert "--temperature: no effect here: noise_scale 0.001 > 0" in capsys.readouterr().err
    assert cli_main(["train", "--resume", str(out), "--steps", "5", "--quiet", "--temperature", "1e-5"]) == 0


def test_the_sweep_page_warns_when_the_best_value_is_on_the_edge(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from app.routes import sweep as page
    out = tmp_path / "20250101-000000"
    trials = sweep.build_trials(preset("digits-demo"), {"lr": [0.01, 0.1, 0.5]})
    res = sweep.ResultsFile(out, ["lr"])
    for t, acc in zip(trials, (0.5, 0.7, 0.9)):
        res.add(t.swept | {"seed": 0, "key": t.key, "status": "ok", "val_acc": acc, "val_loss": 1.0,
                           "test_acc": acc, "connectivity": 0.2, "turnover": 1.0, "seconds": 1.0})
    sweep._write_json(out / "trials.json", {t.key: t.config.to_dict() for t in trials})
    sweep._write_json(out / "sweep.json", {"preset": "digits-demo",
                                           "ranges": sweep.ranges_of({"lr": [0.01, 0.1, 0.5]}, {})})
    monkeypatch.setattr(page, "SWEEPS", tmp_path)
    at = AppTest.from_string("from app.routes.sweep import render\nrender()\n", default_timeout=60)
    at.run()
    assert not at.exception
    assert any("lr's best value (0.5) is at the top of its range [0.01, 0.5]: widen it" in w.value
               for w in at.warning)
