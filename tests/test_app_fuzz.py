"""A stateful fuzz test of the dashboard: hypothesis' RuleBasedStateMachine drives Streamlit's
AppTest with any sequence of user actions (every sidebar control with good and bad values,
several changes in one rerun, the transport, every View, checkpoint uploads) and checks after
every action that the page holds together.

Invariants after every rule:
- no exception element on the page;
- the header's setup, the sidebar's setup fields and the run's config agree;
- the "Active connections" counter and every layer's "K = " caption equal the run's K, and an
  exact-K method has exactly the K last asked for (typed or from a connectivity slider);
- a bad value shows a message beside its field (checked in the rule) and the run is kept.

CI runs FUZZ_EXAMPLES sequences (default 3) of up to FUZZ_STEPS (default 8) actions with a fixed seed
(derandomised, so a CI failure repeats). A longer run is one command
(another seed, and FUZZ_SHRINK=1 to shrink a failure to a short sequence, which takes minutes):
    FUZZ_EXAMPLES=40 FUZZ_STEPS=25 FUZZ_SEED=7 python3 -m pytest -q tests/test_app_fuzz.py
"""
import os
import re

import pytest
from hypothesis import HealthCheck, Phase, settings, seed as hyp_seed
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from deepr_engine.run import checkpoint, registry
from deepr_engine.run.config import PRESETS, preset
from deepr_engine.run.data import DATASETS
from deepr_engine.run.session import TrainingSession
from test_app import MAIN
from streamlit.testing.v1 import AppTest

from app.routes.run_views import VIEWS
from app.state import describe


EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "3"))
STEPS = int(os.environ.get("FUZZ_STEPS", "8"))
SEED = os.environ.get("FUZZ_SEED")  # unset: derandomised (CI); set: that seed
# each action is a rerun of the page (some start a training process): up to 20 s each on a busy
# 2-core machine, and the suite's 300 s per test would cut a longer run short
pytestmark = [pytest.mark.slow, pytest.mark.timeout(max(300, 20 * EXAMPLES * (STEPS + 1)))]

# hidden sizes a user may type: good ones, and ones refused for a reason the message names
HIDDEN_GOOD = ["8", "16,8", "12,6,4"]
HIDDEN_BAD = ["32,abc", "5000,5000", "0", "", "-3", "4,4,4,4,4,4,4,4,4"]
K_BAD = ["abc", "-1,2", "999999999,1,1", "0,0,0"]  # bad for any layer count


def _checkpoint_bytes(name: str, seed: int) -> bytes:
    s = TrainingSession(preset(name).replace(seed=seed))
    s.step(5)
    return checkpoint.to_bytes(s)


UPLOADS = {}  # built once per process: a checkpoint of digits-demo and of spiral-demo


def upload(kind: str) -> bytes:
    if kind == "garbage":
        return b"\x00not a checkpoint" * 10
    if kind not in UPLOADS:
        UPLOADS[kind] = _checkpoint_bytes(kind, 3)
    return UPLOADS[kind]


class Dashboard(RuleBasedStateMachine):
    """One browser session on the dashboard."""

    @initialize()
    def open_page(self):
        self.at = AppTest.from_file(MAIN, default_timeout=120)
        self.at.run()
        self.expected_k = None   # what the user last set as K (exact-K methods), for this run
        self.run_id = self.s.run.run_id
        self.rules = 0

    # -- helpers ------------------------------------------------------------------------------
    @property
    def s(self):
        return self.at.session_state["dashboard"]

    @property
    def g(self):
        return self.s.gen

    def rerun(self):
        self.at.run()
        if self.s.run.run_id != self.run_id:  # a new run: nothing asked of it yet
            self.run_id, self.expected_k = self.s.run.run_id, None

    def errors(self) -> list[str]:
        return [e.value for e in self.at.error]

    def live_refused(self) -> bool:
        """Whether the last K or connectivity change was refused (other fields' messages, an
        upload's say, may still stand)."""
        return any(e.startswith(("K", "k", "connectivity")) for e in self.errors())

    def assert_kept(self, field: str, before: str):
        """A refused setup value: the same run, and a message that names the field."""
        assert self.s.run.run_id == before, f"{field}: a refused value replaced the run"
        assert any(field in e for e in self.errors()), (field, self.errors())

    # -- setup --------------------------------------------------------------------------------
    @rule(name=st.sampled_from(list(PRESETS)))
    def choose_preset(self, name):
        self.at.selectbox(key=f"preset{self.g}").set_value(name)
        self.rerun()

    @rule(name=st.sampled_from(DATASETS))
    def choose_dataset(self, name):
        self.at.selectbox(key=f"dataset{self.g}").set_value(name)
        self.rerun()

    @rule(model=st.sampled_from(["mlp", "conv"]))
    def choose_model(self, model):
        self.at.segmented_control(key=f"model{self.g}").set_value(model)
        self.rerun()

    @rule(text=st.sampled_from(HIDDEN_GOOD))
    def type_hidden(self, text):
        self.at.text_input(key=f"hidden{self.g}").input(text)
        self.rerun()

    @rule(text=st.sampled_from(HIDDEN_BAD))
    def type_bad_hidden(self, text):
        before, shown = self.s.run.run_id, self.at.text_input(key=f"hidden{self.g}").value
        if text == shown:
            return
        self.at.text_input(key=f"hidden{self.g}").input(text)
        self.rerun()
        self.assert_kept("hidden", before)

    @rule(name=st.sampled_from(list(registry.names())))
    def choose_algorithm(self, name):
        self.at.selectbox(key=f"algorithm{self.g}").set_value(name)
        self.rerun()

    @rule(seed=st.integers(0, 3))
    def choose_seed(self, seed):
        self.at.number_input(key=f"seed{self.g}").set_value(seed)
        self.rerun()

    @rule(text=st.sampled_from(HIDDEN_GOOD), model=st.sampled_from(["mlp", "conv"]))
    def two_changes_in_one_rerun(self, text, model):
        """Typing into a field, then clicking another control: both arrive in one rerun."""
        g = self.g
        self.at.text_input(key=f"hidden{g}").input(text)
        self.at.segmented_control(key=f"model{g}").set_value(model)
        self.rerun()

    @rule(text=st.sampled_from(HIDDEN_GOOD))
    def hidden_then_k_in_one_rerun(self, text):
        g = self.g
        self.at.text_input(key=f"hidden{g}").input(text)
        self.at.text_input(key=f"ktext{g}").input("3,3,3")
        self.rerun()
        self.expected_k = None  # applied to whichever run is current, if it fits

    # -- live controls --------------------------------------------------------------------------
    @precondition(lambda self: any(x.key == f"ktext{self.g}" for x in self.at.text_input))
    @rule(frac=st.floats(0.05, 0.9))
    def type_exact_k(self, frac):
        ks = [max(1, int(frac * l.n_positions)) for l in self.s.frame.layers]
        self.at.text_input(key=f"ktext{self.g}").input(",".join(map(str, ks)))
        self.rerun()
        if not self.live_refused() and self._exact_k():
            self.expected_k = ks

    @precondition(lambda self: any(x.key == f"ktext{self.g}" for x in self.at.text_input))
    @rule(text=st.sampled_from(K_BAD))
    def type_bad_k(self, text):
        before, k_before = self.s.run.run_id, [l.k for l in self.s.frame.layers]
        self.at.text_input(key=f"ktext{self.g}").input(text)
        self.rerun()
        if text == self.at.text_input(key=f"ktext{self.g}").placeholder:
            return
        assert self.s.run.run_id == before
        assert any(e.startswith(("K", "k")) for e in self.errors()), self.errors()
        if self._exact_k():
            assert [l.k for l in self.s.frame.layers] == k_before

    @rule(which=st.integers(0, 99), where=st.integers(0, 999))
    def move_a_live_slider(self, which, where):
        """Any live select-slider to any of its values (drawn as indices, so that what is drawn
        does not depend on the page: replays draw the same)."""
        sliders = [x for x in self.at.select_slider if x.key and x.key.endswith(str(self.g))
                   and not x.key.startswith("speed")]
        if not sliders:
            return
        x = sliders[which % len(sliders)]
        label = list(x.options)[where % len(x.options)]  # options are the formatted labels
        x.set_value(int(label) if label.lstrip("-").isdigit() else float(label))
        self.rerun()

    @precondition(lambda self: any(x.key == f"conn0_{self.g}" for x in self.at.slider))
    @rule(layer=st.integers(0, 5), value=st.floats(0.01, 1.0))
    def move_a_connectivity_slider(self, layer, value):
        keys = [x.key for x in self.at.slider if x.key and x.key.startswith("conn")
                and x.key.endswith(f"_{self.g}")]
        key = keys[layer % len(keys)]
        value = round(value, 3)
        self.at.slider(key=key).set_value(value)
        self.rerun()
        if self._exact_k() and not self.live_refused():
            conns = [self.at.slider(key=k).value for k in keys]
            self.expected_k = [max(1, min(l.n_positions, round(c * l.n_positions)))
                               for c, l in zip(conns, self.s.frame.layers)]

    @rule(spf=st.integers(1, 500))
    def steps_per_frame(self, spf):
        self.at.slider(key=f"spf{self.g}").set_value(spf)
        self.rerun()
        assert self.s.ui.steps_per_frame == spf

    # -- transport and views ------------------------------------------------------------------
    @rule(button=st.sampled_from(["step1", "step10", "play", "pause", "reset"]))
    def press(self, button):
        found = [b for b in self.at.button if b.key == button]
        if not found:  # Play and Pause share a place
            return
        step_before = self.s.frame.step
        found[0].click()
        self.rerun()
        if button in ("step1", "step10") and not self.s.frame.paused_reason:
            assert self.s.frame.step >= step_before + int(button[4:]) or self.s.frame.step == 0

    @rule(name=st.sampled_from(VIEWS))
    def choose_view(self, name):
        self.at.segmented_control(key="view").set_value(name)
        self.rerun()

    @rule(kind=st.sampled_from(["digits-demo", "spiral-demo", "garbage"]))
    def upload_checkpoint(self, kind):
        before = self.s.run.run_id
        self.at.file_uploader(key=f"upload{self.g}").upload(f"{kind}.safetensors", upload(kind))
        self.rerun()
        if kind == "garbage":
            assert self.s.run.run_id == before and self.s.upload_error
        else:
            assert self.s.frame.config.dataset == preset(kind).dataset and self.s.frame.step == 5

    # -- invariants ---------------------------------------------------------------------------
    def _exact_k(self) -> bool:
        cfg = self.s.frame.config
        return registry.get(cfg.algorithm).k_meaning == "active" and not cfg.global_k

    @invariant()
    def no_exception(self):
        assert not self.at.exception, [e.value for e in self.at.exception]

    @invariant()
    def header_sidebar_and_run_agree(self):
        f, g = self.s.frame, self.g
        cfg = f.config
        assert any(c.value.startswith(describe(cfg)) for c in self.at.caption), describe(cfg)
        shown = {"dataset": self.at.selectbox(key=f"dataset{g}").value,
                 "hidden": self.at.text_input(key=f"hidden{g}").value,
                 "model": self.at.segmented_control(key=f"model{g}").value,
                 "algorithm": self.at.selectbox(key=f"algorithm{g}").value,
                 "seed": self.at.number_input(key=f"seed{g}").value}
        assert shown == {"dataset": cfg.dataset, "hidden": ",".join(map(str, cfg.hidden)),
                         "model": cfg.model, "algorithm": cfg.algorithm, "seed": cfg.seed}
        assert self.s.run.config.dataset == cfg.dataset and self.s.run.config.hidden == cfg.hidden

    @invariant()
    def k_shown_is_the_runs(self):
        f = self.s.frame
        metrics = {m.label: m.value for m in self.at.metric}
        assert metrics["Active connections"] == f"{sum(l.k for l in f.layers):,}"
        captions = [c.value for c in self.at.caption]
        for i, l in enumerate(f.layers):
            k_caption = [c for c in captions if c.startswith(f"Layer {i}: K = ")]
            if k_caption:
                assert re.match(rf"Layer {i}: K = {l.k:,} of {l.n_positions:,}", k_caption[0]), k_caption
        if self._exact_k():
            assert f.hyperparams["k"] == [l.k for l in f.layers]
            if self.expected_k is not None:
                assert [l.k for l in f.layers] == self.expected_k

    def teardown(self):
        if hasattr(self, "at") and "dashboard" in self.at.session_state:
            run = self.s.run
            if run is not None:
                run.close()


Dashboard.TestCase.settings = settings(
    max_examples=EXAMPLES, stateful_step_count=STEPS, deadline=None, derandomize=SEED is None,
    suppress_health_check=list(HealthCheck), print_blob=True, database=None,
    # every action is a rerun of the page (and some a new training process): shrinking a long
    # sequence takes many minutes, so it runs only when asked (FUZZ_SHRINK=1)
    phases=[Phase.explicit, Phase.reuse, Phase.generate]
    + ([Phase.shrink] if os.environ.get("FUZZ_SHRINK") == "1" else []))
TestDashboard = Dashboard.TestCase if SEED is None else hyp_seed(int(SEED))(Dashboard.TestCase)
