"""Every rewiring event classified once (deepr_engine.run.classify): the telemetry's counts per
class, step and layer against a recount from the raw events of a real run."""
import numpy as np
import pytest

from deepr_engine.run import checkpoint
from deepr_engine.run.classify import CLASSES, PROBE_STEPS, RewiringClassifier, is_probe, split_pruned
from deepr_engine.run.session import TrainingSession

STEPS = 200


@pytest.fixture(scope="module")
def run():
    """digits-demo for 200 steps, one step at a time, keeping each step's raw events."""
    s = TrainingSession("digits-demo", n_tracked=0)
    cursor, raw = s.telemetry.events.seq, []
    for _ in range(STEPS):
        assert s.step(1) == 1
        ev = s.telemetry.events_since(cursor)
        assert ev.complete
        cursor = ev.cursor
        raw.append((s.step_count, ev.layers))
    return s, raw


def recount(raw, n_layers):
    """Per step and layer: probes, deaths and survivors, from the events alone."""
    steps = [st for st, _ in raw]
    out = np.zeros((len(CLASSES), len(raw), n_layers), dtype=np.int64)
    for t, (_, layers) in enumerate(raw):
        for i, ev in enumerate(layers):
            out[0, t, i] = np.sum(ev["pruned_age"] < PROBE_STEPS)
            out[1, t, i] = np.sum(ev["pruned_age"] >= PROBE_STEPS)
    for b, (born, layers) in enumerate(raw):   # a revival at `born` survives if its position is
        settle = born + PROBE_STEPS              # not pruned before born + PROBE_STEPS
        if settle not in steps:
            continue
        for i, ev in enumerate(layers):
            later = [raw[t][1][i]["pruned"] for t in range(b + 1, len(raw)) if raw[t][0] < settle]
            gone = np.isin(ev["activated"], np.concatenate(later)) if later else \
                np.zeros(len(ev["activated"]), dtype=bool)
            out[2, steps.index(settle), i] += int(np.sum(~gone))
    return out


def test_classes_per_step_match_a_recount_of_the_raw_events(run):
    s, raw = run
    n = len(s.layers)
    expected = recount(raw, n)
    tv = s.snapshot(full=False).telemetry
    for c, series, want in zip(CLASSES, (tv.probes, tv.deaths, tv.survived), expected):
        steps, values = series.arrays()
        assert list(steps) == [st for st, _ in raw], c        # one point per step: no merge yet
        np.testing.assert_array_equal(values.astype(np.int64), want, err_msg=c)
        np.testing.assert_array_equal(tv.class_totals[c], want.sum(0), err_msg=c)
    assert expected[0].sum() > 100 and expected[1].sum() > 10 and expected[2].sum() > 10  # all occur
    # the exact rates per 100 steps cover the last 100 steps
    assert tv.class_window == 100
    for c, want in zip(CLASSES, expected):
        np.testing.assert_allclose(tv.class_rates[c], want[-100:].sum(0))


def test_a_probe_was_revived_within_the_window_before(run):
    """The lifetimes behind the rule: each probe's position was revived `age` steps earlier."""
    _, raw = run
    by_step = {st: layers for st, layers in raw}
    checked = 0
    for st, layers in raw:
        for i, ev in enumerate(layers):
            probe = is_probe(ev["pruned_age"])
            for pos, age in zip(ev["pruned"][probe], ev["pruned_age"][probe]):
                if st - age in by_step:
                    assert pos in by_step[st - age][i]["activated"]
                    checked += 1
            if checked > 300:
                return
    assert checked > 50


def test_checkpoint_keeps_the_classes_and_their_pending_revivals(run):
    s, _ = run
    again = checkpoint.load(checkpoint.to_bytes(s), n_tracked=0)
    np.testing.assert_array_equal(again.telemetry.classifier.totals, s.telemetry.classifier.totals)
    s.step(PROBE_STEPS + 5)       # (the last test to use the fixture's run)
    again.step(PROBE_STEPS + 5)   # the same steps: revivals pending at the save settle alike
    np.testing.assert_array_equal(again.telemetry.classifier.totals, s.telemetry.classifier.totals)
    csv = again.metrics_csv()
    assert f"{STEPS + 1},probe[0]," in csv and ",survived[2]," in csv


def test_classifier_on_a_hand_made_sequence():
    c = RewiringClassifier(1, probe_steps=3)
    none = np.array([], dtype=np.int64)
    c.add(1, [np.array([5])], [2])        # an established death (age 5), two revivals
    c.add(2, [np.array([1])], [1])        # one of step 1's revivals pruned at age 1: a probe
    c.add(3, [none], [0])
    out = c.add(4, [np.array([3])], [0])  # step 1 settles: 2 revived - 1 probe = 1 survived;
    assert out[:, 0].tolist() == [0, 1, 1]  # the age-3 prune (that survivor) is a death
    assert c.add(5, [none], [0])[:, 0].tolist() == [0, 0, 1]   # step 2's revival settles
    assert c.totals[:, 0].tolist() == [1, 2, 2]
    assert c.add(6, [none], [0])[2, 0] == 0   # step 3 had no revivals
    assert c.window() == 6 and c.rates()[:, 0].tolist() == [100 / 6, 200 / 6, 200 / 6]


def test_the_rule_lives_in_one_place():
    from app.charts import palette
    assert palette.is_probe is is_probe and palette.PROBE_STEPS == PROBE_STEPS
    probe, death = split_pruned([-1, 0, PROBE_STEPS - 1, PROBE_STEPS])
    assert probe.tolist() == [False, True, True, False] and death.tolist() == [False, False, False, True]
