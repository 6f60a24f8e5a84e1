"""Public mode on the Sweep page (app/sweep_guard.py) and the Compare page (compare_state): no
visitor-typed Ray address, caps on trials, steps and concurrent sweeps checked before anything
is expanded or started, server-side fields refused, a visitor's own sweeps only, and Compare's
runs within the run limits with the public process options. Locally nothing changes."""
from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from app import compare_state, public
from app import sweep_guard as guard
from app.state import DashboardState
from app.urlstate import RunSpec
from test_app import shown
from deepr_engine.run import checkpoint, sweep as engine
from deepr_engine.run.config import preset
from deepr_engine.run.session import TrainingSession

PAGE = "from app.routes.sweep import render\nrender()\n"


@pytest.fixture
def public_mode(monkeypatch):
    monkeypatch.setenv("DEEPR_PUBLIC", "1")
    public.settings.cache_clear()
    public.STARTS.clear()
    yield
    public.settings.cache_clear()


@pytest.fixture
def local_mode(monkeypatch):
    monkeypatch.delenv("DEEPR_PUBLIC", raising=False)
    public.settings.cache_clear()
    yield
    public.settings.cache_clear()


class FakeSweep:
    """Stands for SweepProcess: records its arguments, runs until stopped."""
    made: list = []
    procs: list = []

    def __init__(self, args, out):
        FakeSweep.made.append((args, out))
        FakeSweep.procs.append(self)
        self.out, self.running = out, True
        out.mkdir(parents=True, exist_ok=True)
        guard.started(self)

    def stop(self):
        self.running = False


@pytest.fixture
def sweep_page(tmp_path, monkeypatch):
    from app.routes import sweep as page
    monkeypatch.setattr(page, "SWEEPS", tmp_path)
    monkeypatch.setattr(page, "SweepProcess", FakeSweep)
    FakeSweep.made, FakeSweep.procs = [], []
    yield page
    for p in FakeSweep.procs:   # none counts as running for the next test
        p.stop()


def app(visitor="me", **state):
    at = AppTest.from_string(PAGE, default_timeout=60)
    at.session_state["dashboard"] = DashboardState(visitor=visitor)
    for k, v in state.items():
        at.session_state[k] = v
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def errors(at) -> list[str]:
    return shown(at.error)


# -- the Ray address --------------------------------------------------------------------------------
def test_no_address_field_in_public_a_typed_one_is_refused_and_the_operators_is_used(
        public_mode, sweep_page, monkeypatch):
    monkeypatch.setenv("DEEPR_SWEEP_ADDRESS", "ray://head.internal:10001")
    public.settings.cache_clear()
    at = app()
    assert not [t for t in at.sidebar.text_input if t.key == "sw_address"]
    assert not errors(at) and not at.button(key="sw_start").disabled
    at.button(key="sw_start").click().run()
    (args, out), = FakeSweep.made
    assert args[args.index("--address") + 1] == "ray://head.internal:10001"
    # a visitor who sends the widget's value anyway (a forged message) is refused; nothing starts
    typed = app(sw_address="10.0.0.7:6379")
    assert any("Ray cluster address" in m and "sweep_address" in m for m in errors(typed))
    assert typed.button(key="sw_start").disabled and len(FakeSweep.made) == 1


def test_locally_the_address_field_is_there_and_every_sweep_is_listed(local_mode, sweep_page, tmp_path):
    (tmp_path / "20250101-000000").mkdir()
    guard.claim(tmp_path / "20250102-000000", "someone else")
    at = app()
    assert [t for t in at.sidebar.text_input if t.key == "sw_address"]
    assert len(at.selectbox(key="sw_folder").options) == 2
    guard.check_space("no such preset", 10**7, 1, 1, [{"field": "data_root", "mode": "grid",
                                                      "values": "/x"}], "10.0.0.1:1")   # no-op


# -- caps, before anything is expanded ------------------------------------------------------------
def test_a_50000_value_grid_is_refused_from_arithmetic_without_parsing_a_value(public_mode, monkeypatch):
    def boom(*a, **k):
        raise AssertionError("a value was parsed or a trial built")
    monkeypatch.setattr(engine, "parse_value", boom)
    monkeypatch.setattr(engine, "build_trials", boom)
    space = [{"field": "lr", "mode": "grid", "values": ",".join(str(i + 1) for i in range(50_000))},
             {"field": "alpha", "mode": "log", "values": "1e-5:1e-2"}]
    assert guard.trial_count(space, 8, 1) == 400_000
    with pytest.raises(ValueError, match=r"400,000 trials in one sweep; .* at most 32 \(limit sweep_max_trials\)"):
        guard.check_space("digits-demo", 1000, 1, 8, space)
    # grid x samples x seeds; a field given twice counts by its last row
    rows = [{"field": "lr", "mode": "grid", "values": "0.1,0.2,0.3"},
            {"field": "alpha", "mode": "grid", "values": "1e-5, ,1e-4"},
            {"field": "lr", "mode": "grid", "values": "0.1,0.2"}]
    assert guard.trial_count(rows, 8, 3) == 2 * 2 * 3


def test_the_page_names_the_trials_and_steps_limits(public_mode, sweep_page, monkeypatch):
    monkeypatch.setenv("DEEPR_SWEEP_MAX_TRIALS", "10")
    public.settings.cache_clear()
    at = app()   # the default space: 8 samples x 2 temperatures = 16 trials
    assert any("16 trials in one sweep" in m and "at most 10 (limit sweep_max_trials)" in m for m in errors(at))
    assert at.button(key="sw_start").disabled
    monkeypatch.setenv("DEEPR_SWEEP_MAX_TRIALS", "32")
    public.settings.cache_clear()
    at.sidebar.number_input(key="sw_steps").set_value(5000).run()
    assert any("5,000 steps per sweep trial" in m and "at most 3,000 (limit sweep_max_steps)" in m
               for m in errors(at))
    assert at.button(key="sw_start").disabled and not FakeSweep.made


def test_steps_from_a_grid_or_from_epochs_are_capped_too(public_mode):
    from app.routes import sweep as page
    args = page.sweep_args("digits-demo", 1000, 1, 1, [{"field": "steps", "mode": "grid",
                                                        "values": "100,50000"}])
    with pytest.raises(ValueError, match=r"50,000 steps per sweep trial.*limit sweep_max_steps"):
        guard.check_trials(page.trials(args))
    args = page.sweep_args("digits-demo", 1000, 1, 1, [{"field": "epochs", "mode": "grid", "values": "2"}])
    with pytest.raises(ValueError, match="epochs.*sweep_max_steps"):
        guard.check_trials(page.trials(args))
    args = page.sweep_args("digits-demo", 1000, 1, 1, [{"field": "hidden", "mode": "grid",
                                                        "values": "64/32,4096/32"}])
    with pytest.raises(ValueError, match="limit max_units"):
        guard.check_trials(page.trials(args))


def test_one_sweep_at_a_time_on_the_server(public_mode, sweep_page):
    first = app(visitor="one")
    first.button(key="sw_start").click().run()
    assert len(FakeSweep.made) == 1 and guard.running() == 1
    second = app(visitor="two")
    second.button(key="sw_start").click().run()
    assert len(FakeSweep.made) == 1
    assert any("1 sweep is running" in m and "at most 1 at once (limit sweep_max_concurrent)" in m
               for m in errors(second))
    first.button(key="sw_stop").click().run()
    second.button(key="sw_start").click().run()
    assert len(FakeSweep.made) == 2


# -- fields a visitor never sets --------------------------------------------------------------------
@pytest.mark.parametrize("field", ["data_root", "download", "device"])
def test_server_fields_in_the_sweep_table_are_refused_by_name(public_mode, sweep_page, monkeypatch, field):
    monkeypatch.setattr(sweep_page, "DEFAULT_SPACE", [{"field": field, "mode": "grid",
                                                       "values": "../../../../tmp/x"}])
    at = app()
    assert any(f"{field}: set by the server's operator" in m for m in errors(at))
    assert at.button(key="sw_start").disabled
    with pytest.raises(ValueError, match="field: one of .*got 'out'"):
        guard.check_space("digits-demo", 100, 1, 1, [{"field": "out", "mode": "grid", "values": "/tmp"}])


# -- a visitor's own sweeps -------------------------------------------------------------------------
def test_a_visitor_sees_only_their_own_sweeps_by_name_and_start_records_the_owner(
        public_mode, sweep_page, tmp_path):
    guard.claim(tmp_path / "20250101-000000-aaaaaa", "me")
    guard.claim(tmp_path / "20250102-000000-bbbbbb", "someone else")
    (tmp_path / "20250103-000000").mkdir()   # no owner: nobody's in public mode
    (tmp_path / "20250101-000000-aaaaaa" / "log.txt").write_text(
        f"sweep: 2 trials\nTraceback (most recent call last):\n  File \"{tmp_path}/x.py\", line 3, in f\n"
        f"OSError: cannot write {tmp_path}/20250101-000000-aaaaaa/results.csv\n")
    at = app()
    assert at.selectbox(key="sw_folder").options == ["20250101-000000-aaaaaa"]
    page_text = " ".join(e.value for kind in (at.markdown, at.caption, at.code, at.error, at.info)
                         for e in kind) + " ".join(at.selectbox(key="sw_folder").options)
    assert str(tmp_path) not in page_text and "20250101-000000-aaaaaa" in page_text
    at.button(key="sw_start").click().run()
    (_, out), = FakeSweep.made
    assert out.parent == tmp_path and guard.owner(out) == "me" and len(out.name) == len("20250101-000000-aaaaaa")
    assert app(visitor="me").selectbox(key="sw_folder").options[0] == out.name
    assert out.name not in app(visitor="someone else").selectbox(key="sw_folder").options


def test_redact_drops_server_paths_and_traceback_lines(tmp_path):
    out = tmp_path / "sweeps" / "20250101-000000"
    text = (f'Traceback (most recent call last):\n  File "{tmp_path}/code/m.py", line 9, in run\n'
            f"OSError: {out}/log.txt and {tmp_path}/code/data")
    shown = guard.redact(text, out, tmp_path / "code")
    assert str(tmp_path) not in shown and "line 9" not in shown
    assert "20250101-000000/log.txt" in shown and ".../data" in shown


# -- the Compare page's runs -------------------------------------------------------------------------
class FakeRun:
    """Stands for BackgroundSession in compare_state: records its options, counts as live."""
    made: list = []
    live = 0

    def __init__(self, source, **options):
        FakeRun.made.append(options)
        FakeRun.live += 1
        self.alive, self.options = True, options

    @classmethod
    def live_count(cls):
        return cls.live

    def close(self):
        if self.alive:
            self.alive, FakeRun.live = False, FakeRun.live - 1


@pytest.fixture
def fake_runs(monkeypatch):
    monkeypatch.setattr(compare_state, "BackgroundSession", FakeRun)
    FakeRun.made, FakeRun.live = [], 0


def test_compare_runs_get_the_public_options_and_count_against_the_limits(public_mode, fake_runs, monkeypatch):
    s = compare_state.CompareState()
    assert s.start(preset("spiral-demo"), [RunSpec("deepr"), RunSpec("set")])
    assert [o["max_steps_per_second"] for o in FakeRun.made] == [400, 400]
    assert all(o["memory_mb"] == 1536 and o["memory_name"] == "run_memory_mb" for o in FakeRun.made)
    monkeypatch.setenv("DEEPR_MAX_LIVE_RUNS", "4")
    public.settings.cache_clear()
    FakeRun.live += 3          # three other visitors' runs train now; this page's 2 are replaced
    assert not s.start(preset("spiral-demo"), [RunSpec("deepr"), RunSpec("set"), RunSpec("deepr")])
    assert "3 runs are training (limit max_live_runs = 4)" in s.error and len(FakeRun.made) == 2
    FakeRun.live -= 3          # they ended: this page's 2 runs are replaced by 3 (2 - 2 + 3 <= 4)
    assert s.start(preset("spiral-demo"), [RunSpec("deepr"), RunSpec("set"), RunSpec("deepr")])
    assert len(FakeRun.made) == 5 and FakeRun.live == 3
    assert not s.start(preset("spiral-demo").replace(hidden=[4096, 16]), [RunSpec("deepr"), RunSpec("set")])
    assert "limit max_units" in s.error and len(FakeRun.made) == 5   # sizes before any process
    monkeypatch.setenv("DEEPR_MAX_RUNS_PER_SESSION", "6")
    public.settings.cache_clear()
    assert not s.start(preset("spiral-demo"), [RunSpec("deepr"), RunSpec("set")])
    assert "7 runs one browser starts within an hour" in s.error and "at most 6 (limit max_runs_per_session)" in s.error
    assert len(FakeRun.made) == 5


def test_forks_are_refused_before_any_process_starts_when_there_is_no_room(public_mode, fake_runs, monkeypatch):
    monkeypatch.setenv("DEEPR_MAX_LIVE_RUNS", "3")
    public.settings.cache_clear()
    FakeRun.live = 1     # the parent
    source = checkpoint.to_bytes(TrainingSession(preset("spiral-demo")))
    s = compare_state.CompareState()
    with pytest.raises(ValueError, match=r"temperature: the server is full: 1 runs .*limit max_live_runs = 3"):
        s.start_forks(source, "temperature", [1e-6, 1e-5, 1e-4])
    assert FakeRun.made == [] and s.runs == []


def test_compare_locally_passes_no_public_options(local_mode, fake_runs):
    s = compare_state.CompareState()
    assert s.start(preset("spiral-demo"), [RunSpec("deepr"), RunSpec("set")])
    assert FakeRun.made == [{"steps_per_frame": s.ui.steps_per_frame}] * 2


def test_a_full_server_shows_the_compare_page_a_message_and_try_again(public_mode, fake_runs, monkeypatch):
    monkeypatch.setenv("DEEPR_MAX_LIVE_RUNS", "2")
    public.settings.cache_clear()
    FakeRun.live = 1   # another visitor's run: no room for this page's two
    at = AppTest.from_string("from app.routes.compare import render\nrender()\n", default_timeout=60)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("the server is full: 1 runs are training (limit max_live_runs = 2)" in m for m in errors(at))
    assert FakeRun.made == [] and at.button(key="c_retry")
