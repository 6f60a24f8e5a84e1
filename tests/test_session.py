"""Data, presets, TrainingSession, telemetry bounds, checkpoints, CLI."""

import numpy as np
import pytest
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from deepr_engine.run import checkpoint
from deepr_engine.run.cli import main as cli_main
from deepr_engine.run.config import PRESETS, preset
from deepr_engine.run.data import (TOY_SETS, Batcher, load_dataset, read_idx, read_idx_pair,
                               write_idx)
from deepr_engine.run.session import TrainingSession
from deepr_engine.run.telemetry import Downsampled


def small(**kw):
    return preset("digits-demo").replace(**({"eval_every": 25} | kw))


# -- data -------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", TOY_SETS)
def test_toy_sets_are_seeded_2d_and_balanced(name):
    a = load_dataset(name, n_samples=400, noise=0.2, seed=1)
    b = load_dataset(name, n_samples=400, noise=0.2, seed=1)
    c = load_dataset(name, n_samples=400, noise=0.2, seed=2)
    assert a.is_2d and len(a.x_train) + len(a.x_test) == 400
    assert torch.equal(a.x_train, b.x_train) and not torch.equal(a.x_train, c.x_train)
    counts = torch.bincount(torch.cat([a.y_train, a.y_test]))
    assert counts.min() > 0.25 * 400 / len(counts)
    assert abs(a.x_train.mean().item()) < 0.1  # standardised


def test_digits_is_the_embedded_default():
    d = load_dataset("digits")
    assert d.n_features == 64 and d.image_shape == (8, 8) and d.n_classes == 10
    assert 0 <= d.x_train.min() and d.x_train.max() <= 1


def _write_mnist(root, n_train=30, n_test=10, gz=True):
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    ext = ".gz" if gz else ""
    for split, n in (("train", n_train), ("t10k", n_test)):
        write_idx(root / f"{split}-images-idx3-ubyte{ext}", rng.integers(0, 256, (n, 28, 28)))
        write_idx(root / f"{split}-labels-idx1-ubyte{ext}", rng.integers(0, 10, n))


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_from_idx_files(tmp_path, gz):
    _write_mnist(tmp_path / "m", gz=gz)
    d = load_dataset("mnist", root=tmp_path / "m")
    assert d.x_train.shape == (30, 784) and d.x_test.shape == (10, 784) and d.image_shape == (28, 28)
    assert 0 <= d.x_train.min() and d.x_train.max() <= 1


def test_missing_mnist_says_where_to_put_the_files(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path)) as e:
        load_dataset("fashion-mnist", root=tmp_path)
    assert "train-images-idx3-ubyte" in str(e.value) and "download" in str(e.value)


def test_download_from_a_mirror(tmp_path):
    _write_mnist(tmp_path / "mirror")
    images, labels = read_idx_pair(tmp_path / "cache", "train", download=True,
                                   mirrors=[(tmp_path / "nothing").as_uri() + "/",
                                            (tmp_path / "mirror").as_uri() + "/"])
    assert images.shape == (30, 28, 28) and (tmp_path / "cache" / "train-images-idx3-ubyte.gz").exists()


def test_bad_idx_files_are_refused(tmp_path):
    (tmp_path / "a").write_bytes(b"\x01\x02\x03\x04rest")
    with pytest.raises(ValueError, match="magic"):
        read_idx(tmp_path / "a")
    write_idx(tmp_path / "b", np.zeros((3, 4)))
    data = (tmp_path / "b").read_bytes()
    (tmp_path / "b").write_bytes(data[:-2])
    with pytest.raises(ValueError, match="header says"):
        read_idx(tmp_path / "b")
    (tmp_path / "c.gz").write_bytes(b"not gzip")
    with pytest.raises(ValueError, match="cannot read"):
        read_idx(tmp_path / "c.gz")


def test_batcher_covers_every_example_once_per_epoch():
    b = Batcher(100, 10, "cpu", seed=0)
    seen = torch.cat([b.next() for _ in range(10)])
    assert torch.equal(seen.sort().values, torch.arange(100)) and b.epoch == 0
    b.next()
    assert b.epoch == 1


# -- config and presets -----------------------------------------------------------------------
def test_presets_are_valid_and_the_paper_one_matches_the_reference():
    for name in PRESETS:
        preset(name).validate()
    p = preset("paper-mnist")
    assert (p.hidden, p.bias, p.connectivity, p.lr, p.lr_decay, p.batch_size, p.alpha) == \
           ([300, 100], False, [0.01, 0.03, 0.3], 0.5, 0.8, 10, 1e-5)
    assert p.effective_temperature() == pytest.approx(0.5 * 1e-10 / 2)


@pytest.mark.parametrize("change,field", [({"lr": 0}, "lr"), ({"hidden": [0]}, r"hidden\[0\]"),
                                          ({"connectivity": [0.1, 2.0, 0.1]}, r"connectivity\[1\]"),
                                          ({"dataset": "cifar"}, "dataset"), ({"batch_size": 0}, "batch_size"),
                                          ({"alpha": float("nan")}, "alpha"), ({"nope": 1}, "nope")])
def test_bad_config_names_the_field(change, field):
    with pytest.raises(ValueError, match=field):
        preset("digits-demo").replace(**change)


# -- the session ------------------------------------------------------------------------------
def test_session_steps_learns_and_logs_changes():
    s = TrainingSession(small(lr=0.1))
    assert s.step(600) == 600 and s.step_count == 600
    assert s.last["test_acc"] > 0.6
    s.set_hyperparams(temperature=1e-4, alpha=2e-4, k=[100, 50, 40], batch_size=16)
    assert [l.k for l in s.layers] == [100, 50, 40] and s.batcher.batch_size == 16
    assert s.optimizer.rewired_groups[0]["temperature"] == 1e-4
    names = [c[1] for c in s.telemetry.changes]
    assert {"temperature", "alpha", "k", "batch_size"} <= set(names)
    assert all(c[0] == 600 for c in s.telemetry.changes)
    s.step(10)
    assert [l.k for l in s.layers] == [100, 50, 40]


def test_bad_live_values_change_nothing():
    s = TrainingSession(small())
    before = s.hyperparams()
    for bad in ({"lr": -1}, {"temperature": float("inf")}, {"k": [10**6, 1, 1]},
                {"connectivity": 0}, {"batch_size": 0}, {"alpha": 1e-3, "k": [0, 1, 1]}, {"seed": 3}):
        with pytest.raises(ValueError):
            s.set_hyperparams(**bad)
        assert s.hyperparams() == before
    assert not s.telemetry.changes


def test_soft_deepr_session_and_connectivity_target():
    s = TrainingSession(small(algorithm="soft-deepr", temperature=1e-5))
    s.step(50)
    tm = [g["theta_min"] for g in s.optimizer.rewired_groups]
    s.set_hyperparams(connectivity=[0.5, 0.5, 0.5])
    assert [g["theta_min"] for g in s.optimizer.rewired_groups] != tm
    s.set_hyperparams(theta_min=-0.01)
    assert [g["theta_min"] for g in s.optimizer.rewired_groups] == [-0.01] * 3


def test_divergence_pauses_and_keeps_the_last_good_state():
    s = TrainingSession(small(lr=0.05))
    s.step(20)
    good = {k: v.clone() for k, v in s.model.state_dict().items()}
    clean = s.data.x_train.clone()
    s.data.x_train[:] = float("inf")  # every example now gives a non-finite loss
    assert s.step(50) == 0 and s.step_count == 20
    assert s.paused_reason and "diverged at step 21" in s.paused_reason
    for k, v in s.model.state_dict().items():  # the state of the last good step
        assert torch.equal(v, good[k])
    kept = {k: v.clone() for k, v in s.model.state_dict().items()}
    assert s.step(5) == 0  # paused: nothing moves
    for k, v in s.model.state_dict().items():
        assert torch.equal(v, kept[k])
        assert torch.isfinite(v.float()).all()
    s.data.x_train.copy_(clean)
    s.resume()
    assert s.step(3) == 3 and s.paused_reason is None


def test_views_are_detached_and_carry_every_rewiring_event_after_their_cursor():
    s = TrainingSession(small(temperature=1e-4, alpha=1e-2))
    cursor = s.snapshot().events_cursor
    before = s.telemetry.total_pruned
    s.step(40)
    v = s.snapshot(since=cursor)
    n_pruned = s.telemetry.total_pruned - before
    assert n_pruned > 0 and sum(len(l.pruned) for l in v.layers) == n_pruned
    assert sum(len(l.activated) for l in v.layers) == n_pruned  # exact K: as many revived
    for lv, layer in zip(v.layers, s.layers):
        assert int(lv.active_mask().sum()) == lv.k == layer.k
        assert np.array_equal(lv.weight() != 0, lv.active_mask() & (lv.theta != 0))
        assert np.array_equal(lv.active_theta, lv.theta.reshape(-1)[lv.active_pos])
        assert len(lv.pruned_age) == len(lv.pruned) and np.all((lv.pruned_age >= 0) & (lv.pruned_age <= 40))
    from deepr_engine.sparse import model_memory
    assert v.model_bytes == model_memory(s.model)["total"] > 0
    assert v.process_rss > v.model_bytes  # the process holds torch and the data too
    v.layers[0].theta[...] = 5.0  # a view never aliases the run
    assert not bool((s.layers[0].theta == 5.0).any())
    assert all(l.pruned.size == 0 for l in s.snapshot(since=v.events_cursor).layers)  # nothing new since
    again = s.snapshot(since=cursor)  # reading took nothing: the same events again
    assert all(np.array_equal(a.pruned, b.pruned) and np.array_equal(a.activated, b.activated)
               for a, b in zip(again.layers, v.layers))


def test_telemetry_counts_lifetimes_and_tracking():
    s = TrainingSession(small(temperature=1e-4))
    s.step(300)
    tel = s.telemetry
    _, pruned = tel.pruned.arrays()
    # 300 steps fit the series at full resolution: every pruned connection has one lifetime
    assert tel.pruned.stride == 1 and tel.lifetimes.sum() == int(pruned.sum()) > 0
    steps, walks = tel.tracked_theta.arrays()
    assert walks.shape[1] == len(tel.tracked_pos) and steps[-1] == 300
    assert (walks < 0).any() and (walks >= 0).any()  # active and dormant are tracked
    with pytest.raises(ValueError, match="outside"):
        s.track([0], [10**7])
    s.track([0, 1], [3, 4])
    s.step(3)
    assert tel.tracked_theta.arrays()[1].shape == (4, 2)


def test_downsampled_series_keeps_the_whole_history_bounded():
    s = Downsampled(capacity=256)
    for step in range(1, 1_000_001):
        s.add(step, step % 7)
    steps, vals = s.arrays()
    assert len(steps) < 256 and steps[0] < 5000 and steps[-1] > 995_000
    assert abs(vals.mean() - 3.0) < 0.01  # means of merged windows stay right


@pytest.mark.parametrize("mode", ["mean", "last"])
def test_downsampled_arrays_extended_between_calls_equal_a_fresh_build(mode):
    # arrays() extends its last result by the points added since (merges rebuild it): across
    # merges and at random call times it must equal arrays built from scratch
    rng = np.random.default_rng(0)
    s = Downsampled(capacity=8, mode=mode)
    for step in range(300):
        s.add(step, rng.normal(size=3))
        if rng.random() < 0.4:
            steps, vals = s.arrays()
            assert np.array_equal(steps, np.asarray(s.steps)) and np.array_equal(vals, np.stack(s.values))
    assert s.stride > 8  # several merges happened


@pytest.mark.slow
def test_long_session_telemetry_stays_under_a_fixed_bound():
    s = TrainingSession(small(eval_every=10), telemetry_capacity=64)
    sizes = []
    for _ in range(6):   # each chunk fills the 64-entry rings many times over
        s.step(1000)
        sizes.append(s.telemetry.size_in_points())
    bound = 64 * (4 + 3 * 4 + 2 * 4 + 2 * 25) + s.telemetry.lifetimes.size + 5000
    assert max(sizes) < bound and sizes[-1] <= max(sizes[1:3]) * 1.1


# -- checkpoints ------------------------------------------------------------------------------
@pytest.mark.parametrize("algo", ["deepr", "soft-deepr"])
def test_checkpoint_continues_bit_identically(algo, tmp_path):
    a = TrainingSession(small(algorithm=algo, temperature=1e-5, gradient="adam", lr=0.01))
    a.step(120)
    a.set_hyperparams(alpha=3e-4)
    path = checkpoint.save(a, tmp_path / "c.safetensors")
    a.step(130)
    b = checkpoint.load(path)
    assert b.step_count == 120
    b.step(130)
    for (k, va), vb in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(va, vb), k
    assert a.last == b.last
    assert a.telemetry.to_dict() == b.telemetry.to_dict()


def test_corrupt_or_foreign_files_are_refused(tmp_path):
    s = TrainingSession(small())
    blob = bytearray(checkpoint.to_bytes(s))
    bad = blob[:]
    bad[20:40] = b"x" * 20
    for data in (bytes(bad), bytes(blob[: len(blob) // 2]), b"", b"\x00" * 100,
                 st_save({"w": torch.zeros(3)}, metadata={"format": "other"})):
        with pytest.raises(ValueError, match="checkpoint|safetensors"):
            checkpoint.load(data)
    tensors = st_load(bytes(blob))
    meta = checkpoint.read_metadata(bytes(blob))
    meta["config"] = meta["config"].replace('"hidden": [32, 16]', '"hidden": [32, 17]')
    tampered = st_save(tensors, metadata=meta)
    with pytest.raises(ValueError, match=r"model\.2\.weight: expected F32 of shape \[17, 32\]"):
        checkpoint.load(tampered)
    (tmp_path / "x.safetensors").write_bytes(b"junk")
    with pytest.raises(ValueError):
        checkpoint.load(tmp_path / "x.safetensors")


# -- CLI --------------------------------------------------------------------------------------
def test_cli_trains_writes_a_run_folder_and_resumes(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli_main(["train", "--preset", "spiral-demo", "--steps", "200", "--quiet",
                     "--out", str(out), "--hidden", "8,8", "--seed", "3"]) == 0
    assert (out / "checkpoint.safetensors").exists()
    assert (out / "metrics.csv").read_text().startswith("step,series,value")
    assert "test accuracy" in capsys.readouterr().out
    assert cli_main(["train", "--resume", str(out), "--steps", "50", "--quiet"]) == 0
    assert "step 250" in capsys.readouterr().out


@pytest.mark.parametrize("argv,needle", [(["train", "--lr", "-1"], "lr"),
                                         (["train", "--batch-size", "x"], "batch_size"),
                                         (["train", "--preset", "nope"], "preset"),
                                         (["train", "--frobnicate", "1"], "frobnicate"),
                                         (["train", "--connectivity", "0.1,2,0.1"], "connectivity")])
def test_cli_bad_input_is_one_line_and_exit_2(argv, needle, capsys):
    assert cli_main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err and "Traceback" not in err


def test_a_k_change_records_rewiring_but_no_metrics_point():
    s = TrainingSession(small())
    s.set_hyperparams(k=[100, 50, 40])  # before any step: no loss exists yet
    assert len(s.telemetry.series["loss"]) == 0
    _, pruned = s.telemetry.pruned.arrays()
    assert pruned.sum() == (410 - 100) + (154 - 50) + (80 - 40)
    s.step(20)
    assert np.isfinite(s.telemetry.series["loss"].arrays()[1]).all()


def test_a_session_does_not_depend_on_the_global_random_state():
    torch.manual_seed(1)
    a = TrainingSession("spiral-demo")
    torch.rand(1000)  # someone else used the global generator in between
    b = TrainingSession("spiral-demo")
    for pa, pb in zip(a.model.parameters(), b.model.parameters()):
        assert torch.equal(pa, pb)
    a.step(30)
    b.step(30)
    assert a.last == b.last


def test_the_o_k_ledger_of_huge_layers_keeps_the_same_records_as_the_dense_one():
    from deepr_engine.run.telemetry import DenseLedger, SparseLedger
    g = torch.Generator().manual_seed(0)
    n = 500
    dense, sparse = DenseLedger(n, "cpu"), SparseLedger(n, "cpu")
    active = torch.randperm(n, generator=g)[:50]
    dense.start(active)
    sparse.start(active)
    for step in range(1, 300):  # Deep R-like: some die, as many dormant ones are revived
        k = int(torch.randint(0, 6, (1,), generator=g))
        slots = torch.randperm(len(active), generator=g)[:k]
        pruned = active[slots]
        dormant = torch.ones(n, dtype=torch.bool)
        dormant[active] = False
        dormant[pruned] = True
        cand = torch.nonzero(dormant).view(-1)
        new = cand[torch.randperm(len(cand), generator=g)[:k]]
        assert torch.equal(dense.born_at(pruned), sparse.born_at(pruned))
        dense.record(step, pruned, new)
        sparse.record(step, pruned, new)
        active = active.clone()
        active[slots] = new
        assert dense.ever_fraction() == pytest.approx(sparse.ever_fraction())
    assert torch.equal(dense.born_at(active), sparse.born_at(active))
    assert len(sparse.pos) == len(active)  # O(K): only the active positions carry a birth step
